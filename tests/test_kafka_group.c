/*
 * test_kafka_group.c — the notifications consumer against the embedded broker.
 *
 * A member of a fresh group gets every notification from the earliest offset, in order per
 * partition; commits are synchronous and per partition; a second member of the same group,
 * started after the first left, resumes exactly after the committed offsets (nothing before,
 * nothing missing); a third member joining splits the partitions and bumps the generation of the
 * member that lost one. Also: the generation counter, owns(), lag, and poll timeouts.
 */
#include "kafka/kafka.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"

static char errbuf[512];

#define N 20
#define NPART 2

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void on_dr(void *app, void *cookie, ws_err_t err, const char *reason)
{
    int *ok = app;

    if (err == WS_OK)
        (*ok)++;
    else
        fprintf(stderr, "delivery failed: %s: %s\n", ws_err_name(err), reason);
}

/* What a consumer saw: per partition, the offsets in arrival order. */
struct seen {
    int n;
    int64_t offs[NPART][N];
    int cnt[NPART];
    int bad; /* wrong content, key, timestamp or order */
};

/* Poll c until want messages were seen or ms passed; every message is checked. */
static void poll_until(struct ws_kafka_consumer *c, struct seen *s, int want, double ms)
{
    double end = now_ms() + ms;
    struct ws_kafka_msg m;

    while (s->n < want && now_ms() < end) {
        ws_err_t err = ws_kafka_consumer_poll(c, 200, &m, errbuf, sizeof(errbuf));
        char v[32], k[32];
        int i, p;

        if (err == WS_ERR_TIMEOUT)
            continue;
        if (err) {
            fprintf(stderr, "poll: %s: %s\n", ws_err_name(err), errbuf);
            continue;
        }
        p = m.partition;
        i = (int)(m.offset * NPART + p);
        snprintf(v, sizeof(v), "n%d", i);
        snprintf(k, sizeof(k), "q%d", i % 4);
        if (p < 0 || p >= NPART || i >= N || strcmp(m.topic, "notif") ||
            m.value_len != (int32_t)strlen(v) || memcmp(m.value, v, strlen(v)) ||
            m.key_len != (int32_t)strlen(k) || memcmp(m.key, k, strlen(k)) || m.timestamp <= 0 ||
            (s->cnt[p] && m.offset <= s->offs[p][s->cnt[p] - 1])) {
            s->bad++;
        } else {
            s->offs[p][s->cnt[p]++] = m.offset;
        }
        s->n++;
        ws_kafka_msg_release(&m);
        CHECK(m.handle_ == NULL);
    }
}

int main(void)
{
    struct ws_kafka_conf conf = {.group_id = "g1"};
    struct ws_kafka_consumer *a, *b, *c;
    struct ws_kafka_producer *p;
    struct ws_kafka_broker *bk;
    struct seen sa = {0}, sb = {0}, sc = {0};
    struct ws_kafka_msg m;
    uint64_t gen_a, gen_b;
    int64_t lag = -1;
    double t0;
    int i, ok = 0, pp;
    ws_err_t err;

    if (!(bk = ws_kafka_broker_new(NULL, NPART, errbuf, sizeof(errbuf)))) {
        fprintf(stderr, "cannot start the embedded broker: %s\n", errbuf);
        return 1;
    }
    conf.bootstrap = ws_kafka_broker_bootstrap(bk);
    CHECK_OK(ws_kafka_broker_create_topic(bk, "notif", NPART, errbuf, sizeof(errbuf)));

    /* Notifications posted before any consumer exists. */
    p = ws_kafka_producer_new(&conf, on_dr, &ok, errbuf, sizeof(errbuf));
    CHECK(p != NULL);
    if (!p)
        return 1;
    for (i = 0; i < N; i++) {
        char k[32], v[32];

        snprintf(k, sizeof(k), "q%d", i % 4);
        snprintf(v, sizeof(v), "n%d", i);
        CHECK_OK(ws_kafka_produce(p, "notif", i % NPART, k, strlen(k), v, strlen(v), NULL, 0, NULL,
                                  errbuf, sizeof(errbuf)));
    }
    CHECK_OK(ws_kafka_producer_flush(p, 10000));
    CHECK(ok == N);

    /* First member: everything from the earliest offset. */
    a = ws_kafka_consumer_new(&conf, "notif", errbuf, sizeof(errbuf));
    CHECK(a != NULL);
    if (!a)
        return 1;
    CHECK(ws_kafka_consumer_generation(a) == 0);
    t0 = now_ms();
    poll_until(a, &sa, N, 20000);
    printf("first member: %d notifications in %.0f ms (group join included)\n", sa.n,
           now_ms() - t0);
    CHECK(sa.n == N);
    CHECK(sa.bad == 0);
    for (pp = 0; pp < NPART; pp++) {
        CHECK(sa.cnt[pp] == N / NPART);
        CHECK(sa.offs[pp][0] == 0);
    }
    gen_a = ws_kafka_consumer_generation(a);
    CHECK(gen_a >= 1);
    CHECK(ws_kafka_consumer_owns(a, 0) && ws_kafka_consumer_owns(a, 1));
    CHECK(!ws_kafka_consumer_owns(a, 2));
    CHECK_OK(ws_kafka_consumer_lag(a, &lag));
    CHECK(lag == 0);
    /* Nothing more: a poll times out within its timeout. */
    t0 = now_ms();
    err = ws_kafka_consumer_poll(a, 300, &m, errbuf, sizeof(errbuf));
    CHECK(err == WS_ERR_TIMEOUT);
    CHECK(now_ms() - t0 < 300 + 300);

    /* Commit: partition 0 processed up to offset 3, partition 1 up to offset 6. */
    CHECK_OK(ws_kafka_consumer_commit(a, 0, 4, true, errbuf, sizeof(errbuf)));
    CHECK_OK(ws_kafka_consumer_commit(a, 1, 7, true, errbuf, sizeof(errbuf)));
    CHECK(ws_kafka_consumer_commit(a, 0, -1, true, errbuf, sizeof(errbuf)) == WS_ERR_INVALID);
    t0 = now_ms();
    ws_kafka_consumer_destroy(a);
    printf("first member left the group in %.0f ms\n", now_ms() - t0);

    /* Second member of the same group resumes after the committed offsets. */
    b = ws_kafka_consumer_new(&conf, "notif", errbuf, sizeof(errbuf));
    CHECK(b != NULL);
    if (!b)
        return 1;
    t0 = now_ms();
    poll_until(b, &sb, (N / NPART - 4) + (N / NPART - 7), 20000);
    printf("second member: %d notifications in %.0f ms\n", sb.n, now_ms() - t0);
    CHECK(sb.bad == 0);
    CHECK(sb.cnt[0] == N / NPART - 4 && sb.offs[0][0] == 4);
    CHECK(sb.cnt[1] == N / NPART - 7 && sb.offs[1][0] == 7);
    poll_until(b, &sb, sb.n + 1, 500); /* and nothing else */
    CHECK(sb.n == (N / NPART - 4) + (N / NPART - 7));
    CHECK_OK(ws_kafka_consumer_commit(b, 0, N / NPART, true, errbuf, sizeof(errbuf)));
    CHECK_OK(ws_kafka_consumer_commit(b, 1, N / NPART, true, errbuf, sizeof(errbuf)));

    /* A third member joins: the partitions are split and b's generation moves on. */
    gen_b = ws_kafka_consumer_generation(b);
    c = ws_kafka_consumer_new(&conf, "notif", errbuf, sizeof(errbuf));
    CHECK(c != NULL);
    if (!c)
        return 1;
    t0 = now_ms();
    while (now_ms() - t0 < 20000 &&
           !(ws_kafka_consumer_owns(b, 0) + ws_kafka_consumer_owns(b, 1) == 1 &&
             ws_kafka_consumer_owns(c, 0) + ws_kafka_consumer_owns(c, 1) == 1)) {
        poll_until(b, &sb, sb.n + 1, 100);
        poll_until(c, &sc, sc.n + 1, 100);
    }
    printf("rebalance to two members: %.0f ms; generations b %llu -> %llu, c %llu\n", now_ms() - t0,
           (unsigned long long)gen_b, (unsigned long long)ws_kafka_consumer_generation(b),
           (unsigned long long)ws_kafka_consumer_generation(c));
    CHECK(ws_kafka_consumer_owns(b, 0) != ws_kafka_consumer_owns(c, 0));
    CHECK(ws_kafka_consumer_owns(b, 1) != ws_kafka_consumer_owns(c, 1));
    CHECK(ws_kafka_consumer_generation(b) > gen_b);
    CHECK(ws_kafka_consumer_generation(c) >= 1);
    CHECK(sb.n == (N / NPART - 4) + (N / NPART - 7)); /* everything was committed: no repeats */
    CHECK(sc.n == 0);

    ws_kafka_consumer_destroy(c);
    ws_kafka_consumer_destroy(b);
    ws_kafka_producer_destroy(p);
    ws_kafka_broker_destroy(bk);
    printf("test_kafka_group: %lu checks, %lu failed\n", checks, failures);
    if (failures)
        return 1;
    printf("test_kafka_group: %lu checks passed\n", checks);
    return 0;
}
