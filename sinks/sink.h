/*
 * sinks/sink.h — where attestations go (SPEC 9), behind one small const vtable.
 *
 * A sink is `const struct ws_sink_ops` (name + callbacks, designated initialisers) and an
 * instance whose first member points at its ops. Sinks answer OK, retriable or permanent
 * (ws_err_retriable) and never retry on their own: the engine owns retries, backoff and the
 * decision to stop a query's chain.
 *
 * Write-once: publishing an object that already exists with identical bytes is success; with
 * other bytes it is WS_ERR_EXISTS_DIFFERENT (permanent) and the engine decides (SPEC 9).
 *
 * Threads: one thread per sink instance (the engine's).
 */
#ifndef WS_SINK_H
#define WS_SINK_H

#include "window/window.h"
#include "config/config.h"

struct ws_kafka_producer;

/* One window's artifacts, durable in the spool before any sink sees them. */
struct ws_artifact {
    const char *query_id;
    int64_t batch_id;
    const char *window_id;
    const char *envelope; /* DSSE JSON */
    size_t envelope_len;
    const char *evidence_path; /* spool file holding the LZ4 evidence archive */
};

struct ws_sink;

struct ws_sink_ops {
    const char *name;
    ws_err_t (*create)(const struct ws_sink_conf *conf, struct ws_kafka_producer *producer,
                       const char *topic, struct ws_sink **out, char *errbuf, size_t errlen);
    /* Make the artifact durable in the sink; returns once it is (or failed). */
    ws_err_t (*publish)(struct ws_sink *s, const struct ws_artifact *a, char *errbuf,
                        size_t errlen);
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

struct ws_sink {
    const struct ws_sink_ops *ops; /* first member of every instance */
    char label[64];                /* "file:/path", "kafka:topic", for logs and metrics */
};

extern const struct ws_sink_ops ws_sink_file_ops;
extern const struct ws_sink_ops ws_sink_kafka_ops;
extern const struct ws_sink_ops ws_sink_s3_ops;

/* Look up ops by type name ("file", "s3", "kafka"); NULL if unknown. */
const struct ws_sink_ops *ws_sink_lookup(const char *type);

/*
 * Delivery state of one produced message. Every message the engine produces carries a
 * struct ws_delivery as its cookie, and ws_delivery_report is the producer's report callback.
 */
struct ws_delivery {
    bool done;
    ws_err_t err;
    char reason[256];
};
void ws_delivery_report(void *app_opaque, void *cookie, ws_err_t err, const char *reason);

/* Convenience wrappers that dispatch through the vtable. */
ws_err_t ws_sink_create(const struct ws_sink_conf *conf, struct ws_kafka_producer *producer,
                        const char *topic, struct ws_sink **out, char *errbuf,
                        size_t errlen) WS_MUST_CHECK;
ws_err_t ws_sink_publish(struct ws_sink *s, const struct ws_artifact *a, char *errbuf,
                         size_t errlen) WS_MUST_CHECK;
ws_err_t ws_sink_get(struct ws_sink *s, const char *name, char **buf, size_t *len, char *errbuf,
                     size_t errlen) WS_MUST_CHECK;
/* WS_OK without doing anything for sinks that hold no mutable objects. */
ws_err_t ws_sink_put(struct ws_sink *s, const char *name, const void *data, size_t len,
                     char *errbuf, size_t errlen) WS_MUST_CHECK;
void ws_sink_destroy(struct ws_sink *s);

/*
 * Durable file write used by the file sink and the spool: write to a temporary name in the same
 * directory, fsync, rename into place, fsync the directory. Creates parent directories.
 */
ws_err_t ws_file_write_atomic(const char *path, const void *data, size_t len, char *errbuf,
                              size_t errlen) WS_MUST_CHECK;
/* mkdir -p with mode 0755. */
ws_err_t ws_mkdirs(const char *path, char *errbuf, size_t errlen) WS_MUST_CHECK;

#endif /* WS_SINK_H */
