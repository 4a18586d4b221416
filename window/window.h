/*
 * window/window.h — the offline core of windowseal: pure computation, no I/O.
 *
 * Everything that turns Kafka records into a signed, verifiable statement lives here and can be
 * tested without a broker, a disk or a network:
 *
 *   ws_err_t         one error enum for every layer (append-only; retriable or permanent)
 *   ws_sha256_*      SHA-256 via OpenSSL libcrypto (SHA-NI), incremental, no allocation
 *   ws_record_*      the record encoding windowseal.record.v1 (FORMAT.md §2) and its decoder
 *   ws_window_*      the window accumulator: stream digest + Merkle tree + per-source stats
 *   ws_merkle_*      streaming RFC 6962 tree (compact range), RFC 9162 proofs (FORMAT.md §4)
 *   ws_log_*         the per-query window log entry (FORMAT.md §4)
 *   ws_evidence_*    LZ4-frame evidence archive writer/reader over callbacks (FORMAT.md §3)
 *   ws_key_*         Ed25519 keys as PKCS#8 / SPKI PEM, keyid (FORMAT.md §6)
 *   ws_dsse_*        DSSE envelopes: PAE, sign, open/verify (FORMAT.md §6)
 *   ws_statement_*   the in-toto Statement with the Makoto stream-window predicate (FORMAT.md §5)
 *
 * Threads: every handle is used by one thread at a time; functions without a handle are
 * thread-safe. Output buffers are caller-owned unless a function says it allocates.
 */
#ifndef WS_WINDOW_H
#define WS_WINDOW_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#if defined(__GNUC__)
#define WS_MUST_CHECK __attribute__((warn_unused_result))
#else
#define WS_MUST_CHECK
#endif

/* ------------------------------------------------------------------------------------------ */
/* Errors. X(name, number, retriable, text).                                                      */
/*
 * The numbers are part of the interface (logs, dead-letter headers and metrics name errors;
 * scripts match them): curl's rule — a code is appended with the next number, never renumbered,
 * and a retired code keeps its number and entry (its text says "retired"). tests/test_window_err.c
 * pins every number.
 */

#define WS_ERRORS(X)                                                                               \
    X(WS_OK, 0, 0, "success")                                                                      \
    X(WS_ERR_NOMEM, 1, 1, "out of memory")                                                         \
    X(WS_ERR_INVALID, 2, 0, "invalid argument")                                                    \
    X(WS_ERR_MALFORMED, 3, 0, "malformed input")                                                   \
    X(WS_ERR_TRUNCATED, 4, 0, "truncated input")                                                   \
    X(WS_ERR_TOO_LARGE, 5, 0, "input too large")                                                   \
    X(WS_ERR_IO, 6, 1, "I/O error")                                                                \
    X(WS_ERR_NOSPACE, 7, 1, "no space left on device")                                             \
    X(WS_ERR_NOT_FOUND, 8, 0, "not found")                                                         \
    X(WS_ERR_EXISTS_DIFFERENT, 9, 0, "object exists with different content")                       \
    X(WS_ERR_SIGNATURE, 10, 0, "signature verification failed")                                    \
    X(WS_ERR_VERIFY, 11, 0, "verification failed")                                                 \
    X(WS_ERR_KEY, 12, 0, "unusable key")                                                           \
    X(WS_ERR_CONFIG, 13, 0, "configuration error")                                                 \
    X(WS_ERR_KAFKA, 14, 1, "Kafka error")                                                          \
    X(WS_ERR_KAFKA_FATAL, 15, 0, "fatal Kafka error")                                              \
    X(WS_ERR_TIMEOUT, 16, 1, "timed out")                                                          \
    X(WS_ERR_NOT_RETAINED, 17, 0, "records no longer retained")                                    \
    X(WS_ERR_UNKNOWN_TOPIC, 18, 0, "unknown topic or partition")                                   \
    X(WS_ERR_CONFLICT, 19, 0, "conflicting notification for an attested batch")                    \
    X(WS_ERR_UNSAFE_ID, 20, 0, "unsafe query id")                                                  \
    X(WS_ERR_CRYPTO, 21, 0, "cryptographic library failure")                                       \
    X(WS_ERR_SINK_RETRY, 22, 1, "sink failure (retriable)")                                        \
    X(WS_ERR_SINK_PERMANENT, 23, 0, "sink failure (permanent)")                                    \
    X(WS_ERR_STOPPED, 24, 0, "stopped")                                                            \
    X(WS_ERR_PROOF, 25, 0, "proof does not verify")                                                \
    X(WS_ERR_ORDER, 26, 0, "records out of window-stream order")                                   \
    X(WS_ERR_UNSUPPORTED, 27, 0, "unsupported")                                                    \
    X(WS_ERR_AGAIN, 28, 1, "not ready yet")                                                        \
    X(WS_ERR_PERMISSION, 29, 0, "permission denied")                                               \
    X(WS_ERR_KEY_MISMATCH, 30, 0, "message key is not the query id")

typedef enum {
#define WS_X_ENUM(name, num, retr, text) name = num,
    WS_ERRORS(WS_X_ENUM)
#undef WS_X_ENUM
} ws_err_t;
/* One past the highest number (the table has no holes: err.c checks it at compile time). */
enum {
#define WS_X_COUNT(name, num, retr, text) +1
    WS_ERR__COUNT = 0 WS_ERRORS(WS_X_COUNT)
#undef WS_X_COUNT
};

const char *ws_strerror(ws_err_t err); /* "out of memory" */
const char *ws_err_name(ws_err_t err); /* "WS_ERR_NOMEM"  */
bool ws_err_retriable(ws_err_t err);   /* true: the engine may retry with backoff */

/* Milliseconds of CLOCK_MONOTONIC: deadlines, backoff and durations (never in a statement). */
int64_t ws_clock_ms(void);
int64_t ws_clock_us(void); /* CLOCK_MONOTONIC, microseconds */

/* snprintf into errbuf (if non-NULL) and return err: `return ws_fail(e, eb, el, "x %d", 1);` */
ws_err_t ws_fail(ws_err_t err, char *errbuf, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ------------------------------------------------------------------------------------------ */
/* SHA-256                                                                                        */

#define WS_HASH_LEN 32
#define WS_HASH_HEX_LEN 64 /* without the terminating NUL */

struct ws_sha256 {
    _Alignas(16) unsigned char opaque[128]; /* holds OpenSSL's SHA256_CTX */
};
void ws_sha256_init(struct ws_sha256 *h);
void ws_sha256_update(struct ws_sha256 *h, const void *data, size_t len);
void ws_sha256_final(struct ws_sha256 *h, uint8_t out[WS_HASH_LEN]);
void ws_sha256(const void *data, size_t len, uint8_t out[WS_HASH_LEN]);

/* out must hold 2*len+1 bytes; lowercase. */
void ws_hex_encode(const uint8_t *bin, size_t len, char *out);
/* Exactly 2*len hex digits (either case) -> len bytes. */
ws_err_t ws_hex_decode(const char *hex, size_t hexlen, uint8_t *out, size_t len) WS_MUST_CHECK;

/* ------------------------------------------------------------------------------------------ */
/* Multi-buffer SHA-256 (sha256_mb.c): independent jobs hashed together in lanes, on one of     */
/* several engines checked at run time (SHA-NI, AVX-512), else one by one (OpenSSL).              */

struct ws_sha256_job {
    const uint8_t *data;
    size_t len;      /* bytes of data; a block job: a multiple of 64 */
    int prefix;      /* message job: -1, or one byte hashed before data (0x00 leaf, 0x01 node) */
    uint8_t *out;    /* message job: receives SHA-256([prefix] || data[0..len)) */
    uint32_t *state; /* block job (out == NULL): 8-word state advanced over data's blocks */
};
/* Lane engines; values are stable (they index rates in struct ws_window_lanes_info). */
enum ws_sha256_lanes {
    WS_LANES_ONE = 0,    /* one job at a time, OpenSSL: every CPU */
    WS_LANES_SHANI = 1,  /* three SHA-NI lanes interleaved: SHA + SSSE3 + SSE4.1 */
    WS_LANES_AVX512 = 2, /* sixteen lanes in zmm registers: AVX-512F + BW, BMI2, OS-enabled */
    WS_LANES_AUTO = 3,   /* ws_window_lanes_force: measure and take the fastest */
};
#define WS_LANES_COUNT 3
/* Engine e runs on this CPU (and, but for WS_LANES_ONE, ws_sha256_mb_enable has not turned the
 * lanes off). Thread-safe. */
bool ws_sha256_lanes_supported(enum ws_sha256_lanes e);
/* Static name for logs: "one lane (OpenSSL)", "SHA-NI x3", "AVX-512 x16", "auto". */
const char *ws_sha256_lanes_name(enum ws_sha256_lanes e);
/* Run every job on engine e (WS_LANES_ONE if e is not supported); results equal ws_sha256 of
 * each message on every engine. Jobs must not share a state. */
void ws_sha256_mb_run_on(enum ws_sha256_lanes e, struct ws_sha256_job *jobs, size_t n);
/* The same on the engine best for a few jobs at a time (SHA-NI if present). */
void ws_sha256_mb_run(struct ws_sha256_job *jobs, size_t n);
/* Some multi-lane engine is in use: the CPU has one and ws_sha256_mb_enable has not turned the
 * lanes off. */
bool ws_sha256_mb_available(void);
/* Process-wide switch for tests, benches and operators (default on); off forces WS_LANES_ONE
 * everywhere, windows included. Returns the previous setting. */
bool ws_sha256_mb_enable(bool on);
/* SHA-NI lanes assemble padded blocks by AVX-512VL masked loads where the CPU has them (default
 * on); off: by 16-byte SSE loads and stores (byte-wise below 16 bytes), as on CPUs without. Same
 * digests either way; for tests and benches. Returns whether the vector assembly was in use. */
bool ws_sha256_mb_ni_vector(bool on);
/* A streaming digest kept as a raw state: init to the IV, advance with block jobs, then final
 * over the tail_len < 64 bytes after the last full block; total_len counts every byte. */
void ws_sha256_state_init(uint32_t state[8]);
void ws_sha256_state_final(uint32_t state[8], const uint8_t *tail, size_t tail_len,
                           uint64_t total_len, uint8_t out[WS_HASH_LEN]);

/* ------------------------------------------------------------------------------------------ */
/* Records: windowseal.record.v1 (FORMAT.md §2). Lengths of -1 mean null.                         */

struct ws_header {
    const char *name;
    uint16_t name_len;
    const void *value;
    int32_t value_len; /* -1: null */
};

struct ws_record {
    const char *topic;
    uint16_t topic_len;
    int32_t partition;
    int64_t offset;
    int64_t timestamp; /* ms since epoch, -1 none */
    uint8_t ts_type;   /* 0 none, 1 create time, 2 log-append time */
    const void *key;
    int32_t key_len; /* -1: null */
    const void *value;
    int32_t value_len; /* -1: null */
    const struct ws_header *headers;
    uint32_t header_count;
};

#define WS_RECORD_VERSION 0x01
#define WS_RECORD_MAX (256u * 1024 * 1024) /* decoder refuses encodings larger than this */

/* Bytes the encoding of r takes. */
size_t ws_record_encoded_size(const struct ws_record *r);
/* Encode into buf (cap >= ws_record_encoded_size(r)); returns bytes written, 0 if cap too small. */
size_t ws_record_encode(const struct ws_record *r, uint8_t *buf, size_t cap);
/*
 * Decode one encoding occupying exactly len bytes. Pointers in *out point into buf; headers are
 * written to the caller's array hdrs[0..max_hdrs). If the record has more headers than max_hdrs,
 * returns WS_ERR_TOO_LARGE with out->header_count set to the number needed (retry bigger).
 */
ws_err_t ws_record_decode(const uint8_t *buf, size_t len, struct ws_record *out,
                          struct ws_header *hdrs, uint32_t max_hdrs, char *errbuf,
                          size_t errlen) WS_MUST_CHECK;
/* Window-stream order (FORMAT.md §3): topic bytes, then partition, then offset. <0, 0, >0. */
int ws_record_cmp(const struct ws_record *a, const struct ws_record *b);

/* ------------------------------------------------------------------------------------------ */
/* Merkle tree (FORMAT.md §4): RFC 6962 hashing, built as leaves stream in, O(log n) memory.      */

#define WS_MERKLE_MAX_DEPTH 64

struct ws_merkle {
    uint64_t size;                                   /* leaves so far */
    uint8_t range[WS_MERKLE_MAX_DEPTH][WS_HASH_LEN]; /* compact range, largest subtree first */
    unsigned nrange;                                 /* == popcount(size) */
};

void ws_merkle_init(struct ws_merkle *m);
/* leaf hash = SHA-256(0x00 || data) */
void ws_merkle_leaf_hash(const void *data, size_t len, uint8_t out[WS_HASH_LEN]);
/* node hash = SHA-256(0x01 || left || right) */
void ws_merkle_node_hash(const uint8_t l[WS_HASH_LEN], const uint8_t r[WS_HASH_LEN],
                         uint8_t out[WS_HASH_LEN]);
void ws_merkle_add_leaf(struct ws_merkle *m, const void *data, size_t len);
void ws_merkle_add_hash(struct ws_merkle *m, const uint8_t leaf_hash[WS_HASH_LEN]);
/* Root over the leaves so far; SHA-256("") when empty. */
void ws_merkle_root(const struct ws_merkle *m, uint8_t out[WS_HASH_LEN]);
/* Rebuild from a saved compact range (size + its popcount(size) hashes, largest first). */
ws_err_t ws_merkle_restore(struct ws_merkle *m, uint64_t size, const uint8_t (*range)[WS_HASH_LEN],
                           unsigned nrange) WS_MUST_CHECK;

/*
 * Proofs (RFC 9162 2.1.3 / 2.1.4) generated from all leaf hashes in memory. path must hold
 * WS_MERKLE_MAX_DEPTH (inclusion) or 2*WS_MERKLE_MAX_DEPTH (consistency) hashes.
 */
ws_err_t ws_merkle_inclusion_proof(const uint8_t (*leaves)[WS_HASH_LEN], uint64_t size,
                                   uint64_t index, uint8_t (*path)[WS_HASH_LEN],
                                   size_t *pathlen) WS_MUST_CHECK;
ws_err_t ws_merkle_verify_inclusion(const uint8_t leaf_hash[WS_HASH_LEN], uint64_t index,
                                    uint64_t size, const uint8_t (*path)[WS_HASH_LEN],
                                    size_t pathlen, const uint8_t root[WS_HASH_LEN]) WS_MUST_CHECK;
ws_err_t ws_merkle_consistency_proof(const uint8_t (*leaves)[WS_HASH_LEN], uint64_t size1,
                                     uint64_t size2, uint8_t (*proof)[WS_HASH_LEN],
                                     size_t *prooflen) WS_MUST_CHECK;
ws_err_t ws_merkle_verify_consistency(uint64_t size1, uint64_t size2,
                                      const uint8_t root1[WS_HASH_LEN],
                                      const uint8_t root2[WS_HASH_LEN],
                                      const uint8_t (*proof)[WS_HASH_LEN],
                                      size_t prooflen) WS_MUST_CHECK;

/* ------------------------------------------------------------------------------------------ */
/* Window log (FORMAT.md §4): entry = 0x01 || u64 batchId || window root || stream digest.        */

#define WS_LOG_ENTRY_LEN (1 + 8 + WS_HASH_LEN + WS_HASH_LEN)
void ws_log_entry_encode(int64_t batch_id, const uint8_t root[WS_HASH_LEN],
                         const uint8_t stream_digest[WS_HASH_LEN], uint8_t out[WS_LOG_ENTRY_LEN]);
/* Append one window to a query's log (a ws_merkle over log entries). */
void ws_log_append(struct ws_merkle *log, int64_t batch_id, const uint8_t root[WS_HASH_LEN],
                   const uint8_t stream_digest[WS_HASH_LEN]);

/* ------------------------------------------------------------------------------------------ */
/* Window accumulator: feeds records in window-stream order into the stream digest, the Merkle
 * tree and per-source statistics; hands the window-stream bytes to an optional sink (the
 * evidence writer). Memory does not grow with the window. */

typedef ws_err_t (*ws_write_fn)(void *opaque, const void *buf, size_t len);

struct ws_window;
struct ws_window_source {
    char *topic;
    int32_t partition;
    int64_t from_offset, until_offset;
    uint64_t record_count;
    uint64_t bytes; /* sum of the record encodings' lengths */
};

struct ws_window *ws_window_new(ws_write_fn stream_out, void *opaque);
void ws_window_destroy(struct ws_window *w);
/* Replace the window's stream_out (NULL: none) between records; *old_out / *old_opaque (may be
 * NULL) get the previous one. A caller that takes the output over writes exactly the frames
 * (u32 length || encoding) of the records it adds, in order (engine/hasher.c does, on a thread
 * of its own). */
void ws_window_swap_output(struct ws_window *w, ws_write_fn out, void *opaque, ws_write_fn *old_out,
                           void **old_opaque);
/* Declare a source range; sources may be declared in any order, before adding records. */
ws_err_t ws_window_add_source(struct ws_window *w, const char *topic, int32_t partition,
                              int64_t from, int64_t until) WS_MUST_CHECK;
/* Records must arrive in window-stream order and inside a declared range. */
ws_err_t ws_window_add(struct ws_window *w, const struct ws_record *r, char *errbuf,
                       size_t errlen) WS_MUST_CHECK;
/* Add an already-encoded record (from an evidence archive); validated the same way. */
ws_err_t ws_window_add_encoded(struct ws_window *w, const uint8_t *enc, size_t len, char *errbuf,
                               size_t errlen) WS_MUST_CHECK;
/* Finish: fills the digests. Sources are returned sorted by (topic, partition). */
struct ws_window_result {
    uint8_t stream_digest[WS_HASH_LEN];
    uint8_t root[WS_HASH_LEN];
    uint64_t leaf_count;
    uint64_t bytes;
    bool has_time;
    int64_t ts_min, ts_max;                 /* ms, over records with timestamp >= 0 */
    const struct ws_window_source *sources; /* owned by the window */
    size_t nsources;
};
ws_err_t ws_window_finish(struct ws_window *w, struct ws_window_result *res) WS_MUST_CHECK;

/*
 * Lane choice. The engine that hashes fastest depends on the CPU model, not on its feature bits
 * (SHA-NI lanes made hashing 1.5x faster on AMD EPYC, none on Intel Emerald Rapids, where
 * AVX-512 lanes are) and on the record size (on AMD Zen 4 SHA-NI wins by 5-20% at 100 B, by
 * 40-50% at 1 KiB), so the first ws_window_new of a process runs two small synthetic windows
 * (512 records of 100-byte values, 64 of 1 KiB) on every supported engine, best of 5 each,
 * about 3.5 ms in all, and windows then use the fastest over both sizes. Every engine gives
 * byte-identical results (the calibration checks that too and drops any that disagrees); only
 * the speed differs.
 * Thread-safe; the calibration runs once even when threads race to it.
 */
struct ws_window_lanes_info {
    enum ws_sha256_lanes chosen; /* what new windows use */
    bool measured;               /* rates below were measured (false: forced or lanes off) */
    /* records/s per engine at 100-byte and 1 KiB values, 0 where unsupported or not measured;
     * score: the engine's time relative to one lane's, summed over both (the lowest is chosen) */
    double rate[WS_LANES_COUNT], rate_1k[WS_LANES_COUNT], score[WS_LANES_COUNT];
    double calib_ms; /* wall time the calibration took */
};
/* The choice (calibrating now if no window has been made yet) and its figures. */
void ws_window_lanes(struct ws_window_lanes_info *info);
/* One line for the log: "hash lanes: SHA-NI x3 (fastest measured, 100 B / 1 KiB values; one
 * lane (OpenSSL) 2.99 / 0.73 M rec/s; ...; calibration 3.5 ms)". Always NUL-terminated;
 * returns info's chosen engine. */
enum ws_sha256_lanes ws_window_lanes_describe(char *buf, size_t len);
/* Override: new windows use engine e (WS_LANES_AUTO: the measured choice); an unsupported e
 * falls back to WS_LANES_ONE. For operators on CPUs where the measurement misleads, and for tests
 * and benches that compare the engines. Returns the previous override. */
enum ws_sha256_lanes ws_window_lanes_force(enum ws_sha256_lanes e);

/* ------------------------------------------------------------------------------------------ */
/* Evidence archive (FORMAT.md §3): one standard LZ4 frame of the window stream.                  */

struct ws_evidence_writer;
/* Compressed output goes to out() in blocks of about block_size bytes (0: 1 MiB). */
struct ws_evidence_writer *ws_evidence_writer_new(ws_write_fn out, void *opaque, size_t block_size);
ws_err_t ws_evidence_write(struct ws_evidence_writer *e, const void *buf, size_t len) WS_MUST_CHECK;
/* Writes the frame end marker and flushes. */
ws_err_t ws_evidence_finish(struct ws_evidence_writer *e) WS_MUST_CHECK;
void ws_evidence_writer_destroy(struct ws_evidence_writer *e);
/* Adapter so a ws_window can stream straight into a writer: opaque = the writer. */
ws_err_t ws_evidence_write_cb(void *writer, const void *buf, size_t len);

/* Reads compressed bytes: fills buf with up to cap bytes, *got = 0 at end of input. */
typedef ws_err_t (*ws_read_fn)(void *opaque, void *buf, size_t cap, size_t *got);
struct ws_evidence_reader;
struct ws_evidence_reader *ws_evidence_reader_new(ws_read_fn in, void *opaque);
/*
 * Next record encoding of the window stream: *rec points into the reader's buffer, valid until
 * the next call. At a clean end returns WS_OK with *rec == NULL. Truncated or corrupt input is
 * WS_ERR_TRUNCATED / WS_ERR_MALFORMED with a reason in errbuf.
 */
ws_err_t ws_evidence_next(struct ws_evidence_reader *r, const uint8_t **rec, size_t *len,
                          char *errbuf, size_t errlen) WS_MUST_CHECK;
/* SHA-256 of the decompressed window stream read so far (the stream digest at the end). */
void ws_evidence_stream_digest(const struct ws_evidence_reader *r, uint8_t out[WS_HASH_LEN]);
void ws_evidence_reader_destroy(struct ws_evidence_reader *r);

/* ------------------------------------------------------------------------------------------ */
/* Keys (FORMAT.md §6): Ed25519; private key PKCS#8 PEM, public key SPKI PEM.                     */

#define WS_KEYID_LEN WS_HASH_HEX_LEN
struct ws_key {
    uint8_t pk[32];
    uint8_t sk[64]; /* libsodium's seed||pk form; zero when has_secret is false */
    bool has_secret;
    char keyid[WS_KEYID_LEN + 1]; /* lowercase hex SHA-256 of pk */
};

ws_err_t ws_key_generate(struct ws_key *k) WS_MUST_CHECK;
/* Parse a PKCS#8 private key PEM or an SPKI public key PEM from memory. */
ws_err_t ws_key_from_pem(const char *pem, size_t len, struct ws_key *k, char *errbuf,
                         size_t errlen) WS_MUST_CHECK;
/* PEM text into out (NUL-terminated); returns WS_ERR_TOO_LARGE if cap is too small (256 is). */
ws_err_t ws_key_private_pem(const struct ws_key *k, char *out, size_t cap) WS_MUST_CHECK;
ws_err_t ws_key_public_pem(const struct ws_key *k, char *out, size_t cap) WS_MUST_CHECK;
/* sodium_memzero the whole struct. */
void ws_key_wipe(struct ws_key *k);

/* ------------------------------------------------------------------------------------------ */
/* DSSE (FORMAT.md §6)                                                                            */

#define WS_PAYLOAD_TYPE "application/vnd.in-toto+json"
#define WS_ENVELOPE_MAX (64u * 1024 * 1024)

/* PAE bytes, malloc'ed into *out. */
ws_err_t ws_dsse_pae(const char *type, const void *body, size_t len, uint8_t **out,
                     size_t *outlen) WS_MUST_CHECK;
/* Sign payload; *envelope is malloc'ed compact JSON with sorted keys (NUL-terminated). */
ws_err_t ws_dsse_sign(const struct ws_key *k, const char *type, const void *payload, size_t len,
                      char **envelope, size_t *envlen) WS_MUST_CHECK;
/*
 * Parse an envelope and verify it with any of keys[0..nkeys) (standard or URL-safe base64,
 * unknown fields ignored). On success *payload (malloc'ed, NUL-terminated) is the decoded
 * statement and *which the index of the key that verified. Errors: WS_ERR_MALFORMED (not an
 * envelope), WS_ERR_SIGNATURE (no signature verifies).
 */
ws_err_t ws_dsse_open(const char *envelope, size_t len, const struct ws_key *keys, size_t nkeys,
                      char **payload, size_t *payload_len, size_t *which, char *errbuf,
                      size_t errlen) WS_MUST_CHECK;

/* ------------------------------------------------------------------------------------------ */
/* Statement (FORMAT.md §5). Built with jansson, compact, keys sorted: a pure function of its input. */

#define WS_STATEMENT_TYPE "https://in-toto.io/Statement/v1"
#define WS_PREDICATE_TYPE "https://makoto.dev/stream-window/v1"

struct ws_out_file {
    const char *name;
    bool has_digest;
    uint8_t sha256[WS_HASH_LEN];
    int64_t bytes;     /* -1: unknown */
    const char *error; /* NULL unless the file could not be read */
};
struct json_t; /* jansson's */
struct ws_output {
    const char *name;
    const char *snapshot_id; /* may be NULL: what the job sent */
    const struct ws_out_file *files;
    size_t nfiles;
    /* An Iceberg output resolved from its catalog (FORMAT.md §5 "Iceberg outputs"): the
     * `iceberg` object as iceberg/ built it, `discrepancy` when the job's own list differs (may
     * be NULL), and the added data files that were read whole, each a subject. files is then
     * not in the statement (the job's list was compared, not hashed). */
    const struct json_t *iceberg;
    const struct json_t *discrepancy;
    const struct ws_out_file *subjects;
    size_t nsubjects;
};
struct ws_gap {
    int64_t from_batch, until_batch; /* half-open: [from, until) were never attested */
};

struct ws_statement_in {
    const char *query_id;
    const char *name;   /* may be NULL */
    const char *run_id; /* may be NULL */
    int64_t batch_id;
    int64_t observed_at_ms; /* the notification's Kafka timestamp */
    const struct ws_window_result *window;
    const char *const *ignored_sources; /* may be NULL */
    size_t nignored;
    bool has_reported_input_rows; /* window.reportedInputRows: Spark's numInputRows, summed */
    int64_t reported_input_rows;
    /* chain */
    bool has_previous;
    const char *previous_window_id;
    uint8_t previous_root[WS_HASH_LEN];
    uint8_t previous_attestation_digest[WS_HASH_LEN];
    uint64_t chain_length;
    uint8_t log_root[WS_HASH_LEN];
    const char *genesis_window_id;
    const struct ws_gap *gaps;
    size_t ngaps;
    const struct ws_output *outputs;
    size_t noutputs;
    /* collector */
    const char *group_id;
    const char *version;
    const char *keyid;
};
/* *json is malloc'ed, NUL-terminated; the bytes that get signed. */
ws_err_t ws_statement_build(const struct ws_statement_in *in, char **json,
                            size_t *len) WS_MUST_CHECK;
/* RFC 3339 UTC with milliseconds: 2026-11-22T03:19:36.123Z. out must hold 32 bytes. */
void ws_format_time_ms(int64_t ms, char out[32]);
/* The window id "<queryId>/<batchId>" (batch id in decimal, no padding). */
#define WS_WINDOW_ID_MAX 200
void ws_window_id(const char *query_id, int64_t batch_id, char out[WS_WINDOW_ID_MAX]);
/* "<queryId>/<batch20>" + suffix, e.g. ".dsse.json"; out must hold 256 bytes. */
void ws_object_name(const char *query_id, int64_t batch_id, const char *suffix, char out[256]);
/* Query ids allowed in object names (FORMAT.md §9): [A-Za-z0-9._-]{1,128}, not starting with '.'. */
bool ws_query_id_safe(const char *id, size_t len);

/* ------------------------------------------------------------------------------------------ */
/* Notifications (FORMAT.md §1): the native shape and Spark's StreamingQueryProgress JSON.        */

#define WS_OFFSET_UNRESOLVED (-2) /* fromOffset of a batch-0 source whose startOffset was null */

struct ws_notif_source {
    char *topic;
    int32_t partition;
    int64_t from_offset, until_offset; /* [from, until); from may be WS_OFFSET_UNRESOLVED */
    uint32_t input;                    /* index into inputs[] of the Kafka source it came from */
};
/* One Kafka source of the notification (native shape: one for all its ranges). */
struct ws_notif_input {
    int64_t num_input_rows; /* Spark's numInputRows for it; -1 when not reported */
    bool unresolved;        /* batch 0, startOffset null: its ranges start at the low watermark,
                               and the records there must number exactly num_input_rows */
};
struct ws_notif_output {
    char *name;
    char *snapshot_id; /* NULL if absent; numbers are kept as their decimal text */
    char **files;
    size_t nfiles;
};
enum ws_notif_shape { WS_NOTIF_NATIVE = 1, WS_NOTIF_PROGRESS = 2 };

struct ws_notification {
    enum ws_notif_shape shape;
    char *query_id;
    char *run_id; /* NULL if absent */
    char *name;   /* NULL if absent */
    int64_t batch_id;
    struct ws_notif_source *sources; /* sorted by (topic bytes, partition), no duplicates */
    size_t nsources;
    struct ws_notif_output *outputs;
    size_t noutputs;
    char **ignored_sources; /* progress shape: descriptions of non-Kafka sources, in order */
    size_t nignored;
    struct ws_notif_input *inputs; /* the Kafka sources, in notification order (>= 1 unless idle) */
    size_t ninputs;
    int64_t reported_input_rows; /* sum of numInputRows over Kafka sources; -1: not reported */
    bool idle; /* progress of a trigger that ran no batch: only the query and batch ids are set */
};

struct ws_notif_opts {
    size_t max_bytes;            /* 0: 1 MiB */
    size_t max_sources;          /* 0: 100000 */
    size_t max_files;            /* 0: 100000 (over all outputs) */
    bool allow_unresolved_start; /* batch 0 with startOffset null -> WS_OFFSET_UNRESOLVED */
    bool check_key;              /* the Kafka message key must equal the query id */
    const char *key;             /* with check_key: the message key, NULL for a null key */
    size_t key_len;
};

/*
 * Parse and validate one notification value. On failure nothing needs freeing and errbuf names
 * what is wrong (the reason that goes into the dead-letter header). Errors: WS_ERR_MALFORMED
 * (not JSON, unknown shape, wrong types, duplicate partitions), WS_ERR_TOO_LARGE,
 * WS_ERR_UNSAFE_ID (query id not allowed in object names), WS_ERR_INVALID (negative or inverted
 * offsets, unresolved start not allowed), WS_ERR_KEY_MISMATCH (opts->check_key and the message
 * key is not the query id), WS_ERR_UNSUPPORTED (no Kafka source to re-read). The rules of
 * FORMAT.md §1.1 apply in its order: key, idle trigger (success
 * with out->idle set), sources, batch 0.
 */
ws_err_t ws_notification_parse(const char *json, size_t len, const struct ws_notif_opts *opts,
                               struct ws_notification *out, char *errbuf,
                               size_t errlen) WS_MUST_CHECK;
void ws_notification_free(struct ws_notification *n);
/* Digest of the sorted (topic, partition, from, until) list: equal iff the sources are equal. */
void ws_notification_sources_digest(const struct ws_notification *n, uint8_t out[WS_HASH_LEN]);

/* ------------------------------------------------------------------------------------------ */
/* Checkpoints: a query's window log (size, root) as a transparency-dev signed note:              */
/* "windowseal/<queryId>\n<size>\n<base64 root>\n\n— <keyname> <base64(keyhash||sig)>\n".         */

#define WS_CHECKPOINT_KEYNAME "windowseal"

/* sumdb note key hash for Ed25519: SHA-256(keyname || "\n" || 0x01 || pk)[0..4). */
void ws_checkpoint_key_hash(const char *keyname, const uint8_t pk[32], uint8_t out[4]);
/* Key names: non-empty printable ASCII without spaces or '+'. */
bool ws_checkpoint_keyname_valid(const char *name, size_t len);
/* Sign a checkpoint; *out is malloc'ed, NUL-terminated, *len bytes. k must hold the secret. */
ws_err_t ws_checkpoint_sign(const struct ws_key *k, const char *keyname, const char *query_id,
                            uint64_t size, const uint8_t root[32], char **out,
                            size_t *len) WS_MUST_CHECK;
/*
 * Parse a checkpoint and accept it if a signature line by keyname verifies with any of
 * keys[0..nkeys) (other names' lines, e.g. witness cosignatures, are skipped). query_id_out
 * holds 129 bytes. Errors: WS_ERR_MALFORMED (not a windowseal checkpoint), WS_ERR_SIGNATURE.
 */
ws_err_t ws_checkpoint_verify(const char *note, size_t len, const struct ws_key *keys, size_t nkeys,
                              const char *keyname, char *query_id_out, uint64_t *size,
                              uint8_t root[32], char *errbuf, size_t errlen) WS_MUST_CHECK;

#endif /* WS_WINDOW_H */
