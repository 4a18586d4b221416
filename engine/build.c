/*
 * build.c — ST_QUEUED -> ST_SPOOLED: a window's records re-read, hashed, spooled and sealed (I2).
 *
 * The notification's ranges are re-read from Kafka (all partitions concurrently, delivered in
 * window-stream order) and every record is encoded once; that encoding feeds the stream
 * digest, the Merkle tree and the LZ4 writer that streams into the spool file in one pass.
 * The evidence is made durable first (fsync + rename), then the statement is built — a pure
 * function of notification, records, chain head and configuration — signed, and its envelope
 * spooled too. Nothing here publishes: a window that fails half way leaves no artifact but a
 * spool file that is never renamed into place.
 *
 * After a restart the window may already be complete in the spool: it is delivered as it is if
 * it verifies and holds exactly this chain position (eng_extends_chain), else recomputed.
 *
 * Thread: a build worker's (pool.c, eng_build_work: one Kafka range reader per worker), so a
 * big window's fetch and hashing hold up only the windows queued behind it on that worker, not
 * the engine thread's polling, publishing and commits. It writes only the pending window it
 * was handed — never its stage — and reads its query's head, which stays put while the window
 * is out; what the engine thread keeps (stats, the stage) it applies when it takes the window
 * back (engine.c, built()).
 */
#include "engine/internal.h"
#include "disk/testhook.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Windows of at least this many records are hashed on the build worker's hasher thread while
 * it fetches the rest (hasher.c); smaller ones on the build worker itself, where a handover
 * would cost more than it saves (a 1 k-record window hashes in ~0.3 ms).
 */
#define HASHER_MIN_RECORDS 8192
/* The evidence writer's output block: the archive's bytes do not depend on it, its memory does
 * (a big window fills it, a small one does not: bench_e2e memory). */
#define EVIDENCE_BLOCK (64u << 10)

struct fetch_ctx {
    struct ws_window *w;
    struct eng_hasher *h; /* NULL: this thread hashes */
    char *errbuf;
    size_t errlen;
};

static ws_err_t on_record(void *opaque, const struct ws_record *r)
{
    struct fetch_ctx *c = opaque;
    WS_TEST_HOOK("fetch_record");
    if (c->h)
        return eng_hasher_add(c->h, r, c->errbuf, c->errlen);
    return ws_window_add(c->w, r, c->errbuf, c->errlen);
}

ws_err_t eng_resolve_starts(struct ws_engine *e, struct ws_kafka_reader *r,
                            struct ws_notification *n, char *errbuf, size_t errlen)
{
    for (size_t i = 0; i < n->nsources; i++) {
        int64_t lo, hi;
        ws_err_t err;
        if (n->sources[i].from_offset != WS_OFFSET_UNRESOLVED)
            continue;
        err = ws_kafka_reader_watermarks(r, n->sources[i].topic, n->sources[i].partition, &lo, &hi,
                                         (int)e->cfg->fetch_timeout_ms, errbuf, errlen);
        if (err)
            return err;
        if (lo > n->sources[i].until_offset)
            return ws_fail(WS_ERR_NOT_RETAINED, errbuf, errlen,
                           "records no longer retained: %s[%d] low watermark %lld > until %lld",
                           n->sources[i].topic, n->sources[i].partition, (long long)lo,
                           (long long)n->sources[i].until_offset);
        n->sources[i].from_offset = lo;
    }
    return WS_OK;
}

/*
 * What Spark reported (numInputRows) against what Kafka holds. Where the start was resolved to
 * the low watermark (batch 0, initial_offsets=earliest) the two must agree exactly, or the
 * window is refused: the earliest offsets are then not what Spark read. Elsewhere a mismatch is
 * attested as Kafka holds it (the ranges are Spark's own), and flagged for the engine thread
 * to log and count (built(), engine.c).
 */
static ws_err_t check_input_rows(const struct query *q, struct pending *p,
                                 const struct ws_window_result *res, char *errbuf, size_t errlen)
{
    const struct ws_notification *n = &p->n;

    assert(res->nsources == n->nsources);
    for (size_t i = 0; i < n->ninputs; i++) {
        uint64_t held = 0;
        if (!n->inputs[i].unresolved)
            continue;
        for (size_t j = 0; j < n->nsources; j++)
            if (n->sources[j].input == i)
                held += res->sources[j].record_count;
        if (held != (uint64_t)n->inputs[i].num_input_rows)
            return ws_fail(WS_ERR_INVALID, errbuf, errlen,
                           "initial offsets ambiguous: Spark read %lld rows, the earliest offsets "
                           "hold %llu (batch 0 of query %s, Kafka source %zu)",
                           (long long)n->inputs[i].num_input_rows, (unsigned long long)held, q->id,
                           i);
    }
    p->rows_mismatch =
        n->reported_input_rows >= 0 && (uint64_t)n->reported_input_rows != res->leaf_count;
    return WS_OK;
}

/* Fetch and hash the records of every source, in window-stream order; fills res. */
static ws_err_t fetch_window(struct ws_engine *e, struct ws_kafka_reader *r, struct eng_hasher *h,
                             struct pending *p, struct ws_window *w, struct ws_window_result *res,
                             char *errbuf, size_t errlen)
{
    struct fetch_ctx ctx = {w, NULL, errbuf, errlen};
    struct ws_kafka_range *rg;
    uint64_t records = 0;
    ws_err_t err, herr;

    /*
     * Sources are sorted by (topic, partition): one read fetches every range concurrently and
     * delivers them in that order, each in offset order (fetch.timeout.ms bounds the window).
     */
    if (!(rg = calloc(p->n.nsources ? p->n.nsources : 1, sizeof *rg)))
        return ws_fail(WS_ERR_NOMEM, errbuf, errlen, "out of memory for %zu ranges", p->n.nsources);
    for (size_t i = 0; i < p->n.nsources; i++) {
        const struct ws_notif_source *s = &p->n.sources[i];
        rg[i] = (struct ws_kafka_range){s->topic, s->partition, s->from_offset, s->until_offset};
        records += (uint64_t)(s->until_offset - s->from_offset);
    }
    if (h && records >= HASHER_MIN_RECORDS) {
        ctx.h = h;
        eng_hasher_begin(h, w);
    }
    err = ws_kafka_read_ranges(r, rg, p->n.nsources, (int)e->cfg->fetch_timeout_ms, on_record, &ctx,
                               errbuf, errlen);
    free(rg);
    if (ctx.h) { /* always: the hasher lets go of w; the read's error, if any, comes first */
        char why[512];
        herr = eng_hasher_finish(h, why, sizeof why);
        if (!err && herr)
            err = ws_fail(herr, errbuf, errlen, "%s", why);
    }
    if (err)
        return err;
    if ((err = ws_window_finish(w, res)))
        return ws_fail(err, errbuf, errlen, "window: %s", ws_strerror(err));
    return WS_OK;
}

/* The query's head after this window; its statement digest is filled in once signed. */
static void head_next(const struct query *q, const struct pending *p,
                      const struct ws_window_result *res, struct ws_head *h)
{
    if (q->has_head) {
        *h = q->head;
    } else {
        memset(h, 0, sizeof *h);
        snprintf(h->query_id, sizeof h->query_id, "%s", q->id);
        ws_window_id(q->id, p->n.batch_id, h->genesis_window_id);
        ws_merkle_init(&h->log);
    }
    ws_log_append(&h->log, p->n.batch_id, res->root, res->stream_digest);
    h->last_batch = p->n.batch_id;
    memcpy(h->last_root, res->root, WS_HASH_LEN);
    memset(h->last_statement_digest, 0, WS_HASH_LEN);
    ws_notification_sources_digest(&p->n, h->last_sources_digest);
}

/* Envelope and evidence durable in the spool, nothing published yet: ready for ST_SPOOLED. */
static void spooled(struct pending *p, uint64_t records, uint64_t bytes)
{
    p->sinks_done = 0;
    p->head_done = false;
    p->window_records = records;
    p->window_bytes = bytes;
}

/* Statement + envelope for a finished window. */
static ws_err_t seal(struct ws_engine *e, struct eng_lake *lake, struct query *q, struct pending *p,
                     const struct ws_window_result *res, char *errbuf, size_t errlen)
{
    const struct ws_gap *gap = p->has_gap ? &p->gap : NULL;
    struct ws_statement_in in = {0};
    struct eng_outputs outs;
    struct ws_head *h = &p->new_head;
    char prev_id[WS_WINDOW_ID_MAX], *stmt = NULL;
    size_t stmt_len = 0;
    ws_err_t err;

    err = eng_outputs_collect(e, lake, &p->n, &outs, errbuf, errlen);
    if (err)
        return err;
    /* The head after this window: its log gives chainLength and logRoot. */
    head_next(q, p, res, h);
    in.query_id = p->n.query_id;
    in.name = p->n.name;
    in.run_id = p->n.run_id;
    in.batch_id = p->n.batch_id;
    in.observed_at_ms = p->timestamp;
    in.window = res;
    in.ignored_sources = (const char *const *)p->n.ignored_sources;
    in.nignored = p->n.nignored;
    in.has_reported_input_rows = p->n.reported_input_rows >= 0;
    in.reported_input_rows = p->n.reported_input_rows;
    in.has_previous = q->has_head;
    if (q->has_head) {
        ws_window_id(q->id, q->head.last_batch, prev_id);
        in.previous_window_id = prev_id;
        memcpy(in.previous_root, q->head.last_root, WS_HASH_LEN);
        memcpy(in.previous_attestation_digest, q->head.last_statement_digest, WS_HASH_LEN);
    }
    in.chain_length = h->log.size;
    ws_merkle_root(&h->log, in.log_root);
    in.genesis_window_id = h->genesis_window_id;
    in.gaps = gap;
    in.ngaps = gap ? 1 : 0;
    in.outputs = outs.merged;
    in.noutputs = outs.noutputs;
    in.group_id = e->cfg->group_id;
    in.version = WS_VERSION;
    in.keyid = e->key.keyid;
    err = ws_statement_build(&in, &stmt, &stmt_len);
    p->discrepancies = outs.discrepancies;
    eng_outputs_free(&outs);
    if (err)
        return ws_fail(err, errbuf, errlen, "statement: %s", ws_strerror(err));
    ws_sha256(stmt, stmt_len, h->last_statement_digest);
    err = ws_dsse_sign(&e->key, WS_PAYLOAD_TYPE, stmt, stmt_len, &p->envelope, &p->envelope_len);
    free(stmt);
    if (err)
        return ws_fail(err, errbuf, errlen, "signing: %s", ws_strerror(err));
    return WS_OK;
}

/*
 * Does a verified statement hold this chain position's window: this query and batch, these
 * sources, linked to the current head, and (next being the head after it) the chain length and
 * log root it would have? Resuming from the spool and adopting an envelope both ask (I3).
 */
bool eng_extends_chain(const struct query *q, const struct pending *p, const struct ws_verified *v,
                       const struct ws_head *next)
{
    uint8_t log_root[WS_HASH_LEN];

    ws_merkle_root(&next->log, log_root);
    if (strcmp(v->query_id, q->id) != 0 || v->batch_id != p->n.batch_id ||
        memcmp(v->sources_digest, next->last_sources_digest, WS_HASH_LEN) != 0)
        return false;
    if (v->has_previous != q->has_head ||
        (q->has_head &&
         (memcmp(v->previous_root, q->head.last_root, WS_HASH_LEN) != 0 ||
          memcmp(v->previous_attestation_digest, q->head.last_statement_digest, WS_HASH_LEN) != 0)))
        return false;
    return v->chain_length == next->log.size && memcmp(v->log_root, log_root, WS_HASH_LEN) == 0;
}

/*
 * Resume (spool): the window is complete in the spool from before a restart. Deliver it without
 * re-reading Kafka, if it is exactly the window this chain position needs: signed by our key,
 * evidence intact, same sources, and it extends the current head.
 */
static ws_err_t resume_from_spool(struct ws_engine *e, struct query *q, struct pending *p,
                                  struct ws_spool_window *sw, char *errbuf, size_t errlen)
{
    struct ws_window_result res = {0};
    struct ws_verified v;
    ws_err_t err;

    /* keys[0] only: an envelope we would not sign now is recomputed, not delivered (I2) */
    if ((err = ws_verify_envelope(sw->envelope, sw->envelope_len, e->read_keys, 1,
                                  sw->evidence_path, &v, errbuf, errlen)))
        return err;
    memcpy(res.root, v.root, WS_HASH_LEN);
    memcpy(res.stream_digest, v.stream_digest, WS_HASH_LEN);
    head_next(q, p, &res, &p->new_head);
    memcpy(p->new_head.last_statement_digest, v.statement_digest, WS_HASH_LEN);
    if (!eng_extends_chain(q, p, &v, &p->new_head))
        return ws_fail(WS_ERR_VERIFY, errbuf, errlen,
                       "spooled window is not this chain position's window");
    if (!(p->envelope = malloc(sw->envelope_len + 1)))
        return WS_ERR_NOMEM;
    memcpy(p->envelope, sw->envelope, sw->envelope_len + 1);
    p->envelope_len = sw->envelope_len;
    snprintf(p->evidence_path, sizeof p->evidence_path, "%s", sw->evidence_path);
    spooled(p, v.leaf_count, v.bytes);
    p->resumed = true;
    ws_log(WS_LOG_INFO, "window_resumed", "query=%s batch=%lld source=spool", q->id,
           (long long)p->n.batch_id);
    return WS_OK;
}

/* ST_BUILDING, on a build worker: artifacts spooled, or an error for the retry policy. */
ws_err_t eng_build(struct ws_engine *e, struct ws_kafka_reader *r, struct eng_hasher *h,
                   struct eng_lake *lake, struct query *q, struct pending *p, char *errbuf,
                   size_t errlen)
{
    struct ws_spool_file *sf = NULL;
    struct ws_evidence_writer *ew = NULL;
    struct ws_window *w = NULL;
    struct ws_window_result res;
    const char *path;
    struct ws_spool_window sw;
    ws_err_t err;

    eng_mark(p, MK_BUILD);
    /* After a restart the window may already be complete in the spool: deliver, don't redo. */
    if (ws_spool_lookup(e->spool, q->id, p->n.batch_id, &sw, errbuf, errlen) == WS_OK) {
        err = resume_from_spool(e, q, p, &sw, errbuf, errlen);
        ws_spool_window_free(&sw);
        if (!err)
            return WS_OK;
        free(p->envelope);
        p->envelope = NULL;
        ws_log(WS_LOG_WARN, "spool_resume_refused",
               "query=%s batch=%lld reason=\"%s\" action=\"recomputing\"", q->id,
               (long long)p->n.batch_id, errbuf);
    }
    p->rows_mismatch = false;
    p->resumed = false;
    p->discrepancies = 0;
    if ((err = eng_resolve_starts(e, r, &p->n, errbuf, errlen)))
        return err;
    if ((err = ws_spool_begin(e->spool, q->id, p->n.batch_id, &sf, errbuf, errlen)))
        return err;
    if (!(ew = ws_evidence_writer_new(ws_spool_write, sf, EVIDENCE_BLOCK)) ||
        !(w = ws_window_new(ws_evidence_write_cb, ew))) {
        err = WS_ERR_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < p->n.nsources; i++) {
        const struct ws_notif_source *s = &p->n.sources[i];
        if ((err = ws_window_add_source(w, s->topic, s->partition, s->from_offset,
                                        s->until_offset))) {
            ws_fail(err, errbuf, errlen, "source %s[%d]: %s", s->topic, s->partition,
                    ws_strerror(err));
            goto out;
        }
    }
    if ((err = fetch_window(e, r, h, p, w, &res, errbuf, errlen)) ||
        (err = check_input_rows(q, p, &res, errbuf, errlen)))
        goto out;
    eng_mark(p, MK_READ);
    if ((err = ws_evidence_finish(ew))) {
        ws_fail(err, errbuf, errlen, "evidence: %s", ws_strerror(err));
        goto out;
    }
    /* The evidence's fsync runs while the window is sealed and its envelope written; the two
     * files are renamed in order once both are durable (ws_spool_commit_with_envelope). */
    ws_spool_sync_start(sf);
    eng_mark(p, MK_EVIDENCE);
    if ((err = seal(e, lake, q, p, &res, errbuf, errlen)))
        goto out;
    eng_mark(p, MK_SEALED);
    if ((err = ws_spool_commit_with_envelope(sf, q->id, p->n.batch_id, p->envelope, p->envelope_len,
                                             &path, errbuf, errlen)))
        goto out;
    snprintf(p->evidence_path, sizeof p->evidence_path, "%s", path);
    spooled(p, res.leaf_count, res.bytes);
    eng_mark(p, MK_SPOOLED);
out:
    ws_window_destroy(w);
    ws_evidence_writer_destroy(ew);
    ws_spool_file_free(sf);
    if (err) {
        free(p->envelope);
        p->envelope = NULL;
    }
    return err;
}

/*
 * The build workers' vtable (pool.c): each worker reads Kafka with a range reader of its own
 * and hashes big windows on a hasher thread of its own.
 */
struct build_ctx {
    struct ws_kafka_reader *reader;
    struct eng_hasher *hasher;
    struct eng_lake *lake; /* NULL without iceberg.catalogs: every output is plain */
};

static void build_close(void *ctx)
{
    struct build_ctx *c = ctx;

    eng_lake_destroy(c->lake);
    eng_hasher_destroy(c->hasher);
    ws_kafka_reader_destroy(c->reader);
    free(c);
}

static ws_err_t build_open(struct ws_engine *e, void **ctx, char *errbuf, size_t errlen)
{
    const struct ws_config *cfg = e->cfg;
    struct ws_kafka_conf kc = {cfg->bootstrap, cfg->group_id, (const char *const *)cfg->kafka_props,
                               cfg->nkafka_props};
    struct build_ctx *c = calloc(1, sizeof *c);
    ws_err_t err;

    if (!(*ctx = c))
        return ws_fail(WS_ERR_NOMEM, errbuf, errlen, "out of memory for a build worker");
    if (!(c->reader = ws_kafka_reader_new(&kc, errbuf, errlen)))
        return WS_ERR_CONFIG;
    if (cfg->ncatalogs && (err = eng_lake_new(cfg, &c->lake, errbuf, errlen)))
        return err;
    return eng_hasher_new(&c->hasher, errbuf, errlen);
}

static ws_err_t build_run(struct ws_engine *e, void *ctx, struct query *q, struct pending *p,
                          char *errbuf, size_t errlen)
{
    struct build_ctx *c = ctx;

    WS_TEST_HOOK("build_worker");
    return eng_build(e, c->reader, c->hasher, c->lake, q, p, errbuf, errlen);
}

const struct eng_work eng_build_work = {"build", build_open, build_run, build_close};
