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
 *
 * The S3 client (ws_s3_*, at the end) is the s3 sink's own request layer made public, so that
 * every reader of an object store (output hashing in disk/, the auditor in cli/, the Iceberg
 * reader) signs, addresses and fails the same way; it needs nothing of the sinks above.
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
    /* The spool file holding an envelope, or NULL. A sink may take the file itself (the file
     * sink hard-links it) only after checking that it holds exactly `envelope`. */
    const char *envelope_path;
    /* The query's checkpoint after this window (name "<queryId>/checkpoint"), or NULL. A sink
     * that takes it with the window (ws_sink_takes_checkpoint) replaces it once the window's
     * objects are in place, durable with them through one directory fsync, and never when the
     * window was refused; into the others the engine puts it (ws_sink_put) after publishing. */
    const char *checkpoint_name;
    const char *checkpoint;
    size_t checkpoint_len;
};

/* What the engine lends every sink it creates; a sink takes what its type needs. */
struct ws_sink_ctx {
    struct ws_kafka_producer *producer; /* reports to ws_kafka_delivery_report */
    const char *topic;                  /* the attestations topic */
    /* How long the topic sink waits for one delivery report; 0: 120 s (tests make it short). */
    int64_t delivery_wait_ms;
    /* The file sink writes through io_uring (the process's spool.io_uring decision, taken when
     * the spool opened); false, or a ring the kernel refuses: plain syscalls, same bytes. */
    bool io_uring;
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
    /* publish writes ws_artifact.checkpoint with the window's objects (the engine then does not
     * put it separately). */
    bool publishes_checkpoint;
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
/* ws_sink_publish writes the artifact's checkpoint too (ws_artifact.checkpoint): the file sink. */
bool ws_sink_takes_checkpoint(const struct ws_sink *s);

/*
 * Durable file write used by the file sink and the spool: write to a temporary name in the same
 * directory, fsync, rename into place, fsync the directory. Creates parent directories.
 */
ws_err_t ws_file_write_atomic(const char *path, const void *data, size_t len, char *errbuf,
                              size_t errlen) WS_MUST_CHECK;

/* ------------------------------------------------------------------------------------------ */
/* S3 client (s3client.c): objects by URI, for every reader of an object store.                  */

/*
 * One client reads objects of any bucket of one S3-compatible service: the s3 sink writes
 * through it, the engine hashes s3:// output files with it (disk/outputs.c), the auditor reads
 * a bucket prefix with it (cli/), and an Iceberg reader fetches metadata, manifests and data
 * files with it. It owns one curl multi handle (connections are kept and reused between calls)
 * and the credentials; signing is SigV4 by curl (CURLOPT_AWS_SIGV4, x-amz-content-sha256 set),
 * held against botocore by tests/test_sinks_s3.c. Nothing here retries: every failure comes
 * back as a ws_err_t whose ws_err_retriable() class says whether trying later can help.
 *
 * Thread: a client is used by one thread at a time; different clients are independent.
 */
struct ws_s3_client; /* opaque */

struct ws_s3_settings {
    /* "http://127.0.0.1:4569", "https://minio.example:9000" (a path is kept as a base path).
     * NULL or "": $AWS_ENDPOINT_URL_S3, else $AWS_ENDPOINT_URL, else
     * https://s3.<region>.amazonaws.com. */
    const char *endpoint;
    /* SigV4 region. NULL or "": $AWS_REGION, else $AWS_DEFAULT_REGION, else us-east-1. */
    const char *region;
    bool path_style;        /* http://host/bucket/key; false: http://bucket.host/key (a DNS name) */
    bool insecure_tls;      /* do not verify the endpoint's certificate (tests, private CAs) */
    int64_t timeout_ms;     /* per request, whole transfer; 0: 30000 */
    unsigned max_parallel;  /* requests in flight at once in ws_s3_get_many; 0: 16 */
    unsigned list_max_keys; /* keys per ListObjectsV2 page (max-keys); 0: the store's (1000) */
    /* Credentials given explicitly (an Iceberg catalog's vended ones): used as they are. All
     * NULL: $AWS_ACCESS_KEY_ID, $AWS_SECRET_ACCESS_KEY, $AWS_SESSION_TOKEN. Copied at create
     * and wiped at destroy; they never reach an error message. */
    const char *access_key_id, *secret_access_key, *session_token;
};

/*
 * Create a client. WS_ERR_CONFIG with the reason: no credentials, an endpoint that is not an
 * http(s) URL (or carries user:password or a query), a bad region, virtual-hosted style with
 * an IP address. WS_ERR_NOMEM.
 */
ws_err_t ws_s3_client_new(const struct ws_s3_settings *st, struct ws_s3_client **out, char *errbuf,
                          size_t errlen) WS_MUST_CHECK;
void ws_s3_client_destroy(struct ws_s3_client *c);
/* The endpoint and region in use ("http://127.0.0.1:4569", "us-east-1"), for messages. */
const char *ws_s3_client_endpoint(const struct ws_s3_client *c);
const char *ws_s3_client_region(const struct ws_s3_client *c);

/*
 * "s3://bucket/key" or "s3a://bucket/key" (also "s3n://") into bucket (cap bytes) and *key (a
 * pointer into uri, not decoded: S3 keys are the bytes after the bucket's slash; "" for
 * "s3://bucket" and "s3://bucket/", which name a bucket or prefix root, not an object). false
 * with a reason in why (static text) for another scheme or a bucket name that is not 1-63 of
 * [A-Za-z0-9._-].
 */
bool ws_s3_uri_parse(const char *uri, char *bucket, size_t cap, const char **key, const char **why);
/* The URI names an object store ("s3://", "s3a://", "s3n://"). */
bool ws_s3_uri_is_s3(const char *uri);

/*
 * Body callback: bytes of the object in order, as they arrive (never the whole object at once).
 * Return WS_OK to go on; anything else aborts the transfer and becomes that GET's err.
 */
typedef ws_err_t (*ws_s3_data_fn)(void *ud, const void *data, size_t len);

/* One GET of ws_s3_get_many: fill the inputs, read the outputs after the call. */
struct ws_s3_get {
    /* in */
    const char *uri;          /* "s3://b/k" or "s3a://b/k"; or NULL and: */
    const char *bucket, *key; /* the object, key not encoded */
    ws_s3_data_fn on_data;    /* NULL: the body is counted and dropped */
    void *ud;
    uint64_t max_bytes; /* 0: no limit; more: err WS_ERR_TOO_LARGE, transfer aborted */
    /* out */
    ws_err_t err;    /* WS_OK: 2xx and the whole body went through on_data */
    long status;     /* HTTP status; 0 if there was no response */
    char code[64];   /* the store's <Code> ("NoSuchKey"), "" if none */
    uint64_t bytes;  /* body bytes handed to on_data */
    char error[600]; /* with err: "s3 GET s3://b/k: HTTP 404 NoSuchKey: ...", sanitized */
};

/*
 * Run every GET of gets[0..n), up to max_parallel at once on the client's multi handle; return
 * when all have finished. Each GET's outcome is its own err:
 *   WS_ERR_NOT_FOUND     404 NoSuchKey (or a 404 without an S3 code)
 *   WS_ERR_PERMISSION    401, 403 (AccessDenied, SignatureDoesNotMatch)
 *   WS_ERR_SINK_PERMANENT  other 3xx/4xx (400, 404 NoSuchBucket, 301 PermanentRedirect)
 *   WS_ERR_TOO_LARGE     413, or more than max_bytes
 *   WS_ERR_INVALID       a URI or key that cannot be addressed ('.'/'..' segments, no key)
 *   retriable: WS_ERR_TIMEOUT (timeout, 408, RequestTimeout), WS_ERR_IO (connection refused or
 *   reset, resolver, a body cut short), WS_ERR_SINK_RETRY (5xx, 429, SlowDown), WS_ERR_NOMEM
 *   or whatever on_data returned.
 * The call itself fails only if the multi handle does (retriable) or for lack of memory.
 */
ws_err_t ws_s3_get_many(struct ws_s3_client *c, struct ws_s3_get *gets, size_t n, char *errbuf,
                        size_t errlen) WS_MUST_CHECK;
/* One object streamed through on_data; its err is returned, with its error text in errbuf. */
ws_err_t ws_s3_get_stream(struct ws_s3_client *c, const char *uri, ws_s3_data_fn on_data, void *ud,
                          uint64_t *bytes, char *errbuf, size_t errlen) WS_MUST_CHECK;
/* One object into memory, at most max bytes (WS_ERR_TOO_LARGE beyond); *buf is malloc'ed and
 * NUL-terminated (metadata JSON, envelopes, checkpoints). */
ws_err_t ws_s3_get_buf(struct ws_s3_client *c, const char *uri, size_t max, char **buf, size_t *len,
                       char *errbuf, size_t errlen) WS_MUST_CHECK;

/*
 * ListObjectsV2 of bucket under prefix, every page (continuation tokens) in key order. With
 * delimiter "/" the keys below the next '/' come once each as a common prefix (is_prefix true,
 * size 0). fn returning anything but WS_OK stops the listing with that error. Errors as for a
 * GET (WS_ERR_NOT_FOUND is NoSuchBucket here, WS_ERR_MALFORMED a listing that does not parse).
 */
typedef ws_err_t (*ws_s3_list_fn)(void *ud, const char *key, uint64_t size, bool is_prefix);
ws_err_t ws_s3_list(struct ws_s3_client *c, const char *bucket, const char *prefix,
                    const char *delimiter, ws_s3_list_fn fn, void *ud, char *errbuf,
                    size_t errlen) WS_MUST_CHECK;

#endif /* WS_SINK_H */
