/*
 * demo.c — `windowseal demo [--out DIR]`: the whole product in one process, on real protocols.
 *
 * An embedded Kafka-protocol broker (librdkafka's mock cluster, over TCP), a fresh signing key,
 * and two synthetic Spark queries:
 *   orders-to-iceberg   reads `orders` (4 partitions: keys, null keys, headers) and writes data
 *                       files; posts the native foreachBatch notification with its outputs;
 *   payments-scoring    reads `payments` (2 partitions, binary values) and posts Spark's
 *                       StreamingQueryProgress JSON, as a StreamingQueryListener would.
 * Batches include an empty one, and one malformed notification shows the dead-letter path. The
 * engine attests everything through the same code as `windowseal run`; the demo then audits
 * every chain it wrote, and exits 0 only if all of it verifies.
 */
#include "cli/cli.h"
#include "disk/disk.h"
#include "kafka/kafka.h"
#include "sinks/sink.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define ORDERS_QUERY "8c5e7f5a-0d4c-4b53-9d1e-6f1c2a3b4c5d"
#define PAYMENTS_QUERY "3f2b9c1e-7a6d-4e8f-b0c1-d2e3f4a5b6c7"
#define NBATCH 5

struct demo {
    struct ws_kafka_producer *p;
    const char *out;
    int64_t orders_next[4], payments_next[2];
    unsigned seed;
};

static bool produce(struct demo *d, const char *topic, int32_t part, const char *key,
                    const void *val, size_t vlen, const struct ws_header *h, size_t nh)
{
    char errbuf[384];

    if (ws_kafka_produce_sync(d->p, topic, part, key, key ? strlen(key) : 0, val, vlen, h, nh,
                              30000, errbuf, sizeof errbuf)) {
        fprintf(stderr, "demo: %s\n", errbuf);
        return false;
    }
    return true;
}

/* One batch of source data; returns the records written. */
static int make_batch(struct demo *d, int b, char *sources_json, size_t cap, char *files_json,
                      size_t fcap)
{
    char key[64], val[512], trace[40], path[PATH_MAX];
    int n = 0, per = (b == 2) ? 0 : 40 + 15 * b; /* batch 2: no new data, an empty window */
    size_t off = 0;
    FILE *f;

    snprintf(path, sizeof path, "%s/warehouse/ods/orders/data/%05d-0-demo.jsonl", d->out, b);
    f = fopen(path, "w");
    off += (size_t)snprintf(sources_json + off, cap - off, "[");
    for (int p = 0; p < 4; p++) {
        int64_t from = d->orders_next[p];
        for (int i = 0; i < per; i++, n++) {
            int cust = (int)(rand_r(&d->seed) % 500);
            struct ws_header h[2] = {{"trace-id", 8, trace, 0}, {"origin", 6, NULL, -1}};
            snprintf(key, sizeof key, "customer-%d", cust);
            h[0].value_len =
                snprintf(trace, sizeof trace, "%08x%08x", rand_r(&d->seed), rand_r(&d->seed));
            int vl = snprintf(val, sizeof val,
                              "{\"order\":%d,\"customer\":%d,\"amount\":%d.%02d,\"items\":%d}",
                              b * 10000 + p * 1000 + i, cust, (int)(rand_r(&d->seed) % 900),
                              (int)(rand_r(&d->seed) % 100), 1 + (int)(rand_r(&d->seed) % 5));
            if (!produce(d, "orders", p, (i % 17 == 0) ? NULL : key, val, (size_t)vl, h,
                         (i % 5 == 0) ? 2 : 1)) {
                if (f)
                    fclose(f);
                return -1;
            }
            if (f)
                fprintf(f, "%s\n", val);
        }
        d->orders_next[p] += per;
        off += (size_t)snprintf(sources_json + off, cap - off,
                                "%s{\"topic\":\"orders\",\"partition\":%d,\"fromOffset\":%lld,"
                                "\"untilOffset\":%lld}",
                                p ? "," : "", p, (long long)from, (long long)d->orders_next[p]);
    }
    snprintf(sources_json + off, cap - off, "]");
    if (f)
        fclose(f);
    snprintf(files_json, fcap, "[\"%s\"%s]", path,
             b == 3 ? ",\"s3://warehouse/ods/orders/data/elsewhere.parquet\"" : "");
    return n;
}

static int make_payments(struct demo *d, int b, char *start, size_t scap, char *end, size_t ecap)
{
    uint8_t val[64];
    int n = 0, per = (b == 2) ? 0 : 25 + 5 * b;

    snprintf(start, scap, "{\"payments\":{\"1\":%lld,\"0\":%lld}}", (long long)d->payments_next[1],
             (long long)d->payments_next[0]);
    for (int p = 0; p < 2; p++) {
        for (int i = 0; i < per; i++, n++) {
            for (size_t k = 0; k < sizeof val; k++)
                val[k] = (uint8_t)rand_r(&d->seed);
            if (!produce(d, "payments", p, (i % 9 == 0) ? NULL : "card", val,
                         (i % 11 == 0) ? 0 : sizeof val, NULL, 0))
                return -1;
        }
        d->payments_next[p] += per;
    }
    snprintf(end, ecap, "{\"payments\":{\"0\":%lld,\"1\":%lld}}", (long long)d->payments_next[0],
             (long long)d->payments_next[1]);
    return n;
}

static bool notify(struct demo *d, const char *key, const char *json)
{
    return produce(d, "windowseal.batches", 0, key, json, strlen(json), NULL, 0);
}

static bool post_batches(struct demo *d)
{
    char src[2048], files[PATH_MAX * 2], json[8192], start[256], end[256];

    for (int b = 0; b < NBATCH; b++) {
        int n = make_batch(d, b, src, sizeof src, files, sizeof files);
        if (n < 0)
            return false;
        snprintf(json, sizeof json,
                 "{\"queryId\":\"%s\",\"runId\":\"5a1d9c0e-0000-4000-8000-00000000000%d\","
                 "\"name\":\"orders-to-iceberg\",\"batchId\":%d,\"sources\":%s,"
                 "\"outputs\":[{\"name\":\"iceberg.ods.orders\",\"snapshotId\":\"%lld\","
                 "\"files\":%s}]}",
                 ORDERS_QUERY, b < 3 ? 1 : 2, b, src, 5937117119577207079LL + b, files);
        if (!notify(d, ORDERS_QUERY, json))
            return false;
        int m = make_payments(d, b, start, sizeof start, end, sizeof end);
        char esc[512], *o = esc;
        if (m < 0)
            return false;
        /* endOffset as a string holding JSON, as Spark's progress.json has it. */
        for (const char *c = end; *c && o < esc + sizeof esc - 3; c++) {
            if (*c == '"')
                *o++ = '\\';
            *o++ = *c;
        }
        *o = '\0';
        snprintf(json, sizeof json,
                 "{\"id\":\"%s\",\"runId\":\"9e8d7c6b-0000-4000-8000-000000000001\","
                 "\"name\":\"payments-scoring\",\"timestamp\":\"2026-11-22T00:00:0%d.000Z\","
                 "\"batchId\":%d,\"numInputRows\":%d,\"sources\":[{\"description\":"
                 "\"KafkaV2[Subscribe[payments]]\",\"startOffset\":%s,\"endOffset\":\"%s\","
                 "\"numInputRows\":%d},{\"description\":\"RateStreamV2[rowsPerSecond=1]\","
                 "\"startOffset\":1,\"endOffset\":2}],"
                 "\"sink\":{\"description\":\"ForeachBatchSink\"}}",
                 PAYMENTS_QUERY, b, b, m, start, esc, m);
        if (!notify(d, PAYMENTS_QUERY, json))
            return false;
        printf("  posted batch %d: orders %d records, payments %d records%s\n", b, n, m,
               b == 2 ? " (an empty window)" : "");
        if (b == 1 &&
            !notify(d, "oops", "{\"queryId\": \"../../etc\", \"batchId\": 1, \"sources\": []}"))
            return false;
    }
    return true;
}

static bool prepare_dir(const char *out, char *keypath, size_t cap)
{
    char p[PATH_MAX], why[256];
    struct stat st;

    snprintf(p, sizeof p, "%s/.windowseal-demo", out);
    if (stat(out, &st) == 0 && stat(p, &st) != 0) {
        DIR *dd = opendir(out);
        struct dirent *de;
        int entries = 0;
        while (dd && (de = readdir(dd)))
            entries += de->d_name[0] != '.';
        if (dd)
            closedir(dd);
        if (entries) {
            fprintf(stderr,
                    "windowseal demo: %s exists and is not a demo directory; choose "
                    "another --out\n",
                    out);
            return false;
        }
    }
    /* A previous demo's output: start over (its broker, and so its data, is gone). */
    snprintf(p, sizeof p, "rm -rf '%s/attestations' '%s/spool' '%s/warehouse' '%s/keys'", out, out,
             out, out);
    if (strchr(out, '\'') || system(p) != 0)
        return false;
    snprintf(p, sizeof p, "%s/warehouse/ods/orders/data", out);
    if (ws_mkdirs(p, why, sizeof why) || ws_mkdirs(out, why, sizeof why)) {
        fprintf(stderr, "windowseal demo: %s\n", why);
        return false;
    }
    snprintf(p, sizeof p, "%s/.windowseal-demo", out);
    FILE *m = fopen(p, "w");
    if (m)
        fclose(m);
    snprintf(p, sizeof p, "%s/keys", out);
    if (ws_mkdirs(p, why, sizeof why))
        return false;
    snprintf(keypath, cap, "%s/keys/windowseal.key", out);
    return true;
}

int ws_cmd_demo(int argc, char **argv)
{
    const char *out = "out/demo", *v;
    bool missing = false;
    char keypath[PATH_MAX], errbuf[1024], set[8][PATH_MAX + 64];
    const char *sets[8];
    struct ws_kafka_broker *broker = NULL;
    struct ws_config *cfg = NULL;
    struct ws_engine *e = NULL;
    struct ws_engine_stats st;
    struct ws_key key;
    struct demo d = {0};
    int rc = WS_EXIT_RUNTIME;

    for (int i = 1; i < argc; i++) {
        if ((v = ws_cli_opt(argc, argv, &i, "--out", &missing)))
            out = v;
        else {
            fprintf(stderr, "usage: windowseal demo [--out DIR]\n");
            return WS_EXIT_USAGE;
        }
    }
    if (missing) {
        fprintf(stderr, "usage: windowseal demo [--out DIR]\n");
        return WS_EXIT_USAGE;
    }
    d.out = out;
    d.seed = 42;
    printf("windowseal demo — attesting two synthetic Spark queries on an embedded broker\n");
    if (!prepare_dir(out, keypath, sizeof keypath))
        return WS_EXIT_USAGE;
    if (ws_key_generate(&key) || ws_key_save(keypath, &key, errbuf, sizeof errbuf)) {
        fprintf(stderr, "windowseal demo: key: %s\n", errbuf);
        return WS_EXIT_RUNTIME;
    }
    printf("  key: %s (keyid %.16s…)\n", keypath, key.keyid);
    ws_key_wipe(&key);
    if (!(broker = ws_kafka_broker_new(NULL, 1, errbuf, sizeof errbuf))) {
        fprintf(stderr, "windowseal demo: broker: %s\n", errbuf);
        return WS_EXIT_RUNTIME;
    }
    printf("  broker: %s (librdkafka mock cluster, Kafka protocol over TCP)\n",
           ws_kafka_broker_bootstrap(broker));
    if (ws_kafka_broker_create_topic(broker, "orders", 4, errbuf, sizeof errbuf) ||
        ws_kafka_broker_create_topic(broker, "payments", 2, errbuf, sizeof errbuf) ||
        ws_kafka_broker_create_topic(broker, "windowseal.batches", 2, errbuf, sizeof errbuf)) {
        fprintf(stderr, "windowseal demo: topics: %s\n", errbuf);
        goto out_broker;
    }
    snprintf(set[0], sizeof set[0], "kafka.bootstrap.servers=%s",
             ws_kafka_broker_bootstrap(broker));
    snprintf(set[1], sizeof set[1], "signing.key=%s", keypath);
    snprintf(set[2], sizeof set[2], "sinks=[{\"type\":\"file\",\"path\":\"%s/attestations\"}]",
             out);
    snprintf(set[3], sizeof set[3], "spool.path=%s/spool", out);
    snprintf(set[4], sizeof set[4], "log.level=warn");
    snprintf(set[5], sizeof set[5], "engine.gap_wait_ms=1000");
    for (int i = 0; i < 6; i++)
        sets[i] = set[i];
    if (ws_config_load(NULL, sets, 6, ws_sink_types(), &cfg, errbuf, sizeof errbuf)) {
        fprintf(stderr, "windowseal demo: config: %s\n", errbuf);
        goto out_broker;
    }
    ws_log_setup(cfg->log_level, cfg->log_format);
    /* The demo talks to no real object store: its s3:// output must come out "not readable"
     * (no credentials), not wait for a store the shell's AWS_* variables might point at. */
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    unsetenv("AWS_SESSION_TOKEN");
    struct ws_kafka_conf kc = {cfg->bootstrap, NULL, NULL, 0};
    if (!(d.p =
              ws_kafka_producer_new(&kc, ws_kafka_delivery_report, NULL, errbuf, sizeof errbuf))) {
        fprintf(stderr, "windowseal demo: producer: %s\n", errbuf);
        goto out_config;
    }
    printf("posting source records and batch notifications (as foreachBatch / a "
           "StreamingQueryListener would):\n");
    if (!post_batches(&d))
        goto out_producer;
    printf("attesting (windowseal engine, group %s):\n", cfg->group_id);
    if (ws_engine_new(cfg, &e, errbuf, sizeof errbuf)) {
        fprintf(stderr, "windowseal demo: engine: %s\n", errbuf);
        goto out_producer;
    }
    int64_t deadline = ws_clock_ms() + 90000;
    uint64_t shown = 0;
    do {
        if (ws_engine_step(e, 50))
            break;
        ws_engine_get_stats(e, &st);
        if (st.windows != shown) {
            shown = st.windows;
            printf("  %llu/%d windows attested, %llu records\n", (unsigned long long)shown,
                   2 * NBATCH, (unsigned long long)st.records);
            fflush(stdout);
        }
    } while ((st.windows < 2 * NBATCH || st.deadlettered < 1 || !ws_engine_idle(e)) &&
             ws_clock_ms() < deadline);
    ws_engine_get_stats(e, &st);
    ws_engine_destroy(e);
    printf("\nsummary: %llu windows, %llu records, %llu bytes attested; %llu notification "
           "dead-lettered (unsafe query id), %llu duplicates, %llu conflicts\n",
           (unsigned long long)st.windows, (unsigned long long)st.records,
           (unsigned long long)st.bytes, (unsigned long long)st.deadlettered,
           (unsigned long long)st.duplicates, (unsigned long long)st.conflicts);
    printf("artifacts: %s/attestations/<queryId>/<batch20>.dsse.json and .evidence.lz4\n", out);
    printf("\nverifying everything written (windowseal audit %s/attestations --pubkey %s.pub):\n",
           out, keypath);
    {
        char pub[PATH_MAX + 8], dir[PATH_MAX];
        snprintf(pub, sizeof pub, "%s.pub", keypath);
        snprintf(dir, sizeof dir, "%s/attestations", out);
        char *av[] = {"audit", dir, "--pubkey", pub, NULL};
        rc = ws_cmd_audit(4, av);
    }
    if (rc == WS_EXIT_OK && st.windows != 2 * NBATCH) {
        printf("demo: expected %d windows, got %llu\n", 2 * NBATCH, (unsigned long long)st.windows);
        rc = WS_EXIT_RUNTIME;
    }
    if (rc == WS_EXIT_OK)
        printf("\ntry: windowseal verify %s/attestations/%s/00000000000000000001.dsse.json "
               "--pubkey %s.pub --evidence %s/attestations/%s/00000000000000000001.evidence.lz4\n",
               out, ORDERS_QUERY, keypath, out, ORDERS_QUERY);
out_producer:
    if (ws_kafka_producer_flush(d.p, 5000)) {
    }
    ws_kafka_producer_destroy(d.p);
out_config:
    ws_config_free(cfg);
out_broker:
    ws_kafka_broker_destroy(broker);
    return rc;
}
