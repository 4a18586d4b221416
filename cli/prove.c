/*
 * prove.c — `windowseal prove`: self-contained Merkle proofs an auditor can hand to someone
 * who holds only the signed envelopes and a public key.
 *
 *   prove record      --envelope ENV --evidence EV --record TOPIC:PARTITION:OFFSET --pubkey PUB
 *       RFC 9162 inclusion proof of one record in its window's Merkle tree. The envelope is
 *       verified *with* the evidence first (ws_verify_envelope recomputes the root), so a proof
 *       is never cut from evidence that does not match what was signed. Then the evidence is
 *       read once more for the leaf hashes: 32 bytes per record (a 1 M-record window: 32 MB).
 *   prove consistency --from ENV_A --to ENV_B --log DIR|s3://BUCKET/PREFIX --pubkey PUB
 *                     [--endpoint URL] [--region R] [--virtual-hosted]
 *       RFC 9162 consistency proof between the two attestations' window-log sizes
 *       (chainLength). The log is replayed from the verified envelopes in DIR/<queryId>/ (or DIR
 *       itself) in batch order; both signed logRoots must come out of the replay, otherwise the
 *       directory is not the history the envelopes commit to. 32 bytes per window. A bucket
 *       prefix is read as a directory is (cli/audit_tree.c: listing, GETs, env credentials).
 *   prove check PROOF.json --envelope ENV --pubkey PUB           (inclusion, no evidence needed)
 *   prove check PROOF.json --from ENV_A --to ENV_B --pubkey PUB  (consistency)
 *       Roots and sizes are taken from the signed envelopes, never from the proof file.
 *   prove checkpoint  --envelope ENV --key PRIV [--keyname N] [--out FILE]
 *       The signed note (window/checkpoint.c) for the envelope's chain position: what the engine
 *       writes as <queryId>/checkpoint, for operators re-issuing one and for tests.
 *   prove vkey        --pubkey PUB [--keyname N]
 *       The note verifier key "<name>+<hash>+<base64(0x01||pk)>" for witnesses (Go's note).
 *
 * Exit status: 0 proof made / verified, 1 a verification failed (or the record is not in the
 * window), 2 usage or unreadable input, 3 runtime failure.
 */
#include "cli/cli.h"
#include "cli/audit_tree.h"
#include "sinks/sink.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define INCLUSION_TYPE "windowseal.inclusion-proof.v1"
#define CONSISTENCY_TYPE "windowseal.consistency-proof.v1"
#define MAX_KEYS 16
#define PROOF_FILE_MAX ((size_t)2 * WS_RECORD_MAX + (1u << 20)) /* hex of one record + JSON */

struct opts {
    const char *envelope, *evidence, *record, *from, *to, *log, *key, *keyname, *out, *proof;
    struct ws_audit_s3_opts s3; /* --log s3://... */
    char *pubpaths[MAX_KEYS];
    size_t npub;
};

static int usage(void)
{
    fprintf(
        stderr,
        "usage: windowseal prove record --envelope ENV --evidence EV "
        "--record TOPIC:PARTITION:OFFSET --pubkey PUB [--pubkey PUB]...\n"
        "       windowseal prove consistency --from ENV_A --to ENV_B --log DIR|s3://BUCKET/PREFIX "
        "--pubkey PUB [--endpoint URL] [--region R] [--virtual-hosted]\n"
        "       windowseal prove check PROOF.json --envelope ENV --pubkey PUB\n"
        "       windowseal prove check PROOF.json --from ENV_A --to ENV_B --pubkey PUB\n"
        "       windowseal prove checkpoint --envelope ENV --key PRIV [--pubkey PUB] "
        "[--keyname NAME] [--out FILE]\n"
        "       windowseal prove vkey --pubkey PUB [--keyname NAME]\n");
    return WS_EXIT_USAGE;
}

static bool parse_opts(int argc, char **argv, struct opts *o)
{
    bool missing = false;
    const char *v;

    memset(o, 0, sizeof *o);
    o->keyname = WS_CHECKPOINT_KEYNAME;
    for (int i = 1; i < argc; i++) {
        if ((v = ws_cli_opt(argc, argv, &i, "--pubkey", &missing))) {
            if (o->npub == MAX_KEYS)
                return false;
            o->pubpaths[o->npub++] = (char *)v;
        } else if ((v = ws_cli_opt(argc, argv, &i, "--envelope", &missing))) {
            o->envelope = v;
        } else if ((v = ws_cli_opt(argc, argv, &i, "--evidence", &missing))) {
            o->evidence = v;
        } else if ((v = ws_cli_opt(argc, argv, &i, "--record", &missing))) {
            o->record = v;
        } else if ((v = ws_cli_opt(argc, argv, &i, "--from", &missing))) {
            o->from = v;
        } else if ((v = ws_cli_opt(argc, argv, &i, "--to", &missing))) {
            o->to = v;
        } else if ((v = ws_cli_opt(argc, argv, &i, "--log", &missing))) {
            o->log = v;
        } else if ((v = ws_cli_opt(argc, argv, &i, "--endpoint", &missing))) {
            o->s3.endpoint = v;
        } else if ((v = ws_cli_opt(argc, argv, &i, "--region", &missing))) {
            o->s3.region = v;
        } else if (!strcmp(argv[i], "--virtual-hosted")) {
            o->s3.virtual_hosted = true;
        } else if ((v = ws_cli_opt(argc, argv, &i, "--key", &missing))) {
            o->key = v;
        } else if ((v = ws_cli_opt(argc, argv, &i, "--keyname", &missing))) {
            o->keyname = v;
        } else if ((v = ws_cli_opt(argc, argv, &i, "--out", &missing))) {
            o->out = v;
        } else if (argv[i][0] == '-' || o->proof || missing) {
            return false;
        } else {
            o->proof = argv[i];
        }
    }
    return !missing;
}

/* Verify one envelope read from path (a name for messages); prints why not; frees env. */
static int verify_read(const char *path, char *env, size_t len, const struct ws_key *keys,
                       size_t nkeys, const char *evidence, struct ws_verified *v)
{
    char errbuf[1024];
    ws_err_t err = ws_verify_envelope(env, len, keys, nkeys, evidence, v, errbuf, sizeof errbuf);

    free(env);
    if (err == WS_ERR_NOT_FOUND || err == WS_ERR_IO) {
        fprintf(stderr, "windowseal prove: %s\n", errbuf);
        return WS_EXIT_USAGE;
    }
    if (err == WS_ERR_NOMEM) {
        fprintf(stderr, "windowseal prove: out of memory\n");
        return WS_EXIT_RUNTIME;
    }
    if (err) {
        printf("invalid: %s: %s\n", path, errbuf);
        return WS_EXIT_VERIFY;
    }
    return WS_EXIT_OK;
}

/* Read and verify one envelope; prints why not. Returns an exit status. */
static int load_verified(const char *path, const struct ws_key *keys, size_t nkeys,
                         const char *evidence, struct ws_verified *v)
{
    char errbuf[1024], *env = NULL;
    size_t len;

    if (ws_file_read(path, WS_ENVELOPE_MAX, &env, &len, errbuf, sizeof errbuf)) {
        fprintf(stderr, "windowseal prove: %s\n", errbuf);
        return WS_EXIT_USAGE;
    }
    return verify_read(path, env, len, keys, nkeys, evidence, v);
}

static json_t *hex_json(const uint8_t *bin, size_t len)
{
    char *s = malloc(2 * len + 1);
    json_t *j;

    if (!s)
        return NULL;
    ws_hex_encode(bin, len, s);
    j = json_string(s);
    free(s);
    return j;
}

/* Lowercase hex of exactly len bytes. */
static bool hex_value(const json_t *v, uint8_t *out, size_t len)
{
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;

    if (!s || json_string_length(v) != 2 * len)
        return false;
    for (size_t i = 0; i < 2 * len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return ws_hex_decode(s, 2 * len, out, len) == WS_OK;
}

static bool hex_field(const json_t *o, const char *k, uint8_t *out, size_t len)
{
    return hex_value(json_object_get(o, k), out, len);
}

static bool u64_field(const json_t *o, const char *k, uint64_t *out)
{
    const json_t *v = json_object_get(o, k);

    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return false;
    *out = (uint64_t)json_integer_value(v);
    return true;
}

/* An array of at most max hashes into out. */
static bool hash_array(const json_t *o, const char *k, uint8_t (*out)[WS_HASH_LEN], size_t max,
                       size_t *n)
{
    const json_t *a = json_object_get(o, k);
    size_t i;
    json_t *e;

    if (!json_is_array(a) || json_array_size(a) > max)
        return false;
    json_array_foreach(a, i, e)
    {
        if (!hex_value(e, out[i], WS_HASH_LEN))
            return false;
    }
    *n = json_array_size(a);
    return true;
}

static int print_json(json_t *j)
{
    int rc = WS_EXIT_OK;

    if (!j || json_dumpf(j, stdout, JSON_SORT_KEYS | JSON_INDENT(2)) != 0) {
        fprintf(stderr, "windowseal prove: cannot write the proof\n");
        rc = WS_EXIT_RUNTIME;
    } else {
        putchar('\n');
    }
    json_decref(j);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* prove record                                                                                 */

static bool parse_record_spec(const char *spec, char *topic, size_t cap, int32_t *part,
                              int64_t *off)
{
    /* Kafka topic names cannot hold ':', so split at the last two. */
    const char *c2 = strrchr(spec, ':'), *c1;
    char *end;
    long long p, o;

    if (!c2 || c2 == spec)
        return false;
    for (c1 = c2 - 1; c1 > spec && *c1 != ':'; c1--)
        ;
    if (c1 == spec || (size_t)(c1 - spec) >= cap)
        return false;
    memcpy(topic, spec, (size_t)(c1 - spec));
    topic[c1 - spec] = '\0';
    errno = 0;
    p = strtoll(c1 + 1, &end, 10);
    if (errno || end != c2 || c1 + 1 == c2 || p < 0 || p > INT32_MAX)
        return false;
    o = strtoll(c2 + 1, &end, 10);
    if (errno || *end || !c2[1] || o < 0)
        return false;
    *part = (int32_t)p;
    *off = o;
    return true;
}

static ws_err_t file_read_cb(void *opaque, void *buf, size_t cap, size_t *got)
{
    FILE *f = opaque;

    *got = fread(buf, 1, cap, f);
    return ferror(f) ? WS_ERR_IO : WS_OK;
}

/* Leaf hashes of every record of the evidence, and the encoding of the wanted record. */
static ws_err_t read_leaves(const char *path, uint64_t expect, const char *topic, int32_t part,
                            int64_t off, uint8_t (**leaves)[WS_HASH_LEN], uint64_t *index,
                            uint8_t **enc, size_t *enclen, char *errbuf, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    struct ws_evidence_reader *rd;
    uint8_t(*l)[WS_HASH_LEN] = NULL;
    const uint8_t *rec;
    size_t len, tlen = strlen(topic);
    uint64_t n = 0;
    char why[512];
    ws_err_t err = WS_OK;

    *index = UINT64_MAX;
    *enc = NULL;
    if (!f)
        return ws_fail(WS_ERR_IO, errbuf, errlen, "evidence %s: %s", path, strerror(errno));
    if (!(rd = ws_evidence_reader_new(file_read_cb, f))) {
        err = WS_ERR_NOMEM;
        goto out_file;
    }
    /* The count is the verified leafCount; allocate once (at least one slot). */
    if (expect > SIZE_MAX / WS_HASH_LEN ||
        !(l = malloc((size_t)(expect ? expect : 1) * WS_HASH_LEN))) {
        err = ws_fail(WS_ERR_NOMEM, errbuf, errlen, "no memory for %llu leaf hashes",
                      (unsigned long long)expect);
        goto out_reader;
    }
    for (;;) {
        struct ws_record r;
        ws_err_t de;
        if ((err = ws_evidence_next(rd, &rec, &len, why, sizeof why))) {
            err = ws_fail(err, errbuf, errlen, "evidence %s: %s", path, why);
            goto out_reader;
        }
        if (!rec)
            break;
        if (n == expect) {
            err = ws_fail(WS_ERR_VERIFY, errbuf, errlen, "evidence %s changed while reading it",
                          path);
            goto out_reader;
        }
        ws_merkle_leaf_hash(rec, len, l[n]);
        de = ws_record_decode(rec, len, &r, NULL, 0, why, sizeof why);
        if ((de == WS_OK || de == WS_ERR_TOO_LARGE) && *index == UINT64_MAX &&
            r.topic_len == tlen && memcmp(r.topic, topic, tlen) == 0 && r.partition == part &&
            r.offset == off) {
            if (!(*enc = malloc(len ? len : 1))) {
                err = WS_ERR_NOMEM;
                goto out_reader;
            }
            memcpy(*enc, rec, len);
            *enclen = len;
            *index = n;
        }
        n++;
    }
    if (n != expect)
        err = ws_fail(WS_ERR_VERIFY, errbuf, errlen, "evidence %s changed while reading it", path);
out_reader:
    ws_evidence_reader_destroy(rd);
out_file:
    fclose(f);
    if (err) {
        free(l);
        free(*enc);
        *enc = NULL;
        return err;
    }
    *leaves = l;
    return WS_OK;
}

static int prove_record(const struct opts *o)
{
    struct ws_key keys[MAX_KEYS];
    struct ws_verified v;
    char topic[512], errbuf[1024];
    int32_t part;
    int64_t off;
    uint8_t(*leaves)[WS_HASH_LEN] = NULL, path[WS_MERKLE_MAX_DEPTH][WS_HASH_LEN];
    uint8_t *enc = NULL;
    size_t enclen = 0, pathlen = 0;
    uint64_t index;
    json_t *j, *arr;
    ws_err_t err;
    int rc;

    if (!o->envelope || !o->evidence || !o->record || !o->npub || o->proof ||
        !parse_record_spec(o->record, topic, sizeof topic, &part, &off))
        return usage();
    if (!ws_cli_load_pubkeys("prove", (char **)o->pubpaths, o->npub, keys))
        return WS_EXIT_USAGE;
    if ((rc = load_verified(o->envelope, keys, o->npub, o->evidence, &v)))
        return rc;
    err = read_leaves(o->evidence, v.leaf_count, topic, part, off, &leaves, &index, &enc, &enclen,
                      errbuf, sizeof errbuf);
    if (err) {
        fprintf(stderr, "windowseal prove: %s\n", errbuf);
        return err == WS_ERR_VERIFY  ? WS_EXIT_VERIFY
               : err == WS_ERR_NOMEM ? WS_EXIT_RUNTIME
                                     : WS_EXIT_USAGE;
    }
    if (index == UINT64_MAX) {
        printf("not found: record %s:%d:%lld is not in window %s (%llu records)\n", topic,
               (int)part, (long long)off, v.window_id, (unsigned long long)v.leaf_count);
        rc = WS_EXIT_VERIFY;
        goto out;
    }
    if (ws_merkle_inclusion_proof((const uint8_t(*)[WS_HASH_LEN])leaves, v.leaf_count, index, path,
                                  &pathlen) ||
        ws_merkle_verify_inclusion(leaves[index], index, v.leaf_count,
                                   (const uint8_t(*)[WS_HASH_LEN])path, pathlen, v.root)) {
        /* The root was recomputed from this very evidence a moment ago. */
        fprintf(stderr, "windowseal prove: internal error: the proof does not verify\n");
        rc = WS_EXIT_RUNTIME;
        goto out;
    }
    arr = json_array();
    for (size_t i = 0; i < pathlen; i++)
        json_array_append_new(arr, hex_json(path[i], WS_HASH_LEN));
    j = json_pack("{ss ss ss sI sI sI so so so so ss si sI so}", "type", INCLUSION_TYPE, "queryId",
                  v.query_id, "windowId", v.window_id, "batchId", (json_int_t)v.batch_id,
                  "leafIndex", (json_int_t)index, "treeSize", (json_int_t)v.leaf_count, "leafHash",
                  hex_json(leaves[index], WS_HASH_LEN), "auditPath", arr, "root",
                  hex_json(v.root, WS_HASH_LEN), "record", hex_json(enc, enclen), "topic", topic,
                  "partition", (int)part, "offset", (json_int_t)off, "statementDigest",
                  hex_json(v.statement_digest, WS_HASH_LEN));
    rc = print_json(j);
out:
    free(leaves);
    free(enc);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* prove consistency                                                                            */

/* Replays the window log from the tree's <qid>/ (qid NULL: its root) up to `to`'s chain length;
 * leaf hashes into *leaves. */
static int replay_log(struct ws_audit_tree *t, const char *qid, const struct ws_key *keys,
                      size_t nkeys, const struct ws_verified *a, const struct ws_verified *b,
                      uint8_t (**leaves)[WS_HASH_LEN])
{
    struct ws_batch_list bl;
    struct ws_merkle m;
    uint8_t(*l)[WS_HASH_LEN] = NULL, root[WS_HASH_LEN], entry[WS_LOG_ENTRY_LEN];
    char errbuf[1024], path[PATH_MAX], name[256], qdir[PATH_MAX];
    size_t n = 0;
    ws_err_t err;
    int rc = WS_EXIT_OK;

    ws_audit_tree_path(t, qid, NULL, qdir, sizeof qdir);
    if ((err = ws_audit_tree_list(t, qid, &bl, errbuf, sizeof errbuf))) {
        fprintf(stderr, "windowseal prove: %s\n", errbuf);
        return ws_audit_tree_is_s3(t) && ws_err_retriable(err) ? WS_EXIT_RUNTIME : WS_EXIT_USAGE;
    }
    if (b->chain_length > bl.nenvelopes || !(l = malloc(b->chain_length * WS_HASH_LEN))) {
        printf("invalid: %s holds %zu envelopes, fewer than the %llu windows of %s's chain\n", qdir,
               bl.nenvelopes, (unsigned long long)b->chain_length, b->window_id);
        rc = WS_EXIT_VERIFY;
        goto out;
    }
    ws_merkle_init(&m);
    for (size_t i = 0; i < bl.nenvelopes && n < b->chain_length; i++) {
        struct ws_verified v;
        char *env = NULL;
        size_t len;
        ws_object_name(b->query_id, bl.envelopes[i], ".dsse.json", name);
        ws_audit_tree_path(t, qid, strchr(name, '/') + 1, path, sizeof path);
        if ((err = ws_audit_tree_read(t, qid, strchr(name, '/') + 1, WS_ENVELOPE_MAX, &env, &len,
                                      errbuf, sizeof errbuf))) {
            fprintf(stderr, "windowseal prove: %s\n", errbuf);
            rc = ws_audit_tree_is_s3(t) && ws_err_retriable(err) ? WS_EXIT_RUNTIME : WS_EXIT_USAGE;
            goto out;
        }
        if ((rc = verify_read(path, env, len, keys, nkeys, NULL, &v)))
            goto out;
        if (strcmp(v.query_id, b->query_id) != 0 || v.batch_id != bl.envelopes[i] ||
            v.chain_length != n + 1) {
            printf("invalid: %s holds window %s at chain position %llu; expected %s/%lld at "
                   "position %zu\n",
                   path, v.window_id, (unsigned long long)v.chain_length, b->query_id,
                   (long long)bl.envelopes[i], n + 1);
            rc = WS_EXIT_VERIFY;
            goto out;
        }
        ws_log_entry_encode(v.batch_id, v.root, v.stream_digest, entry);
        ws_merkle_leaf_hash(entry, sizeof entry, l[n]);
        ws_merkle_add_hash(&m, l[n]);
        n++;
        ws_merkle_root(&m, root);
        if (n == a->chain_length && memcmp(root, a->log_root, WS_HASH_LEN) != 0) {
            printf("invalid: the log in %s does not reproduce the logRoot of %s (size %zu): its "
                   "history differs from what that attestation signed\n",
                   qdir, a->window_id, n);
            rc = WS_EXIT_VERIFY;
            goto out;
        }
        if (n == b->chain_length && memcmp(root, b->log_root, WS_HASH_LEN) != 0) {
            printf("invalid: the log in %s does not reproduce the logRoot of %s (size %zu): its "
                   "history differs from what that attestation signed\n",
                   qdir, b->window_id, n);
            rc = WS_EXIT_VERIFY;
            goto out;
        }
    }
    if (n < b->chain_length) {
        printf("invalid: %s holds only %zu windows of %s's chain of %llu\n", qdir, n, b->window_id,
               (unsigned long long)b->chain_length);
        rc = WS_EXIT_VERIFY;
    }
out:
    ws_audit_list_free(&bl);
    if (rc)
        free(l);
    else
        *leaves = l;
    return rc;
}

static int prove_consistency(const struct opts *o)
{
    struct ws_key keys[MAX_KEYS];
    struct ws_verified a, b;
    uint8_t(*leaves)[WS_HASH_LEN] = NULL, proof[2 * WS_MERKLE_MAX_DEPTH][WS_HASH_LEN];
    size_t plen = 0;
    char qdir[PATH_MAX], errbuf[1024];
    const char *qid;
    struct ws_audit_tree *t;
    struct stat st;
    json_t *arr, *j;
    int rc;

    if (!o->from || !o->to || !o->log || !o->npub || o->proof)
        return usage();
    if (!ws_cli_load_pubkeys("prove", (char **)o->pubpaths, o->npub, keys))
        return WS_EXIT_USAGE;
    if ((rc = load_verified(o->from, keys, o->npub, NULL, &a)) ||
        (rc = load_verified(o->to, keys, o->npub, NULL, &b)))
        return rc;
    if (strcmp(a.query_id, b.query_id) != 0) {
        printf("invalid: %s and %s attest different queries (%s, %s): no common log\n", o->from,
               o->to, a.query_id, b.query_id);
        return WS_EXIT_VERIFY;
    }
    if (a.chain_length > b.chain_length) {
        printf("invalid: --from %s (chain length %llu) is later than --to %s (%llu)\n", a.window_id,
               (unsigned long long)a.chain_length, b.window_id, (unsigned long long)b.chain_length);
        return WS_EXIT_VERIFY;
    }
    /* DIR is the file sink's root (DIR/<queryId>/) or the query directory itself; so is a
     * bucket prefix (the root if nothing is listed under <queryId>/). */
    if (ws_audit_tree_open(o->log, &o->s3, &t, errbuf, sizeof errbuf)) {
        fprintf(stderr, "windowseal prove: %s\n", errbuf);
        return WS_EXIT_USAGE;
    }
    qid = a.query_id;
    if (!ws_audit_tree_is_s3(t)) {
        ws_audit_tree_path(t, qid, NULL, qdir, sizeof qdir);
        if (stat(qdir, &st) != 0 || !S_ISDIR(st.st_mode))
            qid = NULL;
    } else {
        struct ws_batch_list bl;
        ws_err_t err = ws_audit_tree_list(t, qid, &bl, errbuf, sizeof errbuf);
        if (err && ws_err_retriable(err)) {
            fprintf(stderr, "windowseal prove: %s\n", errbuf);
            ws_audit_tree_close(t);
            return WS_EXIT_RUNTIME;
        }
        if (err || bl.nenvelopes == 0)
            qid = NULL;
        ws_audit_list_free(&bl);
    }
    rc = replay_log(t, qid, keys, o->npub, &a, &b, &leaves);
    ws_audit_tree_close(t);
    if (rc)
        return rc;
    if (ws_merkle_consistency_proof((const uint8_t(*)[WS_HASH_LEN])leaves, a.chain_length,
                                    b.chain_length, proof, &plen) ||
        ws_merkle_verify_consistency(a.chain_length, b.chain_length, a.log_root, b.log_root,
                                     (const uint8_t(*)[WS_HASH_LEN])proof, plen)) {
        fprintf(stderr, "windowseal prove: internal error: the proof does not verify\n");
        free(leaves);
        return WS_EXIT_RUNTIME;
    }
    free(leaves);
    arr = json_array();
    for (size_t i = 0; i < plen; i++)
        json_array_append_new(arr, hex_json(proof[i], WS_HASH_LEN));
    j = json_pack("{ss ss ss ss sI sI so so so}", "type", CONSISTENCY_TYPE, "queryId", a.query_id,
                  "fromWindowId", a.window_id, "toWindowId", b.window_id, "fromSize",
                  (json_int_t)a.chain_length, "toSize", (json_int_t)b.chain_length, "fromRoot",
                  hex_json(a.log_root, WS_HASH_LEN), "toRoot", hex_json(b.log_root, WS_HASH_LEN),
                  "proof", arr);
    return print_json(j);
}

/* ------------------------------------------------------------------------------------------ */
/* prove check                                                                                  */

static int fail_check(const char *why)
{
    printf("invalid: %s\n", why);
    return WS_EXIT_VERIFY;
}

static int check_inclusion(const json_t *p, const struct ws_verified *v)
{
    uint8_t(*path)[WS_HASH_LEN] = malloc(WS_MERKLE_MAX_DEPTH * WS_HASH_LEN);
    uint8_t leaf[WS_HASH_LEN], given_leaf[WS_HASH_LEN], given_root[WS_HASH_LEN], *rec = NULL;
    const json_t *jr = json_object_get(p, "record");
    const char *wid = json_string_value(json_object_get(p, "windowId"));
    const char *topic = json_string_value(json_object_get(p, "topic"));
    uint64_t index, size, part, off;
    size_t pathlen, rlen;
    struct ws_record r;
    char why[512], msg[1024], hroot[WS_HASH_HEX_LEN + 1];
    ws_err_t de;
    int rc = WS_EXIT_VERIFY;

    if (!path)
        return WS_EXIT_RUNTIME;
    if (!wid || !u64_field(p, "leafIndex", &index) || !u64_field(p, "treeSize", &size) ||
        !hex_field(p, "leafHash", given_leaf, WS_HASH_LEN) ||
        !hex_field(p, "root", given_root, WS_HASH_LEN) ||
        !hash_array(p, "auditPath", path, WS_MERKLE_MAX_DEPTH, &pathlen) || !json_is_string(jr) ||
        json_string_length(jr) % 2 || json_string_length(jr) / 2 > WS_RECORD_MAX) {
        rc = fail_check("proof file: needs windowId, leafIndex, treeSize, leafHash, root, "
                        "auditPath (hex hashes) and record (hex)");
        goto out;
    }
    rlen = json_string_length(jr) / 2;
    if (!(rec = malloc(rlen ? rlen : 1)) ||
        ws_hex_decode(json_string_value(jr), 2 * rlen, rec, rlen) != WS_OK) {
        rc = fail_check("proof file: record is not hex");
        goto out;
    }
    de = ws_record_decode(rec, rlen, &r, NULL, 0, why, sizeof why);
    if (de != WS_OK && de != WS_ERR_TOO_LARGE) {
        snprintf(msg, sizeof msg, "proof file: record is not a windowseal.record.v1 encoding: %s",
                 why);
        rc = fail_check(msg);
        goto out;
    }
    if (!topic || strlen(topic) != r.topic_len || memcmp(topic, r.topic, r.topic_len) != 0 ||
        !u64_field(p, "partition", &part) || part != (uint64_t)r.partition ||
        !u64_field(p, "offset", &off) || off != (uint64_t)r.offset) {
        rc = fail_check("proof file: topic/partition/offset differ from the record encoding");
        goto out;
    }
    if (strcmp(wid, v->window_id) != 0) {
        snprintf(msg, sizeof msg, "the proof is for window %.200s, the envelope attests %s", wid,
                 v->window_id);
        rc = fail_check(msg);
        goto out;
    }
    if (size != v->leaf_count) {
        snprintf(msg, sizeof msg, "the proof's treeSize %llu is not the signed leafCount %llu",
                 (unsigned long long)size, (unsigned long long)v->leaf_count);
        rc = fail_check(msg);
        goto out;
    }
    ws_merkle_leaf_hash(rec, rlen, leaf);
    if (memcmp(leaf, given_leaf, WS_HASH_LEN) != 0) {
        rc = fail_check("the proof's leafHash is not the hash of its record");
        goto out;
    }
    if (memcmp(given_root, v->root, WS_HASH_LEN) != 0) {
        rc = fail_check("the proof's root is not the signed Merkle root of the window");
        goto out;
    }
    if (ws_merkle_verify_inclusion(leaf, index, v->leaf_count, (const uint8_t(*)[WS_HASH_LEN])path,
                                   pathlen, v->root)) {
        snprintf(msg, sizeof msg, "the audit path does not lead from leaf %llu to the signed root",
                 (unsigned long long)index);
        rc = fail_check(msg);
        goto out;
    }
    ws_hex_encode(v->root, WS_HASH_LEN, hroot);
    printf("valid: record %.*s:%d:%lld is leaf %llu of %llu in window %s (root %s)\n",
           (int)r.topic_len, r.topic, (int)r.partition, (long long)r.offset,
           (unsigned long long)index, (unsigned long long)v->leaf_count, v->window_id, hroot);
    rc = WS_EXIT_OK;
out:
    free(rec);
    free(path);
    return rc;
}

static int check_consistency(const json_t *p, const struct ws_verified *a,
                             const struct ws_verified *b)
{
    uint8_t proof[2 * WS_MERKLE_MAX_DEPTH][WS_HASH_LEN], fr[WS_HASH_LEN], tr[WS_HASH_LEN];
    const char *qid = json_string_value(json_object_get(p, "queryId"));
    uint64_t fs, ts;
    size_t n;
    char msg[1024];

    if (!qid || !u64_field(p, "fromSize", &fs) || !u64_field(p, "toSize", &ts) ||
        !hex_field(p, "fromRoot", fr, WS_HASH_LEN) || !hex_field(p, "toRoot", tr, WS_HASH_LEN) ||
        !hash_array(p, "proof", proof, 2 * WS_MERKLE_MAX_DEPTH, &n))
        return fail_check("proof file: needs queryId, fromSize, toSize, fromRoot, toRoot and "
                          "proof (hex hashes)");
    if (strcmp(a->query_id, b->query_id) != 0) {
        snprintf(msg, sizeof msg, "--from and --to attest different queries (%s, %s)", a->query_id,
                 b->query_id);
        return fail_check(msg);
    }
    if (strcmp(qid, a->query_id) != 0) {
        snprintf(msg, sizeof msg, "the proof is for query %.150s, the envelopes attest %s", qid,
                 a->query_id);
        return fail_check(msg);
    }
    if (fs != a->chain_length || ts != b->chain_length) {
        snprintf(msg, sizeof msg,
                 "the proof is between sizes %llu and %llu, the envelopes' chain lengths are "
                 "%llu and %llu",
                 (unsigned long long)fs, (unsigned long long)ts,
                 (unsigned long long)a->chain_length, (unsigned long long)b->chain_length);
        return fail_check(msg);
    }
    if (memcmp(fr, a->log_root, WS_HASH_LEN) != 0 || memcmp(tr, b->log_root, WS_HASH_LEN) != 0)
        return fail_check("the proof's roots are not the envelopes' signed logRoots");
    if (ws_merkle_verify_consistency(a->chain_length, b->chain_length, a->log_root, b->log_root,
                                     (const uint8_t(*)[WS_HASH_LEN])proof, n)) {
        snprintf(msg, sizeof msg,
                 "the chain at %s (size %llu) is not an extension of the chain at %s (size %llu)",
                 b->window_id, (unsigned long long)b->chain_length, a->window_id,
                 (unsigned long long)a->chain_length);
        return fail_check(msg);
    }
    printf("valid: the chain at %s (size %llu) extends the chain at %s (size %llu)\n", b->window_id,
           (unsigned long long)b->chain_length, a->window_id, (unsigned long long)a->chain_length);
    return WS_EXIT_OK;
}

static int prove_check(const struct opts *o)
{
    struct ws_key keys[MAX_KEYS];
    struct ws_verified a, b;
    char errbuf[1024], *buf = NULL;
    size_t len;
    json_error_t jerr;
    json_t *p;
    const char *type;
    int rc;

    if (!o->proof || !o->npub || (!o->envelope == !(o->from && o->to)) ||
        (o->envelope && (o->from || o->to)))
        return usage();
    if (!ws_cli_load_pubkeys("prove", (char **)o->pubpaths, o->npub, keys))
        return WS_EXIT_USAGE;
    if (ws_file_read(o->proof, PROOF_FILE_MAX, &buf, &len, errbuf, sizeof errbuf)) {
        fprintf(stderr, "windowseal prove: %s\n", errbuf);
        return WS_EXIT_USAGE;
    }
    p = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    free(buf);
    if (!json_is_object(p)) {
        json_decref(p);
        printf("invalid: %s is not a JSON object (%s)\n", o->proof, jerr.text);
        return WS_EXIT_VERIFY;
    }
    type = json_string_value(json_object_get(p, "type"));
    if (o->envelope) {
        if (!type || strcmp(type, INCLUSION_TYPE) != 0)
            rc = fail_check("proof file: type is not " INCLUSION_TYPE
                            " (a consistency proof needs --from and --to)");
        else if (!(rc = load_verified(o->envelope, keys, o->npub, NULL, &a)))
            rc = check_inclusion(p, &a);
    } else {
        if (!type || strcmp(type, CONSISTENCY_TYPE) != 0)
            rc = fail_check("proof file: type is not " CONSISTENCY_TYPE
                            " (an inclusion proof needs --envelope)");
        else if (!(rc = load_verified(o->from, keys, o->npub, NULL, &a)) &&
                 !(rc = load_verified(o->to, keys, o->npub, NULL, &b)))
            rc = check_consistency(p, &a, &b);
    }
    json_decref(p);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* prove checkpoint / vkey                                                                      */

static void print_vkey(FILE *f, const char *keyname, const struct ws_key *k)
{
    uint8_t kh[4], raw[33];
    char b64[sodium_base64_ENCODED_LEN(33, sodium_base64_VARIANT_ORIGINAL)];

    ws_checkpoint_key_hash(keyname, k->pk, kh);
    raw[0] = 0x01;
    memcpy(raw + 1, k->pk, 32);
    sodium_bin2base64(b64, sizeof b64, raw, sizeof raw, sodium_base64_VARIANT_ORIGINAL);
    fprintf(f, "%s+%02x%02x%02x%02x+%s\n", keyname, kh[0], kh[1], kh[2], kh[3], b64);
}

static int prove_checkpoint(const struct opts *o)
{
    struct ws_key k, pubs[MAX_KEYS];
    struct ws_verified v;
    char errbuf[1024], *note = NULL;
    size_t len, npub = o->npub;
    int rc;

    if (!o->envelope || !o->key || o->proof ||
        !ws_checkpoint_keyname_valid(o->keyname, strlen(o->keyname)))
        return usage();
    if (ws_key_load(o->key, true, &k, errbuf, sizeof errbuf)) {
        fprintf(stderr, "windowseal prove: %s\n", errbuf);
        return WS_EXIT_USAGE;
    }
    /* The envelope is checked with --pubkey, or else with the signing key's public half. */
    if (npub) {
        if (!ws_cli_load_pubkeys("prove", (char **)o->pubpaths, npub, pubs)) {
            rc = WS_EXIT_USAGE;
            goto out_key;
        }
    } else {
        memset(&pubs[0], 0, sizeof pubs[0]);
        memcpy(pubs[0].pk, k.pk, sizeof k.pk);
        memcpy(pubs[0].keyid, k.keyid, sizeof k.keyid);
        npub = 1;
    }
    if ((rc = load_verified(o->envelope, pubs, npub, NULL, &v)))
        goto out_key;
    if (ws_checkpoint_sign(&k, o->keyname, v.query_id, v.chain_length, v.log_root, &note, &len)) {
        fprintf(stderr, "windowseal prove: cannot sign the checkpoint\n");
        rc = WS_EXIT_RUNTIME;
        goto out_key;
    }
    if (o->out) {
        if (ws_file_write_atomic(o->out, note, len, errbuf, sizeof errbuf)) {
            fprintf(stderr, "windowseal prove: %s\n", errbuf);
            rc = WS_EXIT_RUNTIME;
            goto out_note;
        }
        fprintf(stderr, "wrote %s: %s at size %llu\n", o->out, v.query_id,
                (unsigned long long)v.chain_length);
    } else if (fwrite(note, 1, len, stdout) != len) {
        rc = WS_EXIT_RUNTIME;
        goto out_note;
    }
    fprintf(stderr, "verifier key: ");
    print_vkey(stderr, o->keyname, &k);
    rc = WS_EXIT_OK;
out_note:
    free(note);
out_key:
    ws_key_wipe(&k);
    return rc;
}

static int prove_vkey(const struct opts *o)
{
    struct ws_key k;

    if (o->npub != 1 || o->proof || !ws_checkpoint_keyname_valid(o->keyname, strlen(o->keyname)))
        return usage();
    if (!ws_cli_load_pubkeys("prove", (char **)o->pubpaths, 1, &k))
        return WS_EXIT_USAGE;
    print_vkey(stdout, o->keyname, &k);
    return WS_EXIT_OK;
}

int ws_cmd_prove(int argc, char **argv)
{
    struct opts o;

    if (argc < 2 || !parse_opts(argc - 1, argv + 1, &o))
        return usage();
    if (!strcmp(argv[1], "record"))
        return prove_record(&o);
    if (!strcmp(argv[1], "consistency"))
        return prove_consistency(&o);
    if (!strcmp(argv[1], "check"))
        return prove_check(&o);
    if (!strcmp(argv[1], "checkpoint"))
        return prove_checkpoint(&o);
    if (!strcmp(argv[1], "vkey"))
        return prove_vkey(&o);
    return usage();
}
