/*
 * uring.c — a thin layer over liburing: slot allocation that never fails, waiting that also
 * submits, an in-flight count so abort paths can drain before freeing buffers, and the single
 * place where -errno from the ring becomes a ws_err_t. Callers keep their own per-request state
 * in user_data. Each ring belongs to one thread.
 */
#include "disk/uring.h"

#include <errno.h>
#include <string.h>

int ws_uring_init(struct ws_uring *u, unsigned entries)
{
    memset(u, 0, sizeof *u);
    return io_uring_queue_init(entries, &u->ring, 0);
}

void ws_uring_exit(struct ws_uring *u)
{
    ws_uring_drain(u);
    io_uring_queue_exit(&u->ring);
}

struct io_uring_sqe *ws_uring_sqe(struct ws_uring *u)
{
    struct io_uring_sqe *sqe;
    int rc;

    while (!(sqe = io_uring_get_sqe(&u->ring))) {
        /* Submitting frees the queued slots once the kernel has taken them. */
        rc = io_uring_submit(&u->ring);
        if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY)
            return NULL;
    }
    u->inflight++;
    return sqe;
}

int ws_uring_wait(struct ws_uring *u, struct io_uring_cqe **cqe)
{
    int rc;

    *cqe = NULL;
    for (;;) {
        rc = io_uring_submit_and_wait(&u->ring, u->inflight ? 1 : 0);
        if (rc == -EINTR)
            continue;
        if (rc < 0)
            return rc;
        if (!u->inflight)
            return 0;
        rc = io_uring_peek_cqe(&u->ring, cqe);
        if (rc == 0 && *cqe)
            return 0;
    }
}

struct io_uring_cqe *ws_uring_peek(struct ws_uring *u)
{
    struct io_uring_cqe *cqe = NULL;

    if (io_uring_peek_cqe(&u->ring, &cqe) < 0)
        return NULL;
    return cqe;
}

void ws_uring_seen(struct ws_uring *u, struct io_uring_cqe *cqe)
{
    io_uring_cqe_seen(&u->ring, cqe);
    if (u->inflight)
        u->inflight--;
}

void ws_uring_drain(struct ws_uring *u)
{
    struct io_uring_cqe *cqe;

    while (u->inflight) {
        if (ws_uring_wait(u, &cqe) < 0 || !cqe)
            break; /* the ring is broken: nothing more will complete */
        ws_uring_seen(u, cqe);
    }
}
