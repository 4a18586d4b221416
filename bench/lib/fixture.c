/*
 * fixture.c — what every engine bench sets up (benchlib.h): an embedded broker and a signing key
 * in a temporary directory, producers, 100-byte records, native notifications, engines
 * configured as `windowseal run --set ...` would be, and stepping them until windows are
 * attested.
 *
 * Setup is never what a bench times: data producers batch (linger 5 ms), notification producers
 * do not (linger 0, as a Spark driver posts them); every failure dies (bench_die). Record values
 * are 100-byte slices of one fixed pseudo-random buffer, so that runs compare. Engines take
 * every setting through ws_config_load's `sets`, the path the command line takes, with
 * engine.gap_wait_ms=0 (a bench posts its notifications in order); each engine has topics,
 * group and spool of its own, named after its tag, so that several engines share one broker.
 */
#include "benchlib.h"
#include "disk/disk.h"
#include "sinks/sink.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint8_t g_val[4096];

struct ws_kafka_producer *bench_producer(const char *bootstrap, bool batched)
{
    /* Setup speed only for data (never timed); notifications go out unbatched (linger 0). */
    static const char *const props[] = {
        "linger.ms", "5", "batch.num.messages", "10000", "queue.buffering.max.messages", "1000000"};
    struct ws_kafka_conf kc = {bootstrap, NULL, batched ? props : NULL, batched ? 3 : 0};
    char errbuf[512];
    struct ws_kafka_producer *p =
        ws_kafka_producer_new(&kc, ws_kafka_delivery_report, NULL, errbuf, sizeof errbuf);
    if (!p)
        bench_die("producer", errbuf);
    return p;
}

/* n records (100 B values) to topic[part], asynchronously. */
void bench_produce_records(struct ws_kafka_producer *p, const char *topic, int part, int n)
{
    char errbuf[512], key[16];

    for (int r = 0; r < n; r++) {
        int klen = snprintf(key, sizeof key, "k%d", r & 0xff);
        ws_err_t err;
        while ((err = ws_kafka_produce(p, topic, part, key, (size_t)klen, g_val + (r * 37) % 3000,
                                       100, NULL, 0, NULL, errbuf, sizeof errbuf)) == WS_ERR_AGAIN)
            ws_kafka_producer_poll(p, 1);
        if (err)
            bench_die("produce", errbuf);
    }
}

void bench_flush(struct ws_kafka_producer *p)
{
    if (ws_kafka_producer_flush(p, 60000))
        bench_die("flush", "records not delivered in 60 s");
}

/* Native notification (FORMAT.md): one source per range, all of topic. */
void bench_notification(char *json, size_t cap, const char *query, int64_t batch, const char *topic,
                        const struct bench_range *rg, int n)
{
    size_t off = (size_t)snprintf(json, cap, "{\"queryId\":\"%s\",\"batchId\":%lld,\"sources\":[",
                                  query, (long long)batch);
    for (int i = 0; i < n && off < cap; i++)
        off += (size_t)snprintf(json + off, cap - off,
                                "%s{\"topic\":\"%s\",\"partition\":%d,\"fromOffset\":%lld,"
                                "\"untilOffset\":%lld}",
                                i ? "," : "", topic, rg[i].part, (long long)rg[i].from,
                                (long long)rg[i].until);
    if (off < cap)
        snprintf(json + off, cap - off, "]}");
}

void bench_post(struct ws_kafka_producer *p, const char *topic, const char *query, const char *json)
{
    bench_post_to(p, topic, -1, query, json);
}

void bench_post_to(struct ws_kafka_producer *p, const char *topic, int partition, const char *query,
                   const char *json)
{
    char errbuf[512];
    ws_err_t err;

    while ((err = ws_kafka_produce(p, topic, partition, query, strlen(query), json, strlen(json),
                                   NULL, 0, NULL, errbuf, sizeof errbuf)) == WS_ERR_AGAIN)
        ws_kafka_producer_poll(p, 1);
    if (err)
        bench_die("notification", errbuf);
}

void bench_open(struct bench *B)
{
    char errbuf[512];
    struct ws_key k;

    snprintf(B->dir, sizeof B->dir, "/tmp/ws_bench_slow_XXXXXX");
    if (!mkdtemp(B->dir))
        bench_die("mkdtemp", strerror(errno));
    if (!(B->b = ws_kafka_broker_new(NULL, 1, errbuf, sizeof errbuf)))
        bench_die("broker", errbuf);
    B->boot = ws_kafka_broker_bootstrap(B->b);
    snprintf(B->key, sizeof B->key, "%s/k", B->dir);
    if (ws_key_generate(&k) || ws_key_save(B->key, &k, errbuf, sizeof errbuf))
        bench_die("key", errbuf);
    ws_key_wipe(&k);
    for (size_t i = 0; i < sizeof g_val; i++)
        g_val[i] = (uint8_t)((i * 2654435761u) >> 13);
}

void bench_close(struct bench *B)
{
    char cmd[128];

    ws_kafka_broker_destroy(B->b);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", B->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", B->dir);
}

void bench_topic(struct bench *B, const char *name, int partitions)
{
    char errbuf[512];
    if (ws_kafka_broker_create_topic(B->b, name, partitions, errbuf, sizeof errbuf))
        bench_die(name, errbuf);
}

/*
 * An engine on its own notifications topic, attestations topic, group and spool (all named
 * after tag); sinks_json: the `sinks` array. props_json: kafka.properties or NULL (defaults).
 */
struct ws_engine *bench_engine(struct bench *B, const char *tag, const char *sinks_json,
                               const char *props_json, struct ws_config **cfgp)
{
    return bench_engine_member(B, tag, NULL, sinks_json, props_json, cfgp);
}

struct ws_engine *bench_engine_member(struct bench *B, const char *tag, const char *member,
                                      const char *sinks_json, const char *props_json,
                                      struct ws_config **cfgp)
{
    char errbuf[1024], set[16][1200];
    const char *sets[16];
    const char *more = getenv("WS_BENCH_SET"); /* "key=value;key=value": experiments only */
    struct ws_engine *e;
    size_t n = 0;

    snprintf(set[n++], sizeof set[0], "kafka.bootstrap.servers=%s", B->boot);
    snprintf(set[n++], sizeof set[0], "kafka.group.id=%s.group", tag);
    snprintf(set[n++], sizeof set[0], "kafka.notifications.topic=%s.batches", tag);
    snprintf(set[n++], sizeof set[0], "kafka.attestations.topic=%s.att", tag);
    snprintf(set[n++], sizeof set[0], "signing.key=%s", B->key);
    snprintf(set[n++], sizeof set[0], "sinks=%s", sinks_json);
    snprintf(set[n++], sizeof set[0], "spool.path=%s/%s%s%s.spool", B->dir, tag, member ? "." : "",
             member ? member : "");
    snprintf(set[n++], sizeof set[0], "engine.gap_wait_ms=0");
    if (props_json)
        snprintf(set[n++], sizeof set[0], "kafka.properties=%s", props_json);
    while (more && *more && n < sizeof set / sizeof set[0]) {
        size_t len = strcspn(more, ";");
        snprintf(set[n++], sizeof set[0], "%.*s", (int)len, more);
        more += len + (more[len] == ';');
    }
    for (size_t i = 0; i < n; i++)
        sets[i] = set[i];
    if (ws_config_load(NULL, sets, n, ws_sink_types(), cfgp, errbuf, sizeof errbuf))
        bench_die("config", errbuf);
    if (ws_engine_new(*cfgp, &e, errbuf, sizeof errbuf))
        bench_die("engine", errbuf);
    return e;
}

/* Step e until `windows` windows are attested in all (or a dead letter, or timeout_s). */
bool bench_step_until(struct ws_engine *e, struct ws_kafka_producer *p, uint64_t windows,
                      double timeout_s)
{
    struct ws_engine_stats st;
    double t0 = bench_now_ms();

    do {
        if (p)
            ws_kafka_producer_poll(p, 0);
        if (ws_engine_step(e, 1))
            bench_die("engine", "step failed");
        ws_engine_get_stats(e, &st);
    } while (st.windows < windows && st.deadlettered == 0 && bench_now_ms() - t0 < timeout_s * 1e3);
    if (st.deadlettered)
        fprintf(stderr, "%s: %llu notification(s) dead-lettered (see the log)\n", bench_prog,
                (unsigned long long)st.deadlettered);
    return st.windows >= windows;
}

/* The same as `windowseal run` steps: ws_engine_step(e, 100). */
bool bench_step_until_run(struct ws_engine *e, uint64_t windows, double timeout_s)
{
    struct ws_engine_stats st;
    double t0 = bench_now_ms();

    do {
        if (ws_engine_step(e, 100))
            bench_die("engine", "step failed");
        ws_engine_get_stats(e, &st);
    } while (st.windows < windows && st.deadlettered == 0 && bench_now_ms() - t0 < timeout_s * 1e3);
    return st.windows >= windows;
}
