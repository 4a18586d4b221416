/*
 * engine.c — the attestation engine: one thread, one loop, every window's life.
 *
 * A window's life (one notification = one micro-batch = one window). Each stage is a value of
 * enum stage (internal.h); each arrow is one function, in the file named beside it:
 *
 *   polled ──eng_intake (intake.c)──► ST_QUEUED, in its query's queue, in batch order
 *     │  idle trigger: done at once       │  (its turn: the head of the queue)
 *     │  bad: ST_DEADLETTER (orphans)     ├─ batch <= head: eng_old_batch (publish.c)
 *     │                                   │      duplicate -> ST_DONE, conflict -> ST_DEADLETTER
 *     │                                   ├─ batch > head+1: held gap_wait_ms, then with a gap
 *     │                                   ▼
 *     │                 ST_BUILDING ──eng_pool_submit (pool.c)──► a build worker runs
 *     │                 eng_build (build.c): records re-read (window-stream order), streamed
 *     │                 through stream digest, Merkle tree and LZ4 into the spool; fsync,
 *     │                 rename; statement, signature, envelope spooled
 *     │                                   │  not retained / unknown topic: ST_DEADLETTER
 *     │                                   ▼ built(), back on this thread
 *     │                 ST_SPOOLED ──eng_pool_submit (pool.c)──► ST_STORING: a store worker
 *     │                 runs eng_store (publish.c): every object store + checkpoint (sinks_done)
 *     │                                   ▼ stored(), back on this thread
 *     │                 ST_STORED ──eng_topic_submit/done──► the attestations topic (report)
 *     │                 ST_HEAD ──eng_head_submit/done──► chain head acknowledged ──► ST_DONE
 *     │                   (openlineage: its envelope copied to the lineage emitter's queue,
 *     │                    sent by the emitter's own thread; nothing waits for it)
 *     ▼
 *   ST_DEADLETTER ──eng_deadletter (intake.c)──► record acknowledged ──► ST_DONE
 *
 *   ST_DONE ──retire (here)──► out of hand: its partition committed up to the lowest offset
 *   still in hand (commit.c), the spool entry removed.
 *
 * Nothing here waits on a round trip: a window out with a worker or with a message in
 * flight leaves its query where it is, and the loop goes on with the other queries (windows of
 * different queries proceed concurrently, up to engine.build_workers being built and
 * engine.max_windows_in_flight in the object stores at once; within a query they stay in batch
 * order, one past its turn at a time, each linked to the one before). Commits are batched, one
 * asynchronous commit per moved partition at the end of a step (commit.c). This thread only
 * polls, schedules, produces and commits: fetching, hashing and spooling run on the build
 * workers, object-store requests on the store workers.
 *
 * A failed arrow goes to one place, failed() below: retriable -> backoff, the window waits;
 * permanent while building -> dead-letter; permanent while publishing -> the query's chain
 * stops (a sink or a stored object needs a person). The dead-letters without a usable query id
 * are a queue like a query's (e->orphans) and go through the same loop.
 *
 * Durability invariants (each step keeps them; the tests break them on purpose; engine_check
 * asserts the checkable ones after every step in debug and sanitizer builds):
 *   I1  A notification's offset is committed only after the window's envelope and evidence are
 *       in every sink and its chain head is acknowledged by Kafka — or after its dead-letter
 *       record is acknowledged. Offsets are committed per partition up to the lowest offset
 *       still in hand, so a held or retrying window keeps later ones uncommitted too.
 *   I2  The statement is a pure function of (notification, records, chain head, configuration):
 *       reprocessing after a crash yields the same bytes and, with Ed25519, the same envelope,
 *       so "already written with identical bytes" is success everywhere.
 *   I3  The chain head in Kafka only moves forward by one window at a time, after the sinks
 *       hold that window; a restart or another group member continues from it.
 *   I4  Nothing from outside is trusted: a notification that cannot be processed is
 *       dead-lettered with its reason and the loop goes on with the next one.
 *   I5  Windows of a query are attested in batch order; a batch that never arrives becomes a
 *       gap in the next attestation, never a silent skip.
 *
 * After a rebalance (the consumer's generation changes) everything in hand is dropped and the
 * heads are reloaded: with the eager protocol, fetching restarts from the committed offsets, so
 * the dropped notifications come again and I2 makes reprocessing harmless.
 *
 * Thread: everything here runs on the caller's thread, except eng_build on the build workers
 * and eng_store on the store workers (pool.c says what they may touch); ws_engine_stop may be
 * called from a signal handler. After
 * a stop, windows already past the spool are finished (bounded by STOP_GRACE_MS); the rest wait
 * in the spool or in Kafka for the next run.
 */
#include "engine/internal.h"
#include "disk/testhook.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------------------------------------ */
/* Invariants (SQLite's assert(assert_pager_state(p)) manner: a function only asserts call)   */

#ifndef NDEBUG
/* A query's queue: stages consistent with their progress bits, ST_QUEUED ones in batch order. */
static bool check_queue(const struct ws_engine *e, const struct query *q, size_t *count)
{
    const struct pending *prev_queued = NULL;
    unsigned all = e->nsinks >= 32 ? ~0u : (1u << e->nsinks) - 1;
    unsigned topic = 1u << (e->nsinks - 1);

    for (const struct pending *p = q->queue; p; p = p->next) {
        const struct inflight *part = NULL;
        bool held = false;

        (*count)++;
        switch (p->stage) {
        case ST_QUEUED:
            if (p->sinks_done || p->head_done || p->envelope)
                return false;
            if (prev_queued && prev_queued->n.batch_id > p->n.batch_id)
                return false; /* I5: queued batches wait in batch order */
            prev_queued = p;
            break;
        case ST_BUILDING: /* a worker's now: its fields are not ours to read */
        case ST_STORING:
            if (p != q->queue)
                return false;
            break;
        case ST_SPOOLED:
        case ST_STORED:
        case ST_HEAD:
            if (!p->envelope || !p->evidence_path[0] || (p->sinks_done & ~all) || p->head_done)
                return false;
            /* the topic (last sink) only after every object store, the head only after all */
            if (p->stage == ST_STORED && (p->sinks_done | topic) != all)
                return false;
            if (p->stage == ST_HEAD && p->sinks_done != all)
                return false;
            if (p->stage == ST_SPOOLED && (p->sinks_done & topic))
                return false;
            if (p->dv && p->stage != ST_STORED && p->stage != ST_HEAD)
                return false;
            if (p != q->queue)
                return false; /* one window of a query past its turn at a time */
            break;
        case ST_DEADLETTER:
            if (p->sinks_done || p->head_done || !p->dlq_reason[0] || p->dv)
                return false;
            break;
        case ST_DONE:
            return false; /* retired in the step that made it done */
        }
        if (q == &e->orphans && p->stage != ST_DEADLETTER)
            return false;
        for (size_t i = 0; i < e->nparts && !part; i++)
            if (e->parts[i].partition == p->partition)
                part = &e->parts[i];
        for (size_t i = 0; part && i < part->n && !held; i++)
            held = part->offs[i] == p->offset;
        if (!held)
            return false; /* every pending notification is in hand */
    }
    return true;
}
#endif

/* Asserts I1's bookkeeping and the queues' shape; compiled out with NDEBUG. */
static void engine_check(const struct ws_engine *e)
{
#ifndef NDEBUG
    size_t pending = 0, offsets = 0;

    for (size_t i = 0; i < e->nparts; i++) {
        const struct inflight *part = &e->parts[i];
        offsets += part->n;
        /* I1: never committed past a notification still in hand */
        assert(part->committed <= eng_inflight_next(part));
        assert(part->n <= part->cap);
    }
    assert(check_queue(e, &e->orphans, &pending));
    for (const struct query *q = e->queries; q; q = q->next)
        assert(check_queue(e, q, &pending));
    assert(e->in_hand == offsets && offsets == pending);
    assert(e->nsinks >= 1 && e->nsinks <= MAX_SINKS);
    ws_spool_check(e->spool);
#else
    (void)e;
#endif
}

/* ------------------------------------------------------------------------------------------ */
/* Chain heads (I3)                                                                             */

static ws_err_t head_cb(void *opaque, const struct ws_record *r)
{
    struct ws_engine *e = opaque;
    struct ws_head h;
    char why[256];
    struct query *q;

    if (r->value_len <= 0)
        return WS_OK;
    if (ws_head_decode(r->value, (size_t)r->value_len, &h, why, sizeof why)) {
        ws_log(WS_LOG_WARN, "head_ignored", "partition=%d offset=%lld reason=\"%s\"", r->partition,
               (long long)r->offset, why);
        return WS_OK;
    }
    if (!(q = eng_query_get(e, h.query_id, true)))
        return WS_ERR_NOMEM;
    if (!q->has_head || h.log.size >= q->head.log.size) {
        q->head = h;
        q->has_head = true;
    }
    return WS_OK;
}

static ws_err_t load_heads(struct ws_engine *e)
{
    char errbuf[256];
    ws_err_t err;

    for (struct query *q = e->queries; q; q = q->next)
        q->has_head = false;
    err = ws_kafka_read_all(e->reader, e->cfg->heads_topic, head_cb, e,
                            (int)e->cfg->fetch_timeout_ms, errbuf, sizeof errbuf);
    if (err) {
        ws_log(WS_LOG_WARN, "heads_load_failed", "topic=%s reason=\"%s\"", e->cfg->heads_topic,
               errbuf);
        return err;
    }
    e->heads_loaded = true;
    return WS_OK;
}

/*
 * Are the heads loaded (after start or a rebalance)? Asks again after a failure only when its
 * backoff is over, on the same schedule as a window's retries: a heads topic that cannot be read
 * costs one request and one log line per retry_max_ms, not one per step.
 */
static bool heads_ready(struct ws_engine *e)
{
    int64_t now = ws_clock_ms(), d = e->cfg->retry_base_ms;

    if (e->heads_loaded)
        return true;
    if (now < e->heads_retry_at)
        return false;
    if (load_heads(e) == WS_OK) {
        e->heads_attempts = 0;
        e->heads_retry_at = 0;
        return true;
    }
    for (unsigned i = 0; i < e->heads_attempts && d < e->cfg->retry_max_ms; i++)
        d *= 2;
    e->heads_retry_at = now + (d < e->cfg->retry_max_ms ? d : e->cfg->retry_max_ms);
    e->heads_attempts++;
    return false;
}

/* Drop everything in hand (after a rebalance): it will be delivered again (I2). */
static void drop_all(struct ws_engine *e)
{
    struct pending *p, *nx;
    struct query *wq;

    /* the workers hand back what they hold first: nothing may be freed under them */
    while (eng_pool_busy(e->pool) || eng_pool_busy(e->builders)) {
        while (eng_pool_done(e->pool, &wq) || eng_pool_done(e->builders, &wq))
            ;
        ws_kafka_producer_poll(e->producer, 1);
    }

    for (struct query *q = e->queries; q; q = q->next) {
        for (p = q->queue; p; p = nx) {
            nx = p->next;
            eng_pending_free(p);
        }
        q->queue = NULL;
        q->stopped = false;
    }
    for (p = e->orphans.queue; p; p = nx) {
        nx = p->next;
        eng_pending_free(p);
    }
    e->orphans.queue = NULL;
    eng_inflight_reset(e);
}

/* ------------------------------------------------------------------------------------------ */
/* Scheduling and the one retry policy                                                          */

static void backoff(struct ws_engine *e, struct pending *p)
{
    int64_t d = e->cfg->retry_base_ms;

    for (unsigned i = 0; i < p->attempts && d < e->cfg->retry_max_ms; i++)
        d *= 2;
    if (d > e->cfg->retry_max_ms)
        d = e->cfg->retry_max_ms;
    d = d * 3 / 4 + (int64_t)(rand() % (int)(d / 2 + 1)); /* jitter: 75%..125% */
    p->attempts++;
    p->next_attempt = ws_clock_ms() + d;
    e->stats.retries++;
    ws_metrics_add(e->metrics, "windowseal_retries_total", NULL, 1);
}

/*
 * "window_timing query=q batch=b ms: wait=.. read=.. ... total=..": each figure is the time from
 * the mark before to that one (enum mark), total from received to the head acknowledged. The
 * attestation's Kafka CreateTime is taken at produce: received..topic is the engine's share of
 * the notification-to-attestation latency (bench_slowstore latency prints their medians).
 */
void eng_log_timing(const struct query *q, const struct pending *p)
{
    static const char *const names[MK_COUNT] = {
        [MK_BUILD] = "wait",          [MK_READ] = "read",        [MK_EVIDENCE] = "evidence",
        [MK_SEALED] = "seal",         [MK_SPOOLED] = "envelope", [MK_BUILT] = "to_engine",
        [MK_STORE] = "to_store",      [MK_STORED] = "store",     [MK_TOPIC] = "to_topic",
        [MK_TOPIC_ACK] = "topic_ack", [MK_HEAD_ACK] = "head_ack"};
    char buf[512];
    size_t n = 0;
    int64_t prev = p->mark[MK_RECEIVED];

    if (!prev || !ws_log_enabled(WS_LOG_DEBUG))
        return;
    for (int m = MK_RECEIVED + 1; m < MK_COUNT && n < sizeof buf; m++) {
        if (!p->mark[m])
            continue;
        n += (size_t)snprintf(buf + n, sizeof buf - n, " %s=%.2f", names[m],
                              (double)(p->mark[m] - prev) / 1e3);
        prev = p->mark[m];
    }
    ws_log(WS_LOG_DEBUG, "window_timing", "query=%s batch=%lld ms:%s total=%.2f", q->id,
           (long long)p->n.batch_id, n < sizeof buf ? buf : "",
           (double)(prev - p->mark[MK_RECEIVED]) / 1e3);
}

static const char *stage_name(enum stage s)
{
    static const char *const names[] = {"queued", "building", "spooled",    "storing",
                                        "stored", "head",     "deadletter", "done"};
    return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "?";
}

/*
 * A transition failed with err: the one place that decides what that means. Returns true when
 * the queue must wait (a retry is scheduled, or the chain stopped), false when the window moved
 * on (to ST_DEADLETTER) and the loop may continue.
 */
static bool failed(struct ws_engine *e, struct query *q, struct pending *p, ws_err_t err,
                   const char *why)
{
    if (p->stage == ST_DEADLETTER || ws_err_retriable(err)) {
        if (p->stage != ST_DEADLETTER)
            ws_log(WS_LOG_WARN, "window_retry",
                   "query=%s batch=%lld stage=%s attempt=%u reason=\"%s\"", q->id,
                   (long long)p->n.batch_id, stage_name(p->stage), p->attempts + 1, why);
        backoff(e, p);
        return true;
    }
    if (p->stage == ST_QUEUED) { /* this notification can never become a window */
        eng_to_deadletter(p, err, why);
        return false;
    }
    q->stopped = true; /* published in part: never skip it, never sign another in its place */
    ws_log(WS_LOG_ERROR, "query_stopped",
           "query=%s batch=%lld reason=\"%s\" action=\"fix the sink or the stored object, then "
           "restart; later windows of this query wait\"",
           q->id, (long long)p->n.batch_id, why);
    return true;
}

/* ST_DONE: out of hand (committable, I1) and freed. */
static void retire(struct ws_engine *e, struct query *q, struct pending *p)
{
    assert(q->queue == p && p->stage == ST_DONE);
    q->queue = p->next;
    eng_inflight_done(e, p->partition, p->offset);
    eng_pending_free(p);
}

/* Is p's turn now? Sets *gap when batches before it are given up on (I5). */
static bool its_turn(struct ws_engine *e, struct query *q, struct pending *p, int64_t now,
                     struct ws_gap *gap, bool *has_gap)
{
    int64_t expected = q->has_head ? q->head.last_batch + 1 : 0;

    *has_gap = false;
    if (p->n.batch_id <= expected || p->n.batch_id <= q->no_wait_below) {
        *has_gap = p->n.batch_id > expected;
    } else {
        if (!p->held_since) {
            p->held_since = now;
            ws_log(WS_LOG_INFO, "batch_ahead", "query=%s batch=%lld expected=%lld wait_ms=%lld",
                   q->id, (long long)p->n.batch_id, (long long)expected,
                   (long long)e->cfg->gap_wait_ms);
        }
        if (now - p->held_since < e->cfg->gap_wait_ms)
            return false;
        *has_gap = true;
    }
    gap->from_batch = expected;
    gap->until_batch = p->n.batch_id;
    return true;
}

/* ST_QUEUED -> ST_BUILDING | ST_DONE | ST_DEADLETTER; false: the queue waits. */
static bool step_queued(struct ws_engine *e, struct query *q, struct pending *p, int64_t now)
{
    if (q->has_head && p->n.batch_id <= q->head.last_batch) {
        eng_old_batch(e, q, p);
        return true;
    }
    if (!its_turn(e, q, p, now, &p->gap, &p->has_gap))
        return false;
    if (!eng_pool_submit(e->builders, q, p))
        return false; /* every build worker busy: its turn comes when one is free */
    p->stage = ST_BUILDING;
    return false; /* the worker hands it back through built() */
}

/*
 * ST_STORED and ST_HEAD: the message in flight, or the next one to send. False: the queue waits
 * (for the report, a retry, or a stopped chain).
 */
static bool step_produce(struct ws_engine *e, struct query *q, struct pending *p, char *errbuf,
                         size_t errlen)
{
    bool topic = p->stage == ST_STORED;
    ws_err_t err;

    if (!p->dv) {
        err = topic ? eng_topic_submit(e, q, p, errbuf, errlen)
                    : eng_head_submit(e, q, p, errbuf, errlen);
        if (err && err != WS_ERR_AGAIN) /* AGAIN: the producer's queue drains as reports come */
            failed(e, q, p, err, errbuf);
        else if (!err) {
            if (topic)
                eng_mark(p, MK_TOPIC);
            WS_TEST_HOOK(topic ? "topic_submitted" : "head_submitted");
        }
        return false; /* sent: the report comes in a later step */
    }
    if (!p->dv->done)
        return false;
    err = topic ? eng_topic_done(e, q, p, errbuf, errlen) : eng_head_done(e, q, p, errbuf, errlen);
    free(p->dv);
    p->dv = NULL;
    if (err) {
        failed(e, q, p, err, errbuf);
        return false;
    }
    p->attempts = 0;
    p->stage = topic ? ST_HEAD : ST_DONE;
    eng_mark(p, topic ? MK_TOPIC_ACK : MK_HEAD_ACK);
    if (!topic)
        eng_log_timing(q, p);
    return true;
}

/*
 * Move the head of one query's queue along as far as it goes now, without waiting on anything:
 * a window out with a store worker or a message in flight leaves the query where it is and the
 * loop goes on with the next query. After stop, only windows already past the spool finish.
 */
static void advance_query(struct ws_engine *e, struct query *q)
{
    char errbuf[1024];
    ws_err_t err;

    while (q->queue && !q->stopped) {
        struct pending *p = q->queue;
        int64_t now = ws_clock_ms();

        if (p->next_attempt > now)
            return;
        if (e->stop &&
            (p->stage == ST_QUEUED || p->stage == ST_SPOOLED || p->stage == ST_DEADLETTER))
            return; /* not started: it stays in the spool / in Kafka for the next run */
        switch (p->stage) {
        case ST_QUEUED:
            if (!step_queued(e, q, p, now))
                return;
            continue;
        case ST_BUILDING:
            return; /* the worker hands it back through built() */
        case ST_SPOOLED:
            if (!eng_pool_submit(e->pool, q, p))
                return; /* every worker busy: its turn comes when one is free */
            p->stage = ST_STORING;
            return;
        case ST_STORING:
            return; /* the worker hands it back through stored() */
        case ST_STORED:
        case ST_HEAD:
            if (!step_produce(e, q, p, errbuf, sizeof errbuf))
                return;
            continue;
        case ST_DEADLETTER:
            if ((err = eng_deadletter(e, p, errbuf, sizeof errbuf)) && failed(e, q, p, err, errbuf))
                return;
            /* a refused batch is not waited for again: later ones go on (with a gap) */
            if (q != &e->orphans && (!q->has_head || p->n.batch_id > q->head.last_batch) &&
                p->n.batch_id + 1 > q->no_wait_below)
                q->no_wait_below = p->n.batch_id + 1;
            p->stage = ST_DONE;
            continue;
        case ST_DONE:
            retire(e, q, p);
            continue;
        }
    }
}

/* What the engine thread keeps of a window built on a worker: stats, counters, its stage. */
static void build_finished(struct ws_engine *e, struct query *q, struct pending *p)
{
    eng_mark(p, MK_BUILT);
    p->stage = ST_SPOOLED;
    p->attempts = 0;
    e->stats.records += p->window_records;
    e->stats.bytes += p->window_bytes;
    if (p->has_gap) {
        e->stats.gaps++;
        ws_metrics_add(e->metrics, "windowseal_gaps_total", NULL, 1);
    }
    if (p->discrepancies)
        ws_metrics_add(e->metrics, "windowseal_output_discrepancies_total", NULL, p->discrepancies);
    if (p->rows_mismatch) {
        e->stats.input_rows_mismatches++;
        ws_metrics_add(e->metrics, "windowseal_input_rows_mismatch_total", NULL, 1);
        ws_log(WS_LOG_WARN, "input_rows_mismatch",
               "query=%s batch=%lld reported=%lld records=%llu action=\"attested as Kafka holds "
               "the ranges\"",
               q->id, (long long)p->n.batch_id, (long long)p->n.reported_input_rows,
               (unsigned long long)p->window_records);
    }
}

/* Windows the build workers finished: ST_BUILDING -> ST_SPOOLED, or back to ST_QUEUED. */
static void built(struct ws_engine *e)
{
    struct pending *p;
    struct query *q;

    while ((p = eng_pool_done(e->builders, &q))) {
        assert(p->stage == ST_BUILDING && q->queue == p);
        if (p->job_err == WS_OK) {
            build_finished(e, q, p);
            continue;
        }
        p->stage = ST_QUEUED;
        failed(e, q, p, p->job_err, p->job_why);
    }
}

/* Windows the store workers finished: ST_STORING -> ST_STORED, or back to ST_SPOOLED. */
static void stored(struct ws_engine *e)
{
    struct pending *p;
    struct query *q;

    while ((p = eng_pool_done(e->pool, &q))) {
        assert(p->stage == ST_STORING && q->queue == p);
        if (p->job_err == WS_OK) {
            WS_TEST_HOOK("stored");
            p->stage = ST_STORED;
            p->attempts = 0;
            continue;
        }
        p->stage = ST_SPOOLED;
        e->stats.sink_failures++;
        failed(e, q, p, p->job_err, p->job_why);
    }
}

/* Anything past the spool and not done: what a stop waits for, and what makes polls short. */
static bool in_flight(const struct ws_engine *e)
{
    if (eng_pool_busy(e->pool) || eng_pool_busy(e->builders))
        return true;
    for (const struct query *q = e->queries; q; q = q->next)
        if (q->queue && !q->stopped && (q->queue->stage == ST_STORED || q->queue->stage == ST_HEAD))
            return true;
    return false;
}

/* ------------------------------------------------------------------------------------------ */
/* Public                                                                                       */

/* Gauges and readiness, at most once a second. */
static void refresh_gauges(struct ws_engine *e)
{
    int64_t lag = 0;
    unsigned stopped = 0;

    if (!e->metrics || ws_clock_ms() - e->last_gauges < 1000)
        return;
    e->last_gauges = ws_clock_ms();
    for (struct query *q = e->queries; q; q = q->next)
        stopped += q->stopped;
    ws_metrics_set(e->metrics, "windowseal_spool_bytes", NULL, (double)ws_spool_bytes(e->spool));
    {
        struct ws_spool_stats ss;
        ws_spool_get_stats(e->spool, &ss);
        ws_metrics_set(e->metrics, "windowseal_spool_full", NULL, ss.full);
        ws_metrics_set(e->metrics, "windowseal_spool_pauses_total", NULL, (double)ss.pauses);
    }
    ws_metrics_set(e->metrics, "windowseal_queries_stopped", NULL, stopped);
    if (ws_kafka_consumer_lag(e->consumer, &lag) == WS_OK)
        ws_metrics_set(e->metrics, "windowseal_consumer_lag", NULL, (double)lag);
    ws_metrics_set_ready(e->metrics, e->heads_loaded && stopped == 0);
}

/* A notification polled before the heads could be loaded goes back to the consumer. */
static ws_err_t give_back(struct ws_engine *e, struct ws_kafka_msg *m)
{
    char errbuf[256];
    int32_t part = m->partition;
    int64_t off = m->offset;
    ws_err_t err = ws_kafka_consumer_give_back(e->consumer, m, errbuf, sizeof errbuf);

    if (err) {
        ws_log(WS_LOG_WARN, "notification_held", "partition=%d offset=%lld reason=\"%s\"", part,
               (long long)off, errbuf);
        return err;
    }
    e->gave_back = true;
    e->stats.given_back++;
    return WS_OK;
}

/* Holding a notification nothing polls: sleep until the next heads attempt, at most timeout. */
static void wait_heads(const struct ws_engine *e, int timeout_ms)
{
    int64_t left = e->heads_retry_at - ws_clock_ms();

    if (left > timeout_ms)
        left = timeout_ms;
    if (left > 0) {
        struct timespec ts = {left / 1000, (left % 1000) * 1000000};
        nanosleep(&ts, NULL);
    }
}

ws_err_t ws_engine_step(struct ws_engine *e, int timeout_ms)
{
    struct ws_kafka_msg m;
    char errbuf[512];
    ws_err_t err = WS_OK;
    uint64_t gen;

    /*
     * The wait on the notifications is the loop's one wait: a worker's finished window and the
     * producer's delivery reports end it (ws_kafka_consumer_wake), so a window moves on the
     * moment its last step completes. Retry and gap timers are served at the timeout; while
     * windows are in flight it is short, in case a wake came between two checks.
     */
    if (in_flight(e) && timeout_ms > 10)
        timeout_ms = 10;
    if (!e->stop && !ws_spool_full(e->spool) && e->in_hand < MAX_IN_HAND) {
        if (e->has_held) { /* no poll since it was held: still this generation's */
            m = e->held;
            e->has_held = false;
            err = WS_OK;
        } else {
            err = ws_kafka_consumer_poll(e->consumer, timeout_ms, &m, errbuf, sizeof errbuf);
            gen = ws_kafka_consumer_generation(e->consumer);
            if (gen != e->generation) {
                ws_log(WS_LOG_INFO, "rebalance", "generation=%llu", (unsigned long long)gen);
                /* one per assignment change: a revoke and the assign after it may be served in
                 * one poll */
                e->stats.rebalances += gen - e->generation;
                ws_metrics_add(e->metrics, "windowseal_rebalances_total", NULL,
                               (double)(gen - e->generation));
                e->generation = gen;
                e->gave_back = false; /* the new assignment is not paused (consumer.c) */
                drop_all(e);
                e->heads_loaded = false;
                e->heads_retry_at = 0;
                e->heads_attempts = 0;
            }
        }
        if (!heads_ready(e)) {
            /*
             * Not a notification may be taken before the heads. What the poll returned goes
             * back to the consumer (paused, sought back to it), so the loop keeps polling and
             * serving the group while the heads are retried. Merely released it was lost: the
             * consumer's position was past it, and a later notification's commit then passed
             * it (I1). If it cannot go back, it is held here and no poll is made until it is
             * taken (this step then waits until the next attempt at the latest).
             */
            if (err == WS_OK && !e->has_held) {
                if (give_back(e, &m) != WS_OK) {
                    e->held = m;
                    e->has_held = true;
                }
            }
            if (e->has_held)
                wait_heads(e, timeout_ms);
            refresh_gauges(e); /* readiness follows the heads */
            return WS_OK;
        }
        if (e->gave_back) {
            ws_kafka_consumer_resume(e->consumer);
            e->gave_back = false;
        }
        if (err == WS_OK) {
            err = eng_intake(e, &m);
            ws_kafka_msg_release(&m);
            if (err)
                return err;
        } else if (err == WS_ERR_TIMEOUT) {
            err = WS_OK;
        } else if (err == WS_ERR_KAFKA_FATAL) {
            ws_log(WS_LOG_ERROR, "consumer_fatal", "reason=\"%s\"", errbuf);
            return err;
        } else {
            ws_log(WS_LOG_WARN, "consumer_error", "reason=\"%s\"", errbuf);
            err = WS_OK;
        }
    } else if (!e->stop) {
        static int64_t last_note;
        if (ws_clock_ms() - last_note > 10000) {
            last_note = ws_clock_ms();
            ws_log(WS_LOG_WARN, "intake_paused", "spool_bytes=%llu in_hand=%zu reason=\"%s\"",
                   (unsigned long long)ws_spool_bytes(e->spool), e->in_hand,
                   e->in_hand >= MAX_IN_HAND ? "too many notifications in hand" : "spool full");
        }
        struct timespec ts = {0, (in_flight(e) ? 1 : 10) * 1000000};
        nanosleep(&ts, NULL);
    }
    ws_kafka_producer_poll(e->producer, 0); /* delivery reports of heads and attestations */
    ws_lineage_emitter_poll(e->lineage);    /* ... and of lineage events (kafka_topic) */
    built(e);
    stored(e);
    advance_query(e, &e->orphans);
    for (struct query *q = e->queries; q; q = q->next)
        advance_query(e, q);
    eng_commit(e, false);
    refresh_gauges(e);
    engine_check(e);
    return err;
}

/* How long a stop waits for the windows already past the spool (they resume from it anyway). */
#define STOP_GRACE_MS 30000
/* How long the lineage queue may still be sent at exit (it is best effort, FORMAT.md §11). */
#define LINEAGE_GRACE_MS 5000

ws_err_t ws_engine_run(struct ws_engine *e)
{
    ws_err_t err = WS_OK;

    while (!err) {
        if (e->stop) {
            if (!e->stop_at)
                e->stop_at = ws_clock_ms();
            if (!in_flight(e) || ws_clock_ms() - e->stop_at > STOP_GRACE_MS)
                break;
        }
        err = ws_engine_step(e, 100);
    }
    return err;
}

void ws_engine_stop(struct ws_engine *e)
{
    e->stop = 1;
}

bool ws_engine_idle(const struct ws_engine *e)
{
    if (e->has_held || eng_pool_busy(e->pool) || eng_pool_busy(e->builders))
        return false;
    for (size_t i = 0; i < e->nparts; i++)
        if (e->parts[i].committed < eng_inflight_next(&e->parts[i]) &&
            eng_inflight_next(&e->parts[i]) > 0)
            return false; /* a commit still to send */
    if (e->orphans.queue)
        return false;
    for (const struct query *q = e->queries; q; q = q->next)
        if (q->queue)
            return false;
    return true;
}

void ws_engine_get_stats(const struct ws_engine *e, struct ws_engine_stats *st)
{
    *st = e->stats;
}

const char *ws_engine_keyid(const struct ws_engine *e)
{
    return e->key.keyid;
}

/* The producer's topics looked up before the first window needs them (kafka.h says why). */
static void prepare_topics(struct ws_engine *e)
{
    const char *topics[] = {e->cfg->attestations_topic, e->cfg->heads_topic,
                            e->cfg->deadletter_topic};
    char errbuf[256];

    for (size_t i = 0; i < sizeof topics / sizeof topics[0]; i++)
        if (ws_kafka_producer_prepare(e->producer, topics[i], 1000, errbuf, sizeof errbuf))
            ws_log(WS_LOG_WARN, "topic_prepare_failed", "topic=%s reason=\"%s\"", topics[i],
                   errbuf);
}

static enum ws_io_mode io_mode(const char *s)
{
    return !strcmp(s, "on") ? WS_IO_ON : !strcmp(s, "off") ? WS_IO_OFF : WS_IO_AUTO;
}

/* engine.hash_lanes: the SHA-256 engine of the window hashes, chosen once and logged. */
static void choose_lanes(const char *want)
{
    enum ws_sha256_lanes e = !strcmp(want, "one")      ? WS_LANES_ONE
                             : !strcmp(want, "shani")  ? WS_LANES_SHANI
                             : !strcmp(want, "avx512") ? WS_LANES_AVX512
                                                       : WS_LANES_AUTO;
    char line[512];

    (void)ws_window_lanes_force(e);
    ws_window_lanes_describe(line, sizeof line);
    ws_log(WS_LOG_INFO, "hash_lanes", "setting=%s detail=\"%s\"", want, line);
}

/* The producer's reports wait to be served: end the loop's wait on the notifications. */
static void wake(void *opaque)
{
    struct ws_engine *e = opaque;
    ws_kafka_consumer_wake(e->consumer);
}

ws_err_t ws_engine_new(const struct ws_config *cfg, struct ws_engine **out, char *errbuf,
                       size_t errlen)
{
    struct ws_engine *e = calloc(1, sizeof *e);
    struct ws_kafka_conf kc = {cfg->bootstrap, cfg->group_id, (const char *const *)cfg->kafka_props,
                               cfg->nkafka_props};
    struct ws_sink_conf kafka_sink = {.type = "kafka"};
    struct ws_sink_ctx sink_ctx = {0};
    ws_err_t err;

    if (!e)
        return WS_ERR_NOMEM;
    e->cfg = cfg;
    choose_lanes(cfg->hash_lanes);
    e->nopts.max_bytes = (size_t)cfg->notification_max_bytes;
    e->nopts.allow_unresolved_start = strcmp(cfg->initial_offsets, "earliest") == 0;
    e->nopts.check_key = true;
    if (!*cfg->signing_key) {
        err = ws_fail(WS_ERR_CONFIG, errbuf, errlen, "%s: signing.key: required", cfg->source);
        goto fail;
    }
    if ((err = ws_key_load(cfg->signing_key, true, &e->key, errbuf, errlen)))
        goto fail;
    if (!(e->read_keys = calloc(cfg->nverify_keys + 1, sizeof *e->read_keys))) {
        err = WS_ERR_NOMEM;
        goto fail;
    }
    memcpy(e->read_keys[0].pk, e->key.pk, sizeof e->key.pk);
    memcpy(e->read_keys[0].keyid, e->key.keyid, sizeof e->key.keyid);
    e->nread_keys = 1;
    for (size_t i = 0; i < cfg->nverify_keys; i++, e->nread_keys++)
        if ((err = ws_key_load(cfg->verify_keys[i], false, &e->read_keys[e->nread_keys], errbuf,
                               errlen)))
            goto fail;
    if (!(e->producer = ws_kafka_producer_new(&kc, ws_kafka_delivery_report, e, errbuf, errlen)) ||
        !(e->reader = ws_kafka_reader_new(&kc, errbuf, errlen)) ||
        !(e->consumer = ws_kafka_consumer_new(&kc, cfg->notifications_topic, errbuf, errlen))) {
        err = WS_ERR_CONFIG;
        goto fail;
    }
    if ((err = ws_spool_open(cfg->spool_path, io_mode(cfg->spool_io_uring),
                             (uint64_t)cfg->spool_max_bytes, &e->spool, errbuf, errlen)))
        goto fail;
    /* Object stores first, the topic last: an envelope on the topic means the objects exist. */
    sink_ctx.producer = e->producer;
    sink_ctx.topic = cfg->attestations_topic;
    sink_ctx.io_uring = ws_spool_uses_io_uring(e->spool); /* one decision for the process */
    assert(cfg->nsinks < MAX_SINKS); /* ws_config_load refuses more, naming the limit */
    for (size_t i = 0; i < cfg->nsinks; i++) {
        if ((err = ws_sink_create(&cfg->sinks[i], &sink_ctx, &e->sinks[e->nsinks], errbuf, errlen)))
            goto fail;
        e->nsinks++;
    }
    if ((err = ws_sink_create(&kafka_sink, &sink_ctx, &e->sinks[e->nsinks], errbuf, errlen)))
        goto fail;
    e->nsinks++;
    if ((err = eng_pool_new(e, &eng_store_work, (unsigned)cfg->max_windows_in_flight, &e->pool,
                            errbuf, errlen)) ||
        (err = eng_pool_new(e, &eng_build_work, (unsigned)cfg->build_workers, &e->builders, errbuf,
                            errlen)))
        goto fail;
    prepare_topics(e);
    ws_kafka_producer_set_wake(e->producer, wake, e);
    if ((err = ws_metrics_start(cfg->metrics_listen, &e->metrics, errbuf, errlen)))
        goto fail;
    /* counters of what real Spark sends are exported from the start, so rate() sees the first */
    ws_metrics_add(e->metrics, "windowseal_idle_triggers_total", NULL, 0);
    ws_metrics_add(e->metrics, "windowseal_input_rows_mismatch_total", NULL, 0);
    ws_metrics_add(e->metrics, "windowseal_output_discrepancies_total", NULL, 0);
    if ((err = eng_lineage_new(e, errbuf, errlen)))
        goto fail;
    e->generation = ws_kafka_consumer_generation(e->consumer);
    srand((unsigned)time(NULL) ^ (unsigned)(uintptr_t)e);
    *out = e;
    return WS_OK;
fail:
    ws_engine_destroy(e);
    return err;
}

void ws_engine_destroy(struct ws_engine *e)
{
    struct query *q, *nq;

    if (!e)
        return;
    if (e->producer)
        ws_kafka_producer_set_wake(e->producer, NULL, NULL); /* the consumer goes first */
    if (e->consumer)
        eng_commit(e, true); /* the last offsets done, synchronously */
    if (e->has_held)
        ws_kafka_msg_release(&e->held); /* never in hand, never committed: it comes again */
    drop_all(e);
    eng_pool_destroy(e->builders);
    eng_pool_destroy(e->pool);
    for (q = e->queries; q; q = nq) {
        nq = q->next;
        free(q);
    }
    for (size_t i = 0; i < e->nsinks; i++)
        ws_sink_destroy(e->sinks[i]);
    if (e->consumer)
        ws_kafka_consumer_destroy(e->consumer);
    /* lineage gets a short grace for what is queued (a backend that is down loses it, counted),
     * then produces no more; it is freed after the producer has served its last reports */
    ws_lineage_emitter_stop(e->lineage, LINEAGE_GRACE_MS);
    if (e->producer) {
        if (ws_kafka_producer_flush(e->producer, 10000))
            ws_log(WS_LOG_WARN, "producer_flush", "reason=\"undelivered messages at exit\"");
        ws_kafka_producer_destroy(e->producer);
    }
    ws_kafka_reader_destroy(e->reader);
    ws_spool_close(e->spool);
    ws_lineage_emitter_destroy(e->lineage);
    ws_metrics_stop(e->metrics);
    eng_inflight_free(e);
    ws_key_wipe(&e->key);
    for (size_t i = 0; i < e->nread_keys; i++)
        ws_key_wipe(&e->read_keys[i]);
    free(e->read_keys);
    free(e);
}
