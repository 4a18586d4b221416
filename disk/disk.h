/*
 * disk/disk.h — the local-disk layer: what the engine keeps on this machine and reads from it.
 *
 *   ws_spool_*     every window's evidence and envelope, durable on local disk before any sink
 *                  sees them (spool.c; io_uring or plain syscalls, same bytes: uring.c)
 *   ws_outputs_*   SHA-256 of the output files a notification names (outputs.c): local files,
 *                  and s3:// objects through the S3 client of sinks/ (the one dependency of
 *                  disk/ on sinks/; sinks/ uses nothing of disk/)
 *   ws_log*        the process's log lines on stderr (logging.c): here because the spool is the
 *                  lowest module that logs, and the engine and the commands log too
 *
 * Crash-injection points for the reliability tests are in disk/testhook.h (used by disk/ and
 * engine/). Thread: the engine's, unless a contract says otherwise.
 */
#ifndef WS_DISK_H
#define WS_DISK_H

#include "window/window.h"
#include "config/config.h"

/* ------------------------------------------------------------------------------------------ */
/* Spool: every window's artifacts are durable on local disk before any sink sees them.           */

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
    uint64_t writebacks; /* writebacks the kernel took ahead of an fsync (every MiB of a file) */
};
void ws_spool_get_stats(const struct ws_spool *s, struct ws_spool_stats *st);
/* Asserts the spool's bookkeeping (debug and sanitizer builds; nothing with NDEBUG). */
void ws_spool_check(const struct ws_spool *s);

/* One window's evidence file, being written (a ws_write_fn target through the LZ4 writer). */
struct ws_spool_file;
ws_err_t ws_spool_begin(struct ws_spool *s, const char *query_id, int64_t batch_id,
                        struct ws_spool_file **out, char *errbuf, size_t errlen) WS_MUST_CHECK;
ws_err_t ws_spool_write(void *spool_file, const void *buf, size_t len); /* ws_write_fn */
/* fsync + rename into place; *path (owned by the spool file) names the file. The rename is made
 * durable by the envelope's (ws_spool_put_envelope, same directory, one directory fsync). */
ws_err_t ws_spool_commit(struct ws_spool_file *f, const char **path, char *errbuf,
                         size_t errlen) WS_MUST_CHECK;
/* The bytes are complete: start the last write and the fsync without waiting (io_uring; plain
 * syscalls do both here). No write may follow; ws_spool_commit or ..._with_envelope wait. */
void ws_spool_sync_start(struct ws_spool_file *f);
/* The window's envelope beside its evidence f, both durable: the envelope written and its fsync
 * started while f's may still run; once both are durable f is renamed into place
 * (*evidence_path names it), then the envelope, then one directory fsync; if the envelope
 * cannot be written neither file appears. What ws_spool_commit + ws_spool_put_envelope do,
 * with the two fsyncs overlapping. Free f as usual afterwards, whatever the result. */
ws_err_t ws_spool_commit_with_envelope(struct ws_spool_file *f, const char *query_id,
                                       int64_t batch_id, const char *env, size_t len,
                                       const char **evidence_path, char *errbuf,
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
/* Every sink holds the window: remove its files from the spool. A file no other name links
 * may be recycled (emptied and reused for a later window: spool.c, Recycling), so nobody may
 * keep a spool path or descriptor past this call; only a hard link keeps a file as it was. */
void ws_spool_remove(struct ws_spool *s, const char *query_id, int64_t batch_id);
/* Path of a spooled object ("<spool>/<queryId>/<batch20><suffix>"); out holds 4096 bytes. */
void ws_spool_path(const struct ws_spool *s, const char *query_id, int64_t batch_id,
                   const char *suffix, char *out);

/* ------------------------------------------------------------------------------------------ */
/* Output-file digests (FORMAT.md §5 subject[1..] and outputs[].files[]).                         */

/*
 * Hash every file of n's outputs: local paths, file:// URIs and s3:// / s3a:// objects. A file
 * that cannot be read (missing, a directory, outside allowed_roots, another URI scheme, an
 * object the store answers 403 or 404 for, no S3 credentials) gets its error text, not a
 * digest: the window is still attested. files[] and their strings are malloc'ed; free with
 * ws_outputs_free. spool only decides the I/O backend for local files (io_uring when the spool
 * uses it; NULL: io_uring if the kernel allows). Objects are fetched first, all at once on one
 * curl multi handle, streamed through SHA-256; local files on the caller's thread plus at most
 * one helper thread that lives only for the call.
 *
 * Fails (out is then empty) for lack of memory, and with a retriable cause when an object
 * store is in trouble (WS_ERR_SINK_RETRY for 5xx/429, WS_ERR_TIMEOUT, WS_ERR_IO for a refused
 * or cut connection): the caller must not sign, and tries the window again later.
 *
 * ws_outputs_hash_cfg takes outputs.allowed_roots and outputs.s3 from cfg; ws_outputs_hash is
 * the same with outputs.s3 at its defaults (endpoint and region from the environment,
 * path-style addressing).
 */
struct ws_output_set {
    struct ws_output *outputs;
    size_t noutputs;
};
ws_err_t ws_outputs_hash_cfg(const struct ws_notification *n, const struct ws_config *cfg,
                             struct ws_spool *spool, struct ws_output_set *out, char *errbuf,
                             size_t errlen) WS_MUST_CHECK;
ws_err_t ws_outputs_hash(const struct ws_notification *n, const char *const *allowed_roots,
                         size_t nroots, struct ws_spool *spool, struct ws_output_set *out,
                         char *errbuf, size_t errlen) WS_MUST_CHECK;
void ws_outputs_free(struct ws_output_set *o);
/*
 * One local output file (a path or file:// URI) opened for reading under the same rules as
 * ws_outputs_hash: confined to allowed_roots when any is given (symlinks resolved, and none may
 * appear while opening), a regular file only (never blocks on a FIFO or a device). NULL with
 * *fd (blocking, the caller closes it) and *size, or the reason it cannot be read.
 */
const char *ws_outputs_open(const char *name, const char *const *allowed_roots, size_t nroots,
                            int *fd, uint64_t *size, char *why, size_t whylen);

/* ------------------------------------------------------------------------------------------ */
/* Logging: one line per event, logfmt or JSON lines, to stderr.                                  */

enum ws_log_level { WS_LOG_DEBUG, WS_LOG_INFO, WS_LOG_WARN, WS_LOG_ERROR };
void ws_log_setup(const char *level, const char *format);
/* kv is "key=value key2=value2"-style text already escaped by the caller for logfmt; msg free. */
void ws_log(enum ws_log_level lvl, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Would ws_log print at lvl? For lines that cost something to assemble. */
bool ws_log_enabled(enum ws_log_level lvl);

#endif /* WS_DISK_H */
