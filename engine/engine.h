/*
 * engine/engine.h — the attestation engine: the window life, from notification to commit.
 *
 *   ws_engine_*   the window life: notification -> records -> statement -> sinks -> commit
 *   ws_head_*     the chain head, the engine's persisted state (one record per query in the
 *                 heads topic): what any instance needs to continue a chain
 *   ws_verify_*   check one envelope (+ its evidence): used by the engine when it resumes from
 *                 the spool or adopts an envelope a sink already holds, and by the commands
 *                 (verify, audit, prove, demo)
 *
 * The commands built on it are in cli/cli.h; the spool and output digests in disk/disk.h.
 */
#ifndef WS_ENGINE_H
#define WS_ENGINE_H

#include "window/window.h"
#include "config/config.h"

/* ------------------------------------------------------------------------------------------ */
/* The engine handle (engine.c): `windowseal run` and `demo` drive it.                            */

struct ws_engine;
struct ws_engine_stats {
    uint64_t windows, records, bytes, deadlettered, conflicts, duplicates, gaps, retries;
    uint64_t sink_failures;
    uint64_t idle_triggers, input_rows_mismatches;
    uint64_t rebalances; /* assignment changes seen: each drops what was in hand (I2) */
    uint64_t given_back; /* notifications polled before the heads loaded, given back to Kafka */
};

/* Reads the signing key and creates clients, spool and sinks; nothing is consumed yet. */
ws_err_t ws_engine_new(const struct ws_config *cfg, struct ws_engine **out, char *errbuf,
                       size_t errlen) WS_MUST_CHECK;
/* One turn: poll for a notification (up to timeout_ms) and move every window along. */
ws_err_t ws_engine_step(struct ws_engine *e, int timeout_ms) WS_MUST_CHECK;
/* Run until ws_engine_stop (async-signal-safe) then finish the window in hand. */
ws_err_t ws_engine_run(struct ws_engine *e) WS_MUST_CHECK;
void ws_engine_stop(struct ws_engine *e);
/* No window in hand: every polled notification is done and committed. */
bool ws_engine_idle(const struct ws_engine *e);
void ws_engine_get_stats(const struct ws_engine *e, struct ws_engine_stats *st);
const char *ws_engine_keyid(const struct ws_engine *e);
void ws_engine_destroy(struct ws_engine *e);

/* ------------------------------------------------------------------------------------------ */
/* Chain head (FORMAT.md §8)                                                                      */

/*
 * The engine's persisted state: what resuming a query needs, one record per query in the heads
 * topic (key = query id), read back by whichever instance continues the chain.
 */
struct ws_head {
    char query_id[129];
    int64_t last_batch;
    char genesis_window_id[WS_WINDOW_ID_MAX];
    uint8_t last_root[WS_HASH_LEN];
    uint8_t last_statement_digest[WS_HASH_LEN];
    uint8_t last_sources_digest[WS_HASH_LEN];
    struct ws_merkle log; /* the window log: size = chain length */
};

/* Compact JSON for the heads topic; *out malloc'ed. */
ws_err_t ws_head_encode(const struct ws_head *h, char **out, size_t *len) WS_MUST_CHECK;
/* Strict parse: a record that is not a valid head is refused with a reason. */
ws_err_t ws_head_decode(const char *json, size_t len, struct ws_head *h, char *errbuf,
                        size_t errlen) WS_MUST_CHECK;

/* ------------------------------------------------------------------------------------------ */
/* Verifying an attestation (verify.c).                                                           */

/* What a verified statement says, for callers that check chains (audit, demo). */
struct ws_verified {
    char query_id[160];
    char window_id[200];
    int64_t batch_id;
    uint8_t stream_digest[WS_HASH_LEN];
    uint8_t root[WS_HASH_LEN];
    uint64_t leaf_count;
    uint64_t record_count, bytes;
    uint8_t statement_digest[WS_HASH_LEN]; /* SHA-256 of the statement bytes */
    uint8_t sources_digest[WS_HASH_LEN];   /* ws_notification_sources_digest of window.sources */
    uint64_t chain_length;
    uint8_t log_root[WS_HASH_LEN];
    char genesis_window_id[200];
    bool has_previous;
    char previous_window_id[200];
    uint8_t previous_root[WS_HASH_LEN];
    uint8_t previous_attestation_digest[WS_HASH_LEN];
    size_t ngaps;
    int64_t gaps[16][2]; /* the first 16 gaps, [from, until) */
    bool evidence_checked;
    size_t key_index; /* which of the keys verified the signature */
};

/*
 * Verify an envelope with any of keys[0..nkeys): signature, statement shape (FORMAT.md §5); with an
 * evidence path also recompute stream digest, Merkle root, leaf count, per-source counts and
 * bytes, ranges and order. WS_ERR_SIGNATURE / WS_ERR_VERIFY / WS_ERR_MALFORMED say what failed
 * in errbuf; WS_ERR_NOT_FOUND / WS_ERR_IO for an unreadable evidence file.
 */
ws_err_t ws_verify_envelope(const char *env, size_t envlen, const struct ws_key *keys, size_t nkeys,
                            const char *evidence_path, struct ws_verified *out, char *errbuf,
                            size_t errlen) WS_MUST_CHECK;

#endif /* WS_ENGINE_H */
