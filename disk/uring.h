/*
 * disk/uring.h — private to disk/: the small io_uring layer shared by the spool (writes)
 * and output-file digests (reads).
 *
 * One ring per thread that uses it (rings are not shared across threads). Errors come back from
 * the ring as -errno and are mapped to ws_err_t by the one mapping (ws_errno_err /
 * ws_errno_local, config/files.c), so callers never compare errno values themselves. Whether io_uring is used at all is decided once per process
 * by the spool (spool.io_uring auto|on|off); everything else follows that decision.
 */
#ifndef WS_DISK_URING_H
#define WS_DISK_URING_H

#include "window/window.h"

#include <liburing.h>

struct ws_uring {
    struct io_uring ring;
    unsigned inflight; /* submitted or queued requests whose completion is not yet reaped */
};

/* Set up a ring with `entries` submission slots; 0 or -errno (the kernel's refusal). */
int ws_uring_init(struct ws_uring *u, unsigned entries);
void ws_uring_exit(struct ws_uring *u);

/*
 * A submission slot: when the queue is full, what is queued is submitted first. The caller
 * fills it and the request counts as in flight from here on. NULL only if the ring is broken
 * (submit failed): callers treat that as an I/O error.
 */
struct io_uring_sqe *ws_uring_sqe(struct ws_uring *u);

/*
 * Submit what is queued and wait for at least one completion (if any is in flight); *cqe is
 * the next completion, to be released with ws_uring_seen. 0 or -errno (submit failure).
 */
int ws_uring_wait(struct ws_uring *u, struct io_uring_cqe **cqe);
/* The next completion if one is ready, else NULL; nothing is submitted or waited for. */
struct io_uring_cqe *ws_uring_peek(struct ws_uring *u);
void ws_uring_seen(struct ws_uring *u, struct io_uring_cqe *cqe);

/* Wait out everything in flight, ignoring results (abort paths: buffers are about to go). */
void ws_uring_drain(struct ws_uring *u);

/* A failed completion's -errno maps to ws_err_t with ws_errno_err / ws_errno_local (config.h). */

#endif /* WS_DISK_URING_H */
