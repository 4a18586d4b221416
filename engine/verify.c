/*
 * verify.c — checks one attestation the way an auditor's tool would: trust nothing in it.
 *
 * Order: signature first (nothing unsigned is parsed further than DSSE needs), then the
 * statement's shape against FORMAT.md §5, then — given the evidence archive — every derived figure is
 * recomputed from the records by the same ws_window accumulator the engine uses: stream digest,
 * Merkle root, leaf count, per-source counts and bytes, record ranges and window-stream order,
 * first/last timestamps. A statement that is well-formed but disagrees with its evidence fails
 * with the first field that differs.
 */
#include "engine/internal.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FAIL(...) ws_fail(WS_ERR_VERIFY, errbuf, errlen, __VA_ARGS__)

static const char *str_at(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static bool int_at(const json_t *o, const char *k, int64_t *out)
{
    const json_t *v = json_object_get(o, k);
    if (!json_is_integer(v))
        return false;
    *out = json_integer_value(v);
    return true;
}

static bool hash_at(const json_t *o, const char *k, uint8_t out[WS_HASH_LEN])
{
    const char *s = str_at(o, k);
    size_t n = s ? strlen(s) : 0;

    if (!s || n != WS_HASH_HEX_LEN)
        return false;
    for (size_t i = 0; i < n; i++) /* lowercase only (FORMAT.md §5) */
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return ws_hex_decode(s, n, out, WS_HASH_LEN) == WS_OK;
}

static bool copy_str(char *dst, size_t cap, const char *s)
{
    if (!s || strlen(s) >= cap)
        return false;
    memcpy(dst, s, strlen(s) + 1);
    return true;
}

/* Evidence reader over a stdio stream. */
static ws_err_t file_read(void *opaque, void *buf, size_t cap, size_t *got)
{
    FILE *f = opaque;

    *got = fread(buf, 1, cap, f);
    return ferror(f) ? WS_ERR_IO : WS_OK;
}

static ws_err_t check_chain(const json_t *integ, struct ws_verified *v, char *errbuf, size_t errlen)
{
    const json_t *chain = json_object_get(integ, "chain");
    const json_t *prev = json_object_get(integ, "previousWindow");
    const json_t *gaps = json_object_get(integ, "gaps");
    int64_t n;

    if (!json_is_object(chain) || !int_at(chain, "chainLength", &n) || n < 1 ||
        !hash_at(chain, "logRoot", v->log_root) ||
        !copy_str(v->genesis_window_id, sizeof v->genesis_window_id,
                  str_at(chain, "genesisWindowId")))
        return FAIL("statement: integrity.chain needs chainLength >= 1, logRoot, genesisWindowId");
    v->chain_length = (uint64_t)n;
    v->has_previous = prev != NULL;
    if (prev) {
        const char *cpw = str_at(chain, "previousWindowId");
        uint8_t cr[WS_HASH_LEN], cd[WS_HASH_LEN];
        if (!json_is_object(prev) ||
            !copy_str(v->previous_window_id, sizeof v->previous_window_id,
                      str_at(prev, "windowId")) ||
            !hash_at(prev, "merkleRoot", v->previous_root) ||
            !hash_at(prev, "attestationDigest", v->previous_attestation_digest))
            return FAIL("statement: integrity.previousWindow needs windowId, merkleRoot, "
                        "attestationDigest");
        if (!cpw || strcmp(cpw, v->previous_window_id) != 0 ||
            !hash_at(chain, "previousMerkleRoot", cr) ||
            memcmp(cr, v->previous_root, WS_HASH_LEN) != 0 ||
            !hash_at(chain, "previousAttestationDigest", cd) ||
            memcmp(cd, v->previous_attestation_digest, WS_HASH_LEN) != 0)
            return FAIL("statement: integrity.chain.previous* disagree with previousWindow");
        if (n < 2)
            return FAIL("statement: a window with a previous window has chainLength %lld",
                        (long long)n);
    } else if (n != 1 || strcmp(v->genesis_window_id, v->window_id) != 0) {
        return FAIL("statement: no previousWindow, yet chainLength %lld / genesis %s", (long long)n,
                    v->genesis_window_id);
    }
    v->ngaps = 0;
    if (gaps) {
        size_t i;
        json_t *g;
        if (!json_is_array(gaps) || json_array_size(gaps) == 0)
            return FAIL("statement: integrity.gaps must be a non-empty array");
        json_array_foreach(gaps, i, g)
        {
            int64_t a, b;
            if (!int_at(g, "fromBatchId", &a) || !int_at(g, "untilBatchId", &b) || a < 0 ||
                a >= b || b > v->batch_id)
                return FAIL("statement: integrity.gaps[%zu] is not a range before batch %lld", i,
                            (long long)v->batch_id);
            if (v->ngaps < 16) {
                v->gaps[v->ngaps][0] = a;
                v->gaps[v->ngaps][1] = b;
                v->ngaps++;
            }
        }
    }
    return WS_OK;
}

/* Declared sources into the window accumulator; also sums them. */
static ws_err_t load_sources(const json_t *win, struct ws_window *w, uint64_t *count,
                             uint64_t *bytes, char *errbuf, size_t errlen)
{
    const json_t *srcs = json_object_get(win, "sources");
    size_t i;
    json_t *s;

    *count = *bytes = 0;
    if (!json_is_array(srcs))
        return FAIL("statement: predicate.window.sources must be an array");
    json_array_foreach(srcs, i, s)
    {
        const char *topic = str_at(s, "topic");
        int64_t p, from, until, rc, by;
        if (!topic || !int_at(s, "partition", &p) || !int_at(s, "fromOffset", &from) ||
            !int_at(s, "untilOffset", &until) || !int_at(s, "recordCount", &rc) ||
            !int_at(s, "bytes", &by) || p < 0 || p > INT32_MAX || rc < 0 || by < 0)
            return FAIL("statement: window.sources[%zu] needs topic, partition, fromOffset, "
                        "untilOffset, recordCount, bytes",
                        i);
        if (from < 0 || from > until || (uint64_t)rc > (uint64_t)(until - from))
            return FAIL("statement: window.sources[%zu] %s[%lld]: %lld records cannot lie in "
                        "[%lld, %lld)",
                        i, topic, (long long)p, (long long)rc, (long long)from, (long long)until);
        if (w && ws_window_add_source(w, topic, (int32_t)p, from, until) != WS_OK)
            return FAIL("statement: window.sources[%zu] %s[%lld] is declared twice", i, topic,
                        (long long)p);
        *count += (uint64_t)rc;
        *bytes += (uint64_t)by;
    }
    return WS_OK;
}

/* Recompute everything from the evidence and compare with what the statement says. */
static ws_err_t check_evidence(const json_t *win, const json_t *tree, const char *path,
                               struct ws_verified *v, char *errbuf, size_t errlen)
{
    struct ws_window *w = ws_window_new(NULL, NULL);
    struct ws_evidence_reader *rd = NULL;
    struct ws_window_result res;
    FILE *f = NULL;
    uint64_t count, bytes;
    const uint8_t *rec;
    size_t len, i;
    char why[512];
    const json_t *srcs = json_object_get(win, "sources");
    json_t *s;
    ws_err_t err;

    if (!w)
        return WS_ERR_NOMEM;
    if ((err = load_sources(win, w, &count, &bytes, errbuf, errlen)))
        goto out_window;
    if (!(f = fopen(path, "rb"))) {
        err = ws_fail(errno == ENOENT ? WS_ERR_NOT_FOUND : WS_ERR_IO, errbuf, errlen,
                      "evidence %s: %s", path, strerror(errno));
        goto out_window;
    }
    if (!(rd = ws_evidence_reader_new(file_read, f))) {
        err = WS_ERR_NOMEM;
        goto out_file;
    }
    for (uint64_t n = 0;; n++) {
        if ((err = ws_evidence_next(rd, &rec, &len, why, sizeof why))) {
            err = FAIL("evidence %s: record %llu: %s", path, (unsigned long long)n, why);
            goto out_reader;
        }
        if (!rec)
            break;
        if ((err = ws_window_add_encoded(w, rec, len, why, sizeof why))) {
            err = FAIL("evidence %s: record %llu: %s", path, (unsigned long long)n, why);
            goto out_reader;
        }
    }
    if ((err = ws_window_finish(w, &res)))
        goto out_reader;
    err = WS_ERR_VERIFY;
    if (memcmp(res.stream_digest, v->stream_digest, WS_HASH_LEN) != 0) {
        FAIL("evidence %s: stream digest differs from the statement's subject", path);
        goto out_reader;
    }
    if (memcmp(res.root, v->root, WS_HASH_LEN) != 0 || res.leaf_count != v->leaf_count) {
        FAIL("evidence %s: Merkle root or leaf count (%llu) differs from the statement", path,
             (unsigned long long)res.leaf_count);
        goto out_reader;
    }
    json_array_foreach(srcs, i, s)
    {
        /* res.sources is sorted; the statement's list must be sorted the same way. */
        int64_t rc = 0, by = 0;
        int_at(s, "recordCount", &rc);
        int_at(s, "bytes", &by);
        if (i >= res.nsources || strcmp(res.sources[i].topic, str_at(s, "topic")) != 0 ||
            (uint64_t)rc != res.sources[i].record_count || (uint64_t)by != res.sources[i].bytes) {
            FAIL("evidence %s: window.sources[%zu] (%s) count or bytes differ from the evidence "
                 "(or sources are not sorted)",
                 path, i, str_at(s, "topic"));
            goto out_reader;
        }
    }
    if (res.leaf_count != v->record_count || res.bytes != v->bytes) {
        FAIL("evidence %s: aggregates differ from the evidence", path);
        goto out_reader;
    }
    if (res.has_time) {
        char start[32], end[32];
        const char *ss = str_at(win, "start"), *se = str_at(win, "end");
        ws_format_time_ms(res.ts_min, start);
        ws_format_time_ms(res.ts_max, end);
        if (!ss || !se || strcmp(ss, start) != 0 || strcmp(se, end) != 0) {
            FAIL("evidence %s: window start/end differ from the records' timestamps (%s, %s)", path,
                 start, end);
            goto out_reader;
        }
    } else if (json_object_get(win, "start") || json_object_get(win, "end")) {
        FAIL("evidence %s: window start/end given but no record has a timestamp", path);
        goto out_reader;
    }
    (void)tree;
    v->evidence_checked = true;
    err = WS_OK;
out_reader:
    ws_evidence_reader_destroy(rd);
out_file:
    fclose(f);
out_window:
    ws_window_destroy(w);
    return err;
}

static ws_err_t check_statement(const json_t *st, const struct ws_key *key, struct ws_verified *v,
                                char *errbuf, size_t errlen)
{
    const json_t *subj = json_object_get(st, "subject"), *s0 = json_array_get(subj, 0);
    const json_t *pred = json_object_get(st, "predicate");
    const json_t *stream = json_object_get(pred, "stream"), *win = json_object_get(pred, "window");
    const json_t *integ = json_object_get(pred, "integrity");
    const json_t *tree = json_object_get(integ, "merkleTree");
    const json_t *agg = json_object_get(pred, "aggregates");
    const json_t *coll = json_object_get(pred, "collector");
    const char *t, *name, *kid;
    char expect[WS_WINDOW_ID_MAX];
    int64_t n, rc, by;
    uint64_t scount, sbytes;
    ws_err_t err;

    t = str_at(st, "_type");
    if (!t || strcmp(t, WS_STATEMENT_TYPE) != 0)
        return FAIL("statement: _type is not %s", WS_STATEMENT_TYPE);
    t = str_at(st, "predicateType");
    if (!t || strcmp(t, WS_PREDICATE_TYPE) != 0)
        return FAIL("statement: predicateType is not %s", WS_PREDICATE_TYPE);
    if (!json_is_object(pred) || !json_is_object(stream) || !json_is_object(win) ||
        !json_is_object(integ) || !json_is_object(tree) || !json_is_object(agg) ||
        !json_is_object(coll))
        return FAIL("statement: predicate needs stream, window, integrity.merkleTree, "
                    "aggregates, collector");
    t = str_at(pred, "makotoLevel");
    if (!t || strcmp(t, "L2") != 0)
        return FAIL("statement: makotoLevel is not L2");
    if (!copy_str(v->query_id, sizeof v->query_id, str_at(stream, "id")) ||
        !ws_query_id_safe(v->query_id, strlen(v->query_id)))
        return FAIL("statement: stream.id missing or not a safe query id");
    if (!int_at(win, "batchId", &v->batch_id) || v->batch_id < 0)
        return FAIL("statement: window.batchId missing or negative");
    ws_window_id(v->query_id, v->batch_id, expect);
    if (!copy_str(v->window_id, sizeof v->window_id, str_at(win, "id")) ||
        strcmp(v->window_id, expect) != 0)
        return FAIL("statement: window.id is not %s", expect);
    t = str_at(win, "type");
    if (!t || strcmp(t, "micro-batch") != 0)
        return FAIL("statement: window.type is not micro-batch");
    snprintf(expect, sizeof expect, "stream:%s", v->window_id);
    name = str_at(s0, "name");
    if (!json_is_array(subj) || !name || strcmp(name, expect) != 0 ||
        !hash_at(json_object_get(s0, "digest"), "sha256", v->stream_digest))
        return FAIL("statement: subject[0] must be %s with a sha256 digest", expect);
    t = str_at(tree, "algorithm");
    if (!t || strcmp(t, "sha256") != 0 || !(t = str_at(tree, "scheme")) ||
        strcmp(t, "rfc6962") != 0 || !(t = str_at(tree, "leafEncoding")) ||
        strcmp(t, "windowseal.record.v1") != 0 || !int_at(tree, "leafCount", &n) || n < 0 ||
        !hash_at(tree, "root", v->root))
        return FAIL("statement: integrity.merkleTree must be sha256/rfc6962/windowseal.record.v1 "
                    "with leafCount and root");
    v->leaf_count = (uint64_t)n;
    if (!int_at(agg, "recordCount", &rc) || !int_at(agg, "bytes", &by) || rc < 0 || by < 0)
        return FAIL("statement: aggregates needs recordCount and bytes");
    v->record_count = (uint64_t)rc;
    v->bytes = (uint64_t)by;
    if (v->record_count != v->leaf_count)
        return FAIL("statement: aggregates.recordCount %llu != merkleTree.leafCount %llu",
                    (unsigned long long)v->record_count, (unsigned long long)v->leaf_count);
    if ((err = load_sources(win, NULL, &scount, &sbytes, errbuf, errlen)))
        return err;
    if (scount != v->record_count || sbytes != v->bytes)
        return FAIL("statement: window.sources do not add up to the aggregates");
    kid = str_at(coll, "keyid");
    if (!kid || strcmp(kid, key->keyid) != 0)
        return FAIL("statement: collector.keyid is not the key that signed it (%s)", key->keyid);
    return check_chain(integ, v, errbuf, errlen);
}

/* Sources digest (as ws_notification_sources_digest) of a statement's predicate.window.sources. */
static ws_err_t sources_digest(const json_t *st, uint8_t out[WS_HASH_LEN])
{
    const json_t *srcs =
        json_object_get(json_object_get(json_object_get(st, "predicate"), "window"), "sources");
    struct ws_notification n = {0};
    size_t i;
    json_t *s;
    ws_err_t err = WS_ERR_MALFORMED;

    if (!json_is_array(srcs))
        goto out;
    n.nsources = json_array_size(srcs);
    if (n.nsources && !(n.sources = calloc(n.nsources, sizeof *n.sources))) {
        err = WS_ERR_NOMEM;
        goto out;
    }
    json_array_foreach(srcs, i, s)
    {
        int64_t p, from, until;
        if (!str_at(s, "topic") || !int_at(s, "partition", &p) || !int_at(s, "fromOffset", &from) ||
            !int_at(s, "untilOffset", &until))
            goto out;
        n.sources[i].topic = (char *)str_at(s, "topic");
        n.sources[i].partition = (int32_t)p;
        n.sources[i].from_offset = from;
        n.sources[i].until_offset = until;
    }
    ws_notification_sources_digest(&n, out);
    err = WS_OK;
out:
    free(n.sources);
    return err;
}

ws_err_t ws_verify_envelope(const char *env, size_t envlen, const struct ws_key *keys, size_t nkeys,
                            const char *evidence_path, struct ws_verified *out, char *errbuf,
                            size_t errlen)
{
    char *payload = NULL;
    size_t plen = 0, which = 0;
    json_t *st = NULL;
    json_error_t jerr;
    ws_err_t err;

    memset(out, 0, sizeof *out);
    err = ws_dsse_open(env, envlen, keys, nkeys, &payload, &plen, &which, errbuf, errlen);
    if (err)
        return err;
    out->key_index = which;
    ws_sha256(payload, plen, out->statement_digest);
    st = json_loadb(payload, plen, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(st)) {
        err = FAIL("statement: not a JSON object (%s)", st ? "wrong type" : jerr.text);
        goto out;
    }
    err = check_statement(st, &keys[which], out, errbuf, errlen);
    if (!err && (err = sources_digest(st, out->sources_digest)) == WS_ERR_MALFORMED)
        err = FAIL("statement: window.sources is not a list of {topic, partition, fromOffset, "
                   "untilOffset}");
    if (!err && evidence_path) {
        const json_t *pred = json_object_get(st, "predicate");
        err = check_evidence(json_object_get(pred, "window"),
                             json_object_get(json_object_get(pred, "integrity"), "merkleTree"),
                             evidence_path, out, errbuf, errlen);
    }
out:
    json_decref(st);
    free(payload);
    return err;
}
