/*
 * engine/engine.h — the attestation engine and the commands built on it.
 *
 *   ws_verify_*   check one envelope (+ its evidence): shared by verify, audit and demo
 *   ws_engine_*   the window life: notification -> records -> statement -> sinks -> commit
 *   ws_cmd_*      the command-line surface of SPEC 10 (argv in, exit status out)
 */
#ifndef WS_ENGINE_H
#define WS_ENGINE_H

#include "window/window.h"
#include "config/config.h"

/* Exit statuses (SPEC 10). */
enum { WS_EXIT_OK = 0, WS_EXIT_VERIFY = 1, WS_EXIT_USAGE = 2, WS_EXIT_RUNTIME = 3 };

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
 * Verify an envelope with any of keys[0..nkeys): signature, statement shape (SPEC 6); with an
 * evidence path also recompute stream digest, Merkle root, leaf count, per-source counts and
 * bytes, ranges and order. WS_ERR_SIGNATURE / WS_ERR_VERIFY / WS_ERR_MALFORMED say what failed
 * in errbuf; WS_ERR_NOT_FOUND / WS_ERR_IO for an unreadable evidence file.
 */
ws_err_t ws_verify_envelope(const char *env, size_t envlen, const struct ws_key *keys, size_t nkeys,
                            const char *evidence_path, struct ws_verified *out, char *errbuf,
                            size_t errlen) WS_MUST_CHECK;

/* Commands: each takes the arguments after the command name and returns an exit status. */
int ws_cmd_keygen(int argc, char **argv);
int ws_cmd_verify(int argc, char **argv);
int ws_cmd_run(int argc, char **argv);
int ws_cmd_demo(int argc, char **argv);
int ws_cmd_audit(int argc, char **argv);
int ws_cmd_prove(int argc, char **argv); /* prove.c: Merkle proofs and checkpoints */
int ws_cmd_config(int argc, char **argv);

/* Shared by the commands: "--name VALUE" / "--name=VALUE" at argv[*i] (advances *i). */
const char *ws_cli_opt(int argc, char **argv, int *i, const char *name, bool *missing);
/* -c CONFIG / WINDOWSEAL_CONFIG and --set from argv[first..]: 0 with *out, else an exit status. */
int ws_cli_config(int argc, char **argv, int first, const char *cmd, const char *usage,
                  struct ws_config **out);
/* Load public keys (a private key file is accepted and reduced to its public half). */
bool ws_cli_load_pubkeys(const char *cmd, char **paths, size_t n, struct ws_key *keys);

#endif /* WS_ENGINE_H */
