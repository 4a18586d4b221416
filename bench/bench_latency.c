/*
 * bench_latency.c — window latency: notification produced -> window attested.
 *
 * In one process: the embedded broker, the engine (same code as `windowseal run`, file sink +
 * attestations topic), and a producer posting source records and then one native notification
 * per window. Latency is measured from just before the notification is produced to the moment
 * the engine has the window in every sink, its chain head acknowledged and its offset committed
 * (a superset of "attestation on the topic", which is published before the head). Baseline in
 * the same run: a bare fetch of the same ranges with a reused range reader.
 *
 *   bench_latency [WINDOWS_PER_SIZE]      default 200 (and 10 for 100k-record windows)
 */
#include "engine/engine.h"
#include "disk/disk.h" /* ws_log_setup */
#include "kafka/kafka.h"
#include "sinks/sink.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NPART 8

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double p)
{
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    int i = (int)(p * (n - 1) + 0.5);
    return v[i];
}

static ws_err_t count_cb(void *o, const struct ws_record *r)
{
    (*(uint64_t *)o)++;
    return WS_OK;
}

int main(int argc, char **argv)
{
    int nwin = argc > 1 ? atoi(argv[1]) : 200;
    const int sizes[] = {1, 1000, 100000};
    char errbuf[512], dir[] = "/tmp/ws_bench_lat_XXXXXX", key[600], set[7][700];
    const char *sets[7];
    struct ws_kafka_broker *b;
    struct ws_kafka_producer *p;
    struct ws_kafka_reader *rd;
    struct ws_config *cfg;
    struct ws_engine *e;
    struct ws_key k;
    int64_t next[NPART] = {0};
    uint8_t val[100];

    if (!mkdtemp(dir) || !(b = ws_kafka_broker_new(NULL, 1, errbuf, sizeof errbuf)))
        return fprintf(stderr, "setup: %s\n", errbuf), 3;
    if (ws_kafka_broker_create_topic(b, "data", NPART, errbuf, sizeof errbuf) ||
        ws_kafka_broker_create_topic(b, "windowseal.batches", 1, errbuf, sizeof errbuf))
        return fprintf(stderr, "topics: %s\n", errbuf), 3;
    snprintf(key, sizeof key, "%s/k", dir);
    if (ws_key_generate(&k) || ws_key_save(key, &k, errbuf, sizeof errbuf))
        return 3;
    snprintf(set[0], sizeof set[0], "kafka.bootstrap.servers=%s", ws_kafka_broker_bootstrap(b));
    snprintf(set[1], sizeof set[1], "signing.key=%s", key);
    snprintf(set[2], sizeof set[2], "sinks=[{\"type\":\"file\",\"path\":\"%s/att\"}]", dir);
    snprintf(set[3], sizeof set[3], "spool.path=%s/spool", dir);
    snprintf(set[4], sizeof set[4], "log.level=warn");
    snprintf(set[5], sizeof set[5], "engine.gap_wait_ms=0");
    /* The embedded broker does not answer a waiting fetch early when data arrives (a real broker
     * does): poll it every millisecond, as the range reader already does. */
    snprintf(set[6], sizeof set[6], "kafka.properties={\"fetch.wait.max.ms\":\"1\"}");
    for (int i = 0; i < 7; i++)
        sets[i] = set[i];
    if (ws_config_load(NULL, sets, 7, ws_sink_types(), &cfg, errbuf, sizeof errbuf))
        return fprintf(stderr, "config: %s\n", errbuf), 3;
    ws_log_setup("warn", "logfmt");
    struct ws_kafka_conf kc = {cfg->bootstrap, NULL, NULL, 0};
    if (!(p = ws_kafka_producer_new(&kc, ws_kafka_delivery_report, NULL, errbuf, sizeof errbuf)) ||
        !(rd = ws_kafka_reader_new(&kc, errbuf, sizeof errbuf)) ||
        ws_engine_new(cfg, &e, errbuf, sizeof errbuf))
        return fprintf(stderr, "clients: %s\n", errbuf), 3;
    for (size_t i = 0; i < sizeof val; i++)
        val[i] = (uint8_t)(i * 7);

    printf("window latency: notification produced -> attested (every sink + chain head + "
           "commit)\nbaseline: bare range fetch of the same records with a reused reader\n\n");
    printf("%-10s %8s %10s %10s %12s %12s\n", "records", "windows", "p50 ms", "p99 ms", "fetch p50",
           "p50 ratio");
    int64_t batch = 0;
    /* Warm-up: the first window pays for the consumer group join (~3 s on the mock broker). */
    {
        char json[128];
        struct ws_engine_stats st;
        snprintf(json, sizeof json, "{\"queryId\":\"bench\",\"batchId\":0,\"sources\":[]}");
        if (ws_kafka_produce(p, "windowseal.batches", 0, "bench", 5, json, strlen(json), NULL, 0,
                             NULL, errbuf, sizeof errbuf))
            return 3;
        double t0 = now_ms();
        do {
            ws_kafka_producer_poll(p, 0);
            if (ws_engine_step(e, 5))
                return 3;
            ws_engine_get_stats(e, &st);
        } while (st.windows == 0 && now_ms() - t0 < 60000);
        batch = 1;
    }
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        int n = sizes[s] >= 100000 ? (nwin < 10 ? nwin : 10) : nwin;
        double *lat = calloc((size_t)n, sizeof *lat), *fet = calloc((size_t)n, sizeof *fet);
        for (int w = 0; w < n; w++, batch++) {
            char json[4096];
            size_t off = 0;
            int64_t from[NPART];
            struct ws_kafka_delivery d = {0};
            struct ws_engine_stats st0, st;
            memcpy(from, next, sizeof from);
            for (int r = 0; r < sizes[s]; r++) {
                int part = r % NPART;
                while (ws_kafka_produce(p, "data", part, "k", 1, val, sizeof val, NULL, 0, NULL,
                                        errbuf, sizeof errbuf) == WS_ERR_AGAIN)
                    ws_kafka_producer_poll(p, 1);
                next[part]++;
            }
            if (ws_kafka_producer_flush(p, 60000))
                return fprintf(stderr, "flush failed\n"), 3;
            off += (size_t)snprintf(json + off, sizeof json - off,
                                    "{\"queryId\":\"bench\",\"batchId\":%lld,\"sources\":[",
                                    (long long)batch);
            for (int i = 0; i < NPART; i++)
                off +=
                    (size_t)snprintf(json + off, sizeof json - off,
                                     "%s{\"topic\":\"data\",\"partition\":%d,\"fromOffset\":%lld,"
                                     "\"untilOffset\":%lld}",
                                     i ? "," : "", i, (long long)from[i], (long long)next[i]);
            snprintf(json + off, sizeof json - off, "]}");
            ws_engine_get_stats(e, &st0);
            double t0 = now_ms();
            if (ws_kafka_produce(p, "windowseal.batches", 0, "bench", 5, json, strlen(json), NULL,
                                 0, &d, errbuf, sizeof errbuf))
                return 3;
            do {
                ws_kafka_producer_poll(p, 0);
                if (ws_engine_step(e, 1))
                    return fprintf(stderr, "engine failed\n"), 3;
                ws_engine_get_stats(e, &st);
            } while (st.windows == st0.windows && now_ms() - t0 < 60000);
            lat[w] = now_ms() - t0;
            while (!d.done)
                ws_kafka_producer_poll(p, 1);
            if (st.windows == st0.windows || st.deadlettered != st0.deadlettered)
                return fprintf(stderr, "window %lld not attested\n", (long long)batch), 3;
            double f0 = now_ms();
            uint64_t cnt = 0;
            for (int i = 0; i < NPART; i++)
                if (ws_kafka_read_range(rd, "data", i, from[i], next[i], 10000, count_cb, &cnt,
                                        errbuf, sizeof errbuf))
                    return fprintf(stderr, "fetch: %s\n", errbuf), 3;
            fet[w] = now_ms() - f0;
        }
        double p50 = pct(lat, n, 0.5), p99 = pct(lat, n, 0.99), f50 = pct(fet, n, 0.5);
        printf("%-10d %8d %10.2f %10.2f %12.2f %11.2fx\n", sizes[s], n, p50, p99, f50,
               f50 > 0 ? p50 / f50 : 0);
        free(lat);
        free(fet);
    }
    ws_engine_destroy(e);
    ws_kafka_reader_destroy(rd);
    ws_kafka_producer_destroy(p);
    ws_config_free(cfg);
    ws_kafka_broker_destroy(b);
    ws_key_wipe(&k);
    snprintf(set[0], sizeof set[0], "rm -rf '%s'", dir);
    return system(set[0]) == 0 ? 0 : 3;
}
