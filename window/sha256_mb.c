/*
 * sha256_mb.c — multi-buffer SHA-256: many independent messages hashed at once.
 *
 * Why: a window hashes one leaf per record (SHA-256(0x00 || encoding), 3 blocks at 100-byte
 * values), a node per record amortised, and its stream digest. One SHA-256 is a chain of 64
 * dependent rounds; where the CPU's SHA unit is latency-bound, one stream leaves it mostly idle,
 * and where it is throughput-bound, wide vector units can still run many messages at once.
 * Either way independent messages ("lanes") side by side beat one after the other.
 *
 * Shape: a job is either a whole message (optionally preceded by one prefix byte, the RFC 6962
 * domain separator, so leaves and nodes need no concatenation copy) or a run of full 64-byte
 * blocks advancing a caller-held state (a streaming digest riding along as one more lane).
 * A run keeps its lanes busy: each lane takes the next job when its own ends, and each step
 * compresses one block in every busy lane (SHA-NI: x3, x2 or x1 code, whichever fits, so an
 * idle lane costs nothing; AVX-512: always all 16, idle lanes hash a dummy block). Blocks that
 * are plain message bytes are read in place; SHA-NI assembles the prefixed first block and the
 * padded last ones in a 64-byte lane buffer, AVX-512 builds them in a register (masked loads).
 *
 * Engines (enum ws_sha256_lanes): WS_LANES_ONE, every job through OpenSSL one at a time
 * (ws_sha256_* for messages, SHA256_Update's multi-block routine for block jobs: same
 * results, no speed-up);
 * WS_LANES_SHANI, three SHA-NI lanes interleaved (needs the SHA, SSSE3 and SSE4.1 CPUID bits);
 * WS_LANES_AVX512, sixteen lanes, one per 32-bit element of a zmm register, the rounds written
 * out in AVX-512F/BW (needs those CPUID bits, BMI2, and the OS saving zmm state). Which is
 * fastest depends on the CPU, not on the ISA: on Zen 5 SHA256RNDS2 is latency-bound, so three
 * SHA-NI lanes made the window 1.5x faster; on an Intel Xeon (Emerald Rapids, 2.1 GHz VM) it is
 * throughput-bound, so SHA-NI lanes gain little (55-58 ns a block for 1, 2 or 3 lanes), while
 * sixteen AVX-512 lanes compress a block in 27-30 ns (bound by VPRORD, which only port 0
 * runs). The window accumulator (accum.c) measures its own work on each engine once per process
 * and takes the fastest; ws_sha256_mb_run_on() lets it and the tests pick one.
 * ws_sha256_mb_enable(false) forces WS_LANES_ONE everywhere, for tests and benches.
 *
 * SHA-NI rounds follow the published sequence (Intel's 2013 white paper): state kept as
 * ABEF/CDGH, four rounds per SHA256RNDS2 pair, message schedule with SHA256MSG1/MSG2. AVX-512
 * rounds are FIPS 180-4 as written, with VPRORD for the rotations and VPTERNLOGD for the
 * three-input functions (Ch, Maj, the sigma XORs); the 16 blocks are transposed into 16 word
 * vectors on entry (unpack + shuffle, 64 shuffles per 16 blocks).
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

/* Fewer jobs than this leave most of the 16 AVX-512 lanes idle: one at a time is faster. */
#define X16_MIN_JOBS 8

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

    /* Whole blocks through SHA256_Update go to OpenSSL's multi-block routine in one call (the
     * state stays in registers across blocks; SHA256_Transform per block reloads it). Its byte
     * counters are never used: the caller pads and finishes (ws_sha256_state_final). */
    SHA256_Init(&c);
    memcpy(c.h, state, 8 * sizeof(uint32_t));
    SHA256_Update(&c, data, 64 * nblocks);
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
#define LANES 3

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

/* compress_n for N busy lanes, out of line, compiled for ATTR's instruction set. */
#define COMPRESS(NAME, ATTR, N)                                                                    \
    static ATTR __attribute__((noinline)) void NAME(struct lane_state *const *st,                  \
                                                    const uint8_t *const *blk)                     \
    {                                                                                              \
        compress_n(N, st, blk);                                                                    \
    }

COMPRESS(compress_x1, TGT, 1)
COMPRESS(compress_x2, TGT, 2)
COMPRESS(compress_x3, TGT, 3)

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

/* A lane's job and where it is in it; the state itself lives in the engine's own layout. */
struct lane {
    struct ws_sha256_job *job; /* NULL: idle */
    uint64_t total;            /* message bytes including the prefix */
    size_t plen;               /* 0 or 1 */
    size_t blk, nblk;          /* next block, block count */
    _Alignas(16) uint8_t buf[64];
};

/* Take job j; returns the state the job starts from (the IV, or the block job's own). */
static inline __attribute__((always_inline)) const uint32_t *lane_start(struct lane *ln,
                                                                        struct ws_sha256_job *j)
{
    ln->job = j;
    ln->blk = 0;
    if (j->out) {
        ln->plen = j->prefix >= 0 ? 1 : 0;
        ln->total = (uint64_t)j->len + ln->plen;
        ln->nblk = (size_t)((ln->total + 9 + 63) / 64);
        return IV;
    }
    ln->plen = 0;
    ln->nblk = j->len / 64;
    return j->state;
}

/*
 * Block ln->blk of the lane's padded message: in place when it is plain data (with a prefix
 * byte, block k >= 1 is data[64k - 1, 64k + 63), still in place), else built in ln->buf.
 * (AVX-512 builds its blocks in registers instead: lane_row.) Always inlined, as are
 * lane_start and lane_end, which the AVX-512 run also calls: an out-of-line copy compiled for
 * baseline x86-64 runs legacy SSE moves, which with dirty zmm state pay a transition penalty
 * (measured: a third of the AVX-512 run's time when lane_block was out of line).
 */
static inline __attribute__((always_inline)) const uint8_t *lane_block(struct lane *ln)
{
    const struct ws_sha256_job *j = ln->job;
    uint64_t v0 = (uint64_t)ln->blk * 64; /* first virtual byte: prefix || data || padding */
    size_t n = 0;

    if (!j->out)
        return j->data + v0;
    if (v0 + 64 <= ln->total) {
        if (v0 >= ln->plen)
            return j->data + v0 - ln->plen;
        ln->buf[0] = (uint8_t)j->prefix; /* block 0 of a prefixed message */
        memcpy(ln->buf + 1, j->data, 63);
        return ln->buf;
    }
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

/* The job is done with final state h: its digest, or its state advanced. */
static inline __attribute__((always_inline)) void lane_end(struct lane *ln, const uint32_t h[8])
{
    struct ws_sha256_job *j = ln->job;

    if (j->out) {
        for (int i = 0; i < 8; i++)
            put_be32(j->out + 4 * i, h[i]);
    } else {
        memcpy(j->state, h, 8 * sizeof(uint32_t));
    }
    ln->job = NULL;
}

/*
 * One run over the jobs with nlanes = LANES SHA-NI lanes; each lane takes the next job when its
 * own ends. BLOCK builds a lane's next block, X1..X3 compress 1..3 busy lanes. Instantiated twice
 * (RUN_NI below): with blocks assembled by SSE loads and whole-vector stores, and on CPUs with
 * AVX-512VL+BW with the assembled blocks built by masked loads.
 */
#define RUN_NI(NAME, ATTR, BLOCK, X1, X2, X3)                                                      \
    static ATTR void NAME(struct ws_sha256_job *jobs, size_t n)                                    \
    {                                                                                              \
        struct lane lanes[LANES];                                                                  \
        struct lane_state ls[LANES];                                                               \
        uint32_t h[8];                                                                             \
        size_t next = 0;                                                                           \
                                                                                                   \
        for (int l = 0; l < LANES; l++)                                                            \
            lanes[l].job = NULL;                                                                   \
        for (;;) {                                                                                 \
            struct lane_state *st[LANES];                                                          \
            const uint8_t *blk[LANES];                                                             \
            int busy = 0;                                                                          \
                                                                                                   \
            for (int l = 0; l < LANES; l++) {                                                      \
                struct lane *ln = &lanes[l];                                                       \
                while (!ln->job && next < n) {                                                     \
                    const uint32_t *h0 = lane_start(ln, &jobs[next++]);                            \
                    if (ln->nblk == 0) /* an empty block job */                                    \
                        lane_end(ln, h0);                                                          \
                    else                                                                           \
                        state_load(&ls[l], h0);                                                    \
                }                                                                                  \
                if (ln->job) {                                                                     \
                    st[busy] = &ls[l];                                                             \
                    blk[busy++] = BLOCK(ln);                                                       \
                }                                                                                  \
            }                                                                                      \
            if (busy == 0)                                                                         \
                return;                                                                            \
            if (busy == 1)                                                                         \
                X1(st, blk);                                                                       \
            else if (busy == 2)                                                                    \
                X2(st, blk);                                                                       \
            else                                                                                   \
                X3(st, blk);                                                                       \
            for (int l = 0; l < LANES; l++) {                                                      \
                struct lane *ln = &lanes[l];                                                       \
                if (ln->job && ++ln->blk == ln->nblk) {                                            \
                    state_store(&ls[l], h);                                                        \
                    lane_end(ln, h);                                                               \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }

/*
 * lane_block without AVX-512: the blocks to assemble are built as four 16-byte vectors, each
 * from in-bounds 16-byte loads, and stored whole to the lane buffer, so that each 16-byte load
 * of the compression is forwarded from one store. lane_block's memcpy, byte stores and memset
 * make loads that span several stores, which do not forward. On a Zen 3 VM (no AVX-512) leaf
 * jobs of 150 bytes went from 30.7 to 29.2 ns a block (medians of 10 alternating runs of 15;
 * in-place 256-block runs: 25.4). A vector holding the message's last bytes comes from the
 * load of the message's last 16 bytes, slid down by a byte shuffle whose control is read from a
 * table at an offset (out-of-range lanes zeroed); the 0x80 byte from a second table the same
 * way. Messages shorter than 16 bytes (none in a window: leaves are longer, nodes 64 bytes) take
 * lane_block.
 */
static const int8_t SLIDE[32] = {0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15,
                                 -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1};
static const uint8_t END80[32] = {[16] = 0x80};

/* Bytes [vk, vk + 16) of the lane's virtual message (prefix || data || 0x80 || zeros). */
static inline __attribute__((always_inline)) TGT __m128i chunk_sse(const struct ws_sha256_job *j,
                                                                   uint64_t plen, uint64_t total,
                                                                   uint64_t vk)
{
    if (vk >= total) /* past the message: zeros, the 0x80 first if it starts here */
        return vk == total ? _mm_cvtsi32_si128(0x80) : _mm_setzero_si128();
    if (vk < plen) /* vk 0 of a prefixed message (len >= 16): prefix || data[0, 15) */
        return _mm_insert_epi8(_mm_slli_si128(_mm_loadu_si128((const void *)j->data), 1), j->prefix,
                               0);
    if (vk + 16 <= total)
        return _mm_loadu_si128((const void *)(j->data + (vk - plen)));
    /* the message ends inside: its last c bytes, slid from the load of the last 16 */
    unsigned c = (unsigned)(total - vk);
    __m128i last = _mm_loadu_si128((const void *)(j->data + j->len - 16));

    last = _mm_shuffle_epi8(last, _mm_loadu_si128((const void *)(SLIDE + 16 - c)));
    return _mm_or_si128(last, _mm_loadu_si128((const void *)(END80 + 16 - c)));
}

static inline __attribute__((always_inline)) TGT const uint8_t *lane_block_sse(struct lane *ln)
{
    const struct ws_sha256_job *j = ln->job;
    uint64_t v0 = (uint64_t)ln->blk * 64;

    if (!j->out)
        return j->data + v0;
    if (v0 >= ln->plen && v0 + 64 <= ln->total)
        return j->data + v0 - ln->plen; /* plain message bytes: in place */
    if (j->len < 16)
        return lane_block(ln);
    for (int k = 0; k < 4; k++) {
        __m128i c = chunk_sse(j, ln->plen, ln->total, v0 + 16 * (unsigned)k);

        if (k == 3 && ln->blk == ln->nblk - 1)
            c = _mm_insert_epi64(c, (long long)__builtin_bswap64(ln->total * 8), 1);
        _mm_store_si128((__m128i *)(void *)(ln->buf + 16 * k), c);
    }
    return ln->buf;
}

RUN_NI(run_ni, TGT, lane_block_sse, compress_x1, compress_x2, compress_x3)

/*
 * The same lanes where AVX-512VL and BW are there too (Zen 4 and later, Intel since Skylake-SP):
 * a block that must be assembled (the prefixed first one, the padded last ones) is built by
 * 16-byte masked loads (masked-off bytes are never read) and 16-byte stores at the addresses
 * the compression loads from, so every load is forwarded from one store. lane_block's memcpy,
 * byte stores and memset make loads that span several stores, which do not forward: on a Zen 4
 * the masked loads made a 100-byte window 1.13-1.29x faster, 1 KiB 1.04x (same process,
 * alternating; thread CPU time). That was against the byte-wise lane_block; against
 * lane_block_sse, which came later on a CPU without AVX-512, it is not measured. Only 128-bit
 * registers: the SHA-NI code around it is SSE, and dirty upper zmm state would cost it a
 * transition.
 */
#define TGTVL __attribute__((target("sha,sse4.1,ssse3,avx512f,avx512bw,avx512vl,bmi2")))

/*
 * Block ln->blk of a lane's padded message (prefix || data || 0x80 || zeros || bit length) as
 * byte masks over its 64 bytes, for masked loads and moves (lane_block_vl, lane_row): m the
 * message bytes, byte i read at base + i (base may point one before data or past its end; only
 * bytes under m are read, and those are inside), lo the prefix (bit 0), m80 the 0x80 after the
 * message, last: the bit length goes in bytes 56..63. Branch-free. A block job has plen 0 and
 * is all data: m all ones, nothing else.
 */
struct block_masks {
    uint64_t m, m80;
    unsigned lo;
    bool last;
    uintptr_t base;
};

static inline __attribute__((always_inline, target("bmi2"))) struct block_masks
block_masks(const struct lane *ln)
{
    const struct ws_sha256_job *j = ln->job;
    uint64_t v0 = (uint64_t)ln->blk * 64; /* first virtual byte */
    uint64_t total = j->out ? ln->total : v0 + 64, rem = total > v0 ? total - v0 : 0;
    struct block_masks b;

    b.lo = v0 < ln->plen;
    b.m = _bzhi_u64(~0ULL, rem >= 64 ? 64 : (unsigned)rem) & ~(uint64_t)b.lo;
    b.m80 = total >= v0 && rem < 64 ? 1ULL << rem : 0;
    b.last = j->out && ln->blk == ln->nblk - 1;
    b.base = (uintptr_t)j->data + v0 - ln->plen;
    return b;
}

static inline __attribute__((always_inline)) TGTVL const uint8_t *lane_block_vl(struct lane *ln)
{
    const struct ws_sha256_job *j = ln->job;
    uint64_t v0 = (uint64_t)ln->blk * 64;
    struct block_masks b;

    if (!j->out)
        return j->data + v0;
    if (v0 >= ln->plen && v0 + 64 <= ln->total)
        return j->data + v0 - ln->plen; /* plain message bytes: in place */
    b = block_masks(ln);
    for (int k = 0; k < 4; k++) {
        __m128i c =
            _mm_maskz_loadu_epi8((__mmask16)(b.m >> (16 * k)), (const void *)(b.base + 16 * k));
        if (k == 0)
            c = _mm_mask_set1_epi8(c, (__mmask16)b.lo, (char)j->prefix);
        c = _mm_mask_set1_epi8(c, (__mmask16)(b.m80 >> (16 * k)), (char)0x80);
        if (k == 3 && b.last)
            c = _mm_mask_set1_epi64(c, 2, (long long)__builtin_bswap64(ln->total * 8));
        _mm_store_si128((__m128i *)(void *)(ln->buf + 16 * k), c);
    }
    return ln->buf;
}

COMPRESS(compress_vl_x1, TGTVL, 1)
COMPRESS(compress_vl_x2, TGTVL, 2)
COMPRESS(compress_vl_x3, TGTVL, 3)

RUN_NI(run_ni_vl, TGTVL, lane_block_vl, compress_vl_x1, compress_vl_x2, compress_vl_x3)

/* ------------------------------------------------------------------------------------------ */
/* AVX-512 lanes                                                                                */

#define TGT512 __attribute__((target("avx512f,avx512bw,bmi2")))
#define X16 16

/*
 * 16 x 16 transpose of 32-bit words: on entry r[i] holds block i's 16 words, on exit r[t] holds
 * word t of every block (lane i in element i).
 */
static inline __attribute__((always_inline)) TGT512 void transpose16(__m512i r[16])
{
    __m512i t[16];

    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
        r[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
        r[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
        r[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
    }
    for (int i = 0; i < 4; i++) {
        t[i] = _mm512_shuffle_i32x4(r[i], r[i + 4], 0x88);
        t[i + 4] = _mm512_shuffle_i32x4(r[i], r[i + 4], 0xdd);
        t[i + 8] = _mm512_shuffle_i32x4(r[i + 8], r[i + 12], 0x88);
        t[i + 12] = _mm512_shuffle_i32x4(r[i + 8], r[i + 12], 0xdd);
    }
    for (int i = 0; i < 4; i++) {
        r[i] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0x88);
        r[i + 8] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0xdd);
        r[i + 4] = _mm512_shuffle_i32x4(t[i + 4], t[i + 12], 0x88);
        r[i + 12] = _mm512_shuffle_i32x4(t[i + 4], t[i + 12], 0xdd);
    }
}

/* One block in each of the 16 lanes (row[l]: lane l's block); st[k]: word k of every state. */
static TGT512 __attribute__((noinline)) void compress_x16(__m512i st[8], const __m512i row[X16])
{
    const __m512i bswap = _mm512_set4_epi32(0x0c0d0e0f, 0x08090a0b, 0x04050607, 0x00010203);
    __m512i w[16], a, b, c, d, e, f, g, h;

    for (int i = 0; i < 16; i++)
        w[i] = row[i];
    transpose16(w);
    for (int i = 0; i < 16; i++)
        w[i] = _mm512_shuffle_epi8(w[i], bswap);
    a = st[0], b = st[1], c = st[2], d = st[3], e = st[4], f = st[5], g = st[6], h = st[7];
#pragma GCC unroll 64
    for (int t = 0; t < 64; t++) {
        __m512i wt, s1, ch, t1, s0, mj;
        if (t < 16) {
            wt = w[t];
        } else {
            __m512i w15 = w[(t - 15) & 15], w2 = w[(t - 2) & 15];
            __m512i g0 =
                _mm512_ternarylogic_epi32(_mm512_ror_epi32(w15, 7), _mm512_ror_epi32(w15, 18),
                                          _mm512_srli_epi32(w15, 3), 0x96);
            __m512i g1 =
                _mm512_ternarylogic_epi32(_mm512_ror_epi32(w2, 17), _mm512_ror_epi32(w2, 19),
                                          _mm512_srli_epi32(w2, 10), 0x96);
            wt = _mm512_add_epi32(_mm512_add_epi32(w[t & 15], g0),
                                  _mm512_add_epi32(w[(t - 7) & 15], g1));
            w[t & 15] = wt;
        }
        /* 0x96: x ^ y ^ z; 0xca: Ch = e ? f : g; 0xe8: Maj */
        s1 = _mm512_ternarylogic_epi32(_mm512_ror_epi32(e, 6), _mm512_ror_epi32(e, 11),
                                       _mm512_ror_epi32(e, 25), 0x96);
        ch = _mm512_ternarylogic_epi32(e, f, g, 0xca);
        t1 = _mm512_add_epi32(
            _mm512_add_epi32(h, s1),
            _mm512_add_epi32(ch, _mm512_add_epi32(wt, _mm512_set1_epi32((int)K[t]))));
        s0 = _mm512_ternarylogic_epi32(_mm512_ror_epi32(a, 2), _mm512_ror_epi32(a, 13),
                                       _mm512_ror_epi32(a, 22), 0x96);
        mj = _mm512_ternarylogic_epi32(a, b, c, 0xe8);
        h = g, g = f, f = e, e = _mm512_add_epi32(d, t1);
        d = c, c = b, b = a, a = _mm512_add_epi32(t1, _mm512_add_epi32(s0, mj));
    }
    st[0] = _mm512_add_epi32(st[0], a), st[1] = _mm512_add_epi32(st[1], b);
    st[2] = _mm512_add_epi32(st[2], c), st[3] = _mm512_add_epi32(st[3], d);
    st[4] = _mm512_add_epi32(st[4], e), st[5] = _mm512_add_epi32(st[5], f);
    st[6] = _mm512_add_epi32(st[6], g), st[7] = _mm512_add_epi32(st[7], h);
}

/*
 * Block ln->blk of the lane's padded message as one zmm value: a masked load takes the message
 * bytes (masked-off bytes are never read, so neither the byte before data nor the bytes after
 * its end are touched), then the prefix, the 0x80 and the bit length go in by masked moves.
 * lane_block's byte-wise assembly in a lane buffer, read back by a 64-byte load, measured a
 * quarter of the AVX-512 run's time (stores of several sizes do not forward to one load).
 */
static inline __attribute__((always_inline)) TGT512 __m512i lane_row(const struct lane *ln)
{
    /* Branch-free (block_masks): 16 lanes at different phases of different jobs made every test
     * here a coin flip for the predictor. */
    struct block_masks b = block_masks(ln);
    __m512i row;

    row = _mm512_maskz_loadu_epi8(b.m, (const void *)b.base);
    row = _mm512_mask_set1_epi8(row, b.lo, (char)ln->job->prefix);
    row = _mm512_mask_set1_epi8(row, b.m80, (char)0x80);
    return _mm512_mask_set1_epi64(row, b.last ? 0x80 : 0,
                                  (long long)__builtin_bswap64(ln->total * 8));
}

/* 16 message jobs with the same prefix (or none) and length: their lanes start, pad and end
 * together. */
static bool uniform16(const struct ws_sha256_job *j)
{
    for (int l = 0; l < X16; l++)
        if (!j[l].out || j[l].prefix != j[0].prefix || j[l].len != j[0].len)
            return false;
    return true;
}

/*
 * A uniform batch (uniform16): what differs per lane is only the data pointer, so each step
 * builds one template (prefix, 0x80, bit length: the same bytes in every lane) and loads each
 * lane's bytes into it with one masked load; the 16 digests come out with one transpose. The
 * general loop's per-lane bookkeeping (start, block, end) measured about a seventh of the
 * window's time; the nodes of a group are always uniform, leaves when records are of one size.
 */
static TGT512 void run_batch16(struct ws_sha256_job *j)
{
    const __m512i bswap = _mm512_set4_epi32(0x0c0d0e0f, 0x08090a0b, 0x04050607, 0x00010203);
    struct lane ln = {0};
    __m512i st[8], row[X16], t[8], u[8];
    _Alignas(64) uint32_t words[8][X16];

    lane_start(&ln, &j[0]);
    for (int k = 0; k < 8; k++)
        st[k] = _mm512_set1_epi32((int)IV[k]);
    for (ln.blk = 0; ln.blk < ln.nblk; ln.blk++) {
        uint64_t v0 = (uint64_t)ln.blk * 64;
        uint64_t rem = ln.total > v0 ? ln.total - v0 : 0;
        unsigned lo = v0 < ln.plen, hi = rem >= 64 ? 64 : (unsigned)rem;
        __mmask64 m = _bzhi_u64(~0ULL, hi) & ~(uint64_t)lo;
        __m512i tpl = _mm512_setzero_si512();

        if (lo)
            tpl = _mm512_mask_set1_epi8(tpl, 1, (char)j[0].prefix);
        if (ln.total >= v0 && rem < 64)
            tpl = _mm512_mask_set1_epi8(tpl, (__mmask64)1 << rem, (char)0x80);
        if (ln.blk == ln.nblk - 1)
            tpl = _mm512_mask_set1_epi64(tpl, 0x80, (long long)__builtin_bswap64(ln.total * 8));
        for (int l = 0; l < X16; l++) /* same addressing as lane_row */
            row[l] =
                _mm512_mask_loadu_epi8(tpl, m, (const void *)((uintptr_t)j[l].data + v0 - ln.plen));
        compress_x16(st, row);
    }
    /* st[k] holds word k of all lanes; lane l's digest is words 0..7 of element l, big-endian.
     * Unpacking pairs, then quads, leaves in 128-bit chunk c of u[i] words 0-3 of lane 4c+i and
     * in chunk c of u[4+i] its words 4-7. */
    for (int k = 0; k < 8; k += 2) {
        t[k] = _mm512_unpacklo_epi32(st[k], st[k + 1]);
        t[k + 1] = _mm512_unpackhi_epi32(st[k], st[k + 1]);
    }
    for (int h = 0; h < 2; h++) { /* h = 0: words 0-3, 1: words 4-7 */
        u[4 * h + 0] = _mm512_unpacklo_epi64(t[4 * h], t[4 * h + 2]);
        u[4 * h + 1] = _mm512_unpackhi_epi64(t[4 * h], t[4 * h + 2]);
        u[4 * h + 2] = _mm512_unpacklo_epi64(t[4 * h + 1], t[4 * h + 3]);
        u[4 * h + 3] = _mm512_unpackhi_epi64(t[4 * h + 1], t[4 * h + 3]);
    }
    for (int i = 0; i < 8; i++)
        _mm512_store_si512(words[i], _mm512_shuffle_epi8(u[i], bswap));
    for (int c = 0; c < 4; c++)
        for (int i = 0; i < 4; i++) {
            memcpy(j[4 * c + i].out, &words[i][4 * c], 16);
            memcpy(j[4 * c + i].out + 16, &words[4 + i][4 * c], 16);
        }
}

/*
 * The 16 lanes over jobs. Block jobs are fine here too, but a long one holds its lane while the
 * others run dry: the accumulator hashes its stream digest apart (accum.c). Interleaving that
 * chain on SHA-NI inside these rounds was tried and measured 9x slower: SHA-NI has only legacy
 * SSE encodings, and legacy SSE with dirty zmm upper halves pays a transition penalty here.
 */
static TGT512 void run_x16(struct ws_sha256_job *jobs, size_t n)
{
    struct lane lanes[X16];
    __m512i st[8] = {0};
    _Alignas(64) uint32_t h[8][X16], h0s[8][X16];
    size_t next = 0;

    /* Leading uniform batches go the short way; the rest (and any mixed jobs) the general way. */
    while (n - next >= X16 && uniform16(jobs + next)) {
        run_batch16(jobs + next);
        next += X16;
    }

    for (int l = 0; l < X16; l++)
        lanes[l].job = NULL;
    for (;;) {
        __m512i row[X16]; /* an idle lane hashes zeros, its result unused */
        int busy = 0;
        unsigned ended = 0, started = 0;

        for (int l = 0; l < X16; l++) {
            struct lane *ln = &lanes[l];
            while (!ln->job && next < n) {
                const uint32_t *h0 = lane_start(ln, &jobs[next++]);
                if (ln->nblk == 0) { /* an empty block job */
                    lane_end(ln, h0);
                    continue;
                }
                for (int k = 0; k < 8; k++)
                    h0s[k][l] = h0[k];
                started |= 1u << l;
            }
            row[l] = ln->job ? lane_row(ln) : _mm512_setzero_si512();
            busy += ln->job != NULL;
        }
        if (busy == 0)
            return;
        /* New jobs' states into their elements, one masked load per state word: inserting them
         * job by job chained read-modify-writes of st[] through memory. */
        if (started)
            for (int k = 0; k < 8; k++)
                st[k] = _mm512_mask_load_epi32(st[k], (__mmask16)started, h0s[k]);
        compress_x16(st, row);
        for (int l = 0; l < X16; l++)
            if (lanes[l].job && ++lanes[l].blk == lanes[l].nblk)
                ended |= 1u << l;
        if (!ended)
            continue;
        for (int k = 0; k < 8; k++)
            _mm512_store_si512(h[k], st[k]);
        for (int l = 0; l < X16; l++) {
            if (ended & (1u << l)) {
                uint32_t hl[8];
                for (int k = 0; k < 8; k++)
                    hl[k] = h[k][l];
                lane_end(&lanes[l], hl);
            }
        }
    }
}

static bool cpu_has_avx512(void)
{
    /* libgcc's check includes the OS enabling zmm state (XCR0), not only the CPUID bits. */
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("bmi2");
}

/* SHA-NI lanes with masked-load block assembly (run_ni_vl): AVX-512F, BW, VL and BMI2. */
static bool cpu_has_avx512vl(void)
{
    return cpu_has_avx512() && __builtin_cpu_supports("avx512vl");
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

static bool cpu_has_avx512vl(void)
{
    return false;
}

static bool cpu_has_avx512(void)
{
    return false;
}
#endif

/* CPU support per engine, bit e set when engine e runs here; -1 until first asked. */
static atomic_int cpu_bits = -1;
static atomic_bool enabled = true;
static atomic_bool ni_vector = true; /* SHA-NI lanes may assemble blocks by masked loads */

static int engines_here(void)
{
    int bits = atomic_load_explicit(&cpu_bits, memory_order_relaxed);

    if (bits < 0) { /* racing first callers compute the same value */
        bits = 1 << WS_LANES_ONE;
        if (cpu_has_sha_ni())
            bits |= 1 << WS_LANES_SHANI;
        if (cpu_has_avx512())
            bits |= 1 << WS_LANES_AVX512;
        atomic_store_explicit(&cpu_bits, bits, memory_order_relaxed);
    }
    return bits;
}

bool ws_sha256_lanes_supported(enum ws_sha256_lanes e)
{
    if ((unsigned)e > WS_LANES_AVX512)
        return false;
    if (e != WS_LANES_ONE && !atomic_load_explicit(&enabled, memory_order_relaxed))
        return false;
    return (engines_here() >> e) & 1;
}

const char *ws_sha256_lanes_name(enum ws_sha256_lanes e)
{
    switch (e) {
    case WS_LANES_ONE:
        return "one lane (OpenSSL)";
    case WS_LANES_SHANI:
        return "SHA-NI x3";
    case WS_LANES_AVX512:
        return "AVX-512 x16";
    default:
        return "auto";
    }
}

bool ws_sha256_mb_available(void)
{
    return ws_sha256_lanes_supported(WS_LANES_SHANI) || ws_sha256_lanes_supported(WS_LANES_AVX512);
}

bool ws_sha256_mb_enable(bool on)
{
    return atomic_exchange(&enabled, on);
}

bool ws_sha256_mb_ni_vector(bool on)
{
    return atomic_exchange(&ni_vector, on) && cpu_has_avx512vl();
}

void ws_sha256_mb_run_on(enum ws_sha256_lanes e, struct ws_sha256_job *jobs, size_t n)
{
#ifdef WS_MB_X86
    if (e == WS_LANES_SHANI && ws_sha256_lanes_supported(e)) {
        if (atomic_load_explicit(&ni_vector, memory_order_relaxed) && cpu_has_avx512vl())
            run_ni_vl(jobs, n);
        else
            run_ni(jobs, n);
        return;
    }
    if (e == WS_LANES_AVX512 && ws_sha256_lanes_supported(e)) {
        run_x16(jobs, n);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++)
        job_openssl(&jobs[i]);
}

void ws_sha256_mb_run(struct ws_sha256_job *jobs, size_t n)
{
    /* A few jobs at a time (the callers outside the accumulator): SHA-NI fills its three lanes
     * where 16 AVX-512 lanes would mostly hash idle blocks. */
    if (ws_sha256_lanes_supported(WS_LANES_SHANI))
        ws_sha256_mb_run_on(WS_LANES_SHANI, jobs, n);
    else if (ws_sha256_lanes_supported(WS_LANES_AVX512) && n >= X16_MIN_JOBS)
        ws_sha256_mb_run_on(WS_LANES_AVX512, jobs, n);
    else
        ws_sha256_mb_run_on(WS_LANES_ONE, jobs, n);
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
