/*
 * hasher.c — a build worker's second thread: a big window's records are hashed and compressed
 * on one core while the build worker fetches the next ones on the other (issue 15).
 *
 * DESIGN
 *
 *   build worker thread                         hasher thread
 *   ───────────────────                         ─────────────
 *   ws_kafka_read_ranges ─► eng_hasher_add:     ws_window_add_encoded per record: the stream
 *   each record encoded once into the chunk     digest, the Merkle tree, and (through the
 *   being filled; a full chunk is handed over   window's stream_out) LZ4 and the spool writes
 *   ─────► NCHUNKS chunks of CHUNK_BYTES ─────►
 *   waits only when every chunk is full         waits only when none is
 *
 * Memory is bounded by NCHUNKS x CHUNK_BYTES per build worker whatever the window's size; the
 * order of records is the order they were added (chunks are consumed in order, one consumer),
 * so the window's bytes are exactly those of the one-thread path (ws_window_add on the build
 * worker), which small windows keep: for them a handover costs more than it saves
 * (eng_build decides, HASHER_MIN_RECORDS). A record too big for a chunk is added on the build
 * worker itself once the hasher has caught up, so order still holds.
 *
 * Errors: the hasher's first error is kept (err, why; h->why is written once, before err is
 * published under the mutex) and ends the window: add returns it at its next handover, finish
 * after the hasher drained what was handed over. Thread: one build worker uses one hasher;
 * begin..finish brackets one window at a time.
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
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t ready; /* a chunk was handed over, or quit */
    pthread_cond_t freed; /* a chunk was consumed */
    struct chunk ring[NCHUNKS];
    unsigned head, tail; /* chunks handed over: [tail, head); filling: ring[head % NCHUNKS] */
    bool quit;
    struct ws_window *w; /* the window of the current begin..finish */
    ws_err_t err;        /* first error of the window */
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

static void *run(void *arg)
{
    struct eng_hasher *h = arg;
    char why[512];

    pthread_mutex_lock(&h->mu);
    for (;;) {
        struct chunk *c;
        ws_err_t err = WS_OK;

        while (h->tail == h->head && !h->quit)
            pthread_cond_wait(&h->ready, &h->mu);
        if (h->tail == h->head)
            break; /* quit, nothing left */
        c = &h->ring[h->tail % NCHUNKS];
        if (!h->err) { /* after an error the rest of the window is only drained */
            struct ws_window *w = h->w;
            pthread_mutex_unlock(&h->mu);
            why[0] = '\0';
            err = feed(w, c, why, sizeof why);
            pthread_mutex_lock(&h->mu);
            if (err)
                set_err(h, err, why);
        }
        c->len = 0;
        h->tail++;
        pthread_cond_signal(&h->freed);
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
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
    *out = h;
    return WS_OK;
}

void eng_hasher_destroy(struct eng_hasher *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->mu);
    h->quit = true;
    pthread_cond_signal(&h->ready);
    pthread_mutex_unlock(&h->mu);
    pthread_join(h->thread, NULL);
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
    assert(h->tail == h->head && h->ring[h->head % NCHUNKS].len == 0); /* finish drained it */
    h->w = w;
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
        pthread_cond_signal(&h->ready);
    }
    while (wait_all ? h->tail != h->head : h->head - h->tail == NCHUNKS)
        pthread_cond_wait(&h->freed, &h->mu);
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
        return ws_window_add(h->w, r, errbuf, errlen);
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
    h->w = NULL;
    h->ring[h->head % NCHUNKS].len = 0; /* an error may have left a chunk half filled */
    pthread_mutex_unlock(&h->mu);
    if (err)
        return ws_fail(err, errbuf, errlen, "%s", h->why);
    return WS_OK;
}
