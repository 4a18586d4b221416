/*
 * engine.c — the attestation engine: one thread, one loop, every window's life.
 *
 * A window's life (one notification = one micro-batch = one window):
 *
 *   received ──parse──► queued per query, in batch order ──(its turn)──► fetched and hashed
 *      │ bad                 │ batch <= head: duplicate (no-op) or conflict (dead-letter)
 *      ▼                     │ batch >  head+1: held gap_wait_ms, then attested with a gap
 *   dead-lettered            ▼
 *                    records re-read range by range (window-stream order) and streamed through
 *                    the stream digest, the Merkle tree and the LZ4 writer into the spool
 *                         │ not retained / unknown topic: dead-lettered (permanent)
 *                         │ range not complete / broker trouble: retried with backoff
 *                         ▼
 *                    spooled (evidence fsynced + renamed) ─► statement ─► signed ─► envelope
 *                    spooled ─► published to every sink ─► chain head produced to the heads
 *                    topic ─► notification offset committed ─► spool entry removed
 *
 * Durability invariants (each step keeps them; the tests break them on purpose):
 *   I1  A notification's offset is committed only after the window's envelope and evidence are
 *       in every sink and its chain head is acknowledged by Kafka — or after its dead-letter
 *       record is acknowledged. Offsets are committed per partition up to the lowest offset
 *       still in hand, so a held or retrying window keeps later ones uncommitted too.
 *   I2  The statement is a pure function of (notification, records, chain head, configuration):
 *       reprocessing after a crash yields the same bytes and, with Ed25519, the same envelope,
 *       so "already written with identical bytes" is success everywhere.
 *   I3  The chain head in Kafka only moves forward by one window at a time, after the sinks
 *       hold that window; a restart or another group member continues from it.
 *   I4  Nothing from outside is trusted: a notification that cannot be processed is
 *       dead-lettered with its reason and the loop goes on with the next one.
 *   I5  Windows of a query are attested in batch order; a batch that never arrives becomes a
 *       gap in the next attestation, never a silent skip.
 *
 * After a rebalance (the consumer's generation changes) everything in hand is dropped and the
 * heads are reloaded: with the eager protocol, fetching restarts from the committed offsets, so
 * the dropped notifications come again and I2 makes reprocessing harmless.
 *
 * Thread: everything here runs on the caller's thread; ws_engine_stop may be called from a
 * signal handler.
 */
#include "engine/internal.h"
#include "disk/disk.h"
#include "disk/testhook.h"
#include "kafka/kafka.h"
#include "sinks/sink.h"

#include <assert.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The configured object stores and the attestations topic; sinks_done is a bitmask of them. */
#define MAX_SINKS (WS_CONFIG_MAX_SINKS + 1)
_Static_assert(MAX_SINKS <= 32, "sinks_done holds one bit per sink");
/* Notifications held at once (gap waits, retries, a stopped chain): beyond this, stop polling
 * rather than let memory grow; they wait in Kafka instead. */
#define MAX_IN_HAND 10000

enum stage { ST_QUEUED, ST_READY, ST_DEADLETTER, ST_DONE };

struct pending {
    int32_t partition;
    int64_t offset;
    int64_t timestamp;
    char *key, *value; /* raw copies, for the dead-letter record */
    int32_t key_len, value_len;
    bool parsed;
    struct ws_notification n;
    enum stage stage;
    ws_err_t dlq_err;
    char dlq_reason[512];
    int64_t held_since;   /* first time it was found ahead of its chain */
    int64_t next_attempt; /* monotonic ms */
    unsigned attempts;
    /* ST_READY: artifacts made, being published */
    char *envelope;
    size_t envelope_len;
    char evidence_path[PATH_MAX];
    unsigned sinks_done; /* bitmask */
    bool head_done;
    struct ws_head new_head;
    uint64_t window_records, window_bytes;
    struct pending *next; /* in its query's queue, by batch id; or in the orphan list */
};

struct query {
    char id[129];
    bool has_head;
    struct ws_head head;
    int64_t no_wait_below; /* batches below this are known dead-lettered: no gap wait */
    bool stopped;
    struct pending *queue;
    struct query *next;
};

struct inflight { /* offsets in hand, per partition of the notifications topic */
    int32_t partition;
    int64_t *offs;
    size_t n, cap;
    int64_t seen_max; /* highest offset polled */
    int64_t committed;
};

struct ws_engine {
    const struct ws_config *cfg;
    struct ws_key key;
    struct ws_key *read_keys; /* public halves: signing key first, then signing.verify_keys */
    size_t nread_keys;
    struct ws_kafka_producer *producer;
    struct ws_kafka_reader *reader;
    struct ws_kafka_consumer *consumer;
    struct ws_spool *spool;
    struct ws_sink *sinks[MAX_SINKS];
    size_t nsinks;
    struct query *queries;
    struct pending *orphans; /* dead-letters without a usable query id */
    struct inflight *parts;
    size_t nparts;
    uint64_t generation;
    bool heads_loaded;
    size_t in_hand; /* notifications polled and not yet done: intake pauses at MAX_IN_HAND */
    volatile sig_atomic_t stop;
    struct ws_engine_stats stats;
    struct ws_metrics *metrics;
    int64_t last_gauges; /* when the gauges were last refreshed */
    struct ws_notif_opts nopts;
};

/* ------------------------------------------------------------------------------------------ */
/* Offsets in hand and commits (I1)                                                             */

static struct inflight *part_get(struct ws_engine *e, int32_t partition)
{
    struct inflight *p;

    for (size_t i = 0; i < e->nparts; i++)
        if (e->parts[i].partition == partition)
            return &e->parts[i];
    p = realloc(e->parts, (e->nparts + 1) * sizeof *p);
    if (!p)
        return NULL;
    e->parts = p;
    p = &e->parts[e->nparts++];
    memset(p, 0, sizeof *p);
    p->partition = partition;
    p->seen_max = -1;
    p->committed = -1;
    return p;
}

static bool inflight_add(struct ws_engine *e, int32_t partition, int64_t offset)
{
    struct inflight *p = part_get(e, partition);

    if (!p)
        return false;
    if (p->n == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 16;
        int64_t *o = realloc(p->offs, cap * sizeof *o);
        if (!o)
            return false;
        p->offs = o;
        p->cap = cap;
    }
    p->offs[p->n++] = offset;
    if (offset > p->seen_max)
        p->seen_max = offset;
    e->in_hand++;
    return true;
}

static void commit_partition(struct ws_engine *e, struct inflight *p)
{
    int64_t next = p->seen_max + 1;
    char errbuf[256];

    for (size_t i = 0; i < p->n; i++)
        if (p->offs[i] < next)
            next = p->offs[i];
    if (next <= p->committed || next <= 0)
        return;
    if (ws_kafka_consumer_commit(e->consumer, p->partition, next, errbuf, sizeof errbuf)) {
        ws_log(WS_LOG_WARN, "commit_failed", "partition=%d offset=%lld reason=\"%s\"", p->partition,
               (long long)next, errbuf);
        return;
    }
    p->committed = next;
}

static void inflight_done(struct ws_engine *e, int32_t partition, int64_t offset)
{
    struct inflight *p = part_get(e, partition);

    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++)
        if (p->offs[i] == offset) {
            p->offs[i] = p->offs[--p->n];
            e->in_hand--;
            break;
        }
    commit_partition(e, p);
}

/* ------------------------------------------------------------------------------------------ */
/* Queries and their queues                                                                     */

static void pending_free(struct pending *p)
{
    if (!p)
        return;
    if (p->parsed)
        ws_notification_free(&p->n);
    free(p->key);
    free(p->value);
    free(p->envelope);
    free(p);
}

static struct query *query_get(struct ws_engine *e, const char *id, bool create)
{
    struct query *q;

    for (q = e->queries; q; q = q->next)
        if (strcmp(q->id, id) == 0)
            return q;
    if (!create || strlen(id) >= sizeof q->id || !(q = calloc(1, sizeof *q)))
        return NULL;
    snprintf(q->id, sizeof q->id, "%s", id);
    q->next = e->queries;
    e->queries = q;
    return q;
}

/*
 * In batch order — but never ahead of a window already past ST_QUEUED: its artifacts were built
 * on the current head (perhaps declaring a gap), so a late lower batch must wait behind it and
 * then be treated as late, or the chain would fork (I5).
 */
static void queue_insert(struct query *q, struct pending *p)
{
    struct pending **pp = &q->queue;

    while (*pp && ((*pp)->stage != ST_QUEUED || (*pp)->n.batch_id <= p->n.batch_id))
        pp = &(*pp)->next;
    p->next = *pp;
    *pp = p;
}

/* Drop everything in hand (after a rebalance): it will be delivered again (I2). */
static void drop_all(struct ws_engine *e)
{
    struct pending *p, *nx;

    for (struct query *q = e->queries; q; q = q->next) {
        for (p = q->queue; p; p = nx) {
            nx = p->next;
            pending_free(p);
        }
        q->queue = NULL;
        q->stopped = false;
    }
    for (p = e->orphans; p; p = nx) {
        nx = p->next;
        pending_free(p);
    }
    e->orphans = NULL;
    e->in_hand = 0;
    for (size_t i = 0; i < e->nparts; i++) {
        e->parts[i].n = 0;
        e->parts[i].seen_max = -1;
        e->parts[i].committed = -1;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Chain heads (I3)                                                                             */

static ws_err_t head_cb(void *opaque, const struct ws_record *r)
{
    struct ws_engine *e = opaque;
    struct ws_head h;
    char why[256];
    struct query *q;

    if (r->value_len <= 0)
        return WS_OK;
    if (ws_head_decode(r->value, (size_t)r->value_len, &h, why, sizeof why)) {
        ws_log(WS_LOG_WARN, "head_ignored", "partition=%d offset=%lld reason=\"%s\"", r->partition,
               (long long)r->offset, why);
        return WS_OK;
    }
    if (!(q = query_get(e, h.query_id, true)))
        return WS_ERR_NOMEM;
    if (!q->has_head || h.log.size >= q->head.log.size) {
        q->head = h;
        q->has_head = true;
    }
    return WS_OK;
}

static ws_err_t load_heads(struct ws_engine *e)
{
    char errbuf[256];
    ws_err_t err;

    for (struct query *q = e->queries; q; q = q->next)
        q->has_head = false;
    err = ws_kafka_read_all(e->reader, e->cfg->heads_topic, head_cb, e,
                            (int)e->cfg->fetch_timeout_ms, errbuf, sizeof errbuf);
    if (err) {
        ws_log(WS_LOG_WARN, "heads_load_failed", "topic=%s reason=\"%s\"", e->cfg->heads_topic,
               errbuf);
        return err;
    }
    e->heads_loaded = true;
    return WS_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Dead letters (I4)                                                                            */

static bool wait_delivery(struct ws_engine *e, struct ws_delivery *d)
{
    while (!d->done)
        ws_kafka_producer_poll(e->producer, 5);
    return d->err == WS_OK;
}

static void to_deadletter(struct pending *p, ws_err_t err, const char *reason)
{
    p->stage = ST_DEADLETTER;
    p->dlq_err = err;
    snprintf(p->dlq_reason, sizeof p->dlq_reason, "%s", reason);
    p->next_attempt = 0;
}

/*
 * Produce the dead-letter record; true when Kafka acknowledged it. A notification too large for
 * the dead-letter topic (the consumer accepts far larger messages than a producer may send) is
 * dead-lettered without its key and value, with their sizes and the value's SHA-256 in a
 * header: retrying the full copy would fail forever and hold every later offset of the
 * partition uncommitted (I1).
 */
static bool deadletter(struct ws_engine *e, struct pending *p)
{
    struct ws_delivery d = {0};
    char part[16], off[24], errbuf[256], dropped[200], hex[WS_HASH_HEX_LEN + 1];
    const char *src = e->cfg->notifications_topic;
    struct ws_header h[6] = {
        {"windowseal.reason", 17, p->dlq_reason, (int32_t)strlen(p->dlq_reason)},
        {"windowseal.error", 16, ws_err_name(p->dlq_err), (int32_t)strlen(ws_err_name(p->dlq_err))},
        {"windowseal.source-topic", 23, src, (int32_t)strlen(src)},
        {"windowseal.source-partition", 27, part, 0},
        {"windowseal.source-offset", 24, off, 0},
        {"windowseal.dropped", 18, dropped, 0},
    };
    size_t klen = p->key_len < 0 ? 0 : (size_t)p->key_len;
    size_t vlen = p->value_len < 0 ? 0 : (size_t)p->value_len;
    bool drop = false;
    ws_err_t err;

    h[3].value_len = snprintf(part, sizeof part, "%d", p->partition);
    h[4].value_len = snprintf(off, sizeof off, "%lld", (long long)p->offset);
    for (;;) {
        memset(&d, 0, sizeof d);
        err = ws_kafka_produce(e->producer, e->cfg->deadletter_topic, -1, drop ? NULL : p->key,
                               drop ? 0 : klen, drop ? NULL : p->value, drop ? 0 : vlen, h,
                               drop ? 6 : 5, &d, errbuf, sizeof errbuf);
        if (!err && !wait_delivery(e, &d)) {
            err = d.err;
            snprintf(errbuf, sizeof errbuf, "%s", d.reason);
        }
        if (err != WS_ERR_TOO_LARGE || drop)
            break;
        drop = true;
        {
            uint8_t sum[WS_HASH_LEN];
            ws_sha256(p->value, vlen, sum);
            ws_hex_encode(sum, WS_HASH_LEN, hex);
        }
        h[5].value_len = snprintf(dropped, sizeof dropped,
                                  "key and value too large for the dead-letter topic: key %zu "
                                  "bytes, value %zu bytes, value sha256 %s",
                                  klen, vlen, hex);
    }
    if (err) {
        ws_log(WS_LOG_WARN, "deadletter_failed", "reason=\"%s\"", errbuf);
        return false;
    }
    e->stats.deadlettered++;
    {
        char l[64];
        snprintf(l, sizeof l, "error=\"%s\"", ws_err_name(p->dlq_err));
        ws_metrics_add(e->metrics, "windowseal_deadlettered_total", l, 1);
    }
    ws_log(WS_LOG_WARN, "deadlettered", "partition=%d offset=%lld error=%s reason=\"%s\"",
           p->partition, (long long)p->offset, ws_err_name(p->dlq_err), p->dlq_reason);
    WS_TEST_HOOK("deadlettered");
    return true;
}

/* ------------------------------------------------------------------------------------------ */
/* Building a window                                                                            */

struct fetch_ctx {
    struct ws_window *w;
    char *errbuf;
    size_t errlen;
};

static ws_err_t on_record(void *opaque, const struct ws_record *r)
{
    struct fetch_ctx *c = opaque;
    WS_TEST_HOOK("fetch_record");
    return ws_window_add(c->w, r, c->errbuf, c->errlen);
}

static ws_err_t resolve_starts(struct ws_engine *e, struct ws_notification *n, char *errbuf,
                               size_t errlen)
{
    for (size_t i = 0; i < n->nsources; i++) {
        int64_t lo, hi;
        ws_err_t err;
        if (n->sources[i].from_offset != WS_OFFSET_UNRESOLVED)
            continue;
        err = ws_kafka_reader_watermarks(e->reader, n->sources[i].topic, n->sources[i].partition,
                                         &lo, &hi, (int)e->cfg->fetch_timeout_ms, errbuf, errlen);
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
 * attested as Kafka holds it (the ranges are Spark's own), logged and counted.
 */
static ws_err_t check_input_rows(struct ws_engine *e, const struct query *q,
                                 const struct pending *p, const struct ws_window_result *res,
                                 char *errbuf, size_t errlen)
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
    if (n->reported_input_rows >= 0 && (uint64_t)n->reported_input_rows != res->leaf_count) {
        e->stats.input_rows_mismatches++;
        ws_metrics_add(e->metrics, "windowseal_input_rows_mismatch_total", NULL, 1);
        ws_log(WS_LOG_WARN, "input_rows_mismatch",
               "query=%s batch=%lld reported=%lld records=%llu action=\"attested as Kafka holds "
               "the ranges\"",
               q->id, (long long)n->batch_id, (long long)n->reported_input_rows,
               (unsigned long long)res->leaf_count);
    }
    return WS_OK;
}

/* Fetch and hash the records of every source, in window-stream order; fills res. */
static ws_err_t fetch_window(struct ws_engine *e, struct pending *p, struct ws_window *w,
                             struct ws_window_result *res, char *errbuf, size_t errlen)
{
    struct fetch_ctx ctx = {w, errbuf, errlen};
    struct ws_kafka_range *rg;
    ws_err_t err;

    /*
     * Sources are sorted by (topic, partition): one read fetches every range concurrently and
     * delivers them in that order, each in offset order (fetch.timeout.ms bounds the window).
     */
    if (!(rg = calloc(p->n.nsources ? p->n.nsources : 1, sizeof *rg)))
        return ws_fail(WS_ERR_NOMEM, errbuf, errlen, "out of memory for %zu ranges", p->n.nsources);
    for (size_t i = 0; i < p->n.nsources; i++) {
        const struct ws_notif_source *s = &p->n.sources[i];
        rg[i] = (struct ws_kafka_range){s->topic, s->partition, s->from_offset, s->until_offset};
    }
    err = ws_kafka_read_ranges(e->reader, rg, p->n.nsources, (int)e->cfg->fetch_timeout_ms,
                               on_record, &ctx, errbuf, errlen);
    free(rg);
    if (err)
        return err;
    if ((err = ws_window_finish(w, res)))
        return ws_fail(err, errbuf, errlen, "window: %s", ws_strerror(err));
    return WS_OK;
}

static void head_next(const struct query *q, const struct pending *p,
                      const struct ws_window_result *res, const uint8_t stmt_digest[WS_HASH_LEN],
                      struct ws_head *h)
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
    memcpy(h->last_statement_digest, stmt_digest, WS_HASH_LEN);
    ws_notification_sources_digest(&p->n, h->last_sources_digest);
}

/* Statement + envelope for a finished window. */
static ws_err_t seal(struct ws_engine *e, struct query *q, struct pending *p,
                     const struct ws_window_result *res, const struct ws_gap *gap, char *errbuf,
                     size_t errlen)
{
    struct ws_statement_in in = {0};
    struct ws_output_set outs = {0};
    struct ws_head h;
    char prev_id[WS_WINDOW_ID_MAX], *stmt = NULL;
    size_t stmt_len = 0;
    uint8_t digest[WS_HASH_LEN];
    ws_err_t err;

    err = ws_outputs_hash(&p->n, (const char *const *)e->cfg->allowed_roots, e->cfg->nallowed_roots,
                          e->spool, &outs, errbuf, errlen);
    if (err)
        return err;
    /* The log root after appending this window (chainLength, logRoot). */
    head_next(q, p, res, (const uint8_t[WS_HASH_LEN]){0}, &h);
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
    in.chain_length = h.log.size;
    ws_merkle_root(&h.log, in.log_root);
    in.genesis_window_id = h.genesis_window_id;
    in.gaps = gap;
    in.ngaps = gap ? 1 : 0;
    in.outputs = outs.outputs;
    in.noutputs = outs.noutputs;
    in.group_id = e->cfg->group_id;
    in.version = WS_VERSION;
    in.keyid = e->key.keyid;
    err = ws_statement_build(&in, &stmt, &stmt_len);
    ws_outputs_free(&outs);
    if (err)
        return ws_fail(err, errbuf, errlen, "statement: %s", ws_strerror(err));
    ws_sha256(stmt, stmt_len, digest);
    err = ws_dsse_sign(&e->key, WS_PAYLOAD_TYPE, stmt, stmt_len, &p->envelope, &p->envelope_len);
    free(stmt);
    if (err)
        return ws_fail(err, errbuf, errlen, "signing: %s", ws_strerror(err));
    head_next(q, p, res, digest, &p->new_head);
    return WS_OK;
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
    uint8_t mine[WS_HASH_LEN], theirs[WS_HASH_LEN], log_root[WS_HASH_LEN];
    char *payload = NULL;
    size_t plen, which;
    ws_err_t err;

    /* keys[0] only: an envelope we would not sign now is recomputed, not delivered (I2) */
    if ((err = ws_verify_envelope(sw->envelope, sw->envelope_len, e->read_keys, 1,
                                  sw->evidence_path, &v, errbuf, errlen)))
        return err;
    if ((err = ws_dsse_open(sw->envelope, sw->envelope_len, e->read_keys, 1, &payload, &plen,
                            &which, errbuf, errlen)))
        return err;
    err = ws_statement_sources_digest(payload, plen, theirs);
    free(payload);
    if (err)
        return ws_fail(err, errbuf, errlen, "spooled statement: no sources");
    ws_notification_sources_digest(&p->n, mine);
    if (strcmp(v.query_id, q->id) != 0 || v.batch_id != p->n.batch_id ||
        memcmp(mine, theirs, WS_HASH_LEN) != 0 || v.has_previous != q->has_head ||
        (q->has_head &&
         (memcmp(v.previous_root, q->head.last_root, WS_HASH_LEN) != 0 ||
          memcmp(v.previous_attestation_digest, q->head.last_statement_digest, WS_HASH_LEN) != 0)))
        return ws_fail(WS_ERR_VERIFY, errbuf, errlen,
                       "spooled window is not this chain position's window");
    memcpy(res.root, v.root, WS_HASH_LEN);
    memcpy(res.stream_digest, v.stream_digest, WS_HASH_LEN);
    head_next(q, p, &res, v.statement_digest, &p->new_head);
    ws_merkle_root(&p->new_head.log, log_root);
    if (p->new_head.log.size != v.chain_length || memcmp(log_root, v.log_root, WS_HASH_LEN) != 0)
        return ws_fail(WS_ERR_VERIFY, errbuf, errlen, "spooled window: chain does not match");
    if (!(p->envelope = malloc(sw->envelope_len + 1)))
        return WS_ERR_NOMEM;
    memcpy(p->envelope, sw->envelope, sw->envelope_len + 1);
    p->envelope_len = sw->envelope_len;
    snprintf(p->evidence_path, sizeof p->evidence_path, "%s", sw->evidence_path);
    p->stage = ST_READY;
    p->sinks_done = 0;
    p->head_done = false;
    e->stats.records += v.leaf_count;
    e->stats.bytes += v.bytes;
    ws_log(WS_LOG_INFO, "window_resumed", "query=%s batch=%lld source=spool", q->id,
           (long long)p->n.batch_id);
    return WS_OK;
}

/* Received -> ready (artifacts spooled) or dead-letter or retry. */
static ws_err_t build_window(struct ws_engine *e, struct query *q, struct pending *p,
                             const struct ws_gap *gap, char *errbuf, size_t errlen)
{
    struct ws_spool_file *sf = NULL;
    struct ws_evidence_writer *ew = NULL;
    struct ws_window *w = NULL;
    struct ws_window_result res;
    const char *path;
    struct ws_spool_window sw;
    ws_err_t err;

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
    if ((err = resolve_starts(e, &p->n, errbuf, errlen)))
        return err;
    if ((err = ws_spool_begin(e->spool, q->id, p->n.batch_id, &sf, errbuf, errlen)))
        return err;
    if (!(ew = ws_evidence_writer_new(ws_spool_write, sf, 0)) ||
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
    if ((err = fetch_window(e, p, w, &res, errbuf, errlen)) ||
        (err = check_input_rows(e, q, p, &res, errbuf, errlen)))
        goto out;
    if ((err = ws_evidence_finish(ew))) {
        ws_fail(err, errbuf, errlen, "evidence: %s", ws_strerror(err));
        goto out;
    }
    if ((err = ws_spool_commit(sf, &path, errbuf, errlen)))
        goto out;
    snprintf(p->evidence_path, sizeof p->evidence_path, "%s", path);
    if ((err = seal(e, q, p, &res, gap, errbuf, errlen)))
        goto out;
    WS_TEST_HOOK("spool_envelope");
    if ((err = ws_spool_put_envelope(e->spool, q->id, p->n.batch_id, p->envelope, p->envelope_len,
                                     errbuf, errlen)))
        goto out;
    p->stage = ST_READY;
    p->sinks_done = 0;
    p->head_done = false;
    e->stats.records += res.leaf_count;
    e->stats.bytes += res.bytes;
    p->window_records = res.leaf_count;
    p->window_bytes = res.bytes;
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

/* ------------------------------------------------------------------------------------------ */
/* Publishing (ST_READY)                                                                        */

static void window_metrics(struct ws_engine *e, const struct query *q, const struct pending *p)
{
    struct timespec now;
    char l[160];

    clock_gettime(CLOCK_REALTIME, &now);
    ws_metrics_add(e->metrics, "windowseal_windows_attested_total", NULL, 1);
    ws_metrics_add(e->metrics, "windowseal_records_attested_total", NULL,
                   (double)p->window_records);
    ws_metrics_add(e->metrics, "windowseal_bytes_attested_total", NULL, (double)p->window_bytes);
    snprintf(l, sizeof l, "query=\"%s\"", q->id); /* query ids are [A-Za-z0-9._-] */
    ws_metrics_set(e->metrics, "windowseal_chain_length", l, (double)q->head.log.size);
    ws_metrics_observe(e->metrics, "windowseal_window_latency_seconds", NULL,
                       ((double)now.tv_sec * 1e3 + now.tv_nsec / 1e6 - (double)p->timestamp) / 1e3);
}

static ws_err_t publish_head(struct ws_engine *e, struct pending *p, char *errbuf, size_t errlen)
{
    struct ws_delivery d = {0};
    char *json = NULL;
    size_t len = 0;
    ws_err_t err = ws_head_encode(&p->new_head, &json, &len);

    if (err)
        return err;
    err = ws_kafka_produce(e->producer, e->cfg->heads_topic, -1, p->n.query_id,
                           strlen(p->n.query_id), json, len, NULL, 0, &d, errbuf, errlen);
    free(json);
    if (err)
        return err;
    if (!wait_delivery(e, &d))
        return ws_fail(d.err, errbuf, errlen, "heads topic: %s", d.reason);
    return WS_OK;
}

/*
 * The query's signed checkpoint (transparency-dev signed note) at this window's chain position,
 * replaced in every object store once that store holds the window. Deterministic like the
 * envelope, so a retry or a re-processed window writes the same bytes.
 */
static ws_err_t put_checkpoint(struct ws_engine *e, const struct query *q, const struct pending *p,
                               struct ws_sink *s, char *errbuf, size_t errlen)
{
    uint8_t root[WS_HASH_LEN];
    char name[200], *note = NULL;
    size_t len = 0;
    ws_err_t err;

    if (!ws_sink_can_put(s))
        return WS_OK;
    ws_merkle_root(&p->new_head.log, root);
    err = ws_checkpoint_sign(&e->key, WS_CHECKPOINT_KEYNAME, q->id, p->new_head.log.size, root,
                             &note, &len);
    if (err)
        return ws_fail(err, errbuf, errlen, "checkpoint: %s", ws_strerror(err));
    snprintf(name, sizeof name, "%s/checkpoint", q->id);
    err = ws_sink_put(s, name, note, len, errbuf, errlen);
    free(note);
    return err;
}

/*
 * An object store already holds an envelope for this window with other bytes (SPEC 9): adopt it
 * only if it verifies with a configured key against this window's own evidence and states the
 * same chain position; then it becomes the window's envelope everywhere, and its statement
 * digest is what the next window links to. Only before any sink took our bytes, so that all
 * sinks end up holding the same envelope.
 */
static ws_err_t try_adopt(struct ws_engine *e, const struct query *q, struct pending *p,
                          struct ws_sink *s, char *errbuf, size_t errlen)
{
    char name[256], why[512], *env = NULL;
    uint8_t log_root[WS_HASH_LEN];
    struct ws_verified v;
    size_t len = 0;
    ws_err_t err;

    if (p->sinks_done || !ws_sink_can_get(s))
        return WS_ERR_EXISTS_DIFFERENT;
    ws_object_name(q->id, p->n.batch_id, ".dsse.json", name);
    if (ws_sink_get(s, name, &env, &len, why, sizeof why) != WS_OK)
        return WS_ERR_EXISTS_DIFFERENT; /* the evidence is what differs: never adopted */
    err = ws_verify_envelope(env, len, e->read_keys, e->nread_keys, p->evidence_path, &v, why,
                             sizeof why);
    ws_merkle_root(&p->new_head.log, log_root);
    if (err || v.batch_id != p->n.batch_id || strcmp(v.query_id, q->id) != 0 ||
        v.chain_length != p->new_head.log.size || memcmp(v.log_root, log_root, WS_HASH_LEN) ||
        v.has_previous != q->has_head ||
        (q->has_head &&
         (memcmp(v.previous_root, q->head.last_root, WS_HASH_LEN) ||
          memcmp(v.previous_attestation_digest, q->head.last_statement_digest, WS_HASH_LEN)))) {
        free(env);
        return ws_fail(WS_ERR_EXISTS_DIFFERENT, errbuf, errlen,
                       "%s holds another envelope for %s/%lld that cannot be adopted (%s)",
                       ws_sink_label(s), q->id, (long long)p->n.batch_id,
                       err ? why : "it states another window or chain position");
    }
    free(p->envelope);
    p->envelope = env;
    p->envelope_len = len;
    memcpy(p->new_head.last_statement_digest, v.statement_digest, WS_HASH_LEN);
    ws_log(WS_LOG_WARN, "envelope_adopted",
           "query=%s batch=%lld sink=%s keyid=%s reason=\"an existing envelope for this window "
           "verifies and states the same root, digest and chain position\"",
           q->id, (long long)p->n.batch_id, ws_sink_label(s), e->read_keys[v.key_index].keyid);
    return WS_OK;
}

static ws_err_t publish(struct ws_engine *e, struct query *q, struct pending *p, char *errbuf,
                        size_t errlen)
{
    char window_id[WS_WINDOW_ID_MAX];
    struct ws_artifact a = {0};
    ws_err_t err;

    ws_window_id(q->id, p->n.batch_id, window_id);
    a.query_id = q->id;
    a.batch_id = p->n.batch_id;
    a.window_id = window_id;
    a.envelope = p->envelope;
    a.envelope_len = p->envelope_len;
    a.evidence_path = p->evidence_path;
    for (size_t i = 0; i < e->nsinks; i++) {
        if (p->sinks_done & (1u << i))
            continue;
        err = ws_sink_publish(e->sinks[i], &a, errbuf, errlen);
        if (err == WS_ERR_EXISTS_DIFFERENT &&
            try_adopt(e, q, p, e->sinks[i], errbuf, errlen) == WS_OK) {
            a.envelope = p->envelope;
            a.envelope_len = p->envelope_len;
            err = ws_sink_publish(e->sinks[i], &a, errbuf, errlen);
        }
        if (!err)
            err = put_checkpoint(e, q, p, e->sinks[i], errbuf, errlen);
        if (err) {
            char l[160];
            snprintf(l, sizeof l, "sink=\"%s\",class=\"%s\"", ws_sink_label(e->sinks[i]),
                     ws_err_retriable(err) ? "retriable" : "permanent");
            ws_metrics_add(e->metrics, "windowseal_sink_failures_total", l, 1);
            e->stats.sink_failures++;
            ws_log(WS_LOG_WARN, "sink_failed", "query=%s window=%s sink=%s class=%s reason=\"%s\"",
                   q->id, window_id, ws_sink_label(e->sinks[i]),
                   ws_err_retriable(err) ? "retriable" : "permanent", errbuf);
            return err;
        }
        p->sinks_done |= 1u << i;
        WS_TEST_HOOK("sink_published");
        {
            char l[96];
            snprintf(l, sizeof l, "sink=\"%s\"", ws_sink_label(e->sinks[i]));
            ws_metrics_add(e->metrics, "windowseal_sink_publishes_total", l, 1);
        }
    }
    if (!p->head_done) {
        if ((err = publish_head(e, p, errbuf, errlen)))
            return err;
        p->head_done = true;
        WS_TEST_HOOK("head_published");
    }
    q->head = p->new_head;
    q->has_head = true;
    ws_spool_remove(e->spool, q->id, p->n.batch_id);
    e->stats.windows++;
    window_metrics(e, q, p);
    ws_log(WS_LOG_INFO, "window_attested", "query=%s window=%s chain_length=%llu", q->id, window_id,
           (unsigned long long)q->head.log.size);
    return WS_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Duplicates and conflicts (SPEC 8)                                                            */

/* Sources digest of an attested window read back from the first sink that can. */
static ws_err_t attested_sources(struct ws_engine *e, const char *qid, int64_t batch,
                                 uint8_t out[WS_HASH_LEN])
{
    char name[256], why[256], *env = NULL, *payload = NULL;
    size_t len, plen, which;
    ws_err_t err = WS_ERR_NOT_FOUND;

    ws_object_name(qid, batch, ".dsse.json", name);
    for (size_t i = 0; i < e->nsinks && err == WS_ERR_NOT_FOUND; i++) {
        if (!ws_sink_can_get(e->sinks[i]))
            continue;
        err = ws_sink_get(e->sinks[i], name, &env, &len, why, sizeof why);
    }
    if (err)
        return err;
    err = ws_dsse_open(env, len, e->read_keys, e->nread_keys, &payload, &plen, &which, why,
                       sizeof why);
    free(env);
    if (err)
        return err;
    err = ws_statement_sources_digest(payload, plen, out);
    free(payload);
    return err;
}

static void handle_old_batch(struct ws_engine *e, struct query *q, struct pending *p)
{
    uint8_t mine[WS_HASH_LEN], theirs[WS_HASH_LEN];
    char reason[512];
    ws_err_t err;

    /* a batch 0 resolved to the low watermark was attested with the offsets it resolved to */
    if (resolve_starts(e, &p->n, reason, sizeof reason))
        ws_log(WS_LOG_WARN, "resolve_failed", "query=%s batch=%lld reason=\"%s\"", q->id,
               (long long)p->n.batch_id, reason);
    ws_notification_sources_digest(&p->n, mine);
    if (p->n.batch_id == q->head.last_batch) {
        memcpy(theirs, q->head.last_sources_digest, WS_HASH_LEN);
        err = WS_OK;
    } else {
        err = attested_sources(e, q->id, p->n.batch_id, theirs);
    }
    if (err) {
        snprintf(reason, sizeof reason,
                 "batch %lld of query %s is behind the chain head (batch %lld) and no attestation "
                 "of it can be read back: it was recorded as a gap or its envelope is missing",
                 (long long)p->n.batch_id, q->id, (long long)q->head.last_batch);
        to_deadletter(p, WS_ERR_CONFLICT, reason);
        e->stats.conflicts++;
        return;
    }
    if (memcmp(mine, theirs, WS_HASH_LEN) == 0) {
        /* Published before a crash that came before the spool was cleaned. */
        ws_spool_remove(e->spool, q->id, p->n.batch_id);
        e->stats.duplicates++;
        ws_metrics_add(e->metrics, "windowseal_duplicates_total", NULL, 1);
        ws_log(WS_LOG_INFO, "duplicate", "query=%s batch=%lld", q->id, (long long)p->n.batch_id);
        p->stage = ST_DONE;
        return;
    }
    snprintf(reason, sizeof reason,
             "conflict: batch %lld of query %s was already attested with other sources; the "
             "first attestation stands",
             (long long)p->n.batch_id, q->id);
    ws_log(WS_LOG_ERROR, "conflict", "query=%s batch=%lld", q->id, (long long)p->n.batch_id);
    e->stats.conflicts++;
    ws_metrics_add(e->metrics, "windowseal_conflicts_total", NULL, 1);
    to_deadletter(p, WS_ERR_CONFLICT, reason);
}

/* ------------------------------------------------------------------------------------------ */
/* Scheduling                                                                                   */

static void backoff(struct ws_engine *e, struct pending *p)
{
    int64_t d = e->cfg->retry_base_ms;

    for (unsigned i = 0; i < p->attempts && d < e->cfg->retry_max_ms; i++)
        d *= 2;
    if (d > e->cfg->retry_max_ms)
        d = e->cfg->retry_max_ms;
    d = d * 3 / 4 + (int64_t)(rand() % (int)(d / 2 + 1)); /* jitter: 75%..125% */
    p->attempts++;
    p->next_attempt = ws_clock_ms() + d;
    e->stats.retries++;
    ws_metrics_add(e->metrics, "windowseal_retries_total", NULL, 1);
}

/* Move the head of one query's queue along as far as it goes now. */
static void advance_query(struct ws_engine *e, struct query *q)
{
    char errbuf[1024];
    ws_err_t err;

    while (q->queue && !q->stopped && !e->stop) {
        struct pending *p = q->queue;
        struct ws_gap gap, *gp = NULL;
        int64_t now = ws_clock_ms();

        if (p->next_attempt > now)
            return;
        if (p->stage == ST_QUEUED) {
            int64_t expected = q->has_head ? q->head.last_batch + 1 : 0;
            if (q->has_head && p->n.batch_id <= q->head.last_batch) {
                handle_old_batch(e, q, p);
                continue;
            }
            if (p->n.batch_id > expected) {
                if (p->n.batch_id > q->no_wait_below) {
                    if (!p->held_since) {
                        p->held_since = now;
                        ws_log(WS_LOG_INFO, "batch_ahead",
                               "query=%s batch=%lld expected=%lld wait_ms=%lld", q->id,
                               (long long)p->n.batch_id, (long long)expected,
                               (long long)e->cfg->gap_wait_ms);
                    }
                    if (now - p->held_since < e->cfg->gap_wait_ms)
                        return;
                }
                gap.from_batch = expected;
                gap.until_batch = p->n.batch_id;
                gp = &gap;
                e->stats.gaps++;
            }
            err = build_window(e, q, p, gp, errbuf, sizeof errbuf);
            if (err && ws_err_retriable(err)) {
                if (gp)
                    e->stats.gaps--;
                ws_log(WS_LOG_WARN, "window_retry", "query=%s batch=%lld attempt=%u reason=\"%s\"",
                       q->id, (long long)p->n.batch_id, p->attempts + 1, errbuf);
                backoff(e, p);
                return;
            }
            if (err) {
                if (gp)
                    e->stats.gaps--;
                to_deadletter(p, err, errbuf);
                continue;
            }
            p->attempts = 0;
            if (gp)
                ws_metrics_add(e->metrics, "windowseal_gaps_total", NULL, 1);
        }
        if (p->stage == ST_READY) {
            err = publish(e, q, p, errbuf, sizeof errbuf);
            if (err == WS_ERR_EXISTS_DIFFERENT || (err && !ws_err_retriable(err))) {
                q->stopped = true;
                ws_log(WS_LOG_ERROR, "query_stopped",
                       "query=%s batch=%lld reason=\"%s\" action=\"fix the sink or the stored "
                       "object, then restart; later windows of this query wait\"",
                       q->id, (long long)p->n.batch_id, errbuf);
                return;
            }
            if (err) {
                backoff(e, p);
                return;
            }
            p->stage = ST_DONE;
        }
        if (p->stage == ST_DEADLETTER) {
            if (!deadletter(e, p)) {
                backoff(e, p);
                return;
            }
            if (!q->has_head || p->n.batch_id > q->head.last_batch)
                if (p->n.batch_id + 1 > q->no_wait_below)
                    q->no_wait_below = p->n.batch_id + 1;
            p->stage = ST_DONE;
        }
        if (p->stage == ST_DONE) {
            q->queue = p->next;
            inflight_done(e, p->partition, p->offset);
            pending_free(p);
        }
    }
}

static void advance_orphans(struct ws_engine *e)
{
    while (e->orphans) {
        struct pending *p = e->orphans;
        if (p->next_attempt > ws_clock_ms() || !deadletter(e, p)) {
            if (p->next_attempt <= ws_clock_ms())
                backoff(e, p);
            return;
        }
        e->orphans = p->next;
        inflight_done(e, p->partition, p->offset);
        pending_free(p);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Intake                                                                                       */

static char *dup_bytes(const void *b, int32_t len)
{
    char *s = malloc(len > 0 ? (size_t)len + 1 : 1);
    if (s && len > 0)
        memcpy(s, b, (size_t)len);
    if (s)
        s[len > 0 ? len : 0] = '\0';
    return s;
}

static void orphan(struct ws_engine *e, struct pending *p)
{
    struct pending **pp = &e->orphans;
    while (*pp)
        pp = &(*pp)->next;
    *pp = p;
}

/* Not a batch: nothing to attest, nothing to dead-letter; its offset may be committed (I1). */
static void idle_trigger(struct ws_engine *e, struct pending *p)
{
    e->stats.idle_triggers++;
    ws_metrics_add(e->metrics, "windowseal_idle_triggers_total", NULL, 1);
    ws_log(WS_LOG_INFO, "idle_trigger",
           "query=%s batch=%lld partition=%d offset=%lld reason=\"progress of a trigger that ran "
           "no batch (durationMs without addBatch)\"",
           p->n.query_id, (long long)p->n.batch_id, p->partition, (long long)p->offset);
    inflight_done(e, p->partition, p->offset);
    pending_free(p);
}

static ws_err_t intake(struct ws_engine *e, const struct ws_kafka_msg *m)
{
    struct pending *p = calloc(1, sizeof *p);
    struct ws_notif_opts opts;
    char errbuf[512];
    struct query *q;
    ws_err_t err;

    if (!p || !(p->key = dup_bytes(m->key, m->key_len)) ||
        !(p->value = dup_bytes(m->value, m->value_len))) {
        pending_free(p);
        return WS_ERR_NOMEM;
    }
    p->partition = m->partition;
    p->offset = m->offset;
    p->timestamp = m->timestamp;
    p->key_len = m->key_len;
    p->value_len = m->value_len;
    if (!inflight_add(e, m->partition, m->offset)) {
        pending_free(p);
        return WS_ERR_NOMEM;
    }
    if (m->value_len < 0) {
        to_deadletter(p, WS_ERR_MALFORMED, "notification has a null value");
        orphan(e, p);
        return WS_OK;
    }
    if (m->timestamp < 0) {
        to_deadletter(p, WS_ERR_MALFORMED, "notification has no Kafka timestamp (observedAt)");
        orphan(e, p);
        return WS_OK;
    }
    opts = e->nopts;
    opts.key = m->key_len < 0 ? NULL : p->key;
    opts.key_len = m->key_len < 0 ? 0 : (size_t)m->key_len;
    err =
        ws_notification_parse(p->value, (size_t)p->value_len, &opts, &p->n, errbuf, sizeof errbuf);
    if (err) {
        to_deadletter(p, err, errbuf);
        orphan(e, p);
        return WS_OK;
    }
    p->parsed = true;
    if (p->n.idle) {
        idle_trigger(e, p);
        return WS_OK;
    }
    if (!(q = query_get(e, p->n.query_id, true))) {
        pending_free(p);
        return WS_ERR_NOMEM;
    }
    ws_log(WS_LOG_DEBUG, "received", "query=%s batch=%lld partition=%d offset=%lld", q->id,
           (long long)p->n.batch_id, p->partition, (long long)p->offset);
    queue_insert(q, p);
    return WS_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Public                                                                                       */

/* Gauges and readiness, at most once a second. */
static void refresh_gauges(struct ws_engine *e)
{
    int64_t lag = 0;
    unsigned stopped = 0;

    if (!e->metrics || ws_clock_ms() - e->last_gauges < 1000)
        return;
    e->last_gauges = ws_clock_ms();
    for (struct query *q = e->queries; q; q = q->next)
        stopped += q->stopped;
    ws_metrics_set(e->metrics, "windowseal_spool_bytes", NULL, (double)ws_spool_bytes(e->spool));
    {
        struct ws_spool_stats ss;
        ws_spool_get_stats(e->spool, &ss);
        ws_metrics_set(e->metrics, "windowseal_spool_full", NULL, ss.full);
        ws_metrics_set(e->metrics, "windowseal_spool_pauses_total", NULL, (double)ss.pauses);
    }
    ws_metrics_set(e->metrics, "windowseal_queries_stopped", NULL, stopped);
    if (ws_kafka_consumer_lag(e->consumer, &lag) == WS_OK)
        ws_metrics_set(e->metrics, "windowseal_consumer_lag", NULL, (double)lag);
    ws_metrics_set_ready(e->metrics, e->heads_loaded && stopped == 0);
}

ws_err_t ws_engine_step(struct ws_engine *e, int timeout_ms)
{
    struct ws_kafka_msg m;
    char errbuf[512];
    ws_err_t err = WS_OK;
    uint64_t gen;

    if (!e->stop && !ws_spool_full(e->spool) && e->in_hand < MAX_IN_HAND) {
        err = ws_kafka_consumer_poll(e->consumer, timeout_ms, &m, errbuf, sizeof errbuf);
        gen = ws_kafka_consumer_generation(e->consumer);
        if (gen != e->generation) {
            ws_log(WS_LOG_INFO, "rebalance", "generation=%llu", (unsigned long long)gen);
            e->generation = gen;
            drop_all(e);
            e->heads_loaded = false;
        }
        if (!e->heads_loaded && load_heads(e) != WS_OK) {
            if (err == WS_OK)
                ws_kafka_msg_release(&m);
            return WS_OK; /* try again next step; nothing was taken */
        }
        if (err == WS_OK) {
            err = intake(e, &m);
            ws_kafka_msg_release(&m);
            if (err)
                return err;
        } else if (err == WS_ERR_TIMEOUT) {
            err = WS_OK;
        } else if (err == WS_ERR_KAFKA_FATAL) {
            ws_log(WS_LOG_ERROR, "consumer_fatal", "reason=\"%s\"", errbuf);
            return err;
        } else {
            ws_log(WS_LOG_WARN, "consumer_error", "reason=\"%s\"", errbuf);
            err = WS_OK;
        }
    } else if (!e->stop) {
        static int64_t last_note;
        if (ws_clock_ms() - last_note > 10000) {
            last_note = ws_clock_ms();
            ws_log(WS_LOG_WARN, "intake_paused", "spool_bytes=%llu in_hand=%zu reason=\"%s\"",
                   (unsigned long long)ws_spool_bytes(e->spool), e->in_hand,
                   e->in_hand >= MAX_IN_HAND ? "too many notifications in hand" : "spool full");
        }
        struct timespec ts = {0, 10 * 1000000};
        nanosleep(&ts, NULL);
    }
    advance_orphans(e);
    for (struct query *q = e->queries; q; q = q->next)
        advance_query(e, q);
    ws_kafka_producer_poll(e->producer, 0);
    refresh_gauges(e);
    return err;
}

ws_err_t ws_engine_run(struct ws_engine *e)
{
    ws_err_t err = WS_OK;

    while (!e->stop && !err)
        err = ws_engine_step(e, 100);
    return err;
}

void ws_engine_stop(struct ws_engine *e)
{
    e->stop = 1;
}

bool ws_engine_idle(const struct ws_engine *e)
{
    if (e->orphans)
        return false;
    for (const struct query *q = e->queries; q; q = q->next)
        if (q->queue)
            return false;
    return true;
}

void ws_engine_get_stats(const struct ws_engine *e, struct ws_engine_stats *st)
{
    *st = e->stats;
}

const char *ws_engine_keyid(const struct ws_engine *e)
{
    return e->key.keyid;
}

static enum ws_io_mode io_mode(const char *s)
{
    return !strcmp(s, "on") ? WS_IO_ON : !strcmp(s, "off") ? WS_IO_OFF : WS_IO_AUTO;
}

ws_err_t ws_engine_new(const struct ws_config *cfg, struct ws_engine **out, char *errbuf,
                       size_t errlen)
{
    struct ws_engine *e = calloc(1, sizeof *e);
    struct ws_kafka_conf kc = {cfg->bootstrap, cfg->group_id, (const char *const *)cfg->kafka_props,
                               cfg->nkafka_props};
    struct ws_sink_conf kafka_sink = {.type = "kafka"};
    struct ws_sink_ctx sink_ctx = {0};
    ws_err_t err;

    if (!e)
        return WS_ERR_NOMEM;
    e->cfg = cfg;
    e->nopts.max_bytes = (size_t)cfg->notification_max_bytes;
    e->nopts.allow_unresolved_start = strcmp(cfg->initial_offsets, "earliest") == 0;
    e->nopts.check_key = true;
    if (!*cfg->signing_key) {
        err = ws_fail(WS_ERR_CONFIG, errbuf, errlen, "%s: signing.key: required", cfg->source);
        goto fail;
    }
    if ((err = ws_key_load(cfg->signing_key, true, &e->key, errbuf, errlen)))
        goto fail;
    if (!(e->read_keys = calloc(cfg->nverify_keys + 1, sizeof *e->read_keys))) {
        err = WS_ERR_NOMEM;
        goto fail;
    }
    memcpy(e->read_keys[0].pk, e->key.pk, sizeof e->key.pk);
    memcpy(e->read_keys[0].keyid, e->key.keyid, sizeof e->key.keyid);
    e->nread_keys = 1;
    for (size_t i = 0; i < cfg->nverify_keys; i++, e->nread_keys++)
        if ((err = ws_key_load(cfg->verify_keys[i], false, &e->read_keys[e->nread_keys], errbuf,
                               errlen)))
            goto fail;
    if (!(e->producer = ws_kafka_producer_new(&kc, ws_delivery_report, e, errbuf, errlen)) ||
        !(e->reader = ws_kafka_reader_new(&kc, errbuf, errlen)) ||
        !(e->consumer = ws_kafka_consumer_new(&kc, cfg->notifications_topic, errbuf, errlen))) {
        err = WS_ERR_CONFIG;
        goto fail;
    }
    if ((err = ws_spool_open(cfg->spool_path, io_mode(cfg->spool_io_uring),
                             (uint64_t)cfg->spool_max_bytes, &e->spool, errbuf, errlen)))
        goto fail;
    /* Object stores first, the topic last: an envelope on the topic means the objects exist. */
    sink_ctx.producer = e->producer;
    sink_ctx.topic = cfg->attestations_topic;
    for (size_t i = 0; i < cfg->nsinks && e->nsinks < MAX_SINKS - 1; i++) {
        if ((err = ws_sink_create(&cfg->sinks[i], &sink_ctx, &e->sinks[e->nsinks], errbuf, errlen)))
            goto fail;
        e->nsinks++;
    }
    if ((err = ws_sink_create(&kafka_sink, &sink_ctx, &e->sinks[e->nsinks], errbuf, errlen)))
        goto fail;
    e->nsinks++;
    if ((err = ws_metrics_start(cfg->metrics_listen, &e->metrics, errbuf, errlen)))
        goto fail;
    /* counters of what real Spark sends are exported from the start, so rate() sees the first */
    ws_metrics_add(e->metrics, "windowseal_idle_triggers_total", NULL, 0);
    ws_metrics_add(e->metrics, "windowseal_input_rows_mismatch_total", NULL, 0);
    e->generation = ws_kafka_consumer_generation(e->consumer);
    srand((unsigned)time(NULL) ^ (unsigned)(uintptr_t)e);
    *out = e;
    return WS_OK;
fail:
    ws_engine_destroy(e);
    return err;
}

void ws_engine_destroy(struct ws_engine *e)
{
    struct query *q, *nq;

    if (!e)
        return;
    drop_all(e);
    for (q = e->queries; q; q = nq) {
        nq = q->next;
        free(q);
    }
    for (size_t i = 0; i < e->nsinks; i++)
        ws_sink_destroy(e->sinks[i]);
    if (e->consumer)
        ws_kafka_consumer_destroy(e->consumer);
    if (e->producer) {
        if (ws_kafka_producer_flush(e->producer, 10000))
            ws_log(WS_LOG_WARN, "producer_flush", "reason=\"undelivered messages at exit\"");
        ws_kafka_producer_destroy(e->producer);
    }
    ws_kafka_reader_destroy(e->reader);
    ws_spool_close(e->spool);
    ws_metrics_stop(e->metrics);
    for (size_t i = 0; i < e->nparts; i++)
        free(e->parts[i].offs);
    free(e->parts);
    ws_key_wipe(&e->key);
    for (size_t i = 0; i < e->nread_keys; i++)
        ws_key_wipe(&e->read_keys[i]);
    free(e->read_keys);
    free(e);
}
