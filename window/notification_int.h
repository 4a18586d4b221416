/*
 * notification_int.h — private to window/notification.c and window/progress.c: the parse
 * context and the field helpers both notification shapes share. Every helper fails through
 * FAIL with a printable, one-line reason (the dead-letter header) and leaves nothing half-built
 * for ws_notification_free to trip on.
 */
#ifndef WS_NOTIFICATION_INT_H
#define WS_NOTIFICATION_INT_H

#include "window/window.h"

#include <jansson.h>

#define DEFAULT_MAX_BYTES (1024u * 1024)
#define DEFAULT_MAX_SOURCES 100000u
#define DEFAULT_MAX_FILES 100000u
#define PARSE_FLAGS (JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL)
#define TOPIC_MAX 249
#define QUERY_ID_MAX 128

/* Rendering of untrusted bytes in errbuf: at most SHOW_MAX input bytes, each up to 4 chars. */
#define SHOW_MAX 64
#define SHOW_BUF (SHOW_MAX * 4 + 4)

struct ctx {
    size_t max_sources, max_files;
    size_t max_values; /* pre-scan cap on JSON values, derived from the two above */
    bool allow_unresolved;
    const struct ws_notif_opts *opts; /* NULL: defaults, no key rule */
    struct ws_notification *n;
    size_t cap_sources, cap_ignored, cap_inputs;
    /* batch 0 with a null start and initial_offsets=reject: reported after the source rules */
    long null_start_at; /* index of the first such source, -1: none */
    size_t nfiles;      /* over all outputs */
    char *errbuf;
    size_t errlen;
};

#define FAIL(c, e, ...) ws_fail((e), (c)->errbuf, (c)->errlen, __VA_ARGS__)

/* Untrusted bytes as printable ASCII ('"', '\\', control and non-ASCII escaped; long cut). */
const char *notif_show(char out[SHOW_BUF], const char *s, size_t len);
const char *notif_type_name(const json_t *v); /* "an object", "null", ... */
ws_err_t notif_jansson_fail(struct ctx *c, const char *what, const json_error_t *je);
/* Size gates on raw bytes before jansson builds a DOM (see notification.c). */
ws_err_t notif_prescan(struct ctx *c, const char *buf, size_t len);
/* Optional string: absent or null leaves *out NULL. */
ws_err_t notif_opt_string(struct ctx *c, const json_t *v, const char *where, char **out);
ws_err_t notif_need_int(struct ctx *c, const json_t *v, const char *where, int64_t *out);
ws_err_t notif_check_topic(struct ctx *c, const char *t, size_t len, const char *where);
/* Canonical decimal 0..INT32_MAX: no sign, no leading zero. */
bool notif_partition_key(const char *k, int32_t *out);
/* Room for one more element in *arr (used in use, *cap allocated), doubling from first. */
ws_err_t notif_reserve(struct ctx *c, void **arr, size_t *cap, size_t used, size_t elem,
                       size_t first);
/* A Kafka source; the ranges added after it point at it. */
ws_err_t notif_add_input(struct ctx *c, int64_t num_input_rows, bool unresolved);
/* One range of the newest Kafka source, validated (negative, inverted, max_sources). */
ws_err_t notif_add_source(struct ctx *c, const char *topic, int32_t partition, int64_t from,
                          int64_t until);
/* Query id (and the key rule), runId, name, batchId. */
ws_err_t notif_parse_header(struct ctx *c, const json_t *root, enum ws_notif_shape shape,
                            const char *id_key);
typedef ws_err_t (*source_fn)(struct ctx *c, const json_t *src, size_t i);
/* sources[], each through each_source; then "no Kafka source, no window" (progress shape). */
ws_err_t notif_parse_sources(struct ctx *c, const json_t *root, source_fn each_source);
/* The Spark progress shape (progress.c). */
ws_err_t notif_parse_progress(struct ctx *c, const json_t *root);

#endif /* WS_NOTIFICATION_INT_H */
