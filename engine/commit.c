/*
 * commit.c — offsets in hand and commits (I1).
 *
 * Every polled notification is "in hand" from intake until it is done (attested, duplicate,
 * idle or dead-lettered): its offset sits in its partition's list. A partition is committed up
 * to the lowest offset still in hand (or one past the highest seen when none is), so a window
 * held for a gap, retrying or on a stopped chain keeps every later notification of its
 * partition uncommitted too: after a crash they all come again, and I2 makes that harmless.
 * Commits never go backwards (committed only grows until a rebalance resets it). They are
 * batched: a step marks the partitions whose lowest offset moved, and eng_commit sends one
 * asynchronous commit per such partition at the end of the step — no window waits for the
 * group coordinator, and a lost commit is covered by the next one (or replayed harmlessly after
 * a crash, I2) — librdkafka does not report an asynchronous commit's outcome, so every
 * partition's offset is also sent again every COMMIT_REFRESH_MS. At shutdown the last one is
 * synchronous, for every partition.
 */
#include "engine/internal.h"

#include <stdlib.h>
#include <string.h>

/* How often an unchanged offset is committed again (a lost asynchronous commit's repair). */
#define COMMIT_REFRESH_MS 2000

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

bool eng_inflight_add(struct ws_engine *e, int32_t partition, int64_t offset)
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

int64_t eng_inflight_next(const struct inflight *p)
{
    int64_t next = p->seen_max + 1;

    for (size_t i = 0; i < p->n; i++)
        if (p->offs[i] < next)
            next = p->offs[i];
    return next;
}

void eng_inflight_done(struct ws_engine *e, int32_t partition, int64_t offset)
{
    struct inflight *p = part_get(e, partition);

    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++)
        if (p->offs[i] == offset) {
            p->offs[i] = p->offs[--p->n];
            e->in_hand--;
            p->dirty = true;
            break;
        }
}

void eng_commit(struct ws_engine *e, bool sync)
{
    int64_t now = ws_clock_ms();
    /* an asynchronous commit's outcome is not reported: every partition's offset is sent again
     * now and then, so a commit the coordinator lost or refused is repaired within that time */
    bool refresh = sync || now - e->commit_refreshed >= COMMIT_REFRESH_MS;
    char errbuf[256];

    if (refresh)
        e->commit_refreshed = now;
    for (size_t i = 0; i < e->nparts; i++) {
        struct inflight *p = &e->parts[i];
        int64_t next;

        if (!p->dirty && !refresh)
            continue;
        p->dirty = false;
        next = eng_inflight_next(p);
        if (next < p->committed || next <= 0 || (next == p->committed && !refresh))
            continue; /* never backwards */
        if (ws_kafka_consumer_commit(e->consumer, p->partition, next, sync, errbuf,
                                     sizeof errbuf)) {
            ws_log(WS_LOG_WARN, "commit_failed", "partition=%d offset=%lld reason=\"%s\"",
                   p->partition, (long long)next, errbuf);
            p->dirty = true; /* try again next step */
            continue;
        }
        p->committed = next;
    }
}

void eng_inflight_reset(struct ws_engine *e)
{
    e->in_hand = 0;
    for (size_t i = 0; i < e->nparts; i++) {
        e->parts[i].n = 0;
        e->parts[i].seen_max = -1;
        e->parts[i].committed = -1;
        e->parts[i].dirty = false;
    }
}

void eng_inflight_free(struct ws_engine *e)
{
    for (size_t i = 0; i < e->nparts; i++)
        free(e->parts[i].offs);
    free(e->parts);
    e->parts = NULL;
    e->nparts = 0;
}
