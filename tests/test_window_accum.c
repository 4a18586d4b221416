/*
 * test_window_accum.c — the window accumulator (struct ws_window).
 *
 * The expected values are computed here independently of accum.c: the window stream is built by
 * concatenating `u32 length || encoding` and hashed flat; the root comes from a separate
 * ws_merkle fed the encodings; per-source counts, bytes and the timestamp range are tallied by
 * the test. Then order violations, out-of-range and undeclared records, a failing stream output
 * and re-feeding the evidence through ws_window_add_encoded are checked against the same values.
 * All of it runs once per hashing engine this CPU has (ws_window_lanes_force: one lane, SHA-NI,
 * AVX-512), then with the engine the start-up measurement chose: every path, the same values.
 */
#include "window/window.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

#define H WS_HASH_LEN

struct sink {
    uint8_t *buf;
    size_t len, cap;
    ws_err_t fail_with; /* returned instead of storing, when set */
    size_t calls;
};

static ws_err_t sink_write(void *opaque, const void *buf, size_t len)
{
    struct sink *s = opaque;

    s->calls++;
    if (s->fail_with)
        return s->fail_with;
    if (s->len + len > s->cap) {
        s->cap = (s->len + len) * 2;
        s->buf = realloc(s->buf, s->cap);
    }
    memcpy(s->buf + s->len, buf, len);
    s->len += len;
    return WS_OK;
}

static void sink_append(struct sink *s, const void *buf, size_t len)
{
    ws_err_t saved = s->fail_with;
    s->fail_with = WS_OK;
    sink_write(s, buf, len);
    s->fail_with = saved;
    s->calls--;
}

/* The sources of the main window, declared out of order on purpose. */
struct src {
    const char *topic;
    int32_t partition;
    int64_t from, until;
    uint64_t count, bytes; /* expected, tallied by the test */
};

static struct src sources[] = {
    {"orders", 1, 0, 100, 0, 0},
    {"orders", 0, 10, 20, 0, 0},
    {"\xc3\xbc"
     "bersicht",
     0, 0, 5, 0, 0},              /* UTF-8 lead byte 0xc3: after "zzz" */
    {"empty", 0, 5, 5, 0, 0},     /* an empty range */
    {"Orders", 7, 0, 1000, 0, 0}, /* upper case sorts first */
    {"orders", 10, 0, 50, 0, 0},  /* partition 10 after partition 1 */
    {"zzz", 3, 0, 10, 0, 0},      /* declared, no records */
};
#define NSRC (sizeof(sources) / sizeof(sources[0]))

/* Index order of sources sorted by (topic bytes, partition), written out by hand. */
static const size_t sorted[NSRC] = {4, 3, 1, 0, 5, 6, 2};

static int cmp_src(const char *ta, int32_t pa, const char *tb, int32_t pb)
{
    int c = strcmp(ta, tb); /* strcmp compares as unsigned char */
    if (c)
        return c;
    return pa < pb ? -1 : pa > pb;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

struct expect {
    struct sink stream; /* u32 len || enc, concatenated by the test */
    struct ws_merkle tree;
    uint64_t count, bytes;
    bool has_time;
    int64_t ts_min, ts_max;
};

/* Account for r in the expectation, the way FORMAT.md §3 and §4 define it. */
static void expect_add(struct expect *e, const struct ws_record *r)
{
    size_t len = ws_record_encoded_size(r);
    uint8_t *buf = malloc(len + 4);

    put32(buf, (uint32_t)len);
    CHECK(ws_record_encode(r, buf + 4, len) == len);
    sink_append(&e->stream, buf, len + 4);
    ws_merkle_add_leaf(&e->tree, buf + 4, len);
    e->count++;
    e->bytes += len;
    if (r->timestamp >= 0) {
        if (!e->has_time || r->timestamp < e->ts_min)
            e->ts_min = r->timestamp;
        if (!e->has_time || r->timestamp > e->ts_max)
            e->ts_max = r->timestamp;
        e->has_time = true;
    }
    free(buf);
}

static void check_result(const struct ws_window_result *res, struct expect *e)
{
    uint8_t want[H];

    ws_sha256(e->stream.buf, e->stream.len, want);
    CHECK(memcmp(res->stream_digest, want, H) == 0);
    ws_merkle_root(&e->tree, want);
    CHECK(memcmp(res->root, want, H) == 0);
    CHECK(res->leaf_count == e->count);
    CHECK(res->bytes == e->bytes);
    CHECK(res->has_time == e->has_time);
    if (e->has_time)
        CHECK(res->ts_min == e->ts_min && res->ts_max == e->ts_max);
}

static void check_sources(const struct ws_window_result *res)
{
    CHECK(res->nsources == NSRC);
    if (res->nsources != NSRC)
        return;
    for (size_t i = 0; i < NSRC; i++) {
        const struct ws_window_source *g = &res->sources[i];
        const struct src *s = &sources[sorted[i]];
        CHECK(strcmp(g->topic, s->topic) == 0 && g->partition == s->partition);
        CHECK(g->from_offset == s->from && g->until_offset == s->until);
        CHECK(g->record_count == s->count && g->bytes == s->bytes);
        if (i > 0)
            CHECK(cmp_src(res->sources[i - 1].topic, res->sources[i - 1].partition, g->topic,
                          g->partition) < 0);
    }
}

static bool has(const char *errbuf, const char *word)
{
    return strstr(errbuf, word) != NULL;
}

static void test_sources(void)
{
    struct ws_window *w = ws_window_new(NULL, NULL);
    char eb[256];

    CHECK(w != NULL);
    CHECK(ws_window_add_source(w, "t", 0, 0, 10) == WS_OK);
    CHECK(ws_window_add_source(w, "t", 0, 0, 10) == WS_ERR_INVALID); /* duplicate */
    CHECK(ws_window_add_source(w, "t", 0, 5, 6) == WS_ERR_INVALID);  /* duplicate, other range */
    CHECK(ws_window_add_source(w, "t", 1, 10, 9) == WS_ERR_INVALID); /* from > until */
    CHECK(ws_window_add_source(w, "t", 2, -1, 9) == WS_ERR_INVALID); /* negative from */
    CHECK(ws_window_add_source(w, "t", 3, 0, -1) == WS_ERR_INVALID); /* negative until */
    CHECK(ws_window_add_source(w, "t", -1, 0, 1) == WS_ERR_INVALID); /* negative partition */
    CHECK(ws_window_add_source(w, "", 0, 0, 1) == WS_ERR_INVALID);   /* empty topic */
    CHECK(ws_window_add_source(w, NULL, 0, 0, 1) == WS_ERR_INVALID);
    CHECK(ws_window_add_source(w, "t", 4, 7, 7) == WS_OK); /* empty range is fine */
    CHECK(ws_window_add_source(w, "t\xff", 0, 0, 1) == WS_OK);

    struct ws_record r = {
        .topic = "t", .topic_len = 1, .offset = 3, .timestamp = -1, .key_len = -1, .value_len = -1};
    CHECK(ws_window_add(w, &r, eb, sizeof(eb)) == WS_OK);
    /* sources are fixed once records flow */
    CHECK(ws_window_add_source(w, "u", 0, 0, 1) == WS_ERR_INVALID);

    struct ws_window_result res;
    CHECK(ws_window_finish(w, &res) == WS_OK);
    CHECK(res.nsources == 3 && res.leaf_count == 1);
    if (res.nsources == 3) {
        CHECK(res.sources[0].partition == 0 && res.sources[0].record_count == 1);
        CHECK(res.sources[1].partition == 4 && res.sources[1].record_count == 0);
        CHECK(strcmp(res.sources[2].topic, "t\xff") == 0);
    }
    /* finished: no more records, finish again gives the same answer */
    r.offset = 4;
    CHECK(ws_window_add(w, &r, eb, sizeof(eb)) == WS_ERR_INVALID);
    struct ws_window_result res2;
    CHECK(ws_window_finish(w, &res2) == WS_OK);
    CHECK(memcmp(res.stream_digest, res2.stream_digest, H) == 0 &&
          memcmp(res.root, res2.root, H) == 0);
    ws_window_destroy(w);
}

static void test_empty(void)
{
    struct ws_window *w = ws_window_new(NULL, NULL);
    struct ws_window_result res;
    uint8_t empty[H];

    CHECK(ws_window_add_source(w, "t", 0, 0, 100) == WS_OK);
    CHECK(ws_window_finish(w, &res) == WS_OK);
    /* SHA-256(""), the well-known constant */
    CHECK(ws_hex_decode("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", 64,
                        empty, H) == WS_OK);
    CHECK(memcmp(res.root, empty, H) == 0);
    CHECK(memcmp(res.stream_digest, empty, H) == 0);
    CHECK(res.leaf_count == 0 && res.bytes == 0 && !res.has_time);
    CHECK(res.nsources == 1 && res.sources[0].record_count == 0);
    ws_window_destroy(w);

    /* no sources at all */
    w = ws_window_new(NULL, NULL);
    CHECK(ws_window_finish(w, &res) == WS_OK);
    CHECK(memcmp(res.root, empty, H) == 0 && res.nsources == 0);
    ws_window_destroy(w);
    ws_window_destroy(NULL);
}

/* Deterministic pseudo-random numbers for record contents. */
static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Try r in every wrong way that must be refused, then add it for real. */
static void add_and_probe(struct ws_window *w, struct expect *e, const struct ws_record *r,
                          const struct src *s, bool have_prev, int64_t prev_off)
{
    char eb[256], where[128];
    struct ws_record bad;

    snprintf(where, sizeof(where), "/%d@", (int)r->partition);
    if (have_prev && r->offset - 1 >= s->from && prev_off == r->offset - 1) {
        /* the same offset again, as the previous record of this source */
        bad = *r;
        bad.offset = prev_off;
        eb[0] = '\0';
        CHECK(ws_window_add(w, &bad, eb, sizeof(eb)) == WS_ERR_ORDER);
        CHECK(has(eb, s->topic) && has(eb, where));
    }
    bad = *r;
    bad.offset = s->from - 1;
    eb[0] = '\0';
    ws_err_t err = ws_window_add(w, &bad, eb, sizeof(eb));
    CHECK(err == (have_prev && prev_off >= s->from - 1 ? WS_ERR_ORDER : WS_ERR_INVALID));
    CHECK(has(eb, s->topic));
    bad = *r;
    bad.offset = s->until;
    eb[0] = '\0';
    CHECK(ws_window_add(w, &bad, eb, sizeof(eb)) == WS_ERR_INVALID);
    CHECK(has(eb, "outside") && has(eb, s->topic));
    /* a partition nobody declared (between declared ones sorts after the cursor) */
    bad = *r;
    bad.partition = 5;
    eb[0] = '\0';
    if (cmp_src(s->topic, s->partition, s->topic, 5) < 0) {
        CHECK(ws_window_add(w, &bad, eb, sizeof(eb)) == WS_ERR_INVALID);
        CHECK(has(eb, "no declared source") && has(eb, "/5@"));
    }
    /* an invalid record struct */
    bad = *r;
    bad.ts_type = 9;
    CHECK(ws_window_add(w, &bad, eb, sizeof(eb)) == WS_ERR_INVALID);

    eb[0] = '\0';
    CHECK(ws_window_add(w, r, eb, sizeof(eb)) == WS_OK);
    if (eb[0])
        fprintf(stderr, "  add: %s\n", eb);
    expect_add(e, r);
}

static void test_window(void)
{
    struct sink out = {0};
    struct expect e = {0};
    struct ws_window *w = ws_window_new(sink_write, &out);
    struct ws_window_result res;
    uint8_t valbuf[300], keybuf[16];
    char eb[256];
    int64_t prev_off = 0;

    ws_merkle_init(&e.tree);
    for (size_t i = 0; i < NSRC; i++)
        CHECK(ws_window_add_source(w, sources[i].topic, sources[i].partition, sources[i].from,
                                   sources[i].until) == WS_OK);

    for (size_t k = 0; k < NSRC; k++) {
        struct src *s = &sources[sorted[k]];
        bool have_prev = false;
        if (sorted[k] == 6)
            continue; /* zzz/3: declared, stays empty */
        for (int64_t off = s->from; off < s->until; off++) {
            /* offsets missing inside a range, as after compaction */
            if (next() % 3 == 0 && off != s->from)
                continue;
            size_t vlen = next() % sizeof(valbuf);
            for (size_t j = 0; j < vlen; j++)
                valbuf[j] = (uint8_t)next();
            int klen = (int)(next() % 20) - 4; /* some null keys */
            if (klen > 16)
                klen = 16;
            for (int j = 0; j < klen; j++)
                keybuf[j] = (uint8_t)('a' + j);
            struct ws_header hdrs[2] = {{"trace-id", 8, valbuf, (int32_t)(vlen % 17)},
                                        {"n", 1, NULL, -1}};
            struct ws_record r = {
                .topic = s->topic,
                .topic_len = (uint16_t)strlen(s->topic),
                .partition = s->partition,
                .offset = off,
                .timestamp = next() % 5 == 0 ? -1 : 1700000000000 + (int64_t)(next() % 100000),
                .ts_type = (uint8_t)(next() % 3),
                .key = klen >= 0 ? keybuf : NULL,
                .key_len = klen >= 0 ? klen : -1,
                .value = vlen ? valbuf : NULL,
                .value_len = vlen ? (int32_t)vlen : -1,
                .headers = hdrs,
                .header_count = (uint32_t)(next() % 3)};
            if (r.timestamp < 0)
                r.ts_type = 0;
            if (k == 2 && off == s->from) {
                /* the stream output can fail: its error comes back and nothing is counted */
                out.fail_with = WS_ERR_NOSPACE;
                CHECK(ws_window_add(w, &r, eb, sizeof(eb)) == WS_ERR_NOSPACE);
                out.fail_with = WS_OK;
            }
            add_and_probe(w, &e, &r, s, have_prev, prev_off);
            s->count++;
            s->bytes += ws_record_encoded_size(&r);
            have_prev = true;
            prev_off = off;
        }
        /* a record of an earlier source after this one's: out of order, named in the error */
        if (k > 0 && sources[sorted[k - 1]].until > sources[sorted[k - 1]].from) {
            const struct src *p = &sources[sorted[k - 1]];
            struct ws_record r = {.topic = p->topic,
                                  .topic_len = (uint16_t)strlen(p->topic),
                                  .partition = p->partition,
                                  .offset = p->from,
                                  .timestamp = -1,
                                  .key_len = -1,
                                  .value_len = -1};
            eb[0] = '\0';
            CHECK(ws_window_add(w, &r, eb, sizeof(eb)) == WS_ERR_ORDER);
            CHECK(has(eb, p->topic) && has(eb, "not after"));
        }
    }

    CHECK(ws_window_finish(w, &res) == WS_OK);
    check_result(&res, &e);
    check_sources(&res);
    CHECK(e.count > 50);
    /* the stream output saw exactly the window stream, one call per record */
    CHECK(out.len == e.stream.len && memcmp(out.buf, e.stream.buf, out.len) == 0);
    CHECK(out.calls == e.count + 1); /* + the one that failed */

    /* Re-feed the evidence: the frames of the stream through ws_window_add_encoded. */
    struct ws_window *v = ws_window_new(NULL, NULL);
    struct ws_window_result vres;
    for (size_t i = 0; i < NSRC; i++)
        CHECK(ws_window_add_source(v, sources[i].topic, sources[i].partition, sources[i].from,
                                   sources[i].until) == WS_OK);
    size_t pos = 0, n = 0;
    while (pos + 4 <= out.len) {
        size_t len = (size_t)out.buf[pos] << 24 | (size_t)out.buf[pos + 1] << 16 |
                     (size_t)out.buf[pos + 2] << 8 | out.buf[pos + 3];
        const uint8_t *enc = out.buf + pos + 4;
        if (n == 3) {
            /* a damaged encoding is refused with the decoder's reason, and changes nothing */
            eb[0] = '\0';
            CHECK(ws_window_add_encoded(v, enc, len - 1, eb, sizeof(eb)) != WS_OK);
            CHECK(eb[0] != '\0');
            uint8_t *copy = malloc(len);
            memcpy(copy, enc, len);
            copy[0] = 0x02;
            CHECK(ws_window_add_encoded(v, copy, len, eb, sizeof(eb)) == WS_ERR_MALFORMED);
            free(copy);
        }
        eb[0] = '\0';
        CHECK(ws_window_add_encoded(v, enc, len, eb, sizeof(eb)) == WS_OK);
        if (n == 0)
            CHECK(ws_window_add_encoded(v, enc, len, eb, sizeof(eb)) == WS_ERR_ORDER);
        pos += 4 + len;
        n++;
    }
    CHECK(pos == out.len && n == e.count);
    CHECK(ws_window_finish(v, &vres) == WS_OK);
    check_result(&vres, &e);
    check_sources(&vres);
    ws_window_destroy(v);

    /* add_encoded with a stream output hands over the same frames */
    struct sink out2 = {0};
    v = ws_window_new(sink_write, &out2);
    for (size_t i = 0; i < NSRC; i++)
        CHECK(ws_window_add_source(v, sources[i].topic, sources[i].partition, sources[i].from,
                                   sources[i].until) == WS_OK);
    for (pos = 0; pos + 4 <= out.len;) {
        size_t len = (size_t)out.buf[pos] << 24 | (size_t)out.buf[pos + 1] << 16 |
                     (size_t)out.buf[pos + 2] << 8 | out.buf[pos + 3];
        CHECK(ws_window_add_encoded(v, out.buf + pos + 4, len, eb, sizeof(eb)) == WS_OK);
        pos += 4 + len;
    }
    CHECK(out2.len == out.len && memcmp(out2.buf, out.buf, out.len) == 0);
    CHECK(ws_window_finish(v, &vres) == WS_OK);
    check_result(&vres, &e);
    ws_window_destroy(v);
    free(out2.buf);

    ws_window_destroy(w);
    free(out.buf);
    free(e.stream.buf);
}

/* Many sources, declared in reverse: the cursor walks them, counts land in the right place. */
static void test_many_sources(void)
{
    enum { NT = 40, NP = 100 };
    struct ws_window *w = ws_window_new(NULL, NULL);
    struct ws_window_result res;
    struct expect e = {0};
    char topics[NT][16], eb[256];

    ws_merkle_init(&e.tree);
    for (int t = 0; t < NT; t++)
        snprintf(topics[t], sizeof(topics[t]), "topic-%03d", t);
    for (int t = NT - 1; t >= 0; t--)
        for (int p = NP - 1; p >= 0; p--)
            CHECK(ws_window_add_source(w, topics[t], p, p, p + 3) == WS_OK);
    for (int t = 0; t < NT; t++) {
        for (int p = 0; p < NP; p++) {
            if ((t + p) % 7 == 0)
                continue; /* some sources without records */
            for (int64_t o = p; o < p + 3; o += 1 + (p % 2)) {
                struct ws_record r = {.topic = topics[t],
                                      .topic_len = 9,
                                      .partition = p,
                                      .offset = o,
                                      .timestamp = o,
                                      .ts_type = 1,
                                      .key_len = -1,
                                      .value = "v",
                                      .value_len = 1};
                CHECK(ws_window_add(w, &r, eb, sizeof(eb)) == WS_OK);
                expect_add(&e, &r);
            }
        }
    }
    CHECK(ws_window_finish(w, &res) == WS_OK);
    check_result(&res, &e);
    CHECK(res.nsources == (size_t)NT * NP);
    for (size_t i = 0; i < res.nsources; i++) {
        int t = (int)(i / NP), p = (int)(i % NP);
        uint64_t want = (t + p) % 7 == 0 ? 0 : (p % 2 ? 2 : 3);
        CHECK(strcmp(res.sources[i].topic, topics[t]) == 0 && res.sources[i].partition == p);
        CHECK(res.sources[i].record_count == want);
    }
    CHECK(res.has_time && res.ts_min == 0 && res.ts_max == NP + 1);
    ws_window_destroy(w);
    free(e.stream.buf);
}

/* Records larger than the batch buffer, between small ones: the buffer grows, the digest and
 * the tree still see exactly the window stream. */
static void test_big_records(void)
{
    static const size_t sizes[] = {10, 40000, 5, 1 << 20, 16000, 16384, 3};
    struct sink out = {0};
    struct expect e = {0};
    struct ws_window *w = ws_window_new(sink_write, &out);
    struct ws_window_result res;
    uint8_t *val = malloc(1 << 20);
    char eb[256];

    for (size_t i = 0; i < (1 << 20); i++)
        val[i] = (uint8_t)(i ^ (i >> 8));
    ws_merkle_init(&e.tree);
    CHECK(ws_window_add_source(w, "big", 0, 0, 100) == WS_OK);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        struct ws_record r = {.topic = "big",
                              .topic_len = 3,
                              .offset = (int64_t)i,
                              .timestamp = -1,
                              .key_len = -1,
                              .value = val,
                              .value_len = (int32_t)sizes[i]};
        CHECK(ws_window_add(w, &r, eb, sizeof(eb)) == WS_OK);
        expect_add(&e, &r);
    }
    CHECK(ws_window_finish(w, &res) == WS_OK);
    check_result(&res, &e);
    CHECK(!res.has_time && res.sources[0].record_count == 7);
    CHECK(out.len == e.stream.len && memcmp(out.buf, e.stream.buf, out.len) == 0);
    ws_window_destroy(w);
    free(out.buf);
    free(e.stream.buf);
    free(val);
}

int main(void)
{
    /* SHA-NI twice: masked-load block assembly (where the CPU has AVX-512VL), then byte-wise */
    static const enum ws_sha256_lanes engines[] = {WS_LANES_ONE, WS_LANES_SHANI, WS_LANES_SHANI,
                                                   WS_LANES_AVX512, WS_LANES_AUTO};

    for (size_t i = 0; i < sizeof(engines) / sizeof(engines[0]); i++) {
        if (!ws_sha256_mb_ni_vector(i != 2) && i == 2)
            continue; /* no masked-load assembly here: pass 1 was byte-wise already */
        if (engines[i] != WS_LANES_AUTO && !ws_sha256_lanes_supported(engines[i])) {
            printf("test_window_accum: %s not on this CPU, skipped\n",
                   ws_sha256_lanes_name(engines[i]));
            continue;
        }
        ws_window_lanes_force(engines[i]);
        for (size_t k = 0; k < NSRC; k++) /* tallies are per pass; the records are the same */
            sources[k].count = sources[k].bytes = 0;
        rng = 0x9e3779b97f4a7c15ull;
        test_sources();
        test_empty();
        test_window();
        test_many_sources();
        test_big_records();
    }
    ws_window_lanes_force(WS_LANES_AUTO);
    ws_sha256_mb_ni_vector(true);
    if (failures) {
        fprintf(stderr, "test_window_accum: %lu of %lu checks FAILED\n", failures, checks);
        return 1;
    }
    printf("test_window_accum: %lu checks passed\n", checks);
    return 0;
}
