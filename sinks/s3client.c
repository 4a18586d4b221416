/*
 * s3client.c — the one S3 client of windowseal (sinks/sink.h, "S3 client"): addressing,
 * credentials, SigV4 request setup, the curl multi loop and the error text, shared by the s3
 * sink (s3.c, through s3client_int.h), the engine's output hashing (disk/outputs.c), the
 * auditor (cli/) and the Iceberg reader.
 *
 *   ws_s3_client_new        endpoint parsed once (curl's URL parser), credentials copied
 *   ws_s3_req_init          one request: URL for (bucket, key, query), signing, headers
 *   ws_s3_run               many requests on the client's multi handle, max_parallel at once
 *   ws_s3_get_many          GETs streamed through callbacks (a 5 GB object costs curl's buffer)
 *   ws_s3_list              ListObjectsV2, every page
 *
 * Signing: CURLOPT_AWS_SIGV4 "aws:amz:<region>:s3". curl 7.88 signs the URL's path and query
 * exactly as they are sent (it neither re-encodes the path nor sorts the query), so this file
 * sends them in canonical form: the key percent-encoded except unreserved characters and '/',
 * the query's parameters sorted by name with their values fully encoded ('/' too). Every
 * header added here is signed; x-amz-content-sha256 is always given (the hex SHA-256 of the
 * payload; of "" for GET). tests/test_sinks_s3.c re-signs captured requests with botocore.
 *
 * Keys with a "." or ".." segment are refused rather than sent: curl would squash the dot
 * segments and fetch another object than the one named.
 *
 * Credentials: explicit ones (vended by a catalog) or the AWS_* environment variables, copied at
 * create, wiped at destroy, never in a message. The error text of a failed request names the
 * method, the object, the HTTP status and the store's <Code> and <Message>, sanitized
 * (s3rules.c: the response is outside input).
 *
 * Thread: a client is used by one thread at a time (its multi handle is not shared).
 */
#include "sinks/s3client_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_TIMEOUT_MS 30000
#define DEFAULT_PARALLEL 16
#define KEY_MAX 1024              /* S3's own limit on a key's length */
#define LIST_BODY_MAX (16u << 20) /* one ListObjectsV2 page (1000 keys) is ~300 KB */

const char ws_s3_empty_sha256[] =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

struct ws_s3_client {
    CURLM *multi;
    char *scheme, *host, *port; /* port NULL: the scheme's */
    char *base_path;            /* "" or "/base" (no trailing '/') */
    char *endpoint;             /* for messages */
    char region[65];
    char sigv4[160];
    char *key_id, *secret, *token_hdr;
    long timeout_ms;
    unsigned max_parallel, list_max_keys;
    bool path_style, verify_tls;
};

/* ------------------------------------------------------------------------------------------ */
/* Creating a client                                                                              */

static const char *env_or(const char *a, const char *b)
{
    const char *v = getenv(a);
    if (v && *v)
        return v;
    v = b ? getenv(b) : NULL;
    return v && *v ? v : NULL;
}

static void wipe_free(char *p)
{
    if (p) {
        explicit_bzero(p, strlen(p));
        free(p);
    }
}

/* Parse the endpoint with curl's URL parser into the parts every request URL is made of. */
static ws_err_t parse_endpoint(struct ws_s3_client *c, const char *endpoint, char *errbuf,
                               size_t errlen)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL, *user = NULL, *query = NULL;
    ws_err_t err = WS_OK;
    CURLUcode uc;
    size_t plen;

    if (!u)
        return WS_ERR_NOMEM;
    if ((uc = curl_url_set(u, CURLUPART_URL, endpoint, 0)) != CURLUE_OK) {
        /* never echo an endpoint that did not parse: it may hold a secret */
        err = uc == CURLUE_OUT_OF_MEMORY
                  ? WS_ERR_NOMEM
                  : ws_fail(WS_ERR_CONFIG, errbuf, errlen, "s3: endpoint is not a URL");
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
                      "s3: endpoint must be an http:// or https:// URL");
        goto out_free_parts;
    }
    if (user) {
        err = ws_fail(WS_ERR_CONFIG, errbuf, errlen,
                      "s3: endpoint must not contain credentials; use AWS_ACCESS_KEY_ID "
                      "and AWS_SECRET_ACCESS_KEY");
        goto out_free_parts;
    }
    if (query) {
        err = ws_fail(WS_ERR_CONFIG, errbuf, errlen, "s3: endpoint must not have a query");
        goto out_free_parts;
    }
    if (!c->path_style && (host[0] == '[' || strspn(host, "0123456789.") == strlen(host))) {
        err = ws_fail(WS_ERR_CONFIG, errbuf, errlen,
                      "s3: virtual-hosted style (path_style false) needs a DNS name in the "
                      "endpoint, not an IP address");
        goto out_free_parts;
    }
    plen = path ? strlen(path) : 0;
    while (plen > 0 && path[plen - 1] == '/')
        plen--;
    if (plen && !ws_s3_name_safe(path + 1, true)) {
        err = ws_fail(WS_ERR_CONFIG, errbuf, errlen,
                      "s3: endpoint path has characters that would need encoding");
        goto out_free_parts;
    }
    if (path)
        path[plen] = '\0';
    if (!(c->scheme = strdup(scheme)) || !(c->host = strdup(host)) ||
        (port && !(c->port = strdup(port))) || !(c->base_path = strdup(path ? path : "")) ||
        !(c->endpoint = strdup(endpoint)))
        err = WS_ERR_NOMEM;
out_free_parts:
    curl_free(scheme), curl_free(host), curl_free(port), curl_free(path), curl_free(user),
        curl_free(query);
out_free_url:
    curl_url_cleanup(u);
    return err;
}

ws_err_t ws_s3_client_new(const struct ws_s3_settings *st, struct ws_s3_client **out, char *errbuf,
                          size_t errlen)
{
    const char *region =
        st->region && *st->region ? st->region : env_or("AWS_REGION", "AWS_DEFAULT_REGION");
    const char *id, *secret, *token;
    char aws[128];
    const char *endpoint = st->endpoint && *st->endpoint
                               ? st->endpoint
                               : env_or("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL");
    struct ws_s3_client *c;
    ws_err_t err;

    *out = NULL;
    if (st->access_key_id || st->secret_access_key) {
        id = st->access_key_id;
        secret = st->secret_access_key;
        token = st->session_token;
    } else {
        id = getenv("AWS_ACCESS_KEY_ID");
        secret = getenv("AWS_SECRET_ACCESS_KEY");
        token = getenv("AWS_SESSION_TOKEN");
    }
    if (!region)
        region = "us-east-1";
    if (!ws_s3_region_safe(region))
        return ws_fail(WS_ERR_CONFIG, errbuf, errlen, "s3: region '%.64s' is not valid", region);
    if (!id || !*id || !secret || !*secret)
        return ws_fail(WS_ERR_CONFIG, errbuf, errlen,
                       "s3: no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in "
                       "the environment (credentials are never read from the configuration)");
    if (strpbrk(id, "\r\n") || (token && strpbrk(token, "\r\n")))
        return ws_fail(WS_ERR_CONFIG, errbuf, errlen,
                       "s3: the AWS credentials contain a line break");
    if (st->timeout_ms < 0 || st->timeout_ms > 86400000)
        return ws_fail(WS_ERR_CONFIG, errbuf, errlen, "s3: timeout_ms out of range");
    if (!endpoint) {
        snprintf(aws, sizeof aws, "https://s3.%s.amazonaws.com", region);
        endpoint = aws;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return ws_fail(WS_ERR_SINK_PERMANENT, errbuf, errlen, "s3: curl_global_init failed");
    if (!(c = calloc(1, sizeof *c))) {
        curl_global_cleanup();
        return ws_fail(WS_ERR_NOMEM, errbuf, errlen, "s3: out of memory");
    }
    c->path_style = st->path_style;
    c->verify_tls = !st->insecure_tls;
    c->timeout_ms = st->timeout_ms ? (long)st->timeout_ms : DEFAULT_TIMEOUT_MS;
    c->max_parallel = st->max_parallel ? st->max_parallel : DEFAULT_PARALLEL;
    c->list_max_keys = st->list_max_keys;
    snprintf(c->region, sizeof c->region, "%s", region);
    snprintf(c->sigv4, sizeof c->sigv4, "aws:amz:%s:s3", region);
    err = WS_ERR_NOMEM;
    if (!(c->key_id = strdup(id)) || !(c->secret = strdup(secret)) ||
        !(c->multi = curl_multi_init()))
        goto out_destroy;
    if (token && *token) {
        size_t n = strlen(token) + sizeof "x-amz-security-token: ";
        if (!(c->token_hdr = malloc(n)))
            goto out_destroy;
        snprintf(c->token_hdr, n, "x-amz-security-token: %s", token);
    }
    if ((err = parse_endpoint(c, endpoint, errbuf, errlen)))
        goto out_destroy;
    *out = c;
    return WS_OK;
out_destroy:
    ws_s3_client_destroy(c);
    return err == WS_ERR_NOMEM ? ws_fail(err, errbuf, errlen, "s3: out of memory") : err;
}

void ws_s3_client_destroy(struct ws_s3_client *c)
{
    if (!c)
        return;
    if (c->multi)
        curl_multi_cleanup(c->multi);
    free(c->scheme);
    free(c->host);
    free(c->port);
    free(c->base_path);
    free(c->endpoint);
    wipe_free(c->key_id);
    wipe_free(c->secret);
    wipe_free(c->token_hdr);
    free(c);
    curl_global_cleanup();
}

const char *ws_s3_client_endpoint(const struct ws_s3_client *c)
{
    return c->endpoint;
}

const char *ws_s3_client_region(const struct ws_s3_client *c)
{
    return c->region;
}

/* ------------------------------------------------------------------------------------------ */
/* URIs and URLs                                                                                  */

bool ws_s3_uri_is_s3(const char *uri)
{
    return strncmp(uri, "s3://", 5) == 0 || strncmp(uri, "s3a://", 6) == 0 ||
           strncmp(uri, "s3n://", 6) == 0;
}

bool ws_s3_uri_parse(const char *uri, char *bucket, size_t cap, const char **key, const char **why)
{
    const char *p, *slash;
    size_t n;

    *key = NULL;
    if (strncmp(uri, "s3://", 5) == 0)
        p = uri + 5;
    else if (strncmp(uri, "s3a://", 6) == 0 || strncmp(uri, "s3n://", 6) == 0)
        p = uri + 6;
    else {
        *why = "not an s3:// or s3a:// URI";
        return false;
    }
    slash = strchr(p, '/');
    n = slash ? (size_t)(slash - p) : strlen(p);
    if (n == 0 || n >= cap || n > 63) {
        *why = "no bucket name (1-63 characters) in the URI";
        return false;
    }
    memcpy(bucket, p, n);
    bucket[n] = '\0';
    if (!ws_s3_bucket_safe(bucket)) {
        *why = "the bucket name is not 1-63 of [A-Za-z0-9._-]";
        return false;
    }
    *key = slash ? slash + 1 : ""; /* "" names the bucket: callers wanting an object check */
    return true;
}

static bool unreserved(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '-' || ch == '_' || ch == '.' || ch == '~';
}

/* Append s percent-encoded (SigV4's UriEncode; '/' kept if keep_slash). false: no room. */
static bool append_enc(char *out, size_t cap, size_t *o, const char *s, bool keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";

    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (unreserved(*p) || (keep_slash && *p == '/')) {
            if (*o + 1 >= cap)
                return false;
            out[(*o)++] = (char)*p;
        } else {
            if (*o + 3 >= cap)
                return false;
            out[(*o)++] = '%';
            out[(*o)++] = hex[*p >> 4];
            out[(*o)++] = hex[*p & 15];
        }
    }
    out[*o] = '\0';
    return true;
}

static bool append_raw(char *out, size_t cap, size_t *o, const char *s)
{
    size_t n = strlen(s);
    if (*o + n >= cap)
        return false;
    memcpy(out + *o, s, n + 1);
    *o += n;
    return true;
}

/* A key curl would send as named: not longer than S3 allows, no "." or ".." segment. */
static const char *key_problem(const char *key)
{
    const char *seg = key;

    if (strlen(key) > KEY_MAX)
        return "the object key is longer than 1024 bytes";
    for (const char *p = key;; p++) {
        if (*p == '/' || *p == '\0') {
            size_t n = (size_t)(p - seg);
            if ((n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
                return "the object key has a '.' or '..' segment";
            if (!*p)
                return NULL;
            seg = p + 1;
        }
    }
}

static bool make_url(const struct ws_s3_client *c, const char *bucket, const char *key,
                     const char *query, char *url, size_t cap)
{
    size_t o = 0;
    bool ok = append_raw(url, cap, &o, c->scheme) && append_raw(url, cap, &o, "://");

    if (!c->path_style)
        ok = ok && append_raw(url, cap, &o, bucket) && append_raw(url, cap, &o, ".");
    ok = ok && append_raw(url, cap, &o, c->host);
    if (c->port)
        ok = ok && append_raw(url, cap, &o, ":") && append_raw(url, cap, &o, c->port);
    ok = ok && append_raw(url, cap, &o, c->base_path);
    if (c->path_style)
        ok = ok && append_raw(url, cap, &o, "/") && append_raw(url, cap, &o, bucket);
    if (*key || !c->path_style)
        ok = ok && append_raw(url, cap, &o, "/") && append_enc(url, cap, &o, key, true);
    if (query)
        ok = ok && append_raw(url, cap, &o, "?") && append_raw(url, cap, &o, query);
    return ok;
}

/* ------------------------------------------------------------------------------------------ */
/* Requests                                                                                       */

void ws_s3_req_cleanup(struct ws_s3_req *r)
{
    if (r->h)
        curl_easy_cleanup(r->h);
    curl_slist_free_all(r->hdrs);
    r->h = NULL;
    r->hdrs = NULL;
}

static bool add_header(struct ws_s3_req *r, const char *h)
{
    struct curl_slist *l = curl_slist_append(r->hdrs, h);

    if (!l)
        return false;
    r->hdrs = l;
    return true;
}

ws_err_t ws_s3_req_init(struct ws_s3_client *c, struct ws_s3_req *r, const char *method,
                        const char *bucket, const char *key, const char *query,
                        const char *payload_sha256, const char *extra_hdr, char *errbuf,
                        size_t errlen)
{
    char url[4096], hdr[128];
    const char *why;
    CURL *h;

    memset(r, 0, sizeof *r);
    r->method = method;
    snprintf(r->target, sizeof r->target, "s3://%.63s/%.1024s", bucket, key);
    if (!ws_s3_bucket_safe(bucket))
        return ws_fail(WS_ERR_INVALID, errbuf, errlen, "s3 %s: bucket '%.64s' is not valid", method,
                       bucket);
    if ((why = key_problem(key)))
        return ws_fail(WS_ERR_INVALID, errbuf, errlen, "s3 %s %s: %s", method, r->target, why);
    if (!make_url(c, bucket, key, query, url, sizeof url))
        return ws_fail(WS_ERR_INVALID, errbuf, errlen, "s3 %s %s: URL too long", method, r->target);
    if (!(r->h = h = curl_easy_init()))
        return ws_fail(WS_ERR_NOMEM, errbuf, errlen, "s3: out of memory");
    snprintf(hdr, sizeof hdr, "x-amz-content-sha256: %s",
             payload_sha256 ? payload_sha256 : ws_s3_empty_sha256);
    if (!add_header(r, hdr) || (c->token_hdr && !add_header(r, c->token_hdr)) ||
        (extra_hdr && !add_header(r, extra_hdr))) {
        ws_s3_req_cleanup(r);
        return ws_fail(WS_ERR_NOMEM, errbuf, errlen, "s3: out of memory");
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PRIVATE, r);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, r->curlerr);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->timeout_ms < 10000 ? c->timeout_ms : 10000L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, c->verify_tls ? 1L : 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, c->verify_tls ? 2L : 0L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "windowseal/" WS_VERSION);
    curl_easy_setopt(h, CURLOPT_AWS_SIGV4, c->sigv4);
    curl_easy_setopt(h, CURLOPT_USERNAME, c->key_id);
    curl_easy_setopt(h, CURLOPT_PASSWORD, c->secret);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, r->hdrs);
    if (strcmp(method, "GET") == 0)
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    return WS_OK;
}

bool ws_s3_req_keep_error(struct ws_s3_req *r, const char *data, size_t n)
{
    long status = 0;
    size_t room, take;

    curl_easy_getinfo(r->h, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 200 && status <= 299)
        return false;
    room = sizeof r->errbody - 1 - r->errbody_len;
    take = n < room ? n : room;
    memcpy(r->errbody + r->errbody_len, data, take);
    r->errbody_len += take;
    r->errbody[r->errbody_len] = '\0';
    return true;
}

bool ws_s3_req_ok(const struct ws_s3_req *r)
{
    return r->result == CURLE_OK && r->status >= 200 && r->status <= 299;
}

ws_err_t ws_s3_req_fail(const struct ws_s3_client *c, const struct ws_s3_req *r, char *errbuf,
                        size_t errlen)
{
    char code[128], msg[256];

    if (r->result != CURLE_OK) {
        if (r->result == CURLE_OPERATION_TIMEDOUT)
            return ws_fail(WS_ERR_TIMEOUT, errbuf, errlen, "s3 %s %s: timed out after %ld ms (%s)",
                           r->method, r->target, c->timeout_ms,
                           r->curlerr[0] ? r->curlerr : "no response");
        return ws_fail(ws_s3_curl_cause(r->result), errbuf, errlen, "s3 %s %s: %s (%s)", r->method,
                       r->target, curl_easy_strerror(r->result), r->curlerr[0] ? r->curlerr : "-");
    }
    ws_s3_xml_field(r->errbody, r->errbody_len, "Code", code, sizeof code);
    ws_s3_xml_field(r->errbody, r->errbody_len, "Message", msg, sizeof msg);
    return ws_fail(r->status == 404 && strcmp(r->method, "GET") == 0 &&
                           (!code[0] || strcmp(code, "NoSuchKey") == 0)
                       ? WS_ERR_NOT_FOUND
                       : ws_s3_status_cause(r->status, code),
                   errbuf, errlen, "s3 %s %s: HTTP %ld %s%s%s", r->method, r->target, r->status,
                   code[0] ? code : "(no S3 error code)", msg[0] ? ": " : "", msg);
}

ws_err_t ws_s3_run(struct ws_s3_client *c, struct ws_s3_req **rs, size_t n, char *errbuf,
                   size_t errlen)
{
    CURLMcode mc = CURLM_OK;
    size_t next = 0, active = 0;
    int running = 0, q;
    CURLMsg *m;

    while (next < n && active < c->max_parallel) {
        if ((mc = curl_multi_add_handle(c->multi, rs[next]->h)) != CURLM_OK)
            goto out_remove;
        next++, active++;
    }
    while (active) {
        if ((mc = curl_multi_perform(c->multi, &running)) != CURLM_OK)
            break;
        while ((m = curl_multi_info_read(c->multi, &q))) {
            struct ws_s3_req *r = NULL;
            if (m->msg != CURLMSG_DONE)
                continue;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
            r->result = m->data.result;
            curl_easy_getinfo(r->h, CURLINFO_RESPONSE_CODE, &r->status);
            curl_multi_remove_handle(c->multi, r->h);
            active--;
            if (next < n) { /* keep max_parallel in flight: the next one takes its place */
                if ((mc = curl_multi_add_handle(c->multi, rs[next]->h)) != CURLM_OK)
                    goto out_remove;
                next++, active++;
            }
        }
        if (active && (mc = curl_multi_poll(c->multi, NULL, 0, 1000, NULL)) != CURLM_OK)
            break;
    }
out_remove:
    if (mc != CURLM_OK) /* removing a handle that is not in the multi is harmless */
        for (size_t i = 0; i < next; i++)
            curl_multi_remove_handle(c->multi, rs[i]->h);
    if (mc != CURLM_OK)
        return ws_fail(mc == CURLM_OUT_OF_MEMORY ? WS_ERR_NOMEM : WS_ERR_SINK_RETRY, errbuf, errlen,
                       "s3: curl multi: %s", curl_multi_strerror(mc));
    return WS_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* GET                                                                                            */

struct gx {
    struct ws_s3_req req; /* first: CURLOPT_PRIVATE */
    struct ws_s3_get *g;
    ws_err_t cb_err;
    bool too_large, ready;
};

static size_t gx_body(char *data, size_t size, size_t nmemb, void *ud)
{
    struct gx *x = ud;
    struct ws_s3_get *g = x->g;
    size_t n = size * nmemb;

    if (ws_s3_req_keep_error(&x->req, data, n))
        return n;
    if (g->max_bytes && n > g->max_bytes - g->bytes) {
        x->too_large = true;
        return 0;
    }
    if (g->on_data && (x->cb_err = g->on_data(g->ud, data, n)) != WS_OK)
        return 0;
    g->bytes += n;
    return n;
}

static void gx_outcome(struct ws_s3_client *c, struct gx *x)
{
    struct ws_s3_get *g = x->g;

    g->status = x->req.status;
    ws_s3_xml_field(x->req.errbody, x->req.errbody_len, "Code", g->code, sizeof g->code);
    if (x->cb_err)
        g->err = ws_fail(x->cb_err, g->error, sizeof g->error, "s3 GET %s: %s after %llu bytes",
                         x->req.target, ws_strerror(x->cb_err), (unsigned long long)g->bytes);
    else if (x->too_large)
        g->err = ws_fail(WS_ERR_TOO_LARGE, g->error, sizeof g->error,
                         "s3 GET %s: larger than %llu bytes", x->req.target,
                         (unsigned long long)g->max_bytes);
    else if (ws_s3_req_ok(&x->req))
        g->err = WS_OK;
    else
        g->err = ws_s3_req_fail(c, &x->req, g->error, sizeof g->error);
}

ws_err_t ws_s3_get_many(struct ws_s3_client *c, struct ws_s3_get *gets, size_t n, char *errbuf,
                        size_t errlen)
{
    struct gx *xs = n ? calloc(n, sizeof *xs) : NULL;
    struct ws_s3_req **rs = n ? calloc(n, sizeof *rs) : NULL;
    size_t nready = 0;
    ws_err_t err = WS_OK;

    if (n && (!xs || !rs)) {
        free(xs);
        free(rs);
        return ws_fail(WS_ERR_NOMEM, errbuf, errlen, "s3: out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        struct ws_s3_get *g = &gets[i];
        char bucket[64];
        const char *key = g->key, *why = NULL;

        xs[i].g = g;
        g->err = WS_OK;
        g->status = 0;
        g->code[0] = g->error[0] = '\0';
        g->bytes = 0;
        if (g->uri && !ws_s3_uri_parse(g->uri, bucket, sizeof bucket, &key, &why)) {
            g->err = ws_fail(WS_ERR_INVALID, g->error, sizeof g->error, "%s", why);
            continue;
        }
        if (!g->uri)
            snprintf(bucket, sizeof bucket, "%s", g->bucket ? g->bucket : "");
        if (!key || !*key) {
            g->err = ws_fail(WS_ERR_INVALID, g->error, sizeof g->error, "no object key in the URI");
            continue;
        }
        g->err = ws_s3_req_init(c, &xs[i].req, "GET", bucket, key, NULL, NULL, NULL, g->error,
                                sizeof g->error);
        if (g->err)
            continue;
        curl_easy_setopt(xs[i].req.h, CURLOPT_WRITEFUNCTION, gx_body);
        curl_easy_setopt(xs[i].req.h, CURLOPT_WRITEDATA, &xs[i]);
        xs[i].ready = true;
        rs[nready++] = &xs[i].req;
    }
    if (nready && (err = ws_s3_run(c, rs, nready, errbuf, errlen)))
        goto out_free;
    for (size_t i = 0; i < n; i++)
        if (xs[i].ready)
            gx_outcome(c, &xs[i]);
out_free:
    for (size_t i = 0; i < n; i++)
        ws_s3_req_cleanup(&xs[i].req);
    free(xs);
    free(rs);
    return err;
}

ws_err_t ws_s3_get_stream(struct ws_s3_client *c, const char *uri, ws_s3_data_fn on_data, void *ud,
                          uint64_t *bytes, char *errbuf, size_t errlen)
{
    struct ws_s3_get g = {.uri = uri, .on_data = on_data, .ud = ud};
    ws_err_t err = ws_s3_get_many(c, &g, 1, errbuf, errlen);

    if (bytes)
        *bytes = g.bytes;
    if (err)
        return err;
    if (g.err)
        ws_fail(g.err, errbuf, errlen, "%s", g.error);
    return g.err;
}

struct membuf {
    char *p;
    size_t len, cap;
};

static ws_err_t mem_append(void *ud, const void *data, size_t n)
{
    struct membuf *m = ud;

    if (m->len + n + 1 > m->cap) {
        size_t cap = m->cap ? m->cap : 4096;
        char *np;
        while (cap < m->len + n + 1)
            cap *= 2;
        if (!(np = realloc(m->p, cap)))
            return WS_ERR_NOMEM;
        m->p = np;
        m->cap = cap;
    }
    memcpy(m->p + m->len, data, n);
    m->len += n;
    m->p[m->len] = '\0';
    return WS_OK;
}

ws_err_t ws_s3_get_buf(struct ws_s3_client *c, const char *uri, size_t max, char **buf, size_t *len,
                       char *errbuf, size_t errlen)
{
    struct membuf m = {0};
    struct ws_s3_get g = {.uri = uri, .on_data = mem_append, .ud = &m, .max_bytes = max};
    ws_err_t err = ws_s3_get_many(c, &g, 1, errbuf, errlen);

    *buf = NULL;
    *len = 0;
    if (!err && g.err)
        err = ws_fail(g.err, errbuf, errlen, "%s", g.error);
    if (!err && !m.p && !(m.p = calloc(1, 1)))
        err = ws_fail(WS_ERR_NOMEM, errbuf, errlen, "s3: out of memory");
    if (err) {
        free(m.p);
        return err;
    }
    *buf = m.p;
    *len = m.len;
    return WS_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* ListObjectsV2                                                                                  */

/* The text between <tag> and </tag> at or after *at within [*at, end), entities decoded into
 * out; *at moves past it. false: no such element (or it does not fit). */
static bool xml_next(const char **at, const char *end, const char *tag, char *out, size_t cap)
{
    char open[40], close[40];
    const char *a, *b;
    size_t o = 0;

    snprintf(open, sizeof open, "<%s>", tag);
    snprintf(close, sizeof close, "</%s>", tag);
    if (!(a = memmem(*at, (size_t)(end - *at), open, strlen(open))))
        return false;
    a += strlen(open);
    if (!(b = memmem(a, (size_t)(end - a), close, strlen(close))))
        return false;
    *at = b + strlen(close);
    while (a < b) {
        char ch = *a++;
        if (ch == '&') {
            static const struct {
                const char *name;
                char ch;
            } ents[] = {{"amp;", '&'}, {"lt;", '<'}, {"gt;", '>'}, {"quot;", '"'}, {"apos;", '\''}};
            bool done = false;
            for (size_t i = 0; i < sizeof ents / sizeof ents[0] && !done; i++) {
                size_t n = strlen(ents[i].name);
                if ((size_t)(b - a) >= n && memcmp(a, ents[i].name, n) == 0) {
                    ch = ents[i].ch;
                    a += n;
                    done = true;
                }
            }
            if (!done && a < b && *a == '#') { /* &#NN; or &#xHH; (ASCII only, as S3 writes) */
                char *e;
                long v = a + 1 < b && (a[1] == 'x' || a[1] == 'X') ? strtol(a + 2, &e, 16)
                                                                   : strtol(a + 1, &e, 10);
                if (e < b && *e == ';' && v > 0 && v < 128) {
                    ch = (char)v;
                    a = e + 1;
                    done = true;
                }
            }
            if (!done)
                return false;
        }
        if (o + 1 >= cap)
            return false;
        out[o++] = ch;
    }
    out[o] = '\0';
    return true;
}

/* The query of one page, in SigV4 canonical order (parameter names sorted). */
static bool list_query(const struct ws_s3_client *c, const char *token, const char *delimiter,
                       const char *prefix, char *q, size_t cap)
{
    size_t o = 0;
    char mk[32];
    bool ok = true;

    q[0] = '\0';
    if (token)
        ok = append_raw(q, cap, &o, "continuation-token=") &&
             append_enc(q, cap, &o, token, false) && append_raw(q, cap, &o, "&");
    if (ok && delimiter && *delimiter)
        ok = append_raw(q, cap, &o, "delimiter=") && append_enc(q, cap, &o, delimiter, false) &&
             append_raw(q, cap, &o, "&");
    ok = ok && append_raw(q, cap, &o, "list-type=2");
    if (ok && c->list_max_keys) {
        snprintf(mk, sizeof mk, "&max-keys=%u", c->list_max_keys);
        ok = append_raw(q, cap, &o, mk);
    }
    return ok && append_raw(q, cap, &o, "&prefix=") && append_enc(q, cap, &o, prefix, false);
}

/* Hand one page's keys and prefixes to fn; *token: the next page's, "" if this is the last. */
static ws_err_t list_page(const char *body, size_t len, ws_s3_list_fn fn, void *ud, char *token,
                          size_t tcap, const char *target, char *errbuf, size_t errlen)
{
    const char *end = body + len, *at = body, *blk_end;
    char key[KEY_MAX * 6 + 1], size[32], trunc[16];
    ws_err_t err;

    token[0] = '\0';
    while ((at = memmem(at, (size_t)(end - at), "<Contents>", 10))) {
        if (!(blk_end = memmem(at, (size_t)(end - at), "</Contents>", 11)))
            break;
        char *e;
        const char *p = at;
        unsigned long long sz;
        const char *q = at;
        if (!xml_next(&p, blk_end, "Key", key, sizeof key) ||
            !xml_next(&q, blk_end, "Size", size, sizeof size) ||
            ((sz = strtoull(size, &e, 10)), *e != '\0' || !size[0]))
            return ws_fail(WS_ERR_MALFORMED, errbuf, errlen,
                           "s3 GET %s: a listing entry without a Key or Size", target);
        if ((err = fn(ud, key, sz, false)))
            return err;
        at = blk_end + 11;
    }
    at = body;
    while ((at = memmem(at, (size_t)(end - at), "<CommonPrefixes>", 16))) {
        if (!(blk_end = memmem(at, (size_t)(end - at), "</CommonPrefixes>", 17)))
            break;
        const char *p = at;
        if (!xml_next(&p, blk_end, "Prefix", key, sizeof key))
            return ws_fail(WS_ERR_MALFORMED, errbuf, errlen,
                           "s3 GET %s: a common prefix without a Prefix", target);
        if ((err = fn(ud, key, 0, true)))
            return err;
        at = blk_end + 17;
    }
    at = body;
    if (xml_next(&at, end, "IsTruncated", trunc, sizeof trunc) && strcmp(trunc, "true") == 0) {
        at = body;
        if (!xml_next(&at, end, "NextContinuationToken", token, tcap) || !token[0])
            return ws_fail(WS_ERR_MALFORMED, errbuf, errlen,
                           "s3 GET %s: a truncated listing without a NextContinuationToken",
                           target);
    }
    return WS_OK;
}

struct lx {
    struct ws_s3_req req;
    struct membuf body;
    bool too_large;
};

static size_t lx_body(char *data, size_t size, size_t nmemb, void *ud)
{
    struct lx *x = ud;
    size_t n = size * nmemb;

    if (ws_s3_req_keep_error(&x->req, data, n))
        return n;
    if (x->body.len + n > LIST_BODY_MAX) {
        x->too_large = true;
        return 0;
    }
    return mem_append(&x->body, data, n) == WS_OK ? n : 0;
}

ws_err_t ws_s3_list(struct ws_s3_client *c, const char *bucket, const char *prefix,
                    const char *delimiter, ws_s3_list_fn fn, void *ud, char *errbuf, size_t errlen)
{
    char query[4096], token[2048], target[1200];
    bool more = true, first = true;
    ws_err_t err = WS_OK;

    snprintf(target, sizeof target, "s3://%.63s/%.1024s (ListObjectsV2)", bucket, prefix);
    token[0] = '\0';
    while (more && !err) {
        struct lx x = {0};
        struct ws_s3_req *rs[1] = {&x.req};

        if (!list_query(c, first ? NULL : token, delimiter, prefix, query, sizeof query))
            return ws_fail(WS_ERR_INVALID, errbuf, errlen, "s3 GET %s: query too long", target);
        first = false;
        if ((err = ws_s3_req_init(c, &x.req, "GET", bucket, "", query, NULL, NULL, errbuf, errlen)))
            return err;
        curl_easy_setopt(x.req.h, CURLOPT_WRITEFUNCTION, lx_body);
        curl_easy_setopt(x.req.h, CURLOPT_WRITEDATA, &x);
        snprintf(x.req.target, sizeof x.req.target, "%s", target);
        if (!(err = ws_s3_run(c, rs, 1, errbuf, errlen))) {
            if (x.too_large)
                err = ws_fail(WS_ERR_TOO_LARGE, errbuf, errlen, "s3 GET %s: page larger than %u",
                              target, LIST_BODY_MAX);
            else if (!ws_s3_req_ok(&x.req)) {
                err = ws_s3_req_fail(c, &x.req, errbuf, errlen);
                if (x.req.status == 404) /* NoSuchBucket: nothing there to list */
                    err = WS_ERR_NOT_FOUND;
            } else {
                err = list_page(x.body.p ? x.body.p : "", x.body.len, fn, ud, token, sizeof token,
                                target, errbuf, errlen);
                more = !err && token[0];
            }
        }
        free(x.body.p);
        ws_s3_req_cleanup(&x.req);
    }
    return err;
}
