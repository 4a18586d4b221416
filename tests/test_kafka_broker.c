/*
 * test_kafka_broker.c — the embedded broker: listen addresses (checked, a busy port), and fault
 * injection seen through the clients: broker down (reads time out, then recover), injected
 * request errors (retried by librdkafka), delivery errors classified retriable/permanent, and
 * undelivered messages purged by destroy. The `windowseal broker` command on top of it is
 * tests/test_cli_broker.c.
 */
#include "kafka/kafka.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

static char errbuf[512];

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

struct dr_log {
    int n;
    ws_err_t last;
    char reason[256];
};

static void on_dr(void *app, void *cookie, ws_err_t err, const char *reason)
{
    struct dr_log *d = app;

    d->n++;
    d->last = err;
    snprintf(d->reason, sizeof(d->reason), "%s", reason);
}

static ws_err_t count_rec(void *opaque, const struct ws_record *r)
{
    (*(int *)opaque)++;
    return WS_OK;
}

/* ------------------------------------------------------------------------------------------ */

static void test_listen_errors(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    struct ws_kafka_broker *b;
    char addr[64];
    int s = socket(AF_INET, SOCK_STREAM, 0);

    /* What ws_kafka_broker_new accepts, checked without starting a broker. */
    CHECK_OK(ws_kafka_broker_check_listen("127.0.0.1:0", errbuf, sizeof(errbuf)));
    CHECK_OK(ws_kafka_broker_check_listen("localhost:9092", errbuf, sizeof(errbuf)));
    CHECK(ws_kafka_broker_check_listen("nocolon", errbuf, sizeof(errbuf)) == WS_ERR_INVALID);
    CHECK(ws_kafka_broker_check_listen("[::1]:9092", errbuf, sizeof(errbuf)) == WS_ERR_INVALID);
    CHECK(ws_kafka_broker_check_listen("127.0.0.1:65536", errbuf, sizeof(errbuf)) ==
          WS_ERR_INVALID);
    CHECK(ws_kafka_broker_check_listen(NULL, errbuf, sizeof(errbuf)) == WS_ERR_INVALID);

    /* A port already taken is a clean error (2.0.2's mock would abort the process). */
    CHECK(s >= 0 && bind(s, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(s, 1) == 0 &&
          getsockname(s, (struct sockaddr *)&a, &len) == 0);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", ntohs(a.sin_port));
    errbuf[0] = '\0';
    b = ws_kafka_broker_new(addr, 1, errbuf, sizeof(errbuf));
    CHECK(b == NULL);
    CHECK(strstr(errbuf, "in use") != NULL);
    printf("busy port: %s\n", errbuf);
    close(s);
    CHECK(ws_kafka_broker_new("example.com:9092", 1, errbuf, sizeof(errbuf)) == NULL);
    CHECK(ws_kafka_broker_new("127.0.0.1:65536", 1, errbuf, sizeof(errbuf)) == NULL);
    CHECK(ws_kafka_broker_new(NULL, -1, errbuf, sizeof(errbuf)) == NULL);

    /* localhost:0 = loopback, any port; the advertised address is the bound one. */
    b = ws_kafka_broker_new("localhost:0", 1, errbuf, sizeof(errbuf));
    CHECK(b != NULL);
    if (b) {
        CHECK(strncmp(ws_kafka_broker_bootstrap(b), "127.0.0.1:", 10) == 0);
        ws_kafka_broker_destroy(b);
    }
}

static void test_faults(void)
{
    const char *short_timeout[] = {"message.timeout.ms", "1000"};
    struct ws_kafka_broker *b = ws_kafka_broker_new(NULL, 1, errbuf, sizeof(errbuf));
    struct ws_kafka_conf c = {0};
    struct ws_kafka_reader *r;
    struct ws_kafka_producer *p, *p2;
    struct dr_log d = {0}, d2 = {0};
    double t0, dt;
    ws_err_t err;
    int n;

    CHECK(b != NULL);
    if (!b)
        return;
    c.bootstrap = ws_kafka_broker_bootstrap(b);
    CHECK_OK(ws_kafka_broker_create_topic(b, "f", 1, errbuf, sizeof(errbuf)));
    r = ws_kafka_reader_new(&c, errbuf, sizeof(errbuf));
    p = ws_kafka_producer_new(&c, on_dr, &d, errbuf, sizeof(errbuf));
    CHECK(r && p);
    if (!r || !p)
        return;
    CHECK_OK(ws_kafka_produce(p, "f", 0, "k", 1, "v", 1, NULL, 0, NULL, errbuf, sizeof(errbuf)));
    CHECK_OK(ws_kafka_producer_flush(p, 5000));
    CHECK(d.n == 1 && d.last == WS_OK);

    CHECK(ws_kafka_broker_push_errors(b, "Bogus", 1, 7) == WS_ERR_INVALID);
    CHECK(ws_kafka_broker_push_errors(b, "Produce", 0, 7) == WS_ERR_INVALID);

    /* Transient request errors are retried inside librdkafka: the caller sees success. */
    CHECK_OK(ws_kafka_broker_push_errors(b, "Produce", 2, 7 /* REQUEST_TIMED_OUT */));
    CHECK_OK(ws_kafka_produce(p, "f", 0, "k", 1, "v2", 2, NULL, 0, NULL, errbuf, sizeof(errbuf)));
    CHECK_OK(ws_kafka_producer_flush(p, 10000));
    CHECK(d.n == 2 && d.last == WS_OK);
    CHECK_OK(ws_kafka_broker_push_errors(b, "Fetch", 2, 6 /* NOT_LEADER_FOR_PARTITION */));
    n = 0;
    CHECK_OK(ws_kafka_read_range(r, "f", 0, 0, 2, 10000, count_rec, &n, errbuf, sizeof(errbuf)));
    CHECK(n == 2);

    /* A permanent produce error reaches the delivery report as permanent. */
    CHECK_OK(ws_kafka_broker_push_errors(b, "Produce", 1, 10 /* MESSAGE_TOO_LARGE */));
    CHECK_OK(ws_kafka_produce(p, "f", 0, "k", 1, "v3", 2, NULL, 0, NULL, errbuf, sizeof(errbuf)));
    CHECK_OK(ws_kafka_producer_flush(p, 10000));
    CHECK(d.n == 3 && d.last == WS_ERR_TOO_LARGE && !ws_err_retriable(d.last));
    printf("injected MESSAGE_TOO_LARGE: delivery report %s (%s)\n", ws_err_name(d.last), d.reason);

    /* Broker down: a read waits for its timeout and says so (retriable)... */
    CHECK_OK(ws_kafka_broker_set_down(b, true));
    t0 = now_ms();
    n = 0;
    err = ws_kafka_read_range(r, "f", 0, 0, 2, 500, count_rec, &n, errbuf, sizeof(errbuf));
    dt = now_ms() - t0;
    CHECK(err == WS_ERR_TIMEOUT && ws_err_retriable(err));
    CHECK(dt >= 490 && dt < 500 + 1000);
    CHECK(n == 0);
    printf("broker down: read -> %s after %.0f ms: %s\n", ws_err_name(err), dt, errbuf);

    /* ... a message that cannot be delivered in message.timeout.ms is a retriable failure ... */
    c.props = short_timeout;
    c.nprops = 1;
    p2 = ws_kafka_producer_new(&c, on_dr, &d2, errbuf, sizeof(errbuf));
    CHECK(p2 != NULL);
    if (p2) {
        CHECK_OK(
            ws_kafka_produce(p2, "f", 0, NULL, 0, "x", 1, NULL, 0, NULL, errbuf, sizeof(errbuf)));
        err = ws_kafka_producer_flush(p2, 5000);
        CHECK(err == WS_OK);
        CHECK(d2.n == 1 && d2.last == WS_ERR_TIMEOUT && ws_err_retriable(d2.last));
        printf("broker down: delivery report %s (%s)\n", ws_err_name(d2.last), d2.reason);
        /* ... and destroy purges what is still queued: reported once, as stopped. */
        CHECK_OK(
            ws_kafka_produce(p2, "f", 0, NULL, 0, "y", 1, NULL, 0, NULL, errbuf, sizeof(errbuf)));
        ws_kafka_producer_destroy(p2);
        CHECK(d2.n == 2 && d2.last == WS_ERR_STOPPED);
    }

    /* ... and once it is back, the same reader recovers. */
    CHECK_OK(ws_kafka_broker_set_down(b, false));
    t0 = now_ms();
    n = 0;
    CHECK_OK(ws_kafka_read_range(r, "f", 0, 0, 2, 15000, count_rec, &n, errbuf, sizeof(errbuf)));
    CHECK(n == 2);
    printf("broker back up: read recovered in %.0f ms\n", now_ms() - t0);

    ws_kafka_producer_destroy(p);
    ws_kafka_reader_destroy(r);
    ws_kafka_broker_destroy(b);
}

int main(void)
{
    test_listen_errors();
    test_faults();
    printf("test_kafka_broker: %lu checks, %lu failed\n", checks, failures);
    if (failures)
        return 1;
    printf("test_kafka_broker: %lu checks passed\n", checks);
    return 0;
}
