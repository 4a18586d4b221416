/*
 * audit.c — `windowseal audit DIR|s3://BUCKET/PREFIX --pubkey PUB [--pubkey PUB2]... [--query ID]
 * [--json] [--html REPORT.html] [--keyname NAME] [--endpoint URL] [--region R]
 * [--virtual-hosted]`: every chain under a file-sink directory or an s3 sink's bucket prefix
 * (both read the same way, audit_tree.c), checked from the first window to the last, and its
 * checkpoint against the chain. A bucket failing in a way that may pass (5xx, timeout,
 * refused) ends the audit with exit 3: a store's outage is not a verdict on the chain.
 *
 * Per query directory the envelopes are visited in batch order (ws_audit_list: the names parsed
 * into sorted batch ids, 8 bytes per window — the only state that grows with the chain). Each
 * window is verified with its evidence (ws_verify_envelope: signature by any key, statement,
 * every figure recomputed from the records), then linked to the one before it: previousWindow
 * names it and carries its Merkle root and statement digest, genesis stays, and a jump in batch
 * ids must be declared as a gap. The window log is replayed (ws_log_append) so that every
 * chainLength and logRoot is recomputed, not read. Then <queryId>/checkpoint, if present, must
 * carry a valid signature and the replayed size and root: a smaller size is a rolled-back
 * checkpoint, a larger one a truncated chain.
 *
 * After the first failure the chain's later windows are still verified on their own (and shown
 * as such) but no longer linked: one break would otherwise cascade into every later window.
 *
 * Output: one `ok   <qid>: ...` or one or more `FAIL <qid>: <batch20>.dsse.json (window
 * <qid>/<n>): <reason>` lines per query, then `verdict: ...`. --json replaces the text with one
 * JSON object; --html writes a page beside it (report.c). Progress goes to stderr every few
 * seconds for long audits. Exit 0 every chain verified, 1 one failed, 2 usage.
 */
#include "cli/cli.h"
#include "cli/audit_tree.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define MAX_KEYS 16
#define ENV_SUFFIX ".dsse.json"
#define EV_SUFFIX ".evidence.lz4"

/* ------------------------------------------------------------------------------------------ */
/* Listing                                                                                      */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* "<20 digits><suffix>" -> batch id; false for anything else. */
static bool batch_name(const char *name, const char *suffix, int64_t *batch)
{
    size_t n = strlen(name), sl = strlen(suffix);
    uint64_t v = 0;

    if (n != 20 + sl || strcmp(name + 20, suffix) != 0)
        return false;
    for (int i = 0; i < 20; i++) {
        if (name[i] < '0' || name[i] > '9')
            return false;
        if (v > ((uint64_t)INT64_MAX - (uint64_t)(name[i] - '0')) / 10)
            return false;
        v = v * 10 + (uint64_t)(name[i] - '0');
    }
    *batch = (int64_t)v;
    return true;
}

static bool push(int64_t **arr, size_t *n, size_t *cap, int64_t v)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 256;
        int64_t *p = realloc(*arr, nc * sizeof *p);
        if (!p)
            return false;
        *arr = p;
        *cap = nc;
    }
    (*arr)[(*n)++] = v;
    return true;
}

ws_err_t ws_audit_list(const char *qdir, struct ws_batch_list *out, char *errbuf, size_t errlen)
{
    DIR *d = opendir(qdir);
    struct dirent *e;
    size_t cap_env = 0, cap_ev = 0;

    memset(out, 0, sizeof *out);
    if (!d)
        return ws_fail(errno == ENOENT ? WS_ERR_NOT_FOUND : WS_ERR_IO, errbuf, errlen,
                       "cannot list %s: %s", qdir, strerror(errno));
    while ((e = readdir(d))) {
        if (!ws_audit_list_add(out, e->d_name, &cap_env, &cap_ev)) {
            closedir(d);
            ws_audit_list_free(out);
            return WS_ERR_NOMEM;
        }
    }
    closedir(d);
    ws_audit_list_sort(out);
    return WS_OK;
}

bool ws_audit_list_add(struct ws_batch_list *out, const char *name, size_t *cap_env, size_t *cap_ev)
{
    size_t n = strlen(name);
    int64_t b;

    if (batch_name(name, ENV_SUFFIX, &b))
        return push(&out->envelopes, &out->nenvelopes, cap_env, b);
    if (batch_name(name, EV_SUFFIX, &b))
        return push(&out->evidence, &out->nevidence, cap_ev, b);
    if (n > strlen(ENV_SUFFIX) && strcmp(name + n - strlen(ENV_SUFFIX), ENV_SUFFIX) == 0 &&
        name[0] != '.' && !out->nodd++)
        snprintf(out->odd, sizeof out->odd, "%s", name);
    return true;
}

void ws_audit_list_sort(struct ws_batch_list *out)
{
    if (out->nenvelopes)
        qsort(out->envelopes, out->nenvelopes, sizeof(int64_t), cmp_i64);
    if (out->nevidence)
        qsort(out->evidence, out->nevidence, sizeof(int64_t), cmp_i64);
}

void ws_audit_list_free(struct ws_batch_list *l)
{
    free(l->envelopes);
    free(l->evidence);
    memset(l, 0, sizeof *l);
}

bool ws_audit_list_has_evidence(const struct ws_batch_list *l, int64_t batch)
{
    return l->nevidence &&
           bsearch(&batch, l->evidence, l->nevidence, sizeof(int64_t), cmp_i64) != NULL;
}

/* Evidence files for batches in [from, until) (left behind by a deleted envelope). */
static size_t evidence_between(const struct ws_batch_list *l, int64_t from, int64_t until)
{
    size_t n = 0;
    for (size_t i = 0; i < l->nevidence; i++)
        if (l->evidence[i] >= from && l->evidence[i] < until)
            n++;
    return n;
}

/* ------------------------------------------------------------------------------------------ */
/* One chain                                                                                    */

struct audit {
    struct ws_audit_tree *tree;
    ws_err_t store_err; /* a retriable failure of the object store: the audit cannot go on */
    char store_why[1024];
    const struct ws_key *keys;
    size_t nkeys;
    const char *keyname;
    bool text;
    struct ws_report *rep;
    int64_t started, last_progress; /* ws_clock_ms */
};

struct chain {
    bool have_prev, broken;
    struct ws_verified prev;
    struct ws_merkle log;
    uint64_t windows, records, gaps, bad;
    int64_t first_batch;
    /* checkpoint, read before the walk so the replay can note the root at its size */
    bool cp_present, cp_valid;
    uint64_t cp_size;
    uint8_t cp_root[WS_HASH_LEN];
    char cp_error[600];
    bool cp_seen; /* the replay passed the checkpoint's size */
    uint8_t root_at_cp[WS_HASH_LEN];
    char window_at_cp[200];
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
            snprintf(why, whylen,
                     "previousWindow's merkleRoot or attestationDigest does not match the "
                     "attestation of %s",
                     c->prev.window_id);
            return false;
        }
        if (strcmp(v->genesis_window_id, c->prev.genesis_window_id) != 0) {
            snprintf(why, whylen, "genesisWindowId changed");
            return false;
        }
        if (v->batch_id <= c->prev.batch_id) {
            snprintf(why, whylen, "batch %lld comes after batch %lld", (long long)v->batch_id,
                     (long long)c->prev.batch_id);
            return false;
        }
    }
    ws_log_append(&c->log, v->batch_id, v->root, v->stream_digest);
    ws_merkle_root(&c->log, root);
    if (c->log.size != v->chain_length || memcmp(root, v->log_root, WS_HASH_LEN) != 0) {
        snprintf(why, whylen,
                 "chainLength/logRoot (%llu) do not match the replayed window log (%llu)",
                 (unsigned long long)v->chain_length, (unsigned long long)c->log.size);
        return false;
    }
    return true;
}

static void progress(struct audit *a, const char *qid, uint64_t windows, int64_t batch)
{
    int64_t now = ws_clock_ms();

    if (now - a->last_progress >= 5000) {
        a->last_progress = now;
        fprintf(stderr, "audit: %s: %llu windows checked (batch %lld), %llds elapsed\n", qid,
                (unsigned long long)windows, (long long)batch,
                (long long)((now - a->started) / 1000));
    }
}

/* A store failure that may pass stops the audit (exit 3); true if err is one. */
static bool store_trouble(struct audit *a, ws_err_t err, const char *why)
{
    if (!err || !ws_audit_tree_is_s3(a->tree) || !ws_err_retriable(err))
        return false;
    if (!a->store_err) {
        a->store_err = err;
        snprintf(a->store_why, sizeof a->store_why, "%s", why);
    }
    return true;
}

static void read_checkpoint(struct audit *a, const char *qid, struct chain *c)
{
    char *buf = NULL, why[512], cq[129];
    size_t len;
    ws_err_t err;

    err = ws_audit_tree_read(a->tree, qid, "checkpoint", 65536, &buf, &len, why, sizeof why);
    if (err == WS_ERR_NOT_FOUND || store_trouble(a, err, why))
        return;
    c->cp_present = true;
    if (err) {
        snprintf(c->cp_error, sizeof c->cp_error, "unreadable: %s", why);
        return;
    }
    err = ws_checkpoint_verify(buf, len, a->keys, a->nkeys, a->keyname, cq, &c->cp_size, c->cp_root,
                               why, sizeof why);
    free(buf);
    if (err) {
        snprintf(c->cp_error, sizeof c->cp_error, "%s", why);
        return;
    }
    if (strcmp(cq, qid) != 0) {
        snprintf(c->cp_error, sizeof c->cp_error, "is for query %s, not %s", cq, qid);
        return;
    }
    c->cp_valid = true;
}

/* After the walk: the checkpoint against the replayed chain. False: the query fails. */
static bool check_checkpoint(struct chain *c, char *msg, size_t msglen)
{
    uint8_t root[WS_HASH_LEN];
    char hex[WS_HASH_HEX_LEN + 1];

    if (!c->cp_valid) {
        snprintf(msg, msglen, "checkpoint: %s", c->cp_error);
        return false;
    }
    if (c->broken) {
        snprintf(msg, msglen,
                 "checkpoint: size %llu, valid signature; not compared (the chain is broken)",
                 (unsigned long long)c->cp_size);
        return true; /* the query already fails */
    }
    ws_merkle_root(&c->log, root);
    if (c->cp_size < c->log.size) {
        snprintf(msg, msglen,
                 "checkpoint: size %llu (window %s) is behind the chain of %llu windows ending "
                 "at %s: rolled back%s",
                 (unsigned long long)c->cp_size, c->cp_seen ? c->window_at_cp : "?",
                 (unsigned long long)c->log.size, c->prev.window_id,
                 c->cp_seen && memcmp(c->root_at_cp, c->cp_root, WS_HASH_LEN) != 0
                     ? " (and its root is not the chain's root at that size: forked)"
                     : "");
        return false;
    }
    if (c->cp_size > c->log.size) {
        snprintf(msg, msglen,
                 "checkpoint: size %llu, but the chain has only %llu windows (last %s): the "
                 "windows after it are missing",
                 (unsigned long long)c->cp_size, (unsigned long long)c->log.size,
                 c->have_prev ? c->prev.window_id : "none");
        return false;
    }
    if (memcmp(root, c->cp_root, WS_HASH_LEN) != 0) {
        snprintf(msg, msglen,
                 "checkpoint: size %llu matches, but its root is not the replayed log root "
                 "(forked history)",
                 (unsigned long long)c->cp_size);
        return false;
    }
    ws_hex_encode(root, WS_HASH_LEN, hex);
    snprintf(msg, msglen, "checkpoint: size %llu and root %s match the chain",
             (unsigned long long)c->cp_size, hex);
    return true;
}

/* Record one failure: first FAIL line, report entry. */
static void fail_window(struct audit *a, struct chain *c, struct ws_query_summary *s,
                        const char *qid, int64_t batch, enum ws_win_status st, const char *why,
                        uint64_t records, bool have_env, bool have_ev)
{
    char name[256], line[1024];

    ws_object_name(qid, batch, ENV_SUFFIX, name);
    snprintf(line, sizeof line, "%s (window %s/%lld): %s", strchr(name, '/') + 1, qid,
             (long long)batch, why);
    if (a->text)
        printf("FAIL %s: %s\n", qid, line);
    if (!s->first_bad[0])
        snprintf(s->first_bad, sizeof s->first_bad, "%s", line);
    c->broken = true;
    c->bad++;
    ws_report_window(a->rep, st, batch, batch + 1, records, why, have_env, have_ev);
}

/* One query directory; prints its lines; returns the exit status. */
static int audit_query(struct audit *a, const char *qid)
{
    struct ws_batch_list bl;
    struct chain c;
    struct ws_query_summary s;
    struct ws_verified v;
    char path[PATH_MAX], ev[PATH_MAX], name[256], why[1024], *env = NULL;
    size_t envlen;
    int64_t next_slot = -1; /* first batch not yet shown in the timeline */

    memset(&c, 0, sizeof c);
    memset(&s, 0, sizeof s);
    ws_merkle_init(&c.log);
    ws_report_query_begin(a->rep, qid);
    ws_err_t lerr = ws_audit_tree_list(a->tree, qid, &bl, why, sizeof why);
    if (store_trouble(a, lerr, why))
        return WS_EXIT_RUNTIME;
    if (lerr) {
        if (a->text)
            printf("FAIL %s: %s\n", qid, why);
        snprintf(s.first_bad, sizeof s.first_bad, "%s", why);
        ws_report_query_end(a->rep, &s);
        return WS_EXIT_VERIFY;
    }
    read_checkpoint(a, qid, &c);
    if (a->store_err) {
        ws_audit_list_free(&bl);
        return WS_EXIT_RUNTIME;
    }

    for (size_t i = 0; i < bl.nenvelopes; i++) {
        int64_t b = bl.envelopes[i];
        bool have_ev = ws_audit_list_has_evidence(&bl, b);
        ws_err_t err;

        progress(a, qid, i, b);
        ws_object_name(qid, b, ENV_SUFFIX, path);
        ws_object_name(qid, b, EV_SUFFIX, name);

        /* Statement first (cheap), so that a misplaced envelope is named as such rather than
         * by the evidence that does not match it; then the evidence. */
        err = ws_audit_tree_read(a->tree, qid, strchr(path, '/') + 1, WS_ENVELOPE_MAX, &env,
                                 &envlen, why, sizeof why);
        if (store_trouble(a, err, why))
            break;
        if (!err)
            err = ws_verify_envelope(env, envlen, a->keys, a->nkeys, NULL, &v, why, sizeof why);
        if (!err && strcmp(v.query_id, qid) != 0) {
            snprintf(why, sizeof why, "attests query %s, not %s", v.query_id, qid);
            err = WS_ERR_VERIFY;
        }
        if (!err && v.batch_id != b) {
            snprintf(why, sizeof why, "holds window %s (misplaced or swapped)", v.window_id);
            err = WS_ERR_VERIFY;
        }
        if (!err) {
            err = ws_audit_tree_local(a->tree, qid, strchr(name, '/') + 1, ev, sizeof ev, why,
                                      sizeof why);
            if (store_trouble(a, err, why)) {
                free(env);
                env = NULL;
                break;
            }
            if (!err) {
                err = ws_verify_envelope(env, envlen, a->keys, a->nkeys, ev, &v, why, sizeof why);
                ws_audit_tree_release(a->tree, ev);
            }
            if (err == WS_ERR_NOT_FOUND && !have_ev)
                snprintf(why, sizeof why, "evidence missing (%s)", strchr(name, '/') + 1);
        }
        free(env);
        env = NULL;
        if (err) {
            if (next_slot >= 0 && b > next_slot && !c.broken) {
                /* Cannot tell whether the jump was declared: the window that would say is bad. */
                ws_report_window(a->rep, WS_WIN_UNCHECKED, next_slot, b, 0,
                                 "batches not attested here; the next window is unreadable", false,
                                 false);
            }
            fail_window(a, &c, &s, qid, b, WS_WIN_BAD, why, 0, true, have_ev);
            next_slot = b + 1;
            continue;
        }

        /* Batches skipped since the previous window (declared gaps, or missing windows), or
         * windows missing before the first one found (it has a previousWindow). */
        int64_t from = -1;
        const char *because = NULL;
        if (c.have_prev && !c.broken && b > c.prev.batch_id + 1) {
            from = c.prev.batch_id + 1;
            if (gap_declared(&v, from, b)) {
                ws_report_window(a->rep, WS_WIN_GAP, from, b, 0, "declared as a gap", false, false);
                from = -1;
            }
            because = "declares no gap";
        } else if (!c.have_prev && !c.broken && v.has_previous) {
            const char *slash = strrchr(v.genesis_window_id, '/');
            char *end;
            long long g = slash ? strtoll(slash + 1, &end, 10) : -1;
            if (slash && *end == '\0' && g >= 0 && g < b)
                from = g;
            because = "is the first one found but has a previousWindow";
        } else if (next_slot >= 0 && b > next_slot) {
            ws_report_window(a->rep, c.broken ? WS_WIN_UNCHECKED : WS_WIN_GAP, next_slot, b, 0,
                             c.broken ? "not linked (after the first failure)" : "", false, false);
        }
        if (from >= 0) {
            size_t orphans = evidence_between(&bl, from, b);
            char range[64];
            if (b - from > 1)
                snprintf(range, sizeof range, "batches %lld..%lld", (long long)from,
                         (long long)b - 1);
            else
                snprintf(range, sizeof range, "batch %lld", (long long)from);
            snprintf(why, sizeof why, "missing: no envelope for %s, and window %s/%lld %s%s", range,
                     qid, (long long)b, because,
                     orphans ? " (evidence is still there: the envelope was removed)" : "");
            ws_object_name(qid, from, ENV_SUFFIX, name);
            if (a->text)
                printf("FAIL %s: %s (window %s/%lld): %s\n", qid, strchr(name, '/') + 1, qid,
                       (long long)from, why);
            if (!s.first_bad[0])
                snprintf(s.first_bad, sizeof s.first_bad, "%s (window %s/%lld): %s",
                         strchr(name, '/') + 1, qid, (long long)from, why);
            c.broken = true;
            c.bad++;
            ws_report_window(a->rep, WS_WIN_MISSING, from, b, 0, why, false, orphans > 0);
        }
        next_slot = b + 1;

        if (c.broken) {
            /* Checked alone: signature, statement and evidence are fine. */
            ws_report_window(a->rep, WS_WIN_UNCHECKED, b, b + 1, v.record_count,
                             "verified alone; not linked (after the first failure)", true, have_ev);
        } else if (!link_check(&c, &v, why, sizeof why)) {
            fail_window(a, &c, &s, qid, b, WS_WIN_BAD, why, v.record_count, true, have_ev);
        } else {
            if (!c.have_prev)
                c.first_batch = v.batch_id;
            c.prev = v;
            c.have_prev = true;
            c.windows++;
            c.records += v.record_count;
            c.gaps += v.ngaps;
            if (c.cp_valid && c.log.size == c.cp_size) {
                c.cp_seen = true;
                ws_merkle_root(&c.log, c.root_at_cp);
                snprintf(c.window_at_cp, sizeof c.window_at_cp, "%s", v.window_id);
            }
            ws_report_window(a->rep, WS_WIN_OK, b, b + 1, v.record_count, "", true, have_ev);
        }
    }
    if (a->store_err) {
        ws_audit_list_free(&bl);
        return WS_EXIT_RUNTIME;
    }
    if (bl.nodd) {
        snprintf(why, sizeof why, "%s%s is not named <batch20>.dsse.json", bl.odd,
                 bl.nodd > 1 ? " (and others)" : "");
        if (a->text)
            printf("FAIL %s: %s\n", qid, why);
        if (!s.first_bad[0])
            snprintf(s.first_bad, sizeof s.first_bad, "%s", why);
        c.broken = true;
        c.bad++;
    }

    s.checkpoint_present = c.cp_present;
    if (c.cp_present) {
        s.checkpoint_ok = check_checkpoint(&c, s.checkpoint, sizeof s.checkpoint);
        if (!s.checkpoint_ok) {
            if (a->text)
                printf("FAIL %s: %s\n", qid, s.checkpoint);
            if (!s.first_bad[0])
                snprintf(s.first_bad, sizeof s.first_bad, "%s", s.checkpoint);
            c.bad++;
        }
    }
    s.ok = c.bad == 0;
    s.windows = c.windows;
    s.records = c.records;
    s.gaps_declared = c.gaps;
    s.bad = c.bad;
    s.first_batch = c.first_batch;
    s.last_batch = c.have_prev ? c.prev.batch_id : 0;
    s.chain_length = c.log.size;
    {
        uint8_t r[WS_HASH_LEN];
        ws_merkle_root(&c.log, r);
        ws_hex_encode(r, WS_HASH_LEN, s.log_root);
    }
    if (s.ok && a->text) {
        if (c.windows == 0)
            printf("ok   %s: no windows\n", qid);
        else
            printf("ok   %s: %llu windows (%s .. batch %lld), %llu records, %llu gaps, log root "
                   "%s%s%s\n",
                   qid, (unsigned long long)c.windows, c.prev.genesis_window_id,
                   (long long)c.prev.batch_id, (unsigned long long)c.records,
                   (unsigned long long)c.gaps, s.log_root, c.cp_present ? "; " : "",
                   c.cp_present ? s.checkpoint : "");
    }
    ws_report_query_end(a->rep, &s);
    ws_audit_list_free(&bl);
    return s.ok ? WS_EXIT_OK : WS_EXIT_VERIFY;
}

/* The query ids under a directory that are query directories, sorted. */
static int local_queries(const char *dir, char ***ids, size_t *nids)
{
    struct dirent **qs = NULL;
    char path[PATH_MAX];
    int n = scandir(dir, &qs, NULL, alphasort);

    *ids = NULL;
    *nids = 0;
    if (n < 0)
        return -1;
    *ids = calloc((size_t)n + 1, sizeof **ids);
    for (int i = 0; i < n; i++) {
        struct stat st;
        const char *q = qs[i]->d_name;
        snprintf(path, sizeof path, "%s/%s", dir, q);
        if (*ids && q[0] != '.' && stat(path, &st) == 0 && S_ISDIR(st.st_mode) &&
            ws_query_id_safe(q, strlen(q)) && ((*ids)[*nids] = strdup(q)))
            (*nids)++;
        free(qs[i]);
    }
    free(qs);
    return *ids ? 0 : -1;
}

int ws_cmd_audit(int argc, char **argv)
{
    const char *dir = NULL, *v, *only = NULL, *html = NULL;
    char *pubpaths[MAX_KEYS];
    size_t npub = 0, nids = 0;
    bool missing = false, json = false, found = false;
    struct ws_key keys[MAX_KEYS];
    struct ws_audit_s3_opts s3 = {0};
    char **ids = NULL;
    struct audit a;
    char errbuf[1024];
    int rc = WS_EXIT_OK, bad = 0, good = 0;

    memset(&a, 0, sizeof a);
    a.keyname = WS_CHECKPOINT_KEYNAME;
    for (int i = 1; i < argc; i++) {
        if ((v = ws_cli_opt(argc, argv, &i, "--pubkey", &missing))) {
            if (npub == MAX_KEYS)
                goto usage;
            pubpaths[npub++] = (char *)v;
        } else if ((v = ws_cli_opt(argc, argv, &i, "--query", &missing))) {
            only = v;
        } else if ((v = ws_cli_opt(argc, argv, &i, "--html", &missing))) {
            html = v;
        } else if ((v = ws_cli_opt(argc, argv, &i, "--keyname", &missing))) {
            a.keyname = v;
        } else if ((v = ws_cli_opt(argc, argv, &i, "--endpoint", &missing))) {
            s3.endpoint = v;
        } else if ((v = ws_cli_opt(argc, argv, &i, "--region", &missing))) {
            s3.region = v;
        } else if (!strcmp(argv[i], "--virtual-hosted")) {
            s3.virtual_hosted = true;
        } else if (!strcmp(argv[i], "--json")) {
            json = true;
        } else if (argv[i][0] == '-' || dir || missing) {
            goto usage;
        } else {
            dir = argv[i];
        }
    }
    if (!dir || !npub || missing || !ws_checkpoint_keyname_valid(a.keyname, strlen(a.keyname)))
        goto usage;
    if (only && !ws_query_id_safe(only, strlen(only))) {
        fprintf(stderr, "windowseal audit: --query %s is not a valid query id\n", only);
        return WS_EXIT_USAGE;
    }
    if (ws_s3_uri_is_s3(dir) && html) {
        /* the page links to the audited files by relative path: a directory's */
        fprintf(stderr, "windowseal audit: --html needs a directory; for a bucket use --json\n");
        return WS_EXIT_USAGE;
    }
    if (!ws_cli_load_pubkeys("audit", pubpaths, npub, keys))
        return WS_EXIT_USAGE;
    a.keys = keys;
    a.nkeys = npub;
    a.text = !json;
    a.started = ws_clock_ms();
    a.last_progress = a.started;
    if (ws_audit_tree_open(dir, &s3, &a.tree, errbuf, sizeof errbuf)) {
        fprintf(stderr, "windowseal audit: %s\n", errbuf);
        return WS_EXIT_USAGE;
    }
    if (ws_audit_tree_is_s3(a.tree)) {
        ws_err_t err = ws_audit_tree_queries(a.tree, &ids, &nids, errbuf, sizeof errbuf);
        if (err) {
            fprintf(stderr, "windowseal audit: cannot list %s: %s\n", dir, errbuf);
            ws_audit_tree_close(a.tree);
            return ws_err_retriable(err) ? WS_EXIT_RUNTIME : WS_EXIT_USAGE;
        }
    } else if (local_queries(dir, &ids, &nids) < 0) {
        fprintf(stderr, "windowseal audit: cannot list %s\n", dir);
        ws_audit_tree_close(a.tree);
        return WS_EXIT_USAGE;
    }
    for (size_t i = 0; only && i < nids; i++)
        found = found || strcmp(ids[i], only) == 0;
    if (only && !found) {
        fprintf(stderr, "windowseal audit: no query %s under %s\n", only, dir);
        rc = WS_EXIT_USAGE;
        goto out_free;
    }
    if (ws_report_open(&a.rep, json ? stdout : NULL, html, dir, errbuf, sizeof errbuf)) {
        fprintf(stderr, "windowseal audit: %s\n", errbuf);
        rc = WS_EXIT_USAGE;
        goto out_free;
    }
    for (size_t i = 0; i < nids && !a.store_err; i++) {
        if (only && strcmp(ids[i], only) != 0)
            continue;
        if (audit_query(&a, ids[i]) == WS_EXIT_OK)
            good++;
        else if (!a.store_err)
            bad++, rc = WS_EXIT_VERIFY;
    }
    if (a.store_err) {
        /* an outage of the store: no verdict, and none of the report's lines is one */
        fprintf(stderr, "windowseal audit: %s (the store may be down; try again)\n", a.store_why);
        if (ws_report_close(a.rep, good, bad, errbuf, sizeof errbuf)) {
        }
        rc = WS_EXIT_RUNTIME;
        goto out_free;
    }
    if (a.text)
        printf("%s: %d chains verified, %d failed\n",
               rc == WS_EXIT_OK ? "verdict: valid" : "verdict: INVALID", good, bad);
    if (ws_report_close(a.rep, good, bad, errbuf, sizeof errbuf)) {
        fprintf(stderr, "windowseal audit: %s\n", errbuf);
        rc = WS_EXIT_RUNTIME;
        goto out_free;
    }
    if (html)
        fprintf(stderr, "wrote %s\n", html);
out_free:
    ws_audit_tree_free_ids(ids, nids);
    ws_audit_tree_close(a.tree);
    return rc;
usage:
    fprintf(stderr,
            "usage: windowseal audit DIR|s3://BUCKET/PREFIX --pubkey PUB [--pubkey PUB2]... "
            "[--query ID] [--json] [--html REPORT.html] [--keyname NAME]\n"
            "       [--endpoint URL] [--region REGION] [--virtual-hosted]   (for s3://; "
            "credentials from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)\n");
    return WS_EXIT_USAGE;
}
