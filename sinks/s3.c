/*
 * s3.c — the `s3` object-store sink: FORMAT.md §7 layout in an S3-compatible bucket, over libcurl.
 *
 *   <prefix><queryId>/<batch20>.evidence.lz4   made durable first
 *   <prefix><queryId>/<batch20>.dsse.json      made durable last: its presence means complete
 *
 * One publish, as requests on one curl multi handle (connections are kept and reused):
 *
 *   GET evidence ┐ both in flight at once; each body is compared with our bytes as it
 *   GET envelope ┘ streams in (a mismatch aborts the transfer), 404 NoSuchKey = absent
 *        │ both identical: done, nothing written        │ either different: EXISTS_DIFFERENT
 *        ▼ evidence absent
 *   PUT evidence  If-None-Match: *, body streamed from the spool file (READDATA on the FILE)
 *        │ 2xx                        │ 412: someone wrote it meanwhile -> GET and compare
 *        ▼ envelope absent
 *   PUT envelope  If-None-Match: *, only after the evidence PUT answered 2xx
 *
 * The vtable's `get` is the client's GET into memory (ws_s3_get_buf, bounded by
 * WS_ENVELOPE_MAX); its `put` (the per-query
 * checkpoint, the one mutable object) is an unconditional PUT.
 *
 * Why the GET before the PUT: If-None-Match on PUT is honoured by AWS S3 and MinIO but ignored by
 * others (s3rver 3.7.1 only looks at it on GET); there a PUT would silently overwrite. The
 * conditional PUT still closes the window between our GET and our PUT on stores that honour it.
 * With `conditional_writes` (for stores known to honour it) the GETs are left out: the two PUTs
 * go out directly and a 412 is answered by the GET and compare, so a window costs two requests
 * and two round trips instead of four and three. One difference when something is already
 * there: an envelope with other bytes is found only after our evidence went into an empty
 * evidence slot (the GET path finds it before writing anything); the window then stops or is
 * adopted exactly as on the GET path.
 * The two uploads of one window are never in flight together: the envelope must not become
 * visible before the evidence is durable.
 *
 * Requests are made by the shared S3 client (s3client.c, through s3client_int.h): addressing,
 * signing, credentials, the multi loop and the error text are its, so that the sink, the
 * engine's output hashing and the auditor sign and fail the same way.
 *
 * Signing: CURLOPT_AWS_SIGV4 "aws:amz:<region>:s3" with x-amz-content-sha256 set to the hex
 * SHA-256 of the payload (the spool file is hashed by streaming it). Credentials come only from
 * AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (/ AWS_SESSION_TOKEN -> x-amz-security-token), read
 * once at create; they never reach errbuf, the label or a log line. Every header the sink adds
 * is signed by curl, including a removal such as "Expect:" (curl 7.88 signs it with an empty value
 * and then does not send it, so S3 would answer SignatureDoesNotMatch): the sink adds only headers
 * it sends, and tests/it/s3_sigv4_check.py holds curl's signatures against botocore's.
 *
 * Errors: no retries here; the cause is returned, its class is what the engine acts on
 * (s3rules.c maps curl's codes and HTTP statuses):
 *   retriable  WS_ERR_TIMEOUT   curl's timeout, 408, <Code>RequestTimeout</Code>
 *              WS_ERR_IO        transport: connection refused or reset, resolver trouble, or
 *                               reading the spool file
 *              WS_ERR_NOMEM
 *              WS_ERR_SINK_RETRY  409, 429, 5xx and the other retriable S3 codes (SlowDown,
 *                               InternalError, ...): the store's trouble, no closer code
 *   permanent  WS_ERR_PERMISSION  401, 403 (AccessDenied, SignatureDoesNotMatch), curl's
 *                               login denied
 *              WS_ERR_TOO_LARGE 413;  WS_ERR_INVALID  an unsafe object name
 *              WS_ERR_UNSUPPORTED  a protocol curl was built without
 *              WS_ERR_SINK_PERMANENT  other statuses (400, 404 NoSuchBucket: not NOT_FOUND,
 *                               which means "no such object" to a get), TLS trust failures
 * errbuf names the method, the object, the status and the store's <Code> and <Message>, all
 * sanitized (the response is outside input).
 *
 * Object names are restricted to URL-unreserved characters and '/', so the URL path and the
 * SigV4 canonical URI are the same bytes and need no encoding.
 *
 * Options: the `options[]` table below (endpoint and bucket required); credentials are never
 * options, they come from the environment.
 *
 * Thread: one engine thread per instance; curl_global_init is called at create.
 */
#include "sinks/sink_int.h"
#include "sinks/s3client_int.h"

#include <curl/curl.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HASH_CHUNK (64u * 1024)

struct s3_conf {
    char *endpoint, *bucket, *prefix, *region;
    bool path_style;
    bool verify_tls;
    bool conditional_writes;
    int64_t timeout_ms;
};

/* clang-format off */
#define OPT(name, type, field, def, min, max, required, help) \
    {name, type, offsetof(struct s3_conf, field), def, min, max, NULL, required, help}
static const struct ws_option options[] = {
    OPT("endpoint", WS_OPT_STRING, endpoint, NULL, 0, 0, true,
        "S3 endpoint URL, e.g. http://127.0.0.1:4569."),
    OPT("bucket", WS_OPT_STRING, bucket, NULL, 0, 0, true, "Bucket name."),
    OPT("prefix", WS_OPT_STRING, prefix, "", 0, 0, false, "Prefix of every object name."),
    OPT("region", WS_OPT_STRING, region, "us-east-1", 0, 0, false, "Region used in SigV4 signing."),
    OPT("path_style", WS_OPT_BOOL, path_style, "true", 0, 0, false,
        "Path-style addressing (MinIO, s3rver); false: virtual-hosted style."),
    OPT("verify_tls", WS_OPT_BOOL, verify_tls, "true", 0, 0, false,
        "Verify the endpoint's TLS certificate."),
    OPT("timeout_ms", WS_OPT_INT, timeout_ms, "30000", 1, 86400000, false, "Per-request timeout."),
    OPT("conditional_writes", WS_OPT_BOOL, conditional_writes, "false", 0, 0, false,
        "The store honours If-None-Match: * on PUT (AWS S3, MinIO, Cloudflare R2): write-once "
        "objects are PUT without the existence GETs before them (2 requests a window, not 4). "
        "Leave false for stores that ignore it (s3rver): there a PUT would overwrite."),
};
#undef OPT
/* clang-format on */

struct s3_sink {
    struct ws_sink base;
    struct ws_s3_client *client; /* endpoint, credentials, multi handle */
    char *bucket, *prefix;
    bool conditional; /* conditional_writes: no existence GETs, If-None-Match does the check */
};

/* What a transfer does with a response body. */
enum rx_mode {
    RX_DISCARD, /* PUT: a 2xx body is not interesting */
    RX_COMPARE, /* GET: compare with our bytes, abort on the first difference */
};

/* Our bytes: the spool file (evidence) or a buffer (envelope). */
struct source {
    FILE *fp;
    const char *mem;
    uint64_t size;
    uint64_t mem_off; /* read cursor for uploads from mem */
    char sha256_hex[WS_HASH_HEX_LEN + 1];
};

struct xfer {
    struct ws_s3_req req; /* first: the client's loop finds it through CURLOPT_PRIVATE */
    const char *key;      /* object key, for messages */
    struct source *src;
    enum rx_mode rx;
    uint64_t rx_total;
    bool mismatch;
    int read_errno; /* reading the spool file while comparing failed */
};

/* Outcome of a compare-GET. */
enum presence { ABSENT, SAME, DIFFERENT };

/* ------------------------------------------------------------------------------------------ */
/* Error text                                                                                     */

/* The failure of one finished transfer, with its cause. */
static ws_err_t xfer_fail(struct s3_sink *s, const struct xfer *x, char *errbuf, size_t errlen)
{
    if (x->read_errno)
        return ws_fail(WS_ERR_IO, errbuf, errlen,
                       "s3 %s s3://%s/%s: reading the spool file to compare: %s", x->req.method,
                       s->bucket, x->key, strerror(x->read_errno));
    return ws_s3_req_fail(s->client, &x->req, errbuf, errlen);
}

/* ------------------------------------------------------------------------------------------ */
/* Transfers                                                                                      */

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    struct xfer *x = ud;
    size_t n = size * nmemb;

    if (ws_s3_req_keep_error(&x->req, data, n)) /* an error document: its start is kept */
        return n;
    if (x->rx == RX_COMPARE) {
        struct source *src = x->src;
        if (x->rx_total + n > src->size) {
            x->mismatch = true;
            return 0; /* abort: we know enough */
        }
        if (src->fp) {
            char tmp[16384];
            size_t done = 0;
            while (done < n) {
                size_t want = n - done < sizeof tmp ? n - done : sizeof tmp;
                ssize_t got = pread(fileno(src->fp), tmp, want, (off_t)(x->rx_total + done));
                if (got < 0) {
                    x->read_errno = errno;
                    return 0;
                }
                if (got == 0 || memcmp(tmp, data + done, (size_t)got) != 0) {
                    x->mismatch = true;
                    return 0;
                }
                done += (size_t)got;
            }
        } else if (memcmp(src->mem + x->rx_total, data, n) != 0) {
            x->mismatch = true;
            return 0;
        }
    }
    x->rx_total += n;
    return n;
}

static size_t mem_read(char *out, size_t size, size_t nmemb, void *ud)
{
    struct source *src = ud;
    size_t n = size * nmemb, left = (size_t)(src->size - src->mem_off);

    if (n > left)
        n = left;
    memcpy(out, src->mem + src->mem_off, n);
    src->mem_off += n;
    return n;
}

/* Rewinds for curl (a resent request after a reused connection closed). */
static int src_seek(void *ud, curl_off_t offset, int origin)
{
    struct source *src = ud;

    if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > src->size)
        return CURL_SEEKFUNC_CANTSEEK;
    if (src->fp)
        return fseeko(src->fp, (off_t)offset, SEEK_SET) == 0 ? CURL_SEEKFUNC_OK
                                                             : CURL_SEEKFUNC_FAIL;
    src->mem_off = (uint64_t)offset;
    return CURL_SEEKFUNC_OK;
}

static void xfer_cleanup(struct xfer *x)
{
    ws_s3_req_cleanup(&x->req);
}

/* The requests this sink makes. */
enum req_kind {
    GET_COMPARE, /* GET, body compared with src as it streams in */
    PUT_ONCE,    /* PUT of src, If-None-Match: * (write-once objects) */
    PUT_REPLACE, /* PUT of src, unconditional (the vtable's put: mutable objects) */
};

/* Set up one request of the given kind for key (src: our bytes). */
static ws_err_t xfer_init(struct s3_sink *s, struct xfer *x, enum req_kind kind, const char *key,
                          struct source *src)
{
    bool put = kind == PUT_ONCE || kind == PUT_REPLACE;
    char why[256];
    ws_err_t err;
    CURL *h;

    memset(x, 0, sizeof *x);
    x->key = key;
    x->src = src;
    x->rx = kind == GET_COMPARE ? RX_COMPARE : RX_DISCARD;
    if ((err = ws_s3_req_init(s->client, &x->req, put ? "PUT" : "GET", s->bucket, key, NULL,
                              put ? src->sha256_hex : NULL,
                              kind == PUT_ONCE ? "If-None-Match: *" : NULL, why, sizeof why)))
        return err;
    h = x->req.h;
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
    if (put) {
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)src->size);
        /* Do not wait for "100 Continue" before the body: the header cannot be removed (it
         * would break the signature, see above), but waiting for it costs every PUT a round
         * trip — 50 ms each to a store 50 ms away (bench_slowstore). */
        curl_easy_setopt(h, CURLOPT_EXPECT_100_TIMEOUT_MS, 0L);
        curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, src_seek);
        curl_easy_setopt(h, CURLOPT_SEEKDATA, src);
        if (src->fp) { /* curl's default read function: fread on the open spool file */
            rewind(src->fp);
            curl_easy_setopt(h, CURLOPT_READDATA, src->fp);
        } else {
            src->mem_off = 0;
            curl_easy_setopt(h, CURLOPT_READFUNCTION, mem_read);
            curl_easy_setopt(h, CURLOPT_READDATA, src);
        }
    }
    return WS_OK;
}

/* Run transfers concurrently on the client's multi handle until every one has finished. */
static ws_err_t run(struct s3_sink *s, struct xfer **xs, size_t n, char *errbuf, size_t errlen)
{
    struct ws_s3_req *rs[2];

    for (size_t i = 0; i < n && i < 2; i++)
        rs[i] = &xs[i]->req;
    return ws_s3_run(s->client, rs, n < 2 ? n : 2, errbuf, errlen);
}

/* A request that could not be set up: out of memory, or (still retriable, as it always was) a
 * URL that does not fit. */
static ws_err_t setup_fail(ws_err_t err, char *errbuf, size_t errlen)
{
    return ws_fail(err == WS_ERR_NOMEM ? WS_ERR_NOMEM : WS_ERR_SINK_RETRY, errbuf, errlen, "s3: %s",
                   ws_strerror(err));
}

/* A finished compare-GET: SAME / DIFFERENT / ABSENT, or the failure's cause. */
static ws_err_t compare_result(struct s3_sink *s, struct xfer *x, enum presence *out, char *errbuf,
                               size_t errlen)
{
    char code[64];

    if (x->mismatch || (ws_s3_req_ok(&x->req))) {
        *out = (!x->mismatch && x->rx_total == x->src->size) ? SAME : DIFFERENT;
        if (*out == SAME)
            return WS_OK;
        curl_off_t theirs = -1;
        curl_easy_getinfo(x->req.h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &theirs);
        return ws_fail(WS_ERR_EXISTS_DIFFERENT, errbuf, errlen,
                       "s3 GET s3://%s/%s: the object exists with different content (stored "
                       "%lld bytes, ours %llu); refusing to overwrite",
                       s->bucket, x->key, (long long)theirs, (unsigned long long)x->src->size);
    }
    if (x->req.result == CURLE_OK && x->req.status == 404) {
        ws_s3_xml_field(x->req.errbody, x->req.errbody_len, "Code", code, sizeof code);
        if (code[0] == '\0' || strcmp(code, "NoSuchKey") == 0) {
            *out = ABSENT;
            return WS_OK;
        }
    }
    return xfer_fail(s, x, errbuf, errlen);
}

/* Single compare-GET. */
static ws_err_t check_object(struct s3_sink *s, const char *key, struct source *src,
                             enum presence *out, char *errbuf, size_t errlen)
{
    struct xfer x, *xs[1] = {&x};
    ws_err_t err = xfer_init(s, &x, GET_COMPARE, key, src);

    if (err)
        return setup_fail(err, errbuf, errlen);
    if (!(err = run(s, xs, 1, errbuf, errlen)))
        err = compare_result(s, &x, out, errbuf, errlen);
    xfer_cleanup(&x);
    return err;
}

/* PUT once: 2xx is written; 412 (it exists) is success only if the stored bytes are ours. */
static ws_err_t put_once(struct s3_sink *s, const char *key, struct source *src, char *errbuf,
                         size_t errlen)
{
    struct xfer x, *xs[1] = {&x};
    enum presence p;
    ws_err_t err = xfer_init(s, &x, PUT_ONCE, key, src);

    if (err)
        return setup_fail(err, errbuf, errlen);
    if ((err = run(s, xs, 1, errbuf, errlen)))
        goto out;
    if (ws_s3_req_ok(&x.req))
        goto out;
    if (x.req.result != CURLE_OK || x.req.status != 412) {
        err = xfer_fail(s, &x, errbuf, errlen);
        goto out;
    }
    if ((err = check_object(s, key, src, &p, errbuf, errlen)))
        goto out;
    if (p == ABSENT) /* gone again between our PUT and GET: let the engine try once more */
        err = ws_fail(WS_ERR_SINK_RETRY, errbuf, errlen,
                      "s3 PUT s3://%s/%s: 412 but the object is not there", s->bucket, key);
out:
    xfer_cleanup(&x);
    return err;
}

/* ------------------------------------------------------------------------------------------ */
/* The vtable                                                                                     */

static void s3_destroy(struct ws_sink *base)
{
    struct s3_sink *s = (struct s3_sink *)base;

    if (!s)
        return;
    ws_s3_client_destroy(s->client);
    free(s->bucket);
    free(s->prefix);
    free(s);
}

static ws_err_t s3_create(const void *opts, const struct ws_sink_ctx *ctx, struct ws_sink **out,
                          char *errbuf, size_t errlen)
{
    const struct s3_conf *conf = opts;
    const char *region = conf->region && *conf->region ? conf->region : "us-east-1";
    const char *prefix = conf->prefix ? conf->prefix : "";
    struct ws_s3_settings st = {0};
    struct s3_sink *s;
    char why[512];
    ws_err_t err;

    if (!conf->endpoint || !conf->bucket)
        return ws_fail(WS_ERR_CONFIG, errbuf, errlen, "s3 sink: endpoint and bucket are needed");
    if (!ws_s3_bucket_safe(conf->bucket))
        return ws_fail(WS_ERR_CONFIG, errbuf, errlen,
                       "s3 sink: bucket '%.64s' must be 1-63 of [A-Za-z0-9._-]", conf->bucket);
    if (!ws_s3_name_safe(prefix, true))
        return ws_fail(WS_ERR_CONFIG, errbuf, errlen,
                       "s3 sink: prefix '%.128s' must be URL-unreserved characters and '/', "
                       "without empty, '.' or '..' segments",
                       prefix);
    if (conf->timeout_ms < 1 || conf->timeout_ms > 86400000)
        return ws_fail(WS_ERR_CONFIG, errbuf, errlen, "s3 sink: timeout_ms out of range");
    if (!(s = calloc(1, sizeof *s)))
        return ws_fail(WS_ERR_NOMEM, errbuf, errlen, "s3 sink: out of memory");
    s->base.ops = &ws_sink_s3_ops;
    /* Credentials from the environment only: the settings name none. */
    st.endpoint = conf->endpoint;
    st.region = region;
    st.path_style = conf->path_style;
    st.insecure_tls = !conf->verify_tls;
    st.timeout_ms = conf->timeout_ms;
    if ((err = ws_s3_client_new(&st, &s->client, why, sizeof why))) {
        s3_destroy(&s->base);
        return ws_fail(err, errbuf, errlen, "s3 sink: %s",
                       strncmp(why, "s3: ", 4) == 0 ? why + 4 : why);
    }
    if (!(s->bucket = strdup(conf->bucket)) || !(s->prefix = strdup(prefix))) {
        s3_destroy(&s->base);
        return ws_fail(WS_ERR_NOMEM, errbuf, errlen, "s3 sink: out of memory");
    }
    s->conditional = conf->conditional_writes;
    snprintf(s->base.label, sizeof s->base.label, "s3:%.40s/%.16s", s->bucket, s->prefix);
    *out = &s->base;
    return WS_OK;
}

/* Open the spool file and hash it by streaming; the FILE stays open for the upload. */
static ws_err_t open_evidence(const char *path, struct source *src, char *errbuf, size_t errlen)
{
    struct ws_sha256 h;
    char *chunk;
    uint8_t digest[WS_HASH_LEN];
    struct stat st;
    uint64_t total = 0;
    size_t n;

    memset(src, 0, sizeof *src);
    if (!(src->fp = fopen(path, "rb")))
        return ws_fail(WS_ERR_IO, errbuf, errlen, "s3: spool %s: %s", path, strerror(errno));
    if (fstat(fileno(src->fp), &st) < 0 || !S_ISREG(st.st_mode)) {
        fclose(src->fp);
        src->fp = NULL;
        return ws_fail(WS_ERR_IO, errbuf, errlen, "s3: spool %s: not a regular file", path);
    }
    if (!(chunk = malloc(HASH_CHUNK))) {
        fclose(src->fp);
        src->fp = NULL;
        return ws_fail(WS_ERR_NOMEM, errbuf, errlen, "s3: out of memory");
    }
    ws_sha256_init(&h);
    while ((n = fread(chunk, 1, HASH_CHUNK, src->fp)) > 0) {
        ws_sha256_update(&h, chunk, n);
        total += n;
    }
    free(chunk);
    if (ferror(src->fp) || total != (uint64_t)st.st_size) {
        fclose(src->fp);
        src->fp = NULL;
        return ws_fail(WS_ERR_IO, errbuf, errlen, "s3: spool %s: read %llu of %lld bytes", path,
                       (unsigned long long)total, (long long)st.st_size);
    }
    ws_sha256_final(&h, digest);
    ws_hex_encode(digest, WS_HASH_LEN, src->sha256_hex);
    src->size = total;
    return WS_OK;
}

static ws_err_t make_key(struct s3_sink *s, const char *name, char *key, size_t cap, char *errbuf,
                         size_t errlen)
{
    if (!ws_s3_name_safe(name, false))
        return ws_fail(WS_ERR_INVALID, errbuf, errlen, "s3: unsafe object name '%.128s'", name);
    if (snprintf(key, cap, "%s%s", s->prefix, name) >= (int)cap)
        return ws_fail(WS_ERR_INVALID, errbuf, errlen, "s3: object name too long");
    return WS_OK;
}

static ws_err_t s3_publish(struct ws_sink *base, const struct ws_artifact *a, char *errbuf,
                           size_t errlen)
{
    struct s3_sink *s = (struct s3_sink *)base;
    char name[256], ev_key[1024], env_key[1024];
    struct source ev, env = {0};
    struct xfer xev, xenv, *xs[2] = {&xev, &xenv};
    enum presence pev = ABSENT, penv = ABSENT;
    uint8_t digest[WS_HASH_LEN];
    ws_err_t err;

    ws_object_name(a->query_id, a->batch_id, ".evidence.lz4", name);
    if ((err = make_key(s, name, ev_key, sizeof ev_key, errbuf, errlen)))
        return err;
    ws_object_name(a->query_id, a->batch_id, ".dsse.json", name);
    if ((err = make_key(s, name, env_key, sizeof env_key, errbuf, errlen)))
        return err;
    if ((err = open_evidence(a->evidence_path, &ev, errbuf, errlen)))
        return err;
    env.mem = a->envelope;
    env.size = a->envelope_len;
    ws_sha256(a->envelope, a->envelope_len, digest);
    ws_hex_encode(digest, WS_HASH_LEN, env.sha256_hex);

    /* Conditional writes: If-None-Match is the existence check (a 412 is compared). */
    if (s->conditional) {
        if (!(err = put_once(s, ev_key, &ev, errbuf, errlen)))
            err = put_once(s, env_key, &env, errbuf, errlen);
        goto out_close;
    }
    /* Both existence checks at once. */
    if ((err = xfer_init(s, &xev, GET_COMPARE, ev_key, &ev))) {
        err = setup_fail(err, errbuf, errlen);
        goto out_close;
    }
    if ((err = xfer_init(s, &xenv, GET_COMPARE, env_key, &env))) {
        xfer_cleanup(&xev);
        err = setup_fail(err, errbuf, errlen);
        goto out_close;
    }
    err = run(s, xs, 2, errbuf, errlen);
    if (!err)
        err = compare_result(s, &xev, &pev, errbuf, errlen);
    if (!err)
        err = compare_result(s, &xenv, &penv, errbuf, errlen);
    xfer_cleanup(&xev);
    xfer_cleanup(&xenv);
    if (err)
        goto out_close;

    /* Evidence durable first; the envelope only after it. */
    if (pev == ABSENT && (err = put_once(s, ev_key, &ev, errbuf, errlen)))
        goto out_close;
    if (penv == ABSENT)
        err = put_once(s, env_key, &env, errbuf, errlen);
out_close:
    fclose(ev.fp);
    return err;
}

/* A mutable object (the per-query checkpoint): replaced by a plain PUT, last writer wins. */
static ws_err_t s3_put(struct ws_sink *base, const char *name, const void *data, size_t len,
                       char *errbuf, size_t errlen)
{
    struct s3_sink *s = (struct s3_sink *)base;
    struct source src = {.mem = data, .size = len};
    struct xfer x, *xs[1] = {&x};
    uint8_t digest[WS_HASH_LEN];
    char key[1024];
    ws_err_t err;

    if ((err = make_key(s, name, key, sizeof key, errbuf, errlen)))
        return err;
    ws_sha256(data, len, digest);
    ws_hex_encode(digest, WS_HASH_LEN, src.sha256_hex);
    if ((err = xfer_init(s, &x, PUT_REPLACE, key, &src)))
        return setup_fail(err, errbuf, errlen);
    err = run(s, xs, 1, errbuf, errlen);
    if (!err && !(ws_s3_req_ok(&x.req)))
        err = xfer_fail(s, &x, errbuf, errlen);
    xfer_cleanup(&x);
    return err;
}

/* Read back into memory: the client's bounded GET (404 NoSuchKey is WS_ERR_NOT_FOUND). */
static ws_err_t s3_get(struct ws_sink *base, const char *name, char **buf, size_t *len,
                       char *errbuf, size_t errlen)
{
    struct s3_sink *s = (struct s3_sink *)base;
    char key[1024], uri[1100];
    ws_err_t err;

    *buf = NULL;
    *len = 0;
    if ((err = make_key(s, name, key, sizeof key, errbuf, errlen)))
        return err;
    snprintf(uri, sizeof uri, "s3://%s/%s", s->bucket, key);
    return ws_s3_get_buf(s->client, uri, WS_ENVELOPE_MAX, buf, len, errbuf, errlen);
}

const struct ws_sink_ops ws_sink_s3_ops = {
    .type = {.name = "s3",
             .options = options,
             .nopts = WS_SINK_NOPTS(options),
             .size = sizeof(struct s3_conf)},
    .create = s3_create,
    .publish = s3_publish,
    .put = s3_put,
    .get = s3_get,
    .destroy = s3_destroy,
};
