/*
 * dsse.c — DSSE envelopes (FORMAT.md §6): PAE, signing, opening.
 *
 * Signing is deterministic end to end: Ed25519 signatures are deterministic, base64 is the
 * standard padded alphabet and the envelope is jansson's compact, key-sorted output, so the same
 * statement and key always give the same envelope bytes (FORMAT.md §5: re-attestation is idempotent).
 *
 * Opening trusts nothing in the envelope but the signature: the keyid field is only a hint and is
 * ignored, every signature is tried against every configured key, and the payloadType must be the
 * in-toto one. Base64 is accepted in the standard and the URL-safe alphabet, padded or not (DSSE
 * allows both); libsodium's decoder rejects non-canonical trailing bits. Signature checks are
 * libsodium's (constant time in the secret-free sense a verifier needs). Envelopes larger than
 * WS_ENVELOPE_MAX and more than MAX_SIGNATURES signatures are refused before any work is done.
 */
#include "window/window.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SIGNATURES 64 /* bounds the sigs x keys verification work on hostile input */

ws_err_t ws_dsse_pae(const char *type, const void *body, size_t len, uint8_t **out, size_t *outlen)
{
    char head[96];
    size_t tlen = strlen(type), hlen, total;
    int n;
    uint8_t *p;

    *out = NULL;
    *outlen = 0;
    n = snprintf(head, sizeof(head), "DSSEv1 %zu ", tlen);
    if (n < 0 || (size_t)n >= sizeof(head))
        return WS_ERR_INVALID;
    hlen = (size_t)n;
    /* "DSSEv1 " len SP type SP len SP body: at most 2 x 20 digits + 4 separators + 6 */
    if (tlen > SIZE_MAX / 2 || len > SIZE_MAX / 2 - tlen - 64)
        return WS_ERR_TOO_LARGE;
    total = hlen + tlen + 1 + 20 + 1 + len;
    p = malloc(total);
    if (!p)
        return WS_ERR_NOMEM;
    memcpy(p, head, hlen);
    memcpy(p + hlen, type, tlen);
    n = snprintf(head, sizeof(head), " %zu ", len);
    memcpy(p + hlen + tlen, head, (size_t)n);
    if (len)
        memcpy(p + hlen + tlen + (size_t)n, body, len);
    *out = p;
    *outlen = hlen + tlen + (size_t)n + len;
    return WS_OK;
}

/* malloc'ed standard padded base64 of bin. */
static char *b64_encode(const void *bin, size_t len)
{
    size_t cap = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
    char *s = malloc(cap);

    if (s)
        sodium_bin2base64(s, cap, bin, len, sodium_base64_VARIANT_ORIGINAL);
    return s;
}

ws_err_t ws_dsse_sign(const struct ws_key *k, const char *type, const void *payload, size_t len,
                      char **envelope, size_t *envlen)
{
    uint8_t sig[crypto_sign_BYTES];
    uint8_t *pae = NULL;
    size_t paelen;
    char *b64p = NULL, *b64s = NULL, *s;
    json_t *root = NULL, *sigs, *entry;
    ws_err_t err;

    *envelope = NULL;
    *envlen = 0;
    if (!k->has_secret)
        return WS_ERR_KEY;
    /* base64 grows by 4/3: refuse what no verifier (ours included) would open */
    if (len > WS_ENVELOPE_MAX / 4 * 3 - 4096)
        return WS_ERR_TOO_LARGE;
    if (sodium_init() < 0)
        return WS_ERR_CRYPTO;
    err = ws_dsse_pae(type, payload, len, &pae, &paelen);
    if (err)
        return err;
    if (crypto_sign_detached(sig, NULL, pae, paelen, k->sk) != 0) {
        err = WS_ERR_CRYPTO;
        goto out_free;
    }
    b64p = b64_encode(payload, len);
    b64s = b64_encode(sig, sizeof(sig));
    err = WS_ERR_NOMEM;
    if (!b64p || !b64s)
        goto out_free;
    root = json_object();
    sigs = json_array();
    entry = json_object();
    if (!root || !sigs || !entry) {
        json_decref(sigs);
        json_decref(entry);
        goto out_free;
    }
    if (json_object_set_new(root, "signatures", sigs) || json_array_append_new(sigs, entry))
        goto out_free;
    /* json_string refuses invalid UTF-8: only payloadType can be; the rest is ASCII */
    err = WS_ERR_INVALID;
    if (json_object_set_new(root, "payloadType", json_string(type)))
        goto out_free;
    err = WS_ERR_NOMEM;
    if (json_object_set_new(root, "payload", json_string_nocheck(b64p)) ||
        json_object_set_new(entry, "keyid", json_string(k->keyid)) ||
        json_object_set_new(entry, "sig", json_string_nocheck(b64s)))
        goto out_free;
    s = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
    if (!s)
        goto out_free;
    *envelope = s;
    *envlen = strlen(s);
    err = WS_OK;

out_free:
    json_decref(root);
    free(b64p);
    free(b64s);
    free(pae);
    return err;
}

/*
 * Decode base64 in any of the four DSSE-acceptable forms into a malloc'ed buffer (one spare byte
 * for a NUL). A given string decodes identically under every variant that accepts it.
 */
static ws_err_t b64_decode_any(const char *s, size_t slen, uint8_t **out, size_t *outlen)
{
    static const int variants[] = {
        sodium_base64_VARIANT_ORIGINAL, sodium_base64_VARIANT_ORIGINAL_NO_PADDING,
        sodium_base64_VARIANT_URLSAFE, sodium_base64_VARIANT_URLSAFE_NO_PADDING};
    size_t cap = slen / 4 * 3 + 4;
    uint8_t *buf = malloc(cap);

    *out = NULL;
    *outlen = 0;
    if (!buf)
        return WS_ERR_NOMEM;
    for (size_t i = 0; i < sizeof(variants) / sizeof(variants[0]); i++) {
        const char *end = NULL;
        size_t n = 0;

        if (sodium_base642bin(buf, cap - 1, s, slen, NULL, &n, &end, variants[i]) == 0 &&
            end == s + slen) {
            buf[n] = 0;
            *out = buf;
            *outlen = n;
            return WS_OK;
        }
    }
    free(buf);
    return WS_ERR_MALFORMED;
}

ws_err_t ws_dsse_open(const char *envelope, size_t len, const struct ws_key *keys, size_t nkeys,
                      char **payload, size_t *payload_len, size_t *which, char *errbuf,
                      size_t errlen)
{
    json_t *root = NULL, *jpayload, *jtype, *jsigs, *entry;
    json_error_t jerr;
    uint8_t *body = NULL, *pae = NULL;
    size_t bodylen = 0, paelen = 0, nsigs, idx;
    const char *type;
    ws_err_t err;

    *payload = NULL;
    *payload_len = 0;
    if (which)
        *which = 0;
    if (!keys || nkeys == 0)
        return ws_fail(WS_ERR_INVALID, errbuf, errlen, "dsse: no verification key given");
    if (len > WS_ENVELOPE_MAX)
        return ws_fail(WS_ERR_TOO_LARGE, errbuf, errlen,
                       "dsse: envelope of %zu bytes exceeds the %u-byte limit", len,
                       WS_ENVELOPE_MAX);
    if (sodium_init() < 0)
        return ws_fail(WS_ERR_CRYPTO, errbuf, errlen, "dsse: libsodium failed to initialise");

    root = json_loadb(envelope, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return ws_fail(WS_ERR_MALFORMED, errbuf, errlen, "dsse: not JSON: %s (line %d col %d)",
                       jerr.text, jerr.line, jerr.column);
    err = WS_ERR_MALFORMED;
    if (!json_is_object(root)) {
        ws_fail(err, errbuf, errlen, "dsse: envelope is not a JSON object");
        goto out_free;
    }
    jpayload = json_object_get(root, "payload");
    jtype = json_object_get(root, "payloadType");
    jsigs = json_object_get(root, "signatures");
    if (!json_is_string(jpayload) || !json_is_string(jtype)) {
        ws_fail(err, errbuf, errlen, "dsse: payload and payloadType must be strings");
        goto out_free;
    }
    if (!json_is_array(jsigs) || json_array_size(jsigs) == 0) {
        ws_fail(err, errbuf, errlen, "dsse: signatures must be a non-empty array");
        goto out_free;
    }
    nsigs = json_array_size(jsigs);
    if (nsigs > MAX_SIGNATURES) {
        ws_fail(err, errbuf, errlen, "dsse: %zu signatures (at most %d accepted)", nsigs,
                MAX_SIGNATURES);
        goto out_free;
    }
    type = json_string_value(jtype);
    if (json_string_length(jtype) != strlen(WS_PAYLOAD_TYPE) ||
        strcmp(type, WS_PAYLOAD_TYPE) != 0) {
        ws_fail(err, errbuf, errlen, "dsse: payloadType \"%.64s\" is not \"%s\"", type,
                WS_PAYLOAD_TYPE);
        goto out_free;
    }
    json_array_foreach(jsigs, idx, entry)
    {
        json_t *jsig = json_object_get(entry, "sig"), *jkeyid = json_object_get(entry, "keyid");

        if (!json_is_object(entry) || !json_is_string(jsig) ||
            (jkeyid && !json_is_string(jkeyid))) {
            ws_fail(err, errbuf, errlen, "dsse: signatures[%zu] needs a string \"sig\"", idx);
            goto out_free;
        }
    }
    err =
        b64_decode_any(json_string_value(jpayload), json_string_length(jpayload), &body, &bodylen);
    if (err) {
        ws_fail(err, errbuf, errlen, "dsse: payload is not valid base64");
        goto out_free;
    }
    err = ws_dsse_pae(WS_PAYLOAD_TYPE, body, bodylen, &pae, &paelen);
    if (err) {
        ws_fail(err, errbuf, errlen, "dsse: cannot build PAE: %s", ws_strerror(err));
        goto out_free;
    }

    err = WS_ERR_SIGNATURE;
    json_array_foreach(jsigs, idx, entry)
    {
        json_t *jsig = json_object_get(entry, "sig");
        uint8_t *sig = NULL;
        size_t siglen = 0;

        /* an undecodable or short signature just fails to verify, like a wrong one */
        if (b64_decode_any(json_string_value(jsig), json_string_length(jsig), &sig, &siglen))
            continue;
        if (siglen == crypto_sign_BYTES) {
            for (size_t k = 0; k < nkeys; k++) {
                if (crypto_sign_verify_detached(sig, pae, paelen, keys[k].pk) == 0) {
                    if (which)
                        *which = k;
                    err = WS_OK;
                    break;
                }
            }
        }
        free(sig);
        if (!err)
            break;
    }
    if (err) {
        ws_fail(err, errbuf, errlen, "dsse: no signature verifies with the %zu configured key%s",
                nkeys, nkeys == 1 ? "" : "s");
        goto out_free;
    }
    *payload = (char *)body; /* b64_decode_any left a NUL after the bytes */
    *payload_len = bodylen;
    body = NULL;

out_free:
    free(body);
    free(pae);
    json_decref(root);
    return err;
}
