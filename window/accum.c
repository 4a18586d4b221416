/*
 * accum.c — the window accumulator (struct ws_window): one pass over a window's records, in
 * window-stream order, producing everything the statement needs about them.
 *
 * Per record, after checking it is where it may be:
 *   frame = u32 length || encoding            (FORMAT.md §3)
 *   stream digest  <- frame                    (one running SHA-256)
 *   Merkle tree    <- leaf(encoding)           (compact range, O(log n) memory)
 *   stream_out     <- frame                    (the evidence writer, optional)
 *   source stats   <- recordCount, bytes (= encoding length), min/max timestamp
 *
 * Where a record may be: inside a declared source range [from, until) and strictly after the
 * previous record in (topic bytes, partition, offset) order. Sources are kept sorted by
 * (topic bytes, partition) from the moment they are declared (sorted insert, so duplicates are
 * refused on the spot; the engine declares them already sorted, which makes every insert an
 * append). Because records arrive in the same order, the source of the previous record is a
 * cursor: the next record is in that source or in a later one, found by binary search over the
 * sources after the cursor. A record never costs O(nsources).
 *
 * Memory does not grow with the window: one batch buffer (16 KiB, or the largest frame seen)
 * receives each record's frame, encoded in place; the leaf is hashed from there, and the stream
 * digest takes whole batches (far fewer, larger SHA-256 updates: the same bytes, the same
 * digest). A rejected record is encoded past the batch's end and never counted: it changes no
 * state, so the caller may report it and carry on or abandon the window.
 *
 * Multi-lane hashing (the engine decided at ws_window_new, see "Lane choice" below): the hashes
 * are independent chains run side by side in lanes (sha256_mb.c) instead of one after the
 * other. Leaves are collected in groups of 1 << glog records (8 for SHA-NI's three lanes, 64
 * for AVX-512's sixteen; their frames stay in the batch buffer); a group that starts at a leaf
 * index divisible by its size is a perfect subtree, so its root can be built level by level and
 * pushed into the compact range as one entry. Each lane run takes, side by side: the new
 * group's leaves and one level of every older group still climbing (a software pipeline: level
 * 1 of the previous group, level 2 of the one before...), and the stream digest's complete
 * 64-byte blocks so far (one block job on a raw state: a single chain; under SHA-NI it is one
 * more lane, the long one; under AVX-512 it goes to OpenSSL's multi-block routine just before
 * the lanes, since one chain in one of sixteen lanes leaves the rest idle). Unaligned or short
 * groups (after a drain) fall back to adding leaf hashes one by one. Buffered work is bounded:
 * one group of frames plus under 64 stream bytes, and the climbing levels' hashes; everything
 * is drained before the buffer is reused and at finish. Results are byte-identical on every
 * engine (tests/test_window_accum.c and tests/test_window_sha256mb.c run each one).
 *
 * Lane choice: which engine is fastest depends on the CPU model (SHA-NI lanes win on AMD Zen;
 * on Intel Emerald Rapids SHA-NI is throughput-bound and AVX-512 lanes win), so the first
 * window of the process calibrates: two synthetic windows (512 records of 100-byte values, 64 of
 * 1 KiB) on every engine the CPU has, five rounds in rotating order, best round each, thread CPU
 * time; ~3.5 ms. The engine with the lowest time relative to one lane's, summed over both sizes,
 * is taken; one whose root or digest differs from one lane's never is. ws_window_lanes_force
 * overrides the choice, ws_sha256_mb_enable(false) turns lanes off; ws_window_lanes_describe
 * gives the one line for the log.
 */
#include "window/window.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Frames are hashed into the stream digest in batches of this size: one SHA-256 update per
 * 154-byte frame measured 10-30 ns per record slower than 16 KiB updates (bench_merkle). */
#define BATCH (16 * 1024)
/*
 * Leaves per lane group: a perfect subtree of height glog, per engine. A run should fill the
 * lanes: SHA-NI's three take 8 leaves, 7 climbing nodes and the stream; AVX-512's sixteen take
 * 64 leaves and 63 climbing nodes (~20 steps, 99.4% of lane slots busy, measured), the stream
 * going to OpenSSL just before them, since its one chain would leave 15 of 16 lanes idle.
 */
#define GROUP_LOG_MAX 6
#define GROUP_MAX (1u << GROUP_LOG_MAX)
#define GROUP(w) (1u << (w)->glog)

struct ws_window {
    ws_write_fn out;
    void *opaque;
    struct ws_sha256 stream;
    struct ws_merkle tree;

    struct ws_window_source *src; /* sorted by (topic bytes, partition), no duplicates */
    size_t *topic_len;            /* parallel to src: strlen of each topic */
    size_t nsrc, capsrc;

    bool started;  /* a record has been accepted: cur/last are meaningful */
    size_t cur;    /* source of the previous record */
    int64_t last;  /* offset of the previous record */
    bool finished; /* digest finalised; no more records or sources */
    uint8_t digest[WS_HASH_LEN];

    uint8_t *buf; /* batch: frames accepted but not yet in the stream digest, then scratch */
    size_t bufcap;
    size_t pending; /* bytes of buf waiting for the stream digest */

    uint64_t bytes;
    bool has_time;
    int64_t ts_min, ts_max;

    /* multi-lane mode only */
    bool mb;
    enum ws_sha256_lanes lanes; /* engine for leaves and nodes */
    enum ws_sha256_lanes slane; /* the stream's blocks: = lanes (one more lane), or apart */
    unsigned glog;              /* leaves per group: 1 << glog */
    uint32_t sstate[8];         /* stream digest state over buf's bytes before sdone */
    uint64_t stotal;            /* bytes in the stream digest's state */
    size_t sdone;               /* buf[0..sdone) is in sstate; buf[sdone..pending) is not */
    size_t leaf_off[GROUP_MAX], leaf_len[GROUP_MAX]; /* frames of the leaves not hashed yet */
    unsigned nleaf;
    uint8_t lvl[GROUP_LOG_MAX + 1][GROUP_MAX][WS_HASH_LEN]; /* hashes climbing: lvl[l] = level l */
    unsigned nlvl[GROUP_LOG_MAX + 1];
    uint64_t climbing; /* leaves represented in lvl[] */
};

/* ------------------------------------------------------------------------------------------ */
/* Lane choice: measured once per process                                                        */

/*
 * The calibration windows: 512 records of 100-byte values (150-byte encodings, as the bench's
 * hashing row) and 64 records of 1 KiB values, run on each engine in turn (a different order
 * each round), five rounds, best round kept per engine and size. Two sizes, because which
 * engine wins moves with the record size: on AMD Zen 4 SHA-NI x3 beats AVX-512 x16 by 5-20% at
 * 100 B but 40-50% at 1 KiB, and on a noisy host (a busy neighbour on the SHA unit) the 100 B
 * figures alone picked AVX-512 there; on Intel Emerald Rapids AVX-512 wins at 100 B by 40%
 * and SHA-NI is 2-6% ahead at 1 KiB (bench/README.md). The score is the sum over both sizes of
 * the engine's time relative to one lane's, lowest wins: each size counts the same, whatever
 * its length. About 0.1-0.2 ms a pass here, 3.2-3.9 ms in all for three engines
 * (ws_window_lanes_describe reports it), once per process. Thread CPU time, not wall time: a
 * pass preempted on a busy machine must not lose.
 */
#define CAL_ROUNDS 5
#define CAL_SIZES 2
static const struct {
    int records, value;
} cal_size[CAL_SIZES] = {{512, 100}, {64, 1024}};
#define CAL_VALUE_MAX 1024

static pthread_once_t cal_once = PTHREAD_ONCE_INIT;
static struct ws_window_lanes_info cal; /* written once, under cal_once */
static atomic_int forced = WS_LANES_AUTO;

static struct ws_window *window_new(ws_write_fn stream_out, void *opaque, enum ws_sha256_lanes e);

static double seconds(clockid_t clk)
{
    struct timespec t;

    clock_gettime(clk, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* One calibration window of n records of vlen-byte values (value holds 2 x vlen) on engine e:
 * CPU seconds, or -1 if anything failed. */
static double cal_pass(enum ws_sha256_lanes e, const uint8_t *value, int n, int vlen,
                       uint8_t root[WS_HASH_LEN], uint8_t digest[WS_HASH_LEN])
{
    struct ws_window *w = window_new(NULL, NULL, e);
    struct ws_window_result res;
    double t;
    char key[8];
    bool ok;

    if (!w)
        return -1;
    ok = ws_window_add_source(w, "lanes0", 0, 0, n) == WS_OK;
    t = seconds(CLOCK_THREAD_CPUTIME_ID);
    for (int64_t i = 0; ok && i < n; i++) {
        struct ws_record r = {.topic = "lanes0",
                              .topic_len = 6,
                              .offset = i,
                              .timestamp = 1700000000000 + i,
                              .ts_type = 1,
                              .key = key,
                              .key_len = sizeof(key),
                              .value = value + (i * 37) % vlen,
                              .value_len = (size_t)vlen};
        memcpy(key, &i, sizeof(key));
        ok = ws_window_add(w, &r, NULL, 0) == WS_OK;
    }
    ok = ok && ws_window_finish(w, &res) == WS_OK;
    t = seconds(CLOCK_THREAD_CPUTIME_ID) - t;
    if (ok) {
        memcpy(root, res.root, WS_HASH_LEN);
        memcpy(digest, res.stream_digest, WS_HASH_LEN);
    }
    ws_window_destroy(w);
    return ok ? t : -1;
}

static void calibrate(void)
{
    static uint8_t value[2 * CAL_VALUE_MAX];
    uint8_t root[CAL_SIZES][WS_LANES_COUNT][WS_HASH_LEN];
    uint8_t digest[CAL_SIZES][WS_LANES_COUNT][WS_HASH_LEN];
    double best[CAL_SIZES][WS_LANES_COUNT] = {{0}}, t0 = seconds(CLOCK_MONOTONIC);
    double score[WS_LANES_COUNT] = {0};

    for (size_t i = 0; i < sizeof(value); i++)
        value[i] = (uint8_t)((i * 2654435761u) >> 13);
    for (int round = 0; round < CAL_ROUNDS; round++) {
        /* each round in another order, so no engine always follows the same neighbour (whose
         * after-effects, e.g. a busy sibling thread's SHA unit, it would otherwise inherit) */
        for (int k = 0; k < WS_LANES_COUNT * CAL_SIZES; k++) {
            int e = (round + k) % WS_LANES_COUNT, z = k / WS_LANES_COUNT;
            uint8_t r[WS_HASH_LEN], d[WS_HASH_LEN];
            double t;
            if (!ws_sha256_lanes_supported((enum ws_sha256_lanes)e))
                continue;
            t = cal_pass((enum ws_sha256_lanes)e, value, cal_size[z].records, cal_size[z].value, r,
                         d);
            if (t <= 0)
                continue;
            if (best[z][e] == 0 || t < best[z][e])
                best[z][e] = t;
            memcpy(root[z][e], r, WS_HASH_LEN);
            memcpy(digest[z][e], d, WS_HASH_LEN);
        }
    }
    /* An engine whose root or digest differs from the one-lane reference at either size is
     * never chosen: the choice can only change the speed. */
    cal.chosen = WS_LANES_ONE;
    for (int e = 0; e < WS_LANES_COUNT; e++) {
        bool agree = true;
        for (int z = 0; z < CAL_SIZES; z++) {
            agree = agree && best[z][e] > 0 && best[z][WS_LANES_ONE] > 0 &&
                    memcmp(root[z][e], root[z][WS_LANES_ONE], WS_HASH_LEN) == 0 &&
                    memcmp(digest[z][e], digest[z][WS_LANES_ONE], WS_HASH_LEN) == 0;
            score[e] += agree ? best[z][e] / best[z][WS_LANES_ONE] : 0;
        }
        cal.rate[e] = agree ? cal_size[0].records / best[0][e] : 0;
        cal.rate_1k[e] = agree ? cal_size[1].records / best[1][e] : 0;
        cal.score[e] = agree ? score[e] : 0;
        if (agree && score[e] < score[cal.chosen])
            cal.chosen = (enum ws_sha256_lanes)e;
    }
    cal.measured = true;
    cal.calib_ms = (seconds(CLOCK_MONOTONIC) - t0) * 1e3;
}

/* The engine for a new window: lanes off, else the override, else the measured fastest. */
static enum ws_sha256_lanes lanes_now(void)
{
    int f = atomic_load(&forced);

    if (!ws_sha256_mb_available())
        return WS_LANES_ONE;
    if (f != WS_LANES_AUTO)
        return (enum ws_sha256_lanes)f;
    pthread_once(&cal_once, calibrate);
    return cal.chosen;
}

void ws_window_lanes(struct ws_window_lanes_info *info)
{
    enum ws_sha256_lanes now = lanes_now();

    memset(info, 0, sizeof(*info));
    if (ws_sha256_mb_available()) {
        pthread_once(&cal_once, calibrate);
        *info = cal;
    }
    info->measured = info->measured && now == cal.chosen && atomic_load(&forced) == WS_LANES_AUTO;
    info->chosen = ws_sha256_lanes_supported(now) ? now : WS_LANES_ONE;
}

enum ws_sha256_lanes ws_window_lanes_describe(char *buf, size_t len)
{
    struct ws_window_lanes_info in;
    size_t n;
    int k;

    ws_window_lanes(&in);
    if (!buf || !len)
        return in.chosen;
    k = snprintf(buf, len, "hash lanes: %s (%s", ws_sha256_lanes_name(in.chosen),
                 in.measured                             ? "fastest measured, 100 B / 1 KiB values"
                 : atomic_load(&forced) != WS_LANES_AUTO ? "forced"
                 : ws_sha256_mb_available()              ? "measured choice overridden"
                                                         : "lanes off or none on this CPU");
    for (int e = 0; e < WS_LANES_COUNT; e++) {
        n = k < 0 ? len : (size_t)k;
        if (n < len && in.rate[e] > 0)
            k += snprintf(buf + n, len - n, "; %s %.2f / %.2f M rec/s",
                          ws_sha256_lanes_name((enum ws_sha256_lanes)e), in.rate[e] / 1e6,
                          in.rate_1k[e] / 1e6);
    }
    n = k < 0 ? len : (size_t)k;
    if (n < len)
        snprintf(buf + n, len - n, in.rate[0] > 0 ? "; calibration %.1f ms)" : ")", in.calib_ms);
    return in.chosen;
}

enum ws_sha256_lanes ws_window_lanes_force(enum ws_sha256_lanes e)
{
    if ((unsigned)e > WS_LANES_AUTO)
        e = WS_LANES_AUTO;
    return (enum ws_sha256_lanes)atomic_exchange(&forced, (int)e);
}

static struct ws_window *window_new(ws_write_fn stream_out, void *opaque, enum ws_sha256_lanes e)
{
    struct ws_window *w = calloc(1, sizeof(*w));

    if (!w)
        return NULL;
    w->out = stream_out;
    w->opaque = opaque;
    w->lanes = ws_sha256_lanes_supported(e) ? e : WS_LANES_ONE;
    w->mb = w->lanes != WS_LANES_ONE;
    w->glog = w->lanes == WS_LANES_AVX512 ? 6 : 3;
    /* Under AVX-512 the stream's one chain would hold a lane while the others run dry: it goes
     * apart, to OpenSSL's multi-block routine (SHA-NI inside where the CPU has it; measured a
     * little faster than our one SHA-NI lane, which reloads the state every block). */
    w->slane = w->lanes == WS_LANES_AVX512 ? WS_LANES_ONE : w->lanes;
    ws_sha256_state_init(w->sstate);
    ws_sha256_init(&w->stream);
    ws_merkle_init(&w->tree);
    return w;
}

void ws_window_swap_output(struct ws_window *w, ws_write_fn out, void *opaque, ws_write_fn *old_out,
                           void **old_opaque)
{
    if (old_out)
        *old_out = w->out;
    if (old_opaque)
        *old_opaque = w->opaque;
    w->out = out;
    w->opaque = opaque;
}

struct ws_window *ws_window_new(ws_write_fn stream_out, void *opaque)
{
    return window_new(stream_out, opaque, lanes_now());
}

void ws_window_destroy(struct ws_window *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->nsrc; i++)
        free(w->src[i].topic);
    free(w->src);
    free(w->topic_len);
    free(w->buf);
    free(w);
}

/* (topic bytes, partition) of a record against source i: <0, 0, >0. */
static int cmp_source(const struct ws_window *w, size_t i, const char *topic, size_t tlen,
                      int32_t partition)
{
    size_t slen = w->topic_len[i];
    size_t n = tlen < slen ? tlen : slen;
    int c = n ? memcmp(topic, w->src[i].topic, n) : 0;

    if (c)
        return c;
    if (tlen != slen)
        return tlen < slen ? -1 : 1;
    if (partition != w->src[i].partition)
        return partition < w->src[i].partition ? -1 : 1;
    return 0;
}

/* First source in [lo, hi) not less than (topic, partition). */
static size_t lower_bound(const struct ws_window *w, size_t lo, size_t hi, const char *topic,
                          size_t tlen, int32_t partition)
{
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cmp_source(w, mid, topic, tlen, partition) > 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

ws_err_t ws_window_add_source(struct ws_window *w, const char *topic, int32_t partition,
                              int64_t from, int64_t until)
{
    size_t tlen, pos;
    char *copy;

    if (!w || !topic || w->started || w->finished)
        return WS_ERR_INVALID;
    tlen = strlen(topic);
    if (tlen == 0 || tlen > UINT16_MAX || partition < 0 || from < 0 || until < 0 || from > until)
        return WS_ERR_INVALID;
    pos = lower_bound(w, 0, w->nsrc, topic, tlen, partition);
    if (pos < w->nsrc && cmp_source(w, pos, topic, tlen, partition) == 0)
        return WS_ERR_INVALID; /* duplicate (topic, partition) */
    if (w->nsrc == w->capsrc) {
        size_t cap = w->capsrc ? 2 * w->capsrc : 8;
        struct ws_window_source *s = realloc(w->src, cap * sizeof(*s));
        if (!s)
            return WS_ERR_NOMEM;
        w->src = s;
        size_t *l = realloc(w->topic_len, cap * sizeof(*l));
        if (!l)
            return WS_ERR_NOMEM;
        w->topic_len = l;
        w->capsrc = cap;
    }
    copy = strdup(topic);
    if (!copy)
        return WS_ERR_NOMEM;
    memmove(&w->src[pos + 1], &w->src[pos], (w->nsrc - pos) * sizeof(*w->src));
    memmove(&w->topic_len[pos + 1], &w->topic_len[pos], (w->nsrc - pos) * sizeof(size_t));
    w->src[pos] = (struct ws_window_source){
        .topic = copy, .partition = partition, .from_offset = from, .until_offset = until};
    w->topic_len[pos] = tlen;
    w->nsrc++;
    return WS_OK;
}

/* Topic for an error message: at most 96 bytes, control bytes shown as '?'. */
static void printable(const char *topic, size_t len, char out[100])
{
    size_t n = len < 96 ? len : 96, i;

    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)topic[i];
        out[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    if (n < len)
        out[i++] = '.', out[i++] = '.', out[i++] = '.';
    out[i] = '\0';
}

/*
 * Where record r goes: the index of its declared source, after checking it sorts strictly after
 * the previous record and its offset lies in the source's range. Changes nothing.
 */
static ws_err_t locate(const struct ws_window *w, const struct ws_record *r, size_t *idx,
                       char *errbuf, size_t errlen)
{
    size_t i, from = 0;
    char t[100];
    int c;

    if (w->started) {
        c = cmp_source(w, w->cur, r->topic, r->topic_len, r->partition);
        if (c < 0 || (c == 0 && r->offset <= w->last)) {
            char pt[100];
            const struct ws_window_source *p = &w->src[w->cur];
            printable(r->topic, r->topic_len, t);
            printable(p->topic, w->topic_len[w->cur], pt);
            return ws_fail(WS_ERR_ORDER, errbuf, errlen,
                           "record %s/%d@%lld is not after the previous record %s/%d@%lld", t,
                           (int)r->partition, (long long)r->offset, pt, (int)p->partition,
                           (long long)w->last);
        }
        if (c == 0) {
            i = w->cur;
            goto check_range;
        }
        from = w->cur + 1;
    }
    i = lower_bound(w, from, w->nsrc, r->topic, r->topic_len, r->partition);
    if (i == w->nsrc || cmp_source(w, i, r->topic, r->topic_len, r->partition) != 0) {
        printable(r->topic, r->topic_len, t);
        return ws_fail(WS_ERR_INVALID, errbuf, errlen,
                       "record %s/%d@%lld is in no declared source of the window", t,
                       (int)r->partition, (long long)r->offset);
    }
check_range:
    if (r->offset < w->src[i].from_offset || r->offset >= w->src[i].until_offset) {
        printable(r->topic, r->topic_len, t);
        return ws_fail(WS_ERR_INVALID, errbuf, errlen,
                       "record %s/%d@%lld is outside the declared range [%lld, %lld)", t,
                       (int)r->partition, (long long)r->offset, (long long)w->src[i].from_offset,
                       (long long)w->src[i].until_offset);
    }
    *idx = i;
    return WS_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Multi-lane mode                                                                                */

/* Push a perfect subtree of 1 << glog leaves; the tree's size is a multiple of that. */
static void tree_push_group(struct ws_merkle *m, unsigned glog, const uint8_t h[WS_HASH_LEN])
{
    memcpy(m->range[m->nrange++], h, WS_HASH_LEN);
    m->size += (uint64_t)1 << glog;
    for (uint64_t s = m->size >> glog; (s & 1) == 0; s >>= 1) {
        m->nrange--;
        ws_merkle_node_hash(m->range[m->nrange - 1], m->range[m->nrange], m->range[m->nrange - 1]);
    }
}

/*
 * One lane run: the stream digest's complete blocks, one level of every climbing group, and (if
 * leaves_too) the pending leaves. Climbing groups move up a level; a group reaching the top is
 * pushed into the tree. Pending leaves' hashes land in leaf_out.
 */
static void lane_run(struct ws_window *w, bool leaves_too, uint8_t (*leaf_out)[WS_HASH_LEN])
{
    struct ws_sha256_job jobs[1 + GROUP_MAX + GROUP_MAX];
    uint8_t up[GROUP_LOG_MAX + 1][GROUP_MAX / 2][WS_HASH_LEN];
    unsigned nup[GROUP_LOG_MAX + 1] = {0};
    size_t n = 0, blocks = (w->pending - w->sdone) / 64;

    if (blocks) { /* first: the longest chain should start at once */
        jobs[n++] = (struct ws_sha256_job){w->buf + w->sdone, blocks * 64, -1, NULL, w->sstate};
        if (w->slane != w->lanes) { /* on its own lane, before the others */
            ws_sha256_mb_run_on(w->slane, jobs, 1);
            n = 0;
        }
    }
    /*
     * Order: the two widest levels, the leaves, the narrow levels. Results do not depend on it;
     * AVX-512 takes leading runs of 16 alike jobs the short way (run_batch16 in sha256_mb.c),
     * and this order makes the 32 + 16 nodes of levels 0-1 and, at one record size, the 64
     * leaves such runs.
     */
    for (unsigned pass = 0; pass < 3; pass++) {
        if (pass == 1) {
            if (leaves_too)
                for (unsigned i = 0; i < w->nleaf; i++)
                    jobs[n++] = (struct ws_sha256_job){w->buf + w->leaf_off[i], w->leaf_len[i],
                                                       0x00, leaf_out[i], NULL};
            continue;
        }
        for (unsigned l = pass ? 2 : 0; l < (pass ? w->glog : 2) && l < w->glog; l++) {
            for (unsigned i = 0; 2 * i + 1 < w->nlvl[l]; i++)
                jobs[n++] = (struct ws_sha256_job){w->lvl[l][2 * i], 2 * WS_HASH_LEN, 0x01,
                                                   up[l + 1][i], NULL};
            nup[l + 1] = w->nlvl[l] / 2;
        }
    }
    ws_sha256_mb_run_on(w->lanes, jobs, n);
    w->sdone += blocks * 64;
    w->stotal += blocks * 64;
    for (unsigned l = w->glog; l >= 1; l--) {
        if (l == w->glog && nup[l]) {
            tree_push_group(&w->tree, w->glog, up[l][0]);
            w->climbing -= GROUP(w);
            nup[l] = 0;
        }
        memcpy(w->lvl[l], up[l], (size_t)nup[l] * WS_HASH_LEN);
        w->nlvl[l] = nup[l];
    }
    w->nlvl[0] = 0;
}

/* Finish every climbing group (in order, so the tree sees leaves in order). */
static void drain_groups(struct ws_window *w)
{
    while (w->climbing) /* each run lifts every climbing group one level */
        lane_run(w, false, NULL);
}

/* Where the next pending leaf sits in the tree. */
static uint64_t leaf_pos(const struct ws_window *w)
{
    return w->tree.size + w->climbing;
}

/*
 * Hash the pending leaves. An aligned full group starts climbing; anything else (a short group
 * at the end or before a buffer reuse, or leaves after such a one) first drains the climbing
 * groups and then enters the tree leaf by leaf.
 */
static void hash_leaves(struct ws_window *w)
{
    uint8_t out[GROUP_MAX][WS_HASH_LEN];
    unsigned n = w->nleaf;

    if (n == 0)
        return;
    if (n == GROUP(w) && leaf_pos(w) % GROUP(w) == 0) {
        lane_run(w, true, out); /* not into lvl[0]: this run still reads it */
        memcpy(w->lvl[0], out, (size_t)GROUP(w) * WS_HASH_LEN);
        w->nlvl[0] = GROUP(w);
        w->climbing += GROUP(w);
    } else {
        drain_groups(w);
        lane_run(w, true, out);
        for (unsigned i = 0; i < n; i++)
            ws_merkle_add_hash(&w->tree, out[i]);
    }
    w->nleaf = 0;
}

/* Leaves wanted before the next hash_leaves: a full group, or up to the next aligned index. */
static unsigned leaves_wanted(const struct ws_window *w)
{
    return GROUP(w) - (unsigned)(leaf_pos(w) % GROUP(w));
}

/* Everything buffered into the digests: afterwards only the stream's tail (< 64 bytes) waits. */
static void sync_lanes(struct ws_window *w)
{
    hash_leaves(w);
    drain_groups(w);
    if (w->pending - w->sdone >= 64)
        lane_run(w, false, NULL);
}

/* Hash the frames waiting in the batch into the stream digest. */
static void flush(struct ws_window *w)
{
    if (w->mb) {
        sync_lanes(w);
        if (w->sdone)
            memmove(w->buf, w->buf + w->sdone, w->pending - w->sdone);
        w->pending -= w->sdone;
        w->sdone = 0;
        return;
    }
    if (w->pending) {
        ws_sha256_update(&w->stream, w->buf, w->pending);
        w->pending = 0;
    }
}

/*
 * Multi-lane mode, batch full: keep the bytes still needed (pending leaves' frames and the
 * stream's unhashed bytes) by moving them to the front; if even that leaves no room, sync first.
 */
static bool compact(struct ws_window *w, size_t need)
{
    size_t keep = w->sdone, tail;

    if (w->nleaf && w->leaf_off[0] - 4 < keep)
        keep = w->leaf_off[0] - 4;
    tail = w->pending - keep;
    if (tail + need > w->bufcap)
        return false;
    memmove(w->buf, w->buf + keep, tail);
    w->sdone -= keep;
    for (unsigned i = 0; i < w->nleaf; i++)
        w->leaf_off[i] -= keep;
    w->pending = tail;
    return true;
}

/*
 * Room for one frame of need bytes after the pending ones; returns where it goes. The buffer
 * only grows for a frame larger than the whole batch, i.e. to the largest record seen.
 */
static uint8_t *frame_slot(struct ws_window *w, size_t need)
{
    size_t cap;
    uint8_t *b;

    if (w->pending + need <= w->bufcap)
        return w->buf + w->pending;
    if (w->mb && w->bufcap && compact(w, need))
        return w->buf + w->pending;
    flush(w); /* multi-lane: leaves w->pending < 64 bytes of stream tail */
    if (w->pending + need <= w->bufcap)
        return w->buf + w->pending;
    cap = w->bufcap ? w->bufcap : BATCH;
    while (cap < w->pending + need)
        cap *= 2;
    b = realloc(w->buf, cap);
    if (!b)
        return NULL;
    w->buf = b;
    w->bufcap = cap;
    return b + w->pending;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/*
 * Take an accepted record into the window. frame = u32 length || encoding (len bytes), already
 * in the batch at w->buf + w->pending.
 */
static ws_err_t commit(struct ws_window *w, size_t idx, const struct ws_record *r, uint8_t *frame,
                       size_t len, char *errbuf, size_t errlen)
{
    uint8_t leaf[WS_HASH_LEN], saved = frame[3];
    struct ws_sha256 h;
    ws_err_t err;

    /* Output first: if the evidence cannot take the record, the window has not counted it. */
    if (w->out) {
        err = w->out(w->opaque, frame, len + 4);
        if (err)
            return ws_fail(err, errbuf, errlen, "window stream output failed: %s",
                           ws_strerror(err));
    }
    if (w->mb) {
        /* The leaf waits in the batch for its group (the frame stays where it is). */
        w->leaf_off[w->nleaf] = (size_t)(frame + 4 - w->buf);
        w->leaf_len[w->nleaf++] = len;
        w->pending += len + 4;
        if (w->nleaf == leaves_wanted(w))
            hash_leaves(w);
    } else {
        /*
         * Leaf hash SHA-256(0x00 || encoding) in one update without copying: the byte before
         * the encoding is the low byte of its length prefix, lent out as the 0x00 and put back.
         */
        frame[3] = 0x00;
        ws_sha256_init(&h);
        ws_sha256_update(&h, frame + 3, len + 1);
        ws_sha256_final(&h, leaf);
        frame[3] = saved;
        ws_merkle_add_hash(&w->tree, leaf);
        w->pending += len + 4; /* the stream digest takes the frame with the batch */
    }

    w->src[idx].record_count++;
    w->src[idx].bytes += len;
    w->bytes += len;
    if (r->timestamp >= 0) {
        if (!w->has_time || r->timestamp < w->ts_min)
            w->ts_min = r->timestamp;
        if (!w->has_time || r->timestamp > w->ts_max)
            w->ts_max = r->timestamp;
        w->has_time = true;
    }
    w->started = true;
    w->cur = idx;
    w->last = r->offset;
    return WS_OK;
}

ws_err_t ws_window_add(struct ws_window *w, const struct ws_record *r, char *errbuf, size_t errlen)
{
    size_t len, idx;
    uint8_t *frame;
    ws_err_t err;

    if (!w || !r || w->finished)
        return ws_fail(WS_ERR_INVALID, errbuf, errlen, "window is finished");
    len = ws_record_encoded_size(r);
    if (len > WS_RECORD_MAX)
        return ws_fail(WS_ERR_TOO_LARGE, errbuf, errlen, "record encoding of %zu bytes exceeds %u",
                       len, WS_RECORD_MAX);
    frame = frame_slot(w, len + 4);
    if (!frame)
        return ws_fail(WS_ERR_NOMEM, errbuf, errlen, "no memory for a %zu-byte record", len);
    if (ws_record_encode(r, frame + 4, len) != len)
        return ws_fail(WS_ERR_INVALID, errbuf, errlen,
                       "record has an invalid length, pointer or timestamp type");
    err = locate(w, r, &idx, errbuf, errlen);
    if (err)
        return err;
    put32(frame, (uint32_t)len);
    return commit(w, idx, r, frame, len, errbuf, errlen);
}

ws_err_t ws_window_add_encoded(struct ws_window *w, const uint8_t *enc, size_t len, char *errbuf,
                               size_t errlen)
{
    struct ws_record r;
    uint8_t *frame;
    size_t idx;
    ws_err_t err;

    if (!w || w->finished)
        return ws_fail(WS_ERR_INVALID, errbuf, errlen, "window is finished");
    if (len > WS_RECORD_MAX)
        return ws_fail(WS_ERR_TOO_LARGE, errbuf, errlen, "record encoding of %zu bytes exceeds %u",
                       len, WS_RECORD_MAX);
    /* Headers are not needed here: the decoder validates them all before it reports that the
     * (empty) header array is too small, so WS_ERR_TOO_LARGE means a valid encoding. */
    err = ws_record_decode(enc, len, &r, NULL, 0, errbuf, errlen);
    if (err == WS_ERR_TOO_LARGE)
        err = WS_OK;
    if (err)
        return err;
    err = locate(w, &r, &idx, errbuf, errlen);
    if (err)
        return err;
    /* The frame goes through the batch like any other (a copy is cheaper than the separate
     * small digest updates it saves); r keeps pointing into enc, which is still valid. */
    frame = frame_slot(w, len + 4);
    if (!frame)
        return ws_fail(WS_ERR_NOMEM, errbuf, errlen, "no memory for a %zu-byte record", len);
    put32(frame, (uint32_t)len);
    memcpy(frame + 4, enc, len);
    return commit(w, idx, &r, frame, len, errbuf, errlen);
}

ws_err_t ws_window_finish(struct ws_window *w, struct ws_window_result *res)
{
    if (!w || !res)
        return WS_ERR_INVALID;
    if (!w->finished) {
        if (w->mb) {
            sync_lanes(w);
            /* buf is still NULL when no record came: no pointer arithmetic on it then */
            ws_sha256_state_final(w->sstate, w->buf ? w->buf + w->sdone : NULL,
                                  w->pending - w->sdone, w->stotal + (w->pending - w->sdone),
                                  w->digest);
        } else {
            flush(w);
            ws_sha256_final(&w->stream, w->digest);
        }
        w->finished = true;
    }
    memset(res, 0, sizeof(*res));
    memcpy(res->stream_digest, w->digest, WS_HASH_LEN);
    ws_merkle_root(&w->tree, res->root);
    res->leaf_count = w->tree.size;
    res->bytes = w->bytes;
    res->has_time = w->has_time;
    res->ts_min = w->has_time ? w->ts_min : -1;
    res->ts_max = w->has_time ? w->ts_max : -1;
    res->sources = w->src;
    res->nsources = w->nsrc;
    return WS_OK;
}
