/*
 * test_sinks_s3.c — the s3 sink against a small S3 imitation written here: a loopback HTTP/1.1
 * server in a thread, on a free port, with an object map, a request log and scripted faults.
 *
 * Covered: the request sequence of a publish (both existence GETs, evidence PUT strictly before
 * the envelope PUT, If-None-Match: *, x-amz-content-sha256 equal to a SHA-256 computed here with
 * OpenSSL, SigV4 credential scope, session token), write-once (identical bytes: no PUT; other
 * bytes: WS_ERR_EXISTS_DIFFERENT and nothing written; 412 answered by a GET and compare;
 * conditional_writes: no GETs, the 412 path does the check),
 * the mutable `put` (checkpoints), the cause of each failure, with its class (500 twice then
 * 200 and 503 SlowDown: WS_ERR_SINK_RETRY; 400 RequestTimeout and a response slower than
 * timeout_ms: WS_ERR_TIMEOUT; connection refused: WS_ERR_IO; 403 AccessDenied with the XML code
 * in errbuf: WS_ERR_PERMISSION; 404 NoSuchBucket: WS_ERR_SINK_PERMANENT), `get`,
 * virtual-hosted addressing, and SigV4: captured requests are re-signed by botocore
 * (tests/it/s3_sigv4_check.py) and must carry the same Authorization. Sinks are made the way
 * the engine makes them: a configuration loaded against ws_sink_types(), then ws_sink_create
 * (what create refuses is tests/test_sinks_config.c).
 *
 * The shared S3 client (ws_s3_*, the sink's own request layer) is exercised directly too:
 * URIs (s3://, s3a://), several GETs at once streamed through a SHA-256 each, keys that need
 * percent-encoding (an Iceberg partition path) re-signed by botocore, '.' segments refused,
 * 404 / 403 / 500 / max_bytes as causes, explicit (vended) credentials, and ListObjectsV2
 * over two scripted pages whose continuation token needs encoding, both requests re-signed by
 * botocore.
 */
#include "sinks/sink.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

/* ------------------------------------------------------------------------------------------ */
/* The S3 imitation                                                                             */

#define MAXREQ 64
#define MAXOBJ 32
#define BODY_MAX (4u << 20)

struct req {
    char method[8];
    char path[512];
    char head[8192]; /* the raw request head, as received */
    size_t headlen;
    char *body;
    size_t bodylen;
    int status; /* what we answered */
};

struct obj {
    char path[512];
    char *data;
    size_t len;
};

struct fault {
    const char *method; /* NULL: any */
    int status;
    const char *body;
    int delay_ms;
    int count;
};

static struct {
    int lfd, port;
    pthread_t th;
    pthread_mutex_t mu;
    volatile bool stop;
    bool honor_inm; /* If-None-Match: * on PUT -> 412 if the object exists (AWS, MinIO) */
    int hide_gets;  /* the next N GETs answer 404 even if the object exists */
    struct fault faults[4];
    size_t nfaults;
    struct req log[MAXREQ];
    size_t nlog;
    struct obj objs[MAXOBJ];
    size_t nobjs;
} srv;

static const char nosuchkey[] = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchKey"
                                "</Code><Message>The specified key does not exist.</Message>"
                                "</Error>";
static const char precondition[] = "<Error><Code>PreconditionFailed</Code><Message>At least one "
                                   "of the pre-conditions you specified did not hold</Message>"
                                   "</Error>";

static struct obj *find_obj(const char *path)
{
    for (size_t i = 0; i < srv.nobjs; i++)
        if (strcmp(srv.objs[i].path, path) == 0)
            return &srv.objs[i];
    return NULL;
}

static void store_obj(const char *path, const void *data, size_t len)
{
    struct obj *o = find_obj(path);

    if (!o && srv.nobjs < MAXOBJ) {
        o = &srv.objs[srv.nobjs++];
        o->data = NULL;
        snprintf(o->path, sizeof o->path, "%s", path);
    }
    if (!o)
        return;
    free(o->data);
    o->data = malloc(len ? len : 1);
    memcpy(o->data, data, len);
    o->len = len;
}

static void reset_server(void)
{
    pthread_mutex_lock(&srv.mu);
    for (size_t i = 0; i < srv.nlog; i++)
        free(srv.log[i].body);
    for (size_t i = 0; i < srv.nobjs; i++)
        free(srv.objs[i].data);
    srv.nlog = srv.nobjs = srv.nfaults = 0;
    srv.honor_inm = false;
    srv.hide_gets = 0;
    pthread_mutex_unlock(&srv.mu);
}

static void add_fault(const char *method, int status, const char *body, int delay_ms, int count)
{
    pthread_mutex_lock(&srv.mu);
    srv.faults[srv.nfaults++] = (struct fault){method, status, body, delay_ms, count};
    pthread_mutex_unlock(&srv.mu);
}

static void send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

static void respond(int fd, int status, const char *body, size_t len)
{
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d X\r\nContent-Length: %zu\r\nContent-Type: application/xml\r\n"
                     "Connection: close\r\n\r\n",
                     status, len);
    send_all(fd, head, (size_t)n);
    send_all(fd, body, len);
}

/* Case-insensitive header lookup in a raw head; copies the value. */
static bool header(const char *head, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);

    for (const char *l = strstr(head, "\r\n"); l && l[2]; l = strstr(l + 2, "\r\n")) {
        const char *h = l + 2;
        if (strncasecmp(h, name, nl) == 0 && h[nl] == ':') {
            const char *v = h + nl + 1, *e = strstr(v, "\r\n");
            while (*v == ' ')
                v++;
            snprintf(out, cap, "%.*s", (int)(e ? e - v : (long)strlen(v)), v);
            return true;
        }
    }
    out[0] = '\0';
    return false;
}

static void serve_one(int fd)
{
    char head[8192], val[128], method[8] = "", path[512] = "";
    size_t hl = 0, clen = 0, have;
    char *end = NULL, *body = NULL;
    struct fault *f = NULL;
    struct req *r = NULL;

    while (hl < sizeof head - 1 && !end) {
        ssize_t n = recv(fd, head + hl, sizeof head - 1 - hl, 0);
        if (n <= 0)
            return;
        hl += (size_t)n;
        head[hl] = '\0';
        end = strstr(head, "\r\n\r\n");
    }
    if (!end)
        return;
    sscanf(head, "%7s %511s", method, path);
    if (header(head, "Content-Length", val, sizeof val))
        clen = strtoul(val, NULL, 10);
    if (clen > BODY_MAX)
        return;
    body = malloc(clen + 1);
    have = hl - (size_t)(end + 4 - head);
    memcpy(body, end + 4, have < clen ? have : clen);
    if (have < clen && header(head, "Expect", val, sizeof val) && !strcasecmp(val, "100-continue"))
        send_all(fd, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    while (have < clen) {
        ssize_t n = recv(fd, body + have, clen - have, 0);
        if (n <= 0) {
            free(body);
            return;
        }
        have += (size_t)n;
    }
    end[2] = '\0'; /* keep the head's last CRLF */

    pthread_mutex_lock(&srv.mu);
    if (srv.nlog < MAXREQ) {
        r = &srv.log[srv.nlog++];
        memset(r, 0, sizeof *r);
        snprintf(r->method, sizeof r->method, "%s", method);
        snprintf(r->path, sizeof r->path, "%s", path);
        r->headlen = (size_t)snprintf(r->head, sizeof r->head, "%s", head);
        r->body = body;
        r->bodylen = clen;
        body = NULL;
    }
    for (size_t i = 0; i < srv.nfaults && !f; i++)
        if (srv.faults[i].count > 0 &&
            (!srv.faults[i].method || strcmp(srv.faults[i].method, method) == 0)) {
            srv.faults[i].count--;
            f = &srv.faults[i];
        }
    struct fault fc = f ? *f : (struct fault){0};
    pthread_mutex_unlock(&srv.mu);
    free(body);

    if (f) {
        if (fc.delay_ms) { /* stall, but notice the client giving up */
            struct pollfd p = {fd, POLLIN, 0};
            char c;
            if (poll(&p, 1, fc.delay_ms) > 0 && recv(fd, &c, 1, MSG_PEEK) <= 0)
                return;
        }
        if (r)
            r->status = fc.status;
        respond(fd, fc.status, fc.body ? fc.body : "", fc.body ? strlen(fc.body) : 0);
        return;
    }
    pthread_mutex_lock(&srv.mu);
    struct obj *o = find_obj(path);
    int status;
    char *out = NULL;
    size_t outlen = 0;
    if (strcmp(method, "GET") == 0) {
        if (o && srv.hide_gets > 0) {
            srv.hide_gets--;
            o = NULL;
        }
        status = o ? 200 : 404;
        if (o) {
            out = malloc(o->len + 1);
            memcpy(out, o->data, o->len);
            outlen = o->len;
        }
    } else if (strcmp(method, "PUT") == 0) {
        bool inm = header(head, "If-None-Match", val, sizeof val) && strcmp(val, "*") == 0;
        if (o && inm && srv.honor_inm) {
            status = 412;
        } else {
            store_obj(path, r ? r->body : "", r ? r->bodylen : 0);
            status = 200;
        }
    } else {
        status = 405;
    }
    if (r)
        r->status = status;
    pthread_mutex_unlock(&srv.mu);
    if (status == 404)
        respond(fd, 404, nosuchkey, strlen(nosuchkey));
    else if (status == 412)
        respond(fd, 412, precondition, strlen(precondition));
    else
        respond(fd, status, out ? out : "", outlen);
    free(out);
}

static void *server_main(void *arg)
{
    while (!srv.stop) {
        struct pollfd p = {srv.lfd, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0)
            continue;
        int fd = accept(srv.lfd, NULL, NULL);
        if (fd < 0)
            continue;
        serve_one(fd);
        close(fd);
    }
    return NULL;
}

static bool start_server(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    int one = 1;

    pthread_mutex_init(&srv.mu, NULL);
    srv.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    setsockopt(srv.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (srv.lfd < 0 || bind(srv.lfd, (struct sockaddr *)&a, sizeof a) < 0 ||
        listen(srv.lfd, 16) < 0 || getsockname(srv.lfd, (struct sockaddr *)&a, &al) < 0)
        return false;
    srv.port = ntohs(a.sin_port);
    return pthread_create(&srv.th, NULL, server_main, NULL) == 0;
}

/* A port nothing listens on: bind, read the port, close. */
static int closed_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;

    bind(fd, (struct sockaddr *)&a, sizeof a);
    getsockname(fd, (struct sockaddr *)&a, &al);
    port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* ------------------------------------------------------------------------------------------ */
/* Helpers                                                                                      */

static char tmpdir[] = "/tmp/ws_s3_test_XXXXXX";
static char evpath[600], endpoint[128];
static unsigned char *evdata;
static size_t evlen;
static const char envelope[] = "{\"payloadType\":\"application/vnd.in-toto+json\",\"payload\":"
                               "\"eyJ0ZXN0IjoxfQ==\",\"signatures\":[]}";
#define QID "7d1c2b3a-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
#define EV_PATH "/attest/pre/" QID "/00000000000000000001.evidence.lz4"
#define ENV_PATH "/attest/pre/" QID "/00000000000000000001.dsse.json"

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sha256_hex(const void *d, size_t n, char out[65])
{
    unsigned char md[32];
    unsigned int mdlen = 0;

    EVP_Digest(d, n, md, &mdlen, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++)
        sprintf(out + 2 * i, "%02x", md[i]);
}

/* An s3 sink's settings, as a configuration file would give them. */
struct s3_settings {
    const char *endpoint, *bucket, *prefix, *region;
    bool path_style, conditional;
    long timeout_ms;
};

static struct s3_settings conf(const char *ep, long timeout_ms)
{
    return (struct s3_settings){.endpoint = ep,
                                .bucket = "attest",
                                .prefix = "pre/",
                                .region = "eu-west-3",
                                .path_style = true,
                                .timeout_ms = timeout_ms};
}

/* Load c as `--set sinks=[...]` against the real sink tables, then create the sink. */
static ws_err_t create(const struct s3_settings *c, struct ws_sink **s, char *errbuf, size_t errlen)
{
    char set[1024];
    const char *sets[] = {set};
    struct ws_config *cfg = NULL;
    struct ws_sink_ctx ctx = {0};
    ws_err_t err;

    snprintf(set, sizeof set,
             "sinks=[{\"type\":\"s3\",\"endpoint\":\"%s\",\"bucket\":\"%s\",\"prefix\":\"%s\","
             "\"region\":\"%s\",\"path_style\":%s,\"timeout_ms\":%ld,\"conditional_writes\":%s}]",
             c->endpoint, c->bucket, c->prefix, c->region, c->path_style ? "true" : "false",
             c->timeout_ms, c->conditional ? "true" : "false");
    *s = NULL;
    if ((err = ws_config_load(NULL, sets, 1, ws_sink_types(), &cfg, errbuf, errlen)))
        return err;
    err = ws_sink_create(&cfg->sinks[0], &ctx, s, errbuf, errlen);
    ws_config_free(cfg); /* the sink keeps copies of what it needs */
    return err;
}

static struct ws_sink *make_sink(const char *ep, long timeout_ms)
{
    struct s3_settings c = conf(ep, timeout_ms);
    struct ws_sink *s = NULL;
    char errbuf[512];

    if (create(&c, &s, errbuf, sizeof errbuf)) {
        fprintf(stderr, "create: %s\n", errbuf);
        return NULL;
    }
    return s;
}

static struct ws_artifact artifact(void)
{
    return (struct ws_artifact){.query_id = QID,
                                .batch_id = 1,
                                .window_id = QID "/1",
                                .envelope = envelope,
                                .envelope_len = strlen(envelope),
                                .evidence_path = evpath};
}

static ws_err_t publish(struct ws_sink *s, char *errbuf, size_t errlen)
{
    struct ws_artifact a = artifact();
    return ws_sink_publish(s, &a, errbuf, errlen);
}

/* Index in the log of the first request with method and path, or -1. */
static int find_req(const char *method, const char *path)
{
    for (size_t i = 0; i < srv.nlog; i++)
        if (strcmp(srv.log[i].method, method) == 0 && (!path || !strcmp(srv.log[i].path, path)))
            return (int)i;
    return -1;
}

static int count_reqs(const char *method)
{
    int n = 0;
    for (size_t i = 0; i < srv.nlog; i++)
        n += strcmp(srv.log[i].method, method) == 0;
    return n;
}

static bool obj_is(const char *path, const void *data, size_t len)
{
    struct obj *o = find_obj(path);
    return o && o->len == len && memcmp(o->data, data, len) == 0;
}

/* ------------------------------------------------------------------------------------------ */
/* SigV4: hand a captured request to botocore                                                   */

static char checker[600], checker_s3[600];
static const char *use_checker = checker; /* checker_s3: botocore's S3 signer (encoded keys) */
static int sigv4_checked, sigv4_skipped;

static void sigv4_check_as(const struct req *r, const char *label, int want_rc);

static void sigv4_check(const struct req *r, const char *label)
{
    sigv4_check_as(r, label, 0);
}

/* The checker must notice a request that is not what was signed (one byte of the path). */
static void sigv4_check_tampered(const struct req *r)
{
    struct req *t = malloc(sizeof *t);
    char *p;

    *t = *r;
    p = strstr(t->head, ".evidence.lz4");
    if (p) {
        p[1] = 'E';
        sigv4_check_as(t, "tampered request (must differ)", 1);
    }
    free(t);
}

static void sigv4_check_as(const struct req *r, const char *label, int want_rc)
{
    char head[700], body[700], cmd[2400];
    FILE *f;
    int rc;

    if (!use_checker[0]) {
        sigv4_skipped++;
        return;
    }
    snprintf(head, sizeof head, "%s/req.head", tmpdir);
    snprintf(body, sizeof body, "%s/req.body", tmpdir);
    f = fopen(head, "wb");
    fwrite(r->head, 1, r->headlen, f);
    fclose(f);
    f = fopen(body, "wb");
    fwrite(r->body, 1, r->bodylen, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' --head '%s' --body '%s' --region eu-west-3 %s",
             use_checker, head, body, want_rc ? ">/dev/null" : "");
    rc = system(cmd);
    rc = WIFEXITED(rc) ? WEXITSTATUS(rc) : 99;
    if (rc == 77) {
        sigv4_skipped++;
        return;
    }
    if (rc != want_rc)
        fprintf(stderr, "sigv4 check: %s: exit %d, expected %d\n", label, rc, want_rc);
    CHECK(rc == want_rc);
    sigv4_checked += want_rc == 0 && rc == 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Tests                                                                                        */

static void test_publish_and_get(void)
{
    struct ws_sink *s = make_sink(endpoint, 5000);
    char errbuf[1024], want_ev[65], want_env[65], got[128];
    int gev, genv, pev, penv;
    char *buf = NULL;
    size_t len = 0;

    CHECK(s != NULL);
    if (!s)
        return;
    reset_server();
    CHECK(publish(s, errbuf, sizeof errbuf) == WS_OK);
    CHECK(obj_is(EV_PATH, evdata, evlen));
    CHECK(obj_is(ENV_PATH, envelope, strlen(envelope)));
    gev = find_req("GET", EV_PATH);
    genv = find_req("GET", ENV_PATH);
    pev = find_req("PUT", EV_PATH);
    penv = find_req("PUT", ENV_PATH);
    CHECK(gev >= 0 && genv >= 0 && pev >= 0 && penv >= 0);
    CHECK(gev < pev && genv < pev); /* existence checks first */
    CHECK(pev < penv);              /* the envelope only after the evidence */
    CHECK(srv.nlog == 4);
    sha256_hex(evdata, evlen, want_ev);
    sha256_hex(envelope, strlen(envelope), want_env);
    if (pev >= 0 && penv >= 0 && gev >= 0) {
        const struct req *p = &srv.log[pev], *e = &srv.log[penv], *g = &srv.log[gev];
        CHECK(header(p->head, "x-amz-content-sha256", got, sizeof got) && !strcmp(got, want_ev));
        CHECK(header(e->head, "x-amz-content-sha256", got, sizeof got) && !strcmp(got, want_env));
        CHECK(header(g->head, "x-amz-content-sha256", got, sizeof got) &&
              !strcmp(got, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
        CHECK(header(p->head, "If-None-Match", got, sizeof got) && !strcmp(got, "*"));
        /* curl's own Expect (body > 1 MiB) is sent but not signed; botocore agrees below */
        CHECK(header(p->head, "Expect", got, sizeof got) && !strcmp(got, "100-continue"));
        CHECK(p->bodylen == evlen && memcmp(p->body, evdata, evlen) == 0);
        CHECK(header(e->head, "If-None-Match", got, sizeof got) && !strcmp(got, "*"));
        CHECK(!header(g->head, "If-None-Match", got, sizeof got));
        CHECK(header(p->head, "Authorization", got, sizeof got));
        CHECK(strncmp(got, "AWS4-HMAC-SHA256 Credential=AKIDTEST/", 37) == 0);
        CHECK(strstr(got, "/eu-west-3/s3/aws4_request") != NULL);
        CHECK(header(p->head, "x-amz-date", got, sizeof got) && strlen(got) == 16);
        CHECK(!header(p->head, "x-amz-security-token", got, sizeof got));
        for (size_t i = 0; i < srv.nlog; i++)
            CHECK(strstr(srv.log[i].head, "SECRETKEYTEST") == NULL);
        sigv4_check(p, "PUT evidence");
        sigv4_check(e, "PUT envelope");
        sigv4_check(g, "GET evidence");
        sigv4_check_tampered(p);
    }

    /* Again: everything is there with our bytes, so nothing is written. */
    reset_server();
    store_obj(EV_PATH, evdata, evlen);
    store_obj(ENV_PATH, envelope, strlen(envelope));
    CHECK(publish(s, errbuf, sizeof errbuf) == WS_OK);
    CHECK(count_reqs("PUT") == 0 && count_reqs("GET") == 2);

    /* Only the envelope missing (a crash between the two PUTs). */
    reset_server();
    store_obj(EV_PATH, evdata, evlen);
    CHECK(publish(s, errbuf, sizeof errbuf) == WS_OK);
    CHECK(count_reqs("PUT") == 1 && find_req("PUT", ENV_PATH) >= 0);
    CHECK(obj_is(ENV_PATH, envelope, strlen(envelope)));

    /* get */
    CHECK(ws_sink_get(s, QID "/00000000000000000001.dsse.json", &buf, &len, errbuf,
                      sizeof errbuf) == WS_OK);
    CHECK(buf && len == strlen(envelope) && memcmp(buf, envelope, len) == 0);
    free(buf);
    buf = NULL;
    CHECK(ws_sink_get(s, QID "/00000000000000000002.dsse.json", &buf, &len, errbuf,
                      sizeof errbuf) == WS_ERR_NOT_FOUND);
    CHECK(buf == NULL);
    CHECK(ws_sink_get(s, "../etc/passwd", &buf, &len, errbuf, sizeof errbuf) != WS_OK);
    CHECK(buf == NULL);
    add_fault("GET", 503, "<Error><Code>SlowDown</Code><Message>Reduce</Message></Error>", 0, 1);
    CHECK(ws_sink_get(s, QID "/00000000000000000001.dsse.json", &buf, &len, errbuf,
                      sizeof errbuf) == WS_ERR_SINK_RETRY);
    CHECK(strstr(errbuf, "SlowDown") != NULL);
    add_fault("GET", 404, "<Error><Code>NoSuchBucket</Code></Error>", 0, 1);
    /* not NOT_FOUND: the engine would take it for "no such object here" and look elsewhere */
    CHECK(ws_sink_get(s, QID "/00000000000000000001.dsse.json", &buf, &len, errbuf,
                      sizeof errbuf) == WS_ERR_SINK_PERMANENT);

    /* put: the mutable checkpoint object, replaced unconditionally. */
    reset_server();
    CHECK(ws_sink_put(s, QID "/checkpoint", "one\n", 4, errbuf, sizeof errbuf) == WS_OK);
    CHECK(ws_sink_put(s, QID "/checkpoint", "second\n", 7, errbuf, sizeof errbuf) == WS_OK);
    CHECK(obj_is("/attest/pre/" QID "/checkpoint", "second\n", 7));
    CHECK(count_reqs("PUT") == 2 && count_reqs("GET") == 0);
    if (srv.nlog == 2) {
        char want[65];
        sha256_hex("second\n", 7, want);
        CHECK(!header(srv.log[1].head, "If-None-Match", got, sizeof got));
        CHECK(header(srv.log[1].head, "x-amz-content-sha256", got, sizeof got) &&
              !strcmp(got, want));
        sigv4_check(&srv.log[1], "PUT checkpoint");
    }
    add_fault("PUT", 503, "<Error><Code>SlowDown</Code></Error>", 0, 1);
    CHECK(ws_sink_put(s, QID "/checkpoint", "x", 1, errbuf, sizeof errbuf) == WS_ERR_SINK_RETRY);
    CHECK(ws_sink_put(s, "../checkpoint", "x", 1, errbuf, sizeof errbuf) == WS_ERR_INVALID);

    /* A spool file that is gone: retriable, nothing sent. */
    reset_server();
    struct ws_artifact a = artifact();
    a.evidence_path = "/nonexistent/spool/file";
    CHECK(ws_sink_publish(s, &a, errbuf, sizeof errbuf) == WS_ERR_IO);
    CHECK(srv.nlog == 0);
    ws_sink_destroy(s);
}

static void test_retriable(void)
{
    struct ws_sink *s = make_sink(endpoint, 5000);
    char errbuf[1024];

    CHECK(s != NULL);
    if (!s)
        return;
    /* 500 twice, then the store answers. */
    reset_server();
    add_fault("PUT", 500,
              "<Error><Code>InternalError</Code><Message>We encountered an internal "
              "error. Please try again.</Message></Error>",
              0, 2);
    CHECK(publish(s, errbuf, sizeof errbuf) == WS_ERR_SINK_RETRY);
    CHECK(strstr(errbuf, "HTTP 500") && strstr(errbuf, "InternalError") && strstr(errbuf, "PUT"));
    CHECK(find_req("PUT", ENV_PATH) < 0); /* the envelope waits for the evidence */
    CHECK(publish(s, errbuf, sizeof errbuf) == WS_ERR_SINK_RETRY);
    CHECK(publish(s, errbuf, sizeof errbuf) == WS_OK);
    CHECK(obj_is(EV_PATH, evdata, evlen) && obj_is(ENV_PATH, envelope, strlen(envelope)));

    /* 503 SlowDown on the existence checks. */
    reset_server();
    add_fault("GET", 503,
              "<Error><Code>SlowDown</Code><Message>Please reduce your request "
              "rate.</Message></Error>",
              0, 2);
    CHECK(publish(s, errbuf, sizeof errbuf) == WS_ERR_SINK_RETRY);
    CHECK(strstr(errbuf, "SlowDown") != NULL && count_reqs("PUT") == 0);
    CHECK(publish(s, errbuf, sizeof errbuf) == WS_OK);

    /* 400 RequestTimeout is retriable by its code; 429 by its status. */
    reset_server();
    add_fault("PUT", 400, "<Error><Code>RequestTimeout</Code><Message>idle</Message></Error>", 0,
              1);
    CHECK(publish(s, errbuf, sizeof errbuf) == WS_ERR_TIMEOUT);
    add_fault("PUT", 429, "", 0, 1);
    CHECK(publish(s, errbuf, sizeof errbuf) == WS_ERR_SINK_RETRY);
    CHECK(strstr(errbuf, "429") != NULL);
    CHECK(publish(s, errbuf, sizeof errbuf) == WS_OK);
    ws_sink_destroy(s);

    /* Slower than timeout_ms. */
    s = make_sink(endpoint, 300);
    CHECK(s != NULL);
    if (!s)
        return;
    reset_server();
    add_fault(NULL, 200, "", 3000, 2);
    int64_t t0 = now_ms();
    CHECK(publish(s, errbuf, sizeof errbuf) == WS_ERR_TIMEOUT);
    int64_t took = now_ms() - t0;
    CHECK(took >= 250 && took < 2000);
    CHECK(strstr(errbuf, "timed out") != NULL);
    ws_sink_destroy(s);

    /* Nothing listening. */
    char ep[64];
    snprintf(ep, sizeof ep, "http://127.0.0.1:%d", closed_port());
    s = make_sink(ep, 2000);
    CHECK(s != NULL);
    if (!s)
        return;
    CHECK(publish(s, errbuf, sizeof errbuf) == WS_ERR_IO);
    CHECK(strstr(errbuf, "connect") != NULL || strstr(errbuf, "Connect") != NULL);
    ws_sink_destroy(s);
}

static void test_permanent(void)
{
    struct ws_sink *s = make_sink(endpoint, 5000);
    char errbuf[1024];

    CHECK(s != NULL);
    if (!s)
        return;
    reset_server();
    add_fault("PUT", 403,
              "<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>Access "
              "Denied</Message><RequestId>R1</RequestId></Error>",
              0, 1);
    CHECK(publish(s, errbuf, sizeof errbuf) == WS_ERR_PERMISSION);
    CHECK(strstr(errbuf, "PUT") && strstr(errbuf, "403") && strstr(errbuf, "AccessDenied") &&
          strstr(errbuf, "Access Denied") && strstr(errbuf, "00000000000000000001.evidence.lz4"));
    CHECK(find_req("PUT", ENV_PATH) < 0);

    reset_server();
    add_fault("GET", 404,
              "<Error><Code>NoSuchBucket</Code><Message>The specified bucket does "
              "not exist</Message></Error>",
              0, 2);
    CHECK(publish(s, errbuf, sizeof errbuf) == WS_ERR_SINK_PERMANENT);
    CHECK(strstr(errbuf, "NoSuchBucket") != NULL && count_reqs("PUT") == 0);

    reset_server();
    add_fault("PUT", 400,
              "<Error><Code>InvalidArgument</Code><Message>bad\x01\"thing</Message>"
              "</Error>",
              0, 1);
    CHECK(publish(s, errbuf, sizeof errbuf) == WS_ERR_SINK_PERMANENT);
    CHECK(strstr(errbuf, "InvalidArgument") && !strchr(errbuf, '\x01'));
    ws_sink_destroy(s);
}

static void test_write_once(void)
{
    struct ws_sink *s = make_sink(endpoint, 5000);
    char errbuf[1024];
    unsigned char *other = malloc(evlen + 1);

    CHECK(s != NULL);
    if (!s || !other)
        goto out;
    memcpy(other, evdata, evlen);
    other[evlen / 2] ^= 1;
    other[evlen] = 'x';

    /* A store that ignores If-None-Match (like s3rver): the GET before the PUT protects it. */
    reset_server();
    store_obj(EV_PATH, other, evlen);
    CHECK(publish(s, errbuf, sizeof errbuf) == WS_ERR_EXISTS_DIFFERENT);
    CHECK(count_reqs("PUT") == 0 && obj_is(EV_PATH, other, evlen));
    CHECK(strstr(errbuf, "different") && strstr(errbuf, "evidence.lz4"));
    char sizes[96];
    snprintf(sizes, sizeof sizes, "stored %zu bytes, ours %zu", evlen, evlen);
    CHECK(strstr(errbuf, sizes) != NULL);
    reset_server();
    memcpy(other, evdata, evlen);
    store_obj(EV_PATH, other, evlen + 1); /* our bytes plus one */
    CHECK(publish(s, errbuf, sizeof errbuf) == WS_ERR_EXISTS_DIFFERENT);
    reset_server();
    store_obj(EV_PATH, evdata, evlen - 1); /* a prefix of our bytes */
    CHECK(publish(s, errbuf, sizeof errbuf) == WS_ERR_EXISTS_DIFFERENT);
    reset_server();
    store_obj(ENV_PATH, "{}", 2); /* another envelope, no evidence */
    CHECK(publish(s, errbuf, sizeof errbuf) == WS_ERR_EXISTS_DIFFERENT);
    CHECK(count_reqs("PUT") == 0 && obj_is(ENV_PATH, "{}", 2));

    /* The object appears between our GET and our PUT: 412, then compare. */
    reset_server();
    srv.honor_inm = true;
    srv.hide_gets = 1;
    store_obj(EV_PATH, evdata, evlen);
    CHECK(publish(s, errbuf, sizeof errbuf) == WS_OK);
    int p = find_req("PUT", EV_PATH);
    CHECK(p >= 0 && srv.log[p].status == 412);
    CHECK(obj_is(ENV_PATH, envelope, strlen(envelope)));
    reset_server();
    srv.honor_inm = true;
    srv.hide_gets = 1;
    other[0] ^= 0xff;
    store_obj(EV_PATH, other, evlen);
    CHECK(publish(s, errbuf, sizeof errbuf) == WS_ERR_EXISTS_DIFFERENT);
    CHECK(find_req("PUT", ENV_PATH) < 0 && obj_is(EV_PATH, other, evlen));
out:
    free(other);
    ws_sink_destroy(s);
}

/* conditional_writes on a store that honours If-None-Match: no GETs, the 412 does the check */
static void test_conditional(void)
{
    struct s3_settings c = conf(endpoint, 5000);
    struct ws_sink *s = NULL;
    char errbuf[1024];
    unsigned char *other = malloc(evlen);

    c.conditional = true;
    CHECK_OK(create(&c, &s, errbuf, sizeof errbuf));
    if (!s || !other)
        goto out;
    reset_server();
    srv.honor_inm = true;
    CHECK_OK(publish(s, errbuf, sizeof errbuf));
    CHECK(count_reqs("GET") == 0 && count_reqs("PUT") == 2);
    CHECK(find_req("PUT", EV_PATH) >= 0 && find_req("PUT", ENV_PATH) > find_req("PUT", EV_PATH));
    CHECK(obj_is(EV_PATH, evdata, evlen) && obj_is(ENV_PATH, envelope, strlen(envelope)));
    /* again (a re-processed window): 412 twice, compared, identical: success, nothing replaced */
    pthread_mutex_lock(&srv.mu); /* the request log only: the objects stay */
    for (size_t i = 0; i < srv.nlog; i++)
        free(srv.log[i].body);
    srv.nlog = 0;
    pthread_mutex_unlock(&srv.mu);
    CHECK_OK(publish(s, errbuf, sizeof errbuf));
    CHECK(count_reqs("PUT") == 2 && count_reqs("GET") == 2);
    CHECK(srv.log[find_req("PUT", EV_PATH)].status == 412);
    /* another evidence there: refused, not replaced, and no envelope written */
    reset_server();
    srv.honor_inm = true;
    memcpy(other, evdata, evlen);
    other[evlen / 3] ^= 0x40;
    store_obj(EV_PATH, other, evlen);
    CHECK(publish(s, errbuf, sizeof errbuf) == WS_ERR_EXISTS_DIFFERENT);
    CHECK(obj_is(EV_PATH, other, evlen) && find_req("PUT", ENV_PATH) < 0);
    CHECK(strstr(errbuf, "different") && strstr(errbuf, "evidence.lz4"));
    /* another envelope there: refused (the engine may adopt it), not replaced */
    reset_server();
    srv.honor_inm = true;
    store_obj(ENV_PATH, "{}", 2);
    CHECK(publish(s, errbuf, sizeof errbuf) == WS_ERR_EXISTS_DIFFERENT);
    CHECK(obj_is(ENV_PATH, "{}", 2) && obj_is(EV_PATH, evdata, evlen));
out:
    free(other);
    ws_sink_destroy(s);
}

static void test_token_and_vhost(void)
{
    struct ws_sink *s;
    char errbuf[1024], got[512], ep[64];

    setenv("AWS_SESSION_TOKEN", "FwoGZXIvYXdzEXAMPLETOKEN", 1);
    s = make_sink(endpoint, 5000);
    CHECK(s != NULL);
    if (s) {
        reset_server();
        CHECK(publish(s, errbuf, sizeof errbuf) == WS_OK);
        int p = find_req("PUT", EV_PATH);
        CHECK(p >= 0);
        if (p >= 0) {
            CHECK(header(srv.log[p].head, "x-amz-security-token", got, sizeof got) &&
                  !strcmp(got, "FwoGZXIvYXdzEXAMPLETOKEN"));
            CHECK(header(srv.log[p].head, "Authorization", got, sizeof got) &&
                  strstr(got, "x-amz-security-token") != NULL);
            sigv4_check(&srv.log[p], "PUT with session token");
        }
        ws_sink_destroy(s);
    }
    unsetenv("AWS_SESSION_TOKEN");

    /* Virtual-hosted style: bucket in the host name (curl resolves *.localhost to loopback). */
    snprintf(ep, sizeof ep, "http://localhost:%d", srv.port);
    struct s3_settings c = conf(ep, 5000);
    c.path_style = false;
    CHECK(create(&c, &s, errbuf, sizeof errbuf) == WS_OK);
    if (s) {
        reset_server();
        CHECK(publish(s, errbuf, sizeof errbuf) == WS_OK);
        int p = find_req("PUT", "/pre/" QID "/00000000000000000001.evidence.lz4");
        CHECK(p >= 0);
        if (p >= 0) {
            char want[64];
            snprintf(want, sizeof want, "attest.localhost:%d", srv.port);
            CHECK(header(srv.log[p].head, "Host", got, sizeof got) && !strcmp(got, want));
            sigv4_check(&srv.log[p], "PUT virtual-hosted");
        }
        ws_sink_destroy(s);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* The shared client                                                                            */

static struct ws_s3_client *make_client(const char *ep, const char *id, const char *secret)
{
    struct ws_s3_settings st = {.endpoint = ep,
                                .region = "eu-west-3",
                                .path_style = true,
                                .timeout_ms = 5000,
                                .access_key_id = id,
                                .secret_access_key = secret};
    struct ws_s3_client *c = NULL;
    char errbuf[512];

    if (ws_s3_client_new(&st, &c, errbuf, sizeof errbuf)) {
        fprintf(stderr, "client: %s\n", errbuf);
        return NULL;
    }
    return c;
}

struct digest {
    EVP_MD_CTX *md;
    size_t chunks;
};

static ws_err_t digest_chunk(void *ud, const void *data, size_t len)
{
    struct digest *d = ud;
    d->chunks++;
    return EVP_DigestUpdate(d->md, data, len) == 1 ? WS_OK : WS_ERR_CRYPTO;
}

static void digest_hex(struct digest *d, char out[65])
{
    unsigned char md[32];
    unsigned int n = 0;

    EVP_DigestFinal_ex(d->md, md, &n);
    EVP_MD_CTX_free(d->md);
    for (int i = 0; i < 32; i++)
        sprintf(out + 2 * i, "%02x", md[i]);
}

static void test_client_uris(void)
{
    char b[64];
    const char *key, *why;

    CHECK(ws_s3_uri_parse("s3://warehouse/db/t/data/x.parquet", b, sizeof b, &key, &why));
    CHECK(!strcmp(b, "warehouse") && !strcmp(key, "db/t/data/x.parquet"));
    CHECK(ws_s3_uri_parse("s3a://wh.1/k", b, sizeof b, &key, &why) && !strcmp(key, "k"));
    CHECK(ws_s3_uri_parse("s3://wh", b, sizeof b, &key, &why) && !strcmp(key, ""));
    CHECK(!ws_s3_uri_parse("s3:///k", b, sizeof b, &key, &why) && strstr(why, "bucket"));
    CHECK(!ws_s3_uri_parse("hdfs://nn/x", b, sizeof b, &key, &why));
    CHECK(!ws_s3_uri_parse("s3://a b/k", b, sizeof b, &key, &why));
    CHECK(ws_s3_uri_is_s3("s3a://x/y") && ws_s3_uri_is_s3("s3://x") && !ws_s3_uri_is_s3("/x"));
}

static void test_client_get(void)
{
    struct ws_s3_client *c = make_client(endpoint, NULL, NULL);
    static const char part[] = "/warehouse/db/t/data/ts_day%3D2024-01-01/a%20b%2Bc.parquet";
    struct ws_s3_get g[5];
    struct digest d[2];
    char want[65], got[65], errbuf[1024];
    char *buf = NULL;
    size_t len = 0;

    CHECK(c != NULL);
    if (!c)
        return;
    reset_server();
    store_obj("/warehouse/db/t/data/one.parquet", evdata, evlen);
    store_obj(part, envelope, strlen(envelope));
    memset(g, 0, sizeof g);
    for (int i = 0; i < 2; i++) {
        d[i].md = EVP_MD_CTX_new();
        d[i].chunks = 0;
        EVP_DigestInit_ex(d[i].md, EVP_sha256(), NULL);
        g[i].on_data = digest_chunk;
        g[i].ud = &d[i];
    }
    g[0].uri = "s3://warehouse/db/t/data/one.parquet";
    g[1].uri = "s3a://warehouse/db/t/data/ts_day=2024-01-01/a b+c.parquet";
    g[2].bucket = "warehouse";
    g[2].key = "db/t/data/absent.parquet";
    g[3].uri = "s3://warehouse/db/t/../escape.parquet";
    g[4].uri = "s3://warehouse";
    CHECK(ws_s3_get_many(c, g, 5, errbuf, sizeof errbuf) == WS_OK);
    CHECK(g[0].err == WS_OK && g[0].bytes == evlen && g[0].status == 200);
    digest_hex(&d[0], got);
    sha256_hex(evdata, evlen, want);
    CHECK(!strcmp(got, want));
    CHECK(d[0].chunks > 1); /* streamed: the body came in pieces, never whole */
    CHECK(g[1].err == WS_OK && g[1].bytes == strlen(envelope));
    digest_hex(&d[1], got);
    sha256_hex(envelope, strlen(envelope), want);
    CHECK(!strcmp(got, want));
    CHECK(g[2].err == WS_ERR_NOT_FOUND && g[2].status == 404 && !strcmp(g[2].code, "NoSuchKey"));
    CHECK(strstr(g[2].error, "HTTP 404 NoSuchKey") && strstr(g[2].error, "absent.parquet"));
    CHECK(g[3].err == WS_ERR_INVALID && strstr(g[3].error, "'..'"));
    CHECK(g[4].err == WS_ERR_INVALID);
    CHECK(srv.nlog == 3); /* the refused ones were never sent */
    int p = find_req("GET", part);
    CHECK(p >= 0);
    if (p >= 0)
        sigv4_check(&srv.log[p], "GET percent-encoded key");
    if ((p = find_req("GET", "/warehouse/db/t/data/one.parquet")) >= 0)
        sigv4_check(&srv.log[p], "GET object");

    /* The causes, one request each. */
    add_fault("GET", 403,
              "<Error><Code>AccessDenied</Code><Message>Access Denied</Message>"
              "<RequestId>X1</RequestId></Error>",
              0, 1);
    CHECK(ws_s3_get_stream(c, "s3://warehouse/db/t/data/one.parquet", NULL, NULL, NULL, errbuf,
                           sizeof errbuf) == WS_ERR_PERMISSION);
    CHECK(strstr(errbuf, "HTTP 403 AccessDenied: Access Denied") && !strstr(errbuf, "X1"));
    add_fault("GET", 500, "<Error><Code>InternalError</Code></Error>", 0, 1);
    CHECK(ws_s3_get_stream(c, "s3://warehouse/db/t/data/one.parquet", NULL, NULL, NULL, errbuf,
                           sizeof errbuf) == WS_ERR_SINK_RETRY);
    CHECK(ws_err_retriable(WS_ERR_SINK_RETRY) && strstr(errbuf, "HTTP 500"));
    CHECK(ws_s3_get_buf(c, "s3://warehouse/db/t/data/one.parquet", 1000, &buf, &len, errbuf,
                        sizeof errbuf) == WS_ERR_TOO_LARGE);
    CHECK(buf == NULL);
    CHECK(ws_s3_get_buf(c, "s3a://warehouse/db/t/data/ts_day=2024-01-01/a b+c.parquet", 4096, &buf,
                        &len, errbuf, sizeof errbuf) == WS_OK);
    CHECK(buf && len == strlen(envelope) && !memcmp(buf, envelope, len) && buf[len] == '\0');
    free(buf);
    ws_s3_client_destroy(c);

    /* Explicit (vended) credentials win over the environment's. */
    c = make_client(endpoint, "VENDEDKEY", "vendedsecret/xyz");
    CHECK(c != NULL);
    if (!c)
        return;
    reset_server();
    store_obj("/warehouse/k", "v", 1);
    CHECK(ws_s3_get_stream(c, "s3://warehouse/k", NULL, NULL, NULL, errbuf, sizeof errbuf) ==
          WS_OK);
    if (srv.nlog == 1) {
        char auth[512];
        CHECK(header(srv.log[0].head, "Authorization", auth, sizeof auth) &&
              strstr(auth, "Credential=VENDEDKEY/"));
        setenv("AWS_ACCESS_KEY_ID", "VENDEDKEY", 1); /* what the checker signs with */
        setenv("AWS_SECRET_ACCESS_KEY", "vendedsecret/xyz", 1);
        sigv4_check(&srv.log[0], "GET with vended credentials");
        setenv("AWS_ACCESS_KEY_ID", "AKIDTEST", 1);
        setenv("AWS_SECRET_ACCESS_KEY", "SECRETKEYTEST/abc+def", 1);
    }
    ws_s3_client_destroy(c);
}

struct listed {
    char keys[8][128];
    bool prefix[8];
    size_t n;
};

static ws_err_t on_key(void *ud, const char *key, uint64_t size, bool is_prefix)
{
    struct listed *l = ud;
    if (l->n < 8) {
        snprintf(l->keys[l->n], sizeof l->keys[0], "%s:%llu", key, (unsigned long long)size);
        l->prefix[l->n++] = is_prefix;
    }
    return WS_OK;
}

static void test_client_list(void)
{
    struct ws_s3_client *c = make_client(endpoint, NULL, NULL);
    struct listed l = {0};
    char errbuf[1024];

    CHECK(c != NULL);
    if (!c)
        return;
    reset_server();
    /* Two pages as S3 writes them; the token has characters SigV4 must see encoded. */
    add_fault(
        "GET", 200,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult><Name>attest</Name>"
        "<Prefix>it/</Prefix><KeyCount>2</KeyCount><MaxKeys>2</MaxKeys>"
        "<IsTruncated>true</IsTruncated><NextContinuationToken>1/a+b=c</NextContinuationToken>"
        "<Contents><Key>it/a&amp;b.dsse.json</Key><Size>12</Size></Contents>"
        "<CommonPrefixes><Prefix>it/q1/</Prefix></CommonPrefixes></ListBucketResult>",
        0, 1);
    add_fault("GET", 200,
              "<ListBucketResult><IsTruncated>false</IsTruncated>"
              "<Contents><Key>it/z.evidence.lz4</Key><LastModified>x</LastModified>"
              "<Size>34</Size></Contents></ListBucketResult>",
              0, 1);
    CHECK(ws_s3_list(c, "attest", "it/", "/", on_key, &l, errbuf, sizeof errbuf) == WS_OK);
    CHECK(l.n == 3);
    CHECK(!strcmp(l.keys[0], "it/a&b.dsse.json:12") && !l.prefix[0]);
    CHECK(!strcmp(l.keys[1], "it/q1/:0") && l.prefix[1]);
    CHECK(!strcmp(l.keys[2], "it/z.evidence.lz4:34") && !l.prefix[2]);
    CHECK(srv.nlog == 2);
    if (srv.nlog == 2) {
        CHECK(!strcmp(srv.log[0].path, "/attest?delimiter=%2F&list-type=2&prefix=it%2F"));
        CHECK(!strcmp(srv.log[1].path, "/attest?continuation-token=1%2Fa%2Bb%3Dc&delimiter=%2F"
                                       "&list-type=2&prefix=it%2F"));
        sigv4_check(&srv.log[0], "ListObjectsV2 page 1");
        sigv4_check(&srv.log[1], "ListObjectsV2 page 2 (continuation token)");
    }
    /* A truncated page without a token, and a missing bucket. */
    add_fault("GET", 200, "<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>", 0,
              1);
    CHECK(ws_s3_list(c, "attest", "", NULL, on_key, &l, errbuf, sizeof errbuf) == WS_ERR_MALFORMED);
    add_fault("GET", 404, "<Error><Code>NoSuchBucket</Code></Error>", 0, 1);
    CHECK(ws_s3_list(c, "nope", "", NULL, on_key, &l, errbuf, sizeof errbuf) == WS_ERR_NOT_FOUND);
    ws_s3_client_destroy(c);
}

int main(void)
{
    char path[700];
    FILE *f;
    unsigned seed = 7;

    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    /* Evidence larger than curl's buffers, so uploads and compares come in pieces. */
    evlen = 1200 * 1024 + 17; /* above curl's 1 MiB Expect: 100-continue threshold */
    evdata = malloc(evlen);
    for (size_t i = 0; i < evlen; i++)
        evdata[i] = (unsigned char)rand_r(&seed);
    snprintf(evpath, sizeof evpath, "%s/spool.evidence.lz4", tmpdir);
    f = fopen(evpath, "wb");
    fwrite(evdata, 1, evlen, f);
    fclose(f);

    /* The botocore checker sits next to this file's source. */
    snprintf(path, sizeof path, "%s", __FILE__);
    char *slash = strrchr(path, '/');
    if (slash) {
        snprintf(checker, sizeof checker, "%.*s/it/s3_sigv4_check.py", (int)(slash - path), path);
        if (access(checker, R_OK) != 0 || access("/usr/bin/python3", X_OK) != 0)
            checker[0] = '\0';
        snprintf(checker_s3, sizeof checker_s3, "%.*s/it/s3_sigv4_check_s3.py", (int)(slash - path),
                 path);
        if (!checker[0] || access(checker_s3, R_OK) != 0)
            checker_s3[0] = '\0';
    }

    if (!start_server()) {
        perror("test server");
        return 1;
    }
    snprintf(endpoint, sizeof endpoint, "http://127.0.0.1:%d", srv.port);
    setenv("AWS_ACCESS_KEY_ID", "AKIDTEST", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "SECRETKEYTEST/abc+def", 1);
    unsetenv("AWS_SESSION_TOKEN");

    test_publish_and_get();
    test_retriable();
    test_permanent();
    test_write_once();
    test_conditional();
    test_token_and_vhost();
    test_client_uris();
    use_checker = checker_s3; /* the client's requests: keys encoded once, as S3 signs them */
    test_client_get();
    test_client_list();
    use_checker = checker;

    srv.stop = true;
    pthread_join(srv.th, NULL);
    close(srv.lfd);
    reset_server();
    free(evdata);
    snprintf(path, sizeof path, "rm -rf '%s'", tmpdir);
    if (system(path) != 0) {
    }
    if (sigv4_skipped)
        printf("test_sinks_s3: %d botocore SigV4 comparisons skipped (python3/botocore "
               "missing)\n",
               sigv4_skipped);
    printf("test_sinks_s3: %lu checks passed, %lu failed (%d SigV4 signatures matched botocore)\n",
           checks - failures, failures, sigv4_checked);
    return failures ? 1 : 0;
}
