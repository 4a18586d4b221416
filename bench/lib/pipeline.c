/*
 * pipeline.c — a minimal attester's read, built from the public parts only: what the work of a
 * window takes on this machine when nothing but the work runs, as a second floor beside the
 * work floor (work.c), which adds the stages up as if they overlapped perfectly.
 *
 *   caller's thread                          hash thread             LZ4 thread
 *   ───────────────                          ───────────             ──────────
 *   two librdkafka consumers (ranges taken   ws_window_add_encoded   ws_evidence_write of the
 *   in turn), every range assigned at once,  per frame: stream       chunk as it is: the window
 *   prefetch unbounded; records taken in     digest, Merkle tree,    stream's LZ4 frame, into
 *   window order, each encoded once as its   order checks       ┌──► memory (counted only)
 *   frame into the chunk being filled:  ───► ◄──────────────────┘
 *   NCHUNK chunks of CHUNK bytes, reused once both threads let go of one
 *
 * Two consumers, because each has a broker thread of its own decoding its fetch replies: on the
 * 120 k window that took it from 0.51-0.55 of kcat to 0.62-0.73 (one against two, alternated
 * runs; four were no better than two on 2 cores). The engine's reader, bounded, gained nothing
 * from a second consumer in an experiment not kept (0.53-0.57 against 0.49-0.56, its next range
 * assigned from the start or not): what it fetches ahead, not who decodes it, holds it there.
 *
 * It is the engine's shape for a big window (engine/hasher.c) with everything else taken away:
 * no notification to poll, no watermark queries, no bound on what librdkafka fetches ahead but
 * queued.min.messages = 1 M records and the default 64 MiB a partition, beyond any window here
 * (the engine's reader holds about 16 k records in one consumer, for its memory target), no spool (the evidence is
 * only counted), no statement, signature, sink, chain head or commit. So an engine built on
 * these parts cannot be expected to beat it here; how far the engine is behind it is what the
 * engine's own overhead costs, and where it lands against a ratio target says whether that
 * target is within reach of this design on this machine at all. It is not a proof for every
 * design, as the work floor is; it is a measurement of one that does the least.
 *
 * The digests it computes are checked against the engine's by the benches (a pipeline that
 * hashed other bytes would measure nothing). Records with headers are refused: the benches
 * produce none, and the point is the speed of the common path.
 * Thread: one caller at a time (read_range's message array is static); the two threads live
 * as long as the pipeline does.
 */
#include "bench/lib/benchlib.h"
#include "window/window.h"

#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define CHUNK (128u << 10)    /* the engine's chunk (engine/hasher.c) */
#define NCHUNK 8              /* twice the engine's four: the pipeline is not held to its memory */
#define BATCHN 1024           /* messages taken from a partition queue at once */
#define OUT_BLOCK (64u << 10) /* the engine's evidence output block */
#define NCONS 2 /* consumers: each has a broker thread of its own to decode its fetch replies */
_Static_assert((NCHUNK & (NCHUNK - 1)) == 0, "the chunk ring index wraps as an unsigned count");

struct chunk {
    uint8_t *buf; /* frames: u32 length || record encoding */
    size_t len;
};

struct bench_pipe {
    rd_kafka_t *rks[NCONS]; /* range i of a read is fetched by rks[i % NCONS] */
    pthread_t th[2];        /* [0] hashes, [1] compresses */
    pthread_mutex_t mu;
    pthread_cond_t ready, freed;
    struct chunk ring[NCHUNK];
    unsigned head, tail[2]; /* handed over: [tail[k], head); being filled: ring[head % NCHUNK] */
    bool quit;
    struct ws_window *w;
    struct ws_evidence_writer *ew;
    int failed; /* a thread's error: the window's result is not used (the caller dies) */
    uint64_t evidence_bytes;
};

/* Client errors (a broker down...), served by rd_kafka_poll while a range waits: said at once. */
static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)rk;
    (void)opaque;
    fprintf(stderr, "%s: minimal pipeline: %s: %s\n", bench_prog,
            rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

static ws_err_t count_out(void *opaque, const void *buf, size_t len)
{
    (void)buf;
    *(uint64_t *)opaque += len;
    return WS_OK;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* One chunk into the window (k 0) or the evidence (k 1); the mutex is not held. */
static bool consume_one(struct bench_pipe *p, int k, const struct chunk *c)
{
    char eb[256];
    size_t at = 0;

    if (k == 1)
        return ws_evidence_write(p->ew, c->buf, c->len) == WS_OK;
    while (at < c->len) {
        size_t n = (size_t)c->buf[at] << 24 | (size_t)c->buf[at + 1] << 16 |
                   (size_t)c->buf[at + 2] << 8 | c->buf[at + 3];
        if (ws_window_add_encoded(p->w, c->buf + at + 4, n, eb, sizeof eb) != WS_OK) {
            fprintf(stderr, "%s: minimal pipeline: %s\n", bench_prog, eb);
            return false;
        }
        at += 4 + n;
    }
    return true;
}

static void *run(void *arg, int k)
{
    struct bench_pipe *p = arg;

    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->tail[k] == p->head && !p->quit)
            pthread_cond_wait(&p->ready, &p->mu);
        if (p->tail[k] == p->head)
            break;
        struct chunk *c = &p->ring[p->tail[k] % NCHUNK];
        bool skip = p->failed; /* after an error the rest is only drained */
        pthread_mutex_unlock(&p->mu);
        bool ok = skip || consume_one(p, k, c);
        pthread_mutex_lock(&p->mu);
        if (!ok)
            p->failed = 1;
        p->tail[k]++;
        pthread_cond_signal(&p->freed);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static void *run_hash(void *arg)
{
    return run(arg, 0);
}

static void *run_lz4(void *arg)
{
    return run(arg, 1);
}

/* Chunks a thread has not let go of yet: the one further behind decides. */
static unsigned in_use(const struct bench_pipe *p)
{
    unsigned a = p->head - p->tail[0], b = p->head - p->tail[1];

    return a > b ? a : b;
}

/* Hand the chunk being filled over; wait for a free one, or (all) for both threads to finish. */
static void hand_over(struct bench_pipe *p, bool all)
{
    pthread_mutex_lock(&p->mu);
    if (p->ring[p->head % NCHUNK].len) {
        p->head++;
        pthread_cond_broadcast(&p->ready);
    }
    while (all ? (p->tail[0] != p->head || p->tail[1] != p->head) : in_use(p) == NCHUNK)
        pthread_cond_wait(&p->freed, &p->mu);
    p->ring[p->head % NCHUNK].len = 0;
    pthread_mutex_unlock(&p->mu);
}

static void add(struct bench_pipe *p, const struct ws_record *r)
{
    size_t len = ws_record_encoded_size(r);
    struct chunk *c = &p->ring[p->head % NCHUNK];

    if (len + 4 > CHUNK)
        bench_die("minimal pipeline", "a record bigger than a chunk");
    if (c->len + 4 + len > CHUNK) {
        hand_over(p, false);
        c = &p->ring[p->head % NCHUNK];
    }
    if (ws_record_encode(r, c->buf + c->len + 4, len) != len)
        bench_die("minimal pipeline", "record encoding failed");
    put32(c->buf + c->len, (uint32_t)len);
    c->len += 4 + len;
}

struct bench_pipe *bench_pipe_new(const char *boot)
{
    static const char *const kv[][2] = {
        {"group.id", "bench-pipe"},       {"enable.auto.commit", "false"},
        {"enable.partition.eof", "true"}, {"auto.offset.reset", "error"},
        {"fetch.wait.max.ms", "1"},       {"queued.min.messages", "1000000"},
        {"socket.nagle.disable", "true"}, {"isolation.level", "read_uncommitted"},
    };
    struct bench_pipe *p = calloc(1, sizeof *p);
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    char err[512];

    if (!p || !c)
        bench_die("minimal pipeline", "out of memory");
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++)
        if (rd_kafka_conf_set(c, kv[i][0], kv[i][1], err, sizeof err) != RD_KAFKA_CONF_OK)
            bench_die("minimal pipeline", err);
    if (rd_kafka_conf_set(c, "bootstrap.servers", boot, err, sizeof err) != RD_KAFKA_CONF_OK)
        bench_die("minimal pipeline", err);
    rd_kafka_conf_set_error_cb(c, on_error);
    for (int k = 0; k < NCONS; k++) {
        rd_kafka_conf_t *cc = rd_kafka_conf_dup(c);
        if (!(p->rks[k] = rd_kafka_new(RD_KAFKA_CONSUMER, cc, err, sizeof err)))
            bench_die("minimal pipeline", err);
    }
    rd_kafka_conf_destroy(c);
    for (int i = 0; i < NCHUNK; i++)
        if (!(p->ring[i].buf = malloc(CHUNK)))
            bench_die("minimal pipeline", "out of memory");
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->ready, NULL);
    pthread_cond_init(&p->freed, NULL);
    if (pthread_create(&p->th[0], NULL, run_hash, p) || pthread_create(&p->th[1], NULL, run_lz4, p))
        bench_die("minimal pipeline", "cannot start its threads");
    (void)pthread_setname_np(p->th[0], "pipe:hash");
    (void)pthread_setname_np(p->th[1], "pipe:lz4");
    return p;
}

void bench_pipe_destroy(struct bench_pipe *p)
{
    pthread_mutex_lock(&p->mu);
    p->quit = true;
    pthread_cond_broadcast(&p->ready);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->th[0], NULL);
    pthread_join(p->th[1], NULL);
    for (int i = 0; i < NCHUNK; i++)
        free(p->ring[i].buf);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->ready);
    pthread_cond_destroy(&p->freed);
    for (int k = 0; k < NCONS; k++)
        rd_kafka_destroy(p->rks[k]);
    free(p);
}

/* Deliver range g (its own queue q) in offset order into the chunks. */
static uint64_t read_range(struct bench_pipe *p, rd_kafka_t *rk, const char *topic,
                           rd_kafka_queue_t *q, const struct bench_range *g)
{
    static rd_kafka_message_t *msgs[BATCHN];
    int64_t last = g->from - 1;
    uint16_t tlen = (uint16_t)strlen(topic);
    uint64_t got = 0;
    bool done = g->from >= g->until;
    double deadline = bench_now_ms() + 60e3;

    while (!done) {
        ssize_t n = rd_kafka_consume_batch_queue(q, 1, msgs, BATCHN);

        if (n < 0)
            bench_die("minimal pipeline", rd_kafka_err2str(rd_kafka_last_error()));
        if (n > 0)
            deadline = bench_now_ms() + 60e3;
        else if (rd_kafka_poll(rk, 0), bench_now_ms() > deadline)
            bench_die("minimal pipeline", "no record for 60 s");
        for (ssize_t k = 0; k < n; k++) {
            rd_kafka_message_t *m = msgs[k];
            rd_kafka_headers_t *hs;
            rd_kafka_timestamp_type_t tt;

            if (!done && m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                done = m->offset >= g->until; /* a gap at the end (control records) */
            } else if (!done && m->err) {
                bench_die("minimal pipeline", rd_kafka_message_errstr(m));
            } else if (!done && m->offset > last && m->offset < g->until) {
                struct ws_record r = {.topic = topic,
                                      .topic_len = tlen,
                                      .partition = g->part,
                                      .offset = m->offset,
                                      .key = m->key,
                                      .key_len = m->key ? (int32_t)m->key_len : -1,
                                      .value = m->payload,
                                      .value_len = m->payload ? (int32_t)m->len : -1};
                if (rd_kafka_message_headers(m, &hs) != RD_KAFKA_RESP_ERR__NOENT)
                    bench_die("minimal pipeline", "a record with headers (not handled)");
                r.timestamp = rd_kafka_message_timestamp(m, &tt);
                r.ts_type = tt == RD_KAFKA_TIMESTAMP_CREATE_TIME       ? 1
                            : tt == RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME ? 2
                                                                       : 0;
                if (!r.ts_type)
                    r.timestamp = -1;
                add(p, &r);
                got++;
                last = m->offset;
                done = last == g->until - 1;
            }
            rd_kafka_message_destroy(m);
        }
    }
    return got;
}

double bench_pipe_read(struct bench_pipe *p, const char *topic, const struct bench_range *rg, int n,
                       struct bench_pipe_result *out)
{
    rd_kafka_topic_partition_list_t *tpls[NCONS];
    rd_kafka_queue_t **pq = calloc((size_t)(n > 0 ? n : 1), sizeof *pq);
    struct ws_window_result res;
    double t0, c0;

    if (!pq)
        bench_die("minimal pipeline", "out of memory");
    for (int k = 0; k < NCONS; k++)
        if (!(tpls[k] = rd_kafka_topic_partition_list_new(n)))
            bench_die("minimal pipeline", "out of memory");
    memset(out, 0, sizeof *out);
    p->evidence_bytes = 0;
    p->failed = 0;
    if (!(p->ew = ws_evidence_writer_new(count_out, &p->evidence_bytes, OUT_BLOCK)) ||
        !(p->w = ws_window_new(NULL, NULL)))
        bench_die("minimal pipeline", "out of memory");
    for (int i = 0; i < n; i++) {
        if (i > 0 && rg[i].part <= rg[i - 1].part)
            bench_die("minimal pipeline", "ranges not in window order");
        if (ws_window_add_source(p->w, topic, rg[i].part, rg[i].from, rg[i].until) != WS_OK)
            bench_die("minimal pipeline", "bad range");
    }
    t0 = bench_now_ms();
    c0 = bench_cpu_seconds(RUSAGE_SELF);
    for (int i = 0; i < n; i++) { /* each partition's records wait in a queue of their own */
        if (!(pq[i] = rd_kafka_queue_get_partition(p->rks[i % NCONS], topic, rg[i].part)))
            bench_die("minimal pipeline", "no partition queue");
        rd_kafka_queue_forward(pq[i], NULL);
        rd_kafka_topic_partition_list_add(tpls[i % NCONS], topic, rg[i].part)->offset = rg[i].from;
    }
    for (int k = 0; k < NCONS; k++)
        if (rd_kafka_assign(p->rks[k], tpls[k]) != RD_KAFKA_RESP_ERR_NO_ERROR)
            bench_die("minimal pipeline", "assign failed");
    for (int i = 0; i < n; i++)
        out->records += read_range(p, p->rks[i % NCONS], topic, pq[i], &rg[i]);
    hand_over(p, true);
    if (p->failed || ws_window_finish(p->w, &res) != WS_OK || ws_evidence_finish(p->ew) != WS_OK)
        bench_die("minimal pipeline", "the window or its evidence failed");
    double t = (bench_now_ms() - t0) / 1e3;
    out->cpu_s = bench_cpu_seconds(RUSAGE_SELF) - c0;
    memcpy(out->stream_digest, res.stream_digest, sizeof out->stream_digest);
    memcpy(out->root, res.root, sizeof out->root);
    out->evidence_bytes = p->evidence_bytes;
    for (int k = 0; k < NCONS; k++) {
        rd_kafka_assign(p->rks[k], NULL);
        rd_kafka_topic_partition_list_destroy(tpls[k]);
    }
    for (int i = 0; i < n; i++)
        rd_kafka_queue_destroy(pq[i]);
    free(pq);
    ws_window_destroy(p->w);
    ws_evidence_writer_destroy(p->ew);
    p->w = NULL;
    p->ew = NULL;
    return t;
}
