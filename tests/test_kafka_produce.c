/*
 * test_kafka_produce.c — ws_kafka_produce_sync and ws_kafka_delivery_report on the embedded
 * broker: acknowledged, refused (a permanent error reaches the caller), and abandoned (broker
 * down past the deadline: WS_ERR_TIMEOUT, the message stays queued, is delivered once the broker
 * is back, and its late report frees the abandoned delivery — ASan in CI sees a leak or a
 * use-after-free if it does not).
 */
#include "kafka/kafka.h"

#include <stdio.h>
#include <string.h>

#include "check.h"

static char errbuf[512];

static ws_err_t count_rec(void *opaque, const struct ws_record *r)
{
    (void)r;
    (*(int *)opaque)++;
    return WS_OK;
}

int main(void)
{
    const char *props[] = {"message.timeout.ms", "20000"};
    struct ws_kafka_broker *b = ws_kafka_broker_new(NULL, 1, errbuf, sizeof errbuf);
    struct ws_kafka_conf c = {.props = props, .nprops = 1};
    struct ws_kafka_producer *p;
    struct ws_kafka_reader *r;
    struct ws_header h = {"h", 1, "x", 1};
    int64_t t0;
    ws_err_t err;
    int n = 0;

    CHECK(b != NULL);
    if (!b)
        return check_report("test_kafka_produce");
    c.bootstrap = ws_kafka_broker_bootstrap(b);
    CHECK_OK(ws_kafka_broker_create_topic(b, "p", 1, errbuf, sizeof errbuf));
    p = ws_kafka_producer_new(&c, ws_kafka_delivery_report, NULL, errbuf, sizeof errbuf);
    r = ws_kafka_reader_new(&c, errbuf, sizeof errbuf);
    CHECK(p && r);
    if (!p || !r)
        return check_report("test_kafka_produce");

    /* acknowledged */
    CHECK_OK(
        ws_kafka_produce_sync(p, "p", 0, "k", 1, "v1", 2, &h, 1, 10000, errbuf, sizeof errbuf));
    /* a permanent refusal reaches the caller with the broker's reason */
    CHECK_OK(ws_kafka_broker_push_errors(b, "Produce", 1, 10 /* MESSAGE_TOO_LARGE */));
    err = ws_kafka_produce_sync(p, "p", 0, "k", 1, "v2", 2, NULL, 0, 10000, errbuf, sizeof errbuf);
    CHECK(err == WS_ERR_TOO_LARGE && strstr(errbuf, "produce to p") != NULL);
    printf("refused: %s (%s)\n", ws_err_name(err), errbuf);

    /* abandoned: the deadline passes with the broker down */
    CHECK_OK(ws_kafka_broker_set_down(b, true));
    t0 = ws_clock_ms();
    err = ws_kafka_produce_sync(p, "p", 0, "k", 1, "v3", 2, NULL, 0, 700, errbuf, sizeof errbuf);
    CHECK(err == WS_ERR_TIMEOUT && ws_err_retriable(err));
    CHECK(ws_clock_ms() - t0 >= 690 && ws_clock_ms() - t0 < 700 + 1000);
    CHECK(strstr(errbuf, "still queued") != NULL);
    printf("abandoned after %lld ms: %s\n", (long long)(ws_clock_ms() - t0), errbuf);
    CHECK_OK(ws_kafka_broker_set_down(b, false));
    /* its late report is served (and frees the delivery) while waiting for the next one */
    CHECK_OK(
        ws_kafka_produce_sync(p, "p", 0, "k", 1, "v4", 2, NULL, 0, 20000, errbuf, sizeof errbuf));
    CHECK_OK(ws_kafka_producer_flush(p, 10000));
    CHECK_OK(ws_kafka_read_range(r, "p", 0, 0, 3, 10000, count_rec, &n, errbuf, sizeof errbuf));
    CHECK(n == 3); /* v1, v3 (delivered after all), v4; v2 was refused */

    ws_kafka_reader_destroy(r);
    ws_kafka_producer_destroy(p);
    ws_kafka_broker_destroy(b);
    return check_report("test_kafka_produce");
}
