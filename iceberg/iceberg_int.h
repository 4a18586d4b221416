/*
 * iceberg/iceberg_int.h — private to iceberg/: the REST catalog client (rest.c) as resolve.c
 * uses it.
 */
#ifndef WS_ICEBERG_INT_H
#define WS_ICEBERG_INT_H

#include "iceberg/iceberg.h"

/*
 * loadTable for namespace levels ns[0..nns) and table, after GET /v1/config (SPEC §6 "REST"):
 * *result is the LoadTableResult object (metadata, config, ...), owned by the caller. Errors:
 * retriable (WS_ERR_IO for 5xx, 429, 408 and connection failures, WS_ERR_TIMEOUT), or permanent:
 * WS_ERR_NOT_FOUND (404), WS_ERR_PERMISSION (401, 403), WS_ERR_MALFORMED (not the JSON the REST
 * OpenAPI defines, other 4xx), WS_ERR_TOO_LARGE, WS_ERR_CONFIG (token_env names no variable).
 */
ws_err_t ws_iceberg_rest_load(const struct ws_iceberg_catalog_conf *cat, char *const *ns,
                              size_t nns, const char *table, json_t **result, char *errbuf,
                              size_t errlen) WS_MUST_CHECK;

#endif
