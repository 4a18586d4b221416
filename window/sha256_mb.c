/*
 * sha256_mb.c — multi-buffer SHA-256: many independent messages hashed at once.
 *
 * Why: a window hashes one leaf per record (SHA-256(0x00 || encoding), 3 blocks at 100-byte
 * values), a node per record amortised, and its stream digest. One SHA-256 is a chain of 64
 * dependent rounds, and with SHA-NI a single stream is bound by the latency of SHA256RNDS2, not
 * its throughput: the execution units sit mostly idle. Interleaving the rounds of four
 * independent messages (four "lanes") fills them, so four blocks cost little more than one.
 *
 * Shape: a job is either a whole message (optionally preceded by one prefix byte, the RFC 6962
 * domain separator, so leaves and nodes need no concatenation copy) or a run of full 64-byte
 * blocks advancing a caller-held state (a streaming digest riding along as one more lane).
 * ws_sha256_mb_run() keeps four lanes busy: each lane takes the next job when its own ends, and
 * each step compresses one block in every busy lane (x4, x2 or x1 code, whichever fits, so an
 * idle lane costs nothing). Blocks that are plain message bytes are read in place; the first,
 * last and prefixed blocks are assembled in a 64-byte lane buffer.
 *
 * Selection: SHA-NI needs the SHA and SSE4.1 CPUID bits (checked once, at first use). Without
 * them every job goes through OpenSSL one at a time (ws_sha256_* for messages, SHA256_Transform
 * for block jobs): same results, no speed-up. ws_sha256_mb_enable(false) forces that path, for
 * tests and for benches that compare the two.
 *
 * The round code follows the published SHA-NI sequence (Intel's 2013 white paper): state kept as
 * ABEF/CDGH, four rounds per SHA256RNDS2 pair, message schedule with SHA256MSG1/MSG2.
 */
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include "window/window.h"

#include <openssl/sha.h>
#include <stdatomic.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#define WS_MB_X86 1
#include <cpuid.h>
#include <immintrin.h>
#endif

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static const uint32_t IV[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                               0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

void ws_sha256_state_init(uint32_t state[8])
{
    memcpy(state, IV, sizeof(IV));
}

/* ------------------------------------------------------------------------------------------ */
/* Portable path: OpenSSL, one job at a time                                                    */

static void blocks_openssl(uint32_t state[8], const uint8_t *data, size_t nblocks)
{
    SHA256_CTX c;

    SHA256_Init(&c);
    memcpy(c.h, state, 8 * sizeof(uint32_t));
    for (size_t i = 0; i < nblocks; i++)
        SHA256_Transform(&c, data + 64 * i);
    memcpy(state, c.h, 8 * sizeof(uint32_t));
}

static void job_openssl(struct ws_sha256_job *j)
{
    struct ws_sha256 h;
    uint8_t p;

    if (!j->out) {
        blocks_openssl(j->state, j->data, j->len / 64);
        return;
    }
    ws_sha256_init(&h);
    if (j->prefix >= 0) {
        p = (uint8_t)j->prefix;
        ws_sha256_update(&h, &p, 1);
    }
    ws_sha256_update(&h, j->data, j->len);
    ws_sha256_final(&h, j->out);
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* ------------------------------------------------------------------------------------------ */
/* SHA-NI lanes                                                                                 */

#ifdef WS_MB_X86

#define TGT __attribute__((target("sha,sse4.1,ssse3")))

/*
 * Lanes in use. Measured on a 2-core Zen 5 VM (ns per block, 64-byte blocks): x1 33, x2 21.5,
 * x3 19, x4 20.5 (four lanes' message schedules no longer fit in 16 xmm registers and spill).
 * Three also balances the window's work: the stream digest (one chain, ~2.4 blocks a record)
 * in one lane against leaves and nodes (~5 blocks a record) in the other two.
 */
#ifndef LANES
#define LANES 3
#endif

struct lane_state {
    __m128i abef, cdgh;
};

/*
 * One block in each of N lanes, rounds interleaved lane by lane. N is a compile-time constant at
 * every call site, so the loops over lanes unroll and the compiler schedules the N independent
 * dependency chains side by side.
 */
static inline __attribute__((always_inline)) TGT void
compress_n(const int N, struct lane_state *const *st, const uint8_t *const *blk)
{
    const __m128i mask = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    __m128i s0[4], s1[4], m[4][4], msg[4], tmp[4];

#pragma GCC unroll 4
    for (int l = 0; l < N; l++) {
        s0[l] = st[l]->abef; /* the saved state stays in memory: registers are scarce */
        s1[l] = st[l]->cdgh;
    }
#pragma GCC unroll 16
    for (int g = 0; g < 16; g++) {
        const __m128i k = _mm_loadu_si128((const __m128i *)&K[4 * g]);
#pragma GCC unroll 4
        for (int l = 0; l < N; l++) {
            if (g < 4)
                m[l][g] =
                    _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(blk[l] + 16 * g)), mask);
            msg[l] = _mm_add_epi32(m[l][g & 3], k);
            s1[l] = _mm_sha256rnds2_epu32(s1[l], s0[l], msg[l]);
        }
        if (g >= 3 && g < 15)
#pragma GCC unroll 4
            for (int l = 0; l < N; l++) {
                tmp[l] = _mm_alignr_epi8(m[l][g & 3], m[l][(g + 3) & 3], 4);
                m[l][(g + 1) & 3] = _mm_add_epi32(m[l][(g + 1) & 3], tmp[l]);
                m[l][(g + 1) & 3] = _mm_sha256msg2_epu32(m[l][(g + 1) & 3], m[l][g & 3]);
            }
#pragma GCC unroll 4
        for (int l = 0; l < N; l++) {
            msg[l] = _mm_shuffle_epi32(msg[l], 0x0e);
            s0[l] = _mm_sha256rnds2_epu32(s0[l], s1[l], msg[l]);
        }
        if (g >= 1 && g < 13)
#pragma GCC unroll 4
            for (int l = 0; l < N; l++)
                m[l][(g + 3) & 3] = _mm_sha256msg1_epu32(m[l][(g + 3) & 3], m[l][g & 3]);
    }
#pragma GCC unroll 4
    for (int l = 0; l < N; l++) {
        st[l]->abef = _mm_add_epi32(s0[l], st[l]->abef);
        st[l]->cdgh = _mm_add_epi32(s1[l], st[l]->cdgh);
    }
}

static TGT __attribute__((noinline)) void compress_x1(struct lane_state *const *st,
                                                      const uint8_t *const *blk)
{
    compress_n(1, st, blk);
}

static TGT __attribute__((noinline)) void compress_x2(struct lane_state *const *st,
                                                      const uint8_t *const *blk)
{
    compress_n(2, st, blk);
}

static TGT __attribute__((noinline)) void compress_x3(struct lane_state *const *st,
                                                      const uint8_t *const *blk)
{
    compress_n(3, st, blk);
}

#if LANES == 4
static TGT __attribute__((noinline)) void compress_x4(struct lane_state *const *st,
                                                      const uint8_t *const *blk)
{
    compress_n(4, st, blk);
}
#endif

/* H0..H7 <-> ABEF/CDGH */
static TGT void state_load(struct lane_state *s, const uint32_t h[8])
{
    __m128i t = _mm_loadu_si128((const __m128i *)&h[0]);
    __m128i u = _mm_loadu_si128((const __m128i *)&h[4]);

    t = _mm_shuffle_epi32(t, 0xb1);        /* CDAB */
    u = _mm_shuffle_epi32(u, 0x1b);        /* EFGH */
    s->abef = _mm_alignr_epi8(t, u, 8);    /* ABEF */
    s->cdgh = _mm_blend_epi16(u, t, 0xf0); /* CDGH */
}

static TGT void state_store(const struct lane_state *s, uint32_t h[8])
{
    __m128i t = _mm_shuffle_epi32(s->abef, 0x1b); /* FEBA */
    __m128i u = _mm_shuffle_epi32(s->cdgh, 0xb1); /* DCHG */

    _mm_storeu_si128((__m128i *)&h[0], _mm_blend_epi16(t, u, 0xf0)); /* DCBA */
    _mm_storeu_si128((__m128i *)&h[4], _mm_alignr_epi8(u, t, 8));    /* HGFE */
}

struct lane {
    struct ws_sha256_job *job; /* NULL: idle */
    struct lane_state st;
    uint64_t total;   /* message bytes including the prefix */
    size_t plen;      /* 0 or 1 */
    size_t blk, nblk; /* next block, block count */
    _Alignas(16) uint8_t buf[64];
};

static void lane_start(struct lane *ln, struct ws_sha256_job *j)
{
    ln->job = j;
    ln->blk = 0;
    if (j->out) {
        ln->plen = j->prefix >= 0 ? 1 : 0;
        ln->total = (uint64_t)j->len + ln->plen;
        ln->nblk = (size_t)((ln->total + 9 + 63) / 64);
        state_load(&ln->st, IV);
    } else {
        ln->plen = 0;
        ln->nblk = j->len / 64;
        state_load(&ln->st, j->state);
    }
}

/* Block ln->blk of the lane's padded message: in place when it is plain data, else built. */
static const uint8_t *lane_block(struct lane *ln)
{
    const struct ws_sha256_job *j = ln->job;
    uint64_t v0 = (uint64_t)ln->blk * 64; /* first virtual byte: prefix || data || padding */
    size_t n = 0;

    if (!j->out)
        return j->data + v0;
    if (ln->plen == 0 && v0 + 64 <= j->len)
        return j->data + v0;
    if (v0 < ln->plen)
        ln->buf[n++] = (uint8_t)j->prefix;
    if (v0 + n < ln->total) {
        uint64_t from = v0 + n - ln->plen, avail = j->len - from;
        size_t take = avail < 64 - n ? (size_t)avail : 64 - n;
        memcpy(ln->buf + n, j->data + from, take);
        n += take;
    }
    if (n < 64) {
        if (v0 + n == ln->total)
            ln->buf[n++] = 0x80;
        memset(ln->buf + n, 0, 64 - n);
        if (ln->blk == ln->nblk - 1) {
            uint64_t bits = ln->total * 8;
            put_be32(ln->buf + 56, (uint32_t)(bits >> 32));
            put_be32(ln->buf + 60, (uint32_t)bits);
        }
    }
    return ln->buf;
}

static void lane_end(struct lane *ln)
{
    struct ws_sha256_job *j = ln->job;
    uint32_t h[8];

    state_store(&ln->st, h);
    if (j->out) {
        for (int i = 0; i < 8; i++)
            put_be32(j->out + 4 * i, h[i]);
    } else {
        memcpy(j->state, h, sizeof(h));
    }
    ln->job = NULL;
}

static void run_ni(struct ws_sha256_job *jobs, size_t n)
{
    struct lane lanes[LANES];
    size_t next = 0;

    for (int l = 0; l < LANES; l++)
        lanes[l].job = NULL;
    for (;;) {
        struct lane_state *st[LANES];
        const uint8_t *blk[LANES];
        int busy = 0;

        for (int l = 0; l < LANES; l++) {
            struct lane *ln = &lanes[l];
            while (!ln->job && next < n) {
                lane_start(ln, &jobs[next++]);
                if (ln->nblk == 0) /* an empty block job */
                    lane_end(ln);
            }
            if (ln->job) {
                st[busy] = &ln->st;
                blk[busy++] = lane_block(ln);
            }
        }
        if (busy == 0)
            return;
        if (busy == 1) {
            compress_x1(st, blk);
        } else if (busy == 2) {
            compress_x2(st, blk);
        } else if (busy == 3) {
            compress_x3(st, blk);
        } else {
#if LANES == 4
            compress_x4(st, blk);
#endif
        }
        for (int l = 0; l < LANES; l++) {
            struct lane *ln = &lanes[l];
            if (ln->job && ++ln->blk == ln->nblk)
                lane_end(ln);
        }
    }
}

static bool cpu_has_sha_ni(void)
{
    unsigned a, b, c, d;

    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_SSE4_1) || !(c & bit_SSSE3))
        return false;
    if (__get_cpuid_max(0, NULL) < 7)
        return false;
    __cpuid_count(7, 0, a, b, c, d);
    return (b & bit_SHA) != 0;
}
#else
static bool cpu_has_sha_ni(void)
{
    return false;
}
#endif

/* -1 unknown, 0 no, 1 yes: what the CPU offers; `enabled` is the caller's switch. */
static atomic_int cpu_ok = -1;
static atomic_bool enabled = true;

bool ws_sha256_mb_available(void)
{
    int ok = atomic_load_explicit(&cpu_ok, memory_order_relaxed);

    if (ok < 0) {
        ok = cpu_has_sha_ni() ? 1 : 0;
        atomic_store_explicit(&cpu_ok, ok, memory_order_relaxed);
    }
    return ok == 1 && atomic_load_explicit(&enabled, memory_order_relaxed);
}

bool ws_sha256_mb_enable(bool on)
{
    return atomic_exchange(&enabled, on);
}

void ws_sha256_mb_run(struct ws_sha256_job *jobs, size_t n)
{
#ifdef WS_MB_X86
    if (ws_sha256_mb_available()) {
        run_ni(jobs, n);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++)
        job_openssl(&jobs[i]);
}

void ws_sha256_state_final(uint32_t state[8], const uint8_t *tail, size_t tail_len,
                           uint64_t total_len, uint8_t out[WS_HASH_LEN])
{
    _Alignas(16) uint8_t pad[128];
    uint64_t bits = total_len * 8;
    size_t n;
    struct ws_sha256_job j = {.data = pad, .prefix = -1, .state = state};

    /* tail_len < 64: the bytes after the last full block */
    if (tail_len)
        memcpy(pad, tail, tail_len);
    pad[tail_len] = 0x80;
    n = tail_len + 1 + 8 <= 64 ? 64 : 128;
    memset(pad + tail_len + 1, 0, n - tail_len - 1);
    put_be32(pad + n - 8, (uint32_t)(bits >> 32));
    put_be32(pad + n - 4, (uint32_t)bits);
    j.len = n;
    ws_sha256_mb_run(&j, 1);
    for (int i = 0; i < 8; i++)
        put_be32(out + 4 * i, state[i]);
}
