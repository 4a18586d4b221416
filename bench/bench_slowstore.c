/*
 * bench_slowstore.c — the engine as a pipeline (issue 14): many small windows against a slow
 * object store, and what an idle engine costs a single window.
 *
 *   bench_slowstore store [--quick] [--s3rver PATH] [--delay-ms N]
 *       Throughput of many small windows into an S3 sink. 20 queries x 5 batches (--quick: x 2)
 *       of 100 records x 100 B over 4 partitions, produced up front to the embedded broker; all
 *       notifications posted at once; windows/s from the first notification's produce to the
 *       last window attested (ws_engine_step in a loop, ws_engine_get_stats). Three engines,
 *       each on its own topics, group, spool and prefix, one after the other in the same run:
 *         0  file sink (baseline of the direct S3 figure: what the engine does without S3)
 *         a  S3 sink on s3rver (npm s3rver 3.7.1, started here on loopback)
 *         b  the same S3 sink through a delay proxy (below) that adds N ms (default 50) to
 *            every request: windows/s and the ratio b / a
 *       Every engine first attests one warm-up window that reads every data partition once, so
 *       the group join and first reads (measured by `latency` and `firstread`) stay outside.
 *
 *   bench_slowstore latency [--quick] [--props JSON]
 *       Latency of 1000-record windows (8 partitions, file sink + attestations topic) read from
 *       Kafka's own timestamps: the attestation's CreateTime on the attestations topic minus
 *       its notification's CreateTime, both read back with ws_kafka_read_all. The engine runs
 *       as `windowseal run` does (ws_engine_step(e, 100) in a loop, engine defaults; --props
 *       sets kafka.properties to try others) on the main thread; a feeder thread plays Spark:
 *       data, then ~200 ms idle, then one notification, wait until attested, again. 100 windows
 *       (--quick: 30). Baseline in the same run: a bare ws_kafka_consumer (own group, same
 *       topic, consumer defaults) receiving the same notifications — what Kafka delivery alone
 *       costs; also shown: the same windows back to back (no idle time), and the split at the
 *       engine's `received` debug log line (notification polled). Then the first window after
 *       start: a fresh engine (new group) with one notification already waiting; time until the
 *       window is attested, against the engine's own group join (its `rebalance` log line, read
 *       from stderr; without it, the bare consumer's first message) and a bare consumer joining
 *       a fresh group on the same broker. 3 runs (--quick: 1), medians.
 *
 *   bench_slowstore firstread
 *       Where a first read of a partition goes: a fresh ws_kafka_reader reading partitions it
 *       never read vs the same partitions warm (watermarks alone, one range, eight at once, a
 *       whole topic as the heads reload does); a fresh producer's first produce to a topic vs the
 *       next; and the engine's windows moving to partitions its reader never read.
 *
 *   bench_slowstore all [--quick] [...]    store, latency, firstread
 *
 * TABLE<TAB>... lines are what bench/run collects: bench, figure, baseline, ratio, target,
 * verdict. s3rver: --s3rver PATH, else $WS_S3RVER, else <this program's dir>/node/node_modules/
 * s3rver/bin/s3rver.js (bench/run installs it there with npm); without it `store` prints why and
 * exits 77. Only public headers (engine, config, kafka, sinks, window, disk), so the figures keep
 * their meaning across a rework of the engine's internals.
 *
 * The delay proxy: one thread, 127.0.0.1 only, poll(2) over every connection; each chunk read
 * from a client is forwarded to s3rver N ms after it arrived (a delay line: the chunks of one
 * request arriving together leave together, so each request-response exchange takes N ms more,
 * on every connection independently, keep-alive or not); responses go back at once. It counts
 * exchanges (a client chunk after a response, or the first on a connection) and connections,
 * and stops when the bench stops it. WS_BENCH_PROXY_TRACE=1 prints each exchange's first line
 * (a PUT's body after curl's `Expect: 100-continue` is an exchange of its own).
 */
#include "engine/engine.h"
#include "disk/disk.h"
#include "kafka/kafka.h"
#include "sinks/sink.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static const char *g_self_dir;
static const char *g_s3rver;
static int g_delay_ms = 50;
static const char *g_props; /* latency: kafka.properties for the engine (default: none) */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void sleep_ms(double ms)
{
    struct timespec ts = {(time_t)(ms / 1000),
                          (long)((ms - (double)(time_t)(ms / 1000) * 1000) * 1e6)};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

static void die(const char *what, const char *why)
{
    fprintf(stderr, "bench_slowstore: %s: %s\n", what, why);
    exit(3);
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of v[0..n) (sorts v). */
static double pct(double *v, int n, double p)
{
    if (n <= 0)
        return 0;
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    int i = (int)(p * (n - 1) + 0.5);
    return v[i];
}

static const char *verdict(bool met)
{
    return met ? "met" : "MISSED";
}

/* ------------------------------------------------------------------------------------------ */
/* Delay proxy                                                                                  */

#define PROXY_MAX_CONNS 256
#define PROXY_CHUNK 65536
#define PROXY_QUEUE_CAP (8u << 20) /* bytes queued per direction before reading pauses */

struct chunk {
    struct chunk *next;
    double due;
    size_t len, off;
    char data[];
};

struct dir {
    struct chunk *head, *tail;
    size_t queued;
    bool eof;  /* the reading side said end of stream */
    bool shut; /* passed on (shutdown(SHUT_WR) of the writing side) */
};

struct conn {
    int cfd, sfd;
    struct dir up, down; /* up: client -> server (delayed), down: server -> client */
    bool responded;      /* bytes went down since the last chunk up: the next one is a request */
    bool dead;
};

struct proxy {
    int lfd, wake[2];
    int port, upstream_port, delay_ms;
    pthread_t th;
    atomic_bool stop;
    struct conn *conns[PROXY_MAX_CONNS];
    size_t nconns;
    atomic_ulong exchanges, connections, refused;
    bool trace; /* WS_BENCH_PROXY_TRACE set: each exchange's first line on stderr */
};

static void dir_free(struct dir *d)
{
    struct chunk *c, *n;
    for (c = d->head; c; c = n) {
        n = c->next;
        free(c);
    }
    d->head = d->tail = NULL;
    d->queued = 0;
}

static void conn_close(struct conn *c)
{
    close(c->cfd);
    close(c->sfd);
    dir_free(&c->up);
    dir_free(&c->down);
    free(c);
}

/* Read what fd has into d, due `delay` ms from now. false: the connection failed. */
static bool pump_in(int fd, struct dir *d, double delay)
{
    for (;;) {
        struct chunk *c = malloc(sizeof *c + PROXY_CHUNK);
        ssize_t n;
        if (!c)
            return false;
        n = read(fd, c->data, PROXY_CHUNK);
        if (n <= 0) {
            free(c);
            if (n == 0) {
                d->eof = true;
                return true;
            }
            return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
        }
        c->next = NULL;
        c->len = (size_t)n;
        c->off = 0;
        c->due = now_ms() + delay;
        if (d->tail)
            d->tail->next = c;
        else
            d->head = c;
        d->tail = c;
        d->queued += (size_t)n;
        if (n < PROXY_CHUNK || d->queued >= PROXY_QUEUE_CAP)
            return true;
    }
}

/* Write d's due chunks to fd; then pass an end of stream on. false: the connection failed. */
static bool pump_out(int fd, struct dir *d)
{
    double t = now_ms();

    while (d->head && d->head->due <= t) {
        struct chunk *c = d->head;
        ssize_t n = write(fd, c->data + c->off, c->len - c->off);
        if (n < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
        c->off += (size_t)n;
        d->queued -= (size_t)n;
        if (c->off < c->len)
            return true;
        d->head = c->next;
        if (!d->head)
            d->tail = NULL;
        free(c);
    }
    if (!d->head && d->eof && !d->shut) {
        shutdown(fd, SHUT_WR);
        d->shut = true;
    }
    return true;
}

static int connect_upstream(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) { /* loopback: immediate */
        close(fd);
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

static void proxy_accept(struct proxy *px)
{
    for (;;) {
        int cfd = accept4(px->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC), sfd, one = 1;
        struct conn *c;

        if (cfd < 0)
            return;
        if (px->nconns >= PROXY_MAX_CONNS || (sfd = connect_upstream(px->upstream_port)) < 0) {
            px->refused++;
            close(cfd);
            continue;
        }
        setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (!(c = calloc(1, sizeof *c))) {
            close(cfd);
            close(sfd);
            continue;
        }
        c->cfd = cfd;
        c->sfd = sfd;
        c->responded = true;
        px->conns[px->nconns++] = c;
        px->connections++;
    }
}

static void *proxy_main(void *arg)
{
    struct proxy *px = arg;
    struct pollfd fds[2 + 2 * PROXY_MAX_CONNS];

    while (!atomic_load(&px->stop)) {
        double t = now_ms(), next_due = t + 100; /* wake at least every 100 ms to see stop */
        size_t nf = 0;

        fds[nf++] = (struct pollfd){.fd = px->lfd, .events = POLLIN};
        fds[nf++] = (struct pollfd){.fd = px->wake[0], .events = POLLIN};
        for (size_t i = 0; i < px->nconns; i++) {
            struct conn *c = px->conns[i];
            short ce = 0, se = 0;
            if (!c->up.eof && c->up.queued < PROXY_QUEUE_CAP)
                ce |= POLLIN;
            if (!c->down.eof && c->down.queued < PROXY_QUEUE_CAP)
                se |= POLLIN;
            if (c->down.head)
                ce |= POLLOUT; /* due at once */
            if (c->up.head) {
                if (c->up.head->due <= t)
                    se |= POLLOUT;
                else if (c->up.head->due < next_due)
                    next_due = c->up.head->due;
            }
            /* a side with nothing wanted is left out (-1), or a hang-up would spin the loop */
            fds[nf++] = (struct pollfd){.fd = ce ? c->cfd : -1, .events = ce};
            fds[nf++] = (struct pollfd){.fd = se ? c->sfd : -1, .events = se};
        }
        int timeout = (int)(next_due - t + 0.999);
        if (poll(fds, nf, timeout < 0 ? 0 : timeout) < 0 && errno != EINTR)
            break;
        if (fds[0].revents)
            proxy_accept(px);
        for (size_t i = 0; i < px->nconns; i++) {
            struct conn *c = px->conns[i];
            struct pollfd *cf = &fds[2 + 2 * i], *sf = &fds[3 + 2 * i];
            if (i * 2 + 3 >= nf)
                break; /* accepted in this round: served from the next */
            if (cf->revents & (POLLIN | POLLHUP | POLLERR)) {
                size_t before = c->up.queued;
                bool ok = pump_in(c->cfd, &c->up, px->delay_ms);
                if (c->up.queued > before && c->responded) {
                    c->responded = false;
                    px->exchanges++;
                    if (px->trace) { /* the first line of what starts the exchange */
                        const char *d = c->up.tail->data;
                        size_t n = 0, len = c->up.tail->len;
                        while (n < len && n < 100 && d[n] >= 0x20 && d[n] < 0x7f)
                            n++;
                        fprintf(stderr, "proxy: conn %d: %.*s%s\n", c->cfd, (int)n, d,
                                n < len && d[n] != '\r' ? " [...]" : "");
                    }
                }
                c->dead |= !ok;
            }
            if (sf->revents & (POLLIN | POLLHUP | POLLERR)) {
                size_t before = c->down.queued;
                c->dead |= !pump_in(c->sfd, &c->down, 0);
                if (c->down.queued > before)
                    c->responded = true;
            }
            c->dead |= !pump_out(c->sfd, &c->up);
            c->dead |= !pump_out(c->cfd, &c->down);
            /* both ends said end of stream, or the server closed with nothing left to send */
            if ((c->up.shut && c->down.shut) || (c->down.shut && !c->up.head))
                c->dead = true;
        }
        for (size_t i = 0; i < px->nconns;) {
            if (px->conns[i]->dead) {
                conn_close(px->conns[i]);
                px->conns[i] = px->conns[--px->nconns];
            } else {
                i++;
            }
        }
    }
    for (size_t i = 0; i < px->nconns; i++)
        conn_close(px->conns[i]);
    px->nconns = 0;
    return NULL;
}

static struct proxy *proxy_start(int upstream_port, int delay_ms)
{
    struct proxy *px = calloc(1, sizeof *px);
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t alen = sizeof a;
    int one = 1;

    if (!px)
        die("proxy", "out of memory");
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK); /* 127.0.0.1 only */
    px->upstream_port = upstream_port;
    px->delay_ms = delay_ms;
    px->trace = getenv("WS_BENCH_PROXY_TRACE") != NULL;
    if ((px->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0 ||
        setsockopt(px->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
        bind(px->lfd, (struct sockaddr *)&a, sizeof a) || listen(px->lfd, 128) ||
        getsockname(px->lfd, (struct sockaddr *)&a, &alen) || pipe(px->wake))
        die("proxy", strerror(errno));
    px->port = ntohs(a.sin_port);
    if (pthread_create(&px->th, NULL, proxy_main, px))
        die("proxy", "pthread_create");
    return px;
}

static void proxy_stop(struct proxy *px)
{
    atomic_store(&px->stop, true);
    if (write(px->wake[1], "x", 1) < 0)
        perror("proxy wake");
    pthread_join(px->th, NULL);
    close(px->lfd);
    close(px->wake[0]);
    close(px->wake[1]);
    free(px);
}

/* ------------------------------------------------------------------------------------------ */
/* s3rver (npm), a child process on loopback                                                    */

struct s3rver {
    pid_t pid;
    int port;
    char dir[PATH_MAX];
};

static const char *find_s3rver(void)
{
    static char path[PATH_MAX];
    const char *env = getenv("WS_S3RVER");

    if (g_s3rver)
        return access(g_s3rver, R_OK) == 0 ? g_s3rver : NULL;
    if (env && *env)
        return access(env, R_OK) == 0 ? env : NULL;
    snprintf(path, sizeof path, "%s/node/node_modules/s3rver/bin/s3rver.js", g_self_dir);
    return access(path, R_OK) == 0 ? path : NULL;
}

/* Start s3rver on a free loopback port with the bucket `attest`; its data under dir. */
static bool s3rver_start(const char *script, const char *dir, struct s3rver *s)
{
    char data[PATH_MAX], logp[PATH_MAX], line[4096];
    char *argv[] = {"node",     (char *)script,       "-d",     data, "-a", "127.0.0.1", "-p", "0",
                    "--silent", "--configure-bucket", "attest", NULL};
    posix_spawn_file_actions_t fa;
    int rc;

    snprintf(s->dir, sizeof s->dir, "%s", dir);
    snprintf(data, sizeof data, "%s/s3data", dir);
    snprintf(logp, sizeof logp, "%s/s3rver.log", dir);
    mkdir(data, 0755);
    setenv("NODE_OPTIONS", "--openssl-legacy-provider", 0);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, logp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    rc = posix_spawnp(&s->pid, "node", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        fprintf(stderr, "bench_slowstore: cannot start node: %s\n", strerror(rc));
        return false;
    }
    for (int i = 0; i < 300; i++) { /* 30 s */
        FILE *f = fopen(logp, "r");
        int status;
        if (f) {
            while (fgets(line, sizeof line, f)) {
                char *p = strstr(line, "listening on 127.0.0.1:");
                if (p && (s->port = atoi(p + strlen("listening on 127.0.0.1:"))) > 0) {
                    fclose(f);
                    return true;
                }
            }
            fclose(f);
        }
        if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
            fprintf(stderr, "bench_slowstore: s3rver exited; its log: %s\n", logp);
            return false;
        }
        sleep_ms(100);
    }
    fprintf(stderr, "bench_slowstore: s3rver did not start in 30 s (log: %s)\n", logp);
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    return false;
}

static void s3rver_stop(struct s3rver *s)
{
    int status;

    kill(s->pid, SIGTERM);
    for (int i = 0; i < 50; i++) {
        if (waitpid(s->pid, &status, WNOHANG) == s->pid)
            return;
        sleep_ms(100);
    }
    kill(s->pid, SIGKILL);
    waitpid(s->pid, &status, 0);
}

/* ------------------------------------------------------------------------------------------ */
/* Broker, data, notifications, engines                                                         */

static uint8_t g_val[4096];

static struct ws_kafka_producer *new_producer(const char *bootstrap, bool batched)
{
    /* Setup speed only for data (never timed); notifications go out unbatched (linger 0). */
    static const char *const props[] = {
        "linger.ms", "5", "batch.num.messages", "10000", "queue.buffering.max.messages", "1000000"};
    struct ws_kafka_conf kc = {bootstrap, NULL, batched ? props : NULL, batched ? 3 : 0};
    char errbuf[512];
    struct ws_kafka_producer *p =
        ws_kafka_producer_new(&kc, ws_kafka_delivery_report, NULL, errbuf, sizeof errbuf);
    if (!p)
        die("producer", errbuf);
    return p;
}

/* n records (100 B values) to topic[part], asynchronously. */
static void produce_records(struct ws_kafka_producer *p, const char *topic, int part, int n)
{
    char errbuf[512], key[16];

    for (int r = 0; r < n; r++) {
        int klen = snprintf(key, sizeof key, "k%d", r & 0xff);
        ws_err_t err;
        while ((err = ws_kafka_produce(p, topic, part, key, (size_t)klen, g_val + (r * 37) % 3000,
                                       100, NULL, 0, NULL, errbuf, sizeof errbuf)) == WS_ERR_AGAIN)
            ws_kafka_producer_poll(p, 1);
        if (err)
            die("produce", errbuf);
    }
}

static void flush(struct ws_kafka_producer *p)
{
    if (ws_kafka_producer_flush(p, 60000))
        die("flush", "records not delivered in 60 s");
}

struct range {
    int part;
    int64_t from, until;
};

/* Native notification (FORMAT.md): one source per range, all of topic. */
static void notification(char *json, size_t cap, const char *query, int64_t batch,
                         const char *topic, const struct range *rg, int n)
{
    size_t off = (size_t)snprintf(json, cap, "{\"queryId\":\"%s\",\"batchId\":%lld,\"sources\":[",
                                  query, (long long)batch);
    for (int i = 0; i < n && off < cap; i++)
        off += (size_t)snprintf(json + off, cap - off,
                                "%s{\"topic\":\"%s\",\"partition\":%d,\"fromOffset\":%lld,"
                                "\"untilOffset\":%lld}",
                                i ? "," : "", topic, rg[i].part, (long long)rg[i].from,
                                (long long)rg[i].until);
    if (off < cap)
        snprintf(json + off, cap - off, "]}");
}

static void post(struct ws_kafka_producer *p, const char *topic, const char *query,
                 const char *json)
{
    char errbuf[512];
    ws_err_t err;

    while ((err = ws_kafka_produce(p, topic, -1, query, strlen(query), json, strlen(json), NULL, 0,
                                   NULL, errbuf, sizeof errbuf)) == WS_ERR_AGAIN)
        ws_kafka_producer_poll(p, 1);
    if (err)
        die("notification", errbuf);
}

struct bench {
    char dir[64], key[128];
    struct ws_kafka_broker *b;
    const char *boot;
};

static void bench_open(struct bench *B)
{
    char errbuf[512];
    struct ws_key k;

    snprintf(B->dir, sizeof B->dir, "/tmp/ws_bench_slow_XXXXXX");
    if (!mkdtemp(B->dir))
        die("mkdtemp", strerror(errno));
    if (!(B->b = ws_kafka_broker_new(NULL, 1, errbuf, sizeof errbuf)))
        die("broker", errbuf);
    B->boot = ws_kafka_broker_bootstrap(B->b);
    snprintf(B->key, sizeof B->key, "%s/k", B->dir);
    if (ws_key_generate(&k) || ws_key_save(B->key, &k, errbuf, sizeof errbuf))
        die("key", errbuf);
    ws_key_wipe(&k);
    for (size_t i = 0; i < sizeof g_val; i++)
        g_val[i] = (uint8_t)((i * 2654435761u) >> 13);
}

static void bench_close(struct bench *B)
{
    char cmd[128];

    ws_kafka_broker_destroy(B->b);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", B->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", B->dir);
}

static void topic(struct bench *B, const char *name, int partitions)
{
    char errbuf[512];
    if (ws_kafka_broker_create_topic(B->b, name, partitions, errbuf, sizeof errbuf))
        die(name, errbuf);
}

/*
 * An engine on its own notifications topic, attestations topic, group and spool (all named
 * after tag); sinks_json: the `sinks` array. props_json: kafka.properties or NULL (defaults).
 */
static struct ws_engine *engine(struct bench *B, const char *tag, const char *sinks_json,
                                const char *props_json, struct ws_config **cfgp)
{
    char errbuf[1024], set[10][1200];
    const char *sets[10];
    struct ws_engine *e;
    size_t n = 0;

    snprintf(set[n++], sizeof set[0], "kafka.bootstrap.servers=%s", B->boot);
    snprintf(set[n++], sizeof set[0], "kafka.group.id=%s.group", tag);
    snprintf(set[n++], sizeof set[0], "kafka.notifications.topic=%s.batches", tag);
    snprintf(set[n++], sizeof set[0], "kafka.attestations.topic=%s.att", tag);
    snprintf(set[n++], sizeof set[0], "signing.key=%s", B->key);
    snprintf(set[n++], sizeof set[0], "sinks=%s", sinks_json);
    snprintf(set[n++], sizeof set[0], "spool.path=%s/%s.spool", B->dir, tag);
    snprintf(set[n++], sizeof set[0], "engine.gap_wait_ms=0");
    if (props_json)
        snprintf(set[n++], sizeof set[0], "kafka.properties=%s", props_json);
    for (size_t i = 0; i < n; i++)
        sets[i] = set[i];
    if (ws_config_load(NULL, sets, n, ws_sink_types(), cfgp, errbuf, sizeof errbuf))
        die("config", errbuf);
    if (ws_engine_new(*cfgp, &e, errbuf, sizeof errbuf))
        die("engine", errbuf);
    return e;
}

/* Step e until `windows` windows are attested in all (or a dead letter, or timeout_s). */
static bool step_until(struct ws_engine *e, struct ws_kafka_producer *p, uint64_t windows,
                       double timeout_s)
{
    struct ws_engine_stats st;
    double t0 = now_ms();

    do {
        if (p)
            ws_kafka_producer_poll(p, 0);
        if (ws_engine_step(e, 1))
            die("engine", "step failed");
        ws_engine_get_stats(e, &st);
    } while (st.windows < windows && st.deadlettered == 0 && now_ms() - t0 < timeout_s * 1e3);
    if (st.deadlettered)
        fprintf(stderr, "bench_slowstore: %llu notification(s) dead-lettered (see the log)\n",
                (unsigned long long)st.deadlettered);
    return st.windows >= windows;
}

/* The same as `windowseal run` steps: ws_engine_step(e, 100). */
static bool step_until_run(struct ws_engine *e, uint64_t windows, double timeout_s)
{
    struct ws_engine_stats st;
    double t0 = now_ms();

    do {
        if (ws_engine_step(e, 100))
            die("engine", "step failed");
        ws_engine_get_stats(e, &st);
    } while (st.windows < windows && st.deadlettered == 0 && now_ms() - t0 < timeout_s * 1e3);
    return st.windows >= windows;
}

static void set_credentials(void)
{
    /* s3rver knows the access key S3RVER and does not check V4 signatures */
    setenv("AWS_ACCESS_KEY_ID", "S3RVER", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "S3RVER", 1);
    unsetenv("AWS_SESSION_TOKEN");
}

/* ------------------------------------------------------------------------------------------ */
/* store: many small windows into a slow object store                                          */

#define ST_QUERIES 20
#define ST_PARTS 4
#define ST_PER_PART 25 /* 4 x 25 = 100 records a window */
#define ST_DATA "slow.data"

struct phase {
    const char *tag, *what;
    double secs, wps;
    uint64_t windows, retries, sink_failures;
    unsigned long exchanges, connections;
    bool ok;
};

static int64_t st_from(int w)
{
    return 1 + (int64_t)w * ST_PER_PART; /* offset 0 of every partition: the warm-up window's */
}

static void run_phase(struct bench *B, struct phase *ph, const char *sinks_json, int batches,
                      struct proxy *px)
{
    char name[128], json[2048], query[64];
    int nwin = ST_QUERIES * batches;
    char **jsons = calloc((size_t)nwin, sizeof *jsons), (*queries)[64] = calloc((size_t)nwin, 64);
    struct range rg[ST_PARTS];
    struct ws_engine_stats st0, st;
    struct ws_config *cfg;
    struct ws_kafka_producer *p;
    struct ws_engine *e;

    snprintf(name, sizeof name, "%s.batches", ph->tag);
    topic(B, name, 4);
    snprintf(name, sizeof name, "%s.att", ph->tag);
    topic(B, name, 4);
    snprintf(name, sizeof name, "%s.batches", ph->tag);
    p = new_producer(B->boot, false);
    e = engine(B, ph->tag, sinks_json, NULL, &cfg);

    /* warm-up: the group join, the S3 connection, and a first read of every data partition */
    for (int i = 0; i < ST_PARTS; i++)
        rg[i] = (struct range){i, 0, 1};
    snprintf(query, sizeof query, "%s-warm", ph->tag);
    notification(json, sizeof json, query, 0, ST_DATA, rg, ST_PARTS);
    post(p, name, query, json);
    if (!step_until(e, p, 1, 120))
        die(ph->tag, "warm-up window not attested in 120 s");
    ws_engine_get_stats(e, &st0);
    unsigned long ex0 = px ? px->exchanges : 0, co0 = px ? px->connections : 0;

    /* batch-major, so that every query has a window early: b0 of q0..q19, then b1, ... */
    for (int b = 0, w = 0; b < batches; b++)
        for (int q = 0; q < ST_QUERIES; q++, w++) {
            snprintf(queries[w], 64, "%s-q%02d", ph->tag, q);
            for (int i = 0; i < ST_PARTS; i++)
                rg[i] = (struct range){i, st_from(w), st_from(w + 1)};
            notification(json, sizeof json, queries[w], b, ST_DATA, rg, ST_PARTS);
            jsons[w] = strdup(json);
        }
    double t0 = now_ms();
    for (int w = 0; w < nwin; w++)
        post(p, name, queries[w], jsons[w]);
    ph->ok = step_until(e, p, st0.windows + (uint64_t)nwin, 600);
    ph->secs = (now_ms() - t0) / 1e3;
    ws_engine_get_stats(e, &st);
    ph->windows = st.windows - st0.windows;
    ph->retries = st.retries - st0.retries;
    ph->sink_failures = st.sink_failures - st0.sink_failures;
    ph->wps = (double)ph->windows / ph->secs;
    if (px) {
        ph->exchanges = px->exchanges - ex0;
        ph->connections = px->connections - co0;
    }
    ws_engine_destroy(e);
    ws_config_free(cfg);
    flush(p);
    ws_kafka_producer_destroy(p);
    for (int w = 0; w < nwin; w++)
        free(jsons[w]);
    free(jsons);
    free(queries);
}

static int cmd_store(bool quick)
{
    const char *script = find_s3rver();
    int batches = quick ? 2 : 5, nwin = ST_QUERIES * batches;
    char sinks[512];
    struct phase ph[3] = {
        {.tag = "file0", .what = "file sink (baseline)"},
        {.tag = "s3a", .what = "S3 sink -> s3rver"},
        {.tag = "s3b", .what = "S3 sink -> delay proxy -> s3rver"},
    };
    struct s3rver s3;
    struct proxy *px;
    struct bench B;

    if (!script) {
        fprintf(stderr,
                "bench_slowstore store: s3rver not found (--s3rver PATH, WS_S3RVER, or "
                "npm install --prefix %s/node s3rver@3.7.1): skipped\n",
                g_self_dir);
        return 77;
    }
    bench_open(&B);
    ws_log_setup("warn", "logfmt");
    set_credentials();
    topic(&B, ST_DATA, ST_PARTS);
    {
        struct ws_kafka_producer *p = new_producer(B.boot, true);
        for (int i = 0; i < ST_PARTS; i++)
            produce_records(p, ST_DATA, i, (int)st_from(nwin));
        flush(p);
        ws_kafka_producer_destroy(p);
    }
    if (!s3rver_start(script, B.dir, &s3))
        die("s3rver", "did not start");
    px = proxy_start(s3.port, g_delay_ms);

    printf("slow store: %d windows (%d queries x %d batches) of %d records x 100 B over %d "
           "partitions,\nall notifications posted at once; first produce -> last window attested "
           "(every sink + chain head).\ns3rver on 127.0.0.1:%d, delay proxy on 127.0.0.1:%d "
           "(+%d ms per request)\n\n",
           nwin, ST_QUERIES, batches, ST_PARTS * ST_PER_PART, ST_PARTS, s3.port, px->port,
           g_delay_ms);
    for (int i = 0; i < 3; i++) {
        if (i == 0)
            snprintf(sinks, sizeof sinks, "[{\"type\":\"file\",\"path\":\"%s/file0\"}]", B.dir);
        else
            snprintf(sinks, sizeof sinks,
                     "[{\"type\":\"s3\",\"endpoint\":\"http://127.0.0.1:%d\",\"bucket\":\"attest\","
                     "\"prefix\":\"%s/\",\"path_style\":true}]",
                     i == 1 ? s3.port : px->port, ph[i].tag);
        run_phase(&B, &ph[i], sinks, batches, i == 2 ? px : NULL);
    }
    proxy_stop(px);
    s3rver_stop(&s3);

    printf("%-34s %8s %9s %11s %14s %8s %8s\n", "sinks (+ attestations topic)", "windows",
           "seconds", "windows/s", "requests/win", "retries", "sinkfail");
    for (int i = 0; i < 3; i++) {
        char req[32] = "-";
        if (i == 2)
            snprintf(req, sizeof req, "%.1f (+%lu conn)", (double)ph[i].exchanges / nwin,
                     ph[i].connections);
        printf("%-34s %8llu %9.2f %11.1f %14s %8llu %8llu%s\n", ph[i].what,
               (unsigned long long)ph[i].windows, ph[i].secs, ph[i].wps, req,
               (unsigned long long)ph[i].retries, (unsigned long long)ph[i].sink_failures,
               ph[i].ok ? "" : "  (NOT all attested: timed out)");
    }
    printf("(requests/win: request-response exchanges the proxy saw per window after the warm-up "
           "window, and connections opened meanwhile)\n");
    double ratio = ph[1].wps > 0 ? ph[2].wps / ph[1].wps : 0;
    printf("TABLE\tslow store: S3 sink direct (s3rver, loopback), %d windows x 100 records, %d "
           "queries\t%.1f windows/s\t%.1f windows/s (file sink, same engine)\t%.2f\t"
           ">= 200 windows/s\t%s\n",
           nwin, ST_QUERIES, ph[1].wps, ph[0].wps, ph[0].wps > 0 ? ph[1].wps / ph[0].wps : 0,
           verdict(ph[1].ok && ph[1].wps >= 200));
    printf("TABLE\tslow store: S3 sink behind a %d ms-per-request proxy, same windows\t"
           "%.1f windows/s\t%.1f windows/s (S3 direct)\t%.2f\t>= 50 windows/s; >= 0.5 of direct"
           "\t%s\n",
           g_delay_ms, ph[2].wps, ph[1].wps, ratio,
           verdict(ph[2].ok && ph[2].wps >= 50 && ratio >= 0.5));
    fflush(stdout);
    bench_close(&B);
    return ph[0].ok && ph[1].ok && ph[2].ok ? 0 : 3;
}

/* ------------------------------------------------------------------------------------------ */
/* A tap on stderr: when the engine's log lines (ws_log, logfmt) arrive                         */

static const char *const tap_events[] = {"rebalance", "received", "window_attested"};
#define TAP_NEV 3

#define TAP_BATCHES 4096

struct tap {
    int saved, rfd;
    pthread_t th;
    double t[TAP_NEV]; /* now_ms() when the first line of each event arrived; 0: none */
    /* wall-clock ms (CLOCK_REALTIME, as Kafka's CreateTime) when the engine logged that it
     * received batch b (the first time): 0 none */
    double received_wall[TAP_BATCHES];
};

static double wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void *tap_main(void *arg)
{
    struct tap *tp = arg;
    char buf[16384];
    size_t len = 0;
    ssize_t n;

    while ((n = read(tp->rfd, buf + len, sizeof buf - 1 - len)) > 0) {
        double t = now_ms(), wall = wall_ms();
        char *line = buf, *nl;
        len += (size_t)n;
        buf[len] = '\0';
        while ((nl = strchr(line, '\n'))) {
            *nl = '\0';
            for (int k = 0; k < TAP_NEV; k++) {
                char pat[64];
                snprintf(pat, sizeof pat, " event=%s ", tap_events[k]);
                if (!tp->t[k] && strstr(line, pat))
                    tp->t[k] = t;
            }
            if (strstr(line, " event=received ")) {
                char *b = strstr(line, " batch=");
                long long batch = b ? strtoll(b + 7, NULL, 10) : -1;
                if (batch >= 0 && batch < TAP_BATCHES && !tp->received_wall[batch])
                    tp->received_wall[batch] = wall;
            }
            if (!strstr(line, "level=debug") && !strstr(line, "level=info")) {
                *nl = '\n';
                if (write(tp->saved, line, (size_t)(nl - line + 1)) < 0)
                    break;
            }
            line = nl + 1;
        }
        len -= (size_t)(line - buf);
        memmove(buf, line, len);
        if (len == sizeof buf - 1)
            len = 0; /* an overlong line: dropped */
    }
    return NULL;
}

static void tap_start(struct tap *tp, const char *level)
{
    int p[2];

    memset(tp, 0, sizeof *tp);
    fflush(stderr);
    if ((tp->saved = dup(2)) < 0 || pipe(p) || dup2(p[1], 2) < 0)
        die("stderr tap", strerror(errno));
    close(p[1]);
    tp->rfd = p[0];
    ws_log_setup(level, "logfmt");
    if (pthread_create(&tp->th, NULL, tap_main, tp))
        die("stderr tap", "pthread_create");
}

static void tap_stop(struct tap *tp)
{
    ws_log_setup("warn", "logfmt");
    fflush(stderr);
    dup2(tp->saved, 2); /* closes the pipe's last write end: the tap reads EOF */
    pthread_join(tp->th, NULL);
    close(tp->saved);
    close(tp->rfd);
}

/* ------------------------------------------------------------------------------------------ */
/* latency: windows arriving at an idle engine, measured with Kafka's own timestamps            */

#define LAT_PARTS 8
#define LAT_DATA "lat.data"

static int64_t g_next[LAT_PARTS]; /* next offset of each LAT_DATA partition */

/* Produce per_part records to every LAT_DATA partition; rg: the new ranges. */
static void lat_data(struct ws_kafka_producer *p, int per_part, struct range rg[LAT_PARTS])
{
    for (int i = 0; i < LAT_PARTS; i++) {
        produce_records(p, LAT_DATA, i, per_part);
        rg[i] = (struct range){i, g_next[i], g_next[i] + per_part};
        g_next[i] += per_part;
    }
    flush(p);
}

struct feeder {
    struct bench *B;
    const char *notif_topic, *query;
    int nwin, idle_ms, records;
    int64_t batch;        /* next batch id */
    atomic_ulong windows; /* the engine's attested count, published by the engine's thread */
    atomic_bool done;
    bool failed;
    double *lat; /* produce -> seen attested, monotonic clock (engine stats), per window */
    int64_t *batches;
    /* Spark's producers, kept across runs: a librdkafka producer's first message to a topic it
     * has not produced to yet waits ~1 s for the topic's metadata (see `firstread`) */
    struct ws_kafka_producer *pd, *pn;
};

/* Spark's side: per window its data, the idle wait, then the notification; one at a time. */
static void *feeder_main(void *arg)
{
    struct feeder *f = arg;
    struct ws_kafka_producer *pd = f->pd, *pn = f->pn;
    struct range rg[LAT_PARTS];
    char json[4096];

    for (int i = 0; i < f->nwin && !f->failed; i++) {
        lat_data(pd, f->records / LAT_PARTS, rg);
        if (f->idle_ms)
            sleep_ms(f->idle_ms);
        notification(json, sizeof json, f->query, f->batch, LAT_DATA, rg, LAT_PARTS);
        unsigned long w0 = atomic_load(&f->windows);
        double t0 = now_ms();
        post(pn, f->notif_topic, f->query, json);
        while (atomic_load(&f->windows) == w0) {
            ws_kafka_producer_poll(pn, 1);
            if (now_ms() - t0 > 60000) {
                fprintf(stderr, "bench_slowstore: batch %lld not attested in 60 s\n",
                        (long long)f->batch);
                f->failed = true;
                break;
            }
        }
        f->lat[i] = now_ms() - t0;
        f->batches[i] = f->batch++;
    }
    flush(pn);
    atomic_store(&f->done, true);
    return NULL;
}

/* The engine's thread, as `windowseal run`: ws_engine_step(e, 100) until the feeder is done. */
static void run_feeder(struct ws_engine *e, struct feeder *f)
{
    pthread_t th;
    struct ws_engine_stats st;

    ws_engine_get_stats(e, &st);
    atomic_store(&f->windows, st.windows);
    atomic_store(&f->done, false);
    if (pthread_create(&th, NULL, feeder_main, f))
        die("feeder", "pthread_create");
    while (!atomic_load(&f->done)) {
        if (ws_engine_step(e, 100))
            die("engine", "step failed");
        ws_engine_get_stats(e, &st);
        atomic_store(&f->windows, st.windows);
    }
    pthread_join(th, NULL);
    if (f->failed || st.deadlettered)
        die("latency", "a window was not attested");
}

struct ts_map {
    const char *key;
    int64_t *ts; /* CreateTime by batch id, -1: not seen */
    int n;
    int ts_type_bad;
};

static int64_t parse_int(const void *p, int32_t len, const char *after)
{
    char buf[256];
    size_t n = len < 0 ? 0 : (size_t)len < sizeof buf - 1 ? (size_t)len : sizeof buf - 1;
    memcpy(buf, p, n);
    buf[n] = '\0';
    if (after) {
        char *s = strstr(buf, after);
        return s ? strtoll(s + strlen(after), NULL, 10) : -1;
    }
    return n ? strtoll(buf, NULL, 10) : -1;
}

static void ts_put(struct ts_map *m, const struct ws_record *r, int64_t b)
{
    if (r->key_len != (int32_t)strlen(m->key) || memcmp(r->key, m->key, (size_t)r->key_len))
        return;
    if (b >= 0 && b < m->n && m->ts[b] < 0) {
        m->ts[b] = r->timestamp;
        m->ts_type_bad += r->ts_type != 1; /* 1: CreateTime */
    }
}

static ws_err_t notif_ts_cb(void *o, const struct ws_record *r)
{
    ts_put(o, r, parse_int(r->value, r->value_len, "\"batchId\":"));
    return WS_OK;
}

static ws_err_t att_ts_cb(void *o, const struct ws_record *r)
{
    for (uint32_t i = 0; i < r->header_count; i++)
        if (r->headers[i].name_len == 19 && !memcmp(r->headers[i].name, "windowseal.batch-id", 19))
            ts_put(o, r, parse_int(r->headers[i].value, r->headers[i].value_len, NULL));
    return WS_OK;
}

/* CreateTime of every batch's notification and (first) attestation, by batch id. */
static void read_times(struct bench *B, const char *tag, const char *query, int n, int64_t *nt,
                       int64_t *at)
{
    struct ws_kafka_conf kc = {B->boot, NULL, NULL, 0};
    char errbuf[512], name[128];
    struct ws_kafka_reader *rd = ws_kafka_reader_new(&kc, errbuf, sizeof errbuf);
    struct ts_map mn = {query, nt, n, 0}, ma = {query, at, n, 0};

    if (!rd)
        die("reader", errbuf);
    for (int i = 0; i < n; i++)
        nt[i] = at[i] = -1;
    snprintf(name, sizeof name, "%s.batches", tag);
    if (ws_kafka_read_all(rd, name, notif_ts_cb, &mn, 30000, errbuf, sizeof errbuf))
        die("read notifications", errbuf);
    snprintf(name, sizeof name, "%s.att", tag);
    if (ws_kafka_read_all(rd, name, att_ts_cb, &ma, 30000, errbuf, sizeof errbuf))
        die("read attestations", errbuf);
    if (mn.ts_type_bad || ma.ts_type_bad)
        die("timestamps", "a notification or attestation without CreateTime");
    ws_kafka_reader_destroy(rd);
}

/* A bare group member of its own group on the engine's notifications topic: when it gets each
 * notification (wall clock, as CreateTime), the floor of the engine's delivery. */
struct bare {
    struct bench *B;
    const char *topic, *group;
    pthread_t th;
    atomic_bool stop, got_first;
    double recv_wall[TAP_BATCHES];
};

static void *bare_main(void *arg)
{
    struct bare *bc = arg;
    struct ws_kafka_conf kc = {bc->B->boot, bc->group, NULL, 0};
    char errbuf[512];
    struct ws_kafka_consumer *c = ws_kafka_consumer_new(&kc, bc->topic, errbuf, sizeof errbuf);
    struct ws_kafka_msg m;

    if (!c)
        die("bare consumer", errbuf);
    while (!atomic_load(&bc->stop)) {
        if (ws_kafka_consumer_poll(c, 100, &m, errbuf, sizeof errbuf) != WS_OK)
            continue;
        double w = wall_ms();
        int64_t b = parse_int(m.value, m.value_len, "\"batchId\":");
        if (b >= 0 && b < TAP_BATCHES && !bc->recv_wall[b])
            bc->recv_wall[b] = w;
        atomic_store(&bc->got_first, true);
        ws_kafka_msg_release(&m);
    }
    ws_kafka_consumer_destroy(c);
    return NULL;
}

struct lat_result {
    double p50, p99, max, mono_p50, mono_p99, bare_p50, bare_p99;
    double poll_p50, poll_p99, work_p50, work_p99; /* notification -> received -> attestation */
    int n, nsplit;
};

/* Kafka latencies of f's windows; with the engine's `received` log times, the split. */
static void lat_stats(const char *what, const struct feeder *f, const int64_t *nt,
                      const int64_t *at, const struct tap *tp, const struct bare *bc,
                      struct lat_result *r)
{
    double *v = calloc((size_t)f->nwin, sizeof *v), *m = calloc((size_t)f->nwin, sizeof *m);
    double *bd = calloc((size_t)f->nwin, sizeof *bd);
    int nb = 0;
    double *pl = calloc((size_t)f->nwin, sizeof *pl), *wk = calloc((size_t)f->nwin, sizeof *wk);
    int n = 0, ns = 0;

    for (int i = 0; i < f->nwin; i++) {
        int64_t b = f->batches[i];
        double rw = b < TAP_BATCHES ? tp->received_wall[b] : 0;
        if (nt[b] < 0 || at[b] < 0)
            die("latency", "a window's notification or attestation is not on its topic");
        v[n] = (double)(at[b] - nt[b]);
        m[n] = f->lat[i];
        if (rw) {
            pl[ns] = rw - (double)nt[b];
            wk[ns++] = (double)at[b] - rw;
        }
        if (b < TAP_BATCHES && bc->recv_wall[b])
            bd[nb++] = bc->recv_wall[b] - (double)nt[b];
        if (v[n] > 50)
            printf("  %s: batch %lld took %.0f ms (notification -> received %.1f ms, received -> "
                   "attestation %.1f ms)\n",
                   what, (long long)b, v[n], rw ? rw - (double)nt[b] : -1,
                   rw ? (double)at[b] - rw : -1);
        n++;
    }
    r->nsplit = ns;
    r->bare_p50 = pct(bd, nb, 0.5);
    r->bare_p99 = pct(bd, nb, 0.99);
    if (nb != f->nwin)
        fprintf(stderr, "bench_slowstore: the bare consumer saw %d of %d notifications\n", nb,
                f->nwin);
    free(bd);
    r->poll_p50 = pct(pl, ns, 0.5);
    r->poll_p99 = pct(pl, ns, 0.99);
    r->work_p50 = pct(wk, ns, 0.5);
    r->work_p99 = pct(wk, ns, 0.99);
    free(pl);
    free(wk);
    if (n == 0)
        die("latency", "no window measured");
    r->n = n;
    r->p50 = pct(v, n, 0.5);
    r->p99 = pct(v, n, 0.99);
    r->max = v[n - 1];
    r->mono_p50 = pct(m, n, 0.5);
    r->mono_p99 = pct(m, n, 0.99);
    free(v);
    free(m);
}

struct first_result {
    double new_ms, join_ms, received_ms, attested_ms; /* from before ws_engine_new; 0: not seen */
    double bare_assign_ms, bare_msg_ms;
};

/* One first window after start: a fresh group, one notification already waiting. */
static void first_window(struct bench *B, int run, struct first_result *r)
{
    char tag[32], name[64], bare[64], json[4096], errbuf[512];
    struct ws_kafka_producer *pd = new_producer(B->boot, true), *pn = new_producer(B->boot, false);
    struct range rg[LAT_PARTS];
    struct ws_kafka_msg m;
    struct ws_config *cfg;
    struct ws_engine *e;
    struct tap tp;

    memset(r, 0, sizeof *r);
    snprintf(tag, sizeof tag, "first%d", run);
    snprintf(name, sizeof name, "%s.batches", tag);
    topic(B, name, 1);
    snprintf(bare, sizeof bare, "%s.att", tag);
    topic(B, bare, 1);
    lat_data(pd, 1000 / LAT_PARTS, rg);
    notification(json, sizeof json, "first", 0, LAT_DATA, rg, LAT_PARTS);
    post(pn, name, "first", json);
    flush(pn);

    /* Baseline: a bare group member of its own group on the same topic. */
    snprintf(bare, sizeof bare, "%s.bare", tag);
    struct ws_kafka_conf kc = {B->boot, bare, NULL, 0};
    struct ws_kafka_consumer *c = ws_kafka_consumer_new(&kc, name, errbuf, sizeof errbuf);
    if (!c)
        die("consumer", errbuf);
    uint64_t gen0 = ws_kafka_consumer_generation(c);
    double t0 = now_ms();
    for (;;) {
        ws_err_t err = ws_kafka_consumer_poll(c, 100, &m, errbuf, sizeof errbuf);
        if (!r->bare_assign_ms && ws_kafka_consumer_generation(c) != gen0)
            r->bare_assign_ms = now_ms() - t0;
        if (err == WS_OK) {
            r->bare_msg_ms = now_ms() - t0;
            ws_kafka_msg_release(&m);
            break;
        }
        if (now_ms() - t0 > 60000)
            die("bare consumer", "no message in 60 s");
    }
    ws_kafka_consumer_destroy(c);

    /* The engine, from its creation: its log lines say when it got its assignment (rebalance),
     * polled the notification (received, a debug line) and attested the window. */
    char sinks[256];
    snprintf(sinks, sizeof sinks, "[{\"type\":\"file\",\"path\":\"%s/%s.files\"}]", B->dir, tag);
    tap_start(&tp, "debug");
    t0 = now_ms();
    e = engine(B, tag, sinks, g_props, &cfg);
    r->new_ms = now_ms() - t0;
    if (!step_until_run(e, 1, 60))
        die("first window", "not attested in 60 s");
    r->attested_ms = now_ms() - t0;
    tap_stop(&tp);
    r->join_ms = tp.t[0] ? tp.t[0] - t0 : 0;
    r->received_ms = tp.t[1] ? tp.t[1] - t0 : 0;
    ws_engine_destroy(e);
    ws_config_free(cfg);
    ws_kafka_producer_destroy(pn);
    ws_kafka_producer_destroy(pd);
}

static double median_of(double *v, int n)
{
    return pct(v, n, 0.5);
}

static int cmd_latency(bool quick)
{
    int nwin = quick ? 30 : 100, nfirst = quick ? 1 : 3;
    char sinks[256];
    struct ws_config *cfg;
    struct ws_engine *e;
    struct bench B;
    struct feeder f[3];
    struct lat_result idle, busy;
    struct first_result fr[3];

    bench_open(&B);
    ws_log_setup("warn", "logfmt");
    topic(&B, LAT_DATA, LAT_PARTS);
    topic(&B, "lat.batches", 1);
    topic(&B, "lat.att", 1);
    snprintf(sinks, sizeof sinks, "[{\"type\":\"file\",\"path\":\"%s/lat.files\"}]", B.dir);
    static struct tap tp;
    static struct bare bc;
    struct ws_kafka_producer *pd = new_producer(B.boot, true), *pn = new_producer(B.boot, false);
    bc = (struct bare){.B = &B, .topic = "lat.batches", .group = "lat.bare"};
    if (pthread_create(&bc.th, NULL, bare_main, &bc))
        die("bare consumer", "pthread_create");
    tap_start(&tp, "debug"); /* the engine's `received` lines: when it polled each notification */
    e = engine(&B, "lat", sinks, g_props, &cfg);
    /* f[0] warm-up (the group join, a first read of every partition), f[1] idle, f[2] busy */
    for (int i = 0; i < 3; i++) {
        f[i] = (struct feeder){.B = &B, .notif_topic = "lat.batches", .query = "bench"};
        f[i].nwin = i ? nwin : 1;
        f[i].records = i ? 1000 : LAT_PARTS;
        f[i].idle_ms = i == 1 ? 200 : 0;
        f[i].batch = i ? f[i - 1].batch : 0;
        f[i].lat = calloc((size_t)f[i].nwin, sizeof *f[i].lat);
        f[i].batches = calloc((size_t)f[i].nwin, sizeof *f[i].batches);
        f[i].pd = pd;
        f[i].pn = pn;
        run_feeder(e, &f[i]);
        for (double t0 = now_ms(); i == 0 && !atomic_load(&bc.got_first);) {
            if (now_ms() - t0 > 30000)
                die("bare consumer", "did not join in 30 s");
            sleep_ms(10);
        }
    }
    atomic_store(&bc.stop, true);
    pthread_join(bc.th, NULL);
    ws_kafka_producer_destroy(pn);
    ws_kafka_producer_destroy(pd);
    ws_engine_destroy(e);
    ws_config_free(cfg);
    tap_stop(&tp);
    {
        int n = (int)f[2].batch;
        int64_t *nt = calloc((size_t)n, sizeof *nt), *at = calloc((size_t)n, sizeof *at);
        read_times(&B, "lat", "bench", n, nt, at);
        lat_stats("idle", &f[1], nt, at, &tp, &bc, &idle);
        lat_stats("back to back", &f[2], nt, at, &tp, &bc, &busy);
        free(nt);
        free(at);
    }
    for (int i = 0; i < nfirst; i++)
        first_window(&B, i, &fr[i]);
    bench_close(&B);

    printf("window latency from Kafka's timestamps: attestation CreateTime (attestations topic) - "
           "notification CreateTime,\n1000-record windows over %d partitions, file sink + "
           "attestations topic, stepped as `windowseal run` (100 ms polls), kafka.properties: "
           "%s\n\n",
           LAT_PARTS, g_props ? g_props : "none (engine defaults)");
    printf("%-32s %8s %8s %8s %8s   %s\n", "arrival", "windows", "p50 ms", "p99 ms", "max ms",
           "produced -> attested + head + commit (monotonic) p50 / p99");
    printf("%-32s %8d %8.0f %8.0f %8.0f   %.2f / %.2f ms\n", "idle engine (200 ms between)", idle.n,
           idle.p50, idle.p99, idle.max, idle.mono_p50, idle.mono_p99);
    printf("%-32s %8d %8.0f %8.0f %8.0f   %.2f / %.2f ms\n", "back to back (baseline)", busy.n,
           busy.p50, busy.p99, busy.max, busy.mono_p50, busy.mono_p99);
    printf("(CreateTime has millisecond resolution)\nsplit at the engine's `received` log line "
           "(debug), p50 / p99 ms:\n");
    printf("  %-30s notification -> received %6.1f / %6.1f   received -> attestation %6.1f / "
           "%6.1f  (%d windows)\n",
           "idle engine", idle.poll_p50, idle.poll_p99, idle.work_p50, idle.work_p99, idle.nsplit);
    printf("  %-30s notification -> received %6.1f / %6.1f   received -> attestation %6.1f / "
           "%6.1f  (%d windows)\n",
           "back to back", busy.poll_p50, busy.poll_p99, busy.work_p50, busy.work_p99, busy.nsplit);
    if (!idle.nsplit || !busy.nsplit)
        printf("  (no `received` debug log lines from the engine: the split is not available)\n");
    printf("a bare ws_kafka_consumer (own group, same topic, consumer defaults) got the same "
           "notifications after\n  idle: p50 %.1f ms, p99 %.1f ms; back to back: p50 %.1f ms, "
           "p99 %.1f ms\n\n",
           idle.bare_p50, idle.bare_p99, busy.bare_p50, busy.bare_p99);

    printf("first window after start: a fresh engine (new group), one 1000-record window "
           "waiting;\nms from just before ws_engine_new; engine events from its log lines\n\n");
    printf("%4s %11s %12s %10s %10s %9s | %18s %14s\n", "run", "engine_new", "assignment", "polled",
           "attested", "- join", "bare: assignment", "first message");
    double v[6][3];
    for (int i = 0; i < nfirst; i++) {
        printf("%4d %11.1f %12.1f %10.1f %10.1f %9.1f | %18.1f %14.1f\n", i, fr[i].new_ms,
               fr[i].join_ms, fr[i].received_ms, fr[i].attested_ms,
               fr[i].join_ms ? fr[i].attested_ms - fr[i].join_ms : 0, fr[i].bare_assign_ms,
               fr[i].bare_msg_ms);
        v[0][i] = fr[i].attested_ms;
        v[1][i] = fr[i].join_ms ? fr[i].join_ms : fr[i].bare_msg_ms; /* no log line: bare */
        v[2][i] = fr[i].attested_ms - v[1][i];
        v[3][i] = fr[i].bare_assign_ms;
        v[4][i] = fr[i].bare_msg_ms;
        v[5][i] = fr[i].received_ms && fr[i].join_ms ? fr[i].received_ms - fr[i].join_ms : 0;
    }
    double att = median_of(v[0], nfirst), join = median_of(v[1], nfirst),
           beyond = median_of(v[2], nfirst), bas = median_of(v[3], nfirst),
           bmsg = median_of(v[4], nfirst);
    printf("medians: attested %.2f s, join %.2f s%s, beyond the join %.3f s "
           "(assignment -> notification polled %.3f s)\n",
           att / 1e3, join / 1e3,
           fr[0].join_ms ? " (the engine's rebalance line)"
                         : " (no rebalance line: the bare consumer's first message)",
           beyond / 1e3, median_of(v[5], nfirst) / 1e3);

    printf("TABLE\twindow latency at an idle engine, 1000-record windows, Kafka CreateTime "
           "(%d windows, 200 ms apart)\tp50 %.0f ms, p99 %.0f ms (back to back: p50 %.0f, p99 "
           "%.0f)\tbare consumer gets the notification: p50 %.1f ms, p99 %.1f ms\t%.2fx\t"
           "p50 <= 5 ms, p99 <= 20 ms\t%s\n",
           idle.n, idle.p50, idle.p99, busy.p50, busy.p99, idle.bare_p50, idle.bare_p99,
           idle.bare_p50 > 0 ? idle.p50 / idle.bare_p50 : 0,
           verdict(idle.p50 <= 5 && idle.p99 <= 20));
    printf("TABLE\tfirst window after start, 1000 records waiting (median of %d)\t%.2f s to "
           "attested, %.2f s beyond the group join\tjoin %.2f s (bare consumer: assigned %.2f s, "
           "first message %.2f s)\t%.2f\t<= 0.5 s beyond the join\t%s\n",
           nfirst, att / 1e3, beyond / 1e3, join / 1e3, bas / 1e3, bmsg / 1e3,
           join > 0 ? att / join : 0, verdict(beyond <= 500));
    fflush(stdout);
    for (int i = 0; i < 3; i++) {
        free(f[i].lat);
        free(f[i].batches);
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* firstread: what a first read of a partition costs                                            */

static ws_err_t count_cb(void *o, const struct ws_record *r)
{
    (void)r;
    (*(uint64_t *)o)++;
    return WS_OK;
}

static double t_read(struct ws_kafka_reader *rd, const char *tp, int a, int b, int64_t from,
                     int64_t until)
{
    struct ws_kafka_range rg[16];
    char errbuf[512];
    uint64_t n = 0;
    double t0 = now_ms();

    for (int i = a; i < b; i++)
        rg[i - a] = (struct ws_kafka_range){tp, i, from, until};
    if (ws_kafka_read_ranges(rd, rg, (size_t)(b - a), 30000, count_cb, &n, errbuf, sizeof errbuf))
        die("read", errbuf);
    if (n != (uint64_t)((until - from) * (b - a)))
        die("read", "wrong record count");
    return now_ms() - t0;
}

static double t_wmarks(struct ws_kafka_reader *rd, const char *tp, int part)
{
    char errbuf[512];
    int64_t lo, hi;
    double t0 = now_ms();
    if (ws_kafka_reader_watermarks(rd, tp, part, &lo, &hi, 30000, errbuf, sizeof errbuf))
        die("watermarks", errbuf);
    return now_ms() - t0;
}

static double t_read_all(struct ws_kafka_reader *rd, const char *tp)
{
    char errbuf[512];
    uint64_t n = 0;
    double t0 = now_ms();
    if (ws_kafka_read_all(rd, tp, count_cb, &n, 30000, errbuf, sizeof errbuf))
        die("read_all", errbuf);
    return now_ms() - t0;
}

static double t_produce(struct ws_kafka_producer *p, const char *tp, int part)
{
    char errbuf[512];
    double t0 = now_ms();
    if (ws_kafka_produce_sync(p, tp, part, "k", 1, "v", 1, NULL, 0, 30000, errbuf, sizeof errbuf))
        die("produce", errbuf);
    return now_ms() - t0;
}

#define FR_REPS 3
#define FR_NROWS 20

static int cmd_firstread(void)
{
    static const char *const rows[FR_NROWS] = {
        "reader: first request of a new reader (watermarks p7)",
        "reader: watermarks p7 again",
        "reader: watermarks p6, a partition not asked before",
        "reader: read p0 [0,100), first read of p0",
        "reader: read p0 again",
        "reader: read p1, first read of p1",
        "reader: read p1 again",
        "reader: read p2..p5 at once, first reads",
        "reader: read p2..p5 again",
        "reader: read_all of a 4-partition topic, first",
        "reader: read_all of it again",
        "producer: first produce_sync of a new producer",
        "producer: next produce_sync, same topic",
        "producer: first produce_sync to a second topic",
        "producer: next produce_sync to it",
        "producer: first to partition 1 of a known topic",
        "producer: next to partition 1",
        "producer: first to a topic that does not exist yet",
        "producer: next to it",
        "",
    };
    double t[FR_NROWS][FR_REPS];
    struct bench B;
    char name[64];

    bench_open(&B);
    ws_log_setup("warn", "logfmt");
    {
        struct ws_kafka_producer *p = new_producer(B.boot, true);
        for (int r = 0; r < FR_REPS; r++) {
            snprintf(name, sizeof name, "fr%d.data", r);
            topic(&B, name, 8);
            for (int i = 0; i < 8; i++)
                produce_records(p, name, i, 100);
            snprintf(name, sizeof name, "fr%d.heads", r);
            topic(&B, name, 4);
            for (int i = 0; i < 4; i++)
                produce_records(p, name, i, 10);
            snprintf(name, sizeof name, "fr%d.p1", r);
            topic(&B, name, 1);
            snprintf(name, sizeof name, "fr%d.p2", r);
            topic(&B, name, 4);
        }
        flush(p);
        ws_kafka_producer_destroy(p);
    }
    for (int r = 0; r < FR_REPS; r++) { /* fresh clients and topics each repetition */
        struct ws_kafka_conf kc = {B.boot, NULL, NULL, 0};
        char errbuf[512], d[64], h[64], p1[64], p2[64];
        struct ws_kafka_reader *rd = ws_kafka_reader_new(&kc, errbuf, sizeof errbuf);
        int k = 0;
        if (!rd)
            die("reader", errbuf);
        snprintf(d, sizeof d, "fr%d.data", r);
        snprintf(h, sizeof h, "fr%d.heads", r);
        snprintf(p1, sizeof p1, "fr%d.p1", r);
        snprintf(p2, sizeof p2, "fr%d.p2", r);
        t[k++][r] = t_wmarks(rd, d, 7);
        t[k++][r] = t_wmarks(rd, d, 7);
        t[k++][r] = t_wmarks(rd, d, 6);
        t[k++][r] = t_read(rd, d, 0, 1, 0, 100);
        t[k++][r] = t_read(rd, d, 0, 1, 0, 100);
        t[k++][r] = t_read(rd, d, 1, 2, 0, 100);
        t[k++][r] = t_read(rd, d, 1, 2, 0, 100);
        t[k++][r] = t_read(rd, d, 2, 6, 0, 100);
        t[k++][r] = t_read(rd, d, 2, 6, 0, 100);
        t[k++][r] = t_read_all(rd, h);
        t[k++][r] = t_read_all(rd, h);
        ws_kafka_reader_destroy(rd);
        struct ws_kafka_producer *p = new_producer(B.boot, false);
        t[k++][r] = t_produce(p, p1, -1);
        t[k++][r] = t_produce(p, p1, -1);
        t[k++][r] = t_produce(p, p2, 0);
        t[k++][r] = t_produce(p, p2, 0);
        t[k++][r] = t_produce(p, p2, 1);
        t[k++][r] = t_produce(p, p2, 1);
        snprintf(p2, sizeof p2, "fr%d.auto", r);
        t[k++][r] = t_produce(p, p2, -1);
        t[k++][r] = t_produce(p, p2, -1);
        ws_kafka_producer_destroy(p);
    }
    printf("first reads: fresh clients, each repetition on its own topics (8 partitions x 100 "
           "records of 100 B)\n\n%-56s",
           "ms");
    for (int r = 0; r < FR_REPS; r++)
        printf(" %8s%d", "rep ", r);
    printf(" %9s\n", "median");
    double med[FR_NROWS];
    for (int k = 0; k < FR_NROWS && rows[k][0]; k++) {
        printf("%-56s", rows[k]);
        for (int r = 0; r < FR_REPS; r++)
            printf(" %9.1f", t[k][r]);
        med[k] = median_of(t[k], FR_REPS);
        printf(" %9.1f\n", med[k]);
    }

    /*
     * The engine's windows moving onto partitions its reader never read, and new queries (their
     * heads and attestations land on other partitions): pairs of windows, the first on
     * something new, the second the same again. The notifications consumer polls the mock
     * broker every 1 ms here (fetch.wait.max.ms, as bench_latency does), so that its 0-10 ms
     * wait does not drown a difference of a few ms.
     */
    enum { FR_PAIRS = 7, FR_QPAIRS = 4 };
    char sinks[256], json[4096], q[16];
    struct ws_config *cfg;
    struct ws_engine *e;
    struct ws_kafka_producer *pd = new_producer(B.boot, true), *pn = new_producer(B.boot, false);
    int64_t next[FR_PAIRS + 1] = {0}, qbatch[FR_QPAIRS + 1] = {0};
    double lat[2][FR_PAIRS + FR_QPAIRS];
    struct range rg[1];

    topic(&B, "freng.data", FR_PAIRS + 1);
    topic(&B, "freng.batches", 1);
    topic(&B, "freng.att", 4);
    snprintf(sinks, sizeof sinks, "[{\"type\":\"file\",\"path\":\"%s/freng.files\"}]", B.dir);
    e = engine(&B, "freng", sinks, "{\"fetch.wait.max.ms\":\"1\"}", &cfg);
    /* step -1: warm-up (the group join, every topic's first produce) on p0 for query q0;
     * steps 0..FR_PAIRS-1: q0 on partition k+1, twice; then new queries q1.. on p0, twice */
    for (int k = -1; k < FR_PAIRS + FR_QPAIRS; k++)
        for (int rep = 0; rep < (k < 0 ? 1 : 2); rep++) {
            int part = k >= 0 && k < FR_PAIRS ? k + 1 : 0,
                qi = k >= FR_PAIRS ? k - FR_PAIRS + 1 : 0;
            struct ws_engine_stats st;
            produce_records(pd, "freng.data", part, 10);
            rg[0] = (struct range){part, next[part], next[part] + 10};
            next[part] += 10;
            flush(pd);
            snprintf(q, sizeof q, "q%d", qi);
            notification(json, sizeof json, q, qbatch[qi]++, "freng.data", rg, 1);
            ws_engine_get_stats(e, &st);
            double t0 = now_ms();
            post(pn, "freng.batches", q, json);
            if (!step_until(e, pn, st.windows + 1, 60))
                die("firstread", "window not attested");
            if (k >= 0)
                lat[rep][k] = now_ms() - t0;
        }
    ws_engine_destroy(e);
    ws_config_free(cfg);
    ws_kafka_producer_destroy(pn);
    ws_kafka_producer_destroy(pd);
    bench_close(&B);
    printf("\nengine windows of 10 records (file sink + topic; notifications polled every 1 ms), "
           "produced -> attested, ms:\n  %-44s",
           "");
    for (int k = 0; k < FR_PAIRS + FR_QPAIRS; k++)
        printf(" %5s%d", k < FR_PAIRS ? "p" : "q", k < FR_PAIRS ? k + 1 : k - FR_PAIRS + 1);
    for (int rep = 0; rep < 2; rep++) {
        printf("\n  %-44s", rep ? "the same again" : "first window on this partition / query");
        for (int k = 0; k < FR_PAIRS + FR_QPAIRS; k++)
            printf(" %6.1f", lat[rep][k]);
    }
    double pf = median_of(lat[0], FR_PAIRS), pa = median_of(lat[1], FR_PAIRS);
    double qf = median_of(lat[0] + FR_PAIRS, FR_QPAIRS),
           qa = median_of(lat[1] + FR_PAIRS, FR_QPAIRS);
    printf("\n  medians: new partition %.1f ms, again %.1f ms; new query %.1f ms, again %.1f ms\n",
           pf, pa, qf, qa);
    printf("TABLE\tfirst read of a partition by a fresh reader (100 records, median of %d)\t%.1f ms"
           "\t%.1f ms (the same read again)\t%.2f\t-\t-\n",
           FR_REPS, med[3], med[4], med[4] > 0 ? med[3] / med[4] : 0);
    printf("TABLE\tengine window on a partition its reader never read (median of %d)\t%.1f ms\t"
           "%.1f ms (next window on it)\t%.2f\t-\t-\n",
           FR_PAIRS, pf, pa, pa > 0 ? pf / pa : 0);
    printf("TABLE\tfirst produce_sync to a topic new to a running producer (median of %d)\t%.1f ms"
           "\t%.1f ms (the next one)\t%.0f\t-\t-\n",
           FR_REPS, med[13], med[14], med[14] > 0 ? med[13] / med[14] : 0);
    fflush(stdout);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    static char self[PATH_MAX];
    const char *mode = argc > 1 ? argv[1] : "";
    bool quick = false;
    int rc = 0;

    signal(SIGPIPE, SIG_IGN);
    snprintf(self, sizeof self, "%s", argv[0]);
    g_self_dir = dirname(self);
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--quick"))
            quick = true;
        else if (!strcmp(argv[i], "--s3rver") && i + 1 < argc)
            g_s3rver = argv[++i];
        else if (!strcmp(argv[i], "--delay-ms") && i + 1 < argc)
            g_delay_ms = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--props") && i + 1 < argc)
            g_props = argv[++i];
        else {
            fprintf(stderr, "bench_slowstore: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (!strcmp(mode, "store"))
        return cmd_store(quick);
    if (!strcmp(mode, "latency"))
        return cmd_latency(quick);
    if (!strcmp(mode, "firstread"))
        return cmd_firstread();
    if (!strcmp(mode, "all")) {
        int r = cmd_store(quick);
        rc = r == 77 ? 0 : r;
        rc |= cmd_latency(quick);
        rc |= cmd_firstread();
        return rc;
    }
    fprintf(stderr, "usage: bench_slowstore store|latency|firstread|all [--quick] "
                    "[--s3rver PATH] [--delay-ms N]\n");
    return 2;
}
