/*
 * test_lineage_emitter.c — the lineage emitter's promises (lineage/emitter.c L1-L4), against a
 * small HTTP server on loopback in a thread of this program: a backend answering 500 twice then
 * 201 gets START before COMPLETE, the retries carry the same bytes, and the bearer token; a
 * backend that refuses connections costs retries then drops, every event counted once; a full
 * queue drops at submit without waiting; a 400 is a rejection, not retried.
 */
#include "lineage/lineage.h"
#include "check.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static char errbuf[512];
static atomic_uint counts[WS_LINEAGE_RESULTS];

static void on_count(void *opaque, enum ws_lineage_result r, unsigned n)
{
    (void)opaque;
    atomic_fetch_add(&counts[r], n);
}

static void reset_counts(void)
{
    for (int i = 0; i < WS_LINEAGE_RESULTS; i++)
        atomic_store(&counts[i], 0);
}

/* ------------------------------------------------------------------------------------------ */
/* A loopback backend: answers `fail` requests with `fail_status`, then 201; keeps every body.  */

struct backend {
    int fd, port;
    int fail, fail_status;
    pthread_t t;
    char bodies[16][4096];
    char auth[16][128];
    int n;
};

static void *serve(void *arg)
{
    struct backend *b = arg;
    int c;

    while ((c = accept(b->fd, NULL, NULL)) >= 0) {
        char buf[16384];
        size_t got = 0;
        for (;;) { /* keep-alive: requests one after the other on this connection */
            char *end, *cl, *au;
            size_t need;
            ssize_t r;
            while (!(buf[got] = '\0', end = strstr(buf, "\r\n\r\n"))) {
                if ((r = read(c, buf + got, sizeof buf - 1 - got)) <= 0)
                    goto next;
                got += (size_t)r;
            }
            cl = strcasestr(buf, "Content-Length:");
            need = (size_t)(end + 4 - buf) + (cl ? strtoul(cl + 15, NULL, 10) : 0);
            while (got < need && (r = read(c, buf + got, sizeof buf - 1 - got)) > 0)
                got += (size_t)r;
            if (b->n < 16) {
                snprintf(b->bodies[b->n], sizeof b->bodies[0], "%.*s",
                         (int)(need - (size_t)(end + 4 - buf)), end + 4);
                au = strcasestr(buf, "Authorization:");
                snprintf(b->auth[b->n], sizeof b->auth[0], "%.*s", au ? (int)strcspn(au, "\r") : 0,
                         au ? au : "");
            }
            b->n++;
            {
                int status = b->n <= b->fail ? b->fail_status : 201;
                char resp[128];
                int len = snprintf(resp, sizeof resp,
                                   "HTTP/1.1 %d X\r\nContent-Length: 2\r\n\r\n{}", status);
                if (write(c, resp, (size_t)len) != len)
                    goto next;
            }
            memmove(buf, buf + need, got - need);
            got -= need;
        }
    next:
        close(c);
    }
    return NULL;
}

static void backend_start(struct backend *b, int fail, int status)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;

    memset(b, 0, sizeof *b);
    b->fail = fail;
    b->fail_status = status;
    b->fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(bind(b->fd, (struct sockaddr *)&a, sizeof a) == 0 && listen(b->fd, 8) == 0);
    getsockname(b->fd, (struct sockaddr *)&a, &al);
    b->port = ntohs(a.sin_port);
    pthread_create(&b->t, NULL, serve, b);
}

static void backend_stop(struct backend *b)
{
    shutdown(b->fd, SHUT_RDWR);
    close(b->fd);
    pthread_join(b->t, NULL);
}

/* A port nothing listens on: bound, then closed. */
static int dead_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;

    CHECK(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    getsockname(fd, (struct sockaddr *)&a, &al);
    port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* ------------------------------------------------------------------------------------------ */

/* A minimal envelope of a statement with what the builder reads (unsigned: it does not check). */
static char *envelope(int batch, size_t *len)
{
    char stmt[2048], *b64, *env;
    size_t cap;

    snprintf(stmt, sizeof stmt,
             "{\"_type\":\"https://in-toto.io/Statement/v1\",\"predicateType\":\"%s\","
             "\"subject\":[{\"name\":\"stream:q/%d\",\"digest\":{\"sha256\":\"%064d\"}}],"
             "\"predicate\":{\"stream\":{\"id\":\"q\"},\"window\":{\"id\":\"q/%d\",\"batchId\":%d,"
             "\"observedAt\":\"2026-01-01T00:00:00.000Z\",\"sources\":[{\"topic\":\"t\"}]},"
             "\"integrity\":{\"merkleTree\":{\"root\":\"%064d\"},\"chain\":{\"chainLength\":%d,"
             "\"logRoot\":\"%064d\"}},\"collector\":{\"keyid\":\"%064d\"},"
             "\"verification\":{\"evidence\":{\"name\":\"q/%020d.evidence.lz4\"}}}}",
             WS_PREDICATE_TYPE, batch, 1, batch, batch, 2, batch + 1, 3, 4, batch);
    cap = sodium_base64_ENCODED_LEN(strlen(stmt), sodium_base64_VARIANT_ORIGINAL);
    b64 = malloc(cap);
    sodium_bin2base64(b64, cap, (const unsigned char *)stmt, strlen(stmt),
                      sodium_base64_VARIANT_ORIGINAL);
    env = malloc(cap + 128);
    *len = (size_t)snprintf(env, cap + 128,
                            "{\"payload\":\"%s\",\"payloadType\":\"%s\",\"signatures\":[]}", b64,
                            WS_PAYLOAD_TYPE);
    free(b64);
    return env;
}

static struct ws_lineage_emitter_conf conf_for(int port, char *url, size_t cap)
{
    snprintf(url, cap, "http://127.0.0.1:%d/", port);
    return (struct ws_lineage_emitter_conf){
        .events = {"ns", "kafka://k:9092"},
        .url = url,
        .endpoint = "/api/v1/lineage",
        .retry_base_ms = 5,
        .retry_max_ms = 20,
        .max_attempts = 4,
        .max_windows = 16,
        .max_bytes = 1 << 20,
        .http_timeout_ms = 2000,
        .count = on_count,
    };
}

static void submit(struct ws_lineage_emitter *em, int batch)
{
    size_t len;
    char *env = envelope(batch, &len);
    ws_lineage_emitter_submit(em, env, len);
    free(env);
}

/* 500 twice, then 201: delivered in order, retried with the same bytes, token sent. */
static void test_retry_same_bytes(void)
{
    struct ws_lineage_emitter_conf c;
    struct ws_lineage_emitter *em = NULL;
    struct backend b;
    char url[64];

    reset_counts();
    backend_start(&b, 2, 500);
    c = conf_for(b.port, url, sizeof url);
    c.token = "s3cret";
    CHECK_OK(ws_lineage_emitter_new(&c, &em, errbuf, sizeof errbuf));
    submit(em, 1);
    submit(em, 2);
    ws_lineage_emitter_stop(em, 5000); /* the grace lets the queue drain */
    ws_lineage_emitter_destroy(em);
    backend_stop(&b);
    CHECK(atomic_load(&counts[WS_LINEAGE_DELIVERED]) == 4);
    CHECK(atomic_load(&counts[WS_LINEAGE_RETRIED]) == 2);
    CHECK(atomic_load(&counts[WS_LINEAGE_DROPPED]) == 0);
    CHECK(b.n == 6);
    /* L3: the two refused attempts and the accepted one are the same START */
    CHECK(strcmp(b.bodies[0], b.bodies[1]) == 0 && strcmp(b.bodies[1], b.bodies[2]) == 0);
    CHECK(strstr(b.bodies[2], "\"eventType\":\"START\"") && strstr(b.bodies[2], "q.attest"));
    /* L4: each window's START, then its COMPLETE; windows in order */
    CHECK(strstr(b.bodies[3], "\"eventType\":\"COMPLETE\"") && strstr(b.bodies[3], "\"q/1\""));
    CHECK(strstr(b.bodies[4], "\"eventType\":\"START\"") && strstr(b.bodies[5], "\"q/2\""));
    for (int i = 0; i < 6; i++)
        CHECK(strcmp(b.auth[i], "Authorization: Bearer s3cret") == 0);
}

/* Nobody listening: every attempt fails, each event retried max_attempts-1 times then dropped. */
static void test_backend_down(void)
{
    struct ws_lineage_emitter_conf c;
    struct ws_lineage_emitter *em = NULL;
    char url[64];
    int64_t t0;

    reset_counts();
    c = conf_for(dead_port(), url, sizeof url);
    CHECK_OK(ws_lineage_emitter_new(&c, &em, errbuf, sizeof errbuf));
    t0 = ws_clock_ms();
    for (int i = 0; i < 3; i++)
        submit(em, i);
    CHECK(ws_clock_ms() - t0 < 100); /* submit never waits for the backend */
    ws_lineage_emitter_stop(em, 10000);
    ws_lineage_emitter_destroy(em);
    CHECK(atomic_load(&counts[WS_LINEAGE_DELIVERED]) == 0);
    CHECK(atomic_load(&counts[WS_LINEAGE_DROPPED]) == 6);
    CHECK(atomic_load(&counts[WS_LINEAGE_RETRIED]) == 6 * 3);
}

/* A full queue drops at submit; a stop without grace drops what is left; all counted (L1). */
static void test_queue_bound(void)
{
    struct ws_lineage_emitter_conf c;
    struct ws_lineage_emitter *em = NULL;
    char url[64];

    reset_counts();
    c = conf_for(dead_port(), url, sizeof url);
    c.max_windows = 2;
    c.retry_base_ms = c.retry_max_ms = 60000; /* the head window waits a minute after its try */
    CHECK_OK(ws_lineage_emitter_new(&c, &em, errbuf, sizeof errbuf));
    for (int i = 0; i < 5; i++)
        submit(em, i);
    CHECK(atomic_load(&counts[WS_LINEAGE_DROPPED]) == 6); /* windows 2, 3, 4 */
    ws_lineage_emitter_destroy(em);                       /* no grace */
    CHECK(atomic_load(&counts[WS_LINEAGE_DROPPED]) == 10);
    CHECK(atomic_load(&counts[WS_LINEAGE_DELIVERED]) == 0);
}

/* A 400 is the backend's refusal: counted rejected, never retried; the next event goes on. */
static void test_rejected(void)
{
    struct ws_lineage_emitter_conf c;
    struct ws_lineage_emitter *em = NULL;
    struct backend b;
    char url[64];

    reset_counts();
    backend_start(&b, 1, 400);
    c = conf_for(b.port, url, sizeof url);
    CHECK_OK(ws_lineage_emitter_new(&c, &em, errbuf, sizeof errbuf));
    submit(em, 7);
    ws_lineage_emitter_stop(em, 5000);
    ws_lineage_emitter_destroy(em);
    backend_stop(&b);
    CHECK(atomic_load(&counts[WS_LINEAGE_REJECTED]) == 1);
    CHECK(atomic_load(&counts[WS_LINEAGE_RETRIED]) == 0);
    CHECK(atomic_load(&counts[WS_LINEAGE_DELIVERED]) == 1);
    CHECK(b.n == 2);
}

static void test_config(void)
{
    struct ws_lineage_emitter_conf c;
    struct ws_lineage_emitter *em = NULL;
    char url[64];

    c = conf_for(1, url, sizeof url);
    c.kafka_topic = "lineage"; /* both transports */
    CHECK(ws_lineage_emitter_new(&c, &em, errbuf, sizeof errbuf) == WS_ERR_CONFIG && !em);
    c.url = NULL; /* Kafka without a producer */
    CHECK(ws_lineage_emitter_new(&c, &em, errbuf, sizeof errbuf) == WS_ERR_CONFIG && !em);
}

int main(void)
{
    test_retry_same_bytes();
    test_backend_down();
    test_queue_bound();
    test_rejected();
    test_config();
    return check_report("test_lineage_emitter");
}
