/*
 * test_engine_pipeline.c — the engine as a pipeline under faults (scenario 5 of the fault tests;
 * the rig and the promises checked are test_engine_faults.c's, tests/engine_rig.h): many queries
 * in flight at once with fewer store workers than windows, the broker down while they are, then
 * transient Produce errors on the topic and head deliveries. Every window attested exactly once,
 * every chain intact, every window on the attestations and heads topics, the committed offset
 * never ahead, nothing dead-lettered. Scenario 6: a build that waits for its records holds one
 * build worker only — other queries' windows are attested meanwhile.
 */
#include "engine_rig.h"

#include <dirent.h>
#include <limits.h>

/* (5) concurrent windows: many queries in flight at once, fewer store workers than windows */

#define NQUERIES 12

/*
 * Batch `batch` of nq queries (cw-00 ...), posted at once: every window's records first (1 to
 * 4 per data partition), then the nq notifications (key = query id), then one flush.
 */
static void post_round(struct rig *r, int nq, int64_t batch)
{
    int64_t first = r->batches;
    char json[1024];

    for (int q = 0; q < nq && r->batches < MAX_BATCHES; q++) {
        int64_t at = r->batches++;
        int n = 1 + (q + (int)batch) % 4;

        snprintf(r->qid[at], sizeof r->qid[at], "cw-%02d", q);
        r->batch_id[at] = batch;
        r->expect[at] = 2 * n;
        for (int part = 0; part < 2; part++) {
            r->from[at][part] = r->next[part];
            r->next[part] += n;
            r->until[at][part] = r->next[part];
            produce_records(r, at, part);
        }
    }
    for (int64_t at = first; at < r->batches; at++) {
        notification_json(r, at, json, sizeof json);
        produce_sync(r, "windowseal.batches", 0, r->qid[at], json, strlen(json));
    }
    CHECK(ws_kafka_producer_flush(r->p, 20000) == WS_OK,
          "notifications of batch %lld not delivered", (long long)batch);
}

/* What the attestations and heads topics hold, per notification offset. */
struct copies {
    const struct rig *r;
    char *env[MAX_BATCHES]; /* the file sink's envelope */
    size_t len[MAX_BATCHES];
    unsigned topic[MAX_BATCHES], heads[MAX_BATCHES];
    unsigned strays, bad_heads, bad_keys;
};

static ws_err_t count_topic(void *opaque, const struct ws_record *rec)
{
    struct copies *c = opaque;

    for (int64_t at = 0; at < c->r->batches; at++)
        if (c->env[at] && rec->value_len == (int32_t)c->len[at] &&
            !memcmp(rec->value, c->env[at], c->len[at])) {
            c->topic[at]++;
            c->bad_keys += rec->key_len != (int32_t)strlen(c->r->qid[at]) ||
                           memcmp(rec->key, c->r->qid[at], (size_t)rec->key_len) != 0;
            return WS_OK;
        }
    c->strays++; /* an envelope the file sink does not hold */
    return WS_OK;
}

static ws_err_t count_heads(void *opaque, const struct ws_record *rec)
{
    struct copies *c = opaque;
    struct ws_head h;
    char why[256];

    if (rec->value_len > 0 &&
        ws_head_decode(rec->value, (size_t)rec->value_len, &h, why, sizeof why) == WS_OK)
        for (int64_t at = 0; at < c->r->batches; at++)
            if (!strcmp(c->r->qid[at], h.query_id) && c->r->batch_id[at] == h.last_batch) {
                c->heads[at]++;
                /* batches 0, 1, ... of each query: chain length batch + 1 */
                c->bad_heads += h.log.size != (uint64_t)h.last_batch + 1;
                return WS_OK;
            }
    c->strays++;
    return WS_OK;
}

/*
 * Each window on the attestations topic (the file sink's bytes, nothing else) and on the heads
 * topic (at its chain length). A window re-processed after a rebalance may be there twice,
 * byte-identical (I2): counted, not failed.
 */
static void check_topics(struct rig *r, const char *what)
{
    static const char *const quiet[] = {"log_level", "2"};
    struct ws_kafka_conf kc = {r->boot, NULL, quiet, 1};
    struct copies *c = calloc(1, sizeof *c);
    struct ws_kafka_reader *rd = NULL;
    char path[256], errbuf[512];
    unsigned extra_topic = 0, extra_heads = 0;

    if (!c || !(rd = ws_kafka_reader_new(&kc, errbuf, sizeof errbuf))) {
        CHECK(0, "%s: reader: %s", what, c ? errbuf : "out of memory");
        free(c);
        return;
    }
    c->r = r;
    for (int64_t at = 0; at < r->batches; at++) {
        att_path(r, at, ".dsse.json", path, sizeof path);
        c->env[at] = r->expect[at] >= 0 ? read_file(path, &c->len[at]) : NULL;
    }
    CHECK(ws_kafka_read_all(rd, r->cfg->attestations_topic, count_topic, c, 20000, errbuf,
                            sizeof errbuf) == WS_OK,
          "%s: read %s: %s", what, r->cfg->attestations_topic, errbuf);
    CHECK(ws_kafka_read_all(rd, r->cfg->heads_topic, count_heads, c, 20000, errbuf,
                            sizeof errbuf) == WS_OK,
          "%s: read %s: %s", what, r->cfg->heads_topic, errbuf);
    for (int64_t at = 0; at < r->batches; at++) {
        if (r->expect[at] < 0)
            continue;
        CHECK(c->topic[at] >= 1 && c->heads[at] >= 1,
              "%s: window %s/%lld LOST: %u times on the attestations topic, %u times on the heads "
              "topic",
              what, r->qid[at], (long long)r->batch_id[at], c->topic[at], c->heads[at]);
        extra_topic += c->topic[at] > 1 ? c->topic[at] - 1 : 0;
        extra_heads += c->heads[at] > 1 ? c->heads[at] - 1 : 0;
    }
    CHECK(c->strays == 0, "%s: %u records on the topics that are no window of ours", what,
          c->strays);
    CHECK(c->bad_heads == 0, "%s: %u heads at the wrong chain length", what, c->bad_heads);
    CHECK(c->bad_keys == 0, "%s: %u attestations keyed other than by their query id", what,
          c->bad_keys);
    note("%s: every window on %s and %s; byte-identical extra copies: %u and %u", what,
         r->cfg->attestations_topic, r->cfg->heads_topic, extra_topic, extra_heads);
    for (int64_t at = 0; at < r->batches; at++)
        free(c->env[at]);
    free(c);
    ws_kafka_reader_destroy(rd);
}

/* Brings the broker back after ms, whatever the engine thread is doing then. */
struct broker_timer {
    struct ws_kafka_broker *b;
    int ms;
    ws_err_t err;
};

static void *broker_up_later(void *arg)
{
    struct broker_timer *t = arg;
    struct timespec ts = {t->ms / 1000, (long)(t->ms % 1000) * 1000000};

    nanosleep(&ts, NULL);
    t->err = ws_kafka_broker_set_down(t->b, false);
    return NULL;
}

/* Step until at least `records` records are built into windows (stats.records), or timeout. */
static bool run_built(struct rig *r, uint64_t records, double timeout_ms)
{
    struct ws_engine_stats st;
    double t0 = now_ms();

    do {
        ws_err_t err = ws_engine_step(r->e, 10);
        if (err)
            CHECK(err == WS_OK, "ws_engine_step: %s", ws_strerror(err));
        ws_engine_get_stats(r->e, &st);
    } while (st.records < records && now_ms() - t0 < timeout_ms);
    return st.records >= records;
}

/* Wait (stepping the engine) until the group's committed offset is want; the last value seen. */
static int64_t wait_committed(struct rig *r, int64_t want, double timeout_ms)
{
    double t0 = now_ms();
    int64_t c;

    while ((c = committed(r)) != want && now_ms() - t0 < timeout_ms)
        run_steps(r, UINT64_MAX, 50, false, false);
    return c;
}

/* Entries of dir (not dot-names); -1 if it cannot be read. */
static int count_in(const char *dir)
{
    struct dirent *de;
    DIR *d = opendir(dir);
    int n = 0;

    if (!d)
        return -1;
    while ((de = readdir(d)))
        n += de->d_name[0] != '.';
    closedir(d);
    return n;
}

/* The spool's .free after windows of a copying sink: some files wait there, all of them empty. */
static void check_recycled(const struct rig *r)
{
    char dir[PATH_MAX], p[PATH_MAX + 300];
    struct dirent *de;
    struct stat st;
    unsigned n = 0, full = 0;
    DIR *d;

    snprintf(dir, sizeof dir, "%s/spool/.free", r->dir);
    CHECK((d = opendir(dir)) != NULL, "no %s", dir);
    if (!d)
        return;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        n++;
        full += stat(p, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size != 0;
    }
    closedir(d);
    CHECK(n > 0 && n <= 64 && full == 0, "spool .free: %u files, %u of them not empty", n, full);
    note("concurrent windows: %u emptied files wait in the spool's .free", n);
}

static void scenario_concurrent(unsigned *faults)
{
    static const char *const topics[] = {"windowseal.attestations", "windowseal.attestations.heads",
                                         "windowseal.batches.dlq"};
    /* four store workers for twelve windows; a delivery not acknowledged in 1 s fails (and the
     * engine produces it again) rather than waiting the producer's default 30 s; the file sink
     * copies (link false), so the spool recycles every window's files (disk/spool.c) while
     * other windows are written: each copy must still verify with its own evidence */
    static char sinks[600];
    const char *const extra[] = {"engine.max_windows_in_flight=4",
                                 "kafka.properties.message.timeout.ms=1000", sinks, NULL};
    struct ws_engine_stats st0, st;
    struct ws_kafka_broker *b = NULL;
    struct rig r = {0};
    char errbuf[512] = "";
    uint64_t built = 0;
    int64_t c;
    double t0;

    r.check_prefix = true;
    r.sample_each_step = true;
    if (!rig_dir(&r) || !(b = ws_kafka_broker_new(NULL, 1, errbuf, sizeof errbuf))) {
        CHECK(0, "setup: %s", errbuf);
        rig_rmdir(&r);
        return;
    }
    CHECK(ws_kafka_broker_create_topic(b, "data", 2, errbuf, sizeof errbuf) == WS_OK, "%s", errbuf);
    CHECK(ws_kafka_broker_create_topic(b, "windowseal.batches", 1, errbuf, sizeof errbuf) == WS_OK,
          "%s", errbuf);
    for (size_t i = 0; i < sizeof topics / sizeof topics[0]; i++) /* not waited for on first use */
        CHECK(ws_kafka_broker_create_topic(b, topics[i], 1, errbuf, sizeof errbuf) == WS_OK, "%s",
              errbuf);
    snprintf(sinks, sizeof sinks, "sinks=[{\"type\":\"file\",\"path\":\"%s/att\",\"link\":false}]",
             r.dir);
    if (!rig_start(&r, ws_kafka_broker_bootstrap(b), extra)) {
        CHECK(0, "rig_start");
        goto out;
    }
    CHECK(r.cfg->max_windows_in_flight == 4, "max_windows_in_flight %lld",
          (long long)r.cfg->max_windows_in_flight);

    /* round 1 (batch 0 of every query): the broker down 3 s once a third of it is built */
    post_round(&r, NQUERIES, 0);
    for (int64_t at = 0; at < NQUERIES / 3; at++)
        built += (uint64_t)r.expect[at];
    t0 = now_ms();
    CHECK(run_built(&r, built, 30000), "round 1: not %llu records built in 30 s",
          (unsigned long long)built);
    ws_engine_get_stats(r.e, &st0);
    CHECK(ws_kafka_broker_set_down(b, true) == WS_OK, "set_down");
    (*faults)++;
    note("round 1: broker down 3 s, %.1f s after the round was posted (group join), with %llu of "
         "%d windows attested and %llu records built",
         (now_ms() - t0) / 1e3, (unsigned long long)st0.windows, NQUERIES,
         (unsigned long long)st0.records);
    {
        struct broker_timer up = {b, 3000, WS_OK};
        pthread_t timer;
        double longest = 0, t1 = now_ms();

        if (pthread_create(&timer, NULL, broker_up_later, &up) != 0) {
            CHECK(0, "timer thread");
            CHECK(ws_kafka_broker_set_down(b, false) == WS_OK, "set_up");
            goto out;
        }
        while (now_ms() - t1 < 3000) { /* no samples: the probe would wait on the broker */
            double ts = now_ms();
            ws_err_t err = ws_engine_step(r.e, 10);
            if (err)
                CHECK(err == WS_OK, "step while the broker is down: %s", ws_strerror(err));
            if (now_ms() - ts > longest)
                longest = now_ms() - ts;
        }
        ws_engine_get_stats(r.e, &st);
        pthread_join(timer, NULL);
        CHECK(up.err == WS_OK, "set_up");
        CHECK(st.deadlettered == 0, "round 1: %llu windows dead-lettered while the broker was down",
              (unsigned long long)st.deadlettered);
        note("round 1: while the broker was down: %llu windows attested, %llu retries, %llu sink "
             "failures; longest step %.0f ms",
             (unsigned long long)(st.windows - st0.windows),
             (unsigned long long)(st.retries - st0.retries),
             (unsigned long long)(st.sink_failures - st0.sink_failures), longest);
    }
    t0 = now_ms();
    CHECK(run_until(&r, NQUERIES, 45000, true),
          "round 1: %llu of %d windows finished 45 s after the broker came back",
          (unsigned long long)finished(&r), NQUERIES);
    note("round 1: broker back: every window attested after %.1f s", (now_ms() - t0) / 1e3);
    /* commits are asynchronous: the last one may land a step later, never much later */
    c = wait_committed(&r, NQUERIES, 5000);
    CHECK(c == NQUERIES, "round 1: engine idle, committed offset %lld 5 s later, %d posted",
          (long long)c, NQUERIES);

    /* round 2 (batch 1 of every query): Produce errors while it is in flight; librdkafka
     * retries them itself until message.timeout.ms, then the engine produces again */
    ws_engine_get_stats(r.e, &st0);
    post_round(&r, NQUERIES, 1);
    CHECK(ws_kafka_broker_push_errors(b, "Produce", 10, 7) == WS_OK, "push");   /* timed out */
    CHECK(ws_kafka_broker_push_errors(b, "Produce", 10, 6) == WS_OK, "push");   /* not leader */
    CHECK(ws_kafka_broker_push_errors(b, "Produce", 1, -195) == WS_OK, "push"); /* transport */
    (*faults)++;
    t0 = now_ms();
    CHECK(run_until(&r, 2 * NQUERIES, 45000, true),
          "round 2: %llu of %d windows finished in 45 s under Produce errors",
          (unsigned long long)finished(&r), 2 * NQUERIES);
    ws_engine_get_stats(r.e, &st);
    note("round 2: 21 Produce errors: every window attested after %.1f s (%llu sink failures, "
         "%llu retries)",
         (now_ms() - t0) / 1e3, (unsigned long long)(st.sink_failures - st0.sink_failures),
         (unsigned long long)(st.retries - st0.retries));

    final_checks(&r, "concurrent windows", 0);
    check_recycled(&r);
    ws_engine_get_stats(r.e, &st);
    CHECK(st.windows == 2 * NQUERIES,
          "concurrent windows: %llu windows attested (%llu duplicates), %d posted",
          (unsigned long long)st.windows, (unsigned long long)st.duplicates, 2 * NQUERIES);
    check_topics(&r, "concurrent windows");
    CHECK(r.commit_samples > 20, "concurrent windows: committed offset sampled only %u times",
          r.commit_samples);
    note("concurrent windows: committed offset sampled %u times: never ahead (%llu duplicates)",
         r.commit_samples, (unsigned long long)st.duplicates);
out:
    rig_stop(&r);
    ws_kafka_broker_destroy(b);
    rig_rmdir(&r);
}

/*
 * (6) a slow build does not hold up other queries: one window's records are not in Kafka yet,
 * so its build waits (up to engine.fetch_timeout_ms) on a build worker; the windows of four
 * other queries posted after it are built on the other worker and attested meanwhile, while
 * the committed offset stays below the waiting one (I1). Then its records come and it is
 * attested too.
 */
static void scenario_slow_build(void)
{
    static const char *const extra[] = {"engine.build_workers=2", "engine.fetch_timeout_ms=8000",
                                        NULL};
    static const char held[] = "{\"queryId\":\"held\",\"batchId\":0,\"sources\":[{\"topic\":"
                               "\"slow\",\"partition\":0,\"fromOffset\":0,\"untilOffset\":3}]}";
    struct ws_kafka_broker *b = NULL;
    struct ws_engine_stats st;
    struct rig r = {0};
    char errbuf[512] = "", path[256];
    int64_t c;
    double t0;

    if (!rig_dir(&r) || !(b = ws_kafka_broker_new(NULL, 1, errbuf, sizeof errbuf))) {
        CHECK(0, "setup: %s", errbuf);
        rig_rmdir(&r);
        return;
    }
    CHECK(ws_kafka_broker_create_topic(b, "data", 2, errbuf, sizeof errbuf) == WS_OK, "%s", errbuf);
    CHECK(ws_kafka_broker_create_topic(b, "slow", 1, errbuf, sizeof errbuf) == WS_OK, "%s", errbuf);
    CHECK(ws_kafka_broker_create_topic(b, "windowseal.batches", 1, errbuf, sizeof errbuf) == WS_OK,
          "%s", errbuf);
    if (!rig_start(&r, ws_kafka_broker_bootstrap(b), extra)) {
        CHECK(0, "rig_start");
        goto out;
    }
    CHECK(r.cfg->build_workers == 2 && r.cfg->fetch_timeout_ms == 8000, "config not applied");
    /* the held window: offset 0 of the notifications topic, its 3 records not produced yet */
    snprintf(r.qid[0], sizeof r.qid[0], "held");
    r.batch_id[0] = 0;
    r.expect[0] = 3;
    r.batches = 1;
    produce_sync(&r, "windowseal.batches", 0, "held", held, strlen(held));
    post_round(&r, 4, 0); /* offsets 1..4: cw-00..cw-03, batch 0 each */
    t0 = now_ms();
    CHECK(run_steps(&r, 4, 7000, true, false),
          "slow build: %llu of 4 other windows attested "
          "while one build waits",
          (unsigned long long)finished(&r));
    /* in the file sink first, counted once their heads are acknowledged */
    for (double t1 = now_ms(); now_ms() - t1 < 5000;) {
        ws_engine_get_stats(r.e, &st);
        if (st.windows >= 4)
            break;
        (void)run_steps(&r, UINT64_MAX, 20, true, false);
    }
    att_path(&r, 0, ".dsse.json", path, sizeof path);
    CHECK(st.windows == 4 && !exists(path),
          "slow build: %llu windows attested, the held one %s (its records are not in Kafka)",
          (unsigned long long)st.windows, exists(path) ? "too" : "not");
    for (int64_t at = 1; at < r.batches; at++)
        CHECK(attested_file(&r, at), "slow build: %s/%lld not in the file sink", r.qid[at],
              (long long)r.batch_id[at]);
    c = committed(&r);
    CHECK(c <= 0, "slow build: committed offset %lld while offset 0 is still being built (I1)",
          (long long)c);
    note("slow build: 4 windows of other queries attested %.2f s after posting, while the held "
         "window's build waited for its records; committed offset %lld",
         (now_ms() - t0) / 1e3, (long long)c);
    /* its records arrive: the waiting build (or its retry) completes */
    for (int i = 0; i < 3; i++)
        produce_sync(&r, "slow", 0, NULL, "rec", 3);
    CHECK(ws_kafka_producer_flush(r.p, 20000) == WS_OK, "slow records not delivered");
    CHECK(run_steps(&r, 5, 20000, true, true),
          "slow build: the held window not attested 20 s "
          "after its records came (%llu finished)",
          (unsigned long long)finished(&r));
    CHECK(exists(path), "slow build: %s missing", path);
    c = wait_committed(&r, 5, 5000);
    CHECK(c == 5, "slow build: committed offset %lld after every window, want 5", (long long)c);
    ws_engine_get_stats(r.e, &st);
    CHECK(st.windows == 5 && st.deadlettered == 0 &&
              (int64_t)st.records == 3 + r.expect[1] + r.expect[2] + r.expect[3] + r.expect[4],
          "slow build: %llu windows, %llu dead letters, %llu records",
          (unsigned long long)st.windows, (unsigned long long)st.deadlettered,
          (unsigned long long)st.records);
    /* the rig's file sink links the spool's files: they are its objects, never recycled */
    snprintf(path, sizeof path, "%s/spool/.free", r.dir);
    CHECK(count_in(path) == 0, "slow build: %d files in the spool's .free with a linking sink",
          count_in(path));
out:
    rig_stop(&r);
    ws_kafka_broker_destroy(b);
    rig_rmdir(&r);
}

int main(void)
{
    unsigned faults = 0;
    double t0 = now_ms();

    setvbuf(stdout, NULL, _IOLBF, 0);
    scenario_concurrent(&faults);
    scenario_slow_build();
    note("%u faults injected in %.0f s", faults, (now_ms() - t0) / 1e3);
    if (failures) {
        printf("test_engine_pipeline: %u checks passed, %u failed\n", checks, failures);
        return 1;
    }
    printf("test_engine_pipeline: %u checks passed\n", checks);
    return 0;
}
