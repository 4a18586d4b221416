/*
 * test_sinks_topic.c — the attestations-topic sink ("kafka") against the embedded broker:
 * made from the engine's context (producer, topic), it publishes and waits for that message's
 * delivery report; with the broker down, its wait ends at the context's delivery_wait_ms with
 * WS_ERR_TIMEOUT (retriable) instead of waiting forever, leaving the message queued; once the
 * broker is back, the abandoned report is served (and frees its state), the queued copy is
 * delivered, and the next publish of the same window succeeds (a byte-identical duplicate on
 * the topic, which FORMAT.md §9 allows).
 */
#include "sinks/sink.h"
#include "kafka/kafka.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"

static char errbuf[512];

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static ws_err_t publish(struct ws_sink *s)
{
    static const char env[] = "{\"payloadType\":\"application/vnd.in-toto+json\"}";
    struct ws_artifact a = {.query_id = "q-topic",
                            .batch_id = 7,
                            .window_id = "q-topic/7",
                            .envelope = env,
                            .envelope_len = sizeof env - 1,
                            .evidence_path = "/unused"};

    return ws_sink_publish(s, &a, errbuf, sizeof errbuf);
}

int main(void)
{
    static const char *const props[] = {"message.timeout.ms", "600000"};
    struct ws_kafka_broker *b = ws_kafka_broker_new(NULL, 1, errbuf, sizeof errbuf);
    struct ws_kafka_conf kc = {NULL, "g", props, 1};
    struct ws_sink_conf conf = {.type = "kafka"};
    struct ws_sink_ctx ctx = {0};
    struct ws_kafka_producer *p;
    struct ws_sink *s = NULL;
    int64_t t0, took;
    ws_err_t err;

    if (!b) {
        fprintf(stderr, "embedded broker: %s\n", errbuf);
        return 77;
    }
    kc.bootstrap = ws_kafka_broker_bootstrap(b);
    CHECK_OK(ws_kafka_broker_create_topic(b, "att", 1, errbuf, sizeof errbuf));
    /* message.timeout.ms far beyond the sink's wait: only the sink's deadline can end it */
    p = ws_kafka_producer_new(&kc, ws_kafka_delivery_report, NULL, errbuf, sizeof errbuf);
    CHECK(p != NULL);
    if (!p)
        goto out_broker;

    /* a producer and a topic are what it needs */
    CHECK(ws_sink_create(&conf, &ctx, &s, errbuf, sizeof errbuf) == WS_ERR_INVALID);
    ctx.producer = p;
    ctx.topic = "att";
    ctx.delivery_wait_ms = 800;
    CHECK_OK(ws_sink_create(&conf, &ctx, &s, errbuf, sizeof errbuf));
    if (!s)
        goto out_producer;
    CHECK(!strcmp(ws_sink_label(s), "kafka:att") && !ws_sink_can_get(s) && !ws_sink_can_put(s));
    CHECK(ws_sink_put(s, "q-topic/checkpoint", "x", 1, errbuf, sizeof errbuf) == WS_OK);
    CHECK(ws_sink_get(s, "q-topic/x", NULL, NULL, errbuf, sizeof errbuf) == WS_ERR_UNSUPPORTED);

    /* broker up: delivered (the first produce also sets up the idempotent producer) */
    for (int i = 0; i < 20 && (err = publish(s)) == WS_ERR_TIMEOUT; i++)
        ;
    CHECK_OK(err);

    /* broker down: the wait ends at the deadline, retriable; nothing is purged */
    CHECK_OK(ws_kafka_broker_set_down(b, true));
    t0 = now_ms();
    err = publish(s);
    took = now_ms() - t0;
    printf("broker down: publish -> %s after %lld ms: %s\n", ws_err_name(err), (long long)took,
           errbuf);
    CHECK(err == WS_ERR_TIMEOUT && ws_err_retriable(err));
    CHECK(took >= 790 && took < 800 + 2000);
    CHECK(strstr(errbuf, "kafka:att") && strstr(errbuf, "no delivery report within 800 ms"));

    /* broker back: the queued copy goes out (its abandoned report is served and freed), and the
     * engine's retry of the window succeeds */
    CHECK_OK(ws_kafka_broker_set_down(b, false));
    CHECK_OK(ws_kafka_producer_flush(p, 30000));
    ctx.delivery_wait_ms = 0; /* the default wait: 120 s */
    ws_sink_destroy(s);
    s = NULL;
    CHECK_OK(ws_sink_create(&conf, &ctx, &s, errbuf, sizeof errbuf));
    if (s)
        CHECK_OK(publish(s));
    ws_sink_destroy(s);
out_producer:
    ws_kafka_producer_destroy(p);
out_broker:
    ws_kafka_broker_destroy(b);
    return check_report("test_sinks_topic");
}
