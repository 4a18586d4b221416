/*
 * resolve.c — one Iceberg output of one window: from its name to the `outputs[i].iceberg` object
 * (SPEC §6 "Iceberg snapshots", FORMAT.md §5 "Iceberg outputs").
 *
 *   name -> catalog, namespace levels, table
 *        -> loadTable (rest.c)                       table metadata + vended credentials
 *        -> the snapshot S                           snapshotId, else the summary stamps
 *        -> S's manifest list (fetched, hashed)      under the table's location
 *        -> the manifests with added_snapshot_id S   under the table's location
 *        -> ADDED data files: status 1, effective snapshot id S (null inherits the manifest's
 *           added_snapshot_id), content 0            sorted by path
 *        -> each one streamed through SHA-256        sha256 only when read whole at its size
 *        -> summary cross-check, discrepancy with the job's list, the JSON object
 *
 * The split between returning an error and recording one is the whole fault model: whatever may
 * be over in a minute (the catalog or the store down, slow, overloaded) is returned retriable and
 * the window waits; whatever will still be wrong in a minute (no such table or snapshot, refused
 * credentials, a corrupt or foreign manifest) is recorded in `iceberg.error` and attested, since
 * waiting would hold the query's chain forever.
 *
 * Snapshot ids stay int64 from jansson's json_integer_value to snprintf("%lld"): never a double.
 * A manifest outside the table's location is refused (a catalog entry pointing a table at
 * another table's, or the engine's, files); data files may also live under the table's
 * write.data.path or write.object-storage.path, as Iceberg allows.
 */
#include "iceberg/iceberg_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define MAX_NAME 1024
#define MAX_LEVELS 16

struct tref {
    char buf[MAX_NAME];
    char *catalog, *table;
    char *ns[MAX_LEVELS];
    size_t nns;
};

/* Split `<catalog>.<ns…>.<table>`: at least three non-empty parts. */
static bool split_name(const char *name, struct tref *t)
{
    char *p, *parts[MAX_LEVELS + 2];
    size_t n = 0;

    if (!name || strlen(name) >= sizeof t->buf)
        return false;
    strcpy(t->buf, name);
    p = t->buf;
    for (;;) {
        char *dot = strchr(p, '.');
        if (n == MAX_LEVELS + 2 || !*p || dot == p)
            return false;
        parts[n++] = p;
        if (!dot)
            break;
        *dot = '\0';
        p = dot + 1;
    }
    if (n < 3)
        return false;
    t->catalog = parts[0];
    t->table = parts[n - 1];
    t->nns = n - 2;
    for (size_t i = 0; i < t->nns; i++)
        t->ns[i] = parts[i + 1];
    return true;
}

const struct ws_iceberg_catalog_conf *ws_iceberg_match(const struct ws_iceberg_catalog_conf *cats,
                                                       size_t n, const char *output_name)
{
    struct tref t;

    if (!split_name(output_name, &t))
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (strcmp(cats[i].name, t.catalog) == 0)
            return &cats[i];
    return NULL;
}

/* Strict decimal int64. */
static bool parse_i64(const char *s, int64_t *v)
{
    char *end;
    long long x;

    if (!s || !*s || (*s != '-' && (*s < '0' || *s > '9')))
        return false;
    errno = 0;
    x = strtoll(s, &end, 10);
    if (errno || *end)
        return false;
    *v = x;
    return true;
}

static void i64s(char out[24], int64_t v)
{
    snprintf(out, 24, "%" PRId64, v);
}

/* ------------------------------------------------------------------------------------------ */
/* Paths                                                                                         */

/* s3a:// and s3n:// are Hadoop's names for s3://: the same objects. */
static const char *after_scheme(const char *p, size_t *scheme_len)
{
    if (!strncmp(p, "s3a://", 6) || !strncmp(p, "s3n://", 6)) {
        *scheme_len = 5; /* compare as if "s3://" */
        return p + 6;
    }
    const char *s = strstr(p, "://");
    *scheme_len = s ? (size_t)(s - p) + 3 : 0;
    return s ? s + 3 : p;
}

static bool same_scheme(const char *a, const char *b)
{
    size_t la, lb;
    bool a3, b3;

    (void)after_scheme(a, &la);
    (void)after_scheme(b, &lb);
    a3 = !strncmp(a, "s3", 2) && la == 5;
    b3 = !strncmp(b, "s3", 2) && lb == 5;
    if (a3 || b3)
        return a3 && b3;
    return la == lb && strncmp(a, b, la) == 0;
}

/* path lies below root (a directory URI), with no ".." segment to climb back out. */
static bool under(const char *path, const char *root)
{
    size_t lp, lr;
    const char *rp = after_scheme(path, &lp), *rr = after_scheme(root, &lr);
    size_t n = strlen(rr);

    if (!*root || !same_scheme(path, root))
        return false;
    while (n > 0 && rr[n - 1] == '/')
        n--;
    if (n == 0 || strncmp(rp, rr, n) != 0 || rp[n] != '/')
        return false;
    for (const char *s = rp + n; (s = strstr(s, "/..")) != NULL; s += 3)
        if (s[3] == '/' || s[3] == '\0')
            return false;
    return true;
}

/* ------------------------------------------------------------------------------------------ */
/* Fetching                                                                                      */

struct sink {
    uint8_t *p; /* NULL: hash only */
    size_t len, cap, max;
    struct ws_sha256 h;
    uint64_t seen;
};

static ws_err_t sink_write(void *opaque, const void *d, size_t n)
{
    struct sink *s = opaque;

    s->seen += n;
    ws_sha256_update(&s->h, d, n);
    if (s->max == 0) /* a data file: only its digest is kept */
        return WS_OK;
    if (n > s->max - s->len)
        return WS_ERR_TOO_LARGE;
    if (s->len + n > s->cap) {
        size_t cap = s->cap ? s->cap : 65536;
        while (cap < s->len + n)
            cap *= 2;
        uint8_t *p = realloc(s->p, cap);
        if (!p)
            return WS_ERR_NOMEM;
        s->p = p;
        s->cap = cap;
    }
    memcpy(s->p + s->len, d, n);
    s->len += n;
    return WS_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* The result                                                                                    */

struct added {
    char *path; /* borrowed from the entries arrays */
    int64_t records, size;
    char sha256[WS_HASH_HEX_LEN + 1];
    char error[256];
};

static int cmp_added(const void *a, const void *b)
{
    return strcmp(((const struct added *)a)->path, ((const struct added *)b)->path);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* {catalog, namespace, table}: the keys both shapes start with. */
static json_t *head(const struct tref *t)
{
    json_t *o = json_object(), *ns = json_array();

    if (!o || !ns)
        goto fail;
    for (size_t i = 0; i < t->nns; i++)
        if (json_array_append_new(ns, json_string(t->ns[i])))
            goto fail;
    if (json_object_set_new(o, "catalog", json_string(t->catalog)) ||
        json_object_set_new(o, "namespace", ns) ||
        json_object_set_new(o, "table", json_string(t->table)))
        goto fail_o;
    return o;
fail:
    json_decref(ns);
fail_o:
    json_decref(o);
    return NULL;
}

/* The failure shape {catalog, namespace, table, snapshotId?, error}; WS_OK unless out of memory. */
static ws_err_t record_error(struct ws_iceberg_result *out, const struct tref *t, const char *snap,
                             char *errbuf, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static ws_err_t record_error(struct ws_iceberg_result *out, const struct tref *t, const char *snap,
                             char *errbuf, size_t errlen, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    json_t *o = head(t);

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    for (char *p = msg; *p; p++) /* printable: it is signed and shown to auditors */
        if ((unsigned char)*p < 0x20)
            *p = ' ';
    if (!o || (snap && json_object_set_new(o, "snapshotId", json_string(snap))) ||
        json_object_set_new(o, "error", json_string(msg))) {
        json_decref(o);
        return ws_fail(WS_ERR_NOMEM, errbuf, errlen, "out of memory");
    }
    out->iceberg = o;
    return WS_OK;
}

/* The snapshot the stamps name: summary {spark.sql.streaming.queryId, .epochId} or
 * {windowseal.query-id, .batch-id}; of several, the lowest sequence number (then id). */
static const json_t *by_stamps(const json_t *snaps, const char *query_id, int64_t batch_id)
{
    const json_t *best = NULL, *s;
    int64_t best_seq = 0, best_id = 0;
    char batch[24];
    size_t i;

    if (!query_id)
        return NULL;
    i64s(batch, batch_id);
    json_array_foreach(snaps, i, s)
    {
        const json_t *sum = json_object_get(s, "summary"), *id = json_object_get(s, "snapshot-id");
        const char *q1 = json_string_value(json_object_get(sum, "spark.sql.streaming.queryId"));
        const char *e1 = json_string_value(json_object_get(sum, "spark.sql.streaming.epochId"));
        const char *q2 = json_string_value(json_object_get(sum, "windowseal.query-id"));
        const char *e2 = json_string_value(json_object_get(sum, "windowseal.batch-id"));
        bool hit = (q1 && e1 && !strcmp(q1, query_id) && !strcmp(e1, batch)) ||
                   (q2 && e2 && !strcmp(q2, query_id) && !strcmp(e2, batch));
        const json_t *sq = json_object_get(s, "sequence-number");
        int64_t seq = json_is_integer(sq) ? json_integer_value(sq) : 0;
        if (!hit || !json_is_integer(id))
            continue;
        if (!best || seq < best_seq || (seq == best_seq && json_integer_value(id) < best_id)) {
            best = s;
            best_seq = seq;
            best_id = json_integer_value(id);
        }
    }
    return best;
}

static const json_t *by_id(const json_t *snaps, int64_t id)
{
    const json_t *s;
    size_t i;

    json_array_foreach(snaps, i, s)
    {
        const json_t *v = json_object_get(s, "snapshot-id");
        if (json_is_integer(v) && json_integer_value(v) == id)
            return s;
    }
    return NULL;
}

static const char *cfg_str(const json_t *cfg, const char *k)
{
    const char *v = json_string_value(json_object_get(cfg, k));
    return v && *v ? v : NULL;
}

/* Everything resolve needs while it runs; freed in one place. */
struct run {
    struct tref t;
    json_t *table;
    struct ws_iceberg_creds creds;
    const struct ws_iceberg_creds *vended;
    struct ws_iceberg_manifest *mans;
    size_t nmans;
    struct ws_iceberg_entry **ents; /* per manifest */
    size_t *nents;
    struct added *files;
    size_t nfiles, capfiles;
};

static void run_free(struct run *r)
{
    json_decref(r->table);
    for (size_t i = 0; r->ents && i < r->nmans; i++)
        ws_iceberg_entries_free(r->ents[i], r->nents[i]);
    free(r->ents);
    free(r->nents);
    ws_iceberg_manifests_free(r->mans, r->nmans);
    free(r->files);
}

/* The success shape. */
static ws_err_t build(struct run *r, const json_t *snap, const char *sid, const char *ml_path,
                      const char *ml_sha, uint64_t ml_bytes, const char *const *job_files,
                      size_t njob, struct ws_iceberg_result *out)
{
    json_t *o = head(&r->t), *ml = json_object(), *files = json_array(), *sum = json_object();
    json_t *mis = json_object();
    const json_t *ssum = json_object_get(snap, "summary");
    const json_t *parent = json_object_get(snap, "parent-snapshot-id");
    const json_t *seq = json_object_get(snap, "sequence-number");
    const char *op = json_string_value(json_object_get(ssum, "operation"));
    static const char *const keys[] = {"added-data-files", "added-records", "added-files-size"};
    int64_t nrecords = 0;
    char buf[24];
    bool bad = !o || !ml || !files || !sum || !mis;

    for (size_t i = 0; !bad && i < r->nfiles; i++) {
        const struct added *a = &r->files[i];
        json_t *f = json_object();
        nrecords += a->records;
        bad = !f || json_array_append_new(files, f) ||
              json_object_set_new(f, "path", json_string(a->path)) ||
              json_object_set_new(f, "recordCount", json_integer(a->records)) ||
              json_object_set_new(f, "bytes", json_integer(a->size)) ||
              (a->sha256[0] ? json_object_set_new(f, "sha256", json_string(a->sha256))
                            : json_object_set_new(f, "error", json_string(a->error)));
    }
    for (size_t i = 0; !bad && i < 3; i++) {
        const json_t *v = json_object_get(ssum, keys[i]);
        int64_t stated, counted = i == 0 ? (int64_t)r->nfiles : nrecords;
        if (!v)
            continue;
        bad = json_object_set_new(sum, keys[i], json_deep_copy(v)) != 0;
        /* added-files-size also counts delete files: not compared */
        if (!bad && i < 2 &&
            (!json_is_string(v) || !parse_i64(json_string_value(v), &stated) || stated != counted))
            bad = json_object_set_new(mis, keys[i], json_pack("[Oi]", v, (json_int_t)counted)) != 0;
    }
    if (!bad) {
        bad =
            json_object_set_new(o, "snapshotId", json_string(sid)) ||
            json_object_set_new(o, "sequenceNumber",
                                json_integer(json_is_integer(seq) ? json_integer_value(seq) : 0)) ||
            json_object_set_new(o, "operation", json_string(op ? op : "")) ||
            json_object_set_new(ml, "path", json_string(ml_path)) ||
            json_object_set_new(ml, "sha256", json_string(ml_sha)) ||
            json_object_set_new(ml, "bytes", json_integer((json_int_t)ml_bytes)) ||
            json_object_set_new(o, "manifestList", ml) ||
            json_object_set_new(o, "addedDataFiles", files) ||
            json_object_set_new(o, "summary", sum);
        ml = files = sum = NULL;
    }
    if (!bad && json_is_integer(parent)) {
        i64s(buf, json_integer_value(parent));
        bad = json_object_set_new(o, "parentSnapshotId", json_string(buf)) != 0;
    }
    if (!bad && json_object_size(mis)) {
        bad = json_object_set(o, "summaryMismatch", mis) != 0;
        out->discrepancies++;
    }
    /* The discrepancy: both lists sorted, compared exactly; absent if the job listed nothing. */
    if (!bad && njob > 0) {
        const char **job = malloc(njob * sizeof *job);
        json_t *nis = json_array(), *nrep = json_array();
        size_t i = 0, j = 0;
        bad = !job || !nis || !nrep;
        if (!bad) {
            memcpy(job, job_files, njob * sizeof *job);
            qsort(job, njob, sizeof *job, cmp_str);
        }
        while (!bad && (i < njob || j < r->nfiles)) {
            int c = i == njob ? 1 : j == r->nfiles ? -1 : strcmp(job[i], r->files[j].path);
            if (c < 0)
                bad = json_array_append_new(nis, json_string(job[i++])) != 0;
            else if (c > 0)
                bad = json_array_append_new(nrep, json_string(r->files[j++].path)) != 0;
            else
                i++, j++;
        }
        if (!bad && (json_array_size(nis) || json_array_size(nrep))) {
            out->discrepancy = json_pack("{sOsO}", "notInSnapshot", nis, "notReported", nrep);
            bad = !out->discrepancy;
            out->discrepancies++;
        }
        json_decref(nis);
        json_decref(nrep);
        free(job);
    }
    /* The subjects: every file read whole. */
    if (!bad && r->nfiles && !(out->subjects = calloc(r->nfiles, sizeof *out->subjects)))
        bad = true;
    for (size_t i = 0; !bad && i < r->nfiles; i++) {
        if (!r->files[i].sha256[0])
            continue;
        struct ws_iceberg_subject *s = &out->subjects[out->nsubjects];
        if (!(s->path = strdup(r->files[i].path)))
            bad = true;
        else {
            memcpy(s->sha256, r->files[i].sha256, sizeof s->sha256);
            s->bytes = (uint64_t)r->files[i].size;
            out->nsubjects++;
        }
    }
    json_decref(ml);
    json_decref(files);
    json_decref(sum);
    json_decref(mis);
    if (bad) {
        json_decref(o);
        return WS_ERR_NOMEM;
    }
    out->iceberg = o;
    return WS_OK;
}

ws_err_t ws_iceberg_resolve(const struct ws_iceberg_catalog_conf *cat, const char *output_name,
                            const char *job_snapshot_id, const char *const *job_files, size_t njob,
                            const char *query_id, int64_t batch_id, const struct ws_iceberg_io *io,
                            struct ws_iceberg_result *out, char *errbuf, size_t errlen)
{
    struct run r = {0};
    struct sink ml = {.max = WS_ICEBERG_MAX_AVRO};
    const json_t *meta, *snaps, *snap, *cfg, *props;
    const char *location, *ml_path;
    const char *data_roots[3];
    char sid[24], why[512], ml_sha[WS_HASH_HEX_LEN + 1];
    uint8_t dig[WS_HASH_LEN];
    uint64_t got;
    int64_t id = 0; /* set by parse_i64 when job_snapshot_id is given, the only case it is read */
    ws_err_t err;

    memset(out, 0, sizeof *out);
    if (!cat || !io || !io->fetch || !split_name(output_name, &r.t) ||
        strcmp(r.t.catalog, cat->name) != 0)
        return ws_fail(WS_ERR_INVALID, errbuf, errlen, "%s: not an output of catalog %s",
                       output_name ? output_name : "(null)", cat ? cat->name : "(null)");
    sid[0] = '\0';
    if (job_snapshot_id && !parse_i64(job_snapshot_id, &id)) {
        err = record_error(out, &r.t, NULL, errbuf, errlen,
                           "snapshotId \"%.64s\" is not a 64-bit integer", job_snapshot_id);
        goto out;
    }

    err = ws_iceberg_rest_load(cat, r.t.ns, r.t.nns, r.t.table, &r.table, why, sizeof why);
    if (err) {
        if (ws_err_retriable(err)) {
            ws_fail(err, errbuf, errlen, "catalog %s: %s", cat->name, why);
            goto out;
        }
        err = record_error(out, &r.t, job_snapshot_id, errbuf, errlen, "catalog %s: %s", cat->name,
                           why);
        goto out;
    }
    meta = json_object_get(r.table, "metadata");
    snaps = json_object_get(meta, "snapshots");
    location = json_string_value(json_object_get(meta, "location"));
    if (!json_is_object(meta) || !location || (snaps && !json_is_array(snaps))) {
        err = record_error(out, &r.t, job_snapshot_id, errbuf, errlen,
                           "loadTable: no table metadata with a location");
        goto out;
    }
    /* Vended credentials for this table's files (LoadTableResult.config). */
    cfg = json_object_get(r.table, "config");
    r.creds.access_key_id = cfg_str(cfg, "s3.access-key-id");
    r.creds.secret_access_key = cfg_str(cfg, "s3.secret-access-key");
    r.creds.session_token = cfg_str(cfg, "s3.session-token");
    r.creds.endpoint = cfg_str(cfg, "s3.endpoint");
    r.creds.region = cfg_str(cfg, "client.region");
    if (r.creds.access_key_id || r.creds.endpoint)
        r.vended = &r.creds;

    if (job_snapshot_id) {
        snap = by_id(snaps, id);
        if (!snap) {
            err = record_error(out, &r.t, job_snapshot_id, errbuf, errlen,
                               "snapshot %s not found in the table", job_snapshot_id);
            goto out;
        }
    } else if (!(snap = by_stamps(snaps, query_id, batch_id))) {
        err = record_error(out, &r.t, NULL, errbuf, errlen,
                           "no snapshot has the summary stamps of query %.128s batch %" PRId64,
                           query_id ? query_id : "(none)", batch_id);
        goto out;
    }
    id = json_integer_value(json_object_get(snap, "snapshot-id"));
    i64s(sid, id);

    ml_path = json_string_value(json_object_get(snap, "manifest-list"));
    if (!ml_path) {
        err = record_error(out, &r.t, sid, errbuf, errlen,
                           "snapshot %s has no manifest-list (format v1 inline manifests are not "
                           "read)",
                           sid);
        goto out;
    }
    if (!under(ml_path, location)) {
        err = record_error(out, &r.t, sid, errbuf, errlen,
                           "manifest list %.400s is outside the table location", ml_path);
        goto out;
    }
    ws_sha256_init(&ml.h);
    err = io->fetch(io->opaque, ml_path, r.vended, sink_write, &ml, &got, why, sizeof why);
    if (err == WS_ERR_TOO_LARGE)
        snprintf(why, sizeof why, "over %u bytes", WS_ICEBERG_MAX_AVRO);
    if (err && ws_err_retriable(err)) {
        ws_fail(err, errbuf, errlen, "manifest list %.400s: %s", ml_path, why);
        goto out;
    }
    if (err) {
        err =
            record_error(out, &r.t, sid, errbuf, errlen, "manifest list %.400s: %s", ml_path, why);
        goto out;
    }
    ws_sha256_final(&ml.h, dig);
    ws_hex_encode(dig, WS_HASH_LEN, ml_sha);
    err = ws_iceberg_read_manifest_list(ml.p, ml.len, &r.mans, &r.nmans, why, sizeof why);
    if (err == WS_ERR_NOMEM)
        goto out;
    if (err) {
        err =
            record_error(out, &r.t, sid, errbuf, errlen, "manifest list %.400s: %s", ml_path, why);
        goto out;
    }
    if (!(r.ents = calloc(r.nmans + 1, sizeof *r.ents)) ||
        !(r.nents = calloc(r.nmans + 1, sizeof *r.nents))) {
        err = WS_ERR_NOMEM;
        goto out;
    }

    /* The manifests S added, and in them the ADDED data files of S. */
    for (size_t m = 0; m < r.nmans; m++) {
        const struct ws_iceberg_manifest *mf = &r.mans[m];
        struct sink ms = {.max = WS_ICEBERG_MAX_AVRO};
        if (mf->added_snapshot_id != id)
            continue;
        if (!under(mf->path, location)) {
            err = record_error(out, &r.t, sid, errbuf, errlen,
                               "manifest %.400s is outside the table location", mf->path);
            goto out;
        }
        ws_sha256_init(&ms.h);
        err = io->fetch(io->opaque, mf->path, r.vended, sink_write, &ms, &got, why, sizeof why);
        if (err == WS_ERR_TOO_LARGE)
            snprintf(why, sizeof why, "over %u bytes", WS_ICEBERG_MAX_AVRO);
        if (!err)
            err = ws_iceberg_read_manifest(ms.p, ms.len, &r.ents[m], &r.nents[m], why, sizeof why);
        free(ms.p);
        if (err && (ws_err_retriable(err))) {
            ws_fail(err, errbuf, errlen, "manifest %.400s: %s", mf->path, why);
            goto out;
        }
        if (err) {
            err =
                record_error(out, &r.t, sid, errbuf, errlen, "manifest %.400s: %s", mf->path, why);
            goto out;
        }
        for (size_t e = 0; e < r.nents[m]; e++) {
            const struct ws_iceberg_entry *en = &r.ents[m][e];
            int64_t eff = en->snapshot_id_set ? en->snapshot_id : mf->added_snapshot_id;
            if (en->status != 1 || eff != id || en->content != 0)
                continue;
            if (r.nfiles == WS_ICEBERG_MAX_FILES) {
                err =
                    record_error(out, &r.t, sid, errbuf, errlen,
                                 "snapshot %s added over %u data files", sid, WS_ICEBERG_MAX_FILES);
                goto out;
            }
            if (r.nfiles == r.capfiles) {
                size_t nc = r.capfiles ? 2 * r.capfiles : 16;
                struct added *p = realloc(r.files, nc * sizeof *p);
                if (!p) {
                    err = WS_ERR_NOMEM;
                    goto out;
                }
                r.files = p;
                r.capfiles = nc;
            }
            r.files[r.nfiles++] = (struct added){
                .path = en->path, .records = en->record_count, .size = en->file_size};
        }
    }
    qsort(r.files, r.nfiles, sizeof *r.files, cmp_added);

    /* Hash every added data file; a store that is down makes the window wait. */
    props = json_object_get(meta, "properties");
    data_roots[0] = location;
    data_roots[1] = json_string_value(json_object_get(props, "write.data.path"));
    data_roots[2] = json_string_value(json_object_get(props, "write.object-storage.path"));
    for (size_t i = 0; i < r.nfiles; i++) {
        struct added *a = &r.files[i];
        struct sink ds = {0};
        bool inside = false;
        for (size_t k = 0; k < 3 && !inside; k++)
            inside = data_roots[k] && under(a->path, data_roots[k]);
        if (!inside) {
            snprintf(a->error, sizeof a->error, "outside the table location: not read");
            continue;
        }
        ws_sha256_init(&ds.h);
        why[0] = '\0';
        err = io->fetch(io->opaque, a->path, r.vended, sink_write, &ds, &got, why, sizeof why);
        ws_sha256_final(&ds.h, dig);
        if (err && ws_err_retriable(err)) {
            ws_fail(err, errbuf, errlen, "data file %.400s: %s", a->path, why);
            goto out;
        }
        if (err) { /* 404, 403, ...: recorded on the file, the window goes on */
            snprintf(a->error, sizeof a->error, "%s", why[0] ? why : ws_strerror(err));
            err = WS_OK;
        } else if (ds.seen != (uint64_t)a->size) {
            snprintf(a->error, sizeof a->error,
                     "read %" PRIu64 " bytes, the manifest says %" PRId64, ds.seen, a->size);
        } else {
            ws_hex_encode(dig, WS_HASH_LEN, a->sha256);
        }
    }
    err = build(&r, snap, sid, ml_path, ml_sha, ml.len, job_files, njob, out);
out:
    free(ml.p);
    run_free(&r);
    if (err == WS_ERR_NOMEM)
        ws_fail(err, errbuf, errlen, "%s: out of memory", output_name);
    if (err)
        ws_iceberg_result_free(out);
    return err;
}

void ws_iceberg_result_free(struct ws_iceberg_result *r)
{
    if (!r)
        return;
    json_decref(r->iceberg);
    json_decref(r->discrepancy);
    for (size_t i = 0; i < r->nsubjects; i++)
        free(r->subjects[i].path);
    free(r->subjects);
    memset(r, 0, sizeof *r);
}
