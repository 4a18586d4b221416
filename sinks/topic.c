/*
 * topic.c — the attestations-topic sink (FORMAT.md §7), sink type "kafka": key = query id, value =
 * envelope, headers windowseal.window-id and windowseal.batch-id. (Named topic.c so it is not
 * mistaken for the kafka/ module, whose producer it uses.) It has no options: the engine creates
 * it itself, last, from the context's producer and topic.
 *
 * It shares the engine's idempotent producer and waits for this one message's delivery report
 * (polling the producer), not for a flush of everything in flight. Without Kafka transactions a
 * crash between delivery and the offset commit leaves a byte-identical duplicate on the topic
 * (FORMAT.md §9 allows it: (key, window-id) stays unique in content).
 *
 * The wait is bounded (ctx->delivery_wait_ms, 120 s by default, well past the producer's
 * message.timeout.ms): past it, publish answers WS_ERR_TIMEOUT (retriable) and leaves the
 * message queued in the producer rather than purging it (a purge would hit every message of the
 * shared producer); ws_kafka_produce_sync leaves the late report somewhere to land. The engine
 * then produces the window again: I1 holds (nothing is committed before a report
 * says delivered), and a late delivery of the first copy is a byte-identical duplicate.
 */
#include "sinks/sink_int.h"
#include "kafka/kafka.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_WAIT_MS 120000

struct kafka_sink {
    struct ws_sink base;
    struct ws_kafka_producer *producer;
    char *topic;
    int64_t wait_ms;
};

static ws_err_t kafka_create(const void *opts, const struct ws_sink_ctx *ctx, struct ws_sink **out,
                             char *errbuf, size_t errlen)
{
    struct kafka_sink *k;

    if (!ctx || !ctx->producer || !ctx->topic)
        return ws_fail(WS_ERR_INVALID, errbuf, errlen, "kafka sink needs a producer and topic");
    if (!(k = calloc(1, sizeof *k)) || !(k->topic = strdup(ctx->topic))) {
        free(k);
        return ws_fail(WS_ERR_NOMEM, errbuf, errlen, "kafka sink: out of memory");
    }
    k->producer = ctx->producer;
    k->wait_ms = ctx->delivery_wait_ms > 0 ? ctx->delivery_wait_ms : DEFAULT_WAIT_MS;
    k->base.ops = &ws_sink_kafka_ops;
    snprintf(k->base.label, sizeof k->base.label, "kafka:%s", ctx->topic);
    *out = &k->base;
    return WS_OK;
}

/* The message: key = query id, value = envelope, headers window-id and batch-id. */
struct message {
    char batch[24];
    struct ws_header h[2];
};

static void message_headers(const struct ws_artifact *a, struct message *m)
{
    m->h[0] =
        (struct ws_header){"windowseal.window-id", 20, a->window_id, (int32_t)strlen(a->window_id)};
    m->h[1] = (struct ws_header){"windowseal.batch-id", 19, m->batch, 0};
    m->h[1].value_len = snprintf(m->batch, sizeof m->batch, "%lld", (long long)a->batch_id);
}

static ws_err_t kafka_publish(struct ws_sink *s, const struct ws_artifact *a, char *errbuf,
                              size_t errlen)
{
    struct kafka_sink *k = (struct kafka_sink *)s;
    struct message m;
    char why[384];
    ws_err_t err;

    message_headers(a, &m);
    err = ws_kafka_produce_sync(k->producer, k->topic, -1, a->query_id, strlen(a->query_id),
                                a->envelope, a->envelope_len, m.h, 2, (int)k->wait_ms, why,
                                sizeof why);
    if (err == WS_ERR_TIMEOUT)
        return ws_fail(err, errbuf, errlen,
                       "%s: no delivery report within %lld ms; the message stays queued in the "
                       "producer and the window will be produced again",
                       k->base.label, (long long)k->wait_ms);
    if (err)
        return ws_fail(err, errbuf, errlen, "%s: %s", k->base.label, why);
    return WS_OK;
}

/* Enqueued now; the delivery report says how it went (the engine waits for it, not here). */
static ws_err_t kafka_submit(struct ws_sink *s, const struct ws_artifact *a,
                             struct ws_kafka_delivery *d, char *errbuf, size_t errlen)
{
    struct kafka_sink *k = (struct kafka_sink *)s;
    struct message m;
    ws_err_t err;

    message_headers(a, &m);
    err = ws_kafka_produce(k->producer, k->topic, -1, a->query_id, strlen(a->query_id), a->envelope,
                           a->envelope_len, m.h, 2, d, errbuf, errlen);
    return err;
}

static void kafka_destroy(struct ws_sink *s)
{
    struct kafka_sink *k = (struct kafka_sink *)s;

    free(k->topic);
    free(k);
}

const struct ws_sink_ops ws_sink_kafka_ops = {
    .type = {.name = "kafka", .options = NULL, .nopts = 0, .size = 0},
    .create = kafka_create,
    .publish = kafka_publish,
    .submit = kafka_submit,
    .put = NULL,
    .get = NULL,
    .destroy = kafka_destroy,
};
