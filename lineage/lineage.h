/*
 * lineage/lineage.h — OpenLineage for attested windows (FORMAT.md §11, SPEC 11): each window in
 * every sink becomes a START and a COMPLETE RunEvent (OpenLineage spec 2-0-2) in the lineage
 * tools a platform already runs (Marquez, DataHub, OpenMetadata).
 *
 *   ws_lineage_build    the pure part: one window's envelope -> its two events, byte-identical
 *                       for the same window (a re-emit after a crash is harmless)
 *   ws_lineage_run_id   the run id: a UUIDv8 (RFC 9562 §5.8) from SHA-256 of the window id
 *   ws_lineage_emitter  the best-effort part: a bounded queue and a worker thread that posts
 *                       the events over HTTP or produces them with the engine's producer;
 *                       retried with the same bytes, counted, dropped when the backend stays
 *                       down — never a wait for the window that made them
 *
 * The events are built from the signed statement itself (the envelope's payload), so they say
 * exactly what was signed; nothing the engine holds besides the envelope goes into them.
 *
 * Threads: ws_lineage_build, ws_lineage_run_id and ws_lineage_kafka_namespace are pure and
 * thread-safe. An emitter is driven by one thread (the engine's): submit and poll never block.
 */
#ifndef WS_LINEAGE_H
#define WS_LINEAGE_H

#include "window/window.h"

#include <stddef.h>
#include <stdint.h>

/* The project, as OpenLineage's `producer` / `_producer` (a URI naming the producer and its
 * version); WS_VERSION comes from CMake's project version. */
#define WS_LINEAGE_PRODUCER "https://github.com/windowseal/windowseal/tree/v" WS_VERSION
/* The custom facet's JSON Schema, immutable: a tag in the URL, and a new facet version is a new
 * file (docs/openlineage/<version>/). */
#define WS_LINEAGE_FACET_VERSION "1-0-0"
#define WS_LINEAGE_FACET_ID                                                                        \
    "https://raw.githubusercontent.com/windowseal/windowseal/v0.1.0/docs/"                         \
    "openlineage/" WS_LINEAGE_FACET_VERSION "/WindowsealAttestationRunFacet.json"
#define WS_LINEAGE_FACET_SCHEMA_URL WS_LINEAGE_FACET_ID "#/$defs/WindowsealAttestationRunFacet"
#define WS_LINEAGE_FACET_KEY "windowseal_attestation"

#define WS_LINEAGE_UUID_LEN 36 /* 8-4-4-4-12 lowercase hex, without the NUL */

/* ------------------------------------------------------------------------------------------ */
/* The event builder (event.c): pure                                                            */

struct ws_lineage_conf {
    const char *job_namespace;   /* openlineage.namespace: the job's (and the Spark parent's) */
    const char *kafka_namespace; /* "kafka://host:port": ws_lineage_kafka_namespace() */
};

/* One window's events; every string malloc'ed, NUL-terminated. */
struct ws_lineage_events {
    char run_id[WS_LINEAGE_UUID_LEN + 1];
    char *start, *complete; /* compact JSON, keys sorted */
    size_t start_len, complete_len;
    char *key; /* Kafka message key: "run:<job namespace>/<job name>" (OpenLineage's own) */
};

/*
 * The START and COMPLETE RunEvents of the window whose DSSE envelope is env[0..len). The
 * signature is not checked here (the engine made or verified the envelope); the payload must be
 * a windowseal statement: WS_ERR_MALFORMED naming what is missing otherwise, WS_ERR_NOMEM.
 * The same envelope and conf give the same bytes, always. *out is filled only on success.
 */
ws_err_t ws_lineage_build(const struct ws_lineage_conf *conf, const char *env, size_t len,
                          struct ws_lineage_events *out, char *errbuf, size_t errlen) WS_MUST_CHECK;
void ws_lineage_events_free(struct ws_lineage_events *ev);

/*
 * The run id of a window: SHA-256("windowseal.openlineage.run.v1\n" || window id), its first 16
 * bytes with the RFC 9562 version (8) and variant (10) bits set. Depends on the window id alone
 * (not on the group, the instance or the configuration). out: WS_LINEAGE_UUID_LEN + 1 bytes.
 */
void ws_lineage_run_id(const char *window_id, char out[WS_LINEAGE_UUID_LEN + 1]);

/*
 * "kafka://<host>:<port>" of the first of bootstrap's comma-separated servers, as OpenLineage's
 * Spark integration names a Kafka dataset's namespace (KafkaRelationVisitor: a "PROTO://"
 * prefix dropped, a missing port written -1 as Java's URI does). Always NUL-terminated.
 */
void ws_lineage_kafka_namespace(const char *bootstrap, char *out, size_t cap);

/* ------------------------------------------------------------------------------------------ */
/* The emitter (emitter.c): best effort, never in the way                                      */

struct ws_kafka_producer;

/* Outcomes counted per event (windowseal_lineage_events_total{result=...}). */
enum ws_lineage_result {
    WS_LINEAGE_DELIVERED = 0, /* HTTP 200/201, or acknowledged by Kafka */
    WS_LINEAGE_RETRIED,       /* one attempt failed retriably; it is sent again, same bytes */
    WS_LINEAGE_REJECTED,      /* the backend refused it for good (4xx, a permanent Kafka error) */
    WS_LINEAGE_DROPPED,       /* given up: queue full, attempts spent, or the process stopping */
    WS_LINEAGE_RESULTS
};
const char *ws_lineage_result_name(enum ws_lineage_result r); /* "delivered", ... */

struct ws_lineage_emitter_conf {
    struct ws_lineage_conf events;
    /* HTTP: POST {url}/{endpoint} ... */
    const char *url;
    const char *endpoint;
    const char *token; /* bearer token (copied, wiped at destroy); NULL or "": none */
    /* ... or Kafka: kafka_topic with producer (its reports served by the caller's thread, which
     * calls ws_lineage_emitter_poll after each ws_kafka_producer_poll) */
    const char *kafka_topic;
    struct ws_kafka_producer *producer;
    int64_t retry_base_ms, retry_max_ms; /* backoff between attempts (doubling, jitter) */
    unsigned max_attempts;               /* per event; then dropped */
    size_t max_windows;                  /* queue bound; a window beyond it is dropped */
    size_t max_bytes;                    /* queue bound on envelope and event bytes */
    int64_t http_timeout_ms;             /* one POST */
    /* Called once per outcome, from the worker or the poll thread (must be thread-safe). */
    void (*count)(void *opaque, enum ws_lineage_result r, unsigned n);
    void *opaque;
};

struct ws_lineage_emitter;
/* Starts the worker thread. WS_ERR_CONFIG (neither or both transports), WS_ERR_NOMEM. */
ws_err_t ws_lineage_emitter_new(const struct ws_lineage_emitter_conf *conf,
                                struct ws_lineage_emitter **out, char *errbuf,
                                size_t errlen) WS_MUST_CHECK;
/*
 * Hand over one attested window (its envelope is copied): its events are built and sent by the
 * worker. Never blocks; a full queue drops the window (counted, both events). Caller's thread.
 */
void ws_lineage_emitter_submit(struct ws_lineage_emitter *em, const char *env, size_t len);
/* Kafka transport: take the delivery reports the producer's poll just served. Caller's thread. */
void ws_lineage_emitter_poll(struct ws_lineage_emitter *em);
/*
 * Let the worker finish what is queued for at most grace_ms, then stop it (what is left is
 * dropped and counted). The producer must outlive this call; after it nothing is produced.
 */
void ws_lineage_emitter_stop(struct ws_lineage_emitter *em, int64_t grace_ms);
/* Stops if not stopped (grace 0). Kafka: call after the producer was flushed or destroyed, so
 * that every delivery report has fired (an unfired one is abandoned to the producer). */
void ws_lineage_emitter_destroy(struct ws_lineage_emitter *em);

#endif /* WS_LINEAGE_H */
