/*
 * statement.c — the in-toto Statement v1 with the Makoto stream-window predicate (FORMAT.md §5), and
 * the small naming helpers that go with it (times, object names, safe query ids).
 *
 * The statement is a pure function of ws_statement_in: no clock, no environment, no locale.
 * jansson serialises it compactly with sorted keys and raw UTF-8, so equal inputs give equal
 * bytes and, with Ed25519, equal envelopes. Optional fields are omitted, never null.
 *
 * Building uses a sticky error (one check at the end, as Redis' rio does): every helper is a
 * no-op once something failed, so the field list below reads like docs/FORMAT.md's table.
 *
 * Times: ws_format_time_ms renders proleptic-Gregorian UTC exactly for every instant of the years
 * 0000..9999 (pre-1970, i.e. negative, milliseconds included: floor division). Outside that range
 * RFC 3339 has no representation; the function clamps, and ws_statement_build refuses such values
 * (and negative observedAt, which in Kafka means "no timestamp") rather than sign a clamped time.
 */
#include "window/window.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 0000-01-01T00:00:00.000Z and 9999-12-31T23:59:59.999Z in ms since the epoch */
#define TIME_MIN_MS (-62167219200000LL)
#define TIME_MAX_MS (253402300799999LL)

/* ------------------------------------------------------------------------------------------ */
/* Helpers                                                                                        */

void ws_format_time_ms(int64_t ms, char out[32])
{
    int64_t days, rem, z, era, doe, yoe, y, doy, mp, d, m;

    if (ms < TIME_MIN_MS)
        ms = TIME_MIN_MS;
    if (ms > TIME_MAX_MS)
        ms = TIME_MAX_MS;
    days = ms / 86400000;
    rem = ms % 86400000;
    if (rem < 0) { /* floor, not truncation, for instants before 1970 */
        rem += 86400000;
        days--;
    }
    /* days -> civil date (H. Hinnant's algorithm, eras of 400 years) */
    z = days + 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    y = yoe + era * 400;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    d = doy - (153 * mp + 2) / 5 + 1;
    m = mp < 10 ? mp + 3 : mp - 9;
    if (m <= 2)
        y++;
    /* every field is in range after the clamp; the moduli only tell the compiler so */
    snprintf(out, 32, "%04u-%02u-%02uT%02u:%02u:%02u.%03uZ", (unsigned)(y % 10000),
             (unsigned)(m % 100), (unsigned)(d % 100), (unsigned)(rem / 3600000 % 100),
             (unsigned)(rem / 60000 % 60), (unsigned)(rem / 1000 % 60), (unsigned)(rem % 1000));
}

void ws_object_name(const char *query_id, int64_t batch_id, const char *suffix, char out[256])
{
    /* batch ids are non-negative (callers validate); the zero padding keeps listing order */
    snprintf(out, 256, "%s/%020" PRId64 "%s", query_id, batch_id, suffix ? suffix : "");
}

void ws_window_id(const char *query_id, int64_t batch_id, char out[WS_WINDOW_ID_MAX])
{
    /* query ids are at most 128 bytes (ws_query_id_safe), batch ids at most 19 digits */
    snprintf(out, WS_WINDOW_ID_MAX, "%s/%" PRId64, query_id, batch_id);
}

bool ws_query_id_safe(const char *id, size_t len)
{
    if (!id || len < 1 || len > 128 || id[0] == '.')
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = id[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* ------------------------------------------------------------------------------------------ */
/* Builder with a sticky error                                                                    */

struct builder {
    ws_err_t err;
};

/*
 * Whether v may be stored: not after an earlier error (v is dropped), not NULL (its constructor
 * failed: invalid UTF-8 or no memory). put/append take ownership of v either way.
 */
static bool storable(struct builder *b, json_t *v)
{
    if (b->err)
        json_decref(v);
    else if (!v)
        b->err = WS_ERR_INVALID;
    return !b->err;
}

static void put(struct builder *b, json_t *obj, const char *key, json_t *v)
{
    if (storable(b, v) && json_object_set_new(obj, key, v))
        b->err = WS_ERR_NOMEM;
}

static void append(struct builder *b, json_t *arr, json_t *v)
{
    if (storable(b, v) && json_array_append_new(arr, v))
        b->err = WS_ERR_NOMEM;
}

static json_t *str(struct builder *b, const char *s)
{
    if (!s) {
        if (!b->err)
            b->err = WS_ERR_INVALID;
        return NULL;
    }
    return json_string(s); /* NULL on invalid UTF-8 -> WS_ERR_INVALID in put() */
}

static json_t *u64(struct builder *b, uint64_t v)
{
    if (v > INT64_MAX) {
        if (!b->err)
            b->err = WS_ERR_TOO_LARGE;
        return NULL;
    }
    return json_integer((json_int_t)v);
}

static json_t *hex(const uint8_t h[WS_HASH_LEN])
{
    char s[WS_HASH_HEX_LEN + 1];

    ws_hex_encode(h, WS_HASH_LEN, s);
    return json_string_nocheck(s);
}

static json_t *time_str(struct builder *b, int64_t ms)
{
    char s[32];

    if (ms < TIME_MIN_MS || ms > TIME_MAX_MS) {
        if (!b->err)
            b->err = WS_ERR_INVALID;
        return NULL;
    }
    ws_format_time_ms(ms, s);
    return json_string_nocheck(s);
}

static json_t *obj(struct builder *b)
{
    json_t *o = json_object();

    if (!o && !b->err)
        b->err = WS_ERR_NOMEM;
    return o;
}

static json_t *arr(struct builder *b)
{
    json_t *a = json_array();

    if (!a && !b->err)
        b->err = WS_ERR_NOMEM;
    return a;
}

static int cmp_source(const void *pa, const void *pb)
{
    const struct ws_window_source *a = *(const struct ws_window_source *const *)pa;
    const struct ws_window_source *b = *(const struct ws_window_source *const *)pb;
    int c = strcmp(a->topic, b->topic); /* strcmp compares as unsigned char: topic bytes */

    if (c)
        return c;
    return (a->partition > b->partition) - (a->partition < b->partition);
}

/* ------------------------------------------------------------------------------------------ */
/* The statement                                                                                  */

static json_t *build_subjects(struct builder *b, const struct ws_statement_in *in,
                              const char *window_id)
{
    json_t *subjects = arr(b), *s, *d;
    char name[300];

    snprintf(name, sizeof(name), "stream:%s", window_id);
    s = obj(b);
    put(b, s, "name", str(b, name));
    d = obj(b);
    put(b, d, "sha256", hex(in->window->stream_digest));
    put(b, s, "digest", d);
    append(b, subjects, s);
    for (size_t i = 0; i < in->noutputs; i++) {
        const struct ws_output *o = &in->outputs[i];
        /* a resolved Iceberg output's subjects are its snapshot's files, not the job's list */
        const struct ws_out_file *files = o->iceberg ? o->subjects : o->files;
        size_t n = o->iceberg ? o->nsubjects : o->nfiles;
        for (size_t j = 0; j < n; j++) {
            if (!files[j].has_digest)
                continue;
            s = obj(b);
            put(b, s, "name", str(b, files[j].name));
            d = obj(b);
            put(b, d, "sha256", hex(files[j].sha256));
            put(b, s, "digest", d);
            append(b, subjects, s);
        }
    }
    return subjects;
}

static json_t *build_window(struct builder *b, const struct ws_statement_in *in,
                            const char *window_id, json_t **topics_out)
{
    const struct ws_window_result *w = in->window;
    const struct ws_window_source **sorted = NULL;
    json_t *win = obj(b), *sources = arr(b), *topics = arr(b);

    *topics_out = topics;
    put(b, win, "type", json_string("micro-batch"));
    put(b, win, "id", str(b, window_id));
    put(b, win, "batchId", json_integer(in->batch_id));
    put(b, win, "observedAt", time_str(b, in->observed_at_ms));
    if (w->has_time) {
        put(b, win, "start", time_str(b, w->ts_min));
        put(b, win, "end", time_str(b, w->ts_max));
    }
    /* sorted here rather than trusted: the statement's bytes must not depend on the caller */
    if (w->nsources) {
        sorted = malloc(w->nsources * sizeof(*sorted));
        if (!sorted) {
            if (!b->err)
                b->err = WS_ERR_NOMEM;
            goto out;
        }
        for (size_t i = 0; i < w->nsources; i++)
            sorted[i] = &w->sources[i];
        qsort(sorted, w->nsources, sizeof(*sorted), cmp_source);
    }
    for (size_t i = 0; i < w->nsources; i++) {
        const struct ws_window_source *src = sorted[i];
        json_t *s = obj(b);

        put(b, s, "topic", str(b, src->topic));
        put(b, s, "partition", json_integer(src->partition));
        put(b, s, "fromOffset", json_integer(src->from_offset));
        put(b, s, "untilOffset", json_integer(src->until_offset));
        put(b, s, "recordCount", u64(b, src->record_count));
        put(b, s, "bytes", u64(b, src->bytes));
        append(b, sources, s);
        if (i == 0 || strcmp(sorted[i - 1]->topic, src->topic) != 0)
            append(b, topics, str(b, src->topic));
    }
    if (in->nignored > 0) {
        json_t *ign = arr(b);
        for (size_t i = 0; i < in->nignored; i++)
            append(b, ign, str(b, in->ignored_sources ? in->ignored_sources[i] : NULL));
        put(b, win, "ignoredSources", ign);
    }
    if (in->has_reported_input_rows)
        put(b, win, "reportedInputRows", json_integer(in->reported_input_rows));
out:
    put(b, win, "sources", sources);
    free(sorted);
    return win;
}

static json_t *build_integrity(struct builder *b, const struct ws_statement_in *in)
{
    const struct ws_window_result *w = in->window;
    json_t *integ = obj(b), *mt = obj(b), *chain = obj(b);

    put(b, mt, "algorithm", json_string("sha256"));
    put(b, mt, "scheme", json_string("rfc6962"));
    put(b, mt, "leafEncoding", json_string("windowseal.record.v1"));
    put(b, mt, "leafCount", u64(b, w->leaf_count));
    put(b, mt, "root", hex(w->root));
    put(b, integ, "merkleTree", mt);

    put(b, chain, "chainLength", u64(b, in->chain_length));
    put(b, chain, "logRoot", hex(in->log_root));
    put(b, chain, "genesisWindowId", str(b, in->genesis_window_id));
    if (in->has_previous) {
        json_t *prev = obj(b);

        put(b, prev, "windowId", str(b, in->previous_window_id));
        put(b, prev, "merkleRoot", hex(in->previous_root));
        put(b, prev, "attestationDigest", hex(in->previous_attestation_digest));
        put(b, integ, "previousWindow", prev);
        put(b, chain, "previousWindowId", str(b, in->previous_window_id));
        put(b, chain, "previousMerkleRoot", hex(in->previous_root));
        put(b, chain, "previousAttestationDigest", hex(in->previous_attestation_digest));
    }
    put(b, integ, "chain", chain);
    if (in->ngaps > 0) {
        json_t *gaps = arr(b);
        for (size_t i = 0; i < in->ngaps; i++) {
            json_t *g = obj(b);
            put(b, g, "fromBatchId", json_integer(in->gaps[i].from_batch));
            put(b, g, "untilBatchId", json_integer(in->gaps[i].until_batch));
            append(b, gaps, g);
        }
        put(b, integ, "gaps", gaps);
    }
    return integ;
}

/* A deep copy: the statement owns its tree, the caller keeps its object. */
static json_t *copy(struct builder *b, const struct json_t *v)
{
    json_t *c = json_deep_copy(v);

    if (!c && !b->err)
        b->err = WS_ERR_NOMEM;
    return c;
}

static json_t *build_outputs(struct builder *b, const struct ws_statement_in *in)
{
    json_t *outs = arr(b);

    for (size_t i = 0; i < in->noutputs; i++) {
        const struct ws_output *o = &in->outputs[i];
        json_t *jo = obj(b), *files = arr(b);

        put(b, jo, "name", str(b, o->name));
        if (o->snapshot_id)
            put(b, jo, "snapshotId", str(b, o->snapshot_id));
        if (o->iceberg) { /* compared, not hashed: no files (SPEC 6) */
            json_decref(files);
            put(b, jo, "iceberg", copy(b, o->iceberg));
            if (o->discrepancy)
                put(b, jo, "discrepancy", copy(b, o->discrepancy));
            append(b, outs, jo);
            continue;
        }
        for (size_t j = 0; j < o->nfiles; j++) {
            const struct ws_out_file *f = &o->files[j];
            json_t *jf = obj(b);

            put(b, jf, "name", str(b, f->name));
            if (f->has_digest)
                put(b, jf, "sha256", hex(f->sha256));
            if (f->bytes >= 0)
                put(b, jf, "bytes", json_integer(f->bytes));
            if (f->error)
                put(b, jf, "error", str(b, f->error));
            append(b, files, jf);
        }
        put(b, jo, "files", files);
        append(b, outs, jo);
    }
    return outs;
}

ws_err_t ws_statement_build(const struct ws_statement_in *in, char **json, size_t *len)
{
    struct builder b = {WS_OK};
    char window_id[WS_WINDOW_ID_MAX], evname[256], collector_id[512];
    json_t *root, *pred, *stream, *topics = NULL, *coll, *ver, *verif, *ev, *agg;
    char *s;

    *json = NULL;
    *len = 0;
    if (!in || !in->window || !in->query_id || !in->group_id || !in->version || !in->keyid ||
        !in->genesis_window_id || (in->has_previous && !in->previous_window_id) ||
        (in->ngaps && !in->gaps) || (in->noutputs && !in->outputs) ||
        (in->window->nsources && !in->window->sources))
        return WS_ERR_INVALID;
    if (!ws_query_id_safe(in->query_id, strlen(in->query_id)))
        return WS_ERR_UNSAFE_ID;
    if (in->batch_id < 0 || in->observed_at_ms < 0)
        return WS_ERR_INVALID;
    for (size_t i = 0; i < in->noutputs; i++)
        if ((in->outputs[i].nfiles && !in->outputs[i].files) ||
            (in->outputs[i].nsubjects && !in->outputs[i].subjects) ||
            (in->outputs[i].discrepancy && !in->outputs[i].iceberg))
            return WS_ERR_INVALID;
    if (strlen(in->group_id) > 256)
        return WS_ERR_TOO_LARGE;
    ws_window_id(in->query_id, in->batch_id, window_id);
    ws_object_name(in->query_id, in->batch_id, ".evidence.lz4", evname);
    snprintf(collector_id, sizeof(collector_id), "windowseal:%s", in->group_id);

    root = obj(&b);
    put(&b, root, "_type", json_string(WS_STATEMENT_TYPE));
    put(&b, root, "subject", build_subjects(&b, in, window_id));
    put(&b, root, "predicateType", json_string(WS_PREDICATE_TYPE));

    pred = obj(&b);
    put(&b, pred, "makotoLevel", json_string("L2"));
    stream = obj(&b);
    put(&b, stream, "id", str(&b, in->query_id));
    if (in->name)
        put(&b, stream, "name", str(&b, in->name));
    if (in->run_id)
        put(&b, stream, "runId", str(&b, in->run_id));
    put(&b, pred, "window", build_window(&b, in, window_id, &topics));
    put(&b, stream, "topics", topics);
    put(&b, pred, "stream", stream);
    put(&b, pred, "integrity", build_integrity(&b, in));
    if (in->noutputs > 0)
        put(&b, pred, "outputs", build_outputs(&b, in));
    agg = obj(&b);
    put(&b, agg, "recordCount", u64(&b, in->window->leaf_count));
    put(&b, agg, "bytes", u64(&b, in->window->bytes));
    put(&b, pred, "aggregates", agg);
    coll = obj(&b);
    put(&b, coll, "id", str(&b, collector_id));
    ver = obj(&b);
    put(&b, ver, "windowseal", str(&b, in->version));
    put(&b, coll, "version", ver);
    put(&b, coll, "keyid", str(&b, in->keyid));
    put(&b, pred, "collector", coll);
    verif = obj(&b);
    put(&b, verif, "merkleProofAvailable", json_true());
    ev = obj(&b);
    put(&b, ev, "name", str(&b, evname));
    put(&b, ev, "compression", json_string("lz4-frame"));
    put(&b, verif, "evidence", ev);
    put(&b, pred, "verification", verif);
    put(&b, root, "predicate", pred);

    if (!b.err) {
        s = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
        if (s) {
            *json = s;
            *len = strlen(s);
        } else {
            b.err = WS_ERR_NOMEM;
        }
    }
    json_decref(root);
    return b.err;
}
