/*
 * progress.c — Spark's StreamingQueryProgress JSON as a notification (FORMAT.md §1),
 * and which progress notifications are batches at all.
 *
 * DESIGN
 *
 * Real Spark sends more than batches, so the rules run in a fixed order, the first that decides
 * winning: the key rule (notification.c, in the header pass), idle triggers (durationMs without
 * addBatch: the trigger ran no batch; its batch id is the next one, so attesting it would turn
 * the real batch into a conflict), the source rules, then batch 0 with a null start.
 *
 * Choices (keep stable):
 *   - A source is Kafka when its description starts with "KafkaV2[" or "KafkaSource[", or when its
 *     endOffset (an object, or a string holding one) maps every key to an object whose keys look
 *     like partitions (start with a digit, '-' or '+'). Such a map is then validated strictly:
 *     "-1", "007", "1x" are errors, not a reason to skip the source. Anything else
 *     ({"logOffset": 5}, 5, "5", null, a rate source's {"0": {"value": ...}}) from a source not
 *     named as Kafka's is a non-Kafka source: ignored and named in ignored_sources. An empty map
 *     {} is a Kafka source with no partitions (contributes nothing).
 *   - "None" and "null" as offset strings are JSON null (PySpark builds them with str()).
 *   - A missing startOffset counts as null. Partitions in startOffset but not in endOffset are
 *     ignored (the batch did not read them).
 *   - reported_input_rows is the sum of numInputRows over the Kafka sources, and only when every
 *     one of them reported it: a partial sum would mislead the verifier comparing it.
 */
#include "window/notification_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum offkind { OFF_NULL, OFF_OTHER, OFF_KAFKA };

/* {"topic": {"<partition-like key>": ...}, ...}; see the design note. */
static bool kafka_shaped(const json_t *map)
{
    const char *t, *p;
    json_t *parts, *v;

    if (!json_is_object(map))
        return false;
    json_object_foreach((json_t *)map, t, parts)
    {
        if (!json_is_object(parts))
            return false;
        json_object_foreach(parts, p, v)
        {
            if (!((p[0] >= '0' && p[0] <= '9') || p[0] == '-' || p[0] == '+'))
                return false;
        }
    }
    return true;
}

/*
 * Resolve a startOffset/endOffset value: an object, a string holding JSON, or null. On OFF_KAFKA
 * *map holds a new reference. A string that starts like an object but is not valid JSON (say,
 * Python's repr of a dict: {'t': {'0': 3}}) is an error: it was meant to be a map, and were it a
 * Kafka source's under an unfamiliar description, ignoring it would drop the source silently.
 * For a source named as Kafka's the reason says so.
 */
static ws_err_t resolve_offsets(struct ctx *c, json_t *v, const char *where, bool kafka_named,
                                json_t **map, enum offkind *kind)
{
    *map = NULL;
    *kind = OFF_OTHER;
    if (!v || json_is_null(v)) {
        *kind = OFF_NULL;
        return WS_OK;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t len = json_string_length(v), k = 0;
        json_error_t je;
        json_t *parsed;

        /* PySpark builds the string with str(): None -> "None"; JSON writers give "null" */
        if ((len == 4 && memcmp(s, "None", 4) == 0) || (len == 4 && memcmp(s, "null", 4) == 0)) {
            *kind = OFF_NULL;
            return WS_OK;
        }
        while (k < len && (s[k] == ' ' || s[k] == '\t' || s[k] == '\n' || s[k] == '\r'))
            k++;
        if (k == len || s[k] != '{')
            return WS_OK;
        /* a string holding JSON escapes the outer pre-scan's value count: scan it too */
        if (notif_prescan(c, s, len))
            return WS_ERR_TOO_LARGE;
        parsed = json_loadb(s, len, PARSE_FLAGS, &je);
        if (!parsed && kafka_named) {
            char t[SHOW_BUF];
            notif_show(t, je.text, strnlen(je.text, sizeof je.text - 1));
            return FAIL(c, WS_ERR_MALFORMED,
                        "%s of a Kafka source is a string that is not a Kafka offset map in JSON: "
                        "%s at line %d, column %d (byte %d)",
                        where, t, je.line, je.column, je.position);
        }
        if (!parsed)
            return notif_jansson_fail(c, where, &je);
        if (kafka_shaped(parsed)) {
            *map = parsed;
            *kind = OFF_KAFKA;
        } else {
            json_decref(parsed);
        }
        return WS_OK;
    }
    if (kafka_shaped(v)) {
        *map = json_incref(v);
        *kind = OFF_KAFKA;
    }
    return WS_OK;
}

static ws_err_t add_ignored(struct ctx *c, const char *desc)
{
    struct ws_notification *n = c->n;

    if (notif_reserve(c, (void **)&n->ignored_sources, &c->cap_ignored, n->nignored,
                      sizeof *n->ignored_sources, 4))
        return WS_ERR_NOMEM;
    n->ignored_sources[n->nignored] = strdup(desc);
    if (!n->ignored_sources[n->nignored])
        return FAIL(c, WS_ERR_NOMEM, "out of memory");
    n->nignored++;
    return WS_OK;
}

/*
 * One Kafka source: a range per (topic, partition) of end. start is NULL when unresolved: then
 * each range starts at WS_OFFSET_UNRESOLVED, or at its own end when Spark read nothing.
 */
static ws_err_t kafka_ranges(struct ctx *c, size_t i, const json_t *start, const json_t *end,
                             bool read_nothing)
{
    const char *topic, *pkey;
    json_t *parts, *uv;
    char where[320]; /* topics are at most 249 bytes */
    ws_err_t err;

    json_object_foreach((json_t *)end, topic, parts)
    {
        snprintf(where, sizeof where, "sources[%zu].endOffset", i);
        err = notif_check_topic(c, topic, strlen(topic), where);
        if (err)
            return err;
        json_object_foreach(parts, pkey, uv)
        {
            char s[SHOW_BUF];
            int32_t partition;
            int64_t from = WS_OFFSET_UNRESOLVED, until;
            const json_t *sparts, *fv;

            if (!notif_partition_key(pkey, &partition))
                return FAIL(c, WS_ERR_MALFORMED,
                            "sources[%zu].endOffset: partition key \"%s\" of topic %s is not a "
                            "decimal partition number (0..%d, no sign or leading zeros)",
                            i, notif_show(s, pkey, strlen(pkey)), topic, INT32_MAX);
            snprintf(where, sizeof where, "sources[%zu].endOffset %s[%" PRId32 "]", i, topic,
                     partition);
            err = notif_need_int(c, uv, where, &until);
            if (err)
                return err;
            if (until < 0)
                return FAIL(c, WS_ERR_INVALID,
                            "%s is %" PRId64 ": negative offsets (Kafka's -1 latest / -2 "
                            "earliest markers) are not offsets",
                            where, until);
            if (start) {
                sparts = json_object_get(start, topic);
                fv = sparts ? json_object_get(sparts, pkey) : NULL;
                if (!fv)
                    return FAIL(c, WS_ERR_MALFORMED,
                                "sources[%zu]: partition %s[%" PRId32 "] is in endOffset but "
                                "not in startOffset",
                                i, topic, partition);
                snprintf(where, sizeof where, "sources[%zu].startOffset %s[%" PRId32 "]", i, topic,
                         partition);
                err = notif_need_int(c, fv, where, &from);
                if (err)
                    return err;
                if (from < 0)
                    return FAIL(c, WS_ERR_INVALID,
                                "%s is %" PRId64 ": negative offsets (Kafka's -1 latest / -2 "
                                "earliest markers) are not offsets",
                                where, from);
            }
            if (!start && read_nothing)
                from = until;
            err = notif_add_source(c, topic, partition, from, until);
            if (err)
                return err;
        }
    }
    return WS_OK;
}

static bool kafka_described(const json_t *desc)
{
    const char *d = json_string_value(desc);

    return strncmp(d, "KafkaV2[", 8) == 0 || strncmp(d, "KafkaSource[", 12) == 0;
}

/* numInputRows of a Kafka source: -1 when absent or null. */
static ws_err_t input_rows(struct ctx *c, const json_t *src, size_t i, int64_t *out)
{
    const json_t *v = json_object_get(src, "numInputRows");
    char where[64];
    ws_err_t err;

    *out = -1;
    if (!v || json_is_null(v))
        return WS_OK;
    snprintf(where, sizeof where, "sources[%zu].numInputRows", i);
    if ((err = notif_need_int(c, v, where, out)))
        return err;
    if (*out < 0)
        return FAIL(c, WS_ERR_INVALID, "%s %" PRId64 " is negative", where, *out);
    return WS_OK;
}

/*
 * A null start: only batch 0 may have one. With initial_offsets=earliest the ranges start at the
 * low watermark, checked later against numInputRows (no numInputRows: nothing to check against,
 * so refused); with reject the refusal waits until every source rule has been applied.
 */
static ws_err_t null_start(struct ctx *c, size_t i, const json_t *desc, int64_t rows)
{
    char s[SHOW_BUF];

    if (c->n->batch_id != 0)
        return FAIL(c, WS_ERR_INVALID,
                    "batch %" PRId64 " of query %s has startOffset null in sources[%zu] (%s): "
                    "only batch 0 may start at unknown offsets",
                    c->n->batch_id, c->n->query_id, i,
                    notif_show(s, json_string_value(desc), json_string_length(desc)));
    if (!c->allow_unresolved) {
        if (c->null_start_at < 0)
            c->null_start_at = (long)i;
        return WS_OK;
    }
    if (rows < 0)
        return FAIL(c, WS_ERR_INVALID,
                    "initial offsets ambiguous: batch 0 of query %s has startOffset null in "
                    "sources[%zu] (%s) and no numInputRows, so what Spark read cannot be told "
                    "from the earliest offsets",
                    c->n->query_id, i,
                    notif_show(s, json_string_value(desc), json_string_length(desc)));
    return WS_OK;
}

static ws_err_t progress_source(struct ctx *c, const json_t *src, size_t i)
{
    char where[64], s[SHOW_BUF];
    const json_t *desc;
    json_t *end = NULL, *start = NULL;
    enum offkind ekind, skind;
    int64_t rows;
    bool named;
    ws_err_t err;

    if (!json_is_object(src))
        return FAIL(c, WS_ERR_MALFORMED, "sources[%zu] must be an object, not %s", i,
                    notif_type_name(src));
    desc = json_object_get(src, "description");
    if (!desc)
        return FAIL(c, WS_ERR_MALFORMED, "sources[%zu].description is missing", i);
    if (!json_is_string(desc))
        return FAIL(c, WS_ERR_MALFORMED, "sources[%zu].description must be a string, not %s", i,
                    notif_type_name(desc));
    if (memchr(json_string_value(desc), '\0', json_string_length(desc)))
        return FAIL(c, WS_ERR_MALFORMED, "sources[%zu].description contains a NUL character", i);
    named = kafka_described(desc);

    snprintf(where, sizeof where, "sources[%zu].endOffset", i);
    err = resolve_offsets(c, json_object_get(src, "endOffset"), where, named, &end, &ekind);
    if (err)
        return err;
    if (ekind != OFF_KAFKA && !named)
        return add_ignored(c, json_string_value(desc));
    if (ekind != OFF_KAFKA) {
        err = FAIL(c, WS_ERR_MALFORMED,
                   "sources[%zu] (%s) is a Kafka source but its endOffset is %s, not a Kafka "
                   "offset map ({\"topic\": {\"partition\": offset}})",
                   i, notif_show(s, json_string_value(desc), json_string_length(desc)),
                   ekind == OFF_NULL ? "null or missing" : "something else");
        goto out_decref;
    }

    snprintf(where, sizeof where, "sources[%zu].startOffset", i);
    err = resolve_offsets(c, json_object_get(src, "startOffset"), where, named, &start, &skind);
    if (!err)
        err = input_rows(c, src, i, &rows);
    if (err)
        goto out_decref;
    if (skind == OFF_OTHER) {
        err = FAIL(c, WS_ERR_MALFORMED,
                   "sources[%zu] (%s): endOffset is a Kafka offset map but startOffset is not a "
                   "Kafka offset map (nor null)",
                   i, notif_show(s, json_string_value(desc), json_string_length(desc)));
        goto out_decref;
    }
    if (skind == OFF_NULL && (err = null_start(c, i, desc, rows)))
        goto out_decref;
    /* under reject the notification is refused later: its ranges are never used */
    err = notif_add_input(c, rows, skind == OFF_NULL && rows != 0);
    if (!err)
        err = kafka_ranges(c, i, start, end, rows == 0);
out_decref:
    json_decref(start);
    json_decref(end);
    return err;
}

/*
 * Spark reports progress for triggers that ran no batch, carrying the next, not yet run, batch
 * id: durationMs without addBatch. Stateful no-data batches do run addBatch (with empty ranges):
 * they are batches, so "all ranges empty" is not the test.
 */
static ws_err_t idle_trigger(struct ctx *c, const json_t *root, bool *idle)
{
    const json_t *d = json_object_get(root, "durationMs");

    *idle = false;
    if (!d || json_is_null(d))
        return WS_OK;
    if (!json_is_object(d))
        return FAIL(c, WS_ERR_MALFORMED, "durationMs must be an object, not %s",
                    notif_type_name(d));
    *idle = json_object_get(d, "addBatch") == NULL;
    return WS_OK;
}

/* Sum of numInputRows over the Kafka sources, when every one of them reported it. */
static int64_t reported_rows(const struct ws_notification *n)
{
    int64_t sum = 0;

    for (size_t i = 0; i < n->ninputs; i++) {
        if (n->inputs[i].num_input_rows < 0 || n->inputs[i].num_input_rows > INT64_MAX - sum)
            return -1;
        sum += n->inputs[i].num_input_rows;
    }
    return n->ninputs ? sum : -1;
}

ws_err_t notif_parse_progress(struct ctx *c, const json_t *root)
{
    struct ws_notification *n = c->n;
    ws_err_t err = notif_parse_header(c, root, WS_NOTIF_PROGRESS, "id");

    if (!err)
        err = idle_trigger(c, root, &n->idle);
    if (err || n->idle)
        return err;
    if ((err = notif_parse_sources(c, root, progress_source)))
        return err;
    if (c->null_start_at >= 0)
        return FAIL(c, WS_ERR_INVALID,
                    "batch 0 of query %s has startOffset null in sources[%ld]: its initial "
                    "offsets are not known; configure notifications.initial_offsets=earliest to "
                    "resolve them against numInputRows",
                    n->query_id, c->null_start_at);
    n->reported_input_rows = reported_rows(n);
    return WS_OK;
}
