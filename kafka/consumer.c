/*
 * kafka/consumer.c — the notifications consumer: one group member subscribed to one topic.
 *
 * DESIGN. The engine owns durability, so nothing here commits on its own: auto-commit and the
 * automatic offset store are forced off and ws_kafka_consumer_commit() commits one partition's
 * next offset once a window is in every sink (asynchronously while running, synchronously at
 * shutdown). A member without a committed offset
 * starts at the earliest notification (FORMAT.md §9).
 *
 * Rebalances run inside ws_kafka_consumer_poll() (librdkafka serves the rebalance callback on
 * the polling thread). The callback applies the assignment with the call that matches the
 * group's protocol (assign for eager strategies such as the default range,roundrobin;
 * incremental_assign for cooperative-sticky), keeps a copy of what this member owns, and bumps
 * a generation counter the engine compares before trusting per-query state it loaded earlier:
 * after partitions move, another instance may have advanced a query's chain.
 *
 * session.timeout.ms 6000 / heartbeat.interval.ms 1000 by default: after a kill -9 the group
 * coordinator gives the dead member's partitions away within about six seconds.
 *
 * Thread: all calls on one thread, except ws_kafka_consumer_generation() (atomic).
 */
#include "kafka/kafka_int.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ws_kafka_consumer {
    rd_kafka_t *rk;
    rd_kafka_queue_t *q; /* the consumer queue: ws_kafka_consumer_wake yields it */
    char *topic;
    _Atomic uint64_t generation;
    _Atomic bool woken;                     /* a wake since the last poll returned */
    rd_kafka_topic_partition_list_t *owned; /* current assignment, NULL when none */
    bool paused;                            /* ws_kafka_consumer_give_back paused owned */
};

static void apply_assignment(struct ws_kafka_consumer *c, rd_kafka_resp_err_t what,
                             rd_kafka_topic_partition_list_t *parts)
{
    bool coop = !strcmp(rd_kafka_rebalance_protocol(c->rk), "COOPERATIVE");
    bool assign = what == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS;
    rd_kafka_resp_err_t kerr = RD_KAFKA_RESP_ERR_NO_ERROR;
    rd_kafka_error_t *error = NULL;

    /* Anything but an assignment (revoke, lost, error) gives the partitions up. */
    if (coop)
        error = assign ? rd_kafka_incremental_assign(c->rk, parts)
                       : rd_kafka_incremental_unassign(c->rk, parts);
    else
        kerr = rd_kafka_assign(c->rk, assign ? parts : NULL);
    if (error) {
        fprintf(stderr, "windowseal: kafka: applying assignment: %s\n",
                rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
    } else if (kerr) {
        fprintf(stderr, "windowseal: kafka: applying assignment: %s\n", rd_kafka_err2str(kerr));
    }
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t what,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    struct ws_kafka_consumer *c = opaque;
    rd_kafka_topic_partition_list_t *now = NULL;

    apply_assignment(c, what, parts);
    if (c->owned)
        rd_kafka_topic_partition_list_destroy(c->owned);
    c->owned = NULL;
    if (rd_kafka_assignment(rk, &now) == RD_KAFKA_RESP_ERR_NO_ERROR)
        c->owned = now;
    /* a partition assigned again may keep its pause: the new assignment starts unpaused */
    if (c->paused && c->owned)
        (void)rd_kafka_resume_partitions(rk, c->owned);
    c->paused = false;
    atomic_fetch_add(&c->generation, 1);
    /* The poll serving this returns now: librdkafka would go on waiting for a message, and the
     * engine would learn of the assignment only with its first notification (or the poll's
     * timeout), then reload the chain heads and fetch that notification again. Returning here,
     * it reloads them while the consumer fetches (rd_kafka_consumer_close ignores a yield). */
    atomic_store(&c->woken, true);
    rd_kafka_yield(rk);
}

struct ws_kafka_consumer *ws_kafka_consumer_new(const struct ws_kafka_conf *conf, const char *topic,
                                                char *errbuf, size_t errlen)
{
    /* clang-format off */
    static const char *const defaults[] = {
        "auto.offset.reset", "earliest",
        "session.timeout.ms", "6000",
        "heartbeat.interval.ms", "1000",
        "enable.partition.eof", "false",
        "topic.metadata.refresh.interval.ms", "30000",
        "socket.nagle.disable", "true",
        /* The mock broker does not answer a waiting fetch when data arrives: with librdkafka's
         * 500 ms default a notification sat ~0.5 s before the engine saw it (bench_latency). */
        "fetch.wait.max.ms", "10",
        NULL,
    };
    const char *forced[] = {
        "enable.auto.commit", "false",
        "enable.auto.offset.store", "false",
        "group.id", conf ? conf->group_id : NULL,
        NULL,
    };
    /* clang-format on */
    struct ws_kafka_consumer *c;
    rd_kafka_topic_partition_list_t *sub;
    rd_kafka_resp_err_t kerr;
    rd_kafka_conf_t *kc;
    char why[512];

    if (!conf || !conf->group_id || !conf->group_id[0]) {
        ws_fail(WS_ERR_CONFIG, errbuf, errlen, "kafka consumer needs a group.id");
        return NULL;
    }
    if (!topic || !topic[0]) {
        ws_fail(WS_ERR_INVALID, errbuf, errlen, "kafka consumer needs a topic");
        return NULL;
    }
    if (ws_kafka_int_conf(conf, defaults, forced, &kc, errbuf, errlen))
        return NULL;
    if (!(c = calloc(1, sizeof(*c))) || !(c->topic = strdup(topic))) {
        ws_fail(WS_ERR_NOMEM, errbuf, errlen, "out of memory");
        goto out_free_consumer;
    }
    rd_kafka_conf_set_rebalance_cb(kc, on_rebalance);
    rd_kafka_conf_set_opaque(kc, c);
    if (!(c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, why, sizeof(why)))) {
        ws_fail(WS_ERR_CONFIG, errbuf, errlen, "kafka consumer: %s", why);
        goto out_free_consumer;
    }
    kc = NULL; /* owned by c->rk now */
    /* Serve the group's events on the consumer queue, i.e. inside consumer_poll. */
    rd_kafka_poll_set_consumer(c->rk);
    c->q = rd_kafka_queue_get_consumer(c->rk);
    if (!(sub = rd_kafka_topic_partition_list_new(1))) {
        ws_fail(WS_ERR_NOMEM, errbuf, errlen, "out of memory");
        goto out_destroy_rk;
    }
    rd_kafka_topic_partition_list_add(sub, topic, RD_KAFKA_PARTITION_UA);
    kerr = rd_kafka_subscribe(c->rk, sub);
    rd_kafka_topic_partition_list_destroy(sub);
    if (kerr) {
        ws_fail(ws_kafka_int_err(kerr), errbuf, errlen, "subscribe to %s: %s", topic,
                rd_kafka_err2str(kerr));
        goto out_destroy_rk;
    }
    return c;

out_destroy_rk:
    rd_kafka_destroy(c->rk);
out_free_consumer:
    if (c)
        free(c->topic);
    free(c);
    if (kc)
        rd_kafka_conf_destroy(kc);
    return NULL;
}

void ws_kafka_consumer_destroy(struct ws_kafka_consumer *c)
{
    if (!c)
        return;
    /* Leave the group now rather than after session.timeout.ms: the others rebalance at once. */
    if (c->q)
        rd_kafka_queue_destroy(c->q);
    rd_kafka_consumer_close(c->rk);
    rd_kafka_destroy(c->rk);
    if (c->owned)
        rd_kafka_topic_partition_list_destroy(c->owned);
    free(c->topic);
    free(c);
}

void ws_kafka_consumer_wake(struct ws_kafka_consumer *c)
{
    atomic_store(&c->woken, true);
    rd_kafka_queue_yield(c->q);
}

ws_err_t ws_kafka_consumer_poll(struct ws_kafka_consumer *c, int timeout_ms,
                                struct ws_kafka_msg *out, char *errbuf, size_t errlen)
{
    int64_t deadline = ws_clock_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
    rd_kafka_message_t *m;
    ws_err_t err;

    memset(out, 0, sizeof(*out));
    for (;;) {
        /* a wake before the call: don't block (the queue's yield flag says so too) */
        m = rd_kafka_consumer_poll(c->rk,
                                   atomic_load(&c->woken) ? 0 : ws_kafka_int_left(deadline, 1000));
        if (!m) {
            if (atomic_exchange(&c->woken, false) || ws_kafka_int_left(deadline, 1) == 0)
                return WS_ERR_TIMEOUT;
            continue;
        }
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            rd_kafka_message_destroy(m);
            continue;
        }
        if (m->err) {
            char fatal[256];

            err = ws_kafka_int_err(m->err);
            if (err == WS_ERR_KAFKA_FATAL) {
                rd_kafka_fatal_error(c->rk, fatal, sizeof(fatal));
                ws_fail(err, errbuf, errlen, "kafka consumer: fatal: %s", fatal);
            } else {
                /* librdkafka recovers from everything else (even a topic that appears later). */
                if (err != WS_ERR_PERMISSION)
                    err = WS_ERR_KAFKA;
                ws_fail(err, errbuf, errlen, "kafka consumer: %s%s%s", rd_kafka_err2name(m->err),
                        ": ", rd_kafka_message_errstr(m));
            }
            rd_kafka_message_destroy(m);
            return err;
        }
        break;
    }
    if (m->key_len > INT32_MAX || m->len > INT32_MAX) {
        ws_fail(WS_ERR_TOO_LARGE, errbuf, errlen, "notification %s[%d]@%lld too large",
                rd_kafka_topic_name(m->rkt), (int)m->partition, (long long)m->offset);
        rd_kafka_message_destroy(m);
        return WS_ERR_TOO_LARGE;
    }
    out->topic = rd_kafka_topic_name(m->rkt);
    out->partition = m->partition;
    out->offset = m->offset;
    out->timestamp = rd_kafka_message_timestamp(m, NULL);
    out->key = m->key;
    out->key_len = m->key ? (int32_t)m->key_len : -1;
    out->value = m->payload;
    out->value_len = m->payload ? (int32_t)m->len : -1;
    out->handle_ = m;
    return WS_OK;
}

void ws_kafka_msg_release(struct ws_kafka_msg *m)
{
    if (!m || !m->handle_)
        return;
    rd_kafka_message_destroy(m->handle_);
    memset(m, 0, sizeof(*m));
}

ws_err_t ws_kafka_consumer_give_back(struct ws_kafka_consumer *c, struct ws_kafka_msg *m,
                                     char *errbuf, size_t errlen)
{
    rd_kafka_topic_partition_list_t *l;
    rd_kafka_error_t *error;
    ws_err_t err = WS_OK;

    if (!m->handle_)
        return ws_fail(WS_ERR_INVALID, errbuf, errlen, "give_back: no message");
    /* pause first: nothing more is fetched, and what was fetched is dropped (version barrier) */
    if (c->owned) {
        (void)rd_kafka_pause_partitions(c->rk, c->owned);
        c->paused = true;
    }
    if (!(l = rd_kafka_topic_partition_list_new(1)))
        return ws_fail(WS_ERR_NOMEM, errbuf, errlen, "give_back: out of memory");
    rd_kafka_topic_partition_list_add(l, c->topic, m->partition)->offset = m->offset;
    if ((error = rd_kafka_seek_partitions(c->rk, l, 2000))) {
        err = ws_fail(WS_ERR_KAFKA, errbuf, errlen, "seek %s[%d] to %lld: %s", c->topic,
                      (int)m->partition, (long long)m->offset, rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
    } else if (l->elems[0].err) {
        err = ws_fail(ws_kafka_int_err(l->elems[0].err), errbuf, errlen, "seek %s[%d] to %lld: %s",
                      c->topic, (int)m->partition, (long long)m->offset,
                      rd_kafka_err2str(l->elems[0].err));
    }
    rd_kafka_topic_partition_list_destroy(l);
    if (!err)
        ws_kafka_msg_release(m); /* else the caller keeps it: the position is past it */
    return err;
}

void ws_kafka_consumer_resume(struct ws_kafka_consumer *c)
{
    if (c->paused && c->owned)
        (void)rd_kafka_resume_partitions(c->rk, c->owned);
    c->paused = false;
}

uint64_t ws_kafka_consumer_generation(const struct ws_kafka_consumer *c)
{
    return atomic_load(&((struct ws_kafka_consumer *)c)->generation);
}

bool ws_kafka_consumer_owns(const struct ws_kafka_consumer *c, int32_t partition)
{
    int i;

    if (!c->owned)
        return false;
    for (i = 0; i < c->owned->cnt; i++) {
        const rd_kafka_topic_partition_t *tp = &c->owned->elems[i];

        if (tp->partition == partition && !strcmp(tp->topic, c->topic))
            return true;
    }
    return false;
}

ws_err_t ws_kafka_consumer_commit(struct ws_kafka_consumer *c, int32_t partition,
                                  int64_t next_offset, bool sync, char *errbuf, size_t errlen)
{
    rd_kafka_topic_partition_list_t *tpl;
    rd_kafka_resp_err_t kerr;
    ws_err_t err;

    if (partition < 0 || next_offset < 0)
        return ws_fail(WS_ERR_INVALID, errbuf, errlen, "invalid commit %s[%d]@%lld", c->topic,
                       (int)partition, (long long)next_offset);
    if (!(tpl = rd_kafka_topic_partition_list_new(1)))
        return ws_fail(WS_ERR_NOMEM, errbuf, errlen, "out of memory");
    rd_kafka_topic_partition_list_add(tpl, c->topic, partition)->offset = next_offset;
    kerr = rd_kafka_commit(c->rk, tpl, !sync);
    if (!kerr && sync)
        kerr = tpl->elems[0].err;
    rd_kafka_topic_partition_list_destroy(tpl);
    if (!kerr)
        return WS_OK;
    /* Refused because the group moved on: retriable in the sense that the engine must reload
     * and decide (see the generation); only a dead client is fatal. */
    err = ws_kafka_int_err(kerr);
    if (err != WS_ERR_KAFKA_FATAL && err != WS_ERR_TIMEOUT)
        err = WS_ERR_KAFKA;
    return ws_fail(err, errbuf, errlen, "commit %s[%d]@%lld: %s", c->topic, (int)partition,
                   (long long)next_offset, rd_kafka_err2str(kerr));
}

ws_err_t ws_kafka_consumer_lag(struct ws_kafka_consumer *c, int64_t *lag)
{
    rd_kafka_topic_partition_list_t *tpl = NULL;
    int64_t sum = 0, lo, hi;
    int i;

    *lag = 0;
    if (rd_kafka_assignment(c->rk, &tpl))
        return WS_ERR_KAFKA;
    if (tpl->cnt && rd_kafka_position(c->rk, tpl)) {
        rd_kafka_topic_partition_list_destroy(tpl);
        return WS_ERR_KAFKA;
    }
    for (i = 0; i < tpl->cnt; i++) {
        const rd_kafka_topic_partition_t *tp = &tpl->elems[i];

        if (tp->offset < 0 ||
            rd_kafka_get_watermark_offsets(c->rk, tp->topic, tp->partition, &lo, &hi) ||
            hi < tp->offset)
            continue; /* nothing fetched yet: unknown, counted as 0 */
        sum += hi - tp->offset;
    }
    rd_kafka_topic_partition_list_destroy(tpl);
    *lag = sum;
    return WS_OK;
}
