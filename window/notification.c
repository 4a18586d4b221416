/*
 * notification.c — parse and validate the message that announces a micro-batch (FORMAT.md §1, §9).
 *
 * DESIGN
 *
 * A notification is hostile input from a Kafka topic: anything that cannot become a well-defined
 * window is refused with a one-line, printable reason (it goes into the dead-letter header), and
 * nothing half-built escapes. The work is done in three passes:
 *
 *   1. Size gates before any allocation: len > max_bytes is TOO_LARGE, then a linear pre-scan of
 *      the raw bytes counts the elements of the top-level "sources" array and the JSON values in
 *      the whole document. jansson builds a full DOM (hundreds of bytes per value), so a large
 *      max_bytes with a million tiny sources would otherwise cost gigabytes before max_sources
 *      could be checked. The pre-scan never decides validity; jansson does, and the same limits
 *      are checked again on the DOM (a key spelled with escapes cannot dodge them).
 *   2. jansson with JSON_REJECT_DUPLICATES (a duplicate key is ambiguous: which offset counts?),
 *      without JSON_DECODE_ANY (the top level must be an object) and with JSON_ALLOW_NUL, so that
 *      "\u0000" reaches us: a NUL in the query id is reported as an unsafe id, and a NUL in any
 *      other string is refused explicitly instead of silently truncating it. jansson rejects bad
 *      UTF-8, integers beyond int64 and nesting deeper than 2048; its message (escaped, since it
 *      may quote input bytes) and position go into errbuf.
 *   3. Shape-specific extraction into struct ws_notification: every string strdup'ed, sources
 *      sorted by (topic bytes, partition) and checked for duplicates.
 *
 * Choices the contract leaves open (keep stable; FORMAT.md §1 says them to users):
 *   - Unknown fields are ignored in both shapes (forward compatibility: Spark adds fields to its
 *     progress JSON between releases, and a newer producer may add fields to the native shape).
 *   - Optional strings (runId, name, snapshotId, files) may be null, meaning absent.
 *   - Negative offsets, Kafka's -1/-2 (latest/earliest) markers included, are WS_ERR_INVALID.
 *   - Topic names are Kafka's legal names: [A-Za-z0-9._-]{1,249}, and not "." or "..".
 *
 * This file holds the passes, the shared field helpers and the native shape; Spark's progress
 * shape and the rules of which progress notifications are batches are in progress.c.
 *
 * Thread-safe: no global state.
 */
#include "window/notification_int.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Printable ASCII only: control bytes, non-ASCII, '"' and '\' escaped; long strings cut. */
const char *notif_show(char out[SHOW_BUF], const char *s, size_t len)
{
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];

        if (i == SHOW_MAX) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (ch == '"' || ch == '\\') {
            out[o++] = '\\';
            out[o++] = (char)ch;
        } else if (ch >= 0x20 && ch < 0x7f) {
            out[o++] = (char)ch;
        } else {
            snprintf(out + o, 5, "\\x%02x", ch);
            o += 4;
        }
    }
    out[o] = '\0';
    return out;
}

const char *notif_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a real number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "unknown";
}

ws_err_t notif_jansson_fail(struct ctx *c, const char *what, const json_error_t *je)
{
    char t[SHOW_BUF];

    notif_show(t, je->text, strnlen(je->text, sizeof je->text - 1));
    return FAIL(c, WS_ERR_MALFORMED, "%s: %s at line %d, column %d (byte %d)", what, t, je->line,
                je->column, je->position);
}

/* ------------------------------------------------------------------------------------------ */
/* Pass 1: pre-scan of the raw bytes.                                                             */

static size_t sat_add(size_t a, size_t b)
{
    return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

static size_t sat_mul(size_t a, size_t b)
{
    return b && a > SIZE_MAX / b ? SIZE_MAX : a * b;
}

/*
 * Counts, without building anything, the elements of every array that is the value of a
 * top-level key spelled "sources" (or spelled with escapes: it might decode to "sources"), and
 * the JSON values of the whole document (approximated by ',' '[' '{' outside strings). Lenient:
 * syntax errors are left to jansson; only the counts matter here.
 */
ws_err_t notif_prescan(struct ctx *c, const char *buf, size_t len)
{
    size_t max_values = c->max_values;
    size_t depth = 0, values = 0, elems = 0;
    bool expect_key = false, key_is_sources = false, counting = false, in_elem = false;

    for (size_t i = 0; i < len; i++) {
        char ch = buf[i];

        if (ch == '"') {
            size_t start = ++i;
            bool escaped = false;

            while (i < len && buf[i] != '"') {
                if (buf[i] == '\\') {
                    escaped = true;
                    i++;
                }
                i++;
            }
            if (depth == 1 && expect_key) {
                key_is_sources = escaped || (i - start == 7 && i <= len &&
                                             memcmp(buf + start, "sources", 7) == 0);
            } else if (counting && depth == 2 && !in_elem) {
                in_elem = true;
                if (++elems > c->max_sources)
                    return FAIL(c, WS_ERR_TOO_LARGE,
                                "notification has more than %zu sources (max_sources)",
                                c->max_sources);
            }
            continue;
        }
        if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r')
            continue;
        if (counting && depth == 2 && !in_elem && ch != ',' && ch != ']') {
            in_elem = true;
            elems++;
            if (elems > c->max_sources)
                return FAIL(c, WS_ERR_TOO_LARGE,
                            "notification has more than %zu sources (max_sources)", c->max_sources);
        }
        switch (ch) {
        case '{':
        case '[':
            values++;
            if (depth == 1 && ch == '[' && !expect_key && key_is_sources) {
                counting = true;
                in_elem = false;
                elems = 0;
            }
            depth++;
            if (depth == 1)
                expect_key = (ch == '{');
            break;
        case '}':
        case ']':
            if (depth > 0)
                depth--;
            if (depth == 1)
                counting = false;
            break;
        case ',':
            values++;
            if (depth == 1)
                expect_key = true;
            if (depth == 2)
                in_elem = false;
            break;
        case ':':
            if (depth == 1)
                expect_key = false;
            break;
        default:
            break;
        }
        if (values > max_values)
            return FAIL(c, WS_ERR_TOO_LARGE,
                        "notification has more than %zu JSON values (limit derived from "
                        "max_sources=%zu and max_files=%zu)",
                        max_values, c->max_sources, c->max_files);
    }
    return WS_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Field helpers                                                                                  */

/* Optional string field: absent or null -> *out stays NULL. */
ws_err_t notif_opt_string(struct ctx *c, const json_t *v, const char *where, char **out)
{
    const char *s;
    size_t len;

    if (!v || json_is_null(v))
        return WS_OK;
    if (!json_is_string(v))
        return FAIL(c, WS_ERR_MALFORMED, "%s must be a string, not %s", where, notif_type_name(v));
    s = json_string_value(v);
    len = json_string_length(v);
    if (memchr(s, '\0', len))
        return FAIL(c, WS_ERR_MALFORMED, "%s contains a NUL character (\\u0000)", where);
    *out = strdup(s);
    return *out ? WS_OK : FAIL(c, WS_ERR_NOMEM, "out of memory copying %s", where);
}

ws_err_t notif_need_int(struct ctx *c, const json_t *v, const char *where, int64_t *out)
{
    if (!v)
        return FAIL(c, WS_ERR_MALFORMED, "%s is missing", where);
    if (!json_is_integer(v))
        return FAIL(c, WS_ERR_MALFORMED, "%s must be an integer, not %s", where,
                    notif_type_name(v));
    *out = (int64_t)json_integer_value(v);
    return WS_OK;
}

static bool topic_ok(const char *t, size_t len)
{
    if (len == 0 || len > TOPIC_MAX)
        return false;
    if ((len == 1 && t[0] == '.') || (len == 2 && t[0] == '.' && t[1] == '.'))
        return false;
    for (size_t i = 0; i < len; i++) {
        char ch = t[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-'))
            return false;
    }
    return true;
}

ws_err_t notif_check_topic(struct ctx *c, const char *t, size_t len, const char *where)
{
    char s[SHOW_BUF];

    if (topic_ok(t, len))
        return WS_OK;
    return FAIL(c, WS_ERR_MALFORMED,
                "%s: \"%s\" is not a Kafka topic name (1 to %d of [A-Za-z0-9._-], not \".\" or "
                "\"..\")",
                where, notif_show(s, t, len), TOPIC_MAX);
}

/* Canonical decimal 0..INT32_MAX: no sign, no leading zero, nothing else. */
bool notif_partition_key(const char *k, int32_t *out)
{
    size_t len = strlen(k);
    int64_t v = 0;

    if (len == 0 || len > 10 || (k[0] == '0' && len > 1))
        return false;
    for (size_t i = 0; i < len; i++) {
        if (k[i] < '0' || k[i] > '9')
            return false;
        v = v * 10 + (k[i] - '0');
    }
    if (v > INT32_MAX)
        return false;
    *out = (int32_t)v;
    return true;
}

/* Only called when ws_query_id_safe said no: name the first rule broken. */
static ws_err_t unsafe_id(struct ctx *c, const char *field, const char *id, size_t len)
{
    static const char rule[] = "query ids name objects, so only [A-Za-z0-9._-]{1,128} not "
                               "starting with '.' is accepted ('/', '..', NUL and ids over 128 "
                               "characters are refused)";
    char s[SHOW_BUF], why[96] = "is not allowed";

    if (len == 0) {
        snprintf(why, sizeof why, "is empty");
    } else if (len > QUERY_ID_MAX) {
        snprintf(why, sizeof why, "is %zu bytes long (max %d)", len, QUERY_ID_MAX);
    } else if (id[0] == '.') {
        snprintf(why, sizeof why, "starts with '.'");
    } else {
        for (size_t i = 0; i < len; i++) {
            unsigned char ch = (unsigned char)id[i];
            if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                ch == '.' || ch == '_' || ch == '-')
                continue;
            if (ch == 0)
                snprintf(why, sizeof why, "contains a NUL character at byte %zu", i);
            else if (ch >= 0x20 && ch < 0x7f)
                snprintf(why, sizeof why, "contains '%c' at byte %zu", ch, i);
            else
                snprintf(why, sizeof why, "contains byte 0x%02x at byte %zu", ch, i);
            break;
        }
    }
    return FAIL(c, WS_ERR_UNSAFE_ID, "unsafe query id in %s: \"%s\" %s; %s", field,
                notif_show(s, id, len), why, rule);
}

static ws_err_t take_query_id(struct ctx *c, const json_t *v, const char *field)
{
    const char *id;
    size_t len;

    if (!json_is_string(v))
        return FAIL(c, WS_ERR_UNSAFE_ID, "%s must be a string (the query id), not %s", field,
                    notif_type_name(v));
    id = json_string_value(v);
    len = json_string_length(v);
    if (!ws_query_id_safe(id, len))
        return unsafe_id(c, field, id, len);
    c->n->query_id = strdup(id);
    return c->n->query_id ? WS_OK : FAIL(c, WS_ERR_NOMEM, "out of memory");
}

/*
 * The key rule (first of the rules): key = query id keeps every query on one member of the
 * consumer group, so two instances can never extend one chain. Checked before anything else
 * of the notification is looked at, so a wrongly keyed idle trigger is refused too.
 */
static ws_err_t check_key(struct ctx *c, const char *field)
{
    const struct ws_notif_opts *o = c->opts;
    const char *id = c->n->query_id;
    char k[SHOW_BUF];

    if (!o || !o->check_key)
        return WS_OK;
    if (!o->key)
        return FAIL(c, WS_ERR_KEY_MISMATCH,
                    "message key is null but %s is \"%s\": the key must be the query id (it keeps "
                    "a query on one consumer-group member)",
                    field, id);
    if (o->key_len != strlen(id) || memcmp(o->key, id, o->key_len) != 0)
        return FAIL(c, WS_ERR_KEY_MISMATCH,
                    "message key \"%s\" is not the query id: %s is \"%s\" (the key must be the "
                    "query id; it keeps a query on one consumer-group member)",
                    notif_show(k, o->key, o->key_len), field, id);
    return WS_OK;
}

static ws_err_t take_batch_id(struct ctx *c, const json_t *root)
{
    ws_err_t err = notif_need_int(c, json_object_get(root, "batchId"), "batchId", &c->n->batch_id);

    if (err)
        return err;
    if (c->n->batch_id < 0)
        return FAIL(c, WS_ERR_INVALID, "batchId %" PRId64 " is negative", c->n->batch_id);
    return WS_OK;
}

ws_err_t notif_reserve(struct ctx *c, void **arr, size_t *cap, size_t used, size_t elem,
                       size_t first)
{
    size_t ncap;
    void *p;

    if (used < *cap)
        return WS_OK;
    ncap = *cap ? 2 * *cap : first;
    if (!(p = realloc(*arr, ncap * elem)))
        return FAIL(c, WS_ERR_NOMEM, "out of memory");
    *arr = p;
    *cap = ncap;
    return WS_OK;
}

/* Appends a Kafka source (its ranges point at it by index). */
ws_err_t notif_add_input(struct ctx *c, int64_t num_input_rows, bool unresolved)
{
    struct ws_notification *n = c->n;
    ws_err_t err =
        notif_reserve(c, (void **)&n->inputs, &c->cap_inputs, n->ninputs, sizeof *n->inputs, 4);

    if (err)
        return err;
    n->inputs[n->ninputs++] = (struct ws_notif_input){num_input_rows, unresolved};
    return WS_OK;
}

/*
 * Validates one range of the newest Kafka source and appends it; the topic is copied last so a
 * failure leaves nothing.
 */
ws_err_t notif_add_source(struct ctx *c, const char *topic, int32_t partition, int64_t from,
                          int64_t until)
{
    struct ws_notification *n = c->n;
    struct ws_notif_source *s;

    if (from < 0 && from != WS_OFFSET_UNRESOLVED)
        return FAIL(c, WS_ERR_INVALID, "negative offset %s[%" PRId32 "]: fromOffset %" PRId64,
                    topic, partition, from);
    if (until < 0)
        return FAIL(c, WS_ERR_INVALID, "negative offset %s[%" PRId32 "]: untilOffset %" PRId64,
                    topic, partition, until);
    if (from > until)
        return FAIL(c, WS_ERR_INVALID,
                    "inverted range %s[%" PRId32 "]: fromOffset %" PRId64 " > untilOffset %" PRId64,
                    topic, partition, from, until);
    if (n->nsources >= c->max_sources)
        return FAIL(c, WS_ERR_TOO_LARGE, "notification has more than %zu sources (max_sources)",
                    c->max_sources);
    if (notif_reserve(c, (void **)&n->sources, &c->cap_sources, n->nsources, sizeof *n->sources,
                      16))
        return WS_ERR_NOMEM;
    s = &n->sources[n->nsources];
    s->topic = strdup(topic);
    if (!s->topic)
        return FAIL(c, WS_ERR_NOMEM, "out of memory");
    s->partition = partition;
    s->from_offset = from;
    s->until_offset = until;
    assert(n->ninputs > 0);
    s->input = (uint32_t)(n->ninputs - 1);
    n->nsources++;
    return WS_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Native shape (FORMAT.md §1)                                                                    */

static ws_err_t native_source(struct ctx *c, const json_t *src, size_t i)
{
    char where[96];
    const json_t *topic;
    int64_t partition, from, until;
    ws_err_t err;

    if (!json_is_object(src))
        return FAIL(c, WS_ERR_MALFORMED, "sources[%zu] must be an object, not %s", i,
                    notif_type_name(src));
    topic = json_object_get(src, "topic");
    snprintf(where, sizeof where, "sources[%zu].topic", i);
    if (!topic)
        return FAIL(c, WS_ERR_MALFORMED, "%s is missing", where);
    if (!json_is_string(topic))
        return FAIL(c, WS_ERR_MALFORMED, "%s must be a string, not %s", where,
                    notif_type_name(topic));
    err = notif_check_topic(c, json_string_value(topic), json_string_length(topic), where);
    if (err)
        return err;
    snprintf(where, sizeof where, "sources[%zu].partition", i);
    err = notif_need_int(c, json_object_get(src, "partition"), where, &partition);
    if (err)
        return err;
    if (partition < 0 || partition > INT32_MAX)
        return FAIL(c, WS_ERR_INVALID, "%s %" PRId64 " is outside 0..%d", where, partition,
                    INT32_MAX);
    snprintf(where, sizeof where, "sources[%zu].fromOffset", i);
    err = notif_need_int(c, json_object_get(src, "fromOffset"), where, &from);
    if (err)
        return err;
    snprintf(where, sizeof where, "sources[%zu].untilOffset", i);
    err = notif_need_int(c, json_object_get(src, "untilOffset"), where, &until);
    if (err)
        return err;
    /* WS_OFFSET_UNRESOLVED is a progress-shape marker; in native input it is just negative. */
    if (from < 0)
        return FAIL(c, WS_ERR_INVALID,
                    "negative offset %s[%" PRId64 "]: fromOffset %" PRId64 " (sources[%zu])",
                    json_string_value(topic), partition, from, i);
    return notif_add_source(c, json_string_value(topic), (int32_t)partition, from, until);
}

static ws_err_t native_output(struct ctx *c, const json_t *o, struct ws_notif_output *out, size_t i)
{
    char where[96];
    const json_t *name, *snap, *files;
    ws_err_t err;

    if (!json_is_object(o))
        return FAIL(c, WS_ERR_MALFORMED, "outputs[%zu] must be an object, not %s", i,
                    notif_type_name(o));
    name = json_object_get(o, "name");
    snprintf(where, sizeof where, "outputs[%zu].name", i);
    if (!name || json_is_null(name))
        return FAIL(c, WS_ERR_MALFORMED, "%s is missing", where);
    err = notif_opt_string(c, name, where, &out->name);
    if (err)
        return err;

    snap = json_object_get(o, "snapshotId");
    snprintf(where, sizeof where, "outputs[%zu].snapshotId", i);
    if (json_is_integer(snap)) {
        char num[24];
        snprintf(num, sizeof num, "%" PRId64, (int64_t)json_integer_value(snap));
        out->snapshot_id = strdup(num);
        if (!out->snapshot_id)
            return FAIL(c, WS_ERR_NOMEM, "out of memory");
    } else if (snap && !json_is_null(snap) && !json_is_string(snap)) {
        return FAIL(c, WS_ERR_MALFORMED, "%s must be a string or an integer, not %s", where,
                    notif_type_name(snap));
    } else {
        err = notif_opt_string(c, snap, where, &out->snapshot_id);
        if (err)
            return err;
    }

    files = json_object_get(o, "files");
    if (!files || json_is_null(files))
        return WS_OK;
    if (!json_is_array(files))
        return FAIL(c, WS_ERR_MALFORMED, "outputs[%zu].files must be an array, not %s", i,
                    notif_type_name(files));
    if (json_array_size(files) > c->max_files - c->nfiles)
        return FAIL(c, WS_ERR_TOO_LARGE, "outputs list more than %zu files (max_files)",
                    c->max_files);
    if (json_array_size(files) == 0)
        return WS_OK;
    out->files = calloc(json_array_size(files), sizeof *out->files);
    if (!out->files)
        return FAIL(c, WS_ERR_NOMEM, "out of memory");
    for (size_t j = 0; j < json_array_size(files); j++) {
        const json_t *f = json_array_get(files, j);
        snprintf(where, sizeof where, "outputs[%zu].files[%zu]", i, j);
        if (!json_is_string(f))
            return FAIL(c, WS_ERR_MALFORMED, "%s must be a string, not %s", where,
                        notif_type_name(f));
        err = notif_opt_string(c, f, where, &out->files[j]);
        if (err)
            return err;
        out->nfiles++;
        c->nfiles++;
    }
    return WS_OK;
}

/* What both shapes start with: the query id under id_key (and the key rule), runId, name,
 * batchId. */
ws_err_t notif_parse_header(struct ctx *c, const json_t *root, enum ws_notif_shape shape,
                            const char *id_key)
{
    struct ws_notification *n = c->n;
    ws_err_t err;

    n->shape = shape;
    err = take_query_id(c, json_object_get(root, id_key), id_key);
    if (!err)
        err = check_key(c, id_key);
    if (!err)
        err = notif_opt_string(c, json_object_get(root, "runId"), "runId", &n->run_id);
    if (!err)
        err = notif_opt_string(c, json_object_get(root, "name"), "name", &n->name);
    if (!err)
        err = take_batch_id(c, root);
    return err;
}

/* sources[], each through each_source; then "no Kafka source, no window". */
ws_err_t notif_parse_sources(struct ctx *c, const json_t *root, source_fn each_source)
{
    struct ws_notification *n = c->n;
    const json_t *sources;
    ws_err_t err;

    sources = json_object_get(root, "sources");
    if (!sources)
        return FAIL(c, WS_ERR_MALFORMED, "sources is missing");
    if (!json_is_array(sources))
        return FAIL(c, WS_ERR_MALFORMED, "sources must be an array, not %s",
                    notif_type_name(sources));
    if (json_array_size(sources) > c->max_sources)
        return FAIL(c, WS_ERR_TOO_LARGE, "notification has more than %zu sources (max_sources)",
                    c->max_sources);
    if (n->shape == WS_NOTIF_NATIVE && json_array_size(sources) > 0 &&
        (err = notif_add_input(c, -1, false)))
        return err;
    for (size_t i = 0; i < json_array_size(sources); i++) {
        err = each_source(c, json_array_get(sources, i), i);
        if (err)
            return err;
    }
    /*
     * Progress shape: Spark's sources are everything the batch read, so with no Kafka source an
     * empty signed window would tell an auditor that it read nothing. A native notification's
     * sources are Kafka ranges by construction: an empty list is the job's own statement that
     * the batch read no record (a foreachBatch over an empty DataFrame), attested as such.
     */
    if (n->ninputs == 0 && n->shape == WS_NOTIF_PROGRESS)
        return FAIL(c, WS_ERR_UNSUPPORTED,
                    "no Kafka source to re-read: %s (batch %" PRId64 " of query %s)",
                    json_array_size(sources) == 0 ? "sources is empty"
                                                  : "none of its sources is a Kafka source",
                    n->batch_id, n->query_id);
    return WS_OK;
}

static ws_err_t parse_native(struct ctx *c, const json_t *root)
{
    struct ws_notification *n = c->n;
    const json_t *outputs;
    ws_err_t err = notif_parse_header(c, root, WS_NOTIF_NATIVE, "queryId");

    if (!err)
        err = notif_parse_sources(c, root, native_source);
    if (err)
        return err;
    outputs = json_object_get(root, "outputs");
    if (!outputs || json_is_null(outputs))
        return WS_OK;
    if (!json_is_array(outputs))
        return FAIL(c, WS_ERR_MALFORMED, "outputs must be an array, not %s",
                    notif_type_name(outputs));
    if (json_array_size(outputs) == 0)
        return WS_OK;
    n->outputs = calloc(json_array_size(outputs), sizeof *n->outputs);
    if (!n->outputs)
        return FAIL(c, WS_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < json_array_size(outputs); i++) {
        /* counted before filling so that free() sees the partial entry */
        n->noutputs++;
        err = native_output(c, json_array_get(outputs, i), &n->outputs[i], i);
        if (err)
            return err;
    }
    return WS_OK;
}

/* ------------------------------------------------------------------------------------------ */

static int source_cmp(const void *a, const void *b)
{
    const struct ws_notif_source *x = a, *y = b;
    int r = strcmp(x->topic, y->topic); /* compares as unsigned char */

    if (r)
        return r;
    return (x->partition > y->partition) - (x->partition < y->partition);
}

ws_err_t ws_notification_parse(const char *json, size_t len, const struct ws_notif_opts *opts,
                               struct ws_notification *out, char *errbuf, size_t errlen)
{
    struct ctx c = {0};
    size_t max_bytes = opts && opts->max_bytes ? opts->max_bytes : DEFAULT_MAX_BYTES;
    json_error_t je;
    json_t *root;
    ws_err_t err;

    memset(out, 0, sizeof *out);
    if (errbuf && errlen)
        errbuf[0] = '\0';
    c.max_sources = opts && opts->max_sources ? opts->max_sources : DEFAULT_MAX_SOURCES;
    c.max_files = opts && opts->max_files ? opts->max_files : DEFAULT_MAX_FILES;
    c.allow_unresolved = opts && opts->allow_unresolved_start;
    c.opts = opts;
    c.null_start_at = -1;
    c.n = out;
    c.errbuf = errbuf;
    c.errlen = errlen;

    if (len > max_bytes)
        return FAIL(&c, WS_ERR_TOO_LARGE, "notification is %zu bytes; the limit (max_bytes) is %zu",
                    len, max_bytes);
    if (!json || len == 0)
        return FAIL(&c, WS_ERR_MALFORMED, "notification is empty");
    c.max_values = sat_add(sat_mul(8, sat_add(c.max_sources, c.max_files)), 65536);
    err = notif_prescan(&c, json, len);
    if (err)
        return err;

    root = json_loadb(json, len, PARSE_FLAGS, &je);
    if (!root)
        return notif_jansson_fail(&c, "malformed JSON", &je);

    if (json_is_object(root) && json_object_get(root, "queryId")) {
        err = parse_native(&c, root);
    } else if (json_is_object(root) && json_object_get(root, "id") &&
               json_object_get(root, "batchId")) {
        err = notif_parse_progress(&c, root);
    } else {
        err = FAIL(&c, WS_ERR_MALFORMED,
                   "unknown notification shape: expected queryId (native) or id + batchId (Spark "
                   "progress)");
    }
    if (err)
        goto out_free;
    if (out->shape == WS_NOTIF_NATIVE || out->idle)
        out->reported_input_rows = -1;
    if (out->idle) {
        json_decref(root);
        return WS_OK;
    }

    if (out->nsources > 1)
        qsort(out->sources, out->nsources, sizeof *out->sources, source_cmp);
    for (size_t i = 1; i < out->nsources; i++) {
        if (source_cmp(&out->sources[i - 1], &out->sources[i]) == 0) {
            err = FAIL(&c, WS_ERR_MALFORMED,
                       "duplicate topic-partition %s[%" PRId32 "]: it appears in two sources",
                       out->sources[i].topic, out->sources[i].partition);
            goto out_free;
        }
    }
    json_decref(root);
    return WS_OK;

out_free:
    ws_notification_free(out);
    json_decref(root);
    return err;
}

void ws_notification_free(struct ws_notification *n)
{
    if (!n)
        return;
    free(n->query_id);
    free(n->run_id);
    free(n->name);
    for (size_t i = 0; i < n->nsources; i++)
        free(n->sources[i].topic);
    free(n->sources);
    for (size_t i = 0; i < n->noutputs; i++) {
        struct ws_notif_output *o = &n->outputs[i];
        free(o->name);
        free(o->snapshot_id);
        for (size_t j = 0; j < o->nfiles; j++)
            free(o->files[j]);
        free(o->files);
    }
    free(n->outputs);
    for (size_t i = 0; i < n->nignored; i++)
        free(n->ignored_sources[i]);
    free(n->ignored_sources);
    free(n->inputs);
    memset(n, 0, sizeof *n);
}

static void put_be(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

void ws_notification_sources_digest(const struct ws_notification *n, uint8_t out[WS_HASH_LEN])
{
    struct ws_sha256 h;

    ws_sha256_init(&h);
    for (size_t i = 0; i < n->nsources; i++) {
        const struct ws_notif_source *s = &n->sources[i];
        size_t tlen = strlen(s->topic);
        uint8_t b[20];

        if (tlen > UINT16_MAX) /* parse caps topics at 249 bytes; keep the encoding total */
            tlen = UINT16_MAX;
        put_be(b, tlen, 2);
        ws_sha256_update(&h, b, 2);
        ws_sha256_update(&h, s->topic, tlen);
        put_be(b, (uint32_t)s->partition, 4);
        put_be(b + 4, (uint64_t)s->from_offset, 8);
        put_be(b + 12, (uint64_t)s->until_offset, 8);
        ws_sha256_update(&h, b, 20);
    }
    ws_sha256_final(&h, out);
}
