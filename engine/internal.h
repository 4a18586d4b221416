/*
 * engine/internal.h — private to engine/: the statement's sources digest and metrics. Not
 * installed, not included outside engine/.
 */
#ifndef WS_ENGINE_INTERNAL_H
#define WS_ENGINE_INTERNAL_H

#include "engine/engine.h"

/* Sources digest (as ws_notification_sources_digest) of a statement's predicate.window.sources. */
ws_err_t ws_statement_sources_digest(const char *json, size_t len,
                                     uint8_t out[WS_HASH_LEN]) WS_MUST_CHECK;

/* ------------------------------------------------------------------------------------------ */
/* Metrics (metrics.c): Prometheus exposition on metrics.listen. All calls accept m == NULL.    */

struct ws_metrics;
/* listen "" or NULL: a registry that is kept but not served. */
ws_err_t ws_metrics_start(const char *listen, struct ws_metrics **out, char *errbuf,
                          size_t errlen) WS_MUST_CHECK;
void ws_metrics_stop(struct ws_metrics *m);
/* labels: Prometheus label text without braces, e.g. `sink="file:/x"`; values must be escaped. */
void ws_metrics_add(struct ws_metrics *m, const char *family, const char *labels, double v);
void ws_metrics_set(struct ws_metrics *m, const char *family, const char *labels, double v);
void ws_metrics_observe(struct ws_metrics *m, const char *family, const char *labels, double v);
void ws_metrics_set_ready(struct ws_metrics *m, bool ready);

#endif /* WS_ENGINE_INTERNAL_H */
