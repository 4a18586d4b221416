/*
 * test_kafka_range.c — the range reader, producer and read_all against the embedded broker.
 *
 * 1000 records with every shape the record encoding distinguishes (null/empty/plain keys and
 * values, no headers, null and empty header values, repeated header names) are produced over 3
 * partitions; the expected content of every offset comes from the production order (Kafka keeps
 * per-partition order; the idempotent producer never reorders). Reads are then compared field by
 * field: whole partitions, partial ranges, from == until, a range ending at the high watermark,
 * ranges beyond it (timeout; then completed by records produced while the read waits), unknown
 * topic/partition, a callback error, records no longer retained (the mock drops data beyond
 * 5 MiB per partition), 100 reads on one reader (latency), a 1000-record range (latency) and a
 * bulk read_all (throughput), and bad librdkafka properties.
 */
#include "kafka/kafka.h"

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
/* The produced data set and what each record must look like                                   */

#define NREC 1000
#define NPART 3
#define MAXH 4

struct want {
    int32_t partition;
    int64_t offset;
    char key[32];
    int32_t key_len; /* -1 null */
    char value[200];
    int32_t value_len;
    struct ws_header h[MAXH];
    char hval[MAXH][32];
    uint32_t nh;
};
static struct want W[NREC];
static int64_t t_before, t_after; /* wall clock around production, for timestamps */

static void make_want(int i, struct want *w)
{
    uint32_t k;

    w->partition = i % NPART;
    w->offset = i / NPART; /* i-th record of its partition */
    if (i % 10 == 0) {
        w->key_len = -1;
    } else if (i % 10 == 1) {
        w->key_len = 0;
    } else {
        w->key_len = snprintf(w->key, sizeof(w->key), "key-%d", i % 37);
    }
    if (i % 7 == 0) {
        w->value_len = -1;
    } else if (i % 7 == 1) {
        w->value_len = 0;
    } else {
        w->value_len = (int32_t)(1 + (i * 31) % 150);
        for (int j = 0; j < w->value_len; j++)
            w->value[j] = (char)((i + j * 7) & 0xff); /* binary, with NULs */
    }
    w->nh = (uint32_t)(i % 5);
    for (k = 0; k < w->nh; k++) {
        static const char *const names[] = {"trace", "nullv", "trace", "empty"};

        w->h[k].name = names[k];
        w->h[k].name_len = (uint16_t)strlen(names[k]);
        if (k == 1) {
            w->h[k].value = NULL;
            w->h[k].value_len = -1;
        } else if (k == 3) {
            w->h[k].value = "";
            w->h[k].value_len = 0;
        } else {
            w->h[k].value_len = snprintf(w->hval[k], sizeof(w->hval[k]), "v%d.%u", i, k);
            w->h[k].value = w->hval[k];
        }
    }
}

static bool same_bytes(const void *a, int32_t alen, const void *b, int32_t blen)
{
    if (alen != blen)
        return false;
    if (alen < 0)
        return a == NULL && b == NULL;
    return alen == 0 || memcmp(a, b, (size_t)alen) == 0;
}

/* The record must equal what was produced at (partition, offset). */
static bool record_matches(const struct ws_record *r)
{
    const struct want *w;
    uint32_t k;
    int i;

    if (r->partition < 0 || r->partition >= NPART || r->offset < 0)
        return false;
    i = (int)(r->offset * NPART + r->partition);
    if (i >= NREC)
        return false;
    w = &W[i];
    if (r->topic_len != strlen("orders") || memcmp(r->topic, "orders", r->topic_len))
        return false;
    if (r->ts_type != 1 || r->timestamp < t_before || r->timestamp > t_after)
        return false;
    if (!same_bytes(r->key, r->key_len, w->key_len < 0 ? NULL : w->key, w->key_len) ||
        !same_bytes(r->value, r->value_len, w->value_len < 0 ? NULL : w->value, w->value_len))
        return false;
    if (r->header_count != w->nh)
        return false;
    for (k = 0; k < w->nh; k++) {
        if (r->headers[k].name_len != w->h[k].name_len ||
            memcmp(r->headers[k].name, w->h[k].name, w->h[k].name_len) ||
            !same_bytes(r->headers[k].value, r->headers[k].value_len, w->h[k].value,
                        w->h[k].value_len))
            return false;
    }
    return true;
}

/* ------------------------------------------------------------------------------------------ */
/* Callbacks                                                                                    */

struct got {
    int n;
    int bad; /* records that do not match W (only checked when check is set) */
    bool check;
    int32_t partition; /* -1 until the first record */
    int64_t first, last;
    bool ordered;
    int stop_after; /* > 0: fail with WS_ERR_IO after this many records */
    uint64_t bytes;
};

static void got_init(struct got *g, bool check)
{
    memset(g, 0, sizeof(*g));
    g->check = check;
    g->partition = -1;
    g->first = g->last = -1;
    g->ordered = true;
}

static ws_err_t collect(void *opaque, const struct ws_record *r)
{
    struct got *g = opaque;

    if (g->n == 0) {
        g->first = r->offset;
    } else if (r->partition == g->partition && r->offset <= g->last) {
        g->ordered = false;
    } else if (r->partition < g->partition) {
        g->ordered = false;
    }
    g->partition = r->partition;
    g->last = r->offset;
    g->n++;
    g->bytes += (uint64_t)(r->value_len > 0 ? r->value_len : 0) +
                (uint64_t)(r->key_len > 0 ? r->key_len : 0);
    if (g->check && !record_matches(r))
        g->bad++;
    if (g->stop_after && g->n >= g->stop_after)
        return WS_ERR_IO;
    return WS_OK;
}

struct dr_state {
    int ok, failed;
    ws_err_t last_err;
};

static void on_dr(void *app, void *cookie, ws_err_t err, const char *reason)
{
    struct dr_state *d = app;

    if (err == WS_OK) {
        d->ok++;
    } else {
        d->failed++;
        d->last_err = err;
        fprintf(stderr, "delivery of #%ld failed: %s: %s\n", (long)(intptr_t)cookie,
                ws_err_name(err), reason);
    }
}

static int64_t wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------------------------------ */

static void test_bad_properties(const char *bootstrap)
{
    const char *unknown[] = {"fetch.wait.max.mss", "10"};
    const char *badval[] = {"fetch.wait.max.ms", "soon"};
    struct ws_kafka_conf c = {
        .bootstrap = bootstrap, .group_id = "g", .props = unknown, .nprops = 1};
    struct ws_kafka_reader *r;
    struct ws_kafka_producer *p;
    struct ws_kafka_consumer *k;

    errbuf[0] = '\0';
    r = ws_kafka_reader_new(&c, errbuf, sizeof(errbuf));
    CHECK(r == NULL);
    CHECK(strstr(errbuf, "fetch.wait.max.mss") != NULL);
    errbuf[0] = '\0';
    p = ws_kafka_producer_new(&c, on_dr, NULL, errbuf, sizeof(errbuf));
    CHECK(p == NULL);
    CHECK(strstr(errbuf, "fetch.wait.max.mss") != NULL);
    errbuf[0] = '\0';
    k = ws_kafka_consumer_new(&c, "t", errbuf, sizeof(errbuf));
    CHECK(k == NULL);
    CHECK(strstr(errbuf, "fetch.wait.max.mss") != NULL);
    c.props = badval;
    errbuf[0] = '\0';
    r = ws_kafka_reader_new(&c, errbuf, sizeof(errbuf));
    CHECK(r == NULL);
    CHECK(strstr(errbuf, "fetch.wait.max.ms") != NULL);
    /* A consumer without a group is a configuration error. */
    c.props = NULL;
    c.nprops = 0;
    c.group_id = NULL;
    errbuf[0] = '\0';
    k = ws_kafka_consumer_new(&c, "t", errbuf, sizeof(errbuf));
    CHECK(k == NULL);
    CHECK(strstr(errbuf, "group.id") != NULL);
    printf("bad property error: %s\n", errbuf);
}

static void produce_orders(struct ws_kafka_producer *p, struct dr_state *d)
{
    int i;

    t_before = wall_ms();
    for (i = 0; i < NREC; i++) {
        struct want *w = &W[i];

        make_want(i, w);
        CHECK_OK(ws_kafka_produce(p, "orders", w->partition, w->key_len < 0 ? NULL : w->key,
                                  w->key_len < 0 ? 0 : (size_t)w->key_len,
                                  w->value_len < 0 ? NULL : w->value,
                                  w->value_len < 0 ? 0 : (size_t)w->value_len, w->h, w->nh,
                                  (void *)(intptr_t)i, errbuf, sizeof(errbuf)));
        ws_kafka_producer_poll(p, 0);
    }
    CHECK_OK(ws_kafka_producer_flush(p, 10000));
    t_after = wall_ms();
    CHECK(d->ok == NREC);
    CHECK(d->failed == 0);
}

static void test_ranges(struct ws_kafka_reader *r, struct ws_kafka_broker *b,
                        struct ws_kafka_producer *p)
{
    int64_t lo, hi, per[NPART];
    struct got g;
    double t0, dt;
    int part;
    ws_err_t err;

    /* Watermarks are what was produced. */
    for (part = 0; part < NPART; part++) {
        per[part] = (NREC - part + NPART - 1) / NPART;
        CHECK_OK(
            ws_kafka_reader_watermarks(r, "orders", part, &lo, &hi, 5000, errbuf, sizeof(errbuf)));
        CHECK(lo == 0);
        CHECK(hi == per[part]);
    }

    /* Whole partitions, every field. */
    for (part = 0; part < NPART; part++) {
        got_init(&g, true);
        CHECK_OK(ws_kafka_read_range(r, "orders", part, 0, per[part], 5000, collect, &g, errbuf,
                                     sizeof(errbuf)));
        CHECK(g.n == per[part]);
        CHECK(g.bad == 0);
        CHECK(g.ordered);
        CHECK(g.first == 0 && g.last == per[part] - 1);
    }

    /* Partial ranges. */
    got_init(&g, true);
    CHECK_OK(
        ws_kafka_read_range(r, "orders", 1, 10, 20, 5000, collect, &g, errbuf, sizeof(errbuf)));
    CHECK(g.n == 10 && g.first == 10 && g.last == 19 && g.bad == 0 && g.ordered);
    got_init(&g, true);
    CHECK_OK(ws_kafka_read_range(r, "orders", 2, 0, 1, 5000, collect, &g, errbuf, sizeof(errbuf)));
    CHECK(g.n == 1 && g.first == 0 && g.bad == 0);

    /* from == until: no records, and no broker needed at all (not even the topic). */
    got_init(&g, true);
    CHECK_OK(ws_kafka_read_range(r, "orders", 0, 5, 5, 0, collect, &g, errbuf, sizeof(errbuf)));
    CHECK(g.n == 0);

    /* Ending exactly at the high watermark. */
    got_init(&g, true);
    CHECK_OK(ws_kafka_read_range(r, "orders", 2, per[2] - 7, per[2], 5000, collect, &g, errbuf,
                                 sizeof(errbuf)));
    CHECK(g.n == 7 && g.first == per[2] - 7 && g.last == per[2] - 1 && g.bad == 0);

    /* Beyond the high watermark: nothing delivered, WS_ERR_TIMEOUT after ~the timeout. */
    got_init(&g, true);
    t0 = now_ms();
    err = ws_kafka_read_range(r, "orders", 0, per[0] - 5, per[0] + 5, 300, collect, &g, errbuf,
                              sizeof(errbuf));
    dt = now_ms() - t0;
    CHECK(err == WS_ERR_TIMEOUT);
    CHECK(ws_err_retriable(err));
    CHECK(g.n == 0);
    CHECK(dt >= 290 && dt < 300 + 500);
    CHECK(strstr(errbuf, "high watermark") != NULL);
    printf("beyond high watermark: %s after %.0f ms (timeout 300)\n", errbuf, dt);

    /* ... and completed by records that arrive while the read waits. */
    {
        struct dr_state d2 = {0};
        struct ws_kafka_producer *p2;
        struct ws_kafka_conf c = {.bootstrap = ws_kafka_broker_bootstrap(b)};
        int i;

        p2 = ws_kafka_producer_new(&c, on_dr, &d2, errbuf, sizeof(errbuf));
        CHECK(p2 != NULL);
        if (p2) {
            for (i = 0; i < 3; i++)
                CHECK_OK(ws_kafka_produce(p2, "late", 0, "k", 1, "late", 4, NULL, 0, NULL, errbuf,
                                          sizeof(errbuf)));
            CHECK_OK(ws_kafka_producer_flush(p2, 5000));
            for (i = 0; i < 2; i++) /* enqueued only; sent by librdkafka's thread meanwhile */
                CHECK_OK(ws_kafka_produce(p2, "late", 0, "k", 1, "later", 5, NULL, 0, NULL, errbuf,
                                          sizeof(errbuf)));
            got_init(&g, false);
            CHECK_OK(
                ws_kafka_read_range(r, "late", 0, 1, 5, 5000, collect, &g, errbuf, sizeof(errbuf)));
            CHECK(g.n == 4 && g.first == 1 && g.last == 4);
            CHECK_OK(ws_kafka_producer_flush(p2, 5000));
            CHECK(d2.ok == 5);
            ws_kafka_producer_destroy(p2);
        }
    }

    /* Unknown partition; unknown topic (the mock auto-creates topics, so make it refuse). */
    err = ws_kafka_read_range(r, "orders", 7, 0, 10, 2000, collect, &g, errbuf, sizeof(errbuf));
    CHECK(err == WS_ERR_UNKNOWN_TOPIC);
    CHECK_OK(ws_kafka_broker_set_topic_error(b, "nosuchtopic", 3 /* UNKNOWN_TOPIC_OR_PART */));
    got_init(&g, false);
    t0 = now_ms();
    err =
        ws_kafka_read_range(r, "nosuchtopic", 0, 0, 10, 2000, collect, &g, errbuf, sizeof(errbuf));
    CHECK(err == WS_ERR_UNKNOWN_TOPIC);
    CHECK(!ws_err_retriable(err));
    CHECK(g.n == 0);
    printf("unknown topic: %s (%.0f ms)\n", errbuf, now_ms() - t0);

    /* Invalid arguments. */
    CHECK(ws_kafka_read_range(r, "orders", 0, 10, 5, 100, collect, &g, errbuf, sizeof(errbuf)) ==
          WS_ERR_INVALID);
    CHECK(ws_kafka_read_range(r, "orders", -1, 0, 5, 100, collect, &g, errbuf, sizeof(errbuf)) ==
          WS_ERR_INVALID);
    CHECK(ws_kafka_read_range(r, "", 0, 0, 5, 100, collect, &g, errbuf, sizeof(errbuf)) ==
          WS_ERR_INVALID);

    /* A callback error aborts the read with that error; the reader keeps working. */
    got_init(&g, true);
    g.stop_after = 5;
    err = ws_kafka_read_range(r, "orders", 0, 0, 100, 5000, collect, &g, errbuf, sizeof(errbuf));
    CHECK(err == WS_ERR_IO);
    CHECK(g.n == 5);
    got_init(&g, true);
    CHECK_OK(
        ws_kafka_read_range(r, "orders", 0, 50, 60, 5000, collect, &g, errbuf, sizeof(errbuf)));
    CHECK(g.n == 10 && g.first == 50 && g.bad == 0);
}

/* 100 reads of pseudo-random ranges on one reader, each checked in full. */
static void test_reuse(struct ws_kafka_reader *r)
{
    uint32_t seed = 12345;
    double t0, dt, total = 0, worst = 0;
    struct got g;
    int i, bad = 0;
    long recs = 0;

    for (i = 0; i < 100; i++) {
        int part;
        int64_t n, from, until;

        seed = seed * 1103515245u + 12345u;
        part = (int)((seed >> 8) % NPART);
        n = (NREC - part + NPART - 1) / NPART;
        seed = seed * 1103515245u + 12345u;
        from = (int64_t)((seed >> 8) % (uint32_t)n);
        seed = seed * 1103515245u + 12345u;
        until = from + (int64_t)((seed >> 8) % (uint32_t)(n - from + 1));
        got_init(&g, true);
        t0 = now_ms();
        CHECK_OK(ws_kafka_read_range(r, "orders", part, from, until, 5000, collect, &g, errbuf,
                                     sizeof(errbuf)));
        dt = now_ms() - t0;
        total += dt;
        recs += g.n;
        if (dt > worst)
            worst = dt;
        if (g.n != until - from || g.bad || !g.ordered || (g.n && g.first != from) ||
            (g.n && g.last != until - 1))
            bad++;
    }
    CHECK(bad == 0);
    printf("reader reuse: 100 reads of random ranges (avg %.0f records), mean %.2f ms, max %.2f "
           "ms per read\n",
           recs / 100.0, total / 100, worst);
}

/* Produce more than the mock keeps (5 MiB per partition): the start is gone. */
static void test_not_retained(struct ws_kafka_reader *r, struct ws_kafka_broker *b,
                              struct ws_kafka_producer *p, struct dr_state *d)
{
    static char big[16384];
    int64_t lo, hi;
    struct got g;
    ws_err_t err;
    int i, ok0 = d->ok;

    CHECK_OK(ws_kafka_broker_create_topic(b, "big", 1, errbuf, sizeof(errbuf)));
    memset(big, 'x', sizeof(big));
    for (i = 0; i < 500; i++) { /* 8 MB */
        CHECK_OK(ws_kafka_produce(p, "big", 0, NULL, 0, big, sizeof(big), NULL, 0, NULL, errbuf,
                                  sizeof(errbuf)));
        ws_kafka_producer_poll(p, 0);
    }
    CHECK_OK(ws_kafka_producer_flush(p, 20000));
    CHECK(d->ok - ok0 == 500);
    CHECK_OK(ws_kafka_reader_watermarks(r, "big", 0, &lo, &hi, 5000, errbuf, sizeof(errbuf)));
    CHECK(hi == 500);
    CHECK(lo > 0);
    printf("mock retention: big[0] watermarks %lld..%lld after 8 MB\n", (long long)lo,
           (long long)hi);

    got_init(&g, false);
    err = ws_kafka_read_range(r, "big", 0, 0, 10, 5000, collect, &g, errbuf, sizeof(errbuf));
    CHECK(err == WS_ERR_NOT_RETAINED);
    CHECK(!ws_err_retriable(err));
    CHECK(g.n == 0);
    CHECK(strstr(errbuf, "no longer retained") && strstr(errbuf, "big[0]"));
    printf("not retained: %s\n", errbuf);
    /* The range just below the low watermark as well; the retained part reads fine. */
    err = ws_kafka_read_range(r, "big", 0, lo - 1, hi, 5000, collect, &g, errbuf, sizeof(errbuf));
    CHECK(err == WS_ERR_NOT_RETAINED);
    got_init(&g, false);
    CHECK_OK(ws_kafka_read_range(r, "big", 0, lo, hi, 5000, collect, &g, errbuf, sizeof(errbuf)));
    CHECK(g.n == hi - lo && g.first == lo && g.last == hi - 1);
}

static void test_read_all(struct ws_kafka_reader *r, struct ws_kafka_broker *b)
{
    struct got g;
    double t0;

    /* orders: every partition, in (partition, offset) order. */
    got_init(&g, true);
    CHECK_OK(ws_kafka_read_all(r, "orders", collect, &g, 10000, errbuf, sizeof(errbuf)));
    CHECK(g.n == NREC);
    CHECK(g.bad == 0);
    CHECK(g.ordered);
    CHECK(g.partition == NPART - 1);

    /* A topic that does not exist is empty (whether or not the broker then creates it). */
    got_init(&g, false);
    CHECK_OK(ws_kafka_read_all(r, "nosuchtopic", collect, &g, 5000, errbuf, sizeof(errbuf)));
    CHECK(g.n == 0);
    got_init(&g, false);
    t0 = now_ms();
    CHECK_OK(ws_kafka_read_all(r, "fresh.state", collect, &g, 5000, errbuf, sizeof(errbuf)));
    CHECK(g.n == 0);
    printf("read_all of a new topic: %.1f ms\n", now_ms() - t0);
    (void)b;
}

/* Latency of a 1000-record range and throughput of a bulk read_all. */
static void test_performance(struct ws_kafka_reader *r, struct ws_kafka_broker *b,
                             struct ws_kafka_producer *p, struct dr_state *d)
{
    enum { PARTS = 4, PER = 25000, VLEN = 100 };
    char val[VLEN];
    double t0, dt, best = 1e9, sum = 0;
    struct got g;
    int i, ok0 = d->ok;

    CHECK_OK(ws_kafka_broker_create_topic(b, "bulk", PARTS, errbuf, sizeof(errbuf)));
    memset(val, 'v', sizeof(val));
    for (i = 0; i < PARTS * PER; i++) {
        char key[16];
        int kl = snprintf(key, sizeof(key), "k%d", i);
        ws_err_t err;

        while ((err = ws_kafka_produce(p, "bulk", i % PARTS, key, (size_t)kl, val, sizeof(val),
                                       NULL, 0, NULL, errbuf, sizeof(errbuf))) == WS_ERR_AGAIN)
            ws_kafka_producer_poll(p, 10);
        CHECK_OK(err);
        if (i % 1000 == 0)
            ws_kafka_producer_poll(p, 0);
    }
    CHECK_OK(ws_kafka_producer_flush(p, 30000));
    CHECK(d->ok - ok0 == PARTS * PER);

    for (i = 0; i < 20; i++) {
        got_init(&g, false);
        t0 = now_ms();
        CHECK_OK(ws_kafka_read_range(r, "bulk", i % PARTS, 5000 + i * 1000, 6000 + i * 1000, 5000,
                                     collect, &g, errbuf, sizeof(errbuf)));
        dt = now_ms() - t0;
        CHECK(g.n == 1000);
        sum += dt;
        if (dt < best)
            best = dt;
    }
    printf("1000-record range (%d-byte values): mean %.2f ms, best %.2f ms over 20 reads\n", VLEN,
           sum / 20, best);

    got_init(&g, false);
    t0 = now_ms();
    CHECK_OK(ws_kafka_read_all(r, "bulk", collect, &g, 60000, errbuf, sizeof(errbuf)));
    dt = now_ms() - t0;
    CHECK(g.n == PARTS * PER);
    CHECK(g.ordered);
    printf("bulk read_all: %d records in %.0f ms = %.0f records/s, %.1f MB/s of key+value\n", g.n,
           dt, g.n / (dt / 1e3), (double)g.bytes / 1e6 / (dt / 1e3));
}

int main(void)
{
    struct ws_kafka_broker *b;
    struct ws_kafka_reader *r;
    struct ws_kafka_producer *p;
    struct dr_state d = {0};
    struct ws_kafka_conf c = {0};
    double t0;

    b = ws_kafka_broker_new(NULL, NPART, errbuf, sizeof(errbuf));
    if (!b) {
        fprintf(stderr, "cannot start the embedded broker: %s\n", errbuf);
        return 1;
    }
    c.bootstrap = ws_kafka_broker_bootstrap(b);
    CHECK_OK(ws_kafka_broker_create_topic(b, "orders", NPART, errbuf, sizeof(errbuf)));
    test_bad_properties(c.bootstrap);

    p = ws_kafka_producer_new(&c, on_dr, &d, errbuf, sizeof(errbuf));
    t0 = now_ms();
    r = ws_kafka_reader_new(&c, errbuf, sizeof(errbuf));
    printf("reader creation: %.2f ms\n", now_ms() - t0);
    CHECK(p && r);
    if (!p || !r)
        return 1;
    produce_orders(p, &d);
    test_ranges(r, b, p);
    test_reuse(r);
    test_read_all(r, b);
    test_not_retained(r, b, p, &d);
    test_performance(r, b, p, &d);

    ws_kafka_reader_destroy(r);
    ws_kafka_producer_destroy(p);
    ws_kafka_broker_destroy(b);
    printf("test_kafka_range: %lu checks, %lu failed\n", checks, failures);
    if (failures)
        return 1;
    printf("test_kafka_range: %lu checks passed\n", checks);
    return 0;
}
