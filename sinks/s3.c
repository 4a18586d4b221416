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
 * The vtable's `get` is a GET into memory (bounded by WS_ENVELOPE_MAX); its `put` (the per-query
 * checkpoint, the one mutable object) is an unconditional PUT.
 *
 * Why the GET before the PUT: If-None-Match on PUT is honoured by AWS S3 and MinIO but ignored by
 * others (s3rver 3.7.1 only looks at it on GET); there a PUT would silently overwrite. The
 * conditional PUT still closes the window between our GET and our PUT on stores that honour it.
 * The two uploads of one window are never in flight together: the envelope must not become
 * visible before the evidence is durable.
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
#include "sinks/s3_int.h"

#include <curl/curl.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ERRBODY_MAX 4096 /* bytes of an error response kept for its <Code> and <Message> */
#define HASH_CHUNK (64u * 1024)

struct s3_conf {
    char *endpoint, *bucket, *prefix, *region;
    bool path_style;
    bool verify_tls;
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
};
#undef OPT
/* clang-format on */

struct s3_sink {
    struct ws_sink base;
    CURLM *multi;
    char *base_url; /* ends in '/': "http://h:p/bucket/" or "http://bucket.h:p/" */
    char *bucket, *prefix;
    char sigv4[160]; /* "aws:amz:<region>:s3" */
    char *key_id, *secret;
    char *token_hdr; /* "x-amz-security-token: ..." or NULL */
    long timeout_ms;
    bool verify_tls;
};

/* What a transfer does with a response body. */
enum rx_mode {
    RX_DISCARD, /* PUT: a 2xx body is not interesting */
    RX_COMPARE, /* GET: compare with our bytes, abort on the first difference */
    RX_COLLECT, /* GET for the vtable's get: keep the bytes */
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
    CURL *h;
    struct curl_slist *hdrs;
    const char *method;
    const char *key; /* object key, for messages */
    struct source *src;
    enum rx_mode rx;
    uint64_t rx_total;
    bool mismatch;
    char *buf; /* RX_COLLECT */
    size_t len, cap, max;
    bool too_large;
    int read_errno; /* reading the spool file while comparing failed */
    char errbody[ERRBODY_MAX];
    size_t errbody_len;
    CURLcode result;
    long status;
    char curlerr[CURL_ERROR_SIZE];
};

/* Outcome of a compare-GET. */
enum presence { ABSENT, SAME, DIFFERENT };

static const char empty_sha256[] =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/* ------------------------------------------------------------------------------------------ */
/* Configuration                                                                                  */

/* The endpoint, checked with curl's URL parser, turned into the URL every key is appended to. */
static ws_err_t make_base_url(struct s3_sink *s, const char *endpoint, bool path_style,
                              char *errbuf, size_t errlen)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL, *user = NULL, *query = NULL;
    ws_err_t err = WS_OK;
    CURLUcode uc;
    size_t plen, n;

    if (!u)
        return WS_ERR_NOMEM;
    if ((uc = curl_url_set(u, CURLUPART_URL, endpoint, 0)) != CURLUE_OK) {
        err = uc == CURLUE_OUT_OF_MEMORY ? WS_ERR_NOMEM
                                         : ws_fail(WS_ERR_CONFIG, errbuf, errlen,
                                                   "s3 sink: endpoint '%s' is not a URL", endpoint);
        goto out_free_url;
    }
    /* an absent part is NULL; only running out of memory is an error here */
    if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OUT_OF_MEMORY ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OUT_OF_MEMORY ||
        curl_url_get(u, CURLUPART_PORT, &port, 0) == CURLUE_OUT_OF_MEMORY ||
        curl_url_get(u, CURLUPART_PATH, &path, 0) == CURLUE_OUT_OF_MEMORY ||
        curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OUT_OF_MEMORY ||
        curl_url_get(u, CURLUPART_QUERY, &query, 0) == CURLUE_OUT_OF_MEMORY) {
        err = WS_ERR_NOMEM;
        goto out_free_parts;
    }
    if (!scheme || !host || (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
        err = ws_fail(WS_ERR_CONFIG, errbuf, errlen,
                      "s3 sink: endpoint must be an http:// or https:// URL");
        goto out_free_parts;
    }
    if (user) { /* never echo the endpoint here: it may carry a secret */
        err = ws_fail(WS_ERR_CONFIG, errbuf, errlen,
                      "s3 sink: endpoint must not contain credentials; use AWS_ACCESS_KEY_ID "
                      "and AWS_SECRET_ACCESS_KEY");
        goto out_free_parts;
    }
    if (query) {
        err = ws_fail(WS_ERR_CONFIG, errbuf, errlen, "s3 sink: endpoint must not have a query");
        goto out_free_parts;
    }
    if (!path_style && (host[0] == '[' || strspn(host, "0123456789.") == strlen(host))) {
        err = ws_fail(WS_ERR_CONFIG, errbuf, errlen,
                      "s3 sink: virtual-hosted style (path_style false) needs a DNS name in the "
                      "endpoint, not an IP address");
        goto out_free_parts;
    }
    plen = path ? strlen(path) : 0;
    while (plen > 0 && path[plen - 1] == '/')
        plen--;
    if (plen && !ws_s3_name_safe(path + 1, true)) {
        err = ws_fail(WS_ERR_CONFIG, errbuf, errlen,
                      "s3 sink: endpoint path has characters "
                      "that would need encoding");
        goto out_free_parts;
    }
    n = strlen(scheme) + strlen(host) + (port ? strlen(port) : 0) + plen + strlen(s->bucket) + 8;
    if (!(s->base_url = malloc(n))) {
        err = WS_ERR_NOMEM;
        goto out_free_parts;
    }
    if (path_style)
        snprintf(s->base_url, n, "%s://%s%s%s%.*s/%s/", scheme, host, port ? ":" : "",
                 port ? port : "", (int)plen, path ? path : "", s->bucket);
    else
        snprintf(s->base_url, n, "%s://%s.%s%s%s%.*s/", scheme, s->bucket, host, port ? ":" : "",
                 port ? port : "", (int)plen, path ? path : "");
out_free_parts:
    curl_free(scheme), curl_free(host), curl_free(port), curl_free(path), curl_free(user),
        curl_free(query);
out_free_url:
    curl_url_cleanup(u);
    return err;
}

/* ------------------------------------------------------------------------------------------ */
/* Error text                                                                                     */

/* The failure of one finished transfer, with its cause. */
static ws_err_t xfer_fail(struct s3_sink *s, const struct xfer *x, char *errbuf, size_t errlen)
{
    char code[128], msg[256];

    if (x->read_errno)
        return ws_fail(WS_ERR_IO, errbuf, errlen,
                       "s3 %s s3://%s/%s: reading the spool file to compare: %s", x->method,
                       s->bucket, x->key, strerror(x->read_errno));
    if (x->result != CURLE_OK) {
        if (x->result == CURLE_OPERATION_TIMEDOUT)
            return ws_fail(WS_ERR_TIMEOUT, errbuf, errlen,
                           "s3 %s s3://%s/%s: timed out after %ld ms (%s)", x->method, s->bucket,
                           x->key, s->timeout_ms, x->curlerr[0] ? x->curlerr : "no response");
        return ws_fail(ws_s3_curl_cause(x->result), errbuf, errlen, "s3 %s s3://%s/%s: %s (%s)",
                       x->method, s->bucket, x->key, curl_easy_strerror(x->result),
                       x->curlerr[0] ? x->curlerr : "-");
    }
    ws_s3_xml_field(x->errbody, x->errbody_len, "Code", code, sizeof code);
    ws_s3_xml_field(x->errbody, x->errbody_len, "Message", msg, sizeof msg);
    return ws_fail(ws_s3_status_cause(x->status, code), errbuf, errlen,
                   "s3 %s s3://%s/%s: HTTP %ld %s%s%s", x->method, s->bucket, x->key, x->status,
                   code[0] ? code : "(no S3 error code)", msg[0] ? ": " : "", msg);
}

/* ------------------------------------------------------------------------------------------ */
/* Transfers                                                                                      */

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    struct xfer *x = ud;
    size_t n = size * nmemb;
    long status = 0;

    curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
    if (status < 200 || status > 299) { /* an error document: keep its start */
        size_t room = sizeof x->errbody - 1 - x->errbody_len;
        size_t take = n < room ? n : room;
        memcpy(x->errbody + x->errbody_len, data, take);
        x->errbody_len += take;
        x->errbody[x->errbody_len] = '\0';
        return n;
    }
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
    } else if (x->rx == RX_COLLECT) {
        if (n > x->max - x->len) {
            x->too_large = true;
            return 0;
        }
        if (x->len + n + 1 > x->cap) {
            size_t cap = x->cap ? x->cap : 4096;
            while (cap < x->len + n + 1)
                cap *= 2;
            char *nb = realloc(x->buf, cap);
            if (!nb)
                return 0;
            x->buf = nb;
            x->cap = cap;
        }
        memcpy(x->buf + x->len, data, n);
        x->len += n;
        x->buf[x->len] = '\0';
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
    if (x->h)
        curl_easy_cleanup(x->h);
    curl_slist_free_all(x->hdrs);
    x->h = NULL;
    x->hdrs = NULL;
}

static bool add_header(struct xfer *x, const char *h)
{
    struct curl_slist *l = curl_slist_append(x->hdrs, h);

    if (!l)
        return false;
    x->hdrs = l;
    return true;
}

/* The requests this sink makes. */
enum req_kind {
    GET_COMPARE, /* GET, body compared with src as it streams in */
    GET_COLLECT, /* GET, body kept (the vtable's get) */
    PUT_ONCE,    /* PUT of src, If-None-Match: * (write-once objects) */
    PUT_REPLACE, /* PUT of src, unconditional (the vtable's put: mutable objects) */
};

/* Set up one request of the given kind for key (src: our bytes, NULL for GET_COLLECT). */
static ws_err_t xfer_init(struct s3_sink *s, struct xfer *x, enum req_kind kind, const char *key,
                          struct source *src)
{
    char url[2048], hdr[128];
    bool put = kind == PUT_ONCE || kind == PUT_REPLACE;
    CURL *h;

    memset(x, 0, sizeof *x);
    x->method = put ? "PUT" : "GET";
    x->key = key;
    x->src = src;
    x->rx = kind == GET_COMPARE ? RX_COMPARE : kind == GET_COLLECT ? RX_COLLECT : RX_DISCARD;
    if (snprintf(url, sizeof url, "%s%s", s->base_url, key) >= (int)sizeof url)
        return WS_ERR_INVALID;
    if (!(x->h = h = curl_easy_init()))
        return WS_ERR_NOMEM;
    snprintf(hdr, sizeof hdr, "x-amz-content-sha256: %s", put ? src->sha256_hex : empty_sha256);
    if (!add_header(x, hdr) || (s->token_hdr && !add_header(x, s->token_hdr)) ||
        (kind == PUT_ONCE && !add_header(x, "If-None-Match: *")))
        goto out_nomem;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PRIVATE, x);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, x->curlerr);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, s->timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, s->timeout_ms < 10000 ? s->timeout_ms : 10000L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, s->verify_tls ? 1L : 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, s->verify_tls ? 2L : 0L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "windowseal/" WS_VERSION);
    curl_easy_setopt(h, CURLOPT_AWS_SIGV4, s->sigv4);
    curl_easy_setopt(h, CURLOPT_USERNAME, s->key_id);
    curl_easy_setopt(h, CURLOPT_PASSWORD, s->secret);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, x->hdrs);
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
    } else {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    }
    return WS_OK;
out_nomem:
    xfer_cleanup(x);
    return WS_ERR_NOMEM;
}

/* Run transfers concurrently on the multi handle until every one has finished. */
static ws_err_t run(struct s3_sink *s, struct xfer **xs, size_t n, char *errbuf, size_t errlen)
{
    CURLMcode mc = CURLM_OK;
    size_t added = 0;
    int running = 0, q;
    CURLMsg *m;

    for (; added < n; added++)
        if ((mc = curl_multi_add_handle(s->multi, xs[added]->h)) != CURLM_OK)
            goto out_remove;
    do {
        if ((mc = curl_multi_perform(s->multi, &running)) != CURLM_OK)
            break;
        while ((m = curl_multi_info_read(s->multi, &q))) {
            struct xfer *x = NULL;
            if (m->msg != CURLMSG_DONE)
                continue;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
            x->result = m->data.result;
            curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &x->status);
        }
        if (running && (mc = curl_multi_poll(s->multi, NULL, 0, 1000, NULL)) != CURLM_OK)
            break;
    } while (running);
out_remove:
    for (size_t i = 0; i < added; i++)
        curl_multi_remove_handle(s->multi, xs[i]->h);
    if (mc != CURLM_OK)
        return ws_fail(mc == CURLM_OUT_OF_MEMORY ? WS_ERR_NOMEM : WS_ERR_SINK_RETRY, errbuf, errlen,
                       "s3: curl multi: %s", curl_multi_strerror(mc));
    return WS_OK;
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

    if (x->mismatch || (x->result == CURLE_OK && x->status >= 200 && x->status <= 299)) {
        *out = (!x->mismatch && x->rx_total == x->src->size) ? SAME : DIFFERENT;
        if (*out == SAME)
            return WS_OK;
        curl_off_t theirs = -1;
        curl_easy_getinfo(x->h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &theirs);
        return ws_fail(WS_ERR_EXISTS_DIFFERENT, errbuf, errlen,
                       "s3 GET s3://%s/%s: the object exists with different content (stored "
                       "%lld bytes, ours %llu); refusing to overwrite",
                       s->bucket, x->key, (long long)theirs, (unsigned long long)x->src->size);
    }
    if (x->result == CURLE_OK && x->status == 404) {
        ws_s3_xml_field(x->errbody, x->errbody_len, "Code", code, sizeof code);
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
    if (x.result == CURLE_OK && x.status >= 200 && x.status <= 299)
        goto out;
    if (x.result != CURLE_OK || x.status != 412) {
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

static void wipe_free(char *p)
{
    if (p) {
        explicit_bzero(p, strlen(p));
        free(p);
    }
}

static void s3_destroy(struct ws_sink *base)
{
    struct s3_sink *s = (struct s3_sink *)base;

    if (!s)
        return;
    if (s->multi)
        curl_multi_cleanup(s->multi);
    free(s->base_url);
    free(s->bucket);
    free(s->prefix);
    wipe_free(s->key_id);
    wipe_free(s->secret);
    wipe_free(s->token_hdr);
    free(s);
    curl_global_cleanup();
}

static ws_err_t s3_create(const void *opts, const struct ws_sink_ctx *ctx, struct ws_sink **out,
                          char *errbuf, size_t errlen)
{
    const struct s3_conf *conf = opts;
    const char *id = getenv("AWS_ACCESS_KEY_ID"), *secret = getenv("AWS_SECRET_ACCESS_KEY");
    const char *token = getenv("AWS_SESSION_TOKEN");
    const char *region = conf->region && *conf->region ? conf->region : "us-east-1";
    const char *prefix = conf->prefix ? conf->prefix : "";
    struct s3_sink *s;
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
    if (!ws_s3_region_safe(region))
        return ws_fail(WS_ERR_CONFIG, errbuf, errlen, "s3 sink: region '%.64s' is not valid",
                       region);
    if (conf->timeout_ms < 1 || conf->timeout_ms > 86400000)
        return ws_fail(WS_ERR_CONFIG, errbuf, errlen, "s3 sink: timeout_ms out of range");
    if (!id || !*id || !secret || !*secret)
        return ws_fail(WS_ERR_CONFIG, errbuf, errlen,
                       "s3 sink: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the "
                       "environment (credentials are never read from the configuration)");
    if (strpbrk(id, "\r\n") || (token && strpbrk(token, "\r\n")))
        return ws_fail(WS_ERR_CONFIG, errbuf, errlen,
                       "s3 sink: AWS credentials in the environment contain a line break");
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return ws_fail(WS_ERR_SINK_PERMANENT, errbuf, errlen, "s3 sink: curl_global_init failed");
    if (!(s = calloc(1, sizeof *s))) {
        curl_global_cleanup();
        return ws_fail(WS_ERR_NOMEM, errbuf, errlen, "s3 sink: out of memory");
    }
    s->base.ops = &ws_sink_s3_ops;
    s->timeout_ms = (long)conf->timeout_ms;
    s->verify_tls = conf->verify_tls;
    snprintf(s->sigv4, sizeof s->sigv4, "aws:amz:%s:s3", region);
    err = WS_ERR_NOMEM;
    if (!(s->bucket = strdup(conf->bucket)) || !(s->prefix = strdup(prefix)) ||
        !(s->key_id = strdup(id)) || !(s->secret = strdup(secret)) ||
        !(s->multi = curl_multi_init()))
        goto out_destroy;
    if (token && *token) {
        size_t n = strlen(token) + sizeof "x-amz-security-token: ";
        if (!(s->token_hdr = malloc(n)))
            goto out_destroy;
        snprintf(s->token_hdr, n, "x-amz-security-token: %s", token);
    }
    if ((err = make_base_url(s, conf->endpoint, conf->path_style, errbuf, errlen)))
        goto out_destroy;
    snprintf(s->base.label, sizeof s->base.label, "s3:%.40s/%.16s", s->bucket, s->prefix);
    *out = &s->base;
    return WS_OK;
out_destroy:
    s3_destroy(&s->base);
    return err == WS_ERR_NOMEM ? ws_fail(err, errbuf, errlen, "s3 sink: out of memory") : err;
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
    if (!err && !(x.result == CURLE_OK && x.status >= 200 && x.status <= 299))
        err = xfer_fail(s, &x, errbuf, errlen);
    xfer_cleanup(&x);
    return err;
}

static ws_err_t s3_get(struct ws_sink *base, const char *name, char **buf, size_t *len,
                       char *errbuf, size_t errlen)
{
    struct s3_sink *s = (struct s3_sink *)base;
    char key[1024], code[64];
    struct xfer x, *xs[1] = {&x};
    ws_err_t err;

    *buf = NULL;
    *len = 0;
    if ((err = make_key(s, name, key, sizeof key, errbuf, errlen)))
        return err;
    if ((err = xfer_init(s, &x, GET_COLLECT, key, NULL)))
        return setup_fail(err, errbuf, errlen);
    x.max = WS_ENVELOPE_MAX;
    if ((err = run(s, xs, 1, errbuf, errlen)))
        goto out_free;
    if (x.too_large) {
        err = ws_fail(WS_ERR_TOO_LARGE, errbuf, errlen, "s3 GET s3://%s/%s: larger than %u bytes",
                      s->bucket, key, WS_ENVELOPE_MAX);
        goto out_free;
    }
    if (x.result == CURLE_OK && x.status >= 200 && x.status <= 299) {
        if (!x.buf && !(x.buf = calloc(1, 1))) {
            err = WS_ERR_NOMEM;
            goto out_free;
        }
        *buf = x.buf;
        *len = x.len;
        x.buf = NULL;
        goto out_free;
    }
    ws_s3_xml_field(x.errbody, x.errbody_len, "Code", code, sizeof code);
    if (x.result == CURLE_OK && x.status == 404 && (!code[0] || strcmp(code, "NoSuchKey") == 0))
        err = ws_fail(WS_ERR_NOT_FOUND, errbuf, errlen, "s3 GET s3://%s/%s: no such object",
                      s->bucket, key);
    else
        err = xfer_fail(s, &x, errbuf, errlen);
out_free:
    free(x.buf);
    xfer_cleanup(&x);
    return err;
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
