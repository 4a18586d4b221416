/*
 * intake.c — received -> queued | idle | dead-letter, and the dead-letter records (I4).
 *
 * A polled notification is copied (key and value, raw: the dead-letter record carries them
 * verbatim), put in hand (commit.c) and parsed with the rules of FORMAT.md §1.1 (which
 * notifications are batches). A batch joins its query's queue in batch order; an idle trigger
 * is done at once (nothing to attest, its offset may be committed); anything that cannot be
 * processed waits in the orphans queue for its dead-letter record — or, when the refusal comes
 * later (a conflict, records not retained), in its own query's queue.
 */
#include "engine/internal.h"
#include "disk/testhook.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How long a dead-letter record may wait for Kafka's acknowledgement before it is retried. */
#define DELIVERY_WAIT_MS 120000

void eng_pending_free(struct pending *p)
{
    if (!p)
        return;
    if (p->parsed)
        ws_notification_free(&p->n);
    free(p->key);
    free(p->value);
    free(p->envelope);
    if (p->dv && !p->dv->done)
        p->dv->abandoned = true; /* its report is still to come: it frees the delivery */
    else
        free(p->dv);
    free(p);
}

struct query *eng_query_get(struct ws_engine *e, const char *id, bool create)
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

void eng_to_deadletter(struct pending *p, ws_err_t err, const char *reason)
{
    p->stage = ST_DEADLETTER;
    p->dlq_err = err;
    snprintf(p->dlq_reason, sizeof p->dlq_reason, "%s", reason);
    p->next_attempt = 0;
}

/*
 * Produce the dead-letter record; WS_OK when Kafka acknowledged it. A notification too large for
 * the dead-letter topic (the consumer accepts far larger messages than a producer may send) is
 * dead-lettered without its key and value, with their sizes and the value's SHA-256 in a
 * header: retrying the full copy would fail forever and hold every later offset of the
 * partition uncommitted (I1).
 */
ws_err_t eng_deadletter(struct ws_engine *e, struct pending *p, char *errbuf, size_t errlen)
{
    char part[16], off[24], dropped[200], hex[WS_HASH_HEX_LEN + 1];
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
        err = ws_kafka_produce_sync(e->producer, e->cfg->deadletter_topic, -1, drop ? NULL : p->key,
                                    drop ? 0 : klen, drop ? NULL : p->value, drop ? 0 : vlen, h,
                                    drop ? 6 : 5, DELIVERY_WAIT_MS, errbuf, errlen);
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
        return err;
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
    return WS_OK;
}

static char *dup_bytes(const void *b, int32_t len)
{
    char *s = malloc(len > 0 ? (size_t)len + 1 : 1);
    if (s && len > 0)
        memcpy(s, b, (size_t)len);
    if (s)
        s[len > 0 ? len : 0] = '\0';
    return s;
}

/* Dead-letters without a usable query id queue up like a query's, in arrival order. */
static void orphan(struct ws_engine *e, struct pending *p)
{
    struct pending **pp = &e->orphans.queue;
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
    eng_inflight_done(e, p->partition, p->offset);
    eng_pending_free(p);
}

ws_err_t eng_intake(struct ws_engine *e, const struct ws_kafka_msg *m)
{
    struct pending *p = calloc(1, sizeof *p);
    struct ws_notif_opts opts;
    char errbuf[512];
    struct query *q;
    ws_err_t err;

    if (!p || !(p->key = dup_bytes(m->key, m->key_len)) ||
        !(p->value = dup_bytes(m->value, m->value_len))) {
        eng_pending_free(p);
        return WS_ERR_NOMEM;
    }
    p->partition = m->partition;
    p->offset = m->offset;
    p->timestamp = m->timestamp;
    p->key_len = m->key_len;
    p->value_len = m->value_len;
    if (!eng_inflight_add(e, m->partition, m->offset)) {
        eng_pending_free(p);
        return WS_ERR_NOMEM;
    }
    if (m->value_len < 0) {
        eng_to_deadletter(p, WS_ERR_MALFORMED, "notification has a null value");
        orphan(e, p);
        return WS_OK;
    }
    if (m->timestamp < 0) {
        eng_to_deadletter(p, WS_ERR_MALFORMED, "notification has no Kafka timestamp (observedAt)");
        orphan(e, p);
        return WS_OK;
    }
    opts = e->nopts;
    opts.key = m->key_len < 0 ? NULL : p->key;
    opts.key_len = m->key_len < 0 ? 0 : (size_t)m->key_len;
    err =
        ws_notification_parse(p->value, (size_t)p->value_len, &opts, &p->n, errbuf, sizeof errbuf);
    if (err) {
        eng_to_deadletter(p, err, errbuf);
        orphan(e, p);
        return WS_OK;
    }
    p->parsed = true;
    if (p->n.idle) {
        idle_trigger(e, p);
        return WS_OK;
    }
    if (!(q = eng_query_get(e, p->n.query_id, true))) {
        eng_inflight_done(e, p->partition, p->offset);
        eng_pending_free(p);
        return WS_ERR_NOMEM;
    }
    ws_log(WS_LOG_DEBUG, "received", "query=%s batch=%lld partition=%d offset=%lld", q->id,
           (long long)p->n.batch_id, p->partition, (long long)p->offset);
    eng_mark(p, MK_RECEIVED);
    queue_insert(q, p);
    return WS_OK;
}
