/*
 * test_engine_hasher.c — the build worker's hashing thread (engine/hasher.c) gives exactly the
 * window the one-thread path gives: the same stream bytes, stream digest, Merkle root and
 * per-source counts, for windows that fill many chunks, records bigger than a chunk, empty
 * values and null keys, headers; the evidence output, written whole chunks at a time by the
 * compressor thread, gets the same bytes as record by record; a window without output; an
 * error on the hasher thread (a record outside every declared range) and on the compressor
 * thread (the output refuses) reach the caller, and the hasher takes the next window cleanly.
 */
#include "engine/internal.h"
#include "check.h"

#include <stdlib.h>
#include <string.h>

static char errbuf[512];

/* The window's stream_out: a running SHA-256 and byte count of what it hands out. */
struct sink {
    struct ws_sha256 sha;
    uint64_t bytes;
};

static uint64_t g_fail_after = UINT64_MAX; /* the output refuses once it has this many bytes */

static ws_err_t sink_write(void *opaque, const void *buf, size_t len)
{
    struct sink *s = opaque;
    if (s->bytes + len > g_fail_after)
        return WS_ERR_NOSPACE;
    ws_sha256_update(&s->sha, buf, len);
    s->bytes += len;
    return WS_OK;
}

/* Record i of a deterministic stream over two partitions of topic "t"; bigger ones too. */
static void make_record(uint64_t i, uint64_t n, uint8_t *val, size_t cap, struct ws_header *hdr,
                        struct ws_record *r)
{
    size_t len = (size_t)(i * 7919 % 300);

    if (i % 5000 == 17)
        len = cap; /* bigger than a chunk: added on the caller's thread after a drain */
    for (size_t k = 0; k < len; k++)
        val[k] = (uint8_t)(i + k * 13);
    memset(r, 0, sizeof *r);
    r->topic = "t";
    r->topic_len = 1;
    r->partition = i < n / 2 ? 0 : 1;
    r->offset = (int64_t)(i < n / 2 ? i : i - n / 2);
    r->timestamp = 1700000000000 + (int64_t)i;
    r->ts_type = 1;
    r->key = i % 3 ? "key" : NULL;
    r->key_len = i % 3 ? 3 : -1;
    r->value = val;
    r->value_len = i % 11 == 0 ? -1 : (int32_t)len;
    if (i % 4 == 0) {
        hdr->name = "h";
        hdr->name_len = 1;
        hdr->value = "v";
        hdr->value_len = 1;
        r->headers = hdr;
        r->header_count = 1;
    }
}

/* One window of n records, through the hasher (h) or on this thread (h NULL). */
static ws_err_t window(struct eng_hasher *h, uint64_t n, bool stray, bool out,
                       struct ws_window_result *res, uint8_t digest[32], uint64_t *bytes)
{
    static uint8_t val[(1u << 20) + 64];
    struct sink s;
    struct ws_window *w;
    ws_err_t err = WS_OK, ferr;
    struct ws_header hdr;
    struct ws_record r;

    ws_sha256_init(&s.sha);
    s.bytes = 0;
    if (!(w = ws_window_new(out ? sink_write : NULL, &s)))
        return WS_ERR_NOMEM;
    if ((err = ws_window_add_source(w, "t", 0, 0, (int64_t)(n / 2))) ||
        (err = ws_window_add_source(w, "t", 1, 0, (int64_t)(n - n / 2)))) {
        ws_window_destroy(w);
        return err;
    }
    if (h)
        eng_hasher_begin(h, w);
    for (uint64_t i = 0; i < n && !err; i++) {
        make_record(i, n, val, sizeof val - 64, &hdr, &r);
        if (stray && i == n / 3)
            r.offset = (int64_t)n * 10; /* in no declared range */
        err = h ? eng_hasher_add(h, &r, errbuf, sizeof errbuf)
                : ws_window_add(w, &r, errbuf, sizeof errbuf);
    }
    if (h && (ferr = eng_hasher_finish(h, errbuf, sizeof errbuf)) && !err)
        err = ferr;
    if (!err && !(err = ws_window_finish(w, res))) {
        ws_sha256_final(&s.sha, digest);
        *bytes = s.bytes;
        /* sources are the window's: copy what the caller compares before destroying it */
        res->sources = NULL;
    }
    ws_window_destroy(w);
    return err;
}

static void same_window(struct eng_hasher *h, uint64_t n)
{
    struct ws_window_result a, b;
    uint8_t da[32], db[32];
    uint64_t ba = 0, bb = 0;

    CHECK_OK(window(NULL, n, false, true, &a, da, &ba));
    CHECK_OK(window(h, n, false, true, &b, db, &bb));
    CHECK(a.leaf_count == n && b.leaf_count == n);
    CHECK(a.bytes == b.bytes && ba == bb && ba > 0);
    CHECK(memcmp(a.root, b.root, 32) == 0);
    CHECK(memcmp(a.stream_digest, b.stream_digest, 32) == 0);
    CHECK(memcmp(da, db, 32) == 0);
    CHECK(a.ts_min == b.ts_min && a.ts_max == b.ts_max);
}

int main(void)
{
    struct eng_hasher *h = NULL;
    struct ws_window_result res;
    uint8_t d[32];
    uint64_t bytes;

    CHECK_OK(eng_hasher_new(&h, errbuf, sizeof errbuf));
    if (!h)
        return check_report("test_engine_hasher");
    same_window(h, 1);
    same_window(h, 1000);
    same_window(h, 60000); /* many chunks, and records bigger than a chunk (i % 5000 == 17) */
    /* an error on the hasher thread reaches the caller, at the latest from finish */
    errbuf[0] = '\0';
    CHECK(window(h, 30000, true, true, &res, d, &bytes) == WS_ERR_INVALID);
    CHECK(strstr(errbuf, "outside the declared range") != NULL);
    CHECK(strlen(errbuf) > 0);
    /* and the next window is clean */
    same_window(h, 20000);
    /* the output refusing on the compressor thread, mid-window: the window fails with it */
    errbuf[0] = '\0';
    g_fail_after = 1u << 20;
    CHECK(window(h, 30000, false, true, &res, d, &bytes) == WS_ERR_NOSPACE);
    CHECK(strstr(errbuf, "window stream output failed") != NULL);
    g_fail_after = UINT64_MAX;
    same_window(h, 20000);
    /* no output at all: the same digests, nothing written */
    {
        struct ws_window_result a, b;
        uint8_t da[32];
        uint64_t ba = 0;
        CHECK_OK(window(NULL, 20000, false, true, &a, da, &ba));
        CHECK_OK(window(h, 20000, false, false, &b, d, &bytes));
        CHECK(memcmp(a.root, b.root, 32) == 0 && memcmp(a.stream_digest, b.stream_digest, 32) == 0);
    }
    eng_hasher_destroy(h);
    return check_report("test_engine_hasher");
}
