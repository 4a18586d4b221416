/*
 * publish.c — ST_SPOOLED -> ST_DONE: a window into every sink, the checkpoint, the chain head
 * (I1, I3); and what a batch at or behind the chain head is (duplicate or conflict, FORMAT.md §9).
 *
 * Sinks are written in order, object stores first and the attestations topic last (an envelope
 * on the topic means the objects exist); sinks_done remembers which hold the window, so a retry
 * resumes where the last attempt failed. Object stores write once; an existing envelope with
 * other bytes is adopted only if it verifies and holds this chain position (eng_extends_chain),
 * and only before any sink took ours. Then the new chain head is produced and acknowledged, and
 * only then does the query's head move (I3) and the notification become committable (I1).
 */
#include "engine/internal.h"
#include "disk/testhook.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* How long a chain head may wait for Kafka's acknowledgement before the window is retried. */
#define DELIVERY_WAIT_MS 120000

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

/* The query's new chain head, acknowledged by the heads topic (key = query id) (I3). */
static ws_err_t publish_head(struct ws_engine *e, struct pending *p, char *errbuf, size_t errlen)
{
    char *json = NULL;
    size_t len = 0;
    ws_err_t err = ws_head_encode(&p->new_head, &json, &len);

    if (err)
        return ws_fail(err, errbuf, errlen, "chain head: %s", ws_strerror(err));
    err = ws_kafka_produce_sync(e->producer, e->cfg->heads_topic, -1, p->n.query_id,
                                strlen(p->n.query_id), json, len, NULL, 0, DELIVERY_WAIT_MS, errbuf,
                                errlen);
    free(json);
    return err;
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

/* ST_SPOOLED -> ST_DONE: every sink (in order, resuming where a retry left off), then the head. */
ws_err_t eng_publish(struct ws_engine *e, struct query *q, struct pending *p, char *errbuf,
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
/* Duplicates and conflicts (FORMAT.md §9)                                                        */

/* Sources digest of an attested window read back from the first sink that can. */
static ws_err_t attested_sources(struct ws_engine *e, const char *qid, int64_t batch,
                                 uint8_t out[WS_HASH_LEN])
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
    free(env);
    if (!err)
        memcpy(out, v.sources_digest, WS_HASH_LEN);
    return err;
}

void eng_old_batch(struct ws_engine *e, struct query *q, struct pending *p)
{
    uint8_t mine[WS_HASH_LEN], theirs[WS_HASH_LEN];
    char reason[512];
    ws_err_t err;

    /* a batch 0 resolved to the low watermark was attested with the offsets it resolved to */
    if (eng_resolve_starts(e, &p->n, reason, sizeof reason))
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
    eng_to_deadletter(p, WS_ERR_CONFLICT, reason);
}
