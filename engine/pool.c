/*
 * pool.c — the engine's worker threads: windows are built (records re-read, hashed, spooled,
 * sealed) and stored (every object store) off the engine thread, so a big window or a store
 * 50 ms away delays its own windows, not the process (Fluent Bit's output workers).
 *
 * DESIGN
 *
 * One pool type, two pools (engine.c): the build workers (engine.build_workers, each with its
 * own Kafka range reader) and the store workers (engine.max_windows_in_flight, each with its
 * own instance of every configured object store). What a worker owns and does is a const
 * vtable (struct eng_work: open its resources, run one window, close), defined beside the
 * stage it runs (build.c, publish.c); this file only moves windows between threads. A sink
 * instance or a reader is used by one thread only (sinks/sink.h, kafka/kafka.h), so an S3
 * sink's curl handles and connections belong to its worker and are reused window after window.
 *
 * The engine thread hands a window over with eng_pool_submit and takes it back finished from
 * eng_pool_done; in between the window is the worker's alone — the engine thread reads neither
 * its stage-dependent fields nor writes any of them, and its query does not move (within a
 * query one window is past its turn at a time, in batch order, so each store's checkpoint
 * only moves forward and each window links to the head before it).
 *
 * What a worker may touch: the pending window it was handed (never its stage or queue link:
 * the engine thread reads those), its query's id and current head (stable while the window is
 * out: only the window's own completion moves them), the engine's read-only configuration and
 * keys, the spool (thread-safe: disk/spool.c), metrics and logging (both thread-safe).
 * Everything else — stats, queues, offsets, the producer — stays with the engine thread, which
 * applies a finished window's results when it takes it back.
 *
 * Handover is one mutex per pool: a FIFO of jobs the workers wait on (condition variable) and a
 * FIFO of finished jobs the engine thread polls without blocking; a finished job also wakes the
 * engine thread's wait on the notifications consumer (ws_kafka_consumer_wake), so it is taken
 * back at once rather than at the next poll timeout.
 */
#include "engine/internal.h"
#include "disk/testhook.h"

#include <assert.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct worker {
    struct eng_pool *pool;
    pthread_t thread;
    bool started;
    void *ctx; /* what work->open made for this worker: sinks, a reader */
};

struct job {
    struct query *q;
    struct pending *p;
    struct job *next;
};

struct eng_pool {
    struct ws_engine *e;
    const struct eng_work *work;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct job *todo, **todo_tail;
    struct job *done, **done_tail;
    unsigned busy; /* handed over and not yet taken back */
    unsigned nworkers;
    bool quit;
    struct worker *w;
};

static void push(struct job ***tail, struct job *j)
{
    j->next = NULL;
    **tail = j;
    *tail = &j->next;
}

static struct job *pop(struct job **head, struct job ***tail)
{
    struct job *j = *head;

    if (j && !(*head = j->next))
        *tail = head;
    return j;
}

static void *run(void *arg)
{
    struct worker *w = arg;
    struct eng_pool *pl = w->pool;

    pthread_mutex_lock(&pl->mu);
    for (;;) {
        struct job *j;

        while (!pl->todo && !pl->quit)
            pthread_cond_wait(&pl->cv, &pl->mu);
        if (!(j = pop(&pl->todo, &pl->todo_tail)))
            break; /* quit, nothing left */
        pthread_mutex_unlock(&pl->mu);
        j->p->job_why[0] = '\0';
        j->p->job_err =
            pl->work->run(pl->e, w->ctx, j->q, j->p, j->p->job_why, sizeof j->p->job_why);
        pthread_mutex_lock(&pl->mu);
        push(&pl->done_tail, j);
        /* the engine thread may be waiting on the notifications: it takes the window back now */
        if (pl->e->consumer)
            ws_kafka_consumer_wake(pl->e->consumer);
    }
    pthread_mutex_unlock(&pl->mu);
    return NULL;
}

/* "ws:build0", "ws:store1": what `top -H`, perf and gdb show (at most 15 bytes; best effort). */
static void name_thread(pthread_t t, const char *what, unsigned i)
{
    char name[16];

    snprintf(name, sizeof name, "ws:%.6s%u", what, i);
    (void)pthread_setname_np(t, name);
}

ws_err_t eng_pool_new(struct ws_engine *e, const struct eng_work *work, unsigned nworkers,
                      struct eng_pool **out, char *errbuf, size_t errlen)
{
    struct eng_pool *pl = calloc(1, sizeof *pl);
    ws_err_t err = WS_OK;

    assert(nworkers >= 1);
    if (!pl || !(pl->w = calloc(nworkers, sizeof *pl->w))) {
        free(pl);
        return ws_fail(WS_ERR_NOMEM, errbuf, errlen, "out of memory for %u %s workers", nworkers,
                       work->name);
    }
    pl->e = e;
    pl->work = work;
    pl->todo_tail = &pl->todo;
    pl->done_tail = &pl->done;
    pthread_mutex_init(&pl->mu, NULL);
    pthread_cond_init(&pl->cv, NULL);
    pl->nworkers = nworkers;
    *out = pl;
    for (unsigned i = 0; i < nworkers; i++) {
        struct worker *w = &pl->w[i];
        w->pool = pl;
        if ((err = work->open(e, &w->ctx, errbuf, errlen)))
            return err;
        if (pthread_create(&w->thread, NULL, run, w) != 0)
            return ws_fail(WS_ERR_NOMEM, errbuf, errlen, "cannot start %s worker %u", work->name,
                           i);
        w->started = true;
        name_thread(w->thread, work->name, i);
    }
    return WS_OK;
}

bool eng_pool_submit(struct eng_pool *pl, struct query *q, struct pending *p)
{
    struct job *j;

    if (pl->busy >= pl->nworkers || !(j = calloc(1, sizeof *j)))
        return false;
    j->q = q;
    j->p = p;
    pthread_mutex_lock(&pl->mu);
    push(&pl->todo_tail, j);
    pl->busy++;
    pthread_cond_signal(&pl->cv);
    pthread_mutex_unlock(&pl->mu);
    return true;
}

struct pending *eng_pool_done(struct eng_pool *pl, struct query **q)
{
    struct pending *p = NULL;
    struct job *j;

    if (!pl || !pl->busy)
        return NULL;
    pthread_mutex_lock(&pl->mu);
    if ((j = pop(&pl->done, &pl->done_tail)))
        pl->busy--;
    pthread_mutex_unlock(&pl->mu);
    if (j) {
        *q = j->q;
        p = j->p;
        free(j);
    }
    return p;
}

unsigned eng_pool_busy(const struct eng_pool *pl)
{
    return pl ? pl->busy : 0;
}

bool eng_pool_full(const struct eng_pool *pl)
{
    return !pl || pl->busy >= pl->nworkers;
}

void eng_pool_destroy(struct eng_pool *pl)
{
    if (!pl)
        return;
    pthread_mutex_lock(&pl->mu);
    pl->quit = true;
    pthread_cond_broadcast(&pl->cv);
    pthread_mutex_unlock(&pl->mu);
    for (unsigned i = 0; i < pl->nworkers; i++) {
        if (pl->w[i].started)
            pthread_join(pl->w[i].thread, NULL);
        if (pl->w[i].ctx)
            pl->work->close(pl->w[i].ctx);
    }
    for (struct job *j; (j = pop(&pl->todo, &pl->todo_tail));)
        free(j);
    for (struct job *j; (j = pop(&pl->done, &pl->done_tail));)
        free(j);
    pthread_mutex_destroy(&pl->mu);
    pthread_cond_destroy(&pl->cv);
    free(pl->w);
    free(pl);
}
