/*
 * notification.c — parse and validate the message that announces a micro-batch (SPEC 2, SPEC 8).
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
 * Choices the SPEC leaves open (keep stable):
 *   - Unknown fields are ignored in both shapes (forward compatibility: Spark adds fields to its
 *     progress JSON between releases, and a newer producer may add fields to the native shape).
 *   - Optional strings (runId, name, snapshotId, files) may be null, meaning absent.
 *   - Progress shape: a source is Kafka when its endOffset (an object, or a string holding an
 *     object) maps every key to an object whose keys look like partitions (start with a digit, '-'
 *     or '+'). Such a map is then validated strictly: "-1", "007", "1x" are errors, not a reason to
 *     skip the source. Anything else ({"logOffset": 5}, 5, "5", null, a rate source's
 *     {"0": {"value": ...}}) is a non-Kafka source: ignored and named in ignored_sources.
 *     An empty map {} is a Kafka source with no partitions (contributes nothing).
 *   - A missing startOffset counts as null. Partitions in startOffset but not in endOffset are
 *     ignored (the batch did not read them).
 *   - Negative offsets, Kafka's -1/-2 (latest/earliest) markers included, are WS_ERR_INVALID.
 *   - Topic names are Kafka's legal names: [A-Za-z0-9._-]{1,249}, and not "." or "..".
 *
 * Thread-safe: no global state.
 */
#include "window/window.h"

#include <assert.h>
#include <jansson.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* Printable ASCII only: control bytes, non-ASCII, '"' and '\' escaped; long strings cut. */
static const char *show(char out[SHOW_BUF], const char *s, size_t len)
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

static const char *type_name(const json_t *v)
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

static ws_err_t jansson_fail(struct ctx *c, const char *what, const json_error_t *je)
{
    char t[SHOW_BUF];

    show(t, je->text, strnlen(je->text, sizeof je->text - 1));
    return FAIL(c, WS_ERR_MALFORMED, "%s: %s at line %d, column %d (byte %d)", what, t, je->line,
                je->column, je->position);
}

/* ------------------------------------------------------------------------------------------ */
/* Pass 1: pre-scan of the raw bytes.                                                          */

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
static ws_err_t prescan(struct ctx *c, const char *buf, size_t len)
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
/* Field helpers                                                                                */

/* Optional string field: absent or null -> *out stays NULL. */
static ws_err_t opt_string(struct ctx *c, const json_t *v, const char *where, char **out)
{
    const char *s;
    size_t len;

    if (!v || json_is_null(v))
        return WS_OK;
    if (!json_is_string(v))
        return FAIL(c, WS_ERR_MALFORMED, "%s must be a string, not %s", where, type_name(v));
    s = json_string_value(v);
    len = json_string_length(v);
    if (memchr(s, '\0', len))
        return FAIL(c, WS_ERR_MALFORMED, "%s contains a NUL character (\\u0000)", where);
    *out = strdup(s);
    return *out ? WS_OK : FAIL(c, WS_ERR_NOMEM, "out of memory copying %s", where);
}

static ws_err_t need_int(struct ctx *c, const json_t *v, const char *where, int64_t *out)
{
    if (!v)
        return FAIL(c, WS_ERR_MALFORMED, "%s is missing", where);
    if (!json_is_integer(v))
        return FAIL(c, WS_ERR_MALFORMED, "%s must be an integer, not %s", where, type_name(v));
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

static ws_err_t check_topic(struct ctx *c, const char *t, size_t len, const char *where)
{
    char s[SHOW_BUF];

    if (topic_ok(t, len))
        return WS_OK;
    return FAIL(c, WS_ERR_MALFORMED,
                "%s: \"%s\" is not a Kafka topic name (1 to %d of [A-Za-z0-9._-], not \".\" or "
                "\"..\")",
                where, show(s, t, len), TOPIC_MAX);
}

/* Canonical decimal 0..INT32_MAX: no sign, no leading zero, nothing else. */
static bool partition_key(const char *k, int32_t *out)
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
                show(s, id, len), why, rule);
}

static ws_err_t take_query_id(struct ctx *c, const json_t *v, const char *field)
{
    const char *id;
    size_t len;

    if (!json_is_string(v))
        return FAIL(c, WS_ERR_UNSAFE_ID, "%s must be a string (the query id), not %s", field,
                    type_name(v));
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
                    show(k, o->key, o->key_len), field, id);
    return WS_OK;
}

static ws_err_t take_batch_id(struct ctx *c, const json_t *root)
{
    ws_err_t err = need_int(c, json_object_get(root, "batchId"), "batchId", &c->n->batch_id);

    if (err)
        return err;
    if (c->n->batch_id < 0)
        return FAIL(c, WS_ERR_INVALID, "batchId %" PRId64 " is negative", c->n->batch_id);
    return WS_OK;
}

/* Appends a Kafka source (its ranges point at it by index). */
static ws_err_t add_input(struct ctx *c, int64_t num_input_rows, bool unresolved)
{
    struct ws_notification *n = c->n;

    if (n->ninputs == c->cap_inputs) {
        size_t cap = c->cap_inputs ? 2 * c->cap_inputs : 4;
        void *p = realloc(n->inputs, cap * sizeof *n->inputs);
        if (!p)
            return FAIL(c, WS_ERR_NOMEM, "out of memory");
        n->inputs = p;
        c->cap_inputs = cap;
    }
    n->inputs[n->ninputs++] = (struct ws_notif_input){num_input_rows, unresolved};
    return WS_OK;
}

/*
 * Validates one range of the newest Kafka source and appends it; the topic is copied last so a
 * failure leaves nothing.
 */
static ws_err_t add_source(struct ctx *c, const char *topic, int32_t partition, int64_t from,
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
    if (n->nsources == c->cap_sources) {
        size_t cap = c->cap_sources ? 2 * c->cap_sources : 16;
        void *p = realloc(n->sources, cap * sizeof *n->sources);
        if (!p)
            return FAIL(c, WS_ERR_NOMEM, "out of memory");
        n->sources = p;
        c->cap_sources = cap;
    }
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
/* Native shape (SPEC 2.1)                                                                      */

static ws_err_t native_source(struct ctx *c, const json_t *src, size_t i)
{
    char where[96];
    const json_t *topic;
    int64_t partition, from, until;
    ws_err_t err;

    if (!json_is_object(src))
        return FAIL(c, WS_ERR_MALFORMED, "sources[%zu] must be an object, not %s", i,
                    type_name(src));
    topic = json_object_get(src, "topic");
    snprintf(where, sizeof where, "sources[%zu].topic", i);
    if (!topic)
        return FAIL(c, WS_ERR_MALFORMED, "%s is missing", where);
    if (!json_is_string(topic))
        return FAIL(c, WS_ERR_MALFORMED, "%s must be a string, not %s", where, type_name(topic));
    err = check_topic(c, json_string_value(topic), json_string_length(topic), where);
    if (err)
        return err;
    snprintf(where, sizeof where, "sources[%zu].partition", i);
    err = need_int(c, json_object_get(src, "partition"), where, &partition);
    if (err)
        return err;
    if (partition < 0 || partition > INT32_MAX)
        return FAIL(c, WS_ERR_INVALID, "%s %" PRId64 " is outside 0..%d", where, partition,
                    INT32_MAX);
    snprintf(where, sizeof where, "sources[%zu].fromOffset", i);
    err = need_int(c, json_object_get(src, "fromOffset"), where, &from);
    if (err)
        return err;
    snprintf(where, sizeof where, "sources[%zu].untilOffset", i);
    err = need_int(c, json_object_get(src, "untilOffset"), where, &until);
    if (err)
        return err;
    /* WS_OFFSET_UNRESOLVED is a progress-shape marker; in native input it is just negative. */
    if (from < 0)
        return FAIL(c, WS_ERR_INVALID,
                    "negative offset %s[%" PRId64 "]: fromOffset %" PRId64 " (sources[%zu])",
                    json_string_value(topic), partition, from, i);
    return add_source(c, json_string_value(topic), (int32_t)partition, from, until);
}

static ws_err_t native_output(struct ctx *c, const json_t *o, struct ws_notif_output *out, size_t i)
{
    char where[96];
    const json_t *name, *snap, *files;
    ws_err_t err;

    if (!json_is_object(o))
        return FAIL(c, WS_ERR_MALFORMED, "outputs[%zu] must be an object, not %s", i, type_name(o));
    name = json_object_get(o, "name");
    snprintf(where, sizeof where, "outputs[%zu].name", i);
    if (!name || json_is_null(name))
        return FAIL(c, WS_ERR_MALFORMED, "%s is missing", where);
    err = opt_string(c, name, where, &out->name);
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
                    type_name(snap));
    } else {
        err = opt_string(c, snap, where, &out->snapshot_id);
        if (err)
            return err;
    }

    files = json_object_get(o, "files");
    if (!files || json_is_null(files))
        return WS_OK;
    if (!json_is_array(files))
        return FAIL(c, WS_ERR_MALFORMED, "outputs[%zu].files must be an array, not %s", i,
                    type_name(files));
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
            return FAIL(c, WS_ERR_MALFORMED, "%s must be a string, not %s", where, type_name(f));
        err = opt_string(c, f, where, &out->files[j]);
        if (err)
            return err;
        out->nfiles++;
        c->nfiles++;
    }
    return WS_OK;
}

typedef ws_err_t (*source_fn)(struct ctx *c, const json_t *src, size_t i);

/* What both shapes start with: the query id under id_key (and the key rule), runId, name,
 * batchId. */
static ws_err_t parse_header(struct ctx *c, const json_t *root, enum ws_notif_shape shape,
                             const char *id_key)
{
    struct ws_notification *n = c->n;
    ws_err_t err;

    n->shape = shape;
    err = take_query_id(c, json_object_get(root, id_key), id_key);
    if (!err)
        err = check_key(c, id_key);
    if (!err)
        err = opt_string(c, json_object_get(root, "runId"), "runId", &n->run_id);
    if (!err)
        err = opt_string(c, json_object_get(root, "name"), "name", &n->name);
    if (!err)
        err = take_batch_id(c, root);
    return err;
}

/* sources[], each through each_source; then "no Kafka source, no window". */
static ws_err_t parse_sources(struct ctx *c, const json_t *root, source_fn each_source)
{
    struct ws_notification *n = c->n;
    const json_t *sources;
    ws_err_t err;

    sources = json_object_get(root, "sources");
    if (!sources)
        return FAIL(c, WS_ERR_MALFORMED, "sources is missing");
    if (!json_is_array(sources))
        return FAIL(c, WS_ERR_MALFORMED, "sources must be an array, not %s", type_name(sources));
    if (json_array_size(sources) > c->max_sources)
        return FAIL(c, WS_ERR_TOO_LARGE, "notification has more than %zu sources (max_sources)",
                    c->max_sources);
    if (n->shape == WS_NOTIF_NATIVE && json_array_size(sources) > 0 &&
        (err = add_input(c, -1, false)))
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
    ws_err_t err = parse_header(c, root, WS_NOTIF_NATIVE, "queryId");

    if (!err)
        err = parse_sources(c, root, native_source);
    if (err)
        return err;
    outputs = json_object_get(root, "outputs");
    if (!outputs || json_is_null(outputs))
        return WS_OK;
    if (!json_is_array(outputs))
        return FAIL(c, WS_ERR_MALFORMED, "outputs must be an array, not %s", type_name(outputs));
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
/* Spark progress shape (SPEC 2.2)                                                              */

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
        if (prescan(c, s, len))
            return WS_ERR_TOO_LARGE;
        parsed = json_loadb(s, len, PARSE_FLAGS, &je);
        if (!parsed && kafka_named) {
            char t[SHOW_BUF];
            show(t, je.text, strnlen(je.text, sizeof je.text - 1));
            return FAIL(c, WS_ERR_MALFORMED,
                        "%s of a Kafka source is a string that is not a Kafka offset map in JSON: "
                        "%s at line %d, column %d (byte %d)",
                        where, t, je.line, je.column, je.position);
        }
        if (!parsed)
            return jansson_fail(c, where, &je);
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

    if (n->nignored == c->cap_ignored) {
        size_t cap = c->cap_ignored ? 2 * c->cap_ignored : 4;
        void *p = realloc(n->ignored_sources, cap * sizeof *n->ignored_sources);
        if (!p)
            return FAIL(c, WS_ERR_NOMEM, "out of memory");
        n->ignored_sources = p;
        c->cap_ignored = cap;
    }
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
        err = check_topic(c, topic, strlen(topic), where);
        if (err)
            return err;
        json_object_foreach(parts, pkey, uv)
        {
            char s[SHOW_BUF];
            int32_t partition;
            int64_t from = WS_OFFSET_UNRESOLVED, until;
            const json_t *sparts, *fv;

            if (!partition_key(pkey, &partition))
                return FAIL(c, WS_ERR_MALFORMED,
                            "sources[%zu].endOffset: partition key \"%s\" of topic %s is not a "
                            "decimal partition number (0..%d, no sign or leading zeros)",
                            i, show(s, pkey, strlen(pkey)), topic, INT32_MAX);
            snprintf(where, sizeof where, "sources[%zu].endOffset %s[%" PRId32 "]", i, topic,
                     partition);
            err = need_int(c, uv, where, &until);
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
                err = need_int(c, fv, where, &from);
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
            err = add_source(c, topic, partition, from, until);
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
    if ((err = need_int(c, v, where, out)))
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
                    show(s, json_string_value(desc), json_string_length(desc)));
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
                    c->n->query_id, i, show(s, json_string_value(desc), json_string_length(desc)));
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
                    type_name(src));
    desc = json_object_get(src, "description");
    if (!desc)
        return FAIL(c, WS_ERR_MALFORMED, "sources[%zu].description is missing", i);
    if (!json_is_string(desc))
        return FAIL(c, WS_ERR_MALFORMED, "sources[%zu].description must be a string, not %s", i,
                    type_name(desc));
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
                   i, show(s, json_string_value(desc), json_string_length(desc)),
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
                   i, show(s, json_string_value(desc), json_string_length(desc)));
        goto out_decref;
    }
    if (skind == OFF_NULL && (err = null_start(c, i, desc, rows)))
        goto out_decref;
    /* under reject the notification is refused later: its ranges are never used */
    err = add_input(c, rows, skind == OFF_NULL && rows != 0);
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
        return FAIL(c, WS_ERR_MALFORMED, "durationMs must be an object, not %s", type_name(d));
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

static ws_err_t parse_progress(struct ctx *c, const json_t *root)
{
    struct ws_notification *n = c->n;
    ws_err_t err = parse_header(c, root, WS_NOTIF_PROGRESS, "id");

    if (!err)
        err = idle_trigger(c, root, &n->idle);
    if (err || n->idle)
        return err;
    if ((err = parse_sources(c, root, progress_source)))
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
    err = prescan(&c, json, len);
    if (err)
        return err;

    root = json_loadb(json, len, PARSE_FLAGS, &je);
    if (!root)
        return jansson_fail(&c, "malformed JSON", &je);

    if (json_is_object(root) && json_object_get(root, "queryId")) {
        err = parse_native(&c, root);
    } else if (json_is_object(root) && json_object_get(root, "id") &&
               json_object_get(root, "batchId")) {
        err = parse_progress(&c, root);
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
