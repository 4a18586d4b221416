/*
 * key.c — Ed25519 keys as PEM (FORMAT.md §6), with libsodium doing the cryptography.
 *
 * Only one DER shape of each kind exists for an Ed25519 key written by OpenSSL (RFC 8410), so
 * this module does not carry an ASN.1 parser: it compares against the two fixed prefixes
 *   PKCS#8 private key: 30 2e 02 01 00 30 05 06 03 2b 65 70 04 22 04 20 || 32-byte seed
 *   SPKI public key:    30 2a 30 05 06 03 2b 65 70 03 21 00             || 32-byte key
 * and accepts nothing else. When the bytes do not match, a tiny DER walk finds the algorithm
 * OID only to say which kind of key it was ("not an Ed25519 key (RSA)"): the message is the whole
 * point, the walk never decides acceptance.
 *
 * PEM parsing is strict about structure (one block, BEGIN/END labels that match, base64 lines,
 * nothing but whitespace around the block) and tolerant about line endings (CRLF) and trailing
 * whitespace. Every buffer that held secret bytes (PEM text, base64, DER, seed) is wiped with
 * sodium_memzero before it is released.
 */
#include "window/window.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t pkcs8_prefix[16] = {0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06,
                                         0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20};
static const uint8_t spki_prefix[12] = {0x30, 0x2a, 0x30, 0x05, 0x06, 0x03,
                                        0x2b, 0x65, 0x70, 0x03, 0x21, 0x00};

#define PEM_MAX (64u * 1024) /* far above any real key file; bounds the work on hostile input */
#define DER_MAX (PEM_MAX / 4 * 3)

static ws_err_t sodium_ready(void)
{
    /* idempotent and thread-safe; 1 means "already initialised" */
    return sodium_init() < 0 ? WS_ERR_CRYPTO : WS_OK;
}

static void set_keyid(struct ws_key *k)
{
    uint8_t h[WS_HASH_LEN];

    ws_sha256(k->pk, sizeof(k->pk), h);
    ws_hex_encode(h, sizeof(h), k->keyid);
}

ws_err_t ws_key_generate(struct ws_key *k)
{
    memset(k, 0, sizeof(*k));
    if (sodium_ready())
        return WS_ERR_CRYPTO;
    if (crypto_sign_keypair(k->pk, k->sk) != 0)
        return WS_ERR_CRYPTO;
    k->has_secret = true;
    set_keyid(k);
    return WS_OK;
}

void ws_key_wipe(struct ws_key *k)
{
    sodium_memzero(k, sizeof(*k));
}

/* ------------------------------------------------------------------------------------------ */
/* Naming a foreign key: just enough DER to find the AlgorithmIdentifier's OID.                   */

/* Read one TLV header at *p; returns the content length or -1. */
static long der_hdr(const uint8_t **p, const uint8_t *end, uint8_t *tag)
{
    size_t len;

    if (end - *p < 2)
        return -1;
    *tag = *(*p)++;
    len = *(*p)++;
    if (len & 0x80) {
        unsigned n = len & 0x7f;
        if (n == 0 || n > 3 || (size_t)(end - *p) < n)
            return -1;
        len = 0;
        while (n--)
            len = len << 8 | *(*p)++;
    }
    if (len > (size_t)(end - *p))
        return -1;
    return (long)len;
}

/* The algorithm OID of a PKCS#8 (private) or SPKI (public) structure, as a short name. */
static const char *der_algorithm(const uint8_t *der, size_t len, bool private_key)
{
    static const struct {
        uint8_t oid[10];
        size_t len;
        const char *name;
    } known[] = {
        {{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01}, 9, "RSA"},
        {{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a}, 9, "RSA-PSS"},
        {{0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01}, 7, "EC"},
        {{0x2a, 0x86, 0x48, 0xce, 0x38, 0x04, 0x01}, 7, "DSA"},
        {{0x2b, 0x65, 0x6e}, 3, "X25519"},
        {{0x2b, 0x65, 0x6f}, 3, "X448"},
        {{0x2b, 0x65, 0x70}, 3, "Ed25519 in an unsupported encoding"},
        {{0x2b, 0x65, 0x71}, 3, "Ed448"},
    };
    const uint8_t *p = der, *end = der + len;
    uint8_t tag;
    long n;

    n = der_hdr(&p, end, &tag); /* outer SEQUENCE */
    if (n < 0 || tag != 0x30)
        return NULL;
    end = p + n;
    if (private_key) { /* skip INTEGER version */
        n = der_hdr(&p, end, &tag);
        if (n < 0 || tag != 0x02)
            return NULL;
        p += n;
    }
    n = der_hdr(&p, end, &tag); /* AlgorithmIdentifier SEQUENCE */
    if (n < 0 || tag != 0x30)
        return NULL;
    end = p + n;
    n = der_hdr(&p, end, &tag); /* OID */
    if (n < 0 || tag != 0x06)
        return NULL;
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if ((size_t)n == known[i].len && memcmp(p, known[i].oid, (size_t)n) == 0)
            return known[i].name;
    return "unknown algorithm";
}

/* ------------------------------------------------------------------------------------------ */
/* PEM                                                                                            */

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

/* One line [*pos, eol) with trailing whitespace (incl. CR) trimmed; false at end of input. */
static bool next_line(const char *s, size_t len, size_t *pos, const char **line, size_t *llen)
{
    size_t b = *pos, e;

    if (b >= len)
        return false;
    e = b;
    while (e < len && s[e] != '\n')
        e++;
    *pos = e < len ? e + 1 : e;
    while (e > b && is_ws(s[e - 1]))
        e--;
    *line = s + b;
    *llen = e - b;
    return true;
}

static bool line_is(const char *line, size_t llen, const char *pre, const char *label,
                    const char *post)
{
    size_t a = strlen(pre), b = strlen(label), c = strlen(post);

    return llen == a + b + c && memcmp(line, pre, a) == 0 && memcmp(line + a, label, b) == 0 &&
           memcmp(line + a + b, post, c) == 0;
}

/* A last line that is a proper prefix of the END line: the file was cut inside it. */
static bool is_prefix_of_end(const char *line, size_t llen, const char *lab)
{
    char end[100];
    int n = snprintf(end, sizeof(end), "-----END %s-----", lab);

    return llen > 0 && n > 0 && llen < (size_t)n && memcmp(line, end, llen) == 0;
}

/*
 * Split a PEM block: *label (within pem) and the concatenated base64 body into b64 (cap bytes,
 * NUL-terminated). Errors name what is wrong.
 */
static ws_err_t pem_split(const char *pem, size_t len, const char **label, size_t *label_len,
                          char *b64, size_t cap, char *errbuf, size_t errlen)
{
    static const char begin[] = "-----BEGIN ", dashes[] = "-----";
    size_t pos = 0, blen = 0;
    const char *line;
    size_t llen;
    char lab[80];

    /* skip blank lines before BEGIN */
    for (;;) {
        if (!next_line(pem, len, &pos, &line, &llen))
            return ws_fail(WS_ERR_MALFORMED, errbuf, errlen, "key: no PEM BEGIN line");
        while (llen > 0 && is_ws(*line)) {
            line++;
            llen--;
        }
        if (llen > 0)
            break;
    }
    if (llen < sizeof(begin) - 1 + 5 || memcmp(line, begin, sizeof(begin) - 1) != 0 ||
        memcmp(line + llen - 5, dashes, 5) != 0)
        return ws_fail(WS_ERR_MALFORMED, errbuf, errlen, "key: not a PEM file (no BEGIN line)");
    *label = line + sizeof(begin) - 1;
    *label_len = llen - (sizeof(begin) - 1) - 5;
    if (*label_len == 0 || *label_len >= sizeof(lab))
        return ws_fail(WS_ERR_MALFORMED, errbuf, errlen, "key: bad PEM label");
    memcpy(lab, *label, *label_len);
    lab[*label_len] = '\0';

    for (;;) {
        if (!next_line(pem, len, &pos, &line, &llen))
            return ws_fail(WS_ERR_TRUNCATED, errbuf, errlen,
                           "key: PEM block has no END line (truncated file?)");
        if (line_is(line, llen, "-----END ", lab, "-----"))
            break;
        if (pos >= len && is_prefix_of_end(line, llen, lab))
            return ws_fail(WS_ERR_TRUNCATED, errbuf, errlen,
                           "key: PEM END line incomplete (truncated file?)");
        if (llen >= 5 && memcmp(line, dashes, 5) == 0)
            return ws_fail(WS_ERR_MALFORMED, errbuf, errlen,
                           "key: PEM END line does not match BEGIN %s", lab);
        for (size_t i = 0; i < llen; i++) {
            char c = line[i];
            if (!(c >= 'A' && c <= 'Z') && !(c >= 'a' && c <= 'z') && !(c >= '0' && c <= '9') &&
                c != '+' && c != '/' && c != '=')
                return ws_fail(WS_ERR_MALFORMED, errbuf, errlen,
                               "key: unexpected character in PEM body (encrypted or with "
                               "headers?)");
        }
        if (blen + llen + 1 > cap)
            return ws_fail(WS_ERR_TOO_LARGE, errbuf, errlen, "key: PEM body too large");
        memcpy(b64 + blen, line, llen);
        blen += llen;
    }
    b64[blen] = '\0';
    while (next_line(pem, len, &pos, &line, &llen))
        for (size_t i = 0; i < llen; i++)
            if (!is_ws(line[i]))
                return ws_fail(WS_ERR_MALFORMED, errbuf, errlen,
                               "key: unexpected data after the PEM END line");
    return WS_OK;
}

ws_err_t ws_key_from_pem(const char *pem, size_t len, struct ws_key *k, char *errbuf, size_t errlen)
{
    const char *label = NULL;
    size_t label_len = 0, derlen = 0;
    char *b64 = NULL;
    uint8_t *der = NULL;
    bool priv;
    ws_err_t err;

    memset(k, 0, sizeof(*k));
    if (sodium_ready())
        return ws_fail(WS_ERR_CRYPTO, errbuf, errlen, "key: libsodium failed to initialise");
    if (len > PEM_MAX)
        return ws_fail(WS_ERR_TOO_LARGE, errbuf, errlen, "key: file larger than %u bytes", PEM_MAX);
    b64 = malloc(len + 1);
    der = malloc(len + 1);
    if (!b64 || !der) {
        err = ws_fail(WS_ERR_NOMEM, errbuf, errlen, "key: out of memory");
        goto out_wipe;
    }
    err = pem_split(pem, len, &label, &label_len, b64, len + 1, errbuf, errlen);
    if (err)
        goto out_wipe;

    if (label_len == 11 && memcmp(label, "PRIVATE KEY", 11) == 0) {
        priv = true;
    } else if (label_len == 10 && memcmp(label, "PUBLIC KEY", 10) == 0) {
        priv = false;
    } else {
        err = ws_fail(WS_ERR_KEY, errbuf, errlen,
                      "key: not an Ed25519 key (PEM block \"%.*s\"; expected \"PRIVATE KEY\" "
                      "or \"PUBLIC KEY\")",
                      (int)(label_len > 40 ? 40 : label_len), label);
        goto out_wipe;
    }
    if (sodium_base642bin(der, len + 1, b64, strlen(b64), NULL, &derlen, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0) {
        err = ws_fail(WS_ERR_MALFORMED, errbuf, errlen,
                      "key: invalid base64 in PEM body (truncated file?)");
        goto out_wipe;
    }

    if (priv && derlen == sizeof(pkcs8_prefix) + 32 &&
        memcmp(der, pkcs8_prefix, sizeof(pkcs8_prefix)) == 0) {
        if (crypto_sign_seed_keypair(k->pk, k->sk, der + sizeof(pkcs8_prefix)) != 0) {
            err = ws_fail(WS_ERR_CRYPTO, errbuf, errlen, "key: libsodium rejected the seed");
            goto out_wipe;
        }
        k->has_secret = true;
    } else if (!priv && derlen == sizeof(spki_prefix) + 32 &&
               memcmp(der, spki_prefix, sizeof(spki_prefix)) == 0) {
        memcpy(k->pk, der + sizeof(spki_prefix), 32);
    } else {
        const char *alg = der_algorithm(der, derlen, priv);
        if (alg)
            err = ws_fail(WS_ERR_KEY, errbuf, errlen, "key: not an Ed25519 key (%s)", alg);
        else
            err = ws_fail(WS_ERR_KEY, errbuf, errlen,
                          "key: not an Ed25519 key (unrecognised or truncated DER)");
        goto out_wipe;
    }
    set_keyid(k);
    err = WS_OK;

out_wipe:
    if (b64)
        sodium_memzero(b64, len + 1);
    if (der)
        sodium_memzero(der, len + 1);
    free(b64);
    free(der);
    if (err)
        ws_key_wipe(k);
    return err;
}

/* label + DER -> PEM with 64-character lines. */
static ws_err_t write_pem(const char *label, const uint8_t *der, size_t derlen, char *out,
                          size_t cap)
{
    char b64[sodium_base64_ENCODED_LEN(64, sodium_base64_VARIANT_ORIGINAL)];
    size_t blen, pos = 0;
    int n;
    ws_err_t err = WS_ERR_TOO_LARGE;

    if (derlen > 64)
        return WS_ERR_INVALID;
    sodium_bin2base64(b64, sizeof(b64), der, derlen, sodium_base64_VARIANT_ORIGINAL);
    blen = strlen(b64);
    n = snprintf(out, cap, "-----BEGIN %s-----\n", label);
    if (n < 0 || (size_t)n >= cap)
        goto out_wipe;
    pos = (size_t)n;
    for (size_t i = 0; i < blen; i += 64) {
        size_t l = blen - i < 64 ? blen - i : 64;
        if (pos + l + 1 >= cap)
            goto out_wipe;
        memcpy(out + pos, b64 + i, l);
        pos += l;
        out[pos++] = '\n';
    }
    n = snprintf(out + pos, cap - pos, "-----END %s-----\n", label);
    if (n < 0 || (size_t)n >= cap - pos)
        goto out_wipe;
    err = WS_OK;

out_wipe:
    sodium_memzero(b64, sizeof(b64));
    if (err && cap > 0)
        sodium_memzero(out, cap);
    return err;
}

ws_err_t ws_key_private_pem(const struct ws_key *k, char *out, size_t cap)
{
    uint8_t der[sizeof(pkcs8_prefix) + 32];
    ws_err_t err;

    if (!k->has_secret)
        return WS_ERR_KEY;
    memcpy(der, pkcs8_prefix, sizeof(pkcs8_prefix));
    memcpy(der + sizeof(pkcs8_prefix), k->sk, 32); /* libsodium's sk is seed || pk */
    err = write_pem("PRIVATE KEY", der, sizeof(der), out, cap);
    sodium_memzero(der, sizeof(der));
    return err;
}

ws_err_t ws_key_public_pem(const struct ws_key *k, char *out, size_t cap)
{
    uint8_t der[sizeof(spki_prefix) + 32];

    memcpy(der, spki_prefix, sizeof(spki_prefix));
    memcpy(der + sizeof(spki_prefix), k->pk, 32);
    return write_pem("PUBLIC KEY", der, sizeof(der), out, cap);
}
