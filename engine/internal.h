/*
 * engine/internal.h — private to engine/: the engine's state (one handle, its queries and the
 * notifications in hand), the functions its files share, metrics. Not included outside engine/.
 *
 * Files of the engine, one room each (engine.c's design note draws the stages):
 *   engine.c   the loop: scheduling, the one retry policy, chain heads, invariants, public API
 *   intake.c   received -> queued | idle | dead-letter; producing dead letters (I4)
 *   build.c    queued -> spooled: records re-read, hashed, spooled, sealed (I2), on a build worker
 *   pool.c     the worker threads (build and store) and the handover to and from them
 *   hasher.c   a build worker's hashing and compressing threads: a big window fetched, hashed
 *              and compressed at once
 *   outputs.c  what the batch wrote: plain files hashed, Iceberg snapshots resolved
 *   publish.c  spooled -> done: sinks, checkpoint, chain head (I1, I3); duplicates, conflicts
 *   commit.c   offsets in hand and commits (I1)
 */
#ifndef WS_ENGINE_INTERNAL_H
#define WS_ENGINE_INTERNAL_H

#include "engine/engine.h"
#include "disk/disk.h"
#include "iceberg/iceberg.h"
#include "kafka/kafka.h"
#include "lineage/lineage.h"
#include "sinks/sink.h"

#include <limits.h>
#include <signal.h>

/* The configured object stores and the attestations topic; sinks_done is a bitmask of them. */
#define MAX_SINKS (WS_CONFIG_MAX_SINKS + 1)
_Static_assert(MAX_SINKS <= 32, "sinks_done holds one bit per sink");
/* Notifications held at once (gap waits, retries, a stopped chain): beyond this, stop polling
 * rather than let memory grow; they wait in Kafka instead. */
#define MAX_IN_HAND 10000

/* A notification's stage (the diagram atop engine.c); each arrow is one function. */
enum stage {
    ST_QUEUED,     /* parsed, in its query's queue, waiting for its turn */
    ST_BUILDING,   /* a build worker has it: records re-read, hashed, spooled, sealed */
    ST_SPOOLED,    /* artifacts durable in the spool, waiting for a store worker */
    ST_STORING,    /* a store worker has it: the object stores (sinks_done bits) */
    ST_STORED,     /* every object store holds it: the attestations topic (dv in flight) */
    ST_HEAD,       /* every sink holds it: the chain head being acknowledged (dv in flight) */
    ST_DEADLETTER, /* refused: its dead-letter record is being produced */
    ST_DONE,       /* attested, duplicate or dead-lettered: its offset may be committed */
};

struct query;

/*
 * Where a window's time goes: the monotonic microseconds at which it passed each point, written
 * by whoever holds the window then (its stage says who: the worker between submit and done,
 * else the engine thread), read on the engine thread once it is done, for the debug line
 * "window_timing" (eng_log_timing). A retry overwrites the later marks; 0: not passed (a window
 * resumed from the spool skips the build's).
 */
enum mark {
    MK_RECEIVED,  /* intake: parsed and queued */
    MK_BUILD,     /* a build worker starts it */
    MK_READ,      /* every record read and hashed (the evidence still open) */
    MK_EVIDENCE,  /* the evidence complete, its fsync started */
    MK_SEALED,    /* statement made and signed */
    MK_SPOOLED,   /* evidence and envelope durable in the spool: the worker is done */
    MK_BUILT,     /* back on the engine thread */
    MK_STORE,     /* a store worker starts it */
    MK_STORED,    /* every object store holds it, the checkpoint written */
    MK_TOPIC,     /* the attestation produced (its Kafka CreateTime is about now) */
    MK_TOPIC_ACK, /* ... and acknowledged */
    MK_HEAD_ACK,  /* the chain head acknowledged: done */
    MK_COUNT
};

struct pending {
    int32_t partition;
    int64_t offset;
    int64_t timestamp;
    char *key, *value; /* raw copies, for the dead-letter record */
    int32_t key_len, value_len;
    bool parsed;
    struct ws_notification n;
    enum stage stage;
    ws_err_t dlq_err;
    char dlq_reason[512];
    int64_t held_since;   /* first time it was found ahead of its chain */
    int64_t next_attempt; /* monotonic ms */
    unsigned attempts;
    /* ST_BUILDING: the worker's input (the gap, if batches before it were given up on) ... */
    bool has_gap;
    struct ws_gap gap;
    /* ... and what it found, applied by the engine thread when it takes the window back */
    bool rows_mismatch;     /* numInputRows differs from the records Kafka holds */
    unsigned discrepancies; /* outputs that differ from the job's word (FORMAT.md §5) */
    bool resumed;           /* delivered from the spool as it was before a restart */
    /* ST_SPOOLED: artifacts made, being published */
    char *envelope;
    size_t envelope_len;
    char evidence_path[PATH_MAX];
    unsigned sinks_done; /* bitmask */
    bool head_done;
    struct ws_head new_head;
    uint64_t window_records, window_bytes;
    struct ws_kafka_delivery *dv; /* ST_STORED, ST_HEAD: the message in flight (heap) */
    ws_err_t job_err;             /* ST_BUILDING, ST_STORING: the worker's outcome ... */
    char job_why[512];            /* ... and its reason */
    struct pending *next;   /* in its query's queue: by batch id, or in arrival order (orphans) */
    int64_t mark[MK_COUNT]; /* enum mark */
};

static inline void eng_mark(struct pending *p, enum mark m)
{
    p->mark[m] = ws_clock_us();
}
/* The debug line "window_timing": milliseconds between the marks a window passed. */
void eng_log_timing(const struct query *q, const struct pending *p);

struct query {
    char id[129];
    bool has_head;
    struct ws_head head;
    int64_t no_wait_below; /* batches below this are known dead-lettered: no gap wait */
    bool stopped;
    struct pending *queue;
    struct query *next;
};

struct inflight { /* offsets in hand, per partition of the notifications topic */
    int32_t partition;
    int64_t *offs;
    size_t n, cap;
    int64_t seen_max;  /* highest offset polled */
    int64_t committed; /* last offset sent to the group coordinator */
    bool dirty;        /* an offset left hand since the last commit */
};

struct ws_engine {
    const struct ws_config *cfg;
    struct ws_key key;
    struct ws_key *read_keys; /* public halves: signing key first, then signing.verify_keys */
    size_t nread_keys;
    struct ws_kafka_producer *producer;
    struct ws_kafka_reader *reader;
    struct ws_kafka_consumer *consumer;
    struct ws_spool *spool;
    struct ws_sink *sinks[MAX_SINKS];
    size_t nsinks;
    struct query *queries;
    struct query orphans; /* a queue of dead-letters without a usable query id (id "") */
    struct inflight *parts;
    size_t nparts;
    uint64_t generation;
    bool heads_loaded;
    int64_t heads_retry_at; /* the heads failed to load: not asked again before this */
    unsigned heads_attempts;
    /* a notification polled while the heads could not be loaded and that could not be given
     * back to the consumer: taken before the next poll */
    struct ws_kafka_msg held;
    bool has_held;
    bool gave_back; /* the consumer is paused on a given-back notification until the heads load */
    size_t in_hand; /* notifications polled and not yet done: intake pauses at MAX_IN_HAND */
    volatile sig_atomic_t stop;
    struct ws_engine_stats stats;
    struct ws_metrics *metrics;
    int64_t last_gauges; /* when the gauges were last refreshed */
    struct ws_notif_opts nopts;
    struct eng_pool *builders; /* the build workers */
    struct eng_pool *pool;     /* the store workers */
    int64_t stop_at;           /* when stop was first seen: in-flight windows get a bounded time */
    int64_t commit_refreshed;  /* when every partition's offset was last sent again */
    struct ws_lineage_emitter *lineage; /* openlineage configured: events of attested windows */
};

/* ------------------------------------------------------------------------------------------ */
/* Shared between the engine's files                                                            */

/*
 * pool.c: worker threads. What a worker owns and does, as a const vtable beside its stage:
 * open makes one worker's resources (*ctx), run takes one window (on the worker's thread; the
 * outcome goes to p->job_err and p->job_why), close frees what open made.
 */
struct eng_work {
    const char *name; /* "build", "store": for messages */
    ws_err_t (*open)(struct ws_engine *e, void **ctx, char *errbuf, size_t errlen);
    ws_err_t (*run)(struct ws_engine *e, void *ctx, struct query *q, struct pending *p,
                    char *errbuf, size_t errlen);
    void (*close)(void *ctx);
};
extern const struct eng_work eng_build_work; /* build.c: a Kafka range reader each */
extern const struct eng_work eng_store_work; /* publish.c: every object store's sink each */

struct eng_pool;
ws_err_t eng_pool_new(struct ws_engine *e, const struct eng_work *work, unsigned nworkers,
                      struct eng_pool **out, char *errbuf, size_t errlen) WS_MUST_CHECK;
/* Hand p over (ST_BUILDING, ST_STORING); false when every worker is busy. */
bool eng_pool_submit(struct eng_pool *pl, struct query *q, struct pending *p);
/* A finished window (its job_err and job_why set), or NULL; never blocks. */
struct pending *eng_pool_done(struct eng_pool *pl, struct query **q);
unsigned eng_pool_busy(const struct eng_pool *pl);
bool eng_pool_full(const struct eng_pool *pl);
void eng_pool_destroy(struct eng_pool *pl); /* after every window was taken back */

/* commit.c: offsets in hand, per partition; commits up to the lowest one in hand (I1). */
bool eng_inflight_add(struct ws_engine *e, int32_t partition, int64_t offset);
void eng_inflight_done(struct ws_engine *e, int32_t partition, int64_t offset);
void eng_inflight_reset(struct ws_engine *e); /* after a rebalance: nothing in hand */
void eng_inflight_free(struct ws_engine *e);
/* The offset to commit for a partition: the lowest in hand, else one past the highest seen. */
int64_t eng_inflight_next(const struct inflight *p);
/* Commit every partition whose offset moved since the last call: once a step, asynchronously
 * (sync at shutdown). A later commit covers a lost one; none is ever ahead (I1). */
void eng_commit(struct ws_engine *e, bool sync);

/* intake.c */
ws_err_t eng_intake(struct ws_engine *e, const struct ws_kafka_msg *m) WS_MUST_CHECK;
struct query *eng_query_get(struct ws_engine *e, const char *id, bool create);
void eng_pending_free(struct pending *p);
void eng_to_deadletter(struct pending *p, ws_err_t err, const char *reason);
/* Produce p's dead-letter record and wait for it: WS_OK once Kafka acknowledged it. */
ws_err_t eng_deadletter(struct ws_engine *e, struct pending *p, char *errbuf,
                        size_t errlen) WS_MUST_CHECK;

/* hasher.c: a build worker's hashing and compressing threads; records go in in window-stream
 * order; between begin and finish the window's stream_out is the compressor's. */
struct eng_hasher;
ws_err_t eng_hasher_new(struct eng_hasher **out, char *errbuf, size_t errlen) WS_MUST_CHECK;
void eng_hasher_destroy(struct eng_hasher *h);
void eng_hasher_begin(struct eng_hasher *h, struct ws_window *w); /* records go to w */
ws_err_t eng_hasher_add(struct eng_hasher *h, const struct ws_record *r, char *errbuf,
                        size_t errlen) WS_MUST_CHECK;
/* Every record added is in the window (or the first error): call once per begin. */
ws_err_t eng_hasher_finish(struct eng_hasher *h, char *errbuf, size_t errlen) WS_MUST_CHECK;

/* outputs.c: what the batch wrote (plain files, Iceberg snapshots), for the statement. */
struct eng_lake; /* a build worker's object reader (its own S3 client) */
ws_err_t eng_lake_new(const struct ws_config *cfg, struct eng_lake **out, char *errbuf,
                      size_t errlen) WS_MUST_CHECK;
void eng_lake_destroy(struct eng_lake *l);
struct eng_ice {
    struct ws_iceberg_result res;
    struct ws_out_file *subjects; /* res.subjects as the statement takes them */
};
struct eng_outputs {
    struct ws_output *merged; /* the statement's outputs, in the notification's order */
    size_t noutputs;
    unsigned discrepancies;     /* windowseal_output_discrepancies_total, once signed */
    struct ws_output_set plain; /* owns the plain outputs' files */
    struct eng_ice *ice;        /* owns the Iceberg outputs' objects */
    size_t nice;
};
/* lake NULL: every output is plain. A retriable error: a catalog or store is down (wait). */
ws_err_t eng_outputs_collect(struct ws_engine *e, struct eng_lake *lake,
                             const struct ws_notification *n, struct eng_outputs *o, char *errbuf,
                             size_t errlen) WS_MUST_CHECK;
void eng_outputs_free(struct eng_outputs *o);

/* build.c (eng_build_work runs it on a build worker); h NULL: hashed on the calling thread */
ws_err_t eng_build(struct ws_engine *e, struct ws_kafka_reader *r, struct eng_hasher *h,
                   struct eng_lake *lake, struct query *q, struct pending *p, char *errbuf,
                   size_t errlen) WS_MUST_CHECK;
/* Batch 0 started at the low watermark (initial_offsets=earliest): its fromOffsets resolved. */
ws_err_t eng_resolve_starts(struct ws_engine *e, struct ws_kafka_reader *r,
                            struct ws_notification *n, char *errbuf, size_t errlen) WS_MUST_CHECK;
/* Does a verified statement hold the window at this chain position (next: the head after it)? */
bool eng_extends_chain(const struct query *q, const struct pending *p, const struct ws_verified *v,
                       const struct ws_head *next);

/* publish.c */
ws_err_t eng_store(struct ws_engine *e, struct ws_sink *const *sinks, const struct query *q,
                   struct pending *p, char *errbuf, size_t errlen) WS_MUST_CHECK;
ws_err_t eng_topic_submit(struct ws_engine *e, struct query *q, struct pending *p, char *errbuf,
                          size_t errlen) WS_MUST_CHECK;
ws_err_t eng_topic_done(struct ws_engine *e, struct query *q, struct pending *p, char *errbuf,
                        size_t errlen) WS_MUST_CHECK;
ws_err_t eng_head_submit(struct ws_engine *e, struct query *q, struct pending *p, char *errbuf,
                         size_t errlen) WS_MUST_CHECK;
ws_err_t eng_head_done(struct ws_engine *e, struct query *q, struct pending *p, char *errbuf,
                       size_t errlen) WS_MUST_CHECK;
/* A batch at or behind the chain head: duplicate (ST_DONE) or conflict (ST_DEADLETTER). */
void eng_old_batch(struct ws_engine *e, struct query *q, struct pending *p);
/* openlineage: the emitter (NULL when not configured) and its counters at 0; at stop, the
 * queue's grace and the emitter after the producer (its Kafka reports). */
ws_err_t eng_lineage_new(struct ws_engine *e, char *errbuf, size_t errlen) WS_MUST_CHECK;

/* ------------------------------------------------------------------------------------------ */
/* Metrics (metrics.c): Prometheus exposition on metrics.listen. All calls accept m == NULL.    */

struct ws_metrics;
/* listen "" or NULL: a registry that is kept but not served. */
ws_err_t ws_metrics_start(const char *listen, struct ws_metrics **out, char *errbuf,
                          size_t errlen) WS_MUST_CHECK;
void ws_metrics_stop(struct ws_metrics *m);
/* labels: Prometheus label text without braces, e.g. `sink="file:/x"`; values must be escaped. */
void ws_metrics_add(struct ws_metrics *m, const char *family, const char *labels, double v);
void ws_metrics_set(struct ws_metrics *m, const char *family, const char *labels, double v);
void ws_metrics_observe(struct ws_metrics *m, const char *family, const char *labels, double v);
void ws_metrics_set_ready(struct ws_metrics *m, bool ready);

#endif /* WS_ENGINE_INTERNAL_H */
