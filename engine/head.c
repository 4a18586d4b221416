/*
 * head.c — a query's chain head as one JSON record of the heads topic (key = query id).
 *
 * The head is everything needed to attest the next window exactly as the previous instance
 * would have: last batch, its Merkle root and statement digest (previousWindow), the window
 * log's compact range (at most 64 hashes: chainLength and logRoot continue without replaying
 * history), the genesis window and the last batch's sources digest (duplicate vs conflict).
 * A head read from Kafka is outside input: decoded strictly, never trusted to be well-formed.
 */
#include "engine/internal.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static json_t *hex_json(const uint8_t h[WS_HASH_LEN])
{
    char hex[WS_HASH_HEX_LEN + 1];
    ws_hex_encode(h, WS_HASH_LEN, hex);
    return json_string(hex);
}

ws_err_t ws_head_encode(const struct ws_head *h, char **out, size_t *len)
{
    json_t *o = json_object(), *range = json_array();
    char *s;

    if (!o || !range)
        goto nomem;
    for (unsigned i = 0; i < h->log.nrange; i++)
        if (json_array_append_new(range, hex_json(h->log.range[i])))
            goto nomem;
    if (json_object_set_new(o, "v", json_integer(1)) ||
        json_object_set_new(o, "queryId", json_string(h->query_id)) ||
        json_object_set_new(o, "lastBatchId", json_integer(h->last_batch)) ||
        json_object_set_new(o, "genesisWindowId", json_string(h->genesis_window_id)) ||
        json_object_set_new(o, "lastMerkleRoot", hex_json(h->last_root)) ||
        json_object_set_new(o, "lastStatementDigest", hex_json(h->last_statement_digest)) ||
        json_object_set_new(o, "lastSourcesDigest", hex_json(h->last_sources_digest)) ||
        json_object_set_new(o, "logSize", json_integer((json_int_t)h->log.size)) ||
        json_object_set_new(o, "logRange", range))
        goto nomem_range_owned;
    s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    if (!s)
        return WS_ERR_NOMEM;
    *out = s;
    *len = strlen(s);
    return WS_OK;
nomem:
    json_decref(range);
nomem_range_owned:
    json_decref(o);
    return WS_ERR_NOMEM;
}

static bool get_hash(const json_t *o, const char *k, uint8_t out[WS_HASH_LEN])
{
    const json_t *v = json_object_get(o, k);
    return json_is_string(v) &&
           ws_hex_decode(json_string_value(v), json_string_length(v), out, WS_HASH_LEN) == WS_OK;
}

ws_err_t ws_head_decode(const char *json, size_t len, struct ws_head *h, char *errbuf,
                        size_t errlen)
{
    json_error_t jerr;
    json_t *o = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    const json_t *q, *g, *b, *n, *range;
    uint8_t hashes[WS_MERKLE_MAX_DEPTH][WS_HASH_LEN];
    size_t i;
    json_t *e;
    ws_err_t err = WS_ERR_MALFORMED;

    memset(h, 0, sizeof *h);
    if (!json_is_object(o)) {
        ws_fail(err, errbuf, errlen, "chain head: not a JSON object: %s", o ? "" : jerr.text);
        goto out;
    }
    q = json_object_get(o, "queryId");
    g = json_object_get(o, "genesisWindowId");
    b = json_object_get(o, "lastBatchId");
    n = json_object_get(o, "logSize");
    range = json_object_get(o, "logRange");
    if (!json_is_integer(json_object_get(o, "v")) ||
        json_integer_value(json_object_get(o, "v")) != 1 || !json_is_string(q) ||
        json_string_length(q) >= sizeof h->query_id ||
        !ws_query_id_safe(json_string_value(q), json_string_length(q)) || !json_is_string(g) ||
        json_string_length(g) >= sizeof h->genesis_window_id || !json_is_integer(b) ||
        json_integer_value(b) < 0 || !json_is_integer(n) || json_integer_value(n) < 1 ||
        !json_is_array(range) || json_array_size(range) > WS_MERKLE_MAX_DEPTH ||
        !get_hash(o, "lastMerkleRoot", h->last_root) ||
        !get_hash(o, "lastStatementDigest", h->last_statement_digest) ||
        !get_hash(o, "lastSourcesDigest", h->last_sources_digest)) {
        ws_fail(err, errbuf, errlen, "chain head: missing or invalid fields");
        goto out;
    }
    json_array_foreach(range, i, e)
    {
        if (!json_is_string(e) || ws_hex_decode(json_string_value(e), json_string_length(e),
                                                hashes[i], WS_HASH_LEN) != WS_OK) {
            ws_fail(err, errbuf, errlen, "chain head: logRange[%zu] is not a hash", i);
            goto out;
        }
    }
    if (ws_merkle_restore(&h->log, (uint64_t)json_integer_value(n),
                          (const uint8_t(*)[WS_HASH_LEN])hashes,
                          (unsigned)json_array_size(range)) != WS_OK) {
        ws_fail(err, errbuf, errlen, "chain head: logRange does not fit logSize");
        goto out;
    }
    memcpy(h->query_id, json_string_value(q), json_string_length(q) + 1);
    memcpy(h->genesis_window_id, json_string_value(g), json_string_length(g) + 1);
    h->last_batch = json_integer_value(b);
    err = WS_OK;
out:
    json_decref(o);
    return err;
}
