/*
 * kafka/producer.c — an idempotent producer with one delivery-report callback.
 *
 * DESIGN. ws_kafka_produce() only enqueues (payload copied), so the engine's thread never waits
 * on the network; the outcome of each message arrives once, through the dr callback, on the
 * thread that calls ws_kafka_producer_poll()/flush()/destroy(). Idempotence is forced: librdkafka
 * then retries transient failures itself without duplicating or reordering, and what reaches
 * the callback as an error is either "gave up in time" (retriable by the engine: it produces
 * again) or permanent (too large, no such topic, not allowed, fatal client state).
 *
 * Null vs empty: a NULL key/value/header value is a Kafka null; a non-NULL pointer with length 0
 * is an empty byte string. librdkafka tells them apart by the pointer, so an empty one is given
 * a non-NULL pointer here.
 */
#include "kafka/kafka_int.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ws_kafka_producer {
    rd_kafka_t *rk;
    ws_kafka_dr_fn dr;
    void *app_opaque;
    rd_kafka_queue_t *main_q; /* set_wake: the queue whose first event calls wake */
    void (*wake)(void *);
    void *wake_opaque;
};

static void on_main_event(rd_kafka_t *rk, void *opaque)
{
    struct ws_kafka_producer *p = opaque;
    (void)rk;
    p->wake(p->wake_opaque);
}

void ws_kafka_producer_set_wake(struct ws_kafka_producer *p, void (*fn)(void *), void *opaque)
{
    if (!p->main_q)
        p->main_q = rd_kafka_queue_get_main(p->rk);
    if (!fn) {
        rd_kafka_queue_cb_event_enable(p->main_q, NULL, NULL);
        return;
    }
    p->wake = fn;
    p->wake_opaque = opaque;
    rd_kafka_queue_cb_event_enable(p->main_q, on_main_event, p);
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    struct ws_kafka_producer *p = opaque;
    char fatal[256];
    ws_err_t err;

    if (!p->dr)
        return;
    err = ws_kafka_int_err(m->err);
    if (err == WS_ERR_KAFKA_FATAL) {
        rd_kafka_fatal_error(rk, fatal, sizeof(fatal));
        p->dr(p->app_opaque, m->_private, err, fatal);
        return;
    }
    p->dr(p->app_opaque, m->_private, err, m->err ? rd_kafka_err2str(m->err) : "");
}

struct ws_kafka_producer *ws_kafka_producer_new(const struct ws_kafka_conf *conf, ws_kafka_dr_fn dr,
                                                void *app_opaque, char *errbuf, size_t errlen)
{
    /* clang-format off */
    static const char *const defaults[] = {
        /* The engine waits on each attestation and chain head before committing: batching
         * them costs latency for nothing (5 ms measured 2 x 5 ms per window). */
        "linger.ms", "0",
        "partitioner", "murmur2_random",
        "message.timeout.ms", "30000",
        "socket.nagle.disable", "true",
        NULL,
    };
    static const char *const forced[] = {
        "enable.idempotence", "true",
        NULL,
    };
    /* clang-format on */
    struct ws_kafka_producer *p;
    rd_kafka_conf_t *kc;
    char why[512];

    if (ws_kafka_int_conf(conf, defaults, forced, &kc, errbuf, errlen))
        return NULL;
    if (!(p = calloc(1, sizeof(*p)))) {
        ws_fail(WS_ERR_NOMEM, errbuf, errlen, "out of memory");
        goto out_destroy_conf;
    }
    p->dr = dr;
    p->app_opaque = app_opaque;
    rd_kafka_conf_set_dr_msg_cb(kc, on_delivery);
    rd_kafka_conf_set_opaque(kc, p);
    if (!(p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, why, sizeof(why)))) {
        ws_fail(WS_ERR_CONFIG, errbuf, errlen, "kafka producer: %s", why);
        goto out_free_producer;
    }
    return p;

out_free_producer:
    free(p);
out_destroy_conf:
    rd_kafka_conf_destroy(kc);
    return NULL;
}

void ws_kafka_producer_destroy(struct ws_kafka_producer *p)
{
    if (!p)
        return;
    if (p->main_q) {
        rd_kafka_queue_cb_event_enable(p->main_q, NULL, NULL);
        rd_kafka_queue_destroy(p->main_q);
    }
    rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    /* Serve the purged messages' reports (WS_ERR_STOPPED) before the handle goes away. */
    rd_kafka_flush(p->rk, 1000);
    rd_kafka_destroy(p->rk);
    free(p);
}

ws_err_t ws_kafka_produce(struct ws_kafka_producer *p, const char *topic, int32_t partition,
                          const void *key, size_t keylen, const void *value, size_t vlen,
                          const struct ws_header *headers, size_t nheaders, void *cookie,
                          char *errbuf, size_t errlen)
{
    rd_kafka_headers_t *hs = NULL;
    rd_kafka_resp_err_t kerr;
    ws_err_t err;
    size_t i;

    if (!p || !topic || !topic[0] || partition < RD_KAFKA_PARTITION_UA || (nheaders && !headers))
        return ws_fail(WS_ERR_INVALID, errbuf, errlen, "invalid produce request");
    if (nheaders) {
        if (!(hs = rd_kafka_headers_new(nheaders)))
            return ws_fail(WS_ERR_NOMEM, errbuf, errlen, "out of memory");
        for (i = 0; i < nheaders; i++) {
            const struct ws_header *h = &headers[i];
            const void *hv = h->value_len < 0 ? NULL : h->value ? h->value : "";

            if (!h->name) {
                rd_kafka_headers_destroy(hs);
                return ws_fail(WS_ERR_INVALID, errbuf, errlen, "header %zu has no name", i);
            }
            rd_kafka_header_add(hs, h->name, h->name_len, hv,
                                h->value_len < 0 ? 0 : (size_t)h->value_len);
        }
    }
    kerr = rd_kafka_producev(
        p->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
        RD_KAFKA_V_KEY(key ? (keylen ? key : "") : NULL, key ? keylen : 0),
        RD_KAFKA_V_VALUE(value ? (vlen ? (void *)value : (void *)"") : NULL, value ? vlen : 0),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(hs), RD_KAFKA_V_OPAQUE(cookie),
        RD_KAFKA_V_END);
    if (kerr == RD_KAFKA_RESP_ERR_NO_ERROR)
        return WS_OK; /* hs now belongs to the message */
    if (hs)
        rd_kafka_headers_destroy(hs);
    err = ws_kafka_int_err(kerr);
    if (err == WS_ERR_KAFKA_FATAL) {
        char fatal[256];

        rd_kafka_fatal_error(p->rk, fatal, sizeof(fatal));
        return ws_fail(err, errbuf, errlen, "produce to %s: fatal: %s", topic, fatal);
    }
    return ws_fail(err, errbuf, errlen, "produce to %s[%d]: %s", topic, (int)partition,
                   rd_kafka_err2str(kerr));
}

void ws_kafka_delivery_report(void *app_opaque, void *cookie, ws_err_t err, const char *reason)
{
    struct ws_kafka_delivery *d = cookie;

    (void)app_opaque;
    if (!d)
        return;
    if (d->abandoned) {
        free(d);
        return;
    }
    d->err = err;
    snprintf(d->reason, sizeof d->reason, "%s", reason ? reason : "");
    d->done = true;
}

ws_err_t ws_kafka_produce_sync(struct ws_kafka_producer *p, const char *topic, int32_t partition,
                               const void *key, size_t keylen, const void *value, size_t vlen,
                               const struct ws_header *headers, size_t nheaders, int timeout_ms,
                               char *errbuf, size_t errlen)
{
    /* on the heap: if we stop waiting, the report still has somewhere to land */
    struct ws_kafka_delivery *d = calloc(1, sizeof *d);
    int64_t deadline = ws_clock_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
    ws_err_t err;

    assert(p && p->dr == ws_kafka_delivery_report);
    if (!d)
        return ws_fail(WS_ERR_NOMEM, errbuf, errlen, "out of memory");
    err = ws_kafka_produce(p, topic, partition, key, keylen, value, vlen, headers, nheaders, d,
                           errbuf, errlen);
    if (err) {
        free(d);
        return err;
    }
    while (!d->done && ws_clock_ms() < deadline)
        rd_kafka_poll(p->rk, ws_kafka_int_left(deadline, 100));
    if (!d->done) {
        d->abandoned = true;
        return ws_fail(WS_ERR_TIMEOUT, errbuf, errlen,
                       "produce to %s: not acknowledged within %d ms (still queued)", topic,
                       timeout_ms);
    }
    err = d->err;
    if (err)
        ws_fail(err, errbuf, errlen, "produce to %s: %s", topic, d->reason);
    free(d);
    return err;
}

ws_err_t ws_kafka_producer_prepare(struct ws_kafka_producer *p, const char *topic, int timeout_ms,
                                   char *errbuf, size_t errlen)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(p->rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t kerr;

    if (!rkt)
        return ws_fail(WS_ERR_NOMEM, errbuf, errlen, "topic %s: %s", topic,
                       rd_kafka_err2str(rd_kafka_last_error()));
    kerr = rd_kafka_metadata(p->rk, 0, rkt, &md, timeout_ms < 0 ? 0 : timeout_ms);
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    if (kerr)
        return ws_fail(ws_kafka_int_err(kerr), errbuf, errlen, "metadata for %s: %s", topic,
                       rd_kafka_err2str(kerr));
    return WS_OK;
}

int ws_kafka_producer_poll(struct ws_kafka_producer *p, int timeout_ms)
{
    return rd_kafka_poll(p->rk, timeout_ms < 0 ? 0 : timeout_ms);
}

ws_err_t ws_kafka_producer_flush(struct ws_kafka_producer *p, int timeout_ms)
{
    rd_kafka_resp_err_t kerr = rd_kafka_flush(p->rk, timeout_ms < 0 ? 0 : timeout_ms);

    if (kerr == RD_KAFKA_RESP_ERR_NO_ERROR)
        return WS_OK;
    return kerr == RD_KAFKA_RESP_ERR__TIMED_OUT ? WS_ERR_TIMEOUT : ws_kafka_int_err(kerr);
}
