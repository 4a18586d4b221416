/*
 * publish.c — ST_SPOOLED -> ST_DONE: a window into every sink, the checkpoint, the chain head
 * (I1, I3); and what a batch at or behind the chain head is (duplicate or conflict, FORMAT.md §9).
 *
 * Three steps, none of which blocks the engine thread:
 *   eng_store        on a store worker (pool.c): the object stores in order, each followed by
 *                    the query's checkpoint; sinks_done remembers which hold the window, so a
 *                    retry resumes where the last attempt failed
 *   eng_topic_*      the attestations topic last (an envelope on the topic means the objects
 *                    exist), submitted and completed through the producer's delivery report
 *   eng_head_*       then the new chain head, likewise; only its acknowledgement moves the
 *                    query's head (I3) and makes the notification committable (I1); then the
 *                    window's lineage is handed to the OpenLineage emitter (lineage/lineage.h),
 *                    which never holds the chain back (its queue is bounded, its sends are its
 *                    worker's); a duplicate batch re-emits its window's (same bytes)
 * Object stores write once; an existing envelope with other bytes is adopted only if it
 * verifies and holds this chain position (eng_extends_chain), and only before any sink took
 * ours.
 */
#include "engine/internal.h"
#include "disk/testhook.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/*
 * The query's signed checkpoint (transparency-dev signed note) at this window's chain position,
 * replaced in every object store once that store holds the window. Deterministic like the
 * envelope, so a retry or a re-processed window writes the same bytes.
 */
static ws_err_t make_checkpoint(struct ws_engine *e, const struct query *q, const struct pending *p,
                                char name[200], char **note, size_t *len, char *errbuf,
                                size_t errlen)
{
    uint8_t root[WS_HASH_LEN];
    ws_err_t err;

    ws_merkle_root(&p->new_head.log, root);
    err = ws_checkpoint_sign(&e->key, WS_CHECKPOINT_KEYNAME, q->id, p->new_head.log.size, root,
                             note, len);
    if (err)
        return ws_fail(err, errbuf, errlen, "checkpoint: %s", ws_strerror(err));
    snprintf(name, 200, "%s/checkpoint", q->id);
    return WS_OK;
}

/*
 * An object store already holds an envelope for this window with other bytes (FORMAT.md §7): adopt it
 * only if it verifies with a configured key against this window's own evidence and states the
 * same chain position; then it becomes the window's envelope everywhere, and its statement
 * digest is what the next window links to. Only before any sink took our bytes, so that all
 * sinks end up holding the same envelope.
 */
static ws_err_t try_adopt(struct ws_engine *e, const struct query *q, struct pending *p,
                          struct ws_sink *s, char *errbuf, size_t errlen)
{
    char name[256], why[512], *env = NULL;
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
    if (err || !eng_extends_chain(q, p, &v, &p->new_head)) {
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

/* envelope_path: the spooled envelope's file for the object stores (a file sink may link it),
 * NULL for the topic. */
static void artifact(const struct query *q, const struct pending *p, char window_id[],
                     const char *envelope_path, struct ws_artifact *a)
{
    ws_window_id(q->id, p->n.batch_id, window_id);
    *a = (struct ws_artifact){.query_id = q->id,
                              .batch_id = p->n.batch_id,
                              .window_id = window_id,
                              .envelope = p->envelope,
                              .envelope_len = p->envelope_len,
                              .evidence_path = p->evidence_path,
                              .envelope_path = envelope_path};
}

static void sink_failed(struct ws_engine *e, const struct query *q, const char *window_id,
                        struct ws_sink *s, ws_err_t err, const char *why)
{
    const char *class = ws_err_retriable(err) ? "retriable" : "permanent";
    char l[160];

    snprintf(l, sizeof l, "sink=\"%s\",class=\"%s\"", ws_sink_label(s), class);
    ws_metrics_add(e->metrics, "windowseal_sink_failures_total", l, 1);
    ws_log(WS_LOG_WARN, "sink_failed", "query=%s window=%s sink=%s class=%s reason=\"%s\"", q->id,
           window_id, ws_sink_label(s), class, why);
}

static void sink_published(struct ws_engine *e, struct pending *p, size_t i)
{
    char l[96];

    p->sinks_done |= 1u << i;
    WS_TEST_HOOK("sink_published");
    snprintf(l, sizeof l, "sink=\"%s\"", ws_sink_label(e->sinks[i]));
    ws_metrics_add(e->metrics, "windowseal_sink_publishes_total", l, 1);
}

/*
 * Window and checkpoint into one object store. A store that takes the checkpoint with the window
 * (the file sink: one directory fsync for both) gets it in the artifact; the others get it by
 * ws_sink_put once they hold the window. Made from p as it is now: after an adoption, the
 * adopted envelope's statement digest is in the log the checkpoint signs.
 */
static ws_err_t publish_one(struct ws_engine *e, const struct query *q, const struct pending *p,
                            struct ws_sink *s, char window_id[], const char *envelope_path,
                            char *errbuf, size_t errlen)
{
    bool with = ws_sink_takes_checkpoint(s);
    struct ws_artifact a;
    char name[200], *note = NULL;
    size_t len = 0;
    ws_err_t err;

    artifact(q, p, window_id, envelope_path, &a);
    if (ws_sink_can_put(s) && (err = make_checkpoint(e, q, p, name, &note, &len, errbuf, errlen)))
        return err;
    if (with && note) {
        a.checkpoint_name = name;
        a.checkpoint = note;
        a.checkpoint_len = len;
    }
    err = ws_sink_publish(s, &a, errbuf, errlen);
    if (!err && !with && note)
        err = ws_sink_put(s, name, note, len, errbuf, errlen);
    free(note);
    return err;
}

/*
 * On a store worker (pool.c), with that worker's own sink instances: every object store that
 * does not hold the window yet, in order, each followed by the query's checkpoint.
 */
ws_err_t eng_store(struct ws_engine *e, struct ws_sink *const *sinks, const struct query *q,
                   struct pending *p, char *errbuf, size_t errlen)
{
    char window_id[WS_WINDOW_ID_MAX], envelope_path[PATH_MAX];
    ws_err_t err;

    ws_spool_path(e->spool, q->id, p->n.batch_id, ".dsse.json", envelope_path);
    ws_window_id(q->id, p->n.batch_id, window_id);
    for (size_t i = 0; i + 1 < e->nsinks; i++) {
        if (p->sinks_done & (1u << i))
            continue;
        err = publish_one(e, q, p, sinks[i], window_id, envelope_path, errbuf, errlen);
        if (err == WS_ERR_EXISTS_DIFFERENT && try_adopt(e, q, p, sinks[i], errbuf, errlen) == WS_OK)
            err = publish_one(e, q, p, sinks[i], window_id, envelope_path, errbuf, errlen);
        if (err) {
            sink_failed(e, q, window_id, sinks[i], err, errbuf);
            return err;
        }
        sink_published(e, p, i);
    }
    return WS_OK;
}

/* The store workers' vtable (pool.c): each worker has its own instance of every object store. */
struct store_ctx {
    struct ws_sink *sinks[MAX_SINKS]; /* object stores only, same order as e->sinks */
};

static ws_err_t store_open(struct ws_engine *e, void **ctx, char *errbuf, size_t errlen)
{
    struct ws_sink_ctx sc = {.producer = e->producer,
                             .topic = e->cfg->attestations_topic,
                             .io_uring = ws_spool_uses_io_uring(e->spool)};
    struct store_ctx *c = calloc(1, sizeof *c);
    ws_err_t err;

    if (!(*ctx = c))
        return ws_fail(WS_ERR_NOMEM, errbuf, errlen, "out of memory for a store worker");
    for (size_t s = 0; s + 1 < e->nsinks; s++) /* the last sink is the topic's */
        if ((err = ws_sink_create(&e->cfg->sinks[s], &sc, &c->sinks[s], errbuf, errlen)))
            return err;
    return WS_OK;
}

static ws_err_t store_run(struct ws_engine *e, void *ctx, struct query *q, struct pending *p,
                          char *errbuf, size_t errlen)
{
    struct store_ctx *c = ctx;
    ws_err_t err;

    WS_TEST_HOOK("store_worker");
    eng_mark(p, MK_STORE);
    if (!(err = eng_store(e, c->sinks, q, p, errbuf, errlen)))
        eng_mark(p, MK_STORED);
    return err;
}

static void store_close(void *ctx)
{
    struct store_ctx *c = ctx;

    for (size_t s = 0; s < MAX_SINKS; s++)
        ws_sink_destroy(c->sinks[s]);
    free(c);
}

const struct eng_work eng_store_work = {"store", store_open, store_run, store_close};

/* A delivery for p's next message; the previous one, if any, is done with. */
static struct ws_kafka_delivery *new_delivery(struct pending *p)
{
    free(p->dv);
    return p->dv = calloc(1, sizeof *p->dv);
}

/* ST_STORED: the envelope on its way to the attestations topic (the last sink). */
ws_err_t eng_topic_submit(struct ws_engine *e, struct query *q, struct pending *p, char *errbuf,
                          size_t errlen)
{
    char window_id[WS_WINDOW_ID_MAX];
    struct ws_artifact a;
    ws_err_t err;

    if (!new_delivery(p))
        return ws_fail(WS_ERR_NOMEM, errbuf, errlen, "out of memory");
    artifact(q, p, window_id, NULL, &a);
    if ((err = ws_sink_submit(e->sinks[e->nsinks - 1], &a, p->dv, errbuf, errlen))) {
        free(p->dv);
        p->dv = NULL;
    }
    return err;
}

/* ST_STORED: the topic's report came; WS_OK: every sink holds the window. */
ws_err_t eng_topic_done(struct ws_engine *e, struct query *q, struct pending *p, char *errbuf,
                        size_t errlen)
{
    struct ws_sink *topic = e->sinks[e->nsinks - 1];
    char window_id[WS_WINDOW_ID_MAX];
    ws_err_t err = p->dv->err;

    if (err) {
        ws_window_id(q->id, p->n.batch_id, window_id);
        ws_fail(err, errbuf, errlen, "%s: %s", ws_sink_label(topic), p->dv->reason);
        sink_failed(e, q, window_id, topic, err, errbuf);
        e->stats.sink_failures++;
        return err;
    }
    sink_published(e, p, e->nsinks - 1);
    return WS_OK;
}

/* ST_HEAD: the query's new chain head on its way to the heads topic (key = query id) (I3). */
ws_err_t eng_head_submit(struct ws_engine *e, struct query *q, struct pending *p, char *errbuf,
                         size_t errlen)
{
    char *json = NULL;
    size_t len = 0;
    ws_err_t err = ws_head_encode(&p->new_head, &json, &len);

    if (err)
        return ws_fail(err, errbuf, errlen, "chain head: %s", ws_strerror(err));
    if (!new_delivery(p)) {
        free(json);
        return ws_fail(WS_ERR_NOMEM, errbuf, errlen, "out of memory");
    }
    err = ws_kafka_produce(e->producer, e->cfg->heads_topic, -1, q->id, strlen(q->id), json, len,
                           NULL, 0, p->dv, errbuf, errlen);
    free(json);
    if (err) {
        free(p->dv);
        p->dv = NULL;
    }
    return err;
}

/* ST_HEAD, its report came: on success the query's head moves (I3) and the window is done. */
ws_err_t eng_head_done(struct ws_engine *e, struct query *q, struct pending *p, char *errbuf,
                       size_t errlen)
{
    char window_id[WS_WINDOW_ID_MAX];

    if (p->dv->err)
        return ws_fail(p->dv->err, errbuf, errlen, "heads topic %s: %s", e->cfg->heads_topic,
                       p->dv->reason);
    p->head_done = true;
    WS_TEST_HOOK("head_published");
    q->head = p->new_head;
    q->has_head = true;
    ws_spool_remove(e->spool, q->id, p->n.batch_id);
    e->stats.windows++;
    window_metrics(e, q, p);
    ws_window_id(q->id, p->n.batch_id, window_id);
    ws_log(WS_LOG_INFO, "window_attested", "query=%s window=%s chain_length=%llu", q->id, window_id,
           (unsigned long long)q->head.log.size);
    /* In every sink, head acknowledged: its lineage now, from the envelope the sinks hold
     * (ours or an adopted one). A copy is queued; the emitter's worker does the rest. */
    if (e->lineage)
        ws_lineage_emitter_submit(e->lineage, p->envelope, p->envelope_len);
    return WS_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* OpenLineage (FORMAT.md §11)                                                                  */

static void lineage_count(void *opaque, enum ws_lineage_result r, unsigned n)
{
    char l[64];

    snprintf(l, sizeof l, "result=\"%s\"", ws_lineage_result_name(r));
    ws_metrics_add(opaque, "windowseal_lineage_events_total", l, n);
}

ws_err_t eng_lineage_new(struct ws_engine *e, char *errbuf, size_t errlen)
{
    const struct ws_config *c = e->cfg;
    char kafka_ns[512];
    const char *token = NULL;
    struct ws_lineage_emitter_conf lc = {
        .events = {c->ol_namespace, kafka_ns},
        .url = c->ol_url,
        .endpoint = c->ol_endpoint,
        .kafka_topic = c->ol_kafka_topic,
        .producer = e->producer,
        .retry_base_ms = c->retry_base_ms,
        .retry_max_ms = c->retry_max_ms,
        .max_attempts = 8,
        .max_windows = 1024,
        .max_bytes = 64u << 20,
        .http_timeout_ms = 10000,
        .count = lineage_count,
        .opaque = e->metrics,
    };
    ws_err_t err;

    if (!*c->ol_url && !*c->ol_kafka_topic)
        return WS_OK;
    if (*c->ol_api_key_env && !((token = getenv(c->ol_api_key_env)) && *token))
        return ws_fail(WS_ERR_CONFIG, errbuf, errlen,
                       "%s: openlineage.api_key_env: environment variable %s is not set", c->source,
                       c->ol_api_key_env);
    lc.token = token;
    ws_lineage_kafka_namespace(c->bootstrap, kafka_ns, sizeof kafka_ns);
    for (int r = 0; r < WS_LINEAGE_RESULTS; r++) /* exported from the start, like the others */
        lineage_count(e->metrics, (enum ws_lineage_result)r, 0);
    if ((err = ws_lineage_emitter_new(&lc, &e->lineage, errbuf, errlen)))
        return err;
    if (*c->ol_kafka_topic) {
        char why[256];
        if (ws_kafka_producer_prepare(e->producer, c->ol_kafka_topic, 1000, why, sizeof why))
            ws_log(WS_LOG_WARN, "topic_prepare_failed", "topic=%s reason=\"%s\"", c->ol_kafka_topic,
                   why);
    }
    ws_log(WS_LOG_INFO, "lineage", "transport=%s target=\"%s\" namespace=%s",
           *c->ol_url ? "http" : "kafka", *c->ol_url ? c->ol_url : c->ol_kafka_topic,
           c->ol_namespace);
    return WS_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Duplicates and conflicts (FORMAT.md §9)                                                        */

/*
 * An attested window's envelope read back from the first sink that can, verified; its sources
 * digest in out, and with env the envelope itself (malloc'ed), for re-emitting its lineage.
 */
static ws_err_t attested_sources(struct ws_engine *e, const char *qid, int64_t batch,
                                 uint8_t out[WS_HASH_LEN], char **env_out, size_t *env_len)
{
    char name[256], why[512], *env = NULL;
    size_t len;
    ws_err_t err = WS_ERR_NOT_FOUND;
    struct ws_verified v;

    ws_object_name(qid, batch, ".dsse.json", name);
    for (size_t i = 0; i < e->nsinks && err == WS_ERR_NOT_FOUND; i++) {
        if (!ws_sink_can_get(e->sinks[i]))
            continue;
        err = ws_sink_get(e->sinks[i], name, &env, &len, why, sizeof why);
    }
    if (err)
        return err;
    err = ws_verify_envelope(env, len, e->read_keys, e->nread_keys, NULL, &v, why, sizeof why);
    if (!err)
        memcpy(out, v.sources_digest, WS_HASH_LEN);
    if (!err && env_out) {
        *env_out = env;
        *env_len = len;
        return WS_OK;
    }
    free(env);
    return err;
}

void eng_old_batch(struct ws_engine *e, struct query *q, struct pending *p)
{
    uint8_t mine[WS_HASH_LEN], theirs[WS_HASH_LEN], again[WS_HASH_LEN];
    char reason[512], *env = NULL;
    size_t env_len = 0;
    ws_err_t err;

    /* a batch 0 resolved to the low watermark was attested with the offsets it resolved to */
    if (eng_resolve_starts(e, e->reader, &p->n, reason, sizeof reason))
        ws_log(WS_LOG_WARN, "resolve_failed", "query=%s batch=%lld reason=\"%s\"", q->id,
               (long long)p->n.batch_id, reason);
    ws_notification_sources_digest(&p->n, mine);
    if (p->n.batch_id == q->head.last_batch) {
        memcpy(theirs, q->head.last_sources_digest, WS_HASH_LEN);
        err = WS_OK;
        /* lineage: the envelope is read back only to re-emit its events (a crash may have come
         * between the head and the lineage backend); one that disagrees is not re-emitted */
        if (e->lineage &&
            (attested_sources(e, q->id, p->n.batch_id, again, &env, &env_len) != WS_OK ||
             memcmp(again, theirs, WS_HASH_LEN) != 0)) {
            free(env);
            env = NULL;
        }
    } else {
        err = attested_sources(e, q->id, p->n.batch_id, theirs, e->lineage ? &env : NULL, &env_len);
    }
    if (err) {
        snprintf(reason, sizeof reason,
                 "batch %lld of query %s is behind the chain head (batch %lld) and no attestation "
                 "of it can be read back: it was recorded as a gap or its envelope is missing",
                 (long long)p->n.batch_id, q->id, (long long)q->head.last_batch);
        eng_to_deadletter(p, WS_ERR_CONFLICT, reason);
        e->stats.conflicts++;
        return;
    }
    if (memcmp(mine, theirs, WS_HASH_LEN) == 0) {
        /* Published before a crash that came before the spool was cleaned. */
        ws_spool_remove(e->spool, q->id, p->n.batch_id);
        e->stats.duplicates++;
        ws_metrics_add(e->metrics, "windowseal_duplicates_total", NULL, 1);
        ws_log(WS_LOG_INFO, "duplicate", "query=%s batch=%lld", q->id, (long long)p->n.batch_id);
        /* the same envelope gives the same events (run id from the window id): harmless if the
         * backend has them already, and the only way it gets them if a crash lost them */
        if (env)
            ws_lineage_emitter_submit(e->lineage, env, env_len);
        free(env);
        p->stage = ST_DONE;
        return;
    }
    free(env);
    snprintf(reason, sizeof reason,
             "conflict: batch %lld of query %s was already attested with other sources; the "
             "first attestation stands",
             (long long)p->n.batch_id, q->id);
    ws_log(WS_LOG_ERROR, "conflict", "query=%s batch=%lld", q->id, (long long)p->n.batch_id);
    e->stats.conflicts++;
    ws_metrics_add(e->metrics, "windowseal_conflicts_total", NULL, 1);
    eng_to_deadletter(p, WS_ERR_CONFLICT, reason);
}
