/*
 * hasher.c — a build worker's two helper threads: a big window's records are hashed on one and
 * compressed on another while the build worker fetches the next ones (issue 15).
 *
 * DESIGN
 *
 *   build worker thread                         hasher thread
 *   ───────────────────                         ─────────────
 *   ws_kafka_read_ranges ─► eng_hasher_add:     ws_window_add_encoded per record: the stream
 *   each record encoded once into the chunk     digest, the Merkle tree, the order checks
 *   being filled as its window-stream frame  ┌─►
 *   (u32 length || encoding); a full chunk   │  compressor thread
 *   is handed over to both                   │  ─────────────────
 *   ─────► NCHUNKS chunks of CHUNK_BYTES ────┴─► the chunk as it is, through the window's
 *   waits only when every chunk is full         stream_out (taken over at begin): LZ4, spool
 *   (a chunk is free once both consumed it)     writes. Both wait only when no chunk is theirs
 *
 * A chunk's bytes are exactly the window-stream frames of its records, which is what the window
 * would hand its stream_out record by record, so the compressor takes them whole and the
 * evidence is the same bytes as the one-thread path's (tests/test_engine_hasher.c compares
 * them); the stream digest and the tree still come from the hasher, which validates every
 * record. LZ4 costs about what the hashing does (a perf profile of bench_window put it at 55%
 * of the one hasher thread), so the two now overlap instead of adding up.
 *
 * Memory is bounded by NCHUNKS x CHUNK_BYTES per build worker whatever the window's size; the
 * order of records is the order they were added (each consumer takes chunks in order), so the
 * window's bytes are exactly those of the one-thread path (ws_window_add on the build
 * worker), which small windows keep: for them a handover costs more than it saves
 * (eng_build decides, HASHER_MIN_RECORDS). A record too big for a chunk is added on the build
 * worker itself, with the window's own output, once both threads have caught up, so order
 * still holds.
 *
 * Errors: the first error of either thread is kept (err, why; h->why is written once, before
 * err is published under the mutex) and ends the window: add returns it at its next handover,
 * finish after both drained what was handed over (an evidence that took records the window
 * then refused is never used: the window fails). Thread: one build worker uses one hasher;
 * begin..finish brackets one window at a time; between begin and finish the window's output
 * is the compressor's alone, the window itself the hasher's (and the build worker's only once
 * both are idle).
 */
#include "engine/internal.h"

#include <assert.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK_BYTES (128u << 10)
#define NCHUNKS 4
_Static_assert((NCHUNKS & (NCHUNKS - 1)) == 0, "chunk ring index is masked");

struct chunk {
    uint8_t *buf; /* [u32 length][record encoding] ... */
    size_t len;
};

struct eng_hasher {
    pthread_t thread, zthread; /* the hasher, the compressor */
    bool zstarted;
    pthread_mutex_t mu;
    pthread_cond_t ready; /* a chunk was handed over, or quit (both threads wait on it) */
    pthread_cond_t freed; /* a chunk was consumed by one of them */
    struct chunk ring[NCHUNKS];
    /* chunks handed over: [tail, head) to hash, [ztail, head) to compress; filling:
     * ring[head % NCHUNKS], reset by the build worker when it takes a slot both let go of */
    unsigned head, tail, ztail;
    bool quit;
    struct ws_window *w; /* the window of the current begin..finish */
    ws_write_fn out;     /* its stream_out, taken over by the compressor (NULL: none) */
    void *out_opaque;
    ws_err_t err; /* first error of the window */
    char why[512];
};

static void set_err(struct eng_hasher *h, ws_err_t err, const char *why)
{
    if (!h->err) {
        h->err = err;
        snprintf(h->why, sizeof h->why, "%s", why && *why ? why : ws_strerror(err));
    }
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* One chunk into the window, on the hasher thread; the mutex is not held. */
static ws_err_t feed(struct ws_window *w, const struct chunk *c, char *why, size_t whylen)
{
    size_t at = 0;

    while (at < c->len) {
        size_t n = get32(c->buf + at);
        ws_err_t err;

        assert(at + 4 + n <= c->len);
        if ((err = ws_window_add_encoded(w, c->buf + at + 4, n, why, whylen)))
            return err;
        at += 4 + n;
    }
    return WS_OK;
}

/* One chunk into the evidence, on the compressor thread; the mutex is not held. */
static ws_err_t compress(ws_write_fn out, void *opaque, const struct chunk *c, char *why,
                         size_t whylen)
{
    ws_err_t err = out(opaque, c->buf, c->len);

    if (err)
        snprintf(why, whylen, "window stream output failed: %s", ws_strerror(err));
    return err;
}

/* Either thread's loop: take the chunks at *tail in order until quit. */
static void consume(struct eng_hasher *h, unsigned *tail, bool zip)
{
    char why[512];

    pthread_mutex_lock(&h->mu);
    for (;;) {
        struct chunk *c;
        ws_err_t err = WS_OK;

        while (*tail == h->head && !h->quit)
            pthread_cond_wait(&h->ready, &h->mu);
        if (*tail == h->head)
            break; /* quit, nothing left */
        c = &h->ring[*tail % NCHUNKS];
        /* after an error the rest of the window is only drained */
        if (!h->err && (!zip || h->out)) {
            struct ws_window *w = h->w;
            ws_write_fn out = h->out;
            void *opaque = h->out_opaque;
            pthread_mutex_unlock(&h->mu);
            why[0] = '\0';
            err = zip ? compress(out, opaque, c, why, sizeof why) : feed(w, c, why, sizeof why);
            pthread_mutex_lock(&h->mu);
            if (err)
                set_err(h, err, why);
        }
        (*tail)++;
        pthread_cond_signal(&h->freed);
    }
    pthread_mutex_unlock(&h->mu);
}

static void *run(void *arg)
{
    struct eng_hasher *h = arg;

    consume(h, &h->tail, false);
    return NULL;
}

static void *zrun(void *arg)
{
    struct eng_hasher *h = arg;

    consume(h, &h->ztail, true);
    return NULL;
}

/* Chunks not yet let go of by both threads. */
static unsigned in_use(const struct eng_hasher *h)
{
    unsigned a = h->head - h->tail, b = h->head - h->ztail; /* the lagging thread decides */

    return a > b ? a : b;
}

ws_err_t eng_hasher_new(struct eng_hasher **out, char *errbuf, size_t errlen)
{
    struct eng_hasher *h = calloc(1, sizeof *h);

    *out = NULL;
    if (!h)
        return ws_fail(WS_ERR_NOMEM, errbuf, errlen, "out of memory for a hasher");
    for (unsigned i = 0; i < NCHUNKS; i++)
        if (!(h->ring[i].buf = malloc(CHUNK_BYTES))) {
            while (i--)
                free(h->ring[i].buf);
            free(h);
            return ws_fail(WS_ERR_NOMEM, errbuf, errlen, "out of memory for hasher chunks");
        }
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->ready, NULL);
    pthread_cond_init(&h->freed, NULL);
    if (pthread_create(&h->thread, NULL, run, h) != 0) {
        for (unsigned i = 0; i < NCHUNKS; i++)
            free(h->ring[i].buf);
        pthread_mutex_destroy(&h->mu);
        pthread_cond_destroy(&h->ready);
        pthread_cond_destroy(&h->freed);
        free(h);
        return ws_fail(WS_ERR_NOMEM, errbuf, errlen, "cannot start a hasher thread");
    }
    if (pthread_create(&h->zthread, NULL, zrun, h) != 0) {
        eng_hasher_destroy(h);
        return ws_fail(WS_ERR_NOMEM, errbuf, errlen, "cannot start a compressor thread");
    }
    h->zstarted = true;
    /* "ws:hash", "ws:lz4": what `top -H`, perf and gdb show (best effort) */
    (void)pthread_setname_np(h->thread, "ws:hash");
    (void)pthread_setname_np(h->zthread, "ws:lz4");
    *out = h;
    return WS_OK;
}

void eng_hasher_destroy(struct eng_hasher *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->mu);
    h->quit = true;
    pthread_cond_broadcast(&h->ready);
    pthread_mutex_unlock(&h->mu);
    pthread_join(h->thread, NULL);
    if (h->zstarted)
        pthread_join(h->zthread, NULL);
    for (unsigned i = 0; i < NCHUNKS; i++)
        free(h->ring[i].buf);
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->ready);
    pthread_cond_destroy(&h->freed);
    free(h);
}

void eng_hasher_begin(struct eng_hasher *h, struct ws_window *w)
{
    pthread_mutex_lock(&h->mu);
    assert(h->tail == h->head && h->ztail == h->head &&
           h->ring[h->head % NCHUNKS].len == 0); /* finish drained it */
    h->w = w;
    ws_window_swap_output(w, NULL, NULL, &h->out, &h->out_opaque); /* the compressor's now */
    h->err = WS_OK;
    h->why[0] = '\0';
    pthread_mutex_unlock(&h->mu);
}

/* Hand the chunk being filled over (if it holds anything) and, with wait_all, wait until the
 * hasher consumed everything; else wait only for a free chunk to fill next. */
static ws_err_t hand_over(struct eng_hasher *h, bool wait_all)
{
    ws_err_t err;

    pthread_mutex_lock(&h->mu);
    if (h->ring[h->head % NCHUNKS].len) {
        h->head++;
        pthread_cond_broadcast(&h->ready);
    }
    while (wait_all ? (h->tail != h->head || h->ztail != h->head) : in_use(h) == NCHUNKS)
        pthread_cond_wait(&h->freed, &h->mu);
    h->ring[h->head % NCHUNKS].len = 0; /* both let go of it: ours to fill */
    err = h->err;
    pthread_mutex_unlock(&h->mu);
    return err;
}

ws_err_t eng_hasher_add(struct eng_hasher *h, const struct ws_record *r, char *errbuf,
                        size_t errlen)
{
    size_t len = ws_record_encoded_size(r);
    struct chunk *c;
    ws_err_t err;

    /* the hasher's errors are seen at the next handover (once a chunk): the window fails then */
    if (len + 4 > CHUNK_BYTES) {
        /* bigger than a chunk: added here, after everything before it was hashed */
        if ((err = hand_over(h, true)))
            return ws_fail(err, errbuf, errlen, "%s", h->why);
        /* both threads idle: the window and its output are ours for this record */
        ws_window_swap_output(h->w, h->out, h->out_opaque, NULL, NULL);
        err = ws_window_add(h->w, r, errbuf, errlen);
        ws_window_swap_output(h->w, NULL, NULL, NULL, NULL);
        return err;
    }
    c = &h->ring[h->head % NCHUNKS]; /* ours to fill: the hasher never reads ring[head] */
    if (c->len + 4 + len > CHUNK_BYTES) {
        if ((err = hand_over(h, false)))
            return ws_fail(err, errbuf, errlen, "%s", h->why);
        c = &h->ring[h->head % NCHUNKS];
        assert(c->len == 0);
    }
    if (ws_record_encode(r, c->buf + c->len + 4, len) != len)
        return ws_fail(WS_ERR_INVALID, errbuf, errlen,
                       "record has an invalid length, pointer or timestamp type");
    put32(c->buf + c->len, (uint32_t)len);
    c->len += 4 + len;
    return WS_OK;
}

ws_err_t eng_hasher_finish(struct eng_hasher *h, char *errbuf, size_t errlen)
{
    ws_err_t err = hand_over(h, true);

    pthread_mutex_lock(&h->mu);
    if (h->w)
        ws_window_swap_output(h->w, h->out, h->out_opaque, NULL, NULL); /* the window's again */
    h->w = NULL;
    h->out = NULL;
    h->out_opaque = NULL;
    h->ring[h->head % NCHUNKS].len = 0; /* an error may have left a chunk half filled */
    pthread_mutex_unlock(&h->mu);
    if (err)
        return ws_fail(err, errbuf, errlen, "%s", h->why);
    return WS_OK;
}
