/*
 * test_kafka_ranges.c — ws_kafka_read_ranges (a window's ranges fetched at once) against the
 * embedded broker.
 *
 * Four topics of 8, 5, 3 and 40 partitions get records produced interleaved (round robin over
 * every partition of every topic, so partitions fill concurrently), and one topic of 3 partitions
 * gets 20 000 records per partition (ranges longer than the reader's read-ahead). Each record's
 * key, value and headers are a function of (topic, partition, offset) — Kafka keeps per-partition
 * order and the producer is idempotent, so the n-th record produced to a partition has offset n —
 * which the callback checks for every record delivered. The delivered sequence must equal, record
 * for record, the window-stream order (range 0 in offset order, then range 1, ...) and what
 * per-range ws_kafka_read_range reads give. Covered: many windows of random partition sets and
 * sub-ranges on one reader (no stale assignment, no record of one window in the next; in the
 * small windows ranges that end at their partition's high watermark stay assigned until the
 * read's end, the others, and every range of a window with the long topic, are unassigned as
 * soon as they are drained), empty
 * ranges and windows, long ranges, a range beyond the high watermark (TIMEOUT before any record),
 * records no longer retained, unknown partition and topic, a callback error (abort, then the
 * reader is clean), bad arguments, and read_range/read_all on partitions read_ranges used.
 */
#include "kafka/kafka.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"

static char errbuf[512];

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ------------------------------------------------------------------------------------------ */
/* Topics and the content of every record                                                       */

#define NTOPIC 5
#define PER_ROUND 60 /* records per partition of the interleaved topics */
#define LONG_N 20000 /* records per partition of the long topic */
#define MAXP 40

/* Deliberately not in byte order here; windows sort them. "long" holds the long ranges. */
static const char *const TOPIC[NTOPIC] = {"tb", "ta", "td", "tc", "long"};
static const int NP[NTOPIC] = {5, 8, 40, 3, 3};
static int64_t produced[NTOPIC][MAXP]; /* records produced per partition = high watermark */

static int topic_index(const char *t, size_t len)
{
    for (int i = 0; i < NTOPIC; i++)
        if (strlen(TOPIC[i]) == len && memcmp(TOPIC[i], t, len) == 0)
            return i;
    return -1;
}

/* The record at (topic t, partition p, offset o): key, value, at most one header. */
struct content {
    char key[32], value[96], hval[32];
    int32_t key_len, value_len, hval_len;
    bool has_header;
};

static void content_of(int t, int32_t p, int64_t o, struct content *c)
{
    memset(c, 0, sizeof(*c));
    c->key_len = o % 11 == 3 ? -1 : snprintf(c->key, sizeof(c->key), "k%lld", (long long)o % 97);
    /* variable length, some empty, some null */
    if (o % 13 == 5) {
        c->value_len = -1;
    } else if (o % 13 == 6) {
        c->value_len = 0;
    } else {
        c->value_len = snprintf(c->value, sizeof(c->value), "%s/%d/%lld/%.*s", TOPIC[t], (int)p,
                                (long long)o, (int)(o % 40),
                                "----------------------------------"
                                "------");
    }
    c->has_header = o % 5 == 0;
    if (c->has_header)
        c->hval_len = snprintf(c->hval, sizeof(c->hval), "h%lld", (long long)o);
}

static bool same(const void *a, int32_t alen, const void *b, int32_t blen)
{
    if (alen != blen)
        return false;
    if (alen < 0)
        return a == NULL && b == NULL;
    return alen == 0 || memcmp(a, b, (size_t)alen) == 0;
}

static bool record_ok(const struct ws_record *r)
{
    struct content c;
    int t = topic_index(r->topic, r->topic_len);

    if (t < 0 || r->partition < 0 || r->partition >= NP[t] || r->offset < 0 ||
        r->offset >= produced[t][r->partition])
        return false;
    content_of(t, r->partition, r->offset, &c);
    if (!same(r->key, r->key_len, c.key_len < 0 ? NULL : c.key, c.key_len) ||
        !same(r->value, r->value_len, c.value_len < 0 ? NULL : c.value, c.value_len))
        return false;
    if (r->header_count != (c.has_header ? 1u : 0u))
        return false;
    if (c.has_header && (r->headers[0].name_len != 1 || r->headers[0].name[0] != 'h' ||
                         !same(r->headers[0].value, r->headers[0].value_len, c.hval, c.hval_len)))
        return false;
    return r->ts_type == 1 && r->timestamp > 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Collecting what a read delivers                                                              */

struct rec_id {
    int t;
    int32_t p;
    int64_t o;
};

struct seq {
    struct rec_id *v;
    size_t n, cap;
    size_t bad;        /* records whose content is wrong */
    size_t stop_after; /* > 0: the callback fails with WS_ERR_IO at this record */
};

static ws_err_t collect(void *opaque, const struct ws_record *r)
{
    struct seq *s = opaque;

    if (s->n == s->cap) {
        size_t nc = s->cap ? 2 * s->cap : 1024;
        struct rec_id *nv = realloc(s->v, nc * sizeof(*nv));
        if (!nv)
            return WS_ERR_NOMEM;
        s->v = nv;
        s->cap = nc;
    }
    s->v[s->n].t = topic_index(r->topic, r->topic_len);
    s->v[s->n].p = r->partition;
    s->v[s->n].o = r->offset;
    s->n++;
    if (!record_ok(r))
        s->bad++;
    if (s->stop_after && s->n >= s->stop_after)
        return WS_ERR_IO;
    return WS_OK;
}

static void seq_reset(struct seq *s)
{
    s->n = 0;
    s->bad = 0;
    s->stop_after = 0;
}

/* Whether s is exactly the window-stream order of rg (no gaps: the mock writes none). */
static bool is_stream_order(const struct seq *s, const struct ws_kafka_range *rg, size_t n)
{
    size_t k = 0;

    for (size_t i = 0; i < n; i++) {
        int t = topic_index(rg[i].topic, strlen(rg[i].topic));
        for (int64_t o = rg[i].from; o < rg[i].until; o++, k++)
            if (k >= s->n || s->v[k].t != t || s->v[k].p != rg[i].partition || s->v[k].o != o)
                return false;
    }
    return k == s->n;
}

static bool same_seq(const struct seq *a, const struct seq *b)
{
    return a->n == b->n && (a->n == 0 || memcmp(a->v, b->v, a->n * sizeof(*a->v)) == 0);
}

/* ------------------------------------------------------------------------------------------ */
/* Production                                                                                   */

static int dr_failed;

static void on_dr(void *app, void *cookie, ws_err_t err, const char *reason)
{
    (void)app;
    (void)cookie;
    if (err) {
        dr_failed++;
        fprintf(stderr, "delivery failed: %s: %s\n", ws_err_name(err), reason);
    }
}

static void produce_one(struct ws_kafka_producer *p, int t, int32_t part)
{
    struct content c;
    struct ws_header h = {"h", 1, NULL, 0};
    ws_err_t err;

    content_of(t, part, produced[t][part], &c);
    h.value = c.hval;
    h.value_len = c.hval_len;
    while ((err = ws_kafka_produce(
                p, TOPIC[t], part, c.key_len < 0 ? NULL : c.key,
                c.key_len < 0 ? 0 : (size_t)c.key_len, c.value_len < 0 ? NULL : c.value,
                c.value_len < 0 ? 0 : (size_t)c.value_len, c.has_header ? &h : NULL,
                c.has_header ? 1 : 0, NULL, errbuf, sizeof(errbuf))) == WS_ERR_AGAIN)
        ws_kafka_producer_poll(p, 10);
    CHECK(err == WS_OK);
    produced[t][part]++;
}

static void produce_all(struct ws_kafka_producer *p)
{
    /* interleaved: one record per partition of every topic per round */
    for (int round = 0; round < PER_ROUND; round++)
        for (int t = 0; t < NTOPIC - 1; t++)
            for (int32_t part = 0; part < NP[t]; part++)
                produce_one(p, t, part);
    for (int i = 0; i < LONG_N; i++)
        for (int32_t part = 0; part < NP[4]; part++)
            produce_one(p, 4, part);
    CHECK_OK(ws_kafka_producer_flush(p, 30000));
    CHECK(dr_failed == 0);
}

/* ------------------------------------------------------------------------------------------ */
/* Windows                                                                                      */

static int range_cmp(const void *a, const void *b)
{
    const struct ws_kafka_range *x = a, *y = b;
    int c = strcmp(x->topic, y->topic);
    return c ? c : (x->partition > y->partition) - (x->partition < y->partition);
}

static uint64_t rng = 88172645463325252ull;

static uint64_t rnd(uint64_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng % n;
}

/* A random window: a random subset of partitions, random sub-ranges, some empty. */
static size_t random_window(struct ws_kafka_range *rg, bool with_long)
{
    size_t n = 0;

    for (int t = 0; t < NTOPIC; t++) {
        if (t == 4 && !with_long)
            continue;
        for (int32_t p = 0; p < NP[t]; p++) {
            int64_t hw = produced[t][p], a, b;
            if (rnd(3) == 0)
                continue;
            a = (int64_t)rnd((uint64_t)hw + 1);
            b = a + (int64_t)rnd((uint64_t)(hw - a) + 1);
            if (rnd(8) == 0)
                b = a; /* empty */
            rg[n++] = (struct ws_kafka_range){TOPIC[t], p, a, b};
        }
    }
    qsort(rg, n, sizeof(*rg), range_cmp);
    return n;
}

static void read_per_range(struct ws_kafka_reader *r, const struct ws_kafka_range *rg, size_t n,
                           struct seq *s)
{
    for (size_t i = 0; i < n; i++)
        CHECK_OK(ws_kafka_read_range(r, rg[i].topic, rg[i].partition, rg[i].from, rg[i].until,
                                     10000, collect, s, errbuf, sizeof(errbuf)));
}

static void test_windows(struct ws_kafka_reader *r)
{
    struct ws_kafka_range rg[NTOPIC * MAXP];
    struct seq a = {0}, b = {0};
    double t0, total = 0;
    int nwin = 30;

    /* every partition of every topic, whole: the largest window */
    size_t n = 0;
    for (int t = 0; t < NTOPIC; t++)
        for (int32_t p = 0; p < NP[t]; p++)
            rg[n++] = (struct ws_kafka_range){TOPIC[t], p, 0, produced[t][p]};
    qsort(rg, n, sizeof(*rg), range_cmp);
    t0 = now_ms();
    CHECK_OK(ws_kafka_read_ranges(r, rg, n, 30000, collect, &a, errbuf, sizeof(errbuf)));
    printf("whole window: %zu ranges, %zu records in %.1f ms\n", n, a.n, now_ms() - t0);
    CHECK(a.bad == 0);
    CHECK(is_stream_order(&a, rg, n));
    read_per_range(r, rg, n, &b);
    CHECK(b.bad == 0);
    CHECK(same_seq(&a, &b));

    /* many windows of different partition sets on the same reader */
    for (int w = 0; w < nwin; w++) {
        seq_reset(&a);
        seq_reset(&b);
        n = random_window(rg, w % 5 == 0);
        t0 = now_ms();
        CHECK_OK(ws_kafka_read_ranges(r, rg, n, 10000, collect, &a, errbuf, sizeof(errbuf)));
        total += now_ms() - t0;
        CHECK(a.bad == 0);
        CHECK(is_stream_order(&a, rg, n));
        read_per_range(r, rg, n, &b);
        CHECK(same_seq(&a, &b));
    }
    printf("%d random windows: mean %.2f ms per read_ranges\n", nwin, total / nwin);

    /* one partition, window after window: consecutive ranges, as the engine reads them */
    for (int64_t from = 0; from < produced[1][0]; from += 7) {
        int64_t until = from + 7 < produced[1][0] ? from + 7 : produced[1][0];
        struct ws_kafka_range one = {"ta", 0, from, until};
        seq_reset(&a);
        CHECK_OK(ws_kafka_read_ranges(r, &one, 1, 10000, collect, &a, errbuf, sizeof(errbuf)));
        CHECK(a.bad == 0 && is_stream_order(&a, &one, 1));
    }
    free(a.v);
    free(b.v);
}

static void test_edges(struct ws_kafka_reader *r, struct ws_kafka_broker *b,
                       struct ws_kafka_producer *p)
{
    struct seq s = {0};
    double t0;
    ws_err_t err;

    /* empty: no ranges, only empty ranges (even of partitions that do not exist) */
    CHECK_OK(ws_kafka_read_ranges(r, NULL, 0, 1000, collect, &s, errbuf, sizeof(errbuf)));
    {
        struct ws_kafka_range e[] = {{"nosuch", 0, 5, 5}, {"ta", 1, 3, 3}, {"ta", 999, 0, 0}};
        t0 = now_ms();
        CHECK_OK(ws_kafka_read_ranges(r, e, 3, 1000, collect, &s, errbuf, sizeof(errbuf)));
        CHECK(now_ms() - t0 < 50);
        CHECK(s.n == 0);
    }

    /* beyond the high watermark: TIMEOUT, and no record delivered first (watermarks first) */
    {
        struct ws_kafka_range e[] = {{"ta", 0, 0, 10}, {"tb", 1, 0, produced[0][1] + 5}};
        seq_reset(&s);
        t0 = now_ms();
        err = ws_kafka_read_ranges(r, e, 2, 300, collect, &s, errbuf, sizeof(errbuf));
        printf("beyond high watermark: %s (%.0f ms)\n", errbuf, now_ms() - t0);
        CHECK(err == WS_ERR_TIMEOUT);
        CHECK(strstr(errbuf, "tb[1]") && strstr(errbuf, "high watermark"));
        CHECK(s.n == 0);
        CHECK(now_ms() - t0 >= 290);
    }

    /* unknown partition, unknown topic: WS_ERR_UNKNOWN_TOPIC, nothing delivered */
    {
        struct ws_kafka_range e[] = {{"ta", 0, 0, 10}, {"ta", 99, 0, 1}};
        seq_reset(&s);
        err = ws_kafka_read_ranges(r, e, 2, 3000, collect, &s, errbuf, sizeof(errbuf));
        printf("unknown partition: %s\n", errbuf);
        CHECK(err == WS_ERR_UNKNOWN_TOPIC);
        CHECK(strstr(errbuf, "ta[99]") != NULL);
        CHECK(s.n == 0);
        CHECK_OK(ws_kafka_broker_set_topic_error(b, "ghost", 3));
        struct ws_kafka_range g[] = {{"ghost", 0, 0, 1}, {"ta", 0, 0, 10}};
        err = ws_kafka_read_ranges(r, g, 2, 3000, collect, &s, errbuf, sizeof(errbuf));
        printf("unknown topic: %s\n", errbuf);
        CHECK(err == WS_ERR_UNKNOWN_TOPIC);
        CHECK(s.n == 0);
    }

    /* records no longer retained: the mock keeps ~5 MiB per partition */
    {
        static char big[100000];
        struct ws_kafka_range e[3];
        int64_t lo = 0, hi = 0;

        CHECK_OK(ws_kafka_broker_create_topic(b, "big", 1, errbuf, sizeof(errbuf)));
        memset(big, 'b', sizeof(big));
        for (int i = 0; i < 80; i++) {
            while ((err = ws_kafka_produce(p, "big", 0, NULL, 0, big, sizeof(big), NULL, 0, NULL,
                                           errbuf, sizeof(errbuf))) == WS_ERR_AGAIN)
                ws_kafka_producer_poll(p, 10);
            CHECK(err == WS_OK);
        }
        CHECK_OK(ws_kafka_producer_flush(p, 30000));
        CHECK_OK(ws_kafka_reader_watermarks(r, "big", 0, &lo, &hi, 5000, errbuf, sizeof(errbuf)));
        CHECK(lo > 0 && hi == 80);
        e[0] = (struct ws_kafka_range){"big", 0, 0, hi};
        e[1] = (struct ws_kafka_range){"ta", 0, 0, 10};
        e[2] = (struct ws_kafka_range){"tb", 0, 0, produced[0][0] + 100}; /* also incomplete */
        seq_reset(&s);
        t0 = now_ms();
        err = ws_kafka_read_ranges(r, e, 3, 3000, collect, &s, errbuf, sizeof(errbuf));
        printf("not retained: %s\n", errbuf);
        CHECK(err == WS_ERR_NOT_RETAINED);
        CHECK(strstr(errbuf, "big[0]") != NULL);
        CHECK(s.n == 0);
        CHECK(now_ms() - t0 < 1000); /* permanent: no waiting for the incomplete range */
        /* the retained part still reads */
        e[0].from = lo;
        seq_reset(&s);
        CHECK_OK(ws_kafka_read_ranges(r, e, 2, 10000, collect, &s, errbuf, sizeof(errbuf)));
        CHECK(s.n == (size_t)(hi - lo) + 10);
    }

    /* a callback error aborts at once; the next read on the reader is exact */
    {
        struct ws_kafka_range e[] = {
            {"long", 0, 0, LONG_N}, {"long", 1, 0, LONG_N}, {"long", 2, 0, LONG_N}};
        seq_reset(&s);
        s.stop_after = LONG_N + 50;
        err = ws_kafka_read_ranges(r, e, 3, 10000, collect, &s, errbuf, sizeof(errbuf));
        CHECK(err == WS_ERR_IO);
        CHECK(s.n == LONG_N + 50);
        struct ws_kafka_range f[] = {{"long", 1, 100, 300}, {"ta", 2, 5, 9}};
        seq_reset(&s);
        CHECK_OK(ws_kafka_read_ranges(r, f, 2, 10000, collect, &s, errbuf, sizeof(errbuf)));
        CHECK(s.bad == 0 && is_stream_order(&s, f, 2));
    }

    /* bad arguments */
    {
        struct ws_kafka_range unsorted[] = {{"tb", 0, 0, 1}, {"ta", 0, 0, 1}};
        struct ws_kafka_range dup[] = {{"ta", 0, 0, 1}, {"ta", 0, 1, 2}};
        struct ws_kafka_range neg[] = {{"ta", 0, 5, 4}};
        struct ws_kafka_range noname[] = {{"", 0, 0, 1}};
        seq_reset(&s);
        CHECK(ws_kafka_read_ranges(r, unsorted, 2, 1000, collect, &s, errbuf, sizeof(errbuf)) ==
              WS_ERR_INVALID);
        CHECK(ws_kafka_read_ranges(r, dup, 2, 1000, collect, &s, errbuf, sizeof(errbuf)) ==
              WS_ERR_INVALID);
        CHECK(ws_kafka_read_ranges(r, neg, 1, 1000, collect, &s, errbuf, sizeof(errbuf)) ==
              WS_ERR_INVALID);
        CHECK(ws_kafka_read_ranges(r, noname, 1, 1000, collect, &s, errbuf, sizeof(errbuf)) ==
              WS_ERR_INVALID);
        CHECK(ws_kafka_read_ranges(r, neg, 1, 1000, NULL, &s, errbuf, sizeof(errbuf)) ==
              WS_ERR_INVALID);
        CHECK(s.n == 0);
    }

    /* read_all still sees every record of a partition read_ranges used */
    {
        seq_reset(&s);
        CHECK_OK(ws_kafka_read_all(r, "tc", collect, &s, 10000, errbuf, sizeof(errbuf)));
        CHECK(s.bad == 0);
        CHECK(s.n == (size_t)(produced[3][0] + produced[3][1] + produced[3][2]));
    }
    free(s.v);
}

/* Long ranges (beyond the read-ahead): throughput of one read against per-range reads. */
static void test_long(struct ws_kafka_reader *r)
{
    struct ws_kafka_range e[] = {
        {"long", 0, 0, LONG_N}, {"long", 1, 0, LONG_N}, {"long", 2, 0, LONG_N}};
    struct seq a = {0}, b = {0};
    double t0, t1, t2;

    t0 = now_ms();
    CHECK_OK(ws_kafka_read_ranges(r, e, 3, 30000, collect, &a, errbuf, sizeof(errbuf)));
    t1 = now_ms();
    read_per_range(r, e, 3, &b);
    t2 = now_ms();
    CHECK(a.bad == 0 && is_stream_order(&a, e, 3));
    CHECK(same_seq(&a, &b));
    printf("long ranges: %zu records: read_ranges %.1f ms, per range %.1f ms\n", a.n, t1 - t0,
           t2 - t1);
    free(a.v);
    free(b.v);
}

int main(void)
{
    struct ws_kafka_broker *b;
    struct ws_kafka_reader *r;
    struct ws_kafka_producer *p;
    struct ws_kafka_conf c = {0};

    if (!(b = ws_kafka_broker_new(NULL, 1, errbuf, sizeof(errbuf)))) {
        fprintf(stderr, "cannot start the embedded broker: %s\n", errbuf);
        return 1;
    }
    c.bootstrap = ws_kafka_broker_bootstrap(b);
    for (int t = 0; t < NTOPIC; t++)
        CHECK_OK(ws_kafka_broker_create_topic(b, TOPIC[t], NP[t], errbuf, sizeof(errbuf)));
    p = ws_kafka_producer_new(&c, on_dr, NULL, errbuf, sizeof(errbuf));
    r = ws_kafka_reader_new(&c, errbuf, sizeof(errbuf));
    CHECK(p && r);
    if (!p || !r)
        return check_report("test_kafka_ranges");
    produce_all(p);
    test_windows(r);
    test_long(r);
    test_edges(r, b, p);

    ws_kafka_reader_destroy(r);
    ws_kafka_producer_destroy(p);
    ws_kafka_broker_destroy(b);
    return check_report("test_kafka_ranges");
}
