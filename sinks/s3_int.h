/*
 * sinks/s3_int.h — the S3 rules s3.c relies on (s3rules.c); private to sinks/.
 */
#ifndef WS_S3_INT_H
#define WS_S3_INT_H

#include "window/window.h"

#include <curl/curl.h>

/* URL-unreserved characters and '/', no empty, "." or ".." segment, no leading '/'. */
bool ws_s3_name_safe(const char *s, bool allow_empty);
/* DNS-label-safe bucket names; the stricter AWS rules are the store's business. */
bool ws_s3_bucket_safe(const char *b);
bool ws_s3_region_safe(const char *r);
/* Copy the text of <tag>...</tag> from an XML error body, printable ASCII only. */
void ws_s3_xml_field(const char *body, size_t len, const char *tag, char *out, size_t cap);
/* The cause of a transfer curl failed (CURLE_OPERATION_TIMEDOUT is the caller's). */
ws_err_t ws_s3_curl_cause(CURLcode c);
/* The cause of an HTTP error status, given the store's <Code> ("" if none). */
ws_err_t ws_s3_status_cause(long status, const char *code);

#endif /* WS_S3_INT_H */
