/*
 * test_window_checkpoint.c — signed checkpoints (window/checkpoint.c) in the signed-note format.
 *
 * Ground truth from outside checkpoint.c: the key hash and signature of the PeterNeumann example
 * key in golang.org/x/mod/sumdb/note's own tests (name, vkey "PeterNeumann+c74f20a3+ARpc...",
 * skey seed, published signature blob), and a note assembled here by hand with libsodium only.
 * Then round trips, and rejection of every single-byte change to a signed checkpoint, of other
 * keys, other key names, malformed bodies and signature lines; cosignature lines by other names
 * must not disturb verification.
 */
#include "window/window.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static size_t b64dec(const char *s, uint8_t *out, size_t cap)
{
    size_t n = 0;
    if (sodium_base642bin(out, cap, s, strlen(s), NULL, &n, NULL, sodium_base64_VARIANT_ORIGINAL) !=
        0)
        return 0;
    return n;
}

/* The Go reference vector (sumdb/note note_test.go). */
static void test_go_vector(void)
{
    static const char vkey64[] = "ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    static const char skey64[] = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    static const char sig64[] = "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKv"
                                "qfqdngotpRZb6KE6RyyBwJnAM=";
    static const char text[] = "If you think cryptography is the answer to your problem,\n"
                               "then you don't know what your problem is.\n";
    uint8_t vk[64], sk[64], blob[128], pk[32], full[64], sig[64], kh[4];

    CHECK(b64dec(vkey64, vk, sizeof vk) == 33 && vk[0] == 0x01);
    CHECK(b64dec(skey64, sk, sizeof sk) == 33 && sk[0] == 0x01);
    CHECK(b64dec(sig64, blob, sizeof blob) == 68);
    CHECK(crypto_sign_ed25519_seed_keypair(pk, full, sk + 1) == 0);
    CHECK(memcmp(pk, vk + 1, 32) == 0);
    ws_checkpoint_key_hash("PeterNeumann", pk, kh);
    CHECK(kh[0] == 0xc7 && kh[1] == 0x4f && kh[2] == 0x20 && kh[3] == 0xa3);
    CHECK(memcmp(kh, blob, 4) == 0);
    /* The blob's layout: hash then a signature over the text exactly. */
    CHECK(crypto_sign_ed25519_detached(sig, NULL, (const uint8_t *)text, strlen(text), full) == 0);
    CHECK(memcmp(sig, blob + 4, 64) == 0);
}

static void test_round_trip(void)
{
    struct ws_key k, other, pubonly, both[2];
    uint8_t root[32], got_root[32];
    char *note = NULL, qid[129], err[256];
    size_t len = 0;
    uint64_t size = 0;

    CHECK(ws_key_generate(&k) == WS_OK);
    CHECK(ws_key_generate(&other) == WS_OK);
    pubonly = k;
    memset(pubonly.sk, 0, sizeof pubonly.sk);
    pubonly.has_secret = false;
    for (int i = 0; i < 32; i++)
        root[i] = (uint8_t)(i * 7 + 1);

    CHECK(ws_checkpoint_sign(&k, "windowseal", "q-1", 42, root, &note, &len) == WS_OK);
    CHECK(note && strlen(note) == len);
    /* The body, byte for byte, as the format says. */
    {
        char root64[64], expect[256];
        sodium_bin2base64(root64, sizeof root64, root, 32, sodium_base64_VARIANT_ORIGINAL);
        snprintf(expect, sizeof expect, "windowseal/q-1\n42\n%s\n\n\xe2\x80\x94 windowseal ",
                 root64);
        CHECK(strncmp(note, expect, strlen(expect)) == 0);
        CHECK(note[len - 1] == '\n');
        /* The signature line, checked by hand with libsodium. */
        const char *sl = note + strlen(expect);
        char b64[128];
        uint8_t blob[128], kh[4];
        size_t bl = (size_t)(note + len - 1 - sl);
        CHECK(bl < sizeof b64);
        memcpy(b64, sl, bl);
        b64[bl] = 0;
        CHECK(b64dec(b64, blob, sizeof blob) == 68);
        ws_checkpoint_key_hash("windowseal", k.pk, kh);
        CHECK(memcmp(blob, kh, 4) == 0);
        size_t body = strlen(expect) - strlen("\n\xe2\x80\x94 windowseal ");
        CHECK(crypto_sign_ed25519_verify_detached(blob + 4, (const uint8_t *)note, body, k.pk) ==
              0);
    }
    CHECK(ws_checkpoint_verify(note, len, &pubonly, 1, "windowseal", qid, &size, got_root, err,
                               sizeof err) == WS_OK);
    CHECK(strcmp(qid, "q-1") == 0 && size == 42 && memcmp(got_root, root, 32) == 0);
    /* Another key alone fails; in a list with the right key it passes. */
    CHECK(ws_checkpoint_verify(note, len, &other, 1, "windowseal", qid, &size, got_root, err,
                               sizeof err) == WS_ERR_SIGNATURE);
    both[0] = other;
    both[1] = pubonly;
    CHECK(ws_checkpoint_verify(note, len, both, 2, "windowseal", qid, &size, got_root, err,
                               sizeof err) == WS_OK);
    /* Another key name. */
    CHECK(ws_checkpoint_verify(note, len, &k, 1, "someone", qid, &size, got_root, err,
                               sizeof err) == WS_ERR_SIGNATURE);

    /* Every single-byte change is refused (or, in the signature's base64 padding, changes
     * nothing we accept as the same signature). */
    for (size_t i = 0; i < len; i++) {
        char *m = malloc(len);
        memcpy(m, note, len);
        m[i] ^= 0x01;
        CHECK(ws_checkpoint_verify(m, len, &k, 1, "windowseal", qid, &size, got_root, err,
                                   sizeof err) != WS_OK);
        free(m);
    }
    /* Truncations are refused. */
    for (size_t l = 0; l < len; l++)
        CHECK(ws_checkpoint_verify(note, l, &k, 1, "windowseal", qid, &size, got_root, err,
                                   sizeof err) != WS_OK);

    /* A witness cosignature line (another name) before and after ours is ignored. */
    {
        size_t body = (size_t)(strstr(note, "\n\n") - note) + 2;
        char buf[1024];
        int n =
            snprintf(buf, sizeof buf,
                     "%.*s\xe2\x80\x94 witness.example AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
                     "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n%s"
                     "\xe2\x80\x94 other abcd\n",
                     (int)body, note, note + body);
        CHECK(ws_checkpoint_verify(buf, (size_t)n, &k, 1, "windowseal", qid, &size, got_root, err,
                                   sizeof err) == WS_OK);
        /* ...but only the other lines: no signature by windowseal. */
        n = snprintf(buf, sizeof buf, "%.*s\xe2\x80\x94 other abcd\n", (int)body, note);
        CHECK(ws_checkpoint_verify(buf, (size_t)n, &k, 1, "windowseal", qid, &size, got_root, err,
                                   sizeof err) == WS_ERR_SIGNATURE);
    }
    free(note);

    /* Size 0 and the maximum size survive the round trip; leading zeros do not parse. */
    CHECK(ws_checkpoint_sign(&k, "windowseal", "q", UINT64_MAX, root, &note, &len) == WS_OK);
    CHECK(ws_checkpoint_verify(note, len, &k, 1, "windowseal", qid, &size, got_root, err,
                               sizeof err) == WS_OK &&
          size == UINT64_MAX);
    free(note);
    CHECK(ws_checkpoint_sign(&k, "windowseal", "q", 0, root, &note, &len) == WS_OK);
    CHECK(ws_checkpoint_verify(note, len, &k, 1, "windowseal", qid, &size, got_root, err,
                               sizeof err) == WS_OK &&
          size == 0);
    free(note);

    /* Refused inputs to sign. */
    CHECK(ws_checkpoint_sign(&pubonly, "windowseal", "q", 1, root, &note, &len) == WS_ERR_INVALID);
    CHECK(ws_checkpoint_sign(&k, "bad name", "q", 1, root, &note, &len) == WS_ERR_INVALID);
    CHECK(ws_checkpoint_sign(&k, "a+b", "q", 1, root, &note, &len) == WS_ERR_INVALID);
    CHECK(ws_checkpoint_sign(&k, "windowseal", "../etc", 1, root, &note, &len) == WS_ERR_INVALID);
    CHECK(ws_checkpoint_sign(&k, "", "q", 1, root, &note, &len) == WS_ERR_INVALID);
    ws_key_wipe(&k);
    ws_key_wipe(&other);
}

/* Hand-made notes signed correctly but with a body that is not a windowseal checkpoint. */
static void test_malformed(void)
{
    struct ws_key k;
    uint8_t root[32], kh[4], blob[68], r[32];
    char qid[129], err[256], sig64[128], note[1024];
    uint64_t size;
    static const char *bodies[] = {
        "windowseal/q\n042\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n", /* leading zero */
        "windowseal/q\n-1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",  /* negative */
        "windowseal/q\n18446744073709551616\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
        "windowseal/q\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==\n",        /* 31 bytes */
        "windowseal/q\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n",         /* no padding */
        "windowseal/q\n1\n_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",        /* URL-safe */
        "sigsum/q\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",            /* origin */
        "windowseal/.q\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",       /* unsafe id */
        "windowseal/\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",         /* empty id */
        "windowseal/q\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\nextra\n", /* 4 lines */
        "windowseal/q\n1\n",                                                      /* 2 lines */
    };

    CHECK(ws_key_generate(&k) == WS_OK);
    ws_checkpoint_key_hash("windowseal", k.pk, kh);
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        memcpy(blob, kh, 4);
        crypto_sign_ed25519_detached(blob + 4, NULL, (const uint8_t *)bodies[i], strlen(bodies[i]),
                                     k.sk);
        sodium_bin2base64(sig64, sizeof sig64, blob, 68, sodium_base64_VARIANT_ORIGINAL);
        int n = snprintf(note, sizeof note, "%s\n\xe2\x80\x94 windowseal %s\n", bodies[i], sig64);
        ws_err_t e = ws_checkpoint_verify(note, (size_t)n, &k, 1, "windowseal", qid, &size, r, err,
                                          sizeof err);
        CHECK(e == WS_ERR_MALFORMED);
        if (e != WS_ERR_MALFORMED)
            fprintf(stderr, "  body %zu accepted: %s\n", i, err);
    }
    /* The same construction with a good body verifies (the harness above is sound). */
    {
        static const char good[] =
            "windowseal/q\n7\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";
        memcpy(blob, kh, 4);
        crypto_sign_ed25519_detached(blob + 4, NULL, (const uint8_t *)good, strlen(good), k.sk);
        sodium_bin2base64(sig64, sizeof sig64, blob, 68, sodium_base64_VARIANT_ORIGINAL);
        int n = snprintf(note, sizeof note, "%s\n\xe2\x80\x94 windowseal %s\n", good, sig64);
        CHECK(ws_checkpoint_verify(note, (size_t)n, &k, 1, "windowseal", qid, &size, r, err,
                                   sizeof err) == WS_OK);
        CHECK(size == 7 && strcmp(qid, "q") == 0);
        memset(root, 0, sizeof root);
        CHECK(memcmp(r, root, 32) == 0);
        /* A hyphen instead of the em dash; CRLF; missing final newline. */
        char *p = strstr(note, "\xe2\x80\x94");
        char alt[1100];
        snprintf(alt, sizeof alt, "%.*s- %s", (int)(p - note), note, p + 4);
        CHECK(ws_checkpoint_verify(alt, strlen(alt), &k, 1, "windowseal", qid, &size, r, err,
                                   sizeof err) == WS_ERR_MALFORMED);
        CHECK(ws_checkpoint_verify(note, (size_t)n - 1, &k, 1, "windowseal", qid, &size, r, err,
                                   sizeof err) == WS_ERR_MALFORMED);
        snprintf(alt, sizeof alt, "%.*s\r\n%s", (int)(p - note - 1), note, p);
        CHECK(ws_checkpoint_verify(alt, strlen(alt), &k, 1, "windowseal", qid, &size, r, err,
                                   sizeof err) == WS_ERR_MALFORMED);
    }
    ws_key_wipe(&k);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    test_go_vector();
    test_round_trip();
    test_malformed();
    printf("test_window_checkpoint: %lu checks passed\n", checks - failures);
    if (failures) {
        fprintf(stderr, "test_window_checkpoint: %lu checks failed\n", failures);
        return 1;
    }
    return 0;
}
