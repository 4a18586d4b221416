/*
 * sinks/sink.h — where attestations go (FORMAT.md §7), behind one small const vtable.
 *
 * A sink type is `const struct ws_sink_ops`, as in Fluent Bit's output plugins: its metadata (the
 * type name and its option table — keys, types, defaults, ranges, required keys, docs — declared
 * next to its callbacks) and its callbacks (create, publish, put, get, destroy). config/ never
 * names a sink type: the caller hands ws_sink_types() to ws_config_load(), which checks every
 * configured sink against its type's table at load time and keeps the filled struct for create.
 *
 * An instance is opaque outside sinks/; the engine asks what it can do (ws_sink_can_get,
 * ws_sink_can_put) and how to name it (ws_sink_label), never looks inside.
 *
 * Errors: a sink answers WS_OK or the cause (WS_ERR_NOSPACE, WS_ERR_IO, WS_ERR_TIMEOUT,
 * WS_ERR_PERMISSION, WS_ERR_KAFKA, ...), whose ws_err_retriable() class the engine acts on;
 * WS_ERR_SINK_RETRY / WS_ERR_SINK_PERMANENT only where no more precise code has the right
 * class (an HTTP 5xx, a TLS trust failure). Sinks never retry on their own: the engine owns
 * retries, backoff and the decision to stop a query's chain.
 *
 * Write-once: publishing an object that already exists with identical bytes is success; with
 * other bytes it is WS_ERR_EXISTS_DIFFERENT (permanent) and the engine decides (FORMAT.md §7).
 *
 * Threads: one thread per sink instance (the engine's).
 */
#ifndef WS_SINK_H
#define WS_SINK_H

#include "window/window.h"
#include "config/config.h"

struct ws_kafka_producer;
struct ws_kafka_delivery;

/* One window's artifacts, durable in the spool before any sink sees them. */
struct ws_artifact {
    const char *query_id;
    int64_t batch_id;
    const char *window_id;
    const char *envelope; /* DSSE JSON */
    size_t envelope_len;
    const char *evidence_path; /* spool file holding the LZ4 evidence archive */
};

/* What the engine lends every sink it creates; a sink takes what its type needs. */
struct ws_sink_ctx {
    struct ws_kafka_producer *producer; /* reports to ws_kafka_delivery_report */
    const char *topic;                  /* the attestations topic */
    /* How long the topic sink waits for one delivery report; 0: 120 s (tests make it short). */
    int64_t delivery_wait_ms;
};

struct ws_sink; /* opaque */

struct ws_sink_ops {
    /*
     * The type name ("file") and its configuration keys, filling a struct of type.size bytes:
     * what config/ checks a configured sink against. nopts 0: not configurable (the topic sink,
     * which the engine adds itself).
     */
    struct ws_option_table type;
    /* opts: the struct filled from type's table (NULL if it has none). */
    ws_err_t (*create)(const void *opts, const struct ws_sink_ctx *ctx, struct ws_sink **out,
                       char *errbuf, size_t errlen);
    /* Make the artifact durable in the sink; returns once it is (or failed). */
    ws_err_t (*publish)(struct ws_sink *s, const struct ws_artifact *a, char *errbuf,
                        size_t errlen);
    /*
     * Start publishing and return at once; the outcome arrives in *d when the producer's report
     * is served (ws_kafka_producer_poll on the thread that owns the producer). d must stay
     * valid until then, or be heap-allocated and marked abandoned. NULL for sinks that only
     * complete synchronously (object stores).
     */
    ws_err_t (*submit)(struct ws_sink *s, const struct ws_artifact *a, struct ws_kafka_delivery *d,
                       char *errbuf, size_t errlen);
    /*
     * Replace a mutable object (the per-query "<queryId>/checkpoint"): the only object that is
     * not written once. NULL if the sink holds no such objects (the Kafka topic).
     */
    ws_err_t (*put)(struct ws_sink *s, const char *name, const void *data, size_t len, char *errbuf,
                    size_t errlen);
    /* Read back an object ("<queryId>/<batch20>.dsse.json"); NULL if the sink cannot read. */
    ws_err_t (*get)(struct ws_sink *s, const char *name, char **buf, size_t *len, char *errbuf,
                    size_t errlen);
    void (*destroy)(struct ws_sink *s);
};

/* Ops by type name ("file", "s3", "kafka"); NULL if unknown. */
const struct ws_sink_ops *ws_sink_lookup(const char *type);
/* The configurable types ("file", "s3"), for ws_config_load and ws_config_write_docs. */
const struct ws_sink_types *ws_sink_types(void);

/*
 * Create a sink of conf->type. conf->opts must have been filled from that type's table (by
 * ws_config_load with ws_sink_types()); a type without options takes {.type = "kafka"}.
 */
ws_err_t ws_sink_create(const struct ws_sink_conf *conf, const struct ws_sink_ctx *ctx,
                        struct ws_sink **out, char *errbuf, size_t errlen) WS_MUST_CHECK;
ws_err_t ws_sink_publish(struct ws_sink *s, const struct ws_artifact *a, char *errbuf,
                         size_t errlen) WS_MUST_CHECK;
/* WS_ERR_UNSUPPORTED for sinks that cannot (!ws_sink_can_submit). */
ws_err_t ws_sink_submit(struct ws_sink *s, const struct ws_artifact *a, struct ws_kafka_delivery *d,
                        char *errbuf, size_t errlen) WS_MUST_CHECK;
/* WS_ERR_UNSUPPORTED for sinks that cannot read back (!ws_sink_can_get). */
ws_err_t ws_sink_get(struct ws_sink *s, const char *name, char **buf, size_t *len, char *errbuf,
                     size_t errlen) WS_MUST_CHECK;
/* WS_OK without doing anything for sinks that hold no mutable objects (!ws_sink_can_put). */
ws_err_t ws_sink_put(struct ws_sink *s, const char *name, const void *data, size_t len,
                     char *errbuf, size_t errlen) WS_MUST_CHECK;
void ws_sink_destroy(struct ws_sink *s);

/* "file:/path", "s3:bucket/prefix", "kafka:topic": for logs and metrics; owned by s. */
const char *ws_sink_label(const struct ws_sink *s);
/* The sink completes asynchronously through the producer (ws_sink_submit): the topic. */
bool ws_sink_can_submit(const struct ws_sink *s);
/* The sink can read objects back (ws_sink_get): object stores. */
bool ws_sink_can_get(const struct ws_sink *s);
/* The sink holds named mutable objects (ws_sink_put, the checkpoint): object stores. */
bool ws_sink_can_put(const struct ws_sink *s);

/*
 * Durable file write used by the file sink and the spool: write to a temporary name in the same
 * directory, fsync, rename into place, fsync the directory. Creates parent directories.
 */
ws_err_t ws_file_write_atomic(const char *path, const void *data, size_t len, char *errbuf,
                              size_t errlen) WS_MUST_CHECK;

#endif /* WS_SINK_H */
