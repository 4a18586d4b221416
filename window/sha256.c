/*
 * sha256.c — SHA-256 through OpenSSL's low-level API, hex helpers.
 *
 * Why the low-level SHA256_* calls: they use SHA-NI and cost no allocation or provider lookup per
 * message; EVP_Digest one-shots and libsodium were measured 4-5x slower on 100-byte messages,
 * and per-record leaf hashes are the engine's hot path. They are deprecated in OpenSSL 3 but
 * remain supported; the deprecation warning is silenced here and only here.
 */
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include "window/window.h"

#include <openssl/sha.h>
#include <assert.h>

_Static_assert(sizeof(SHA256_CTX) <= sizeof(((struct ws_sha256 *)0)->opaque),
               "ws_sha256 too small for SHA256_CTX");

void ws_sha256_init(struct ws_sha256 *h)
{
    SHA256_Init((SHA256_CTX *)h->opaque);
}

void ws_sha256_update(struct ws_sha256 *h, const void *data, size_t len)
{
    SHA256_Update((SHA256_CTX *)h->opaque, data, len);
}

void ws_sha256_final(struct ws_sha256 *h, uint8_t out[WS_HASH_LEN])
{
    SHA256_Final(out, (SHA256_CTX *)h->opaque);
}

void ws_sha256(const void *data, size_t len, uint8_t out[WS_HASH_LEN])
{
    /* Not OpenSSL 3's one-shot SHA256(): it fetches a provider per call (~300 ns, 3x this). */
    SHA256_CTX c;

    SHA256_Init(&c);
    SHA256_Update(&c, data, len);
    SHA256_Final(out, &c);
}

void ws_hex_encode(const uint8_t *bin, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[bin[i] >> 4];
        out[2 * i + 1] = digits[bin[i] & 15];
    }
    out[2 * len] = '\0';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

ws_err_t ws_hex_decode(const char *hex, size_t hexlen, uint8_t *out, size_t len)
{
    if (hexlen != 2 * len)
        return WS_ERR_MALFORMED;
    for (size_t i = 0; i < len; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return WS_ERR_MALFORMED;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return WS_OK;
}
