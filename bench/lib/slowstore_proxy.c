/*
 * slowstore_proxy.c — the delay proxy of `bench_slowstore store` (benchlib.h): a slow object
 * store made of a fast one, s3rver on loopback behind a proxy that adds N ms to every request.
 *
 * One thread, 127.0.0.1 only, poll(2) over every connection; each chunk read from a client is
 * forwarded to s3rver N ms after it arrived (a delay line: the chunks of one request arriving
 * together leave together, so each request-response exchange takes N ms more, on every
 * connection independently, keep-alive or not); responses go back at once. It counts exchanges
 * (a client chunk after a response, or the first on a connection) and connections, and stops
 * when the bench stops it. WS_BENCH_PROXY_TRACE=1 prints each exchange's first line (a PUT's body
 * after curl's `Expect: 100-continue` is an exchange of its own).
 *
 * At most PROXY_MAX_CONNS connections at once (a client beyond them, or one whose upstream
 * connect fails, is closed at once); reading from a side pauses while PROXY_QUEUE_CAP bytes wait
 * to go the other way. The counters are atomics, read
 * by the bench's thread while the proxy runs.
 */
#include "benchlib.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

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

struct bench_proxy {
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
        c->due = bench_now_ms() + delay;
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
    double t = bench_now_ms();

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

static void proxy_accept(struct bench_proxy *px)
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
    struct bench_proxy *px = arg;
    struct pollfd fds[2 + 2 * PROXY_MAX_CONNS];

    while (!atomic_load(&px->stop)) {
        double t = bench_now_ms(), next_due = t + 100; /* wake at least every 100 ms to see stop */
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

struct bench_proxy *bench_proxy_start(int upstream_port, int delay_ms)
{
    struct bench_proxy *px = calloc(1, sizeof *px);
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t alen = sizeof a;
    int one = 1;

    if (!px)
        bench_die("proxy", "out of memory");
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK); /* 127.0.0.1 only */
    px->upstream_port = upstream_port;
    px->delay_ms = delay_ms;
    px->trace = getenv("WS_BENCH_PROXY_TRACE") != NULL;
    if ((px->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0 ||
        setsockopt(px->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
        bind(px->lfd, (struct sockaddr *)&a, sizeof a) || listen(px->lfd, 128) ||
        getsockname(px->lfd, (struct sockaddr *)&a, &alen) || pipe(px->wake))
        bench_die("proxy", strerror(errno));
    px->port = ntohs(a.sin_port);
    if (pthread_create(&px->th, NULL, proxy_main, px))
        bench_die("proxy", "pthread_create");
    return px;
}

void bench_proxy_stop(struct bench_proxy *px)
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

int bench_proxy_port(const struct bench_proxy *px)
{
    return px->port;
}

unsigned long bench_proxy_exchanges(struct bench_proxy *px)
{
    return atomic_load(&px->exchanges);
}

unsigned long bench_proxy_connections(struct bench_proxy *px)
{
    return atomic_load(&px->connections);
}
