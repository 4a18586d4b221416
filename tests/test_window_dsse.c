/*
 * test_window_dsse.c — Ed25519 keys (PEM, keyid) and DSSE envelopes (FORMAT.md §6).
 *
 * Independent references: the DSSE spec's PAE vector, the openssl CLI (reads our PEM files,
 * writes keys we must read, derives public keys), libsodium called directly to check signatures
 * over a PAE assembled by hand, and envelopes assembled by hand with snprintf.
 */
#include "window/window.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"

static char tmpdir[] = "/tmp/test_dsse_XXXXXX";

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *s;
    long n;

    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    s = malloc((size_t)n + 1);
    if (fread(s, 1, (size_t)n, f) != (size_t)n)
        n = 0;
    s[n] = 0;
    fclose(f);
    *len = (size_t)n;
    return s;
}

static void spit(const char *path, const char *s, size_t len)
{
    FILE *f = fopen(path, "wb");

    CHECK(f != NULL);
    CHECK(fwrite(s, 1, len, f) == len);
    fclose(f);
}

static int run(const char *fmt, const char *arg)
{
    char cmd[1024];

    snprintf(cmd, sizeof(cmd), fmt, arg, arg, arg);
    return system(cmd);
}

static char *path(const char *name)
{
    static char buf[4][256];
    static int i;

    i = (i + 1) % 4;
    snprintf(buf[i], sizeof(buf[i]), "%s/%s", tmpdir, name);
    return buf[i];
}

/* ------------------------------------------------------------------------------------------ */
/* Keys                                                                                           */

static void keys(void)
{
    struct ws_key k, k2, pub;
    char pem[256], pem2[256], eb[200], cmd[1024];
    char *s;
    size_t len;
    uint8_t h[WS_HASH_LEN];
    char hexid[WS_HASH_HEX_LEN + 1];

    /* generate -> PEM -> parse */
    CHECK(ws_key_generate(&k) == WS_OK);
    CHECK(k.has_secret);
    ws_sha256(k.pk, 32, h);
    ws_hex_encode(h, WS_HASH_LEN, hexid);
    CHECK(strcmp(hexid, k.keyid) == 0);
    CHECK(ws_key_private_pem(&k, pem, sizeof(pem)) == WS_OK);
    CHECK(strncmp(pem, "-----BEGIN PRIVATE KEY-----\n", 28) == 0);
    CHECK(ws_key_private_pem(&k, pem2, 40) == WS_ERR_TOO_LARGE);
    CHECK(ws_key_from_pem(pem, strlen(pem), &k2, eb, sizeof(eb)) == WS_OK);
    CHECK(k2.has_secret && memcmp(k2.sk, k.sk, 64) == 0 && memcmp(k2.pk, k.pk, 32) == 0);
    CHECK(strcmp(k2.keyid, k.keyid) == 0);
    spit(path("priv.pem"), pem, strlen(pem));
    CHECK(ws_key_public_pem(&k, pem2, sizeof(pem2)) == WS_OK);
    CHECK(strncmp(pem2, "-----BEGIN PUBLIC KEY-----\n", 27) == 0);
    CHECK(ws_key_from_pem(pem2, strlen(pem2), &pub, eb, sizeof(eb)) == WS_OK);
    CHECK(!pub.has_secret && memcmp(pub.pk, k.pk, 32) == 0 && strcmp(pub.keyid, k.keyid) == 0);
    spit(path("pub.pem"), pem2, strlen(pem2));
    CHECK(ws_key_private_pem(&pub, pem, sizeof(pem)) == WS_ERR_KEY);

    /* openssl reads both files, and derives the same public key from our private key */
    CHECK(run("openssl pkey -in %s/priv.pem -noout", tmpdir) == 0);
    CHECK(run("openssl pkey -pubin -in %s/pub.pem -noout", tmpdir) == 0);
    CHECK(run("openssl pkey -in %s/priv.pem -pubout -out %s/derived.pem", tmpdir) == 0);
    s = slurp(path("derived.pem"), &len);
    CHECK(s && len == strlen(pem2) && memcmp(s, pem2, len) == 0);
    free(s);

    /* a key made by openssl parses; its keyid matches the public key openssl derives */
    CHECK(run("openssl genpkey -algorithm ed25519 -out %s/ossl.pem 2>/dev/null", tmpdir) == 0);
    CHECK(run("openssl pkey -in %s/ossl.pem -pubout -out %s/ossl.pub", tmpdir) == 0);
    s = slurp(path("ossl.pem"), &len);
    CHECK(s && ws_key_from_pem(s, len, &k2, eb, sizeof(eb)) == WS_OK && k2.has_secret);
    free(s);
    s = slurp(path("ossl.pub"), &len);
    CHECK(s && ws_key_from_pem(s, len, &pub, eb, sizeof(eb)) == WS_OK);
    free(s);
    CHECK(memcmp(pub.pk, k2.pk, 32) == 0 && strcmp(pub.keyid, k2.keyid) == 0);
    /* and independently: the last 32 bytes of openssl's DER public key, hashed by openssl */
    snprintf(cmd, sizeof(cmd),
             "openssl pkey -pubin -in %s/ossl.pub -outform DER | tail -c 32 | "
             "openssl dgst -sha256 -r | cut -c1-64 > %s/ossl.keyid",
             tmpdir, tmpdir);
    CHECK(system(cmd) == 0);
    s = slurp(path("ossl.keyid"), &len);
    CHECK(s && len >= 64 && strncmp(s, k2.keyid, 64) == 0);
    free(s);
    /* a signature made by openssl over a file verifies with the parsed public key */
    spit(path("msg"), "hello", 5);
    snprintf(cmd, sizeof(cmd),
             "openssl pkeyutl -sign -inkey %s/ossl.pem -rawin -in %s/msg -out %s/msg.sig", tmpdir,
             tmpdir, tmpdir);
    CHECK(system(cmd) == 0);
    s = slurp(path("msg.sig"), &len);
    CHECK(s && len == 64 &&
          crypto_sign_verify_detached((uint8_t *)s, (const uint8_t *)"hello", 5, pub.pk) == 0);
    free(s);

    /* RSA / EC keys: WS_ERR_KEY, and the message says what is wrong */
    CHECK(run("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out %s/rsa.pem "
              "2>/dev/null",
              tmpdir) == 0);
    s = slurp(path("rsa.pem"), &len);
    eb[0] = 0;
    CHECK(s && ws_key_from_pem(s, len, &k2, eb, sizeof(eb)) == WS_ERR_KEY);
    CHECK(strstr(eb, "Ed25519") != NULL && strstr(eb, "RSA") != NULL);
    printf("  RSA key: %s\n", eb);
    free(s);
    CHECK(run("openssl pkey -in %s/rsa.pem -pubout -out %s/rsa.pub", tmpdir) == 0);
    s = slurp(path("rsa.pub"), &len);
    CHECK(s && ws_key_from_pem(s, len, &k2, eb, sizeof(eb)) == WS_ERR_KEY);
    CHECK(strstr(eb, "Ed25519") != NULL);
    free(s);
    CHECK(run("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out %s/ec.pem "
              "2>/dev/null",
              tmpdir) == 0);
    s = slurp(path("ec.pem"), &len);
    CHECK(s && ws_key_from_pem(s, len, &k2, eb, sizeof(eb)) == WS_ERR_KEY);
    CHECK(strstr(eb, "not an Ed25519 key (EC)") != NULL);
    free(s);
    CHECK(run("openssl genpkey -algorithm ed448 -out %s/ed448.pem 2>/dev/null", tmpdir) == 0);
    s = slurp(path("ed448.pem"), &len);
    CHECK(s && ws_key_from_pem(s, len, &k2, eb, sizeof(eb)) == WS_ERR_KEY);
    CHECK(strstr(eb, "Ed448") != NULL);
    free(s);
    /* a traditional "RSA PRIVATE KEY" block */
    {
        const char *trad = "-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----\n";
        CHECK(ws_key_from_pem(trad, strlen(trad), &k2, eb, sizeof(eb)) == WS_ERR_KEY);
        CHECK(strstr(eb, "not an Ed25519 key") != NULL);
    }

    /* every truncation of the private PEM is rejected (the last newline is optional) */
    CHECK(ws_key_private_pem(&k, pem, sizeof(pem)) == WS_OK);
    len = strlen(pem);
    for (size_t l = 0; l + 1 < len; l++) {
        ws_err_t err = ws_key_from_pem(pem, l, &k2, eb, sizeof(eb));
        CHECK(err != WS_OK);
        CHECK(!k2.has_secret); /* nothing half-parsed is left behind */
    }
    CHECK(ws_key_from_pem(pem, len - 1, &k2, eb, sizeof(eb)) == WS_OK);
    CHECK(ws_key_from_pem(pem, len - 30, &k2, eb, sizeof(eb)) == WS_ERR_TRUNCATED);
    CHECK(strstr(eb, "truncated") != NULL);

    /* CRLF line endings and trailing whitespace are tolerated */
    {
        char crlf[512];
        size_t o = 0;
        for (size_t i = 0; pem[i]; i++) {
            if (pem[i] == '\n') {
                crlf[o++] = ' ';
                crlf[o++] = '\r';
            }
            crlf[o++] = pem[i];
        }
        memcpy(crlf + o, "\r\n\r\n  \n", 7);
        o += 7;
        CHECK(ws_key_from_pem(crlf, o, &k2, eb, sizeof(eb)) == WS_OK);
        CHECK(memcmp(k2.sk, k.sk, 64) == 0);
    }
    /* strictness: mismatched END, data after END, a body character outside base64, bad DER */
    {
        char bad[512];
        snprintf(bad, sizeof(bad), "%.*s-----END PUBLIC KEY-----\n", (int)(len - 26), pem);
        CHECK(ws_key_from_pem(bad, strlen(bad), &k2, eb, sizeof(eb)) == WS_ERR_MALFORMED);
        snprintf(bad, sizeof(bad), "%sjunk\n", pem);
        CHECK(ws_key_from_pem(bad, strlen(bad), &k2, eb, sizeof(eb)) == WS_ERR_MALFORMED);
        snprintf(bad, sizeof(bad), "%s", pem);
        bad[30] = '*';
        CHECK(ws_key_from_pem(bad, strlen(bad), &k2, eb, sizeof(eb)) == WS_ERR_MALFORMED);
        if (failures)
            fprintf(stderr, "  %s: %s\n", bad, eb);
        snprintf(bad, sizeof(bad), "%s", pem);
        bad[28] = bad[28] == 'A' ? 'B' : 'A'; /* first DER byte changes: not PKCS#8 any more */
        CHECK(ws_key_from_pem(bad, strlen(bad), &k2, eb, sizeof(eb)) == WS_ERR_KEY);
        CHECK(ws_key_from_pem("", 0, &k2, eb, sizeof(eb)) == WS_ERR_MALFORMED);
        CHECK(ws_key_from_pem("hello\n", 6, &k2, eb, sizeof(eb)) == WS_ERR_MALFORMED);
    }
    ws_key_wipe(&k);
    CHECK(!k.has_secret && k.sk[0] == 0 && k.sk[63] == 0);
}

/* ------------------------------------------------------------------------------------------ */
/* DSSE                                                                                           */

static char *b64(const void *bin, size_t len, int variant)
{
    size_t cap = sodium_base64_ENCODED_LEN(len, variant);
    char *s = malloc(cap);
    sodium_bin2base64(s, cap, bin, len, variant);
    return s;
}

static ws_err_t open1(const char *env, const struct ws_key *k, char **payload, size_t *plen)
{
    char eb[256];
    size_t which;

    return ws_dsse_open(env, strlen(env), k, 1, payload, plen, &which, eb, sizeof(eb));
}

static void dsse(void)
{
    const char *stmt = "{\"_type\":\"https://in-toto.io/Statement/v1\",\"x\":\"h\\u00e9\"}";
    struct ws_key k, other, keys[3];
    uint8_t *pae, sig[64];
    size_t paelen, envlen, envlen2, plen, which;
    char *env, *env2, *payload, eb[256], buf[4096], hand[512];
    ws_err_t err;

    /* PAE golden vector from the DSSE specification */
    CHECK(ws_dsse_pae("http://example.com/HelloWorld", "hello world", 11, &pae, &paelen) == WS_OK);
    {
        const char *want = "DSSEv1 29 http://example.com/HelloWorld 11 hello world";
        CHECK(paelen == strlen(want) && memcmp(pae, want, paelen) == 0);
    }
    free(pae);
    CHECK(ws_dsse_pae("", "", 0, &pae, &paelen) == WS_OK);
    CHECK(paelen == 12 && memcmp(pae, "DSSEv1 0  0 ", 12) == 0);
    free(pae);

    CHECK(ws_key_generate(&k) == WS_OK);
    CHECK(ws_key_generate(&other) == WS_OK);

    /* sign: compact, sorted, standard padded base64, and a signature libsodium accepts over a
     * PAE built here by hand */
    CHECK(ws_dsse_sign(&k, WS_PAYLOAD_TYPE, stmt, strlen(stmt), &env, &envlen) == WS_OK);
    CHECK(envlen == strlen(env));
    {
        char *pb = b64(stmt, strlen(stmt), sodium_base64_VARIANT_ORIGINAL);
        char head[600], byhand[300];
        snprintf(head, sizeof(head), "{\"payload\":\"%s\",\"payloadType\":\"%s\",", pb,
                 WS_PAYLOAD_TYPE);
        CHECK(strncmp(env, head, strlen(head)) == 0);
        snprintf(byhand, sizeof(byhand), "DSSEv1 %zu %s %zu %s", strlen(WS_PAYLOAD_TYPE),
                 WS_PAYLOAD_TYPE, strlen(stmt), stmt);
        const char *sigp = strstr(env, "\"sig\":\"");
        CHECK(sigp != NULL);
        size_t slen = 0;
        CHECK(sodium_base642bin(sig, 64, sigp + 7, 88, NULL, &slen, NULL,
                                sodium_base64_VARIANT_ORIGINAL) == 0 &&
              slen == 64);
        CHECK(crypto_sign_verify_detached(sig, (uint8_t *)byhand, strlen(byhand), k.pk) == 0);
        char tail[200];
        snprintf(tail, sizeof(tail), "\"signatures\":[{\"keyid\":\"%s\",\"sig\":\"", k.keyid);
        CHECK(strstr(env, tail) != NULL);
        CHECK(env[envlen - 1] == '}' && strstr(env, " ") == NULL);
        free(pb);
    }

    /* determinism */
    CHECK(ws_dsse_sign(&k, WS_PAYLOAD_TYPE, stmt, strlen(stmt), &env2, &envlen2) == WS_OK);
    CHECK(envlen == envlen2 && memcmp(env, env2, envlen) == 0);
    free(env2);

    /* round trip */
    CHECK(open1(env, &k, &payload, &plen) == WS_OK);
    CHECK(plen == strlen(stmt) && strcmp(payload, stmt) == 0);
    free(payload);
    /* which: the index of the key that verified; a public-only key works */
    keys[0] = other;
    CHECK(ws_key_from_pem("", 0, &keys[1], NULL, 0) != WS_OK);
    keys[1] = other;
    keys[2] = k;
    keys[2].has_secret = false;
    memset(keys[2].sk, 0, 64);
    CHECK(ws_dsse_open(env, envlen, keys, 3, &payload, &plen, &which, eb, sizeof(eb)) == WS_OK);
    CHECK(which == 2);
    free(payload);

    /* wrong key */
    payload = (char *)1;
    err = ws_dsse_open(env, envlen, &other, 1, &payload, &plen, &which, eb, sizeof(eb));
    CHECK(err == WS_ERR_SIGNATURE && payload == NULL && strstr(eb, "no signature") != NULL);

    /* one flipped payload byte (payload re-encoded, signature kept) */
    {
        char *tampered = strdup(stmt);
        tampered[20] ^= 1;
        char *pb = b64(tampered, strlen(tampered), sodium_base64_VARIANT_ORIGINAL);
        const char *sigp = strstr(env, "\"signatures\"");
        snprintf(buf, sizeof(buf), "{\"payload\":\"%s\",\"payloadType\":\"%s\",%s", pb,
                 WS_PAYLOAD_TYPE, sigp);
        CHECK(open1(buf, &k, &payload, &plen) == WS_ERR_SIGNATURE);
        free(pb);
        free(tampered);
    }
    /* every single flipped bit of the signature */
    {
        const char *sigp = strstr(env, "\"sig\":\"") + 7;
        size_t off = (size_t)(sigp - env), bad = 0;
        for (size_t i = 0; i < 86; i++) { /* the last 2 chars carry padding bits */
            snprintf(buf, sizeof(buf), "%s", env);
            buf[off + i] = buf[off + i] == 'A' ? 'B' : 'A';
            if (open1(buf, &k, &payload, &plen) == WS_ERR_SIGNATURE)
                bad++;
        }
        CHECK(bad == 86);
    }

    /* URL-safe base64, with and without padding; standard without padding */
    {
        /* a payload whose base64 uses '+' and '/' so the alphabets really differ */
        const uint8_t odd[] = {0xfb, 0xff, 0xbf, 0xfe, 0x3e, 0x3f, 0x00, 0x7b};
        char *e3;
        size_t l3;
        int variants[] = {sodium_base64_VARIANT_URLSAFE, sodium_base64_VARIANT_URLSAFE_NO_PADDING,
                          sodium_base64_VARIANT_ORIGINAL_NO_PADDING};
        CHECK(ws_dsse_sign(&k, WS_PAYLOAD_TYPE, odd, sizeof(odd), &e3, &l3) == WS_OK);
        CHECK(strchr(e3, '+') || strchr(e3, '/'));
        CHECK(crypto_sign_detached(sig, NULL, (uint8_t *)"x", 0, k.sk) == 0);
        {
            uint8_t *p2;
            size_t p2len;
            CHECK(ws_dsse_pae(WS_PAYLOAD_TYPE, odd, sizeof(odd), &p2, &p2len) == WS_OK);
            CHECK(crypto_sign_detached(sig, NULL, p2, p2len, k.sk) == 0);
            free(p2);
        }
        for (size_t v = 0; v < 3; v++) {
            char *pb = b64(odd, sizeof(odd), variants[v]), *sb = b64(sig, 64, variants[v]);
            snprintf(hand, sizeof(hand),
                     "{\"signatures\":[{\"sig\":\"%s\",\"keyid\":\"whatever\"}],"
                     "\"payloadType\":\"%s\",\"payload\":\"%s\"}",
                     sb, WS_PAYLOAD_TYPE, pb);
            CHECK(open1(hand, &k, &payload, &plen) == WS_OK);
            CHECK(plen == sizeof(odd) && memcmp(payload, odd, plen) == 0);
            free(payload);
            free(pb);
            free(sb);
        }
        free(e3);
    }

    /* unknown fields ignored; a bogus first signature does not stop the second; keyid ignored */
    {
        char *pb = b64(stmt, strlen(stmt), sodium_base64_VARIANT_ORIGINAL);
        const char *sigp = strstr(env, "\"sig\":\"") + 7;
        snprintf(hand, sizeof(hand),
                 "{\"extra\":{\"a\":[1,2]},\"payload\":\"%s\",\"payloadType\":\"%s\","
                 "\"signatures\":[{\"keyid\":\"x\",\"sig\":\"AAAA\"},{\"sig\":\"%.88s\","
                 "\"future\":true}]}",
                 pb, WS_PAYLOAD_TYPE, sigp);
        CHECK(open1(hand, &k, &payload, &plen) == WS_OK);
        free(payload);
        free(pb);
    }

    /* garbage and malformed envelopes */
    {
        static const char *bad[] = {
            "",
            "not json",
            "[]",
            "{}",
            "{\"payload\":\"e30=\",\"payloadType\":\"application/vnd.in-toto+json\"}",
            "{\"payload\":\"e30=\",\"payloadType\":\"application/vnd.in-toto+json\","
            "\"signatures\":[]}",
            "{\"payload\":\"e30=\",\"payloadType\":\"application/vnd.in-toto+json\","
            "\"signatures\":[{\"keyid\":\"k\"}]}",
            "{\"payload\":\"e30=\",\"payloadType\":\"application/vnd.in-toto+json\","
            "\"signatures\":[7]}",
            "{\"payload\":1,\"payloadType\":\"application/vnd.in-toto+json\","
            "\"signatures\":[{\"sig\":\"AAAA\"}]}",
            "{\"payload\":\"e30=\",\"payloadType\":\"text/plain\","
            "\"signatures\":[{\"sig\":\"AAAA\"}]}",
            "{\"payload\":\"e3!0\",\"payloadType\":\"application/vnd.in-toto+json\","
            "\"signatures\":[{\"sig\":\"AAAA\"}]}",
            "{\"payload\":\"e30=\",\"payload\":\"e30=\",\"payloadType\":\"application/"
            "vnd.in-toto+json\",\"signatures\":[{\"sig\":\"AAAA\"}]}",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            payload = (char *)1;
            err = ws_dsse_open(bad[i], strlen(bad[i]), &k, 1, &payload, &plen, &which, eb,
                               sizeof(eb));
            CHECK(err == WS_ERR_MALFORMED);
            CHECK(payload == NULL && eb[0] != 0);
        }
        /* random bytes */
        for (int i = 0; i < 200; i++) {
            size_t n = 1 + (size_t)(randombytes_uniform(300));
            randombytes_buf(buf, n);
            CHECK(ws_dsse_open(buf, n, &k, 1, &payload, &plen, &which, eb, sizeof(eb)) ==
                  WS_ERR_MALFORMED);
        }
        /* well-formed, bogus signature */
        snprintf(
            hand, sizeof(hand),
            "{\"payload\":\"e30=\",\"payloadType\":\"%s\",\"signatures\":[{\"sig\":\"AAAA\"}]}",
            WS_PAYLOAD_TYPE);
        CHECK(open1(hand, &k, &payload, &plen) == WS_ERR_SIGNATURE);
        /* no keys; too large */
        CHECK(ws_dsse_open(env, envlen, &k, 0, &payload, &plen, &which, eb, sizeof(eb)) ==
              WS_ERR_INVALID);
        char *huge = calloc(1, WS_ENVELOPE_MAX + 1);
        CHECK(huge && ws_dsse_open(huge, WS_ENVELOPE_MAX + 1, &k, 1, &payload, &plen, &which, eb,
                                   sizeof(eb)) == WS_ERR_TOO_LARGE);
        free(huge);
    }

    /* signing needs a secret */
    CHECK(ws_dsse_sign(&keys[2], WS_PAYLOAD_TYPE, stmt, 3, &env2, &envlen2) == WS_ERR_KEY);
    free(env);
    ws_key_wipe(&k);
    ws_key_wipe(&other);
}

int main(void)
{
    if (system("openssl version >/dev/null 2>&1") != 0) {
        fprintf(stderr, "test_window_dsse: the openssl CLI is required\n");
        return 77;
    }
    if (sodium_init() < 0 || !mkdtemp(tmpdir))
        return 1;
    keys();
    dsse();
    run("rm -rf %s", tmpdir);
    if (failures) {
        fprintf(stderr, "test_window_dsse: %lu of %lu checks FAILED\n", failures, checks);
        return 1;
    }
    printf("test_window_dsse: %lu checks passed\n", checks);
    return 0;
}
