/*
 * event.c — one attested window as two OpenLineage RunEvents (spec 2-0-2; FORMAT.md §11).
 *
 * Pure: the envelope in, two JSON texts out, no clock, no environment, no I/O. Everything comes
 * from the signed statement (the envelope's payload) and the two namespaces of the
 * configuration, so the events state exactly what was signed, and the same window always gives
 * the same bytes (jansson, compact, keys sorted; eventTime is the statement's observedAt, never
 * the time of sending). That is what makes a re-emit after a crash, or a retry, harmless: the
 * backend sees the same run id and the same event again.
 *
 *   START     run {runId, facets.parent?}, job {namespace, name, facets.jobType}
 *   COMPLETE  the same, plus run.facets.windowseal_attestation, inputs (one Kafka dataset per
 *             topic of window.sources) and outputs (one per Iceberg output, with `version` =
 *             the snapshot id when the statement knows it)
 *
 * The run id is a UUIDv8 (RFC 9562 §5.8: the layout only, the 122 free bits are ours) made from
 * SHA-256 of a domain string and the window id; a notification's Spark runId becomes the parent
 * run only if it is a UUID, since the spec's schema says format uuid (it stays, as given, in
 * the custom facet's sparkRunId, which is what the statement signed).
 */
#include "lineage/lineage.h"

#include <assert.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SPEC_URL "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
#define PARENT_URL                                                                                 \
    "https://openlineage.io/spec/facets/1-2-0/ParentRunFacet.json#/$defs/ParentRunFacet"
#define JOBTYPE_URL                                                                                \
    "https://openlineage.io/spec/facets/2-0-4/JobTypeJobFacet.json#/$defs/JobTypeJobFacet"
#define VERSION_URL                                                                                \
    "https://openlineage.io/spec/facets/1-0-1/DatasetVersionDatasetFacet.json#/$defs/"             \
    "DatasetVersionDatasetFacet"
#define RUN_ID_DOMAIN "windowseal.openlineage.run.v1\n"

void ws_lineage_run_id(const char *window_id, char out[WS_LINEAGE_UUID_LEN + 1])
{
    uint8_t h[WS_HASH_LEN];
    char hex[2 * 16 + 1];
    struct ws_sha256 s;

    ws_sha256_init(&s);
    ws_sha256_update(&s, RUN_ID_DOMAIN, strlen(RUN_ID_DOMAIN));
    ws_sha256_update(&s, window_id, strlen(window_id));
    ws_sha256_final(&s, h);
    h[6] = (uint8_t)((h[6] & 0x0f) | 0x80); /* version 8 */
    h[8] = (uint8_t)((h[8] & 0x3f) | 0x80); /* variant 10 */
    ws_hex_encode(h, 16, hex);
    snprintf(out, WS_LINEAGE_UUID_LEN + 1, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12,
             hex + 16, hex + 20);
    assert(strlen(out) == WS_LINEAGE_UUID_LEN);
}

void ws_lineage_kafka_namespace(const char *bootstrap, char *out, size_t cap)
{
    const char *s = bootstrap ? bootstrap : "", *end, *scheme, *colon;
    size_t n;

    while (*s == ' ')
        s++;
    end = s + strcspn(s, ",");
    while (end > s && end[-1] == ' ')
        end--;
    /* "SASL_SSL://host:9093": Spark's visitor parses it as a URI and keeps host:port */
    if ((scheme = strstr(s, "://")) && scheme < end)
        s = scheme + 3;
    n = (size_t)(end - s);
    n = strcspn(s, "/") < n ? strcspn(s, "/") : n;
    /* the port is after the last ':' outside brackets ("[::1]:9092") */
    colon = NULL;
    for (const char *p = s; p < s + n; p++)
        if (*p == ':')
            colon = p;
        else if (*p == ']')
            colon = NULL;
    if (colon)
        snprintf(out, cap, "kafka://%.*s", (int)n, s);
    else /* java.net.URI.getPort() of a URI without one is -1, and Spark writes it so */
        snprintf(out, cap, "kafka://%.*s:-1", (int)n, s);
}

void ws_lineage_events_free(struct ws_lineage_events *ev)
{
    if (!ev)
        return;
    free(ev->start);
    free(ev->complete);
    free(ev->key);
    memset(ev, 0, sizeof *ev);
}

/* ------------------------------------------------------------------------------------------ */
/* Reading the statement                                                                        */

/* What the events need, borrowed from the statement's JSON tree. */
struct facts {
    const char *query_id, *name, *spark_run_id, *window_id, *observed_at, *predicate_type;
    const char *merkle_root, *stream_digest, *log_root, *keyid, *evidence;
    json_int_t batch_id, chain_length;
    const json_t *sources, *outputs; /* arrays */
    char statement_digest[WS_HASH_HEX_LEN + 1];
};

static const json_t *at(const json_t *o, const char *path)
{
    char key[64];

    while (o && *path) {
        size_t n = strcspn(path, ".");
        if (n >= sizeof key)
            return NULL;
        memcpy(key, path, n);
        key[n] = '\0';
        o = json_is_object(o) ? json_object_get(o, key) : NULL;
        path += n + (path[n] == '.');
    }
    return o;
}

static const char *str_at(const json_t *o, const char *path)
{
    return json_string_value(at(o, path)); /* NULL unless a string */
}

static bool hex64(const char *s)
{
    if (!s || strlen(s) != WS_HASH_HEX_LEN)
        return false;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
            return false;
    return true;
}

/* 8-4-4-4-12 hex digits: what the spec's format "uuid" accepts. */
static bool is_uuid(const char *s)
{
    if (!s || strlen(s) != WS_LINEAGE_UUID_LEN)
        return false;
    for (int i = 0; s[i]; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        char c = s[i];
        if (dash ? c != '-'
                 : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return false;
    }
    return true;
}

static ws_err_t read_facts(const json_t *st, struct facts *f, char *errbuf, size_t errlen)
{
    const json_t *subject = at(st, "subject"), *e;
    char want[WS_WINDOW_ID_MAX + 8], wid[WS_WINDOW_ID_MAX];
    const char *missing = NULL;
    size_t i;

    f->predicate_type = str_at(st, "predicateType");
    f->query_id = str_at(st, "predicate.stream.id");
    f->name = str_at(st, "predicate.stream.name");
    f->spark_run_id = str_at(st, "predicate.stream.runId");
    f->window_id = str_at(st, "predicate.window.id");
    f->observed_at = str_at(st, "predicate.window.observedAt");
    f->merkle_root = str_at(st, "predicate.integrity.merkleTree.root");
    f->log_root = str_at(st, "predicate.integrity.chain.logRoot");
    f->keyid = str_at(st, "predicate.collector.keyid");
    f->evidence = str_at(st, "predicate.verification.evidence.name");
    f->sources = at(st, "predicate.window.sources");
    f->outputs = at(st, "predicate.outputs");
    if (!json_is_string(at(st, "_type")) || !f->predicate_type)
        missing = "_type or predicateType";
    else if (!f->query_id || !*f->query_id)
        missing = "predicate.stream.id";
    else if (!json_is_integer(at(st, "predicate.window.batchId")))
        missing = "predicate.window.batchId";
    else if (!f->window_id || !f->observed_at)
        missing = "predicate.window.id or observedAt";
    else if (!hex64(f->merkle_root) || !hex64(f->log_root) || !hex64(f->keyid))
        missing = "predicate.integrity (merkleTree.root, chain.logRoot) or collector.keyid";
    else if (!json_is_integer(at(st, "predicate.integrity.chain.chainLength")))
        missing = "predicate.integrity.chain.chainLength";
    else if (!f->evidence || !json_is_array(f->sources) || !json_is_array(subject))
        missing = "verification.evidence.name, window.sources or subject";
    else if (f->outputs && !json_is_array(f->outputs))
        missing = "predicate.outputs (not an array)";
    if (missing)
        return ws_fail(WS_ERR_MALFORMED, errbuf, errlen, "lineage: statement without %s", missing);
    f->batch_id = json_integer_value(at(st, "predicate.window.batchId"));
    f->chain_length = json_integer_value(at(st, "predicate.integrity.chain.chainLength"));
    ws_window_id(f->query_id, (int64_t)f->batch_id, wid);
    if (strcmp(wid, f->window_id) != 0 || f->batch_id < 0 || f->chain_length < 1)
        return ws_fail(WS_ERR_MALFORMED, errbuf, errlen,
                       "lineage: statement's window id %s is not %s", f->window_id, wid);
    /* the stream digest is the digest of subject "stream:<window id>" (FORMAT.md §5) */
    snprintf(want, sizeof want, "stream:%s", f->window_id);
    f->stream_digest = NULL;
    json_array_foreach(subject, i, e)
    {
        const char *n = str_at(e, "name");
        if (n && strcmp(n, want) == 0)
            f->stream_digest = str_at(e, "digest.sha256");
    }
    if (!hex64(f->stream_digest))
        return ws_fail(WS_ERR_MALFORMED, errbuf, errlen, "lineage: statement without subject %s",
                       want);
    return WS_OK;
}

/* The statement bytes of a DSSE envelope (the base64 forms DSSE allows), malloc'ed. */
static ws_err_t payload_of(const json_t *env, uint8_t **out, size_t *outlen, char *errbuf,
                           size_t errlen)
{
    static const int variants[] = {
        sodium_base64_VARIANT_ORIGINAL, sodium_base64_VARIANT_ORIGINAL_NO_PADDING,
        sodium_base64_VARIANT_URLSAFE, sodium_base64_VARIANT_URLSAFE_NO_PADDING};
    const char *type = str_at(env, "payloadType"), *b64 = str_at(env, "payload"), *end;
    size_t n, cap;
    uint8_t *buf;

    if (!type || strcmp(type, WS_PAYLOAD_TYPE) != 0 || !b64)
        return ws_fail(WS_ERR_MALFORMED, errbuf, errlen,
                       "lineage: not a DSSE envelope of an in-toto statement");
    cap = strlen(b64) / 4 * 3 + 3;
    if (!(buf = malloc(cap)))
        return WS_ERR_NOMEM;
    for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++)
        if (sodium_base642bin(buf, cap, b64, strlen(b64), NULL, &n, &end, variants[i]) == 0 &&
            *end == '\0') {
            *out = buf;
            *outlen = n;
            return WS_OK;
        }
    free(buf);
    return ws_fail(WS_ERR_MALFORMED, errbuf, errlen, "lineage: payload is not base64");
}

/* ------------------------------------------------------------------------------------------ */
/* Building the events                                                                          */

/* Sticky failure (Redis's rio manner): many sets, one check at the end. */
struct b {
    bool oom;
};

static json_t *put(struct b *b, json_t *o, const char *k, json_t *v)
{
    if (!v || !o || json_object_set_new(o, k, v))
        b->oom = true;
    return v;
}

static json_t *obj(struct b *b)
{
    json_t *o = json_object();
    b->oom |= !o;
    return o;
}

static json_t *facet(struct b *b, const char *schema_url)
{
    json_t *o = obj(b);
    put(b, o, "_producer", json_string(WS_LINEAGE_PRODUCER));
    put(b, o, "_schemaURL", json_string(schema_url));
    return o;
}

static json_t *job(struct b *b, const struct ws_lineage_conf *c, const char *job_name)
{
    json_t *j = obj(b), *facets, *jt;

    put(b, j, "namespace", json_string(c->job_namespace));
    put(b, j, "name", json_string(job_name));
    facets = put(b, j, "facets", obj(b));
    jt = put(b, facets, "jobType", facet(b, JOBTYPE_URL));
    put(b, jt, "processingType", json_string("STREAMING"));
    put(b, jt, "integration", json_string("WINDOWSEAL"));
    put(b, jt, "jobType", json_string("ATTESTATION"));
    return j;
}

static json_t *attestation_facet(struct b *b, const struct facts *f)
{
    char envelope[256];
    json_t *a = facet(b, WS_LINEAGE_FACET_SCHEMA_URL);

    ws_object_name(f->query_id, (int64_t)f->batch_id, ".dsse.json", envelope);
    put(b, a, "queryId", json_string(f->query_id));
    if (f->spark_run_id)
        put(b, a, "sparkRunId", json_string(f->spark_run_id));
    put(b, a, "batchId", json_integer(f->batch_id));
    put(b, a, "windowId", json_string(f->window_id));
    put(b, a, "predicateType", json_string(f->predicate_type));
    put(b, a, "statementDigest", json_string(f->statement_digest));
    put(b, a, "merkleRoot", json_string(f->merkle_root));
    put(b, a, "streamDigest", json_string(f->stream_digest));
    put(b, a, "chainLength", json_integer(f->chain_length));
    put(b, a, "logRoot", json_string(f->log_root));
    put(b, a, "keyid", json_string(f->keyid));
    put(b, a, "envelope", json_string(envelope));
    put(b, a, "evidence", json_string(f->evidence));
    return a;
}

/* One Kafka dataset per topic of window.sources (sorted by topic there: equal ones adjacent). */
static json_t *inputs(struct b *b, const struct ws_lineage_conf *c, const json_t *sources)
{
    json_t *arr = json_array(), *e;
    const char *last = NULL;
    size_t i;

    b->oom |= !arr;
    json_array_foreach(sources, i, e)
    {
        const char *topic = str_at(e, "topic");
        json_t *d;
        if (!topic || (last && strcmp(last, topic) == 0))
            continue;
        last = topic;
        d = obj(b);
        put(b, d, "namespace", json_string(c->kafka_namespace));
        put(b, d, "name", json_string(topic));
        if (!d || json_array_append_new(arr, d))
            b->oom = true;
    }
    return arr;
}

/* "<ns0>.<ns1>.<table>" of an iceberg object, or NULL when its parts are not all strings. */
static char *table_name(const json_t *ice)
{
    const json_t *ns = at(ice, "namespace"), *e;
    const char *table = str_at(ice, "table");
    size_t i, len = table ? strlen(table) + 1 : 0, o = 0;
    char *s;

    if (!table || !json_is_array(ns))
        return NULL;
    json_array_foreach(ns, i, e)
    {
        if (!json_is_string(e))
            return NULL;
        len += json_string_length(e) + 1;
    }
    if (!(s = malloc(len)))
        return NULL;
    json_array_foreach(ns, i, e)
    {
        memcpy(s + o, json_string_value(e), json_string_length(e));
        o += json_string_length(e);
        s[o++] = '.';
    }
    memcpy(s + o, table, strlen(table) + 1);
    return s;
}

/* One dataset per statement output with an `iceberg` object: namespace iceberg://<catalog>. */
static json_t *outputs(struct b *b, const json_t *outs)
{
    json_t *arr = json_array(), *e;
    size_t i;

    b->oom |= !arr;
    json_array_foreach(outs, i, e)
    {
        const json_t *ice = at(e, "iceberg");
        const char *catalog = str_at(ice, "catalog"), *snap = str_at(ice, "snapshotId");
        char *name = table_name(ice), ns[256];
        json_t *d, *facets;

        if (!catalog || !name) {
            free(name);
            continue; /* a plain output (files), or an Iceberg output the statement cannot name */
        }
        snprintf(ns, sizeof ns, "iceberg://%s", catalog);
        d = obj(b);
        put(b, d, "namespace", json_string(ns));
        put(b, d, "name", json_string(name));
        free(name);
        if (snap) {
            facets = put(b, d, "facets", obj(b));
            put(b, put(b, facets, "version", facet(b, VERSION_URL)), "datasetVersion",
                json_string(snap));
        }
        if (!d || json_array_append_new(arr, d))
            b->oom = true;
    }
    return arr;
}

static char *event(struct b *b, const struct ws_lineage_conf *c, const struct facts *f,
                   const char *run_id, const char *job_name, bool complete, size_t *len)
{
    json_t *ev = obj(b), *run, *facets;
    char *s = NULL;

    put(b, ev, "eventTime", json_string(f->observed_at));
    put(b, ev, "eventType", json_string(complete ? "COMPLETE" : "START"));
    put(b, ev, "producer", json_string(WS_LINEAGE_PRODUCER));
    put(b, ev, "schemaURL", json_string(SPEC_URL));
    run = put(b, ev, "run", obj(b));
    put(b, run, "runId", json_string(run_id));
    facets = obj(b);
    if (is_uuid(f->spark_run_id)) {
        json_t *p = put(b, facets, "parent", facet(b, PARENT_URL));
        json_t *pj = put(b, p, "job", obj(b));
        put(b, put(b, p, "run", obj(b)), "runId", json_string(f->spark_run_id));
        put(b, pj, "namespace", json_string(c->job_namespace));
        put(b, pj, "name", json_string(f->name ? f->name : f->query_id));
    }
    if (complete)
        put(b, facets, WS_LINEAGE_FACET_KEY, attestation_facet(b, f));
    if (json_object_size(facets))
        put(b, run, "facets", facets);
    else
        json_decref(facets);
    put(b, ev, "job", job(b, c, job_name));
    if (complete) {
        put(b, ev, "inputs", inputs(b, c, f->sources));
        put(b, ev, "outputs", f->outputs ? outputs(b, f->outputs) : json_array());
    }
    if (!b->oom)
        s = json_dumps(ev, JSON_COMPACT | JSON_SORT_KEYS);
    b->oom |= !s;
    json_decref(ev);
    *len = s ? strlen(s) : 0;
    return s;
}

ws_err_t ws_lineage_build(const struct ws_lineage_conf *conf, const char *env, size_t len,
                          struct ws_lineage_events *out, char *errbuf, size_t errlen)
{
    struct ws_lineage_events ev;
    json_t *envelope = NULL, *st = NULL;
    uint8_t *payload = NULL, digest[WS_HASH_LEN];
    size_t plen = 0, klen;
    struct facts f = {0};
    struct b b = {false};
    char *job_name = NULL;
    json_error_t jerr;
    ws_err_t err;

    assert(conf && conf->job_namespace && conf->kafka_namespace && env && out);
    memset(&ev, 0, sizeof ev);
    if (!(envelope = json_loadb(env, len, JSON_REJECT_DUPLICATES, &jerr))) {
        err = ws_fail(WS_ERR_MALFORMED, errbuf, errlen, "lineage: envelope: %s", jerr.text);
        goto out;
    }
    if ((err = payload_of(envelope, &payload, &plen, errbuf, errlen)))
        goto out;
    if (!(st = json_loadb((const char *)payload, plen, JSON_REJECT_DUPLICATES, &jerr))) {
        err = ws_fail(WS_ERR_MALFORMED, errbuf, errlen, "lineage: statement: %s", jerr.text);
        goto out;
    }
    if ((err = read_facts(st, &f, errbuf, errlen)))
        goto out;
    ws_sha256(payload, plen, digest);
    ws_hex_encode(digest, WS_HASH_LEN, f.statement_digest);
    klen = strlen(f.name ? f.name : f.query_id) + sizeof ".attest";
    if (!(job_name = malloc(klen))) {
        err = WS_ERR_NOMEM;
        goto out;
    }
    snprintf(job_name, klen, "%s.attest", f.name ? f.name : f.query_id);
    ws_lineage_run_id(f.window_id, ev.run_id);
    ev.start = event(&b, conf, &f, ev.run_id, job_name, false, &ev.start_len);
    ev.complete = event(&b, conf, &f, ev.run_id, job_name, true, &ev.complete_len);
    klen = strlen(conf->job_namespace) + strlen(job_name) + sizeof "run:/";
    if (!b.oom && (ev.key = malloc(klen)))
        snprintf(ev.key, klen, "run:%s/%s", conf->job_namespace, job_name);
    if (b.oom || !ev.key) {
        err = ws_fail(WS_ERR_NOMEM, errbuf, errlen, "lineage: out of memory");
        ws_lineage_events_free(&ev);
        goto out;
    }
    *out = ev;
out:
    free(job_name);
    json_decref(st);
    json_decref(envelope);
    free(payload);
    return err;
}
