/*
 * kafka_times.c — timings read from Kafka and from bare clients (benchlib.h): what
 * `bench_slowstore latency` and `firstread` hold the engine against.
 *
 * bench_read_times reads a tag's notifications and attestations topics back whole
 * (ws_kafka_read_all) and keeps, by batch id, the CreateTime of the query's first notification
 * (its batchId field) and first attestation (its windowseal.batch-id header): the broker's
 * clock on both ends, so the difference is what a consumer of the attestations topic would see.
 * A record with another timestamp type dies: LogAppendTime would measure something else.
 * The bare consumer is a ws_kafka_consumer of its own group on the same notifications topic, in
 * a thread: when it gets each notification (wall clock, as CreateTime) is what Kafka delivery
 * alone costs. The bench_t_* helpers time one reader or producer call each, and die if it fails.
 */
#include "benchlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ts_map {
    const char *key;
    int64_t *ts; /* CreateTime by batch id, -1: not seen */
    int n;
    int ts_type_bad;
};

static int64_t parse_int(const void *p, int32_t len, const char *after)
{
    char buf[256];
    size_t n = len < 0 ? 0 : (size_t)len < sizeof buf - 1 ? (size_t)len : sizeof buf - 1;
    memcpy(buf, p, n);
    buf[n] = '\0';
    if (after) {
        char *s = strstr(buf, after);
        return s ? strtoll(s + strlen(after), NULL, 10) : -1;
    }
    return n ? strtoll(buf, NULL, 10) : -1;
}

static void ts_put(struct ts_map *m, const struct ws_record *r, int64_t b)
{
    if (r->key_len != (int32_t)strlen(m->key) || memcmp(r->key, m->key, (size_t)r->key_len))
        return;
    if (b >= 0 && b < m->n && m->ts[b] < 0) {
        m->ts[b] = r->timestamp;
        m->ts_type_bad += r->ts_type != 1; /* 1: CreateTime */
    }
}

static ws_err_t notif_ts_cb(void *o, const struct ws_record *r)
{
    ts_put(o, r, parse_int(r->value, r->value_len, "\"batchId\":"));
    return WS_OK;
}

static ws_err_t att_ts_cb(void *o, const struct ws_record *r)
{
    for (uint32_t i = 0; i < r->header_count; i++)
        if (r->headers[i].name_len == 19 && !memcmp(r->headers[i].name, "windowseal.batch-id", 19))
            ts_put(o, r, parse_int(r->headers[i].value, r->headers[i].value_len, NULL));
    return WS_OK;
}

void bench_read_times(struct bench *B, const char *tag, const char *query, int n, int64_t *nt,
                      int64_t *at)
{
    struct ws_kafka_conf kc = {B->boot, NULL, NULL, 0};
    char errbuf[512], name[128];
    struct ws_kafka_reader *rd = ws_kafka_reader_new(&kc, errbuf, sizeof errbuf);
    struct ts_map mn = {query, nt, n, 0}, ma = {query, at, n, 0};

    if (!rd)
        bench_die("reader", errbuf);
    for (int i = 0; i < n; i++)
        nt[i] = at[i] = -1;
    snprintf(name, sizeof name, "%s.batches", tag);
    if (ws_kafka_read_all(rd, name, notif_ts_cb, &mn, 30000, errbuf, sizeof errbuf))
        bench_die("read notifications", errbuf);
    snprintf(name, sizeof name, "%s.att", tag);
    if (ws_kafka_read_all(rd, name, att_ts_cb, &ma, 30000, errbuf, sizeof errbuf))
        bench_die("read attestations", errbuf);
    if (mn.ts_type_bad || ma.ts_type_bad)
        bench_die("timestamps", "a notification or attestation without CreateTime");
    ws_kafka_reader_destroy(rd);
}

static void *bare_main(void *arg)
{
    struct bench_bare *bc = arg;
    struct ws_kafka_conf kc = {bc->B->boot, bc->group, NULL, 0};
    char errbuf[512];
    struct ws_kafka_consumer *c = ws_kafka_consumer_new(&kc, bc->topic, errbuf, sizeof errbuf);
    struct ws_kafka_msg m;

    if (!c)
        bench_die("bare consumer", errbuf);
    while (!atomic_load(&bc->stop)) {
        if (ws_kafka_consumer_poll(c, 100, &m, errbuf, sizeof errbuf) != WS_OK)
            continue;
        double w = bench_wall_ms();
        int64_t b = parse_int(m.value, m.value_len, "\"batchId\":");
        if (b >= 0 && b < BENCH_TAP_BATCHES && !bc->recv_wall[b])
            bc->recv_wall[b] = w;
        atomic_store(&bc->got_first, true);
        ws_kafka_msg_release(&m);
    }
    ws_kafka_consumer_destroy(c);
    return NULL;
}

static ws_err_t count_cb(void *o, const struct ws_record *r)
{
    (void)r;
    (*(uint64_t *)o)++;
    return WS_OK;
}

double bench_t_read(struct ws_kafka_reader *rd, const char *tp, int a, int b, int64_t from,
                    int64_t until)
{
    struct ws_kafka_range rg[16];
    char errbuf[512];
    uint64_t n = 0;
    double t0 = bench_now_ms();

    for (int i = a; i < b; i++)
        rg[i - a] = (struct ws_kafka_range){tp, i, from, until};
    if (ws_kafka_read_ranges(rd, rg, (size_t)(b - a), 30000, count_cb, &n, errbuf, sizeof errbuf))
        bench_die("read", errbuf);
    if (n != (uint64_t)((until - from) * (b - a)))
        bench_die("read", "wrong record count");
    return bench_now_ms() - t0;
}

double bench_t_wmarks(struct ws_kafka_reader *rd, const char *tp, int part)
{
    char errbuf[512];
    int64_t lo, hi;
    double t0 = bench_now_ms();
    if (ws_kafka_reader_watermarks(rd, tp, part, &lo, &hi, 30000, errbuf, sizeof errbuf))
        bench_die("watermarks", errbuf);
    return bench_now_ms() - t0;
}

double bench_t_read_all(struct ws_kafka_reader *rd, const char *tp)
{
    char errbuf[512];
    uint64_t n = 0;
    double t0 = bench_now_ms();
    if (ws_kafka_read_all(rd, tp, count_cb, &n, 30000, errbuf, sizeof errbuf))
        bench_die("read_all", errbuf);
    return bench_now_ms() - t0;
}

double bench_t_produce(struct ws_kafka_producer *p, const char *tp, int part)
{
    char errbuf[512];
    double t0 = bench_now_ms();
    if (ws_kafka_produce_sync(p, tp, part, "k", 1, "v", 1, NULL, 0, 30000, errbuf, sizeof errbuf))
        bench_die("produce", errbuf);
    return bench_now_ms() - t0;
}

void bench_bare_start(struct bench_bare *bc)
{
    if (pthread_create(&bc->th, NULL, bare_main, bc))
        bench_die("bare consumer", "pthread_create");
}

void bench_bare_stop(struct bench_bare *bc)
{
    atomic_store(&bc->stop, true);
    pthread_join(bc->th, NULL);
}
