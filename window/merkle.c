/*
 * merkle.c — RFC 6962 Merkle Tree Hash built as leaves stream in, and RFC 9162 proofs (FORMAT.md §4).
 *
 * Streaming: struct ws_merkle holds the compact range of the leaves so far, one hash per set bit
 * of size, largest (leftmost) subtree first. Adding leaf n pushes its hash and then merges the
 * two rightmost entries once per trailing zero bit of the new size — exactly the perfect
 * subtrees RFC 6962's "largest power of two smaller than n" split produces. The root folds the
 * range from the right: the smallest subtree is the right child of the next larger one. Memory is
 * fixed (64 hashes) and each leaf costs one leaf hash plus, amortised, one node hash.
 *
 * Proofs are generated from an in-memory array of leaf hashes with RFC 9162's recursive PATH and
 * SUBPROOF definitions; the subtree hashes they need come from a compact range over the slice (no
 * allocation, O(slice) work), so a whole proof costs O(n). Verification is RFC 9162 2.1.3.2 and
 * 2.1.4.2 verbatim: bit arithmetic on the index and size, which also rejects proofs that are too
 * short or too long.
 *
 * The hot path is ws_merkle_add_leaf: one SHA-256 context fed 0x00 and then the caller's bytes,
 * no concatenation copy.
 */
#include "window/window.h"

#include <string.h>

void ws_merkle_init(struct ws_merkle *m)
{
    m->size = 0;
    m->nrange = 0;
}

void ws_merkle_leaf_hash(const void *data, size_t len, uint8_t out[WS_HASH_LEN])
{
    static const uint8_t prefix = 0x00;
    struct ws_sha256 h;

    ws_sha256_init(&h);
    ws_sha256_update(&h, &prefix, 1);
    ws_sha256_update(&h, data, len);
    ws_sha256_final(&h, out);
}

void ws_merkle_node_hash(const uint8_t l[WS_HASH_LEN], const uint8_t r[WS_HASH_LEN],
                         uint8_t out[WS_HASH_LEN])
{
    uint8_t buf[1 + 2 * WS_HASH_LEN];
    struct ws_sha256 h;

    /*
     * One 65-byte update into a stack context: fewer block calls than three updates, and out
     * may alias l or r. Not the one-shot ws_sha256(): OpenSSL 3's SHA256() fetches a provider
     * per call and measured 3x slower than this on 65 bytes.
     */
    buf[0] = 0x01;
    memcpy(buf + 1, l, WS_HASH_LEN);
    memcpy(buf + 1 + WS_HASH_LEN, r, WS_HASH_LEN);
    ws_sha256_init(&h);
    ws_sha256_update(&h, buf, sizeof(buf));
    ws_sha256_final(&h, out);
}

void ws_merkle_add_hash(struct ws_merkle *m, const uint8_t leaf_hash[WS_HASH_LEN])
{
    uint64_t s;

    /* 2^64 - 1 leaves would need a 65th slot; no window or log gets there. */
    if (m->size == UINT64_MAX)
        return;
    memcpy(m->range[m->nrange++], leaf_hash, WS_HASH_LEN);
    m->size++;
    for (s = m->size; (s & 1) == 0; s >>= 1) {
        m->nrange--;
        ws_merkle_node_hash(m->range[m->nrange - 1], m->range[m->nrange], m->range[m->nrange - 1]);
    }
}

void ws_merkle_add_leaf(struct ws_merkle *m, const void *data, size_t len)
{
    uint8_t h[WS_HASH_LEN];

    ws_merkle_leaf_hash(data, len, h);
    ws_merkle_add_hash(m, h);
}

void ws_merkle_root(const struct ws_merkle *m, uint8_t out[WS_HASH_LEN])
{
    uint8_t acc[WS_HASH_LEN];

    if (m->nrange == 0) {
        ws_sha256("", 0, out);
        return;
    }
    memcpy(acc, m->range[m->nrange - 1], WS_HASH_LEN);
    for (unsigned i = m->nrange - 1; i-- > 0;)
        ws_merkle_node_hash(m->range[i], acc, acc);
    memcpy(out, acc, WS_HASH_LEN);
}

ws_err_t ws_merkle_restore(struct ws_merkle *m, uint64_t size, const uint8_t (*range)[WS_HASH_LEN],
                           unsigned nrange)
{
    if (nrange != (unsigned)__builtin_popcountll(size) || nrange > WS_MERKLE_MAX_DEPTH ||
        (nrange && !range))
        return WS_ERR_INVALID;
    m->size = size;
    m->nrange = nrange;
    if (nrange)
        memcpy(m->range, range, (size_t)nrange * WS_HASH_LEN);
    return WS_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Proof generation (RFC 9162 2.1.3.1, 2.1.4.1)                                                   */

/* Largest power of two strictly smaller than n (n >= 2). */
static uint64_t split(uint64_t n)
{
    return (uint64_t)1 << (63 - __builtin_clzll(n - 1));
}

/* MTH(D[lo:hi]) from leaf hashes, via a compact range: no recursion, no allocation. */
static void subtree_hash(const uint8_t (*leaves)[WS_HASH_LEN], uint64_t lo, uint64_t hi,
                         uint8_t out[WS_HASH_LEN])
{
    struct ws_merkle m;

    ws_merkle_init(&m);
    for (uint64_t i = lo; i < hi; i++)
        ws_merkle_add_hash(&m, leaves[i]);
    ws_merkle_root(&m, out);
}

/* PATH(m, D[lo:hi]) appended to path; recursion depth <= 64. */
static void path(const uint8_t (*leaves)[WS_HASH_LEN], uint64_t lo, uint64_t hi, uint64_t m,
                 uint8_t (*out)[WS_HASH_LEN], size_t *n)
{
    uint64_t k;

    if (hi - lo <= 1)
        return;
    k = split(hi - lo);
    if (m < k) {
        path(leaves, lo, lo + k, m, out, n);
        subtree_hash(leaves, lo + k, hi, out[(*n)++]);
    } else {
        path(leaves, lo + k, hi, m - k, out, n);
        subtree_hash(leaves, lo, lo + k, out[(*n)++]);
    }
}

ws_err_t ws_merkle_inclusion_proof(const uint8_t (*leaves)[WS_HASH_LEN], uint64_t size,
                                   uint64_t index, uint8_t (*out)[WS_HASH_LEN], size_t *pathlen)
{
    if (index >= size || !leaves || !out || !pathlen)
        return WS_ERR_INVALID;
    *pathlen = 0;
    path(leaves, 0, size, index, out, pathlen);
    return WS_OK;
}

/* SUBPROOF(m, D[lo:hi], b) appended to proof. */
static void subproof(const uint8_t (*leaves)[WS_HASH_LEN], uint64_t lo, uint64_t hi, uint64_t m,
                     bool b, uint8_t (*out)[WS_HASH_LEN], size_t *n)
{
    uint64_t k;

    if (m == hi - lo) {
        if (!b)
            subtree_hash(leaves, lo, hi, out[(*n)++]);
        return;
    }
    k = split(hi - lo);
    if (m <= k) {
        subproof(leaves, lo, lo + k, m, b, out, n);
        subtree_hash(leaves, lo + k, hi, out[(*n)++]);
    } else {
        subproof(leaves, lo + k, hi, m - k, false, out, n);
        subtree_hash(leaves, lo, lo + k, out[(*n)++]);
    }
}

ws_err_t ws_merkle_consistency_proof(const uint8_t (*leaves)[WS_HASH_LEN], uint64_t size1,
                                     uint64_t size2, uint8_t (*out)[WS_HASH_LEN], size_t *prooflen)
{
    if (size1 > size2 || !prooflen || (size2 && (!leaves || !out)))
        return WS_ERR_INVALID;
    *prooflen = 0;
    /* RFC 9162: the proof between equal sizes, or from the empty tree, is empty. */
    if (size1 == 0 || size1 == size2)
        return WS_OK;
    subproof(leaves, 0, size2, size1, true, out, prooflen);
    return WS_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Verification (RFC 9162 2.1.3.2, 2.1.4.2)                                                       */

ws_err_t ws_merkle_verify_inclusion(const uint8_t leaf_hash[WS_HASH_LEN], uint64_t index,
                                    uint64_t size, const uint8_t (*proof)[WS_HASH_LEN],
                                    size_t pathlen, const uint8_t root[WS_HASH_LEN])
{
    uint64_t fn = index, sn;
    uint8_t r[WS_HASH_LEN];

    if (index >= size || pathlen > WS_MERKLE_MAX_DEPTH || (pathlen && !proof))
        return WS_ERR_PROOF;
    sn = size - 1;
    memcpy(r, leaf_hash, WS_HASH_LEN);
    for (size_t i = 0; i < pathlen; i++) {
        if (sn == 0)
            return WS_ERR_PROOF;
        if ((fn & 1) || fn == sn) {
            ws_merkle_node_hash(proof[i], r, r);
            if (!(fn & 1))
                while (fn && !(fn & 1)) {
                    fn >>= 1;
                    sn >>= 1;
                }
        } else {
            ws_merkle_node_hash(r, proof[i], r);
        }
        fn >>= 1;
        sn >>= 1;
    }
    if (sn != 0 || memcmp(r, root, WS_HASH_LEN) != 0)
        return WS_ERR_PROOF;
    return WS_OK;
}

ws_err_t ws_merkle_verify_consistency(uint64_t size1, uint64_t size2,
                                      const uint8_t root1[WS_HASH_LEN],
                                      const uint8_t root2[WS_HASH_LEN],
                                      const uint8_t (*proof)[WS_HASH_LEN], size_t prooflen)
{
    uint64_t fn, sn;
    uint8_t fr[WS_HASH_LEN], sr[WS_HASH_LEN];
    size_t i = 0;

    if (size1 > size2 || prooflen > 2 * WS_MERKLE_MAX_DEPTH || (prooflen && !proof))
        return WS_ERR_PROOF;
    if (size1 == size2)
        return prooflen == 0 && memcmp(root1, root2, WS_HASH_LEN) == 0 ? WS_OK : WS_ERR_PROOF;
    if (size1 == 0) /* the empty tree is a prefix of every tree */
        return prooflen == 0 ? WS_OK : WS_ERR_PROOF;
    if (prooflen == 0)
        return WS_ERR_PROOF;

    fn = size1 - 1;
    sn = size2 - 1;
    /* Step 2: for a power-of-two size1 the proof omits root1, which is then its first node. */
    if ((size1 & (size1 - 1)) == 0) {
        memcpy(fr, root1, WS_HASH_LEN);
    } else {
        memcpy(fr, proof[0], WS_HASH_LEN);
        i = 1;
    }
    memcpy(sr, fr, WS_HASH_LEN);
    while (fn & 1) {
        fn >>= 1;
        sn >>= 1;
    }
    for (; i < prooflen; i++) {
        if (sn == 0)
            return WS_ERR_PROOF;
        if ((fn & 1) || fn == sn) {
            ws_merkle_node_hash(proof[i], fr, fr);
            ws_merkle_node_hash(proof[i], sr, sr);
            if (!(fn & 1))
                while (fn && !(fn & 1)) {
                    fn >>= 1;
                    sn >>= 1;
                }
        } else {
            ws_merkle_node_hash(sr, proof[i], sr);
        }
        fn >>= 1;
        sn >>= 1;
    }
    if (sn != 0 || memcmp(fr, root1, WS_HASH_LEN) != 0 || memcmp(sr, root2, WS_HASH_LEN) != 0)
        return WS_ERR_PROOF;
    return WS_OK;
}
