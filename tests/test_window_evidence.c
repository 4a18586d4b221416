/*
 * test_window_evidence.c — the LZ4-frame evidence archive (FORMAT.md §3).
 *
 * Records here are opaque byte strings (the archive frames `u32 length || encoding` and does not
 * look inside), generated from a seeded PRNG so every run is the same. The reference for "what the
 * archive holds" is always computed independently in the test: the expected window stream is
 * built by hand and hashed, and the real `lz4` CLI decompresses the archive.
 */
#include "window/window.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

/* ------------------------------------------------------------------------------------------ */
/* Buffers and callbacks                                                                          */

struct buf {
    uint8_t *p;
    size_t len, cap;
    size_t max_write; /* largest single out() call seen */
    size_t writes;
};

static void buf_put(struct buf *b, const void *d, size_t n)
{
    if (n == 0)
        return;
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        if (!b->p)
            abort();
    }
    memcpy(b->p + b->len, d, n);
    b->len += n;
}

static ws_err_t out_cb(void *opaque, const void *d, size_t n)
{
    struct buf *b = opaque;

    if (n > b->max_write)
        b->max_write = n;
    b->writes++;
    buf_put(b, d, n);
    return WS_OK;
}

struct src {
    const uint8_t *p;
    size_t len, pos, chunk;
};

static ws_err_t in_cb(void *opaque, void *d, size_t cap, size_t *got)
{
    struct src *s = opaque;
    size_t n = s->len - s->pos;

    if (n > cap)
        n = cap;
    if (s->chunk && n > s->chunk)
        n = s->chunk;
    if (n)
        memcpy(d, s->p + s->pos, n);
    s->pos += n;
    *got = n;
    return WS_OK;
}

static bool same_bytes(const struct buf *a, const struct buf *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->p, b->p, a->len) == 0);
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

/* A window stream of n records with the given sizes; somewhat compressible (text-like bytes). */
static void make_stream(struct buf *stream, size_t n, size_t (*size_of)(size_t))
{
    static const char words[] = "orders payments kafka topic partition offset value header ";

    for (size_t i = 0; i < n; i++) {
        size_t len = size_of(i);
        uint8_t hdr[4] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
                          (uint8_t)len};
        buf_put(stream, hdr, 4);
        for (size_t j = 0; j < len; j++) {
            uint8_t c = (rnd() % 4 == 0) ? (uint8_t)rnd() : (uint8_t)words[(i + j) % 58];
            buf_put(stream, &c, 1);
        }
    }
}

static size_t size_small(size_t i)
{
    return 36 + (i * 37) % 300;
}
static size_t size_mib(size_t i)
{
    return i == 1 ? 1024 * 1024 : 50 + i;
}

/* Compress stream with writes of `wchunk` bytes (0: one write). */
static void compress(const struct buf *stream, size_t wchunk, size_t block, struct buf *arch)
{
    struct ws_evidence_writer *w = ws_evidence_writer_new(out_cb, arch, block);
    size_t pos = 0;

    CHECK(w != NULL);
    while (pos < stream->len) {
        size_t n = wchunk ? wchunk : stream->len;
        if (n > stream->len - pos)
            n = stream->len - pos;
        CHECK(ws_evidence_write(w, stream->p + pos, n) == WS_OK);
        pos += n;
    }
    CHECK(ws_evidence_finish(w) == WS_OK);
    CHECK(ws_evidence_finish(w) == WS_OK); /* idempotent */
    ws_evidence_writer_destroy(w);
}

/*
 * Read an archive back. Returns the error (WS_OK at a clean end); rebuilt receives the window
 * stream re-framed from the returned records, digest the reader's stream digest.
 */
static ws_err_t decompress(const struct buf *arch, size_t rchunk, struct buf *rebuilt,
                           uint8_t digest[WS_HASH_LEN], size_t *nrec, char *eb, size_t el)
{
    struct src s = {arch->p, arch->len, 0, rchunk};
    struct ws_evidence_reader *r = ws_evidence_reader_new(in_cb, &s);
    ws_err_t err;

    *nrec = 0;
    CHECK(r != NULL);
    for (;;) {
        const uint8_t *rec;
        size_t len;

        err = ws_evidence_next(r, &rec, &len, eb, el);
        if (err || !rec)
            break;
        uint8_t hdr[4] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
                          (uint8_t)len};
        buf_put(rebuilt, hdr, 4);
        buf_put(rebuilt, rec, len);
        (*nrec)++;
    }
    ws_evidence_stream_digest(r, digest);
    if (err) { /* sticky: the next call fails the same way */
        const uint8_t *rec;
        size_t len;
        CHECK(ws_evidence_next(r, &rec, &len, NULL, 0) == err && rec == NULL);
    }
    ws_evidence_reader_destroy(r);
    return err;
}

static void lz4_cli_digest(const struct buf *arch, uint8_t digest[WS_HASH_LEN], size_t *outlen,
                           int *status)
{
    char path[] = "/tmp/test_evidence_XXXXXX", cmd[128];
    int fd = mkstemp(path);
    struct ws_sha256 h;
    uint8_t tmp[65536];
    size_t n;
    FILE *p;

    CHECK(fd >= 0);
    CHECK(write(fd, arch->p, arch->len) == (ssize_t)arch->len);
    close(fd);
    snprintf(cmd, sizeof(cmd), "lz4 -dc %s", path);
    p = popen(cmd, "r");
    CHECK(p != NULL);
    ws_sha256_init(&h);
    *outlen = 0;
    while ((n = fread(tmp, 1, sizeof(tmp), p)) > 0) {
        ws_sha256_update(&h, tmp, n);
        *outlen += n;
    }
    ws_sha256_final(&h, digest);
    *status = pclose(p);
    unlink(path);
}

/* ------------------------------------------------------------------------------------------ */

static void round_trip(size_t nrec, size_t (*size_of)(size_t), const char *what)
{
    struct buf stream = {0}, arch = {0}, arch2 = {0}, rebuilt = {0};
    uint8_t want[WS_HASH_LEN], got[WS_HASH_LEN], cli[WS_HASH_LEN];
    size_t n, clilen;
    int status;
    char eb[200] = "";

    make_stream(&stream, nrec, size_of);
    ws_sha256(stream.p, stream.len, want);
    compress(&stream, 0, 0, &arch);

    /* chunked reads of 1 and 7 bytes force records to straddle every possible boundary */
    size_t chunks[] = {0, 7, 1};
    for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
        if (chunks[c] == 1 && arch.len > 200000)
            continue; /* byte-at-a-time on the 1 MiB case only slows the run down */
        rebuilt.len = 0;
        CHECK(decompress(&arch, chunks[c], &rebuilt, got, &n, eb, sizeof(eb)) == WS_OK);
        CHECK(n == nrec);
        CHECK(same_bytes(&rebuilt, &stream));
        CHECK(memcmp(got, want, WS_HASH_LEN) == 0);
    }

    /* the archive does not depend on how the stream was split into writes, nor on block_size */
    compress(&stream, 13, 4096, &arch2);
    CHECK(same_bytes(&arch2, &arch));
    /* out() calls stay about block_size: memory is bounded whatever the window size */
    CHECK(arch2.max_write <= 4096 + 70 * 1024);

    lz4_cli_digest(&arch, cli, &clilen, &status);
    CHECK(status == 0);
    CHECK(clilen == stream.len);
    CHECK(memcmp(cli, want, WS_HASH_LEN) == 0);
    printf("  %-22s %8zu stream bytes -> %8zu archive bytes; lz4 -dc digest matches\n", what,
           stream.len, arch.len);

    free(stream.p);
    free(arch.p);
    free(arch2.p);
    free(rebuilt.p);
}

static void truncations_and_corruption(void)
{
    struct buf stream = {0}, arch = {0}, rebuilt = {0}, cut = {0};
    uint8_t want[WS_HASH_LEN], got[WS_HASH_LEN];
    size_t n, detected = 0, same = 0;
    char eb[200];
    ws_err_t err;

    make_stream(&stream, 20, size_small);
    ws_sha256(stream.p, stream.len, want);
    compress(&stream, 0, 0, &arch);

    /* every proper prefix of the archive is rejected */
    for (size_t l = 0; l < arch.len; l++) {
        cut.len = 0;
        buf_put(&cut, arch.p, l);
        rebuilt.len = 0;
        eb[0] = 0;
        err = decompress(&cut, 0, &rebuilt, got, &n, eb, sizeof(eb));
        CHECK(err == WS_ERR_TRUNCATED || err == WS_ERR_MALFORMED);
        CHECK(eb[0] != 0);
    }
    cut.len = 0;
    err = decompress(&cut, 0, &rebuilt, got, &n, eb, sizeof(eb));
    CHECK(err == WS_ERR_TRUNCATED && strstr(eb, "empty") != NULL);

    /*
     * Every single-bit flip: either the reader fails, or what it returned hashes to the digest it
     * reports and differs from the original digest. (With checksums off LZ4 cannot see every
     * flip; the signed stream digest does.) A flip that decodes to the same bytes would be
     * harmless, and is counted.
     */
    for (size_t i = 0; i < arch.len; i++) {
        for (int bit = 0; bit < 8; bit += 3) {
            uint8_t chk[WS_HASH_LEN];
            cut.len = 0;
            buf_put(&cut, arch.p, arch.len);
            cut.p[i] ^= (uint8_t)(1u << bit);
            rebuilt.len = 0;
            err = decompress(&cut, 0, &rebuilt, got, &n, eb, sizeof(eb));
            if (err) {
                CHECK(err == WS_ERR_TRUNCATED || err == WS_ERR_MALFORMED ||
                      err == WS_ERR_TOO_LARGE);
                detected++;
                continue;
            }
            ws_sha256(rebuilt.p, rebuilt.len, chk);
            CHECK(memcmp(chk, got, WS_HASH_LEN) == 0);
            if (memcmp(got, want, WS_HASH_LEN) == 0) {
                CHECK(same_bytes(&rebuilt, &stream));
                same++;
            } else {
                detected++;
            }
        }
    }
    CHECK(detected > 0);
    printf("  bit flips: %zu detected (error or digest), %zu decoded to identical bytes\n",
           detected, same);

    /* trailing garbage, a second frame, garbage instead of a frame */
    cut.len = 0;
    buf_put(&cut, arch.p, arch.len);
    buf_put(&cut, "x", 1);
    err = decompress(&cut, 0, &rebuilt, got, &n, eb, sizeof(eb));
    CHECK(err == WS_ERR_MALFORMED && strstr(eb, "after the end") != NULL);
    cut.len = 0;
    buf_put(&cut, arch.p, arch.len);
    buf_put(&cut, arch.p, arch.len);
    err = decompress(&cut, 0, &rebuilt, got, &n, eb, sizeof(eb));
    CHECK(err == WS_ERR_MALFORMED);
    cut.len = 0;
    for (int i = 0; i < 1000; i++) {
        uint8_t c = (uint8_t)rnd();
        buf_put(&cut, &c, 1);
    }
    err = decompress(&cut, 0, &rebuilt, got, &n, eb, sizeof(eb));
    CHECK(err == WS_ERR_MALFORMED);
    /* a skippable frame (which `lz4 -dc` would print as nothing) is not an archive */
    cut.len = 0;
    buf_put(&cut, "\x50\x2a\x4d\x18\x03\0\0\0abc", 11);
    err = decompress(&cut, 1, &rebuilt, got, &n, eb, sizeof(eb));
    CHECK(err == WS_ERR_MALFORMED && strstr(eb, "skippable") != NULL);

    free(stream.p);
    free(arch.p);
    free(rebuilt.p);
    free(cut.p);
}

/* Framing errors inside a well-formed LZ4 frame. */
static void bad_framing(void)
{
    struct buf stream = {0}, arch = {0}, rebuilt = {0};
    uint8_t got[WS_HASH_LEN];
    size_t n;
    char eb[200];
    ws_err_t err;

    /* a record cut short by the end of the stream */
    buf_put(&stream,
            "\0\0\0\x10"
            "abc",
            7);
    compress(&stream, 0, 0, &arch);
    err = decompress(&arch, 0, &rebuilt, got, &n, eb, sizeof(eb));
    CHECK(err == WS_ERR_TRUNCATED && strstr(eb, "inside a record") != NULL);

    /* a length prefix cut short */
    stream.len = arch.len = 0;
    buf_put(&stream,
            "\0\0\0\x01"
            "a"
            "\0\0",
            7);
    compress(&stream, 0, 0, &arch);
    err = decompress(&arch, 0, &rebuilt, got, &n, eb, sizeof(eb));
    CHECK(err == WS_ERR_TRUNCATED && n == 1);

    /* a length above WS_RECORD_MAX is refused before any allocation */
    stream.len = arch.len = 0;
    buf_put(&stream,
            "\x10\0\0\x01"
            "a",
            5);
    compress(&stream, 0, 0, &arch);
    err = decompress(&arch, 0, &rebuilt, got, &n, eb, sizeof(eb));
    CHECK(err == WS_ERR_TOO_LARGE);

    /* zero-length records cannot be encodings */
    stream.len = arch.len = 0;
    buf_put(&stream, "\0\0\0\0", 4);
    compress(&stream, 0, 0, &arch);
    err = decompress(&arch, 0, &rebuilt, got, &n, eb, sizeof(eb));
    CHECK(err == WS_ERR_MALFORMED);

    free(stream.p);
    free(arch.p);
    free(rebuilt.p);
}

/* An archive written by the lz4 CLI (4 MiB independent blocks, content checksum) reads back. */
static void reads_cli_archive(void)
{
    struct buf stream = {0}, arch = {0}, rebuilt = {0};
    char in[] = "/tmp/test_evidence_in_XXXXXX", cmd[200];
    uint8_t want[WS_HASH_LEN], got[WS_HASH_LEN], tmp[65536];
    size_t n;
    int fd;
    FILE *p;
    char eb[200] = "";

    make_stream(&stream, 300, size_small);
    ws_sha256(stream.p, stream.len, want);
    fd = mkstemp(in);
    CHECK(fd >= 0);
    CHECK(write(fd, stream.p, stream.len) == (ssize_t)stream.len);
    close(fd);
    snprintf(cmd, sizeof(cmd), "lz4 -c -q %s", in);
    p = popen(cmd, "r");
    CHECK(p != NULL);
    while ((n = fread(tmp, 1, sizeof(tmp), p)) > 0)
        buf_put(&arch, tmp, n);
    CHECK(pclose(p) == 0);
    unlink(in);
    CHECK(decompress(&arch, 5, &rebuilt, got, &n, eb, sizeof(eb)) == WS_OK);
    CHECK(n == 300 && memcmp(got, want, WS_HASH_LEN) == 0);
    if (failures)
        fprintf(stderr, "  reader error: %s\n", eb);

    free(stream.p);
    free(arch.p);
    free(rebuilt.p);
}

int main(void)
{
    if (system("lz4 --version >/dev/null 2>&1") != 0) {
        fprintf(stderr, "test_window_evidence: the lz4 CLI is required\n");
        return 77;
    }
    round_trip(0, size_small, "0 records");
    round_trip(1, size_small, "1 record");
    round_trip(1000, size_small, "1000 records");
    round_trip(3, size_mib, "1 MiB record");
    truncations_and_corruption();
    bad_framing();
    reads_cli_archive();
    if (failures) {
        fprintf(stderr, "test_window_evidence: %lu of %lu checks FAILED\n", failures, checks);
        return 1;
    }
    printf("test_window_evidence: %lu checks passed\n", checks);
    return 0;
}
