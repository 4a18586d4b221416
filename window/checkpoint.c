/*
 * checkpoint.c — signed checkpoints of a query's window log in the transparency-dev
 * signed-note format (C2SP tlog-checkpoint + signed-note), so that witnesses and monitors
 * built for Go's golang.org/x/mod/sumdb/note can check and cosign them without knowing
 * windowseal:
 *
 *     windowseal/<queryId>\n              origin
 *     <log size, decimal>\n               = chainLength of the last window
 *     <log root, standard base64>\n       = its integrity.chain.logRoot
 *     \n
 *     — <keyname> <base64(key hash[4] || Ed25519 signature[64])>\n
 *
 * The signature covers the three body lines, each with its newline. The key hash is sumdb
 * note's for Ed25519: the first 4 bytes of SHA-256(keyname || "\n" || 0x01 || public key).
 *
 * Verification is strict about the body (exactly three lines, canonical decimal, a 32-byte
 * root) and lenient about signatures the way note.Open is: lines by other key names (witness
 * cosignatures) are skipped, and one valid signature by the requested name from any of the
 * given keys is enough. Pure functions: no I/O, thread-safe.
 */
#include "window/window.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EM_DASH "\xe2\x80\x94" /* U+2014, the signature-line prefix with a space after it */
#define SIG_PREFIX EM_DASH " "
#define SIG_PREFIX_LEN 4
#define ROOT_B64_LEN 44 /* 32 bytes, standard base64 with one '=' */
#define SIG_BLOB_LEN (4 + 64)
#define MAX_SIG_LINES 100 /* note.Open's limit */

void ws_checkpoint_key_hash(const char *keyname, const uint8_t pk[32], uint8_t out[4])
{
    struct ws_sha256 h;
    uint8_t d[WS_HASH_LEN];
    static const uint8_t alg_nl[2] = {'\n', 0x01}; /* "\n" then the Ed25519 algorithm byte */

    ws_sha256_init(&h);
    ws_sha256_update(&h, keyname, strlen(keyname));
    ws_sha256_update(&h, alg_nl, 2);
    ws_sha256_update(&h, pk, 32);
    ws_sha256_final(&h, d);
    memcpy(out, d, 4);
}

bool ws_checkpoint_keyname_valid(const char *name, size_t len)
{
    /* note's rule: non-empty, no whitespace, no '+'. Kept to printable ASCII here. */
    if (len == 0 || len > 256)
        return false;
    for (size_t i = 0; i < len; i++)
        if (name[i] <= 0x20 || name[i] >= 0x7f || name[i] == '+')
            return false;
    return true;
}

ws_err_t ws_checkpoint_sign(const struct ws_key *k, const char *keyname, const char *query_id,
                            uint64_t size, const uint8_t root[32], char **out, size_t *len)
{
    char root64[ROOT_B64_LEN + 1],
        sig64[sodium_base64_ENCODED_LEN(SIG_BLOB_LEN, sodium_base64_VARIANT_ORIGINAL)];
    uint8_t blob[SIG_BLOB_LEN];
    size_t body_len, cap;
    char *buf;
    int n;

    if (!k || !k->has_secret || !keyname || !query_id || !root || !out || !len)
        return WS_ERR_INVALID;
    if (!ws_checkpoint_keyname_valid(keyname, strlen(keyname)) ||
        !ws_query_id_safe(query_id, strlen(query_id)))
        return WS_ERR_INVALID;
    if (sodium_init() < 0)
        return WS_ERR_CRYPTO;
    sodium_bin2base64(root64, sizeof root64, root, 32, sodium_base64_VARIANT_ORIGINAL);
    cap = strlen("windowseal/") + strlen(query_id) + 21 + ROOT_B64_LEN + 4 + SIG_PREFIX_LEN +
          strlen(keyname) + 1 + sizeof sig64 + 2;
    if (!(buf = malloc(cap)))
        return WS_ERR_NOMEM;
    n = snprintf(buf, cap, "windowseal/%s\n%llu\n%s\n", query_id, (unsigned long long)size, root64);
    if (n < 0 || (size_t)n >= cap) {
        free(buf);
        return WS_ERR_INVALID;
    }
    body_len = (size_t)n;
    ws_checkpoint_key_hash(keyname, k->pk, blob);
    if (crypto_sign_ed25519_detached(blob + 4, NULL, (const unsigned char *)buf, body_len, k->sk) !=
        0) {
        free(buf);
        return WS_ERR_CRYPTO;
    }
    sodium_bin2base64(sig64, sizeof sig64, blob, sizeof blob, sodium_base64_VARIANT_ORIGINAL);
    n = snprintf(buf + body_len, cap - body_len, "\n" SIG_PREFIX "%s %s\n", keyname, sig64);
    if (n < 0 || (size_t)n >= cap - body_len) {
        free(buf);
        return WS_ERR_INVALID;
    }
    *out = buf;
    *len = body_len + (size_t)n;
    return WS_OK;
}

/* Strict standard base64 (padding required) of exactly want bytes. */
static bool b64_exact(const char *s, size_t slen, uint8_t *out, size_t want)
{
    size_t got = 0;
    const char *end = NULL;
    uint8_t tmp[128];

    if (want > sizeof tmp ||
        slen != sodium_base64_ENCODED_LEN(want, sodium_base64_VARIANT_ORIGINAL) - 1)
        return false;
    if (sodium_base642bin(tmp, sizeof tmp, s, slen, NULL, &got, &end,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        got != want || end != s + slen)
        return false;
    memcpy(out, tmp, want);
    return true;
}

static bool parse_u64(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;

    if (len == 0 || len > 20 || (len > 1 && s[0] == '0'))
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        if (v > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10)
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return true;
}

ws_err_t ws_checkpoint_verify(const char *note, size_t len, const struct ws_key *keys, size_t nkeys,
                              const char *keyname, char *query_id_out, uint64_t *size,
                              uint8_t root[32], char *errbuf, size_t errlen)
{
    const char *p, *end, *line[3], *sigs;
    size_t llen[3], body_len, name_len, nsig = 0, named = 0;
    uint8_t r[32];
    uint64_t sz;

    if (!note || !keys || !keyname || !query_id_out || !size || !root)
        return ws_fail(WS_ERR_INVALID, errbuf, errlen, "checkpoint: missing argument");
    name_len = strlen(keyname);
    if (!ws_checkpoint_keyname_valid(keyname, name_len))
        return ws_fail(WS_ERR_INVALID, errbuf, errlen, "checkpoint: invalid key name");
    if (len > 65536)
        return ws_fail(WS_ERR_TOO_LARGE, errbuf, errlen, "checkpoint: %zu bytes is too large", len);
    if (memchr(note, '\0', len) || memchr(note, '\r', len))
        return ws_fail(WS_ERR_MALFORMED, errbuf, errlen,
                       "checkpoint: contains NUL or carriage return");

    /* Body: three lines, then a blank line. */
    p = note;
    end = note + len;
    for (int i = 0; i < 3; i++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            return ws_fail(WS_ERR_MALFORMED, errbuf, errlen,
                           "checkpoint: needs origin, size and root lines");
        line[i] = p;
        llen[i] = (size_t)(nl - p);
        p = nl + 1;
    }
    body_len = (size_t)(p - note);
    if (p >= end || *p != '\n')
        return ws_fail(WS_ERR_MALFORMED, errbuf, errlen,
                       "checkpoint: the body must be exactly three lines followed by a blank "
                       "line");
    sigs = p + 1;
    if (llen[0] < 12 || memcmp(line[0], "windowseal/", 11) != 0 ||
        !ws_query_id_safe(line[0] + 11, llen[0] - 11))
        return ws_fail(WS_ERR_MALFORMED, errbuf, errlen,
                       "checkpoint: origin line is not windowseal/<queryId>");
    if (!parse_u64(line[1], llen[1], &sz))
        return ws_fail(WS_ERR_MALFORMED, errbuf, errlen,
                       "checkpoint: size line is not a canonical decimal number");
    if (!b64_exact(line[2], llen[2], r, 32))
        return ws_fail(WS_ERR_MALFORMED, errbuf, errlen,
                       "checkpoint: root line is not 32 bytes of standard base64");

    /* Signature lines: "— name base64\n", at least one. */
    if (sigs >= end)
        return ws_fail(WS_ERR_MALFORMED, errbuf, errlen, "checkpoint: no signature lines");
    for (p = sigs; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p)), *sp, *b64;
        size_t l, nlen;
        uint8_t blob[SIG_BLOB_LEN];

        if (!nl)
            return ws_fail(WS_ERR_MALFORMED, errbuf, errlen,
                           "checkpoint: signature line without a final newline");
        l = (size_t)(nl - p);
        if (++nsig > MAX_SIG_LINES)
            return ws_fail(WS_ERR_MALFORMED, errbuf, errlen, "checkpoint: too many signatures");
        if (l < SIG_PREFIX_LEN || memcmp(p, SIG_PREFIX, SIG_PREFIX_LEN) != 0)
            return ws_fail(WS_ERR_MALFORMED, errbuf, errlen,
                           "checkpoint: signature line %zu does not start with an em dash and a "
                           "space",
                           nsig);
        sp = memchr(p + SIG_PREFIX_LEN, ' ', l - SIG_PREFIX_LEN);
        if (!sp)
            return ws_fail(WS_ERR_MALFORMED, errbuf, errlen,
                           "checkpoint: signature line %zu has no signature", nsig);
        nlen = (size_t)(sp - (p + SIG_PREFIX_LEN));
        b64 = sp + 1;
        if (!ws_checkpoint_keyname_valid(p + SIG_PREFIX_LEN, nlen) || b64 >= nl)
            return ws_fail(WS_ERR_MALFORMED, errbuf, errlen,
                           "checkpoint: signature line %zu is malformed", nsig);
        if (nlen == name_len && memcmp(p + SIG_PREFIX_LEN, keyname, nlen) == 0 &&
            b64_exact(b64, (size_t)(nl - b64), blob, sizeof blob)) {
            named++;
            for (size_t k = 0; k < nkeys; k++) {
                uint8_t kh[4];
                ws_checkpoint_key_hash(keyname, keys[k].pk, kh);
                if (memcmp(kh, blob, 4) != 0)
                    continue;
                if (crypto_sign_ed25519_verify_detached(blob + 4, (const unsigned char *)note,
                                                        body_len, keys[k].pk) == 0) {
                    memcpy(query_id_out, line[0] + 11, llen[0] - 11);
                    query_id_out[llen[0] - 11] = '\0';
                    *size = sz;
                    memcpy(root, r, 32);
                    return WS_OK;
                }
            }
        }
        p = nl + 1;
    }
    if (!named)
        return ws_fail(WS_ERR_SIGNATURE, errbuf, errlen,
                       "checkpoint: no signature by key name '%s'", keyname);
    return ws_fail(WS_ERR_SIGNATURE, errbuf, errlen,
                   "checkpoint: no signature by '%s' verifies with the given keys", keyname);
}
