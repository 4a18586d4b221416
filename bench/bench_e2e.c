/*
 * bench_e2e.c — windowseal against its baselines, measured in the same run on the same machine.
 *
 *   bench_e2e e2e [--quick]            end-to-end throughput: windows over 64 partitions of the
 *                                      embedded broker, 100 B and 1 KiB values; baseline: a bare
 *                                      librdkafka batch consumer (bench_baseline_consumer) reading
 *                                      the same ranges from the same broker right after
 *   bench_e2e hash [--quick]           hashing stage: ws_window_add (leaf encoding + Merkle root
 *                                      + stream digest) on the engine ws_window_new chooses
 *                                      (measured at start-up), and on each engine forced;
 *                                      baseline: one flat SHA-256 over the same window stream
 *   bench_e2e memory [SMALL LARGE [PROPS]]   peak RSS of an engine process attesting one window
 *                                      of LARGE records (default 1 000 000) against one of SMALL
 *                                      (default 10 000); PROPS: kafka.properties JSON to try
 *   bench_e2e digest REPS FILE...      median seconds of the engine's output-file digests
 *                                      (ws_outputs_hash, warm cache) — bench/run times sha256sum,
 *                                      openssl and in-toto-run on the same files around it
 *
 * Each mode prints its own table and then `TABLE<TAB>...` lines that bench/run collects into one
 * table: bench, figure, baseline figure, ratio, target, verdict.
 *
 * End-to-end, in one process: the embedded broker (librdkafka's mock cluster; it keeps at most
 * 5 MiB per partition and drops the oldest silently, so data is spread over 64 partitions, each
 * window is attested right after it is produced, and every range is checked against the low
 * watermark after both readers ran), the engine (same code as `windowseal run`: file sink,
 * spool, chain head, commit), a producer. A window's time runs from just before its notification
 * is produced to the engine having it in every sink with its offset committed. Memory forks
 * instead (broker, producer and engine each in a child) so that ru_maxrss is the engine's alone.
 */
#include "bench/lib/benchlib.h"
#include "engine/engine.h"
#include "disk/disk.h"
#include "kafka/kafka.h"
#include "sinks/sink.h"

#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NPART 64

extern char **environ;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void die(const char *what, const char *errbuf)
{
    fprintf(stderr, "bench_e2e: %s: %s\n", what, errbuf);
    exit(3);
}

/* ------------------------------------------------------------------------------------------ */
/* Shared setup: a key, a configuration, a producer                                             */

struct setup {
    char dir[64];
    char keypath[128];
    struct ws_config *cfg;
};

static const char *extra_props; /* memory mode: a kafka.properties JSON object to try */

static void make_config(struct setup *s, const char *bootstrap, const char *notif_topic,
                        const char *group)
{
    char errbuf[512], set[9][700];
    const char *sets[9];
    struct ws_key k;
    int n = 0;

    snprintf(s->dir, sizeof s->dir, "/tmp/ws_bench_e2e_XXXXXX");
    if (!mkdtemp(s->dir))
        die("mkdtemp", "failed");
    snprintf(s->keypath, sizeof s->keypath, "%s/k", s->dir);
    if (ws_key_generate(&k) || ws_key_save(s->keypath, &k, errbuf, sizeof errbuf))
        die("key", errbuf);
    ws_key_wipe(&k);
    snprintf(set[n++], sizeof set[0], "kafka.bootstrap.servers=%s", bootstrap);
    snprintf(set[n++], sizeof set[0], "signing.key=%s", s->keypath);
    snprintf(set[n++], sizeof set[0], "sinks=[{\"type\":\"file\",\"path\":\"%s/att\"}]", s->dir);
    snprintf(set[n++], sizeof set[0], "spool.path=%s/spool", s->dir);
    snprintf(set[n++], sizeof set[0], "log.level=warn");
    snprintf(set[n++], sizeof set[0], "engine.gap_wait_ms=0");
    snprintf(set[n++], sizeof set[0], "kafka.notifications.topic=%s", notif_topic);
    snprintf(set[n++], sizeof set[0], "kafka.group.id=%s", group);
    if (extra_props)
        snprintf(set[n++], sizeof set[0], "kafka.properties=%s", extra_props);
    for (int i = 0; i < n; i++)
        sets[i] = set[i];
    if (ws_config_load(NULL, sets, (size_t)n, ws_sink_types(), &s->cfg, errbuf, sizeof errbuf))
        die("config", errbuf);
}

static void cleanup(struct setup *s)
{
    char cmd[128];

    ws_config_free(s->cfg);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", s->dir);
}

static struct ws_kafka_producer *data_producer(const char *bootstrap)
{
    /* Setup speed only (never timed): batch the source records. */
    static const char *const props[] = {
        "linger.ms", "20", "batch.num.messages", "10000", "queue.buffering.max.messages",
        "1000000"};
    struct ws_kafka_conf kc = {bootstrap, NULL, props, 3};
    char errbuf[512];
    struct ws_kafka_producer *p =
        ws_kafka_producer_new(&kc, ws_kafka_delivery_report, NULL, errbuf, sizeof errbuf);
    if (!p)
        die("producer", errbuf);
    return p;
}

/* n records with value_len-byte values, round-robin over NPART partitions; next[] advances. */
static void produce_records(struct ws_kafka_producer *p, const char *topic, uint64_t n,
                            size_t value_len, int64_t next[NPART])
{
    static uint8_t val[4096];
    char errbuf[512], key[16];

    for (size_t i = 0; i < sizeof val; i++)
        val[i] = (uint8_t)(i * 2654435761u >> 13);
    for (uint64_t r = 0; r < n; r++) {
        int part = (int)(r % NPART);
        int klen = snprintf(key, sizeof key, "k%08llu", (unsigned long long)(r & 0xffffff));
        ws_err_t err;
        while ((err = ws_kafka_produce(p, topic, part, key, (size_t)klen, val + r % 512, value_len,
                                       NULL, 0, NULL, errbuf, sizeof errbuf)) == WS_ERR_AGAIN)
            ws_kafka_producer_poll(p, 1);
        if (err)
            die("produce", errbuf);
        next[part]++;
    }
    if (ws_kafka_producer_flush(p, 120000))
        die("flush", "records not delivered");
}

/* Native notification for [from, until) of every partition of topic. */
static char *notification(const char *query, int64_t batch, const char *topic,
                          const int64_t from[NPART], const int64_t until[NPART])
{
    size_t cap = 256 + NPART * 128, off = 0;
    char *json = malloc(cap);

    off += (size_t)snprintf(json + off, cap - off,
                            "{\"queryId\":\"%s\",\"batchId\":%lld,\"sources\":[", query,
                            (long long)batch);
    for (int i = 0; i < NPART; i++)
        off += (size_t)snprintf(json + off, cap - off,
                                "%s{\"topic\":\"%s\",\"partition\":%d,\"fromOffset\":%lld,"
                                "\"untilOffset\":%lld}",
                                i ? "," : "", topic, i, (long long)from[i], (long long)until[i]);
    snprintf(json + off, cap - off, "]}");
    return json;
}

/* Post a notification and step the engine until one more window is attested; seconds. */
static double attest(struct ws_engine *e, struct ws_kafka_producer *p, const char *notif_topic,
                     const char *query, const char *json)
{
    struct ws_engine_stats st0, st;
    char errbuf[512];
    double t0;

    ws_engine_get_stats(e, &st0);
    t0 = now();
    if (ws_kafka_produce(p, notif_topic, 0, query, strlen(query), json, strlen(json), NULL, 0, NULL,
                         errbuf, sizeof errbuf))
        die("notification", errbuf);
    do {
        ws_kafka_producer_poll(p, 0);
        if (ws_engine_step(e, 1))
            die("engine", "step failed");
        ws_engine_get_stats(e, &st);
    } while (st.windows == st0.windows && st.deadlettered == st0.deadlettered && now() - t0 < 300);
    if (st.windows == st0.windows)
        die("engine", "window not attested (dead-lettered or timed out: see the log above)");
    return now() - t0;
}

/* ------------------------------------------------------------------------------------------ */
/* e2e                                                                                          */

static void check_retained(struct ws_kafka_reader *rd, const char *topic, const int64_t from[NPART])
{
    char errbuf[512];

    for (int i = 0; i < NPART; i++) {
        int64_t lo, hi;
        if (ws_kafka_reader_watermarks(rd, topic, i, &lo, &hi, 10000, errbuf, sizeof errbuf))
            die("watermarks", errbuf);
        if (lo > from[i]) {
            fprintf(stderr,
                    "bench_e2e: %s[%d] low watermark %lld > from %lld: the broker dropped "
                    "records during the run; use smaller windows\n",
                    topic, i, (long long)lo, (long long)from[i]);
            exit(3);
        }
    }
}

/*
 * Where the engine's time goes, replayed on the same ranges with the engine's own reader:
 * [0] watermark queries alone (64 x two ListOffsets), [1] reading every range as the engine does
 * (ws_kafka_read_ranges: watermarks of all ranges in two requests, every range fetched
 * concurrently, delivered in window order) with a counting callback, [2] the same
 * feeding ws_window_add (hashing, no evidence, no spool). Engine total minus [2] is the rest:
 * LZ4 + spool fsync + statement + signing + sink + chain head + commit + notification poll.
 * [3] the minimal pipeline's read of the same window (bench/lib/pipeline.c: what the work takes
 * with nothing else running; its root must equal [2]'s), [4] its CPU.
 */
static ws_err_t count_cb(void *o, const struct ws_record *r)
{
    (*(uint64_t *)o)++;
    return WS_OK;
}

struct win_ctx {
    struct ws_window *w;
    char eb[256];
};

static ws_err_t window_cb(void *o, const struct ws_record *r)
{
    struct win_ctx *c = o;
    return ws_window_add(c->w, r, c->eb, sizeof c->eb);
}

static void breakdown(struct ws_kafka_reader *rd, struct bench_pipe *pipe, const char *topic,
                      const int64_t from[NPART], const int64_t until[NPART], double out[5])
{
    char errbuf[512];
    uint64_t cnt = 0;
    struct win_ctx c;
    struct ws_window_result res;
    double t = now();

    for (int i = 0; i < NPART; i++) {
        int64_t lo, hi;
        if (ws_kafka_reader_watermarks(rd, topic, i, &lo, &hi, 10000, errbuf, sizeof errbuf))
            die("watermarks", errbuf);
    }
    out[0] = now() - t;
    struct ws_kafka_range rg[NPART]; /* the whole window in one read, as the engine does */
    for (int i = 0; i < NPART; i++)
        rg[i] = (struct ws_kafka_range){topic, i, from[i], until[i]};
    t = now();
    if (ws_kafka_read_ranges(rd, rg, NPART, 30000, count_cb, &cnt, errbuf, sizeof errbuf))
        die("read_ranges", errbuf);
    out[1] = now() - t;
    t = now();
    c.w = ws_window_new(NULL, NULL);
    for (int i = 0; i < NPART; i++)
        if (ws_window_add_source(c.w, topic, i, from[i], until[i]))
            die("add_source", "failed");
    if (ws_kafka_read_ranges(rd, rg, NPART, 30000, window_cb, &c, errbuf, sizeof errbuf))
        die("read_ranges + window", errbuf);
    if (ws_window_finish(c.w, &res))
        die("finish", "failed");
    ws_window_destroy(c.w);
    out[2] = now() - t;
    struct bench_range brg[NPART];
    struct bench_pipe_result pr;
    static char warm[64]; /* its first read of a topic looks it up and connects: not counted */
    for (int i = 0; i < NPART; i++)
        brg[i] = (struct bench_range){i, from[i], until[i]};
    if (strcmp(warm, topic) != 0)
        (void)bench_pipe_read(pipe, topic, brg, NPART, &pr);
    snprintf(warm, sizeof warm, "%s", topic);
    out[3] = bench_pipe_read(pipe, topic, brg, NPART, &pr);
    out[4] = pr.cpu_s;
    if (memcmp(pr.root, res.root, WS_HASH_LEN) != 0)
        die("minimal pipeline", "root differs from the engine reader's");
}

static int cmd_e2e(int argc, char **argv, const char *self_dir)
{
    bool quick = argc > 2 && strcmp(argv[2], "--quick") == 0;
    struct {
        size_t value;
        uint64_t records;
        int windows;
    } sizes[2] = {{100, quick ? 200000 : 1000000, quick ? 3 : 5},
                  {1024, quick ? 40000 : 150000, quick ? 3 : 5}};
    char errbuf[512];
    struct ws_kafka_broker *b;
    struct ws_kafka_producer *p;
    struct ws_kafka_reader *rd;
    struct bench_pipe *pipe;
    struct ws_engine *e;
    struct setup s;
    int64_t batch = 0;

    ws_log_setup("warn", "logfmt");
    if (!(b = ws_kafka_broker_new(NULL, 1, errbuf, sizeof errbuf)))
        die("broker", errbuf);
    if (ws_kafka_broker_create_topic(b, "data100", NPART, errbuf, sizeof errbuf) ||
        ws_kafka_broker_create_topic(b, "data1024", NPART, errbuf, sizeof errbuf) ||
        ws_kafka_broker_create_topic(b, "windowseal.batches", 1, errbuf, sizeof errbuf))
        die("topics", errbuf);
    make_config(&s, ws_kafka_broker_bootstrap(b), "windowseal.batches", "bench-e2e");
    p = data_producer(ws_kafka_broker_bootstrap(b));
    {
        struct ws_kafka_conf kc = {ws_kafka_broker_bootstrap(b), NULL, NULL, 0};
        if (!(rd = ws_kafka_reader_new(&kc, errbuf, sizeof errbuf)))
            die("reader", errbuf);
    }
    pipe = bench_pipe_new(ws_kafka_broker_bootstrap(b));
    if (ws_engine_new(s.cfg, &e, errbuf, sizeof errbuf))
        die("engine", errbuf);
    /* Warm-up: the first window pays for the consumer group join (~3 s on the mock broker). */
    attest(e, p, "windowseal.batches", "bench",
           "{\"queryId\":\"bench\",\"batchId\":0,\"sources\":[]}");
    batch = 1;

    printf("end-to-end: windows over %d partitions of the embedded broker; engine = notification "
           "produced -> attested (every sink + commit);\nbaseline = bare librdkafka batch "
           "consumer on the same ranges, same broker, right after. Median of the windows.\n\n",
           NPART);
    printf("%-8s %9s %8s %14s %14s %9s\n", "value", "records", "windows", "engine rec/s",
           "baseline rec/s", "ratio");
    for (int z = 0; z < 2; z++) {
        char topic[32];
        int64_t next[NPART] = {0}, from[NPART];
        double er[16], br[16], eng_best = 0, parts[5][16], tot[16], ecpu[16], bcpu[16], btime[16];
        int nw = sizes[z].windows;
        /* CPU by thread over the engine's windows: before and after one, the sum, a zero */
        static struct bench_threads th0, th1, thsum, thnone;
        char verdict[224];
        double floor_ratio;
        long ncores;

        memset(&thsum, 0, sizeof thsum);
        snprintf(topic, sizeof topic, "data%zu", sizes[z].value);
        for (int w = 0; w < nw; w++, batch++) {
            uint64_t got = 0;
            memcpy(from, next, sizeof from);
            produce_records(p, topic, sizes[z].records, sizes[z].value, next);
            char *json = notification("bench", batch, topic, from, next);
            bench_threads_snap(&th0);
            double c0 = bench_cpu_seconds(RUSAGE_SELF);
            double te = attest(e, p, "windowseal.batches", "bench", json);
            double c1 = bench_cpu_seconds(RUSAGE_SELF);
            bench_threads_snap(&th1);
            bench_threads_add(&thsum, &th0, &th1);
            free(json);
            struct bench_range brg[NPART];
            for (int i = 0; i < NPART; i++)
                brg[i] = (struct bench_range){i, from[i], next[i]};
            /* the engine's window: this process (broker, engine, its threads); the baseline's:
             * the consumer child over its timed span and this process meanwhile (the broker) */
            double tb = bench_bare_read(self_dir, ws_kafka_broker_bootstrap(b), topic, brg, NPART,
                                        &got, &bcpu[w]);
            ecpu[w] = c1 - c0;
            btime[w] = tb;
            double bd[5];
            breakdown(rd, pipe, topic, from, next, bd);
            for (int k = 0; k < 5; k++)
                parts[k][w] = bd[k];
            tot[w] = te;
            check_retained(rd, topic, from);
            if (got != sizes[z].records)
                die("baseline", "read a different number of records");
            er[w] = (double)sizes[z].records / te;
            br[w] = (double)sizes[z].records / tb;
            eng_best = er[w] > eng_best ? er[w] : eng_best;
            fprintf(stderr, "  %s window %d: engine %.3f s, baseline %.3f s\n", topic, w, te, tb);
        }
        double em = median(er, nw), bm = median(br, nw);
        printf("%-8zu %9llu %8d %14.0f %14.0f %8.2fx\n", sizes[z].value,
               (unsigned long long)sizes[z].records, nw, em, bm, em / bm);
        double mt = median(tot, nw), m0 = median(parts[0], nw), m1 = median(parts[1], nw),
               m2 = median(parts[2], nw);
        printf("         where the engine's %.0f ms go (medians, replayed with its reader): "
               "watermark queries %.0f ms, rest of the reads %.0f ms, hashing %.0f ms, "
               "evidence+spool+sign+sinks+commit %.0f ms\n",
               mt * 1e3, m0 * 1e3, (m1 - m0) * 1e3, (m2 - m1) * 1e3, (mt - m2) * 1e3);
        double mp = median(parts[3], nw), bt_m = median(btime, nw);
        printf(
            "         minimal pipeline (bench/lib/pipeline.c: two bare consumers, every range at "
            "once, prefetch up to 1 M records a partition, feeding a hashing and an LZ4 thread; "
            "nothing else): "
            "%.0f ms, %.0f ms of CPU, ratio %.2f; the engine's window takes %.2fx its time\n",
            mp * 1e3, median(parts[4], nw) * 1e3, bt_m / mp, mt / mp);
        {
            /* The floor: the engine's window needs its CPU seconds spread over every core at
             * best, so it cannot be faster than cpu / cores whatever the overlap. */
            long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
            double ec = median(ecpu, nw), bc = median(bcpu, nw), bt = median(btime, nw);
            double floor_s = ec / (double)(ncpu > 0 ? ncpu : 1);
            printf("         CPU (user+sys, medians): engine window %.0f ms of CPU in %.0f ms "
                   "(%.2f cores busy; broker included), baseline %.0f ms in %.0f ms (%.2f cores; "
                   "broker + consumer, its timed span); per record: engine %.0f ns, baseline %.0f "
                   "ns. With %ld "
                   "cores the engine's window takes at least %.0f ms: ratio at most %.2f with "
                   "this CPU cost\n",
                   ec * 1e3, mt * 1e3, ec / mt, bc * 1e3, bt * 1e3, bc / bt,
                   ec * 1e9 / (double)sizes[z].records, bc * 1e9 / (double)sizes[z].records, ncpu,
                   floor_s * 1e3, bt / floor_s);
            printf("         CPU by thread in the engine's window (ms, mean; broker included):");
            bench_threads_print(&thnone, &thsum, nw);
            printf("\n");
            /* The floor of any attester: the baseline's reading plus hashing and LZ4 of the
             * last window (batch - 1, ranges from..next), measured on the engine's evidence. */
            char ev[PATH_MAX], name[256];
            struct bench_range brg[NPART];
            struct bench_work wk;
            for (int i = 0; i < NPART; i++)
                brg[i] = (struct bench_range){i, from[i], next[i]};
            ws_object_name("bench", batch - 1, ".evidence.lz4", name);
            snprintf(ev, sizeof ev, "%s/att/%s", s.dir, name);
            bench_work_measure(ev, topic, brg, NPART, 3, &wk);
            printf("         ");
            bench_work_print(&wk, bc, bt, "the baseline", bt, 0.8);
            floor_ratio = bt / bench_work_floor(&wk, bc, bt, &ncores);
        }
        snprintf(verdict, sizeof verdict,
                 " (at most %.2f here: work floor on %ld cores; minimal pipeline %.2f)",
                 floor_ratio, ncores, median(btime, nw) / median(parts[3], nw));
        if (z == 0)
            printf("TABLE\tend-to-end, %llu-record windows x 64 partitions, 100 B\t%.2f M rec/s\t"
                   "%.2f M rec/s (bare librdkafka batch consumer)\t%.2f\t>= 0.8; >= 1.5 M rec/s"
                   "\t%s%s\n",
                   (unsigned long long)sizes[z].records, em / 1e6, bm / 1e6, em / bm,
                   bench_verdict(em / bm >= 0.8 && em >= 1.5e6), verdict);
        else
            printf("TABLE\tend-to-end, %llu-record windows x 64 partitions, 1 KiB\t%.2f M rec/s"
                   "\t%.2f M rec/s (bare librdkafka batch consumer)\t%.2f\t>= 0.8\t%s%s\n",
                   (unsigned long long)sizes[z].records, em / 1e6, bm / 1e6, em / bm,
                   bench_verdict(em / bm >= 0.8), verdict);
        fflush(stdout);
    }
    ws_engine_destroy(e);
    ws_kafka_reader_destroy(rd);
    ws_kafka_producer_destroy(p);
    bench_pipe_destroy(pipe);
    cleanup(&s);
    ws_kafka_broker_destroy(b);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* hash                                                                                         */

/* Record i: topic "orders", NPART partitions, 8-byte key, create time, no headers. */
static void make_record(uint64_t i, uint64_t n, size_t vlen, const uint8_t *pool,
                        struct ws_record *r, char key[8])
{
    uint64_t per = (n + NPART - 1) / NPART;

    memcpy(key, "k-", 2);
    for (int j = 0; j < 6; j++)
        key[2 + j] = (char)('0' + (i >> (3 * j) & 7));
    *r = (struct ws_record){.topic = "orders",
                            .topic_len = 6,
                            .partition = (int32_t)(i / per),
                            .offset = 1000 + (int64_t)(i % per),
                            .timestamp = 1700000000000 + (int64_t)i,
                            .ts_type = 1,
                            .key = key,
                            .key_len = 8,
                            .value = pool + (i * 37) % 4096,
                            .value_len = (int32_t)vlen};
}

static double window_pass(uint64_t n, size_t vlen, const uint8_t *pool,
                          struct ws_window_result *res, uint8_t root[32], uint8_t digest[32])
{
    uint64_t per = (n + NPART - 1) / NPART;
    struct ws_window *w = ws_window_new(NULL, NULL);
    struct ws_record r;
    char key[8], eb[256];
    double t = now();

    for (int p = 0; p < NPART; p++)
        if (ws_window_add_source(w, "orders", p, 1000, 1000 + (int64_t)per))
            die("add_source", "failed");
    for (uint64_t i = 0; i < n; i++) {
        make_record(i, n, vlen, pool, &r, key);
        if (ws_window_add(w, &r, eb, sizeof eb))
            die("ws_window_add", eb);
    }
    if (ws_window_finish(w, res))
        die("finish", "failed");
    t = now() - t;
    memcpy(root, res->root, 32);
    memcpy(digest, res->stream_digest, 32);
    ws_window_destroy(w);
    return t;
}

/*
 * The SHA unit's block rate on engine e, seconds per compressed block, best of reps, for two job
 * shapes over the window stream: leaves (each frame's encoding with the 0x00 prefix, as the
 * window hashes them; runs of LEAF_RUN jobs, about what one lane run of the accumulator holds),
 * and long runs (independent RUN_BLOCKS-block jobs, every block read in place: no padding or
 * prefix to assemble, the shape the lanes compress fastest). No encoding, tree or copies.
 */
#define LEAF_RUN 64
#define RUN_BLOCKS 256
static double block_secs(enum ws_sha256_lanes e, const uint8_t *stream, size_t len, size_t frame,
                         bool leaves, int reps)
{
    struct ws_sha256_job jobs[LEAF_RUN];
    uint8_t out[LEAF_RUN][32];
    uint32_t st[LEAF_RUN][8];
    size_t step = leaves ? frame : RUN_BLOCKS * 64, n = len / step, blocks = 0;
    double best = 1e9;

    for (int rep = 0; rep < reps; rep++) {
        double t = now();

        blocks = 0;
        for (size_t i = 0; i < n; i += LEAF_RUN) {
            size_t k = n - i < LEAF_RUN ? n - i : LEAF_RUN;

            for (size_t j = 0; j < k; j++) {
                const uint8_t *at = stream + (i + j) * step;

                if (leaves) {
                    jobs[j] = (struct ws_sha256_job){at + 4, frame - 4, 0x00, out[j], NULL};
                    blocks += (frame - 4 + 1 + 9 + 63) / 64;
                } else {
                    ws_sha256_state_init(st[j]);
                    jobs[j] = (struct ws_sha256_job){at, step, -1, NULL, st[j]};
                    blocks += RUN_BLOCKS;
                }
            }
            ws_sha256_mb_run_on(e, jobs, k);
        }
        t = now() - t;
        best = t < best ? t : best;
    }
    return best / (double)blocks;
}

static int cmd_hash(int argc, char **argv)
{
    bool quick = argc > 2 && strcmp(argv[2], "--quick") == 0;
    uint64_t n = quick ? 300000 : 1000000;
    int reps = quick ? 3 : 7;
    static uint8_t pool[4096 + 2048];
    const size_t vlens[2] = {100, 1024};
    /* passes: 0 flat, 1 the window as ws_window_new chooses, 2.. each engine forced */
    enum { NP = 2 + WS_LANES_COUNT };
    char lanes[512];
    double t0 = now();
    enum ws_sha256_lanes chosen = ws_window_lanes_describe(lanes, sizeof lanes);

    t0 = now() - t0;
    for (size_t i = 0; i < sizeof pool; i++)
        pool[i] = (uint8_t)((i * 2654435761u) >> 13);
    printf("hashing stage: ws_window_add (encode + leaf + Merkle tree + stream digest + stats), "
           "one core,\n%llu records, best of %d; baseline: one SHA-256 over the same window "
           "stream.\n%s [first call %.1f ms]\n\n",
           (unsigned long long)n, reps, lanes, t0 * 1e3);
    printf("%-6s %-30s %10s %12s %10s\n", "value", "pass", "ms", "records/s", "vs flat");
    for (int v = 0; v < 2; v++) {
        struct ws_record r;
        struct ws_window_result res;
        char key[8], names[NP][64];
        uint8_t *stream, flat[32], root[NP][32], dig[NP][32];
        size_t len = 0, frame;
        double best[NP];
        bool ran[NP] = {true, true};

        make_record(0, n, vlens[v], pool, &r, key);
        frame = 4 + ws_record_encoded_size(&r);
        if (!(stream = malloc(frame * n)))
            die("malloc", "window stream");
        for (uint64_t i = 0; i < n; i++) {
            make_record(i, n, vlens[v], pool, &r, key);
            size_t l = ws_record_encode(&r, stream + len + 4, frame - 4);
            stream[len] = (uint8_t)(l >> 24), stream[len + 1] = (uint8_t)(l >> 16);
            stream[len + 2] = (uint8_t)(l >> 8), stream[len + 3] = (uint8_t)l;
            len += 4 + l;
        }
        snprintf(names[0], sizeof names[0], "flat sha256 (baseline)");
        snprintf(names[1], sizeof names[1], "window, chosen: %s", ws_sha256_lanes_name(chosen));
        for (int e = 0; e < WS_LANES_COUNT; e++) {
            snprintf(names[2 + e], sizeof names[0], "window, %s", ws_sha256_lanes_name(e));
            ran[2 + e] = ws_sha256_lanes_supported(e);
        }
        for (int k = 0; k < NP; k++)
            best[k] = 1e9;
        for (int rep = 0; rep < reps; rep++) {
            double t = now();
            ws_sha256(stream, len, flat);
            t = now() - t;
            best[0] = t < best[0] ? t : best[0];
            for (int k = 1; k < NP; k++) {
                if (!ran[k])
                    continue;
                ws_window_lanes_force(k == 1 ? WS_LANES_AUTO : (enum ws_sha256_lanes)(k - 2));
                t = window_pass(n, vlens[v], pool, &res, root[k], dig[k]);
                best[k] = t < best[k] ? t : best[k];
            }
            ws_window_lanes_force(WS_LANES_AUTO);
        }
        for (int k = 1; k < NP; k++)
            if (ran[k] && (memcmp(dig[k], flat, 32) || memcmp(root[k], root[1], 32)))
                die("hash", "the passes disagree on the digests");
        for (int k = 0; k < NP; k++)
            if (ran[k])
                printf("%-6zu %-30s %10.1f %12.0f %9.2fx\n", vlens[v], names[k], best[k] * 1e3,
                       (double)n / best[k], best[0] / best[k]);
        double per_rec = (double)((frame - 4 + 1 + 9 + 63) / 64) + 2 + frame / 64.0;
        printf("       (encoding %zu bytes: %zu SHA-256 blocks per leaf, %.2f per record in all "
               "vs %.2f flat)\n",
               frame - 4, (frame - 4 + 1 + 9 + 63) / 64, per_rec, frame / 64.0);
        /*
         * The floor this block count sets here: every record's blocks at the fastest engine's
         * block rate, against the flat pass's time a record. The stage also encodes, builds
         * the tree and copies, so it cannot beat this; a target above it is ruled out on this
         * CPU for the format's encoding (FORMAT.md: leaf, node and stream blocks are fixed).
         */
        double fastest = 1e9, floor_ratio;
        char rates[2][256];
        size_t rl[2] = {0, 0};

        if (len != frame * n)
            die("hash", "frames of unequal length");
        for (int e = 0; e < WS_LANES_COUNT; e++) {
            if (!ran[2 + e])
                continue;
            for (int shape = 0; shape < 2; shape++) {
                double b = block_secs((enum ws_sha256_lanes)e, stream, len, frame, shape == 0,
                                      reps < 3 ? reps : 3);

                fastest = b < fastest ? b : fastest;
                rl[shape] += (size_t)snprintf(
                    rates[shape] + rl[shape], sizeof rates[shape] - rl[shape], "%s%s %.1f",
                    rl[shape] ? ", " : "", ws_sha256_lanes_name((enum ws_sha256_lanes)e), b * 1e9);
            }
        }
        floor_ratio = best[0] / (double)n / (per_rec * fastest);
        printf("       SHA unit, ns a block: flat stream %.1f; leaf jobs (%d at once): %s;\n"
               "       %d-block runs (%d at once): %s.\n"
               "       At the fastest, a record's %.2f blocks take %.0f ns against the flat "
               "pass's %.0f ns a record:\n       the compression alone allows at most %.2f of "
               "flat here (this pass reached %.2f).\n",
               best[0] / ((double)len / 64) * 1e9, LEAF_RUN, rates[0], RUN_BLOCKS, LEAF_RUN,
               rates[1], per_rec, per_rec * fastest * 1e9, best[0] / (double)n * 1e9, floor_ratio,
               best[0] / best[1]);
        if (v == 0)
            printf("TABLE\thashing stage (leaf encoding + Merkle root + stream digest), 100 B, "
                   "1 core\t%.2f M rec/s (%s; one lane: %.2f)\t%.2f M rec/s (flat SHA-256 of the "
                   "stream)\t%.2f\t>= 0.4 of flat\t%s (at most %.2f here: the SHA unit's block "
                   "rate, %.2f blocks a record)\n",
                   n / best[1] / 1e6, ws_sha256_lanes_name(chosen), n / best[2] / 1e6,
                   n / best[0] / 1e6, best[0] / best[1],
                   best[0] / best[1] >= 0.4 ? "met" : "MISSED", floor_ratio, per_rec);
        free(stream);
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* memory                                                                                       */

/*
 * Children, so that the engine's peak RSS is its own: the broker (holds the data), a producer,
 * and per window size one engine process. Forked before this process creates any librdkafka
 * handle (librdkafka threads do not survive fork).
 */
static pid_t broker_child(char *bootstrap, size_t cap, int *keepalive)
{
    int up[2], hold[2];
    pid_t pid;

    if (pipe(up) || pipe(hold))
        die("pipe", "failed");
    if ((pid = fork()) == 0) {
        char errbuf[512], c;
        struct ws_kafka_broker *b = ws_kafka_broker_new(NULL, 1, errbuf, sizeof errbuf);
        close(up[0]);
        close(hold[1]);
        if (!b || ws_kafka_broker_create_topic(b, "data", NPART, errbuf, sizeof errbuf) ||
            ws_kafka_broker_create_topic(b, "mem.small", 1, errbuf, sizeof errbuf) ||
            ws_kafka_broker_create_topic(b, "mem.large", 1, errbuf, sizeof errbuf))
            _exit(3);
        if (write(up[1], ws_kafka_broker_bootstrap(b), strlen(ws_kafka_broker_bootstrap(b))) <= 0)
            _exit(3);
        close(up[1]);
        while (read(hold[0], &c, 1) > 0) /* until the parent closes its end */
            ;
        ws_kafka_broker_destroy(b);
        _exit(0);
    }
    close(up[1]);
    close(hold[0]);
    ssize_t n = read(up[0], bootstrap, cap - 1);
    close(up[0]);
    if (n <= 0)
        die("broker child", "did not start");
    bootstrap[n] = '\0';
    *keepalive = hold[1];
    return pid;
}

static int wait_child(pid_t pid, struct rusage *ru)
{
    int status;

    if (wait4(pid, &status, 0, ru) < 0 || !WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

/* Produce n records (100 B values) after `from` and post the notification. Child process. */
static void producer_child(const char *bootstrap, uint64_t n, int64_t next[NPART],
                           const char *notif_topic, const char *query)
{
    int64_t from[NPART];
    char errbuf[512];
    struct ws_kafka_producer *p = data_producer(bootstrap);

    memcpy(from, next, sizeof from);
    produce_records(p, "data", n, 100, next);
    char *json = notification(query, 0, "data", from, next);
    if (ws_kafka_produce(p, notif_topic, 0, query, strlen(query), json, strlen(json), NULL, 0, NULL,
                         errbuf, sizeof errbuf) ||
        ws_kafka_producer_flush(p, 60000))
        _exit(3);
    free(json);
    ws_kafka_producer_destroy(p);
    _exit(0);
}

static void engine_child(const char *bootstrap, const char *notif_topic)
{
    struct ws_engine_stats st;
    struct ws_engine *e;
    struct setup s;
    char errbuf[512];
    double t0 = now();

    ws_log_setup("warn", "logfmt");
    make_config(&s, bootstrap, notif_topic, notif_topic);
    if (ws_engine_new(s.cfg, &e, errbuf, sizeof errbuf))
        _exit(3);
    do {
        if (ws_engine_step(e, 10))
            _exit(3);
        ws_engine_get_stats(e, &st);
    } while (st.windows == 0 && st.deadlettered == 0 && now() - t0 < 300);
    ws_engine_destroy(e);
    cleanup(&s);
    _exit(st.windows == 1 ? 0 : 4);
}

/* The engine's range reader alone over the same ranges: how much of the peak is the fetch layer. */
static void reader_child(const char *bootstrap, const int64_t from[NPART],
                         const int64_t until[NPART])
{
    struct ws_kafka_conf kc = {bootstrap, NULL, NULL, 0};
    char errbuf[512];
    uint64_t cnt = 0;
    struct ws_kafka_reader *rd = ws_kafka_reader_new(&kc, errbuf, sizeof errbuf);

    struct ws_kafka_range rg[NPART];

    if (!rd)
        _exit(3);
    for (int i = 0; i < NPART; i++) /* one read of the whole window, as the engine does */
        rg[i] = (struct ws_kafka_range){"data", i, from[i], until[i]};
    if (ws_kafka_read_ranges(rd, rg, NPART, 30000, count_cb, &cnt, errbuf, sizeof errbuf))
        _exit(3);
    ws_kafka_reader_destroy(rd);
    _exit(0);
}

static double median_long(const long *v, int n)
{
    double d[8];

    for (int i = 0; i < n; i++)
        d[i] = (double)v[i];
    return median(d, n);
}

/*
 * Peak RSS varies by about 1 MiB from one engine process to the next with the same window (six
 * runs of one build, alternated with another: 0.98-1.15 as a ratio, where the target is <= 1.1),
 * so each size runs MEM_REPS times, the sizes alternating, and the row takes the medians. Each
 * repetition is a query of its own (batch 0 of "small<r>", "large<r>") read by a new engine
 * process of the size's group, which resumes after the windows already attested.
 */
#define MEM_REPS 3

static int cmd_memory(int argc, char **argv)
{
    uint64_t sizes[2] = {argc > 2 ? strtoull(argv[2], NULL, 10) : 10000,
                         argc > 3 ? strtoull(argv[3], NULL, 10) : 1000000};

    extra_props = argc > 4 ? argv[4] : NULL; /* e.g. {"queued.max.messages.kbytes":"1024"} */
    const char *topics[2] = {"mem.small", "mem.large"};
    char bootstrap[128];
    int64_t next[NPART] = {0}, from[NPART];
    long rss[2][MEM_REPS], rdr[2][MEM_REPS];
    double secs, rsecs, m[2];
    int keep;
    pid_t broker = broker_child(bootstrap, sizeof bootstrap, &keep);

    printf("memory: peak RSS (ru_maxrss) of an engine process attesting one window of 100 B "
           "records over %d partitions;\nthe broker and the producer run in other processes; "
           "%d engine processes a size, alternating, medians.\n\n",
           NPART, MEM_REPS);
    printf("%4s %12s %14s %10s %22s %10s\n", "run", "records", "peak RSS MiB", "engine s",
           "its range reader alone", "reader s");
    for (int r = 0; r < MEM_REPS; r++)
        for (int z = 0; z < 2; z++) {
            struct rusage ru;
            char query[32];
            pid_t pid;

            snprintf(query, sizeof query, "%s%d", z ? "large" : "small", r);
            if ((pid = fork()) == 0)
                producer_child(bootstrap, sizes[z], next, topics[z], query);
            if (wait_child(pid, &ru) != 0)
                die("producer child", "failed");
            for (int i = 0; i < NPART; i++) /* what the child produced, for the next window */
                next[i] += (int64_t)(sizes[z] / NPART + ((uint64_t)i < sizes[z] % NPART));
            secs = now(); /* process start to exit: includes the ~3 s group join */
            if ((pid = fork()) == 0)
                engine_child(bootstrap, topics[z]);
            if (wait_child(pid, &ru) != 0)
                die("engine child", "window not attested");
            secs = now() - secs;
            rss[z][r] = ru.ru_maxrss; /* KiB */
            for (int i = 0; i < NPART; i++)
                from[i] = next[i] - (int64_t)(sizes[z] / NPART + ((uint64_t)i < sizes[z] % NPART));
            rsecs = now();
            if ((pid = fork()) == 0)
                reader_child(bootstrap, from, next);
            if (wait_child(pid, &ru) != 0)
                die("reader child", "failed");
            rsecs = now() - rsecs;
            rdr[z][r] = ru.ru_maxrss;
            printf("%4d %12llu %14.1f %10.2f %22.1f %10.2f\n", r + 1, (unsigned long long)sizes[z],
                   rss[z][r] / 1024.0, secs, rdr[z][r] / 1024.0, rsecs);
        }
    m[0] = median_long(rss[0], MEM_REPS);
    m[1] = median_long(rss[1], MEM_REPS);
    printf("medians: %.1f MiB (%llu records), %.1f MiB (%llu records), ratio %.2f; the reader "
           "alone %.1f and %.1f MiB\n",
           m[0] / 1024.0, (unsigned long long)sizes[0], m[1] / 1024.0, (unsigned long long)sizes[1],
           m[1] / m[0], median_long(rdr[0], MEM_REPS) / 1024.0,
           median_long(rdr[1], MEM_REPS) / 1024.0);
    printf("TABLE\tmemory: peak RSS of the engine, %llu-record window (median of %d)\t%.1f MiB"
           "\t%.1f MiB (%llu-record window)\t%.2f\t<= 1.1\t%s\n",
           (unsigned long long)sizes[1], MEM_REPS, m[1] / 1024.0, m[0] / 1024.0,
           (unsigned long long)sizes[0], m[1] / m[0], bench_verdict(m[1] / m[0] <= 1.1));
    close(keep);
    waitpid(broker, NULL, 0);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* digest                                                                                       */

static int cmd_digest(int argc, char **argv)
{
    int reps = argc > 2 ? atoi(argv[2]) : 5;
    struct ws_notif_output o = {.name = (char *)"bench", .files = argv + 3};
    struct ws_notification n = {.outputs = &o, .noutputs = 1};
    double t[64];
    char errbuf[256];

    if (argc < 4 || reps < 1 || reps > 64) {
        fprintf(stderr, "usage: bench_e2e digest REPS FILE...\n");
        return 2;
    }
    o.nfiles = (size_t)argc - 3;
    ws_log_setup("error", NULL);
    for (int r = -1; r < reps; r++) { /* r == -1: warm the cache and the code */
        struct ws_output_set out;
        double t0 = now();
        if (ws_outputs_hash(&n, NULL, 0, NULL, &out, errbuf, sizeof errbuf))
            die("ws_outputs_hash", errbuf);
        if (r >= 0)
            t[r] = now() - t0;
        for (size_t i = 0; i < out.outputs[0].nfiles; i++)
            if (!out.outputs[0].files[i].has_digest)
                die("digest", out.outputs[0].files[i].error);
        ws_outputs_free(&out);
    }
    printf("seconds=%.6f\n", median(t, reps));
    return 0;
}

int main(int argc, char **argv)
{
    char self[PATH_MAX];

    signal(SIGPIPE, SIG_IGN);
    snprintf(self, sizeof self, "%s", argv[0]);
    if (argc >= 2 && strcmp(argv[1], "e2e") == 0)
        return cmd_e2e(argc, argv, dirname(self));
    if (argc >= 2 && strcmp(argv[1], "hash") == 0)
        return cmd_hash(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "memory") == 0)
        return cmd_memory(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "digest") == 0)
        return cmd_digest(argc, argv);
    fprintf(stderr, "usage: bench_e2e e2e|hash [--quick] | memory [SMALL LARGE] | "
                    "digest REPS FILE...\n");
    return 2;
}
