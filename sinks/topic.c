/*
 * kafka.c — the attestations-topic sink (SPEC 9): key = query id, value = envelope, headers
 * windowseal.window-id and windowseal.batch-id.
 *
 * It shares the engine's idempotent producer and waits for this one message's delivery report
 * (polling the producer), not for a flush of everything in flight. Without Kafka transactions a
 * crash between delivery and the offset commit leaves a byte-identical duplicate on the topic
 * (SPEC 8 allows it: (key, window-id) stays unique in content).
 */
#include "sinks/sink.h"
#include "kafka/kafka.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct kafka_sink {
    struct ws_sink base;
    struct ws_kafka_producer *producer;
    char *topic;
};

void ws_delivery_report(void *app_opaque, void *cookie, ws_err_t err, const char *reason)
{
    struct ws_delivery *d = cookie;

    if (!d)
        return;
    d->err = err;
    snprintf(d->reason, sizeof d->reason, "%s", reason ? reason : "");
    d->done = true;
}

static ws_err_t kafka_create(const struct ws_sink_conf *conf, struct ws_kafka_producer *producer,
                             const char *topic, struct ws_sink **out, char *errbuf, size_t errlen)
{
    struct kafka_sink *k;

    if (!producer || !topic)
        return ws_fail(WS_ERR_INVALID, errbuf, errlen, "kafka sink needs a producer and topic");
    if (!(k = calloc(1, sizeof *k)) || !(k->topic = strdup(topic))) {
        free(k);
        return WS_ERR_NOMEM;
    }
    k->producer = producer;
    k->base.ops = &ws_sink_kafka_ops;
    snprintf(k->base.label, sizeof k->base.label, "kafka:%s", topic);
    *out = &k->base;
    return WS_OK;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static ws_err_t kafka_publish(struct ws_sink *s, const struct ws_artifact *a, char *errbuf,
                              size_t errlen)
{
    struct kafka_sink *k = (struct kafka_sink *)s;
    struct ws_delivery d = {0};
    char batch[24];
    struct ws_header h[2] = {
        {"windowseal.window-id", 20, a->window_id, (int32_t)strlen(a->window_id)},
        {"windowseal.batch-id", 19, batch, 0},
    };
    int64_t deadline;
    ws_err_t err;

    h[1].value_len = snprintf(batch, sizeof batch, "%lld", (long long)a->batch_id);
    err = ws_kafka_produce(k->producer, k->topic, -1, a->query_id, strlen(a->query_id), a->envelope,
                           a->envelope_len, h, 2, &d, errbuf, errlen);
    if (err)
        return ws_err_retriable(err) ? WS_ERR_SINK_RETRY : WS_ERR_SINK_PERMANENT;
    /* The report fires exactly once; wait for it well past message.timeout.ms. */
    deadline = now_ms() + 120000;
    while (!d.done && now_ms() < deadline)
        ws_kafka_producer_poll(k->producer, 10);
    if (!d.done) { /* cannot return while the report may still write into d */
        while (!d.done)
            ws_kafka_producer_poll(k->producer, 100);
    }
    if (d.err)
        return ws_fail(ws_err_retriable(d.err) ? WS_ERR_SINK_RETRY : WS_ERR_SINK_PERMANENT, errbuf,
                       errlen, "%s: %s", k->base.label, d.reason);
    return WS_OK;
}

static void kafka_destroy(struct ws_sink *s)
{
    struct kafka_sink *k = (struct kafka_sink *)s;

    free(k->topic);
    free(k);
}

const struct ws_sink_ops ws_sink_kafka_ops = {
    .name = "kafka",
    .create = kafka_create,
    .publish = kafka_publish,
    .put = NULL,
    .get = NULL,
    .destroy = kafka_destroy,
};
