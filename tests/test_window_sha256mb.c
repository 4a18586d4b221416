/*
 * test_window_sha256mb.c — the multi-buffer SHA-256 (window/sha256_mb.c) against ws_sha256.
 *
 * The reference is ws_sha256 (OpenSSL) of the message with its prefix byte concatenated by hand.
 * Covered: FIPS 180-2 vectors; every length 0..300 with and without a prefix (all padding cases,
 * one to six blocks, unaligned data); runs of 16 alike jobs at every length and prefix (the
 * AVX-512 uniform batches), followed by mixed ones; many random batches of random lengths and
 * job counts (every lane count, lanes ending at different steps); block jobs for a streaming digest riding
 * along with message jobs, checked through ws_sha256_state_final against a one-shot digest; all
 * of it on every engine the CPU has (one lane, SHA-NI x3, AVX-512 x16), on the default
 * ws_sha256_mb_run, and again with the lanes switched off (the OpenSSL fallback). The program
 * names the engines it tested; an engine the CPU lacks is skipped and said so.
 *
 * The window accumulator's multi-lane mode (window/accum.c: leaves in groups, subtrees climbing
 * in a pipeline, the stream digest as a lane, batch compaction) is checked against references
 * built here from flat SHA-256: the stream digest over the frames the window wrote out, and the
 * RFC 6962 root by ws_merkle_add_leaf per encoding; windows of random sizes (0..2500 records,
 * so every group alignment and the end-of-window drain happen) with small values and occasional
 * 20-70 KiB ones (which force the batch buffer to compact, sync and grow), on every engine
 * (ws_window_lanes_force: group sizes 8 and 64), with the measured choice, and with lanes off.
 * Last, the lane calibration: the chosen engine is supported and the fastest it measured.
 */
#include "window/window.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned long checks, failures;

#define CHECK(e)                                                                                   \
    do {                                                                                           \
        checks++;                                                                                  \
        if (!(e)) {                                                                                \
            failures++;                                                                            \
            if (failures < 50)                                                                     \
                fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #e);              \
        }                                                                                          \
    } while (0)

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

/* Engine of the pass: WS_LANES_AUTO means ws_sha256_mb_run's own choice. */
static enum ws_sha256_lanes engine = WS_LANES_AUTO;

static void run(struct ws_sha256_job *j, size_t n)
{
    if (engine == WS_LANES_AUTO)
        ws_sha256_mb_run(j, n);
    else
        ws_sha256_mb_run_on(engine, j, n);
}

static void ref(int prefix, const uint8_t *data, size_t len, uint8_t out[WS_HASH_LEN])
{
    uint8_t *buf = malloc(len + 1);
    size_t n = 0;

    if (prefix >= 0)
        buf[n++] = (uint8_t)prefix;
    memcpy(buf + n, data, len);
    ws_sha256(buf, len + n, out);
    free(buf);
}

static void fips_vectors(void)
{
    static const struct {
        const char *msg, *hex;
    } v[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
    };
    struct ws_sha256_job j[3];
    uint8_t out[3][WS_HASH_LEN];
    char hex[WS_HASH_HEX_LEN + 1];

    for (int i = 0; i < 3; i++)
        j[i] =
            (struct ws_sha256_job){(const uint8_t *)v[i].msg, strlen(v[i].msg), -1, out[i], NULL};
    run(j, 3);
    for (int i = 0; i < 3; i++) {
        ws_hex_encode(out[i], WS_HASH_LEN, hex);
        CHECK(strcmp(hex, v[i].hex) == 0);
    }
}

/* Every length 0..300, four prefixes' worth, in batches of 7 (lanes end at different steps). */
static void all_lengths(void)
{
    static uint8_t data[301 + 16];
    struct ws_sha256_job j[7];
    uint8_t out[7][WS_HASH_LEN], want[WS_HASH_LEN];

    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)rnd();
    for (int prefix = -1; prefix <= 1; prefix++) {
        for (size_t len = 0; len <= 300;) {
            size_t n = 0;
            for (; n < 7 && len <= 300; n++, len++) /* odd offsets: unaligned data */
                j[n] = (struct ws_sha256_job){data + (len % 5), len, prefix, out[n], NULL};
            run(j, n);
            for (size_t k = 0; k < n; k++) {
                ref(prefix, j[k].data, j[k].len, want);
                CHECK(memcmp(out[k], want, WS_HASH_LEN) == 0);
            }
        }
    }
}

/*
 * Runs of 16 alike jobs (same prefix, same length: AVX-512's uniform batches) for every length
 * 0..300 and prefix, 16 + 16 + 5 of them so a uniform run is followed by a mixed tail.
 */
static void uniform_batches(void)
{
    enum { NJ = 37 };
    static uint8_t data[NJ][301 + 8];
    struct ws_sha256_job j[NJ];
    uint8_t out[NJ][WS_HASH_LEN], want[WS_HASH_LEN];

    for (size_t k = 0; k < NJ; k++)
        for (size_t i = 0; i < sizeof(data[k]); i++)
            data[k][i] = (uint8_t)rnd();
    for (int prefix = -1; prefix <= 1; prefix++) {
        for (size_t len = 0; len <= 300; len++) {
            for (size_t k = 0; k < NJ; k++) /* the tail: other lengths */
                j[k] = (struct ws_sha256_job){data[k] + (k % 7), k < 32 ? len : (len + k) % 301,
                                              prefix, out[k], NULL};
            run(j, NJ);
            for (size_t k = 0; k < NJ; k++) {
                ref(prefix, j[k].data, j[k].len, want);
                CHECK(memcmp(out[k], want, WS_HASH_LEN) == 0);
            }
        }
    }
}

/* Random batches: 0..40 jobs of random lengths 0..300, random prefixes. */
static void random_batches(int rounds)
{
    enum { MAXJ = 40 };
    static uint8_t data[MAXJ][300];
    struct ws_sha256_job j[MAXJ];
    uint8_t out[MAXJ][WS_HASH_LEN], want[WS_HASH_LEN];

    for (int r = 0; r < rounds; r++) {
        size_t n = rnd() % (MAXJ + 1);
        for (size_t k = 0; k < n; k++) {
            size_t len = rnd() % 301;
            for (size_t i = 0; i < len; i++)
                data[k][i] = (uint8_t)rnd();
            j[k] = (struct ws_sha256_job){data[k], len, (int)(rnd() % 3) - 1, out[k], NULL};
        }
        run(j, n);
        for (size_t k = 0; k < n; k++) {
            ref(j[k].prefix, j[k].data, j[k].len, want);
            CHECK(memcmp(out[k], want, WS_HASH_LEN) == 0);
        }
    }
}

/*
 * Every length 0..300 and prefix with each message in a heap block of exactly its length (one
 * byte for an empty one), three at a time: the lanes load 16 bytes at once, and in the
 * sanitizer build (WS_SANITIZE) a load past the end of the message or before it fails here,
 * where the slack of the static buffers above hides it.
 */
static void tight_buffers(void)
{
    struct ws_sha256_job j[3];
    uint8_t *msg[3], out[3][WS_HASH_LEN], want[WS_HASH_LEN];

    for (int prefix = -1; prefix <= 1; prefix++) {
        for (size_t len = 0; len <= 300; len++) {
            for (size_t k = 0; k < 3; k++) {
                size_t l = k == 1 ? (len * 7 + 3) % 301 : len; /* a mixed length beside */

                msg[k] = malloc(l ? l : 1);
                CHECK(msg[k] != NULL);
                if (!msg[k]) {
                    while (k-- > 0)
                        free(msg[k]);
                    return;
                }
                for (size_t i = 0; i < l; i++)
                    msg[k][i] = (uint8_t)rnd();
                j[k] = (struct ws_sha256_job){msg[k], l, prefix, out[k], NULL};
            }
            run(j, 3);
            for (size_t k = 0; k < 3; k++) {
                ref(prefix, j[k].data, j[k].len, want);
                CHECK(memcmp(out[k], want, WS_HASH_LEN) == 0);
                free(msg[k]);
            }
        }
    }
}

/*
 * A stream of random length fed in random chunks as block jobs next to message jobs, tail kept
 * between chunks like the window accumulator does; the final digest must equal the one-shot.
 */
static void streaming(int rounds)
{
    static uint8_t s[20000];
    uint8_t got[WS_HASH_LEN], want[WS_HASH_LEN], out[6][WS_HASH_LEN];
    uint8_t msg[6][200];

    for (int r = 0; r < rounds; r++) {
        size_t len = rnd() % sizeof(s), done = 0, avail = 0;
        uint32_t st[8];
        for (size_t i = 0; i < len; i++)
            s[i] = (uint8_t)rnd();
        ws_sha256_state_init(st);
        while (avail < len) {
            struct ws_sha256_job j[7];
            size_t n = 0, nm = rnd() % 7;
            avail += rnd() % 700;
            if (avail > len)
                avail = len;
            for (size_t k = 0; k < nm; k++) {
                size_t ml = rnd() % 200;
                for (size_t i = 0; i < ml; i++)
                    msg[k][i] = (uint8_t)rnd();
                j[n++] = (struct ws_sha256_job){msg[k], ml, 0x00, out[k], NULL};
            }
            /* the stream's lane anywhere among the messages */
            size_t at = n ? rnd() % (n + 1) : 0;
            memmove(&j[at + 1], &j[at], (n - at) * sizeof(j[0]));
            j[at] = (struct ws_sha256_job){s + done, (avail - done) / 64 * 64, -1, NULL, st};
            n++;
            run(j, n);
            done += (avail - done) / 64 * 64;
            for (size_t k = 0, m = 0; k < n; k++) {
                if (!j[k].out)
                    continue;
                ref(0x00, j[k].data, j[k].len, want);
                CHECK(memcmp(out[m], want, WS_HASH_LEN) == 0);
                m++;
            }
        }
        ws_sha256_state_final(st, s + done, len - done, len, got);
        ws_sha256(s, len, want);
        CHECK(memcmp(got, want, WS_HASH_LEN) == 0);
    }
}

struct sink {
    uint8_t *buf;
    size_t len, cap;
};

static ws_err_t sink_write(void *opaque, const void *buf, size_t len)
{
    struct sink *k = opaque;
    if (k->len + len > k->cap) {
        k->cap = (k->len + len) * 2;
        k->buf = realloc(k->buf, k->cap);
    }
    memcpy(k->buf + k->len, buf, len);
    k->len += len;
    return WS_OK;
}

static void windows(int rounds)
{
    static uint8_t val[70000 + 64];
    char eb[256];

    for (size_t i = 0; i < sizeof(val); i++)
        val[i] = (uint8_t)rnd();
    for (int r = 0; r < rounds; r++) {
        size_t n = rnd() % 2500, big_every = rnd() % 3 ? 0 : 1 + rnd() % 200;
        struct sink k = {0};
        struct ws_window *w = ws_window_new(sink_write, &k);
        struct ws_window_result res;
        struct ws_merkle m;
        uint8_t want_root[WS_HASH_LEN], want_digest[WS_HASH_LEN];
        bool ok = true;

        ws_merkle_init(&m);
        CHECK(ws_window_add_source(w, "t", 0, 0, (int64_t)n) == WS_OK);
        for (size_t i = 0; i < n && ok; i++) {
            /* every third window of one record size: leaves in AVX-512's uniform batches */
            size_t vl = big_every && i % big_every == 0 ? 20000 + rnd() % 50000
                        : r % 3 == 0                    ? 100
                                                        : rnd() % 300;
            struct ws_record rec = {.topic = "t",
                                    .topic_len = 1,
                                    .offset = (int64_t)i,
                                    .timestamp = -1,
                                    .key = NULL,
                                    .key_len = -1,
                                    .value = val + rnd() % 64,
                                    .value_len = (int32_t)vl};
            size_t before = k.len;
            ok = ws_window_add(w, &rec, eb, sizeof(eb)) == WS_OK;
            CHECK(ok);
            /* the frame just written out: u32 length || encoding */
            ws_merkle_add_leaf(&m, k.buf + before + 4, k.len - before - 4);
        }
        CHECK(ws_window_finish(w, &res) == WS_OK);
        ws_merkle_root(&m, want_root);
        ws_sha256(k.buf, k.len, want_digest);
        CHECK(res.leaf_count == n);
        CHECK(memcmp(res.root, want_root, WS_HASH_LEN) == 0);
        CHECK(memcmp(res.stream_digest, want_digest, WS_HASH_LEN) == 0);
        ws_window_destroy(w);
        free(k.buf);
    }
}

/* The calibration's choice is an engine this CPU runs, and the fastest it measured over both
 * record sizes (lowest score: time relative to one lane's, summed; one lane scores 2). */
static void lanes_choice(void)
{
    struct ws_window_lanes_info in;
    char line[256];

    ws_window_lanes(&in);
    CHECK(ws_sha256_lanes_supported(in.chosen));
    CHECK(in.measured == ws_sha256_mb_available());
    for (int e = 0; e < WS_LANES_COUNT; e++) {
        bool ran = in.measured && ws_sha256_lanes_supported(e);
        CHECK((in.rate[e] > 0) == ran);
        CHECK((in.rate_1k[e] > 0) == ran);
        CHECK((in.score[e] > 0) == ran);
        CHECK(!ran || in.score[e] >= in.score[in.chosen]);
    }
    CHECK(ws_window_lanes_describe(line, sizeof(line)) == in.chosen);
    CHECK(strstr(line, ws_sha256_lanes_name(in.chosen)) != NULL);
    if (in.measured)
        CHECK(in.score[WS_LANES_ONE] > 1.999 && in.score[WS_LANES_ONE] < 2.001);
    printf("%s\n", line);
    /* an override wins, an unsupported one falls back to one lane, AUTO restores */
    CHECK(ws_window_lanes_force(WS_LANES_ONE) == WS_LANES_AUTO);
    ws_window_lanes(&in);
    CHECK(in.chosen == WS_LANES_ONE && !in.measured);
    ws_window_lanes_force(WS_LANES_AVX512);
    ws_window_lanes(&in);
    CHECK(in.chosen ==
          (ws_sha256_lanes_supported(WS_LANES_AVX512) ? WS_LANES_AVX512 : WS_LANES_ONE));
    CHECK(ws_window_lanes_force(WS_LANES_AUTO) == WS_LANES_AVX512);
}

int main(void)
{
    /* SHA-NI twice: its blocks assembled by masked loads (where the CPU has AVX-512VL), then
     * by SSE loads and stores as on CPUs without */
    static const enum ws_sha256_lanes passes[] = {WS_LANES_ONE,    WS_LANES_SHANI, WS_LANES_SHANI,
                                                  WS_LANES_AVX512, WS_LANES_AUTO,  WS_LANES_AUTO};
    char tested[160] = "";

    for (size_t pass = 0; pass < sizeof(passes) / sizeof(passes[0]); pass++) {
        bool off = pass == sizeof(passes) / sizeof(passes[0]) - 1;
        bool vec = ws_sha256_mb_ni_vector(pass != 2);
        engine = passes[pass];
        if (pass == 2 && !vec) {
            printf("test_window_sha256mb: SHA-NI with masked-load blocks not on this CPU: the "
                   "SSE-assembled pass ran already\n");
            continue;
        }
        /* the last pass: lanes switched off, so every path is the OpenSSL fallback */
        ws_sha256_mb_enable(!off);
        CHECK(!ws_sha256_mb_available() || !off);
        if (engine != WS_LANES_AUTO && !ws_sha256_lanes_supported(engine)) {
            printf("test_window_sha256mb: %s not on this CPU, skipped\n",
                   ws_sha256_lanes_name(engine));
            continue;
        }
        if (engine != WS_LANES_AUTO)
            snprintf(tested + strlen(tested), sizeof(tested) - strlen(tested), "%s%s%s",
                     tested[0] ? ", " : "", ws_sha256_lanes_name(engine),
                     pass == 2 ? " (SSE-assembled blocks)" : "");
        ws_window_lanes_force(engine);
        fips_vectors();
        all_lengths();
        uniform_batches();
        random_batches(2000);
        tight_buffers();
        streaming(200);
        windows(40);
        ws_window_lanes_force(WS_LANES_AUTO);
    }
    ws_sha256_mb_enable(true);
    ws_sha256_mb_ni_vector(true);
    lanes_choice();
    if (failures) {
        fprintf(stderr, "test_window_sha256mb: %lu of %lu checks failed\n", failures, checks);
        return 1;
    }
    printf("test_window_sha256mb: %lu checks passed (engines: %s; default, measured choice and "
           "lanes off too)\n",
           checks, tested);
    return 0;
}
