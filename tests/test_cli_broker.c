/*
 * test_cli_broker.c — `windowseal broker` (cli/broker.c): usage errors exit 2, and in a child
 * process a fixed --listen address, the bootstrap address as the first stdout line, the
 * windowseal topics pre-created with --partitions partitions, and SIGTERM -> exit 0. (The broker
 * itself is tests/test_kafka_broker.c.)
 */
#include "cli/cli.h"
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

    CHECK(ws_cmd_broker(2, a1) == 2);
    CHECK(ws_cmd_broker(3, a2) == 2);
    CHECK(ws_cmd_broker(3, a3) == 2);
    CHECK(ws_cmd_broker(2, a4) == 2);
    CHECK(ws_cmd_broker(2, a5) == 2);
    CHECK(ws_cmd_broker(2, a6) == 2);
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
        _exit(ws_cmd_broker(4, argv));
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

int main(void)
{
    /* The command test forks: do it while this process has no librdkafka threads yet. */
    test_usage();
    test_command();
    printf("test_cli_broker: %lu checks, %lu failed\n", checks, failures);
    if (failures)
        return 1;
    printf("test_cli_broker: %lu checks passed\n", checks);
    return 0;
}
