/*
 * test_engine_faults.c — broker faults against the engine, in one process (issue 9.2).
 *
 * DESIGN. Broker, engine and a producer of records and notifications live in this program (as
 * in bench/bench_latency.c), so that faults can be injected between two engine steps with the
 * mock cluster's own switches, and the engine's promises checked after every step:
 *
 *   - it waits and retries: a transient fault never dead-letters a good window and never
 *     stops a query; once the fault is gone the window is attested;
 *   - it never commits ahead: the group's committed offset of the notifications partition is
 *     sampled while the engine runs and must never pass the number of notifications that are
 *     finished (attested, duplicate or dead-lettered: one partition, so offset n means the
 *     first n are done);
 *   - it never signs a partial window: every envelope in the file sink verifies with its
 *     evidence (ws_verify_envelope) and holds exactly the records this program produced for
 *     the batch, at its chain position; nothing is signed while the broker is down.
 *
 * Scenarios: (1) the broker down 10 s with a window in hand; (2) transient errors pushed on
 * every API the engine uses (Fetch, Produce, OffsetCommit, FindCoordinator, ListOffsets,
 * Metadata, plus the group's OffsetFetch/Heartbeat/JoinGroup/SyncGroup), three error codes
 * each, then one window (InitProducerId fails while the producers start); (3) a topic whose Metadata says "unknown" (a legal name
 * that does not exist on a broker without auto-creation): dead-lettered, the next good window
 * attested; (4) on a three-broker mock cluster: partition leaders moved for every topic, the
 * group coordinator moved, and the leader of everything taken down.
 *
 * Output: one line per failed check (file:line, expression, values), a final
 * `test_engine_faults: N checks passed` (exit 0) or `... M failed` (exit 1). Bounded: each
 * wait has a deadline; about a minute in all.
 */
#include "engine/engine.h"
#include "disk/disk.h" /* ws_log_setup */
#include "kafka/kafka.h"
#include "sinks/sink.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static unsigned checks, failures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (cond) {                                                                                \
            checks++;                                                                              \
        } else {                                                                                   \
            failures++;                                                                            \
            fprintf(stderr, "%s:%d: FAIL %s: ", __FILE__, __LINE__, #cond);                        \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

#define MAX_BATCHES 128
#define QID "faults"

struct rig {
    char dir[64];
    char boot[128];
    struct ws_config *cfg;
    struct ws_engine *e;
    struct ws_kafka_producer *p;
    rd_kafka_t *probe; /* reads the engine group's committed offset */
    struct ws_key key;
    int64_t next[2];              /* next offset per data partition */
    int64_t batches;              /* notifications posted (offset of the next one) */
    int64_t expect[MAX_BATCHES];  /* records per batch; -1: must be dead-lettered */
    int64_t from[MAX_BATCHES][2]; /* the batch's ranges */
    int64_t until[MAX_BATCHES][2];
    int64_t batch_id[MAX_BATCHES]; /* batch id per notification offset (-1: bad one) */
    int64_t next_batch;
    unsigned commit_samples;
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void note(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("# ");
    vprintf(fmt, ap);
    printf("\n");
    fflush(stdout);
    va_end(ap);
}

/* The group's committed offset for windowseal.batches[0]; -1 when none, -2 on error. */
static int64_t committed(struct rig *r)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    int64_t off = -2;

    rd_kafka_topic_partition_list_add(l, "windowseal.batches", 0);
    if (rd_kafka_committed(r->probe, l, 2000) == RD_KAFKA_RESP_ERR_NO_ERROR && !l->elems[0].err)
        off = l->elems[0].offset < 0 ? -1 : l->elems[0].offset;
    rd_kafka_topic_partition_list_destroy(l);
    return off;
}

static uint64_t finished(struct rig *r)
{
    struct ws_engine_stats st;
    ws_engine_get_stats(r->e, &st);
    return st.windows + st.deadlettered + st.duplicates;
}

/* Step the engine until want notifications are finished, or timeout; samples commits. */
static bool run_until(struct rig *r, uint64_t want, double timeout_ms, bool sample)
{
    double t0 = now_ms(), last = 0;

    while (now_ms() - t0 < timeout_ms) {
        ws_err_t err = ws_engine_step(r->e, 10);
        if (err) /* counted only when it fails: one per step would drown the real checks */
            CHECK(err == WS_OK, "ws_engine_step: %s", ws_strerror(err));
        ws_kafka_producer_poll(r->p, 0);
        if (sample && now_ms() - last > 250) {
            int64_t c = committed(r);
            uint64_t done = finished(r);
            last = now_ms();
            if (c >= 0) {
                r->commit_samples++;
                if ((uint64_t)c > done)
                    CHECK((uint64_t)c <= done,
                          "committed offset %lld but only %llu "
                          "notifications finished: committed ahead",
                          (long long)c, (unsigned long long)done);
            }
        }
        if (finished(r) >= want && ws_engine_idle(r->e))
            return true;
    }
    return finished(r) >= want;
}

static void produce_sync(struct rig *r, const char *topic, int32_t part, const char *key,
                         const void *val, size_t len)
{
    char errbuf[256];
    ws_err_t err;

    while ((err = ws_kafka_produce(r->p, topic, part, key, key ? strlen(key) : 0, val, len, NULL, 0,
                                   NULL, errbuf, sizeof errbuf)) == WS_ERR_AGAIN)
        ws_kafka_producer_poll(r->p, 1);
    CHECK(err == WS_OK, "produce to %s: %s", topic, errbuf);
}

/* Records of batch `at` on one data partition (n of them), flushed. */
static void produce_records(struct rig *r, int64_t at, int part)
{
    uint8_t val[40];
    int64_t b = r->batch_id[at];

    for (int64_t off = r->from[at][part]; off < r->until[at][part]; off++) {
        int i = (int)(off - r->from[at][part]);
        for (size_t k = 0; k < sizeof val; k++)
            val[k] = (uint8_t)(b * 31 + part * 7 + i + (int)k);
        produce_sync(r, "data", part, i % 2 ? "k" : NULL, val, sizeof val - (size_t)(i % 40));
    }
    CHECK(ws_kafka_producer_flush(r->p, 20000) == WS_OK, "records of batch %lld not delivered",
          (long long)b);
}

/*
 * The next batch: n records per data partition, then its notification. ahead: the records of
 * partition 1 are not produced yet (produce_records later): the engine holds the window and
 * retries its incomplete range.
 */
static int64_t post_window_ahead(struct rig *r, int n, bool ahead)
{
    char json[1024];
    int64_t b = r->next_batch++;
    int64_t at = r->batches++;

    r->batch_id[at] = b;
    r->expect[at] = 2 * n;
    for (int part = 0; part < 2; part++) {
        r->from[at][part] = r->next[part];
        r->next[part] += n;
        r->until[at][part] = r->next[part];
        if (!ahead || part == 0)
            produce_records(r, at, part);
    }
    snprintf(json, sizeof json,
             "{\"queryId\":\"" QID "\",\"batchId\":%lld,\"sources\":["
             "{\"topic\":\"data\",\"partition\":0,\"fromOffset\":%lld,\"untilOffset\":%lld},"
             "{\"topic\":\"data\",\"partition\":1,\"fromOffset\":%lld,\"untilOffset\":%lld}]}",
             (long long)b, (long long)r->from[at][0], (long long)r->until[at][0],
             (long long)r->from[at][1], (long long)r->until[at][1]);
    produce_sync(r, "windowseal.batches", 0, QID, json, strlen(json));
    CHECK(ws_kafka_producer_flush(r->p, 20000) == WS_OK, "notification %lld not delivered",
          (long long)b);
    return at;
}

static void post_window(struct rig *r, int n)
{
    (void)post_window_ahead(r, n, false);
}

static void post_bad(struct rig *r, const char *json)
{
    int64_t at = r->batches++;
    produce_sync(r, "windowseal.batches", 0, "bad", json, strlen(json));
    CHECK(ws_kafka_producer_flush(r->p, 20000) == WS_OK, "bad notification not delivered");
    r->expect[at] = -1;
    r->batch_id[at] = -1;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;

    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = malloc((size_t)n + 1)) && fread(buf, 1, (size_t)n, f) == (size_t)n) {
        buf[n] = '\0';
        *len = (size_t)n;
    } else {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    return buf;
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Every attested batch: complete, at its chain position, exactly our records. */
static void verify_all(struct rig *r, const char *what)
{
    int64_t chain = 0;

    for (int64_t at = 0; at < r->batches; at++) {
        char env_path[256], ev_path[256], errbuf[512];
        struct ws_verified v;
        size_t len = 0;
        char *env;
        ws_err_t err;

        if (r->expect[at] < 0)
            continue;
        snprintf(env_path, sizeof env_path, "%s/att/" QID "/%020lld.dsse.json", r->dir,
                 (long long)r->batch_id[at]);
        snprintf(ev_path, sizeof ev_path, "%s/att/" QID "/%020lld.evidence.lz4", r->dir,
                 (long long)r->batch_id[at]);
        env = read_file(env_path, &len);
        CHECK(env != NULL, "%s: window %lld LOST: no envelope in the file sink", what,
              (long long)r->batch_id[at]);
        if (!env)
            continue;
        chain++;
        err = ws_verify_envelope(env, len, &r->key, 1, ev_path, &v, errbuf, sizeof errbuf);
        CHECK(err == WS_OK, "%s: window %lld does not verify with its evidence: %s", what,
              (long long)r->batch_id[at], errbuf);
        if (!err) {
            CHECK(v.record_count == (uint64_t)r->expect[at],
                  "%s: window %lld signed with %llu records, %lld were produced (partial)", what,
                  (long long)r->batch_id[at], (unsigned long long)v.record_count,
                  (long long)r->expect[at]);
            CHECK(v.batch_id == r->batch_id[at] && v.chain_length == (uint64_t)chain,
                  "%s: window %lld at chain length %llu, expected %lld", what,
                  (long long)r->batch_id[at], (unsigned long long)v.chain_length, (long long)chain);
            CHECK(v.ngaps == 0, "%s: window %lld has %zu gaps", what, (long long)r->batch_id[at],
                  v.ngaps);
        }
        free(env);
    }
}

static bool rig_start(struct rig *r, const char *boot, const char *extra)
{
    char errbuf[512], set[9][600];
    const char *sets[9];
    int n = 0;
    struct ws_kafka_conf kc = {NULL, NULL, NULL, 0};
    static const char *const quiet[] = {"log_level", "2"};
    rd_kafka_conf_t *pc;

    snprintf(r->boot, sizeof r->boot, "%s", boot);
    snprintf(set[n++], sizeof set[0], "kafka.bootstrap.servers=%s", boot);
    snprintf(set[n++], sizeof set[0], "signing.key=%s/k", r->dir);
    snprintf(set[n++], sizeof set[0], "sinks=[{\"type\":\"file\",\"path\":\"%s/att\"}]", r->dir);
    snprintf(set[n++], sizeof set[0], "spool.path=%s/spool", r->dir);
    snprintf(set[n++], sizeof set[0], "log.level=%s", getenv("WS_FAULTS_LOG") ? "info" : "error");
    snprintf(set[n++], sizeof set[0], "engine.fetch_timeout_ms=2000");
    snprintf(set[n++], sizeof set[0], "engine.retry_max_ms=500");
    snprintf(set[n++], sizeof set[0], "kafka.properties.log_level=%s",
             getenv("WS_FAULTS_LOG") ? "6" : "2"); /* the faults are expected: no noise */
    snprintf(set[n++], sizeof set[0], "%s", extra ? extra : "engine.retry_base_ms=50");
    for (int i = 0; i < n; i++)
        sets[i] = set[i];
    if (ws_config_load(NULL, sets, (size_t)n, ws_sink_types(), &r->cfg, errbuf, sizeof errbuf)) {
        fprintf(stderr, "config: %s\n", errbuf);
        return false;
    }
    ws_log_setup(r->cfg->log_level, "logfmt");
    kc.bootstrap = r->cfg->bootstrap;
    kc.props = quiet;
    kc.nprops = 1;
    if (!(r->p = ws_kafka_producer_new(&kc, ws_kafka_delivery_report, NULL, errbuf, sizeof errbuf)) ||
        ws_engine_new(r->cfg, &r->e, errbuf, sizeof errbuf)) {
        fprintf(stderr, "clients: %s\n", errbuf);
        return false;
    }
    pc = rd_kafka_conf_new();
    if (rd_kafka_conf_set(pc, "bootstrap.servers", boot, errbuf, sizeof errbuf) ||
        rd_kafka_conf_set(pc, "group.id", r->cfg->group_id, errbuf, sizeof errbuf) ||
        rd_kafka_conf_set(pc, "log_level", "3", errbuf, sizeof errbuf) ||
        !(r->probe = rd_kafka_new(RD_KAFKA_CONSUMER, pc, errbuf, sizeof errbuf))) {
        fprintf(stderr, "probe: %s\n", errbuf);
        return false;
    }
    return true;
}

static void rig_stop(struct rig *r)
{
    if (r->probe) {
        rd_kafka_consumer_close(r->probe);
        rd_kafka_destroy(r->probe);
    }
    ws_engine_destroy(r->e);
    ws_kafka_producer_destroy(r->p);
    ws_config_free(r->cfg);
    r->probe = NULL;
    r->e = NULL;
    r->p = NULL;
    r->cfg = NULL;
}

static bool rig_dir(struct rig *r)
{
    snprintf(r->dir, sizeof r->dir, "/tmp/ws_faults_XXXXXX");
    if (!mkdtemp(r->dir))
        return false;
    {
        char path[128], errbuf[256];
        snprintf(path, sizeof path, "%s/k", r->dir);
        if (ws_key_generate(&r->key) || ws_key_save(path, &r->key, errbuf, sizeof errbuf))
            return false;
    }
    return true;
}

static void rig_rmdir(struct rig *r)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", r->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", r->dir);
    ws_key_wipe(&r->key);
}

/* The final checks of a rig: the group committed exactly everything, nothing else. */
static void final_checks(struct rig *r, const char *what, uint64_t want_dead)
{
    struct ws_engine_stats st;
    int64_t c = -2;

    /* a commit that failed under a fault is retried by the next window's commit: post one */
    for (int i = 0; i < 40 && (c = committed(r)) != r->batches; i++)
        run_until(r, (uint64_t)r->batches, 250, false);
    CHECK(c == r->batches, "%s: committed offset %lld, %lld notifications posted", what,
          (long long)c, (long long)r->batches);
    ws_engine_get_stats(r->e, &st);
    CHECK(st.deadlettered == want_dead, "%s: %llu dead letters, expected %llu", what,
          (unsigned long long)st.deadlettered, (unsigned long long)want_dead);
    CHECK(st.conflicts == 0, "%s: %llu conflicts", what, (unsigned long long)st.conflicts);
    verify_all(r, what);
}

/* ------------------------------------------------------------------------------------------ */

static void scenario_single_broker(unsigned *faults)
{
    struct rig r = {0};
    struct ws_kafka_broker *b;
    char errbuf[512];
    struct ws_engine_stats st0, st;
    double t0;

    if (!rig_dir(&r) || !(b = ws_kafka_broker_new(NULL, 1, errbuf, sizeof errbuf))) {
        CHECK(0, "setup: %s", errbuf);
        return;
    }
    CHECK(ws_kafka_broker_create_topic(b, "data", 2, errbuf, sizeof errbuf) == WS_OK, "%s", errbuf);
    CHECK(ws_kafka_broker_create_topic(b, "windowseal.batches", 1, errbuf, sizeof errbuf) == WS_OK,
          "%s", errbuf);
    /* the idempotent producers ask for a producer id when they start: make them retry */
    CHECK(ws_kafka_broker_push_errors(b, "InitProducerId", 3, 15) == WS_OK, "push");
    (*faults)++;
    if (!rig_start(&r, ws_kafka_broker_bootstrap(b), NULL)) {
        CHECK(0, "rig_start");
        goto out_broker;
    }

    /* warm-up: the group join */
    post_window(&r, 3);
    t0 = now_ms();
    CHECK(run_until(&r, 1, 30000, true), "first window not attested in 30 s");
    note("first window attested %.1f s after the engine started (group join)",
         (now_ms() - t0) / 1e3);

    /* (1) broker down 10 s with a window in hand: its range is not complete yet, so the engine
     * holds it and retries; the records arrive once the broker is back */
    {
        int64_t at = post_window_ahead(&r, 4, true);
        char path[256];

        ws_engine_get_stats(r.e, &st0);
        t0 = now_ms();
        do {
            ws_err_t err = ws_engine_step(r.e, 20);
            if (err)
                CHECK(err == WS_OK, "step: %s", ws_strerror(err));
            ws_engine_get_stats(r.e, &st);
        } while (st.retries == st0.retries && now_ms() - t0 < 10000);
        CHECK(st.retries > st0.retries, "the incomplete window was never retried");
        CHECK(ws_kafka_broker_set_down(b, true) == WS_OK, "set_down");
        (*faults)++;
        t0 = now_ms();
        while (now_ms() - t0 < 10000) {
            ws_err_t err = ws_engine_step(r.e, 50);
            if (err)
                CHECK(err == WS_OK, "step while the broker is down: %s", ws_strerror(err));
        }
        ws_engine_get_stats(r.e, &st);
        CHECK(st.windows == st0.windows, "%llu windows attested while the broker was down",
              (unsigned long long)(st.windows - st0.windows));
        CHECK(st.deadlettered == 0, "a window was dead-lettered while the broker was down");
        snprintf(path, sizeof path, "%s/spool/" QID "/%020lld.dsse.json", r.dir,
                 (long long)r.batch_id[at]);
        CHECK(!exists(path), "an envelope of the held window was spooled (partial window)");
        snprintf(path, sizeof path, "%s/att/" QID "/%020lld.dsse.json", r.dir,
                 (long long)r.batch_id[at]);
        CHECK(!exists(path), "the held window was published while the broker was down");
        note("broker down 10 s with a window in hand: %llu retries, nothing signed, nothing "
             "dead-lettered",
             (unsigned long long)(st.retries - st0.retries));
        CHECK(ws_kafka_broker_set_down(b, false) == WS_OK, "set_up");
        t0 = now_ms();
        produce_records(&r, at, 1);
        CHECK(run_until(&r, 2, 45000, true),
              "window 1 LOST: not attested 45 s after the broker came back");
        note("broker back, the missing records produced: window attested after %.1f s",
             (now_ms() - t0) / 1e3);
    }

    /* (2) transient errors on every API the engine uses */
    {
        static const struct {
            const char *api;
            int codes[3];
        } apis[] = {
            {"Fetch", {6, 7, -195}}, /* NOT_LEADER, REQUEST_TIMED_OUT, transport */
            {"Produce", {7, 6, -195}},
            {"OffsetCommit", {15, 16, 7}}, /* COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR */
            {"FindCoordinator", {15, 7, -195}},
            {"ListOffsets", {6, 7, 5}}, /* 5 LEADER_NOT_AVAILABLE */
            {"Metadata", {7, 5, -195}},
            {"OffsetFetch", {15, 14, 7}}, /* 14 COORDINATOR_LOAD_IN_PROGRESS */
            {"Heartbeat", {27, 15, 7}},   /* 27 REBALANCE_IN_PROGRESS: forces a rejoin */
            {"JoinGroup", {15, 7, -195}},
            {"SyncGroup", {15, 7, 27}},
        };
        const char *only = getenv("WS_FAULTS_API"); /* debugging: one API only */
        for (size_t i = 0; i < sizeof apis / sizeof apis[0]; i++) {
            if (only && strcmp(only, apis[i].api) != 0)
                continue;
            for (int k = 0; k < 3; k++) {
                uint64_t want = (uint64_t)r.batches + 1;
                ws_err_t err;
                post_window(&r, 1 + k);
                /* two of each; a dropped connection once (librdkafka's reconnect backoff
                 * grows to 10 s: three in a row cost ~25 s of intake, see RELIABILITY.md) */
                int count = apis[i].codes[k] < 0 ? 1 : 2;
                err = ws_kafka_broker_push_errors(b, apis[i].api, count, apis[i].codes[k]);
                CHECK(err == WS_OK, "push_errors %s", apis[i].api);
                /* the group requests are only sent in a rebalance: force one */
                if (!strcmp(apis[i].api, "JoinGroup") || !strcmp(apis[i].api, "SyncGroup"))
                    CHECK(ws_kafka_broker_push_errors(b, "Heartbeat", 1, 27) == WS_OK, "push");
                (*faults)++;
                t0 = now_ms();
                CHECK(run_until(&r, want, 30000, true),
                      "%s error %d x%d: window %lld LOST: not attested in 30 s", apis[i].api,
                      apis[i].codes[k], count, (long long)r.next_batch - 1);
                note("%-15s error %4d x%d: window attested after %.2f s", apis[i].api,
                     apis[i].codes[k], count, (now_ms() - t0) / 1e3);
            }
        }
    }

    /* (3) Metadata says a topic does not exist: dead-lettered, the next window attested */
    CHECK(ws_kafka_broker_create_topic(b, "gone", 1, errbuf, sizeof errbuf) == WS_OK, "%s", errbuf);
    CHECK(ws_kafka_broker_set_topic_error(b, "gone", 3) == WS_OK, "set_topic_error");
    (*faults)++;
    post_bad(&r, "{\"queryId\":\"faults-gone\",\"batchId\":0,\"sources\":[{\"topic\":\"gone\","
                 "\"partition\":0,\"fromOffset\":0,\"untilOffset\":5}]}");
    post_window(&r, 2);
    CHECK(run_until(&r, (uint64_t)r.batches, 30000, true),
          "unknown topic: not dead-lettered, or the next window not attested, in 30 s");
    CHECK(ws_kafka_broker_set_topic_error(b, "gone", 0) == WS_OK, "set_topic_error 0");

    final_checks(&r, "single broker", 1);
    CHECK(r.commit_samples > 20, "the committed offset was sampled only %u times",
          r.commit_samples);
    note("committed offset sampled %u times while faults were active: never ahead",
         r.commit_samples);
    rig_stop(&r);
out_broker:
    ws_kafka_broker_destroy(b);
    rig_rmdir(&r);
}

/* (4) three brokers: leaders and the coordinator move, the leader goes down */
static void scenario_leaders(unsigned *faults)
{
    static const char *topics[] = {"data", "windowseal.batches", "windowseal.attestations",
                                   "windowseal.attestations.heads", "windowseal.batches.dlq"};
    struct rig r = {0};
    rd_kafka_t *owner = NULL;
    rd_kafka_mock_cluster_t *mc = NULL;
    rd_kafka_conf_t *oc = rd_kafka_conf_new();
    char errbuf[512];
    double t0;

    rd_kafka_conf_set(oc, "log_level", "3", errbuf, sizeof errbuf);
    if (!rig_dir(&r) || !(owner = rd_kafka_new(RD_KAFKA_PRODUCER, oc, errbuf, sizeof errbuf)) ||
        !(mc = rd_kafka_mock_cluster_new(owner, 3))) {
        CHECK(0, "three-broker mock cluster: %s", errbuf);
        goto out;
    }
    for (size_t i = 0; i < sizeof topics / sizeof topics[0]; i++)
        CHECK(rd_kafka_mock_topic_create(mc, topics[i], i == 0 ? 2 : 1, 3) == 0, "create %s",
              topics[i]);
    if (!rig_start(&r, rd_kafka_mock_cluster_bootstraps(mc), NULL)) {
        CHECK(0, "rig_start");
        goto out_rig;
    }
    post_window(&r, 2);
    CHECK(run_until(&r, 1, 30000, true), "3 brokers: first window not attested in 30 s");
    for (int round = 0; round < 3; round++) {
        int32_t leader = 1 + (round + 1) % 3;
        for (size_t i = 0; i < sizeof topics / sizeof topics[0]; i++)
            for (int32_t part = 0; part < (i == 0 ? 2 : 1); part++)
                rd_kafka_mock_partition_set_leader(mc, topics[i], part, leader);
        (*faults)++;
        post_window(&r, 2 + round);
        t0 = now_ms();
        CHECK(run_until(&r, (uint64_t)r.batches, 30000, true),
              "leaders moved to broker %d: window LOST: not attested in 30 s", leader);
        note("every partition leader moved to broker %d: window attested after %.2f s", leader,
             (now_ms() - t0) / 1e3);
    }
    /* the group coordinator moves */
    rd_kafka_mock_coordinator_set(mc, "group", r.cfg->group_id, 2);
    (*faults)++;
    post_window(&r, 3);
    t0 = now_ms();
    CHECK(run_until(&r, (uint64_t)r.batches, 30000, true), "coordinator moved: window LOST");
    note("group coordinator moved to broker 2: window attested after %.2f s",
         (now_ms() - t0) / 1e3);
    /* the leader of everything goes down; the partitions are led elsewhere */
    {
        int32_t down = 1 + (2 + 1) % 3; /* the last round's leader */
        post_window(&r, 2);
        rd_kafka_mock_broker_set_down(mc, down);
        for (size_t i = 0; i < sizeof topics / sizeof topics[0]; i++)
            for (int32_t part = 0; part < (i == 0 ? 2 : 1); part++)
                rd_kafka_mock_partition_set_leader(mc, topics[i], part, 1 + down % 3);
        (*faults)++;
        t0 = now_ms();
        CHECK(run_until(&r, (uint64_t)r.batches, 40000, true),
              "leader broker %d down: window LOST: not attested in 40 s", down);
        note("leader broker %d down, leaders moved to %d: window attested after %.2f s", down,
             1 + down % 3, (now_ms() - t0) / 1e3);
        rd_kafka_mock_broker_set_up(mc, down);
    }
    final_checks(&r, "three brokers", 0);
out_rig:
    rig_stop(&r);
out:
    if (mc)
        rd_kafka_mock_cluster_destroy(mc);
    if (owner)
        rd_kafka_destroy(owner);
    rig_rmdir(&r);
}

int main(void)
{
    unsigned faults = 0;
    double t0 = now_ms();

    setvbuf(stdout, NULL, _IOLBF, 0);
    scenario_single_broker(&faults);
    scenario_leaders(&faults);
    note("%u faults injected in %.0f s", faults, (now_ms() - t0) / 1e3);
    if (failures) {
        printf("test_engine_faults: %u checks passed, %u failed\n", checks, failures);
        return 1;
    }
    printf("test_engine_faults: %u checks passed\n", checks);
    return 0;
}
