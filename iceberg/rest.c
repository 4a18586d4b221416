/*
 * rest.c — the Iceberg REST catalog client: two GETs of the REST OpenAPI, over libcurl.
 *
 *   GET {uri}/v1/config[?warehouse=W]       -> {defaults: {...}, overrides: {...}}
 *   GET {uri}/v1/{prefix}/namespaces/{ns}/tables/{table}?snapshots=all   -> LoadTableResult
 *
 * The prefix is the server's overrides.prefix, else the configured one, else defaults.prefix
 * (SPEC §6): the server may move a catalog, the operator may pin one, and the server's default
 * comes last. {ns} is the namespace levels percent-encoded one by one and joined by the unit
 * separator 0x1F, itself encoded ("%1F"), as the OpenAPI's namespace parameter says; a level
 * holding a dot stays one level.
 *
 * Both responses are hostile input: bodies are bounded (WS_ICEBERG_MAX_RESPONSE), parsed by
 * jansson with duplicate keys refused (its nesting bound applies), and only the types we need are
 * looked at. An error body's message goes into errbuf shortened and reduced to printable ASCII,
 * since it ends up in a signed statement.
 *
 * One easy handle per request, no shared state: called from any build worker at once. The engine
 * retries whatever this returns as retriable; nothing here retries.
 */
#include "iceberg/iceberg_int.h"

#include <curl/curl.h>

#include <stdlib.h>
#include <string.h>

struct body {
    char *p;
    size_t len, cap, max;
    bool too_large;
};

static size_t on_data(char *d, size_t sz, size_t nm, void *opaque)
{
    struct body *b = opaque;
    size_t n = sz * nm;

    if (n > b->max - b->len) {
        b->too_large = true;
        return 0; /* curl stops with CURLE_WRITE_ERROR */
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 16384;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p)
            return 0;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, d, n);
    b->len += n;
    b->p[b->len] = '\0';
    return n;
}

/* Percent-encode s (RFC 3986 unreserved kept, and '/' if keep_slash) onto the end of out. */
static bool pct(char *out, size_t cap, const char *s, bool keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = strlen(out);

    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        bool keep = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                    (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' || *p == '~' ||
                    (keep_slash && *p == '/');
        if (o + 4 > cap)
            return false;
        if (keep) {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    out[o] = '\0';
    return true;
}

static bool cat_str(char *out, size_t cap, const char *s)
{
    size_t o = strlen(out), n = strlen(s);
    if (o + n + 1 > cap)
        return false;
    memcpy(out + o, s, n + 1);
    return true;
}

/* The REST ErrorModel's message, printable and short, or "". */
static void error_message(const struct body *b, char *out, size_t cap)
{
    json_t *j = b->p ? json_loadb(b->p, b->len, 0, NULL) : NULL;
    const char *m = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
    size_t o = 0;

    out[0] = '\0';
    if (m && cap > 4) {
        o = (size_t)snprintf(out, cap, ": ");
        for (; *m && o + 1 < cap && o < 160; m++)
            out[o++] = *m >= 0x20 && *m < 0x7f ? *m : '?';
        out[o] = '\0';
    }
    json_decref(j);
}

/* GET url; 200 with a JSON object -> *out. The error classes of iceberg_int.h. */
static ws_err_t get_json(const char *url, const char *auth, const char *what, json_t **out,
                         char *errbuf, size_t errlen)
{
    CURL *h = curl_easy_init();
    struct curl_slist *hdrs = NULL, *t;
    struct body b = {.max = WS_ICEBERG_MAX_RESPONSE};
    CURLcode rc;
    long status = 0;
    json_error_t jerr;
    char msg[200];
    ws_err_t err = WS_OK;

    *out = NULL;
    if (!h)
        return ws_fail(WS_ERR_NOMEM, errbuf, errlen, "%s: cannot create a curl handle", what);
    if (!(t = curl_slist_append(hdrs, "Accept: application/json")))
        goto nomem;
    hdrs = t;
    if (auth) {
        if (!(t = curl_slist_append(hdrs, auth)))
            goto nomem;
        hdrs = t;
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)WS_ICEBERG_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)WS_ICEBERG_TIMEOUT_MS);
    /* A catalog redirecting to file:// or anywhere else is not followed. */
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    rc = curl_easy_perform(h);
    if (rc == CURLE_WRITE_ERROR && b.too_large) {
        err = ws_fail(WS_ERR_TOO_LARGE, errbuf, errlen, "%s: response over %u bytes", what,
                      WS_ICEBERG_MAX_RESPONSE);
        goto out;
    }
    if (rc == CURLE_OPERATION_TIMEDOUT) {
        err = ws_fail(WS_ERR_TIMEOUT, errbuf, errlen, "%s: timed out", what);
        goto out;
    }
    if (rc == CURLE_OUT_OF_MEMORY || rc == CURLE_WRITE_ERROR)
        goto nomem;
    if (rc != CURLE_OK) { /* refused, reset, unresolvable, TLS: the catalog is not there now */
        err = ws_fail(WS_ERR_IO, errbuf, errlen, "%s: %s", what, curl_easy_strerror(rc));
        goto out;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) {
        error_message(&b, msg, sizeof msg);
        if (status >= 500 || status == 429 || status == 408)
            err = WS_ERR_IO;
        else if (status == 404)
            err = WS_ERR_NOT_FOUND;
        else if (status == 401 || status == 403)
            err = WS_ERR_PERMISSION;
        else
            err = WS_ERR_MALFORMED;
        ws_fail(err, errbuf, errlen, "%s: HTTP %ld%s", what, status, msg);
        goto out;
    }
    *out = json_loadb(b.p ? b.p : "", b.len, JSON_REJECT_DUPLICATES, &jerr);
    if (!*out || !json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        err = ws_fail(WS_ERR_MALFORMED, errbuf, errlen, "%s: not a JSON object%s%s", what,
                      *jerr.text ? ": " : "", jerr.text);
    }
    goto out;
nomem:
    err = ws_fail(WS_ERR_NOMEM, errbuf, errlen, "%s: out of memory", what);
out:
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    free(b.p);
    return err;
}

/* A prefix from a config object, if it is a non-empty string. */
static const char *prefix_of(const json_t *cfg, const char *which)
{
    const char *p = json_string_value(json_object_get(json_object_get(cfg, which), "prefix"));
    return p && *p ? p : NULL;
}

ws_err_t ws_iceberg_rest_load(const struct ws_iceberg_catalog_conf *cat, char *const *ns,
                              size_t nns, const char *table, json_t **result, char *errbuf,
                              size_t errlen)
{
    char url[4096], auth[4200], base[2048];
    const char *prefix;
    json_t *cfg = NULL;
    ws_err_t err;
    size_t bl;

    *result = NULL;
    bl = strlen(cat->uri);
    if (bl >= sizeof base)
        return ws_fail(WS_ERR_CONFIG, errbuf, errlen, "catalog %s: uri too long", cat->name);
    memcpy(base, cat->uri, bl + 1);
    while (bl > 0 && base[bl - 1] == '/') /* "http://c:8181/" and "http://c:8181" alike */
        base[--bl] = '\0';
    auth[0] = '\0';
    if (*cat->token_env) {
        const char *tok = getenv(cat->token_env);
        if (!tok || !*tok)
            return ws_fail(WS_ERR_CONFIG, errbuf, errlen,
                           "catalog %s: token_env %s is not set in the environment", cat->name,
                           cat->token_env);
        if (strlen(tok) > 4000 || strpbrk(tok, "\r\n"))
            return ws_fail(WS_ERR_CONFIG, errbuf, errlen,
                           "catalog %s: the token in %s is not a bearer token", cat->name,
                           cat->token_env);
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", tok);
    }

    snprintf(url, sizeof url, "%s/v1/config", base);
    if (*cat->warehouse &&
        (!cat_str(url, sizeof url, "?warehouse=") || !pct(url, sizeof url, cat->warehouse, false)))
        return ws_fail(WS_ERR_CONFIG, errbuf, errlen, "catalog %s: warehouse too long", cat->name);
    if ((err = get_json(url, *auth ? auth : NULL, "catalog config", &cfg, errbuf, errlen)))
        return err;
    prefix = prefix_of(cfg, "overrides");
    if (!prefix)
        prefix = *cat->prefix ? cat->prefix : prefix_of(cfg, "defaults");

    snprintf(url, sizeof url, "%s/v1/", base);
    bool ok = true;
    if (prefix)
        ok = pct(url, sizeof url, prefix, true) && cat_str(url, sizeof url, "/");
    ok = ok && cat_str(url, sizeof url, "namespaces/");
    for (size_t i = 0; ok && i < nns; i++)
        ok = (i == 0 || cat_str(url, sizeof url, "%1F")) && pct(url, sizeof url, ns[i], false);
    ok = ok && cat_str(url, sizeof url, "/tables/") && pct(url, sizeof url, table, false) &&
         cat_str(url, sizeof url, "?snapshots=all");
    json_decref(cfg);
    if (!ok)
        return ws_fail(WS_ERR_INVALID, errbuf, errlen, "table name too long for a URL");
    return get_json(url, *auth ? auth : NULL, "loadTable", result, errbuf, errlen);
}
