/*
 * tests/engine_rig.h — the in-process rig of the engine fault tests (test_engine_faults.c,
 * test_engine_pipeline.c): broker, engine and a producer of records and notifications in one
 * program, so that faults can be injected between two engine steps and the engine's promises
 * checked after every step (test_engine_faults.c's design note says which).
 */
#ifndef WS_TESTS_ENGINE_RIG_H
#define WS_TESTS_ENGINE_RIG_H

#include "engine/engine.h"
#include "disk/disk.h" /* ws_log_setup */
#include "kafka/kafka.h"
#include "sinks/sink.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <pthread.h>
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
    char qid[MAX_BATCHES][16]; /* query id per notification offset */
    /* the sampler also checks that every notification below the committed offset has its
     * envelope in the file sink (I1) */
    bool check_prefix;
    bool sample_each_step; /* the sampler runs after every step (else every 250 ms) */
};

static inline double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static inline void note(const char *fmt, ...)
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
static inline int64_t committed(struct rig *r)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    int64_t off = -2;

    rd_kafka_topic_partition_list_add(l, "windowseal.batches", 0);
    if (rd_kafka_committed(r->probe, l, 2000) == RD_KAFKA_RESP_ERR_NO_ERROR && !l->elems[0].err)
        off = l->elems[0].offset < 0 ? -1 : l->elems[0].offset;
    rd_kafka_topic_partition_list_destroy(l);
    return off;
}

static inline bool attested_file(const struct rig *r, int64_t at);

/*
 * Notifications finished, from what can be seen outside the engine: every posted window whose
 * envelope is in the file sink, and the bad notifications dead-lettered (the engine's count,
 * capped at how many were posted: one re-delivered after a rebalance is dead-lettered again).
 * Not the engine's window counter: a window dropped by a rebalance after its head was produced
 * but before the report was served is never counted, and comes back as a duplicate.
 */
static inline uint64_t finished(struct rig *r)
{
    struct ws_engine_stats st;
    uint64_t done = 0, bad = 0;

    for (int64_t at = 0; at < r->batches; at++) {
        if (r->expect[at] < 0)
            bad++;
        else
            done += attested_file(r, at);
    }
    ws_engine_get_stats(r->e, &st);
    return done + (st.deadlettered < bad ? st.deadlettered : bad);
}

/*
 * Step the engine until want notifications are finished (and, with idle, nothing is in hand),
 * or timeout; samples commits.
 */
static inline bool run_steps(struct rig *r, uint64_t want, double timeout_ms, bool sample,
                             bool idle)
{
    double t0 = now_ms(), last = 0;

    while (now_ms() - t0 < timeout_ms) {
        ws_err_t err = ws_engine_step(r->e, 10);
        if (err) /* counted only when it fails: one per step would drown the real checks */
            CHECK(err == WS_OK, "ws_engine_step: %s", ws_strerror(err));
        ws_kafka_producer_poll(r->p, 0);
        if (sample && (r->sample_each_step || now_ms() - last > 250)) {
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
                for (int64_t at = 0; r->check_prefix && at < c && at < r->batches; at++)
                    if (r->expect[at] >= 0 && !attested_file(r, at))
                        CHECK(0,
                              "committed offset %lld, but window %s/%lld (offset %lld) is not "
                              "in the file sink: committed ahead",
                              (long long)c, r->qid[at], (long long)r->batch_id[at], (long long)at);
            }
        }
        if (finished(r) >= want && (!idle || ws_engine_idle(r->e)))
            return true;
    }
    return finished(r) >= want;
}

static inline bool run_until(struct rig *r, uint64_t want, double timeout_ms, bool sample)
{
    return run_steps(r, want, timeout_ms, sample, true);
}

static inline void produce_sync(struct rig *r, const char *topic, int32_t part, const char *key,
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
static inline void produce_records(struct rig *r, int64_t at, int part)
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

/* The notification of batch `at` (its query id, batch id and ranges). */
static inline void notification_json(const struct rig *r, int64_t at, char *json, size_t len)
{
    snprintf(json, len,
             "{\"queryId\":\"%s\",\"batchId\":%lld,\"sources\":["
             "{\"topic\":\"data\",\"partition\":0,\"fromOffset\":%lld,\"untilOffset\":%lld},"
             "{\"topic\":\"data\",\"partition\":1,\"fromOffset\":%lld,\"untilOffset\":%lld}]}",
             r->qid[at], (long long)r->batch_id[at], (long long)r->from[at][0],
             (long long)r->until[at][0], (long long)r->from[at][1], (long long)r->until[at][1]);
}

/*
 * The next batch: n records per data partition, then its notification. ahead: the records of
 * partition 1 are not produced yet (produce_records later): the engine holds the window and
 * retries its incomplete range.
 */
static inline int64_t post_window_ahead(struct rig *r, int n, bool ahead)
{
    char json[1024];
    int64_t b = r->next_batch++;
    int64_t at = r->batches++;

    snprintf(r->qid[at], sizeof r->qid[at], "%s", QID);
    r->batch_id[at] = b;
    r->expect[at] = 2 * n;
    for (int part = 0; part < 2; part++) {
        r->from[at][part] = r->next[part];
        r->next[part] += n;
        r->until[at][part] = r->next[part];
        if (!ahead || part == 0)
            produce_records(r, at, part);
    }
    notification_json(r, at, json, sizeof json);
    produce_sync(r, "windowseal.batches", 0, QID, json, strlen(json));
    CHECK(ws_kafka_producer_flush(r->p, 20000) == WS_OK, "notification %lld not delivered",
          (long long)b);
    return at;
}

static inline void post_window(struct rig *r, int n)
{
    (void)post_window_ahead(r, n, false);
}

/* A notification that must be dead-lettered, keyed key (the query id it names, or not). */
static inline void post_bad(struct rig *r, const char *key, const char *json)
{
    int64_t at = r->batches++;
    r->qid[at][0] = '\0';
    produce_sync(r, "windowseal.batches", 0, key, json, strlen(json));
    CHECK(ws_kafka_producer_flush(r->p, 20000) == WS_OK, "bad notification not delivered");
    r->expect[at] = -1;
    r->batch_id[at] = -1;
}

static inline char *read_file(const char *path, size_t *len)
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

static inline bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Where the file sink keeps batch `at`'s envelope (suffix ".dsse.json") or evidence. */
static inline void att_path(const struct rig *r, int64_t at, const char *suffix, char *path,
                            size_t len)
{
    snprintf(path, len, "%s/att/%s/%020lld%s", r->dir, r->qid[at], (long long)r->batch_id[at],
             suffix);
}

static inline bool attested_file(const struct rig *r, int64_t at)
{
    char path[256];
    att_path(r, at, ".dsse.json", path, sizeof path);
    return exists(path);
}

/* Every attested batch: complete, at its chain position in its query, exactly our records. */
static inline void verify_all(struct rig *r, const char *what)
{
    bool seen[MAX_BATCHES] = {false};

    for (int64_t at = 0; at < r->batches; at++) {
        char env_path[256], ev_path[256], errbuf[512];
        struct ws_verified v;
        int64_t chain = 1;
        size_t len = 0;
        char *env;
        ws_err_t err;

        if (r->expect[at] < 0)
            continue;
        att_path(r, at, ".dsse.json", env_path, sizeof env_path);
        att_path(r, at, ".evidence.lz4", ev_path, sizeof ev_path);
        env = read_file(env_path, &len);
        CHECK(env != NULL, "%s: window %s/%lld LOST: no envelope in the file sink", what,
              r->qid[at], (long long)r->batch_id[at]);
        if (!env)
            continue;
        seen[at] = true;
        for (int64_t before = 0; before < at; before++)
            chain += seen[before] && !strcmp(r->qid[before], r->qid[at]);
        err = ws_verify_envelope(env, len, &r->key, 1, ev_path, &v, errbuf, sizeof errbuf);
        CHECK(err == WS_OK, "%s: window %s/%lld does not verify with its evidence: %s", what,
              r->qid[at], (long long)r->batch_id[at], errbuf);
        if (!err) {
            CHECK(v.record_count == (uint64_t)r->expect[at],
                  "%s: window %s/%lld signed with %llu records, %lld were produced (partial)", what,
                  r->qid[at], (long long)r->batch_id[at], (unsigned long long)v.record_count,
                  (long long)r->expect[at]);
            CHECK(!strcmp(v.query_id, r->qid[at]) && v.batch_id == r->batch_id[at] &&
                      v.chain_length == (uint64_t)chain,
                  "%s: window %s/%lld states %s/%lld at chain length %llu, expected %lld", what,
                  r->qid[at], (long long)r->batch_id[at], v.query_id, (long long)v.batch_id,
                  (unsigned long long)v.chain_length, (long long)chain);
            CHECK(v.ngaps == 0, "%s: window %s/%lld has %zu gaps", what, r->qid[at],
                  (long long)r->batch_id[at], v.ngaps);
        }
        free(env);
    }
}

/* extra: NULL, or more settings (NULL-terminated) applied after these (the last one wins) */
static inline bool rig_start(struct rig *r, const char *boot, const char *const *extra)
{
    char errbuf[512], set[16][600];
    const char *sets[16];
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
    snprintf(set[n++], sizeof set[0], "engine.retry_base_ms=50");
    for (size_t i = 0; extra && extra[i] && n < (int)(sizeof set / sizeof set[0]); i++)
        snprintf(set[n++], sizeof set[0], "%s", extra[i]);
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
    if (!(r->p =
              ws_kafka_producer_new(&kc, ws_kafka_delivery_report, NULL, errbuf, sizeof errbuf)) ||
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

static inline void rig_stop(struct rig *r)
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

static inline bool rig_dir(struct rig *r)
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

static inline void rig_rmdir(struct rig *r)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", r->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", r->dir);
    ws_key_wipe(&r->key);
}

/* The final checks of a rig: the group committed exactly everything, nothing else. */
static inline void final_checks(struct rig *r, const char *what, uint64_t want_dead)
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

#endif
