/*
 * engine/internal.h — private to engine/: the chain head, the spool, output-file digests and the
 * engine loop's handle. Not installed, not included outside engine/.
 */
#ifndef WS_ENGINE_INTERNAL_H
#define WS_ENGINE_INTERNAL_H

#include "engine/engine.h"

/* ------------------------------------------------------------------------------------------ */
/* Chain head (SPEC 8): what resuming a query needs, stored in the heads topic, key = query id. */

struct ws_head {
    char query_id[129];
    int64_t last_batch;
    char genesis_window_id[WS_WINDOW_ID_MAX];
    uint8_t last_root[WS_HASH_LEN];
    uint8_t last_statement_digest[WS_HASH_LEN];
    uint8_t last_sources_digest[WS_HASH_LEN];
    struct ws_merkle log; /* the window log: size = chain length */
};

/* Compact JSON for the heads topic; *out malloc'ed. */
ws_err_t ws_head_encode(const struct ws_head *h, char **out, size_t *len) WS_MUST_CHECK;
/* Strict parse: a record that is not a valid head is refused with a reason. */
ws_err_t ws_head_decode(const char *json, size_t len, struct ws_head *h, char *errbuf,
                        size_t errlen) WS_MUST_CHECK;

/* Sources digest (as ws_notification_sources_digest) of a statement's predicate.window.sources. */
ws_err_t ws_statement_sources_digest(const char *json, size_t len,
                                     uint8_t out[WS_HASH_LEN]) WS_MUST_CHECK;

/* ------------------------------------------------------------------------------------------ */
/* Spool: every window's artifacts are durable on local disk before any sink sees them.        */

enum ws_io_mode { WS_IO_AUTO, WS_IO_ON, WS_IO_OFF };

struct ws_spool;
ws_err_t ws_spool_open(const char *path, enum ws_io_mode mode, uint64_t max_bytes,
                       struct ws_spool **out, char *errbuf, size_t errlen) WS_MUST_CHECK;
void ws_spool_close(struct ws_spool *s);
bool ws_spool_uses_io_uring(const struct ws_spool *s);
/* Bytes held in the spool now, and whether intake must pause (over max_bytes, or the disk
 * refused a write since the last commit or removal). */
uint64_t ws_spool_bytes(const struct ws_spool *s);
bool ws_spool_full(const struct ws_spool *s);
/* For metrics: the bound, the state, and how often intake was paused. */
struct ws_spool_stats {
    uint64_t bytes, max_bytes;
    bool full, disk_full, io_uring;
    uint64_t pauses;         /* times the spool became full (intake paused) */
    uint64_t nospace_errors; /* writes the disk refused (ENOSPC/EDQUOT) */
};
void ws_spool_get_stats(const struct ws_spool *s, struct ws_spool_stats *st);

/* One window's evidence file, being written (a ws_write_fn target through the LZ4 writer). */
struct ws_spool_file;
ws_err_t ws_spool_begin(struct ws_spool *s, const char *query_id, int64_t batch_id,
                        struct ws_spool_file **out, char *errbuf, size_t errlen) WS_MUST_CHECK;
ws_err_t ws_spool_write(void *spool_file, const void *buf, size_t len); /* ws_write_fn */
/* fsync + rename into place; *path (owned by the spool file) names the durable file. */
ws_err_t ws_spool_commit(struct ws_spool_file *f, const char **path, char *errbuf,
                         size_t errlen) WS_MUST_CHECK;
void ws_spool_abort(struct ws_spool_file *f);
void ws_spool_file_free(struct ws_spool_file *f);
/* The envelope beside it, durable. */
ws_err_t ws_spool_put_envelope(struct ws_spool *s, const char *query_id, int64_t batch_id,
                               const char *env, size_t len, char *errbuf,
                               size_t errlen) WS_MUST_CHECK;
/*
 * Resume: a complete window in the spool (its envelope, hence its evidence, renamed into place
 * after fsync). WS_OK: out->envelope (malloc'ed, NUL-terminated) and out->evidence_path are
 * set; free with ws_spool_window_free. WS_ERR_NOT_FOUND: not there or incomplete (recompute).
 * Other errors: the file is there but unreadable or implausible (also recompute; log it). The
 * caller must verify the envelope and evidence before trusting them (ws_verify_envelope).
 */
struct ws_spool_window {
    char *envelope;
    size_t envelope_len;
    char evidence_path[4096];
    uint64_t evidence_bytes;
};
ws_err_t ws_spool_lookup(struct ws_spool *s, const char *query_id, int64_t batch_id,
                         struct ws_spool_window *out, char *errbuf, size_t errlen) WS_MUST_CHECK;
void ws_spool_window_free(struct ws_spool_window *w);
/* Every sink holds the window: remove its files from the spool. */
void ws_spool_remove(struct ws_spool *s, const char *query_id, int64_t batch_id);
/* Path of a spooled object ("<spool>/<queryId>/<batch20><suffix>"); out holds 4096 bytes. */
void ws_spool_path(const struct ws_spool *s, const char *query_id, int64_t batch_id,
                   const char *suffix, char *out);

/* ------------------------------------------------------------------------------------------ */
/* Output-file digests (SPEC 6 subject[1..] and outputs[].files[]).                             */

/*
 * Hash every file of outs[] (local paths or file:// URIs). A file that cannot be read (missing,
 * a directory, outside allowed_roots, another URI scheme) gets its error text, not a digest:
 * the window is still attested. files[] and their strings are malloc'ed; free with
 * ws_outputs_free. spool only decides the I/O backend (io_uring when the spool uses it; NULL:
 * io_uring if the kernel allows). Runs on the caller's thread plus at most one helper thread
 * that lives only for the call. Fails only for lack of memory.
 */
struct ws_output_set {
    struct ws_output *outputs;
    size_t noutputs;
};
ws_err_t ws_outputs_hash(const struct ws_notification *n, const char *const *allowed_roots,
                         size_t nroots, struct ws_spool *spool, struct ws_output_set *out,
                         char *errbuf, size_t errlen) WS_MUST_CHECK;
void ws_outputs_free(struct ws_output_set *o);

/* ------------------------------------------------------------------------------------------ */
/* The engine handle (engine.c) — used by run and demo.                                         */

struct ws_engine;
struct ws_engine_stats {
    uint64_t windows, records, bytes, deadlettered, conflicts, duplicates, gaps, retries;
    uint64_t sink_failures;
    uint64_t idle_triggers, input_rows_mismatches;
};

/* Reads the signing key and creates clients, spool and sinks; nothing is consumed yet. */
ws_err_t ws_engine_new(const struct ws_config *cfg, struct ws_engine **out, char *errbuf,
                       size_t errlen) WS_MUST_CHECK;
/* One turn: poll for a notification (up to timeout_ms) and move every window along. */
ws_err_t ws_engine_step(struct ws_engine *e, int timeout_ms) WS_MUST_CHECK;
/* Run until ws_engine_stop (async-signal-safe) then finish the window in hand. */
ws_err_t ws_engine_run(struct ws_engine *e) WS_MUST_CHECK;
void ws_engine_stop(struct ws_engine *e);
/* No window in hand: every polled notification is done and committed. */
bool ws_engine_idle(const struct ws_engine *e);
void ws_engine_get_stats(const struct ws_engine *e, struct ws_engine_stats *st);
const char *ws_engine_keyid(const struct ws_engine *e);
void ws_engine_destroy(struct ws_engine *e);

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

/* ------------------------------------------------------------------------------------------ */
/* Logging: one line per event, logfmt or JSON lines, to stderr.                                */

enum ws_log_level { WS_LOG_DEBUG, WS_LOG_INFO, WS_LOG_WARN, WS_LOG_ERROR };
void ws_log_setup(const char *level, const char *format);
/* kv is "key=value key2=value2"-style text already escaped by the caller for logfmt; msg free. */
void ws_log(enum ws_log_level lvl, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif /* WS_ENGINE_INTERNAL_H */
