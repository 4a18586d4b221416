/*
 * sinks/s3client_int.h — the request layer of the shared S3 client (s3client.c), private to
 * sinks/: what the s3 sink (s3.c) builds its compare-GETs and PUTs on, so that addressing,
 * SigV4, credentials, timeouts, the multi loop and the error text exist once.
 *
 * A request is a struct ws_s3_req, embedded as the FIRST member of whatever the caller tracks
 * per transfer (CURLOPT_PRIVATE points at it, so the loop can record result and status). The
 * caller sets its own body callbacks after ws_s3_req_init, and a write callback starts with
 * ws_s3_req_keep_error() so that error documents are kept for their <Code> and <Message>
 * whatever the caller does with a 2xx body.
 */
#ifndef WS_S3CLIENT_INT_H
#define WS_S3CLIENT_INT_H

#include "sinks/sink.h"
#include "sinks/s3_int.h"

#include <curl/curl.h>

#define WS_S3_ERRBODY_MAX 4096 /* bytes of an error response kept for its <Code> and <Message> */

extern const char ws_s3_empty_sha256[]; /* x-amz-content-sha256 of an empty payload */

struct ws_s3_req {
    CURL *h;
    struct curl_slist *hdrs;
    const char *method;
    char target[1100]; /* "s3://bucket/key", for messages */
    char errbody[WS_S3_ERRBODY_MAX];
    size_t errbody_len;
    CURLcode result; /* set by ws_s3_run */
    long status;     /* set by ws_s3_run; 0: no response */
    char curlerr[CURL_ERROR_SIZE];
};

/*
 * Set up method on s3://bucket/key (key "" for the bucket itself) with query (already in SigV4
 * canonical form: sorted, encoded; NULL for none), signed with payload_sha256 (hex; NULL: the
 * empty payload) and extra_hdr (one "Name: value" line or NULL). The key is percent-encoded
 * here (everything but unreserved characters and '/'), so the URL path is the canonical URI
 * curl signs. WS_ERR_INVALID: the key or bucket cannot be addressed (message in errbuf);
 * WS_ERR_NOMEM.
 */
ws_err_t ws_s3_req_init(struct ws_s3_client *c, struct ws_s3_req *r, const char *method,
                        const char *bucket, const char *key, const char *query,
                        const char *payload_sha256, const char *extra_hdr, char *errbuf,
                        size_t errlen) WS_MUST_CHECK;
void ws_s3_req_cleanup(struct ws_s3_req *r);
/* In a write callback: true if the response is an error document (its start is kept). */
bool ws_s3_req_keep_error(struct ws_s3_req *r, const char *data, size_t n);
/* Run requests on c's multi handle, at most c's max_parallel at once, until all finished. Only a
 * failure of the multi handle itself is an error; each request's outcome is in it. */
ws_err_t ws_s3_run(struct ws_s3_client *c, struct ws_s3_req **rs, size_t n, char *errbuf,
                   size_t errlen) WS_MUST_CHECK;
/* The cause of a finished request that did not answer 2xx, with its text in errbuf:
 * "s3 GET s3://b/k: HTTP 403 AccessDenied: Access Denied". A 404 NoSuchKey is NOT_FOUND. */
ws_err_t ws_s3_req_fail(const struct ws_s3_client *c, const struct ws_s3_req *r, char *errbuf,
                        size_t errlen);
/* The request answered 2xx. */
bool ws_s3_req_ok(const struct ws_s3_req *r);

#endif /* WS_S3CLIENT_INT_H */
