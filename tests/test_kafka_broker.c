/*
 * test_kafka_broker.c — the embedded broker: the `broker` command (fixed --listen address,
 * first stdout line, pre-created topics, SIGTERM -> exit 0, usage errors -> 2), a busy port, and
 * fault injection seen through the clients: broker down (reads time out, then recover), injected
 * request errors (retried by librdkafka), delivery errors classified retriable/permanent, and
 * undelivered messages purged by destroy.
 */
#include "kafka/kafka.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
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

/* A port nobody listens on right now (bound, read, released). */
static int free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int s = socket(AF_INET, SOCK_STREAM, 0), port = -1;

    if (s >= 0 && bind(s, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(s, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (s >= 0)
        close(s);
    return port;
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

static void test_usage(void)
{
    char *a1[] = {"broker", "--bogus", NULL};
    char *a2[] = {"broker", "--partitions", "0", NULL};
    char *a3[] = {"broker", "--listen", "nocolon", NULL};
    char *a4[] = {"broker", "--listen", NULL};
    char *a5[] = {"broker", "--listen=[::1]:9092", NULL};
    char *a6[] = {"broker", "--partitions=3x", NULL};

    CHECK(ws_kafka_broker_main(2, a1) == 2);
    CHECK(ws_kafka_broker_main(3, a2) == 2);
    CHECK(ws_kafka_broker_main(3, a3) == 2);
    CHECK(ws_kafka_broker_main(2, a4) == 2);
    CHECK(ws_kafka_broker_main(2, a5) == 2);
    CHECK(ws_kafka_broker_main(2, a6) == 2);
}

/* `windowseal broker --listen 127.0.0.1:PORT --partitions 3` in a child process. */
static void test_command(void)
{
    char listen[64], portarg[80], line[128] = "";
    int fds[2], port = free_port(), status = 0;
    struct pollfd pfd;
    size_t used = 0;
    pid_t pid;
    double t0;

    CHECK(port > 0);
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
    snprintf(portarg, sizeof(portarg), "--listen=%s", listen);
    if (pipe(fds) != 0) {
        CHECK(!"pipe");
        return;
    }
    fflush(stdout);
    if ((pid = fork()) == 0) {
        char *argv[] = {"broker", portarg, "--partitions", "3", NULL};

        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        _exit(ws_kafka_broker_main(4, argv));
    }
    close(fds[1]);
    CHECK(pid > 0);
    t0 = now_ms();
    pfd.fd = fds[0];
    pfd.events = POLLIN;
    while (!memchr(line, '\n', used) && used < sizeof(line) - 1 && now_ms() - t0 < 10000 &&
           poll(&pfd, 1, 100) >= 0) {
        ssize_t n;

        if (!(pfd.revents & (POLLIN | POLLHUP)))
            continue;
        if ((n = read(fds[0], line + used, sizeof(line) - 1 - used)) <= 0)
            break;
        used += (size_t)n;
        line[used] = '\0';
    }
    printf("broker command: first line \"%.*s\" after %.0f ms\n", (int)strcspn(line, "\n"), line,
           now_ms() - t0);
    CHECK(strncmp(line, listen, strlen(listen)) == 0 && line[strlen(listen)] == '\n');

    /* Clients work through the fixed address; the windowseal topics have 3 partitions. */
    {
        struct ws_kafka_conf c = {.bootstrap = listen};
        struct ws_kafka_reader *r = ws_kafka_reader_new(&c, errbuf, sizeof(errbuf));
        struct dr_log d = {0};
        struct ws_kafka_producer *p = ws_kafka_producer_new(&c, on_dr, &d, errbuf, sizeof(errbuf));
        int64_t lo = -1, hi = -1;
        int n = 0;

        CHECK(r && p);
        if (r && p) {
            CHECK_OK(ws_kafka_reader_watermarks(r, "windowseal.batches", 2, &lo, &hi, 5000, errbuf,
                                                sizeof(errbuf)));
            CHECK(lo == 0 && hi == 0);
            CHECK(ws_kafka_reader_watermarks(r, "windowseal.batches", 3, &lo, &hi, 5000, errbuf,
                                             sizeof(errbuf)) == WS_ERR_UNKNOWN_TOPIC);
            CHECK(ws_kafka_reader_watermarks(r, "windowseal.attestations", 3, &lo, &hi, 5000,
                                             errbuf, sizeof(errbuf)) == WS_ERR_UNKNOWN_TOPIC);
            CHECK_OK(ws_kafka_produce(p, "windowseal.attestations", 2, "q", 1, "env", 3, NULL, 0,
                                      NULL, errbuf, sizeof(errbuf)));
            CHECK_OK(ws_kafka_producer_flush(p, 5000));
            CHECK(d.n == 1 && d.last == WS_OK);
            CHECK_OK(ws_kafka_read_range(r, "windowseal.attestations", 2, 0, 1, 5000, count_rec, &n,
                                         errbuf, sizeof(errbuf)));
            CHECK(n == 1);
        }
        ws_kafka_producer_destroy(p);
        ws_kafka_reader_destroy(r);
    }

    /* SIGTERM: clean exit 0. */
    t0 = now_ms();
    CHECK(kill(pid, SIGTERM) == 0);
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    printf("broker command: exit status %d %.0f ms after SIGTERM\n",
           WIFEXITED(status) ? WEXITSTATUS(status) : -1, now_ms() - t0);
    close(fds[0]);
}

static void test_listen_errors(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    struct ws_kafka_broker *b;
    char addr[64];
    int s = socket(AF_INET, SOCK_STREAM, 0);

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
    /* The command test forks: do it while this process has no librdkafka threads yet. */
    test_usage();
    test_command();
    test_listen_errors();
    test_faults();
    printf("test_kafka_broker: %lu checks, %lu failed\n", checks, failures);
    if (failures)
        return 1;
    printf("test_kafka_broker: %lu checks passed\n", checks);
    return 0;
}
