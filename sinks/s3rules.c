/*
 * s3rules.c — what S3 accepts and what its answers mean, as pure functions for s3.c: the
 * object-name, bucket and region rules, the <Code>/<Message> of an error document, and the
 * cause (a ws_err_t, whose class the engine acts on) of a failed request.
 */
#include "sinks/s3_int.h"

#include <stdio.h>
#include <string.h>

/* URL-unreserved characters and '/', no empty, "." or ".." segment, no leading '/'. */
bool ws_s3_name_safe(const char *s, bool allow_empty)
{
    const char *seg = s;

    if (!*s)
        return allow_empty;
    if (*s == '/')
        return false;
    for (const char *p = s;; p++) {
        if (*p == '/' || *p == '\0') {
            size_t n = (size_t)(p - seg);
            if ((n == 0 && *p == '/') || (n == 1 && seg[0] == '.') ||
                (n == 2 && seg[0] == '.' && seg[1] == '.'))
                return false;
            if (*p == '\0')
                return true;
            seg = p + 1;
            continue;
        }
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_' || *p == '.' || *p == '~'))
            return false;
    }
}

/* DNS-label-safe bucket names; the stricter AWS rules are the store's business. */
bool ws_s3_bucket_safe(const char *b)
{
    size_t n = strlen(b);

    if (n < 1 || n > 63)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((b[i] >= 'a' && b[i] <= 'z') || (b[i] >= 'A' && b[i] <= 'Z') ||
              (b[i] >= '0' && b[i] <= '9') || b[i] == '-' || b[i] == '.' || b[i] == '_'))
            return false;
    return true;
}

bool ws_s3_region_safe(const char *r)
{
    size_t n = strlen(r);

    if (n < 1 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((r[i] >= 'a' && r[i] <= 'z') || (r[i] >= '0' && r[i] <= '9') || r[i] == '-'))
            return false;
    return true;
}

/* Copy the text of <tag>...</tag> from an XML error body, printable ASCII only. */
void ws_s3_xml_field(const char *body, size_t len, const char *tag, char *out, size_t cap)
{
    char open[32], close[32];
    const char *end = body + len, *a, *b;
    size_t o = 0;

    out[0] = '\0';
    snprintf(open, sizeof open, "<%s>", tag);
    snprintf(close, sizeof close, "</%s>", tag);
    a = memmem(body, len, open, strlen(open));
    if (!a)
        return;
    a += strlen(open);
    b = memmem(a, (size_t)(end - a), close, strlen(close));
    if (!b)
        return;
    for (; a < b && o + 1 < cap; a++)
        out[o++] = (*a >= 0x20 && *a < 0x7f && *a != '"') ? *a : '?';
    out[o] = '\0';
}

/* S3 error codes that mean "try again later" whatever the status says (RequestTimeout is 400). */
static bool code_retriable(const char *code)
{
    static const char *const codes[] = {"RequestTimeout",   "SlowDown",
                                        "InternalError",    "ServiceUnavailable",
                                        "OperationAborted", "ConditionalRequestConflict"};

    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        if (strcmp(code, codes[i]) == 0)
            return true;
    return false;
}

/* The cause of a failed transfer, by curl's code (CURLE_OPERATION_TIMEDOUT is handled apart). */
ws_err_t ws_s3_curl_cause(CURLcode c)
{
    switch (c) {
    case CURLE_LOGIN_DENIED:
        return WS_ERR_PERMISSION;
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_NOT_BUILT_IN:
        return WS_ERR_UNSUPPORTED;
    case CURLE_URL_MALFORMAT:
    case CURLE_BAD_FUNCTION_ARGUMENT:
        return WS_ERR_INVALID;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CACERT_BADFILE:
        return WS_ERR_SINK_PERMANENT; /* TLS trust: no closer permanent code */
    case CURLE_OUT_OF_MEMORY:
        return WS_ERR_NOMEM;
    default: /* connection refused, resets, resolver trouble: the store may come back */
        return WS_ERR_IO;
    }
}

/* The cause of an HTTP error status, given the store's <Code>. */
ws_err_t ws_s3_status_cause(long status, const char *code)
{
    if (status == 408 || strcmp(code, "RequestTimeout") == 0)
        return WS_ERR_TIMEOUT;
    if (status == 409 || status == 429 || (status >= 500 && status <= 599) || code_retriable(code))
        return WS_ERR_SINK_RETRY;
    if (status == 401 || status == 403)
        return WS_ERR_PERMISSION;
    if (status == 413)
        return WS_ERR_TOO_LARGE;
    return WS_ERR_SINK_PERMANENT;
}
