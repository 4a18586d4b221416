/*
 * audit.c — `windowseal audit DIR --pubkey PUB [--pubkey PUB2]...`: every chain under a
 * file-sink directory, checked from the first window to the last.
 *
 * Per query directory, envelopes are visited in name order (batch ids are zero-padded, so name
 * order is batch order). Each window is verified with its evidence (ws_verify_envelope), then
 * linked to the one before it: previousWindow names it and carries its Merkle root and statement
 * digest, chainLength grows by one, genesis stays, and a jump in batch ids must be declared as a
 * gap. The window log is replayed (ws_log_append) so that every logRoot is recomputed, not read.
 * Memory holds one window at a time plus the directory listing.
 */
#include "engine/internal.h"

#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct chain {
    bool have_prev;
    struct ws_verified prev;
    struct ws_merkle log;
    uint64_t windows, records, gaps;
};

static bool gap_declared(const struct ws_verified *v, int64_t from, int64_t until)
{
    /* The missing batches [from, until) must be covered by the declared gaps. */
    int64_t at = from;
    for (bool moved = true; moved && at < until;) {
        moved = false;
        for (size_t i = 0; i < v->ngaps; i++)
            if (v->gaps[i][0] <= at && v->gaps[i][1] > at) {
                at = v->gaps[i][1];
                moved = true;
            }
    }
    return at >= until;
}

static bool link_check(struct chain *c, const struct ws_verified *v, char *why, size_t whylen)
{
    uint8_t root[WS_HASH_LEN];
    int64_t expect_batch = c->have_prev ? c->prev.batch_id + 1 : 0;

    if (!c->have_prev) {
        if (v->has_previous) {
            snprintf(why, whylen, "its previous window %s is missing", v->previous_window_id);
            return false;
        }
    } else {
        if (!v->has_previous || strcmp(v->previous_window_id, c->prev.window_id) != 0) {
            snprintf(why, whylen, "previousWindow is %s, but the window before it is %s",
                     v->has_previous ? v->previous_window_id : "(none)", c->prev.window_id);
            return false;
        }
        if (memcmp(v->previous_root, c->prev.root, WS_HASH_LEN) != 0 ||
            memcmp(v->previous_attestation_digest, c->prev.statement_digest, WS_HASH_LEN) != 0) {
            snprintf(why, whylen, "previousWindow's merkleRoot or attestationDigest does not match "
                                  "the attestation of %s",
                     c->prev.window_id);
            return false;
        }
        if (strcmp(v->genesis_window_id, c->prev.genesis_window_id) != 0) {
            snprintf(why, whylen, "genesisWindowId changed");
            return false;
        }
    }
    if (v->batch_id < expect_batch) {
        snprintf(why, whylen, "batch %lld comes after batch %lld", (long long)v->batch_id,
                 (long long)c->prev.batch_id);
        return false;
    }
    if (v->batch_id > expect_batch && c->have_prev &&
        !gap_declared(v, expect_batch, v->batch_id)) {
        snprintf(why, whylen, "batches %lld..%lld are missing and not declared as a gap",
                 (long long)expect_batch, (long long)v->batch_id - 1);
        return false;
    }
    ws_log_append(&c->log, v->batch_id, v->root, v->stream_digest);
    ws_merkle_root(&c->log, root);
    if (c->log.size != v->chain_length || memcmp(root, v->log_root, WS_HASH_LEN) != 0) {
        snprintf(why, whylen, "chainLength/logRoot (%llu) do not match the replayed window log "
                              "(%llu)",
                 (unsigned long long)v->chain_length, (unsigned long long)c->log.size);
        return false;
    }
    return true;
}

static int only_envelopes(const struct dirent *d)
{
    size_t n = strlen(d->d_name);
    return n > 10 && strcmp(d->d_name + n - 10, ".dsse.json") == 0;
}

/* One query directory; prints its line; returns the exit status. */
static int audit_query(const char *dir, const char *qid, const struct ws_key *keys, size_t nkeys)
{
    struct dirent **names = NULL;
    struct chain c;
    struct ws_verified v;
    char path[PATH_MAX], ev[PATH_MAX], why[1024], *env = NULL;
    size_t envlen;
    int n, rc = WS_EXIT_OK;

    memset(&c, 0, sizeof c);
    ws_merkle_init(&c.log);
    n = scandir(dir, &names, only_envelopes, alphasort);
    if (n < 0) {
        printf("FAIL %s: cannot list %s\n", qid, dir);
        return WS_EXIT_VERIFY;
    }
    for (int i = 0; i < n && rc == WS_EXIT_OK; i++) {
        size_t len = strlen(names[i]->d_name);
        snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
        snprintf(ev, sizeof ev, "%s/%.*s.evidence.lz4", dir, (int)(len - 10), names[i]->d_name);
        if (ws_file_read(path, WS_ENVELOPE_MAX, &env, &envlen, why, sizeof why) ||
            ws_verify_envelope(env, envlen, keys, nkeys, ev, &v, why, sizeof why)) {
            printf("FAIL %s: %s: %s\n", qid, names[i]->d_name, why);
            rc = WS_EXIT_VERIFY;
        } else if (strcmp(v.query_id, qid) != 0) {
            printf("FAIL %s: %s: attests query %s, not %s\n", qid, names[i]->d_name, v.query_id,
                   qid);
            rc = WS_EXIT_VERIFY;
        } else {
            char expect[256];
            ws_object_name(qid, v.batch_id, ".dsse.json", expect);
            if (strcmp(expect + strlen(qid) + 1, names[i]->d_name) != 0) {
                printf("FAIL %s: %s: holds window %s (misplaced or swapped)\n", qid,
                       names[i]->d_name, v.window_id);
                rc = WS_EXIT_VERIFY;
            } else if (!link_check(&c, &v, why, sizeof why)) {
                printf("FAIL %s: window %s: %s\n", qid, v.window_id, why);
                rc = WS_EXIT_VERIFY;
            }
        }
        free(env);
        env = NULL;
        if (rc == WS_EXIT_OK) {
            c.prev = v;
            c.have_prev = true;
            c.windows++;
            c.records += v.record_count;
            c.gaps += v.ngaps;
        }
    }
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
    if (rc == WS_EXIT_OK) {
        char root[WS_HASH_HEX_LEN + 1];
        uint8_t r[WS_HASH_LEN];
        ws_merkle_root(&c.log, r);
        ws_hex_encode(r, WS_HASH_LEN, root);
        if (c.windows == 0)
            printf("ok   %s: no windows\n", qid);
        else
            printf("ok   %s: %llu windows (%s .. batch %lld), %llu records, %llu gaps, log root "
                   "%s\n",
                   qid, (unsigned long long)c.windows, c.prev.genesis_window_id,
                   (long long)c.prev.batch_id, (unsigned long long)c.records,
                   (unsigned long long)c.gaps, root);
    }
    return rc;
}

int ws_cmd_audit(int argc, char **argv)
{
    const char *dir = NULL, *v;
    char *pubpaths[16];
    size_t npub = 0;
    bool missing = false;
    struct ws_key keys[16];
    struct dirent **qs = NULL;
    char path[PATH_MAX];
    int n, rc = WS_EXIT_OK, bad = 0, good = 0;

    for (int i = 1; i < argc; i++) {
        if ((v = ws_cli_opt(argc, argv, &i, "--pubkey", &missing))) {
            if (npub == 16)
                goto usage;
            pubpaths[npub++] = (char *)v;
        } else if (argv[i][0] == '-' || dir || missing) {
            goto usage;
        } else {
            dir = argv[i];
        }
    }
    if (!dir || !npub || missing)
        goto usage;
    if (!ws_cli_load_pubkeys("audit", pubpaths, npub, keys))
        return WS_EXIT_USAGE;
    n = scandir(dir, &qs, NULL, alphasort);
    if (n < 0) {
        fprintf(stderr, "windowseal audit: cannot list %s\n", dir);
        return WS_EXIT_USAGE;
    }
    for (int i = 0; i < n; i++) {
        struct stat st;
        const char *q = qs[i]->d_name;
        snprintf(path, sizeof path, "%s/%s", dir, q);
        if (q[0] != '.' && stat(path, &st) == 0 && S_ISDIR(st.st_mode) &&
            ws_query_id_safe(q, strlen(q))) {
            if (audit_query(path, q, keys, npub) == WS_EXIT_OK)
                good++;
            else
                bad++, rc = WS_EXIT_VERIFY;
        }
        free(qs[i]);
    }
    free(qs);
    printf("%s: %d chains verified, %d failed\n", rc == WS_EXIT_OK ? "verdict: valid" :
                                                                      "verdict: INVALID",
           good, bad);
    return rc;
usage:
    fprintf(stderr, "usage: windowseal audit DIR --pubkey PUB [--pubkey PUB2]...\n");
    return WS_EXIT_USAGE;
}
