/*
 * kafka/reader.c — re-read exact offset ranges, the heart of an attestation.
 *
 * DESIGN. One rd_kafka_t consumer per reader, created once and reused for every window: it
 * never subscribes, never joins its group, never commits. A read takes a window's ranges at once
 * (ws_kafka_read_ranges; a single range is a window of one):
 *
 *     watermarks of every range: 2 ListOffsets requests ok? --no--> ask again ... -> TIMEOUT
 *        | yes                     (first unknown/not-retained range fails at once)
 *     split every partition's fetch queue off the consumer queue (before any assign)
 *     incremental_assign(range 0 .. k @ from) -> drain range 0's own queue while 1 .. k fetch
 *        -> stop at offset until-1, at the first offset >= until, or at partition EOF >= until
 *        -> incremental_unassign(range 0), assign more ranges ahead ... range 1 ...
 *     assign(NULL) (always)
 *
 * so the end of a range is known without waiting for a poll timeout, gaps (compaction,
 * transaction markers, a last offset that is a control record) cannot make a read hang (the EOF
 * event at the high watermark ends it), and records reach the callback in window order while
 * later partitions are already fetched. Ranges are assigned ahead of the one being delivered
 * only while they (and its rest) hold at most AHEAD_RECORDS records: the fetcher stays ahead of
 * the caller, but memory does not grow with the window.
 *
 * Memory (issue 15). librdkafka fetches an assigned partition ahead of the caller until its
 * queue holds queued.min.messages records or queued.max.messages.kbytes bytes, whatever the
 * range's end (it does not know it). Both are per partition (QUEUE_RECORDS, QUEUE_KBYTES; they
 * were 1000000 and 64 MiB), so they cap what one range costs however long it is, and the ahead
 * rule counts each range as at most that cap (held()): a read holds about AHEAD_RECORDS
 * records, plus one fetch reply per partition, for any window. Before, the ahead rule bounded
 * only the ranges after the current one: that one was fetched to its end, so a 10 M-record
 * window over 64 partitions (156 k records a range) held ~10x the 16 k records of a 1 M one
 * (massif, bench_e2e memory 200 k: 4.6 MB of librdkafka messages + 3.4 MB of fetch buffers at
 * the engine's peak, the read-ahead alone). A capped partition stops fetching, and librdkafka
 * 2.0.2 looks at it again only when its broker thread wakes (another fetch reply, an op) or
 * after a fixed 1 s (2.1 made it fetch.queue.backoff.ms): with the caps alone a 1 M-record
 * window took 8.4 s instead of 1.4 s at 1 MiB a queue and timed out at 512 KiB. So when a
 * queue last seen at a cap runs empty before its range is done, the read seeks the partition
 * to the next offset it needs: a seek is an op that wakes that thread, and with the queue
 * empty it discards nothing (restart()). Ranges shorter than the cap never take that path.
 *
 * Queues: each partition's messages wait in its own fetch queue (rd_kafka_queue_get_partition +
 * rd_kafka_queue_forward(NULL)). The split is made before the partition is first assigned, so
 * nothing it fetches can have gone to the shared consumer queue; librdkafka then marks the queue
 * app-forwarded and no later fetch start re-forwards it. Every read goes through this path (once
 * split, a partition's records never reach rd_kafka_consumer_poll again); the consumer queue is
 * only polled for client events, and a record found there fails the read instead of being lost.
 *
 * librdkafka 2.0.2 pitfalls measured on this project: the fetcher parks a partition whose queue
 * is at queued.min.messages or queued.max.messages.kbytes for up to 1 s (Memory, above).
 * fetch.wait.max.ms is 1: a broker answers requests on one connection in order, and
 * after a read stops the fetcher's next long-poll at the log end is already in flight, so the
 * next read's ListOffsets waited behind it for fetch.wait.max.ms (10 ms per read with 10). The
 * mock broker also needs TCP_NODELAY on its side (see broker.c), or each read costs ~40 ms more.
 * auto.offset.reset=error turns a range that is deleted mid-read into an error instead of a
 * silent jump to another offset. The mock broker writes no transaction markers, so gaps and
 * isolation.level are only documented, not tested: read_uncommitted (the default here) must
 * match Spark's kafka.isolation.level.
 *
 * Stale events: after unassign librdkafka drops what was fetched for the old assignment (op
 * version barrier, also in a split queue); we also ignore offsets already passed or >= until,
 * which are harmless anyway: an offset always names the same record.
 *
 * Thread: everything runs on the caller's thread (callbacks are served inside
 * rd_kafka_consumer_poll).
 */
#include "kafka/kafka_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define POLL_SLICE_MS 100   /* longest single wait, so deadlines are kept */
#define WMARK_RETRY_MS 20   /* pause between watermark queries while a range is incomplete */
#define BATCH 256           /* messages taken from a partition queue at once */
#define AHEAD_RECORDS 16384 /* records a read fetches ahead of the caller, across ranges */
#define AHEAD_PARTS 64      /* partitions fetched ahead of the one being delivered */
#define QUEUE_RECORDS 16384 /* queued.min.messages: one partition's fetch-ahead, in records */
#define QUEUE_KBYTES 16384  /* queued.max.messages.kbytes: the same in bytes, for ~1 KiB records */
#define CAP_NEAR 0.9        /* a queue this close to either cap counts as capped */
#define STR_(x) #x
#define STR(x) STR_(x)

struct ws_kafka_reader {
    rd_kafka_t *rk;
    int64_t qmin;   /* queued.min.messages in effect (a user's kafka.properties may set it) */
    int64_t qbytes; /* queued.max.messages.kbytes in effect, in bytes */
    struct ws_header *hdrs; /* scratch for one record's headers, grown on demand */
    size_t hcap;
    char last_error[256]; /* last client-level error (error_cb), quoted in timeouts */
};

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    struct ws_kafka_reader *r = opaque;

    snprintf(r->last_error, sizeof(r->last_error), "%s: %s",
             rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

/* An integer property of kc as librdkafka holds it; def if unreadable. */
static int64_t conf_int(const rd_kafka_conf_t *kc, const char *name, int64_t def)
{
    char buf[32];
    size_t n = sizeof(buf);
    char *end;
    long long v;

    if (rd_kafka_conf_get(kc, name, buf, &n) != RD_KAFKA_CONF_OK)
        return def;
    v = strtoll(buf, &end, 10);
    return end == buf || v <= 0 ? def : (int64_t)v;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

struct ws_kafka_reader *ws_kafka_reader_new(const struct ws_kafka_conf *conf, char *errbuf,
                                            size_t errlen)
{
    /* clang-format off */
    static const char *const defaults[] = {
        "fetch.wait.max.ms", "1",
        /* one fetch response holds at most this, whatever the window (librdkafka's default,
         * 50 MB, let a big window's responses grow the reader by MiBs: bench_e2e memory) */
        "fetch.max.bytes", "4194304",
        "queued.min.messages", STR(QUEUE_RECORDS),
        "queued.max.messages.kbytes", STR(QUEUE_KBYTES),
        "fetch.error.backoff.ms", "100",
        "isolation.level", "read_uncommitted",
        "socket.nagle.disable", "true",
        NULL,
    };
    const char *const forced[] = {
        "enable.auto.commit", "false",
        "enable.partition.eof", "true",
        "auto.offset.reset", "error",
        "group.id", conf && conf->group_id ? conf->group_id : "windowseal",
        NULL,
    };
    /* clang-format on */
    struct ws_kafka_reader *r;
    rd_kafka_conf_t *kc;
    char why[512];

    if (ws_kafka_int_conf(conf, defaults, forced, &kc, errbuf, errlen))
        return NULL;
    if (!(r = calloc(1, sizeof(*r)))) {
        ws_fail(WS_ERR_NOMEM, errbuf, errlen, "out of memory");
        goto out_destroy_conf;
    }
    r->qmin = conf_int(kc, "queued.min.messages", QUEUE_RECORDS);
    r->qbytes = conf_int(kc, "queued.max.messages.kbytes", QUEUE_KBYTES) * 1024;
    rd_kafka_conf_set_error_cb(kc, on_error);
    rd_kafka_conf_set_opaque(kc, r);
    if (!(r->rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, why, sizeof(why)))) {
        ws_fail(WS_ERR_CONFIG, errbuf, errlen, "kafka reader: %s", why);
        goto out_free_reader;
    }
    return r; /* kc now belongs to r->rk */

out_free_reader:
    free(r);
out_destroy_conf:
    rd_kafka_conf_destroy(kc);
    return NULL;
}

void ws_kafka_reader_destroy(struct ws_kafka_reader *r)
{
    if (!r)
        return;
    /* Never joined a group: skip the (slow, pointless) consumer close. */
    rd_kafka_destroy_flags(r->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    free(r->hdrs);
    free(r);
}

static ws_err_t check_topic(const char *topic, char *errbuf, size_t errlen)
{
    size_t n;

    if (!topic || !(n = strlen(topic)))
        return ws_fail(WS_ERR_INVALID, errbuf, errlen, "empty topic name");
    if (n > UINT16_MAX)
        return ws_fail(WS_ERR_INVALID, errbuf, errlen, "topic name of %zu bytes", n);
    return WS_OK;
}

/*
 * ListOffsets for one partition: which = RD_KAFKA_OFFSET_BEGINNING (low watermark) or
 * RD_KAFKA_OFFSET_END (high watermark), the protocol's special timestamps -2 and -1.
 * rd_kafka_offsets_for_times() rather than rd_kafka_query_watermark_offsets(): in librdkafka
 * before 2.3.0 the latter ignores its timeout and blocks for as long as the leader is down
 * (librdkafka issue #2588, fixed by PR #4460); the former keeps it.
 */
static rd_kafka_resp_err_t list_offset(rd_kafka_t *rk, const char *topic, int32_t partition,
                                       int64_t which, int64_t *out, int timeout_ms)
{
    rd_kafka_topic_partition_list_t *tpl;
    rd_kafka_resp_err_t kerr;

    if (!(tpl = rd_kafka_topic_partition_list_new(1)))
        return RD_KAFKA_RESP_ERR__FAIL;
    rd_kafka_topic_partition_list_add(tpl, topic, partition)->offset = which;
    kerr = rd_kafka_offsets_for_times(rk, tpl, timeout_ms);
    if (tpl->elems[0].err)
        kerr = tpl->elems[0].err; /* more precise: UNKNOWN_TOPIC_OR_PART vs _UNKNOWN_PARTITION */
    *out = tpl->elems[0].offset;
    rd_kafka_topic_partition_list_destroy(tpl);
    if (!kerr && *out < 0)
        kerr = RD_KAFKA_RESP_ERR__BAD_MSG;
    return kerr;
}

/* Both watermarks within timeout_ms; errbuf describes any failure. */
static ws_err_t query_wmarks(struct ws_kafka_reader *r, const char *topic, int32_t partition,
                             int64_t *lo, int64_t *hi, int timeout_ms, char *errbuf, size_t errlen)
{
    int64_t deadline = ws_clock_ms() + timeout_ms;
    rd_kafka_resp_err_t kerr;

    kerr = list_offset(r->rk, topic, partition, RD_KAFKA_OFFSET_BEGINNING, lo, timeout_ms);
    if (!kerr)
        kerr = list_offset(r->rk, topic, partition, RD_KAFKA_OFFSET_END, hi,
                           ws_kafka_int_left(deadline, INT32_MAX));
    if (kerr == RD_KAFKA_RESP_ERR_NO_ERROR)
        return WS_OK;
    return ws_fail(ws_kafka_int_err(kerr), errbuf, errlen, "watermarks of %s[%d]: %s", topic,
                   (int)partition, rd_kafka_err2str(kerr));
}

ws_err_t ws_kafka_reader_watermarks(struct ws_kafka_reader *r, const char *topic, int32_t partition,
                                    int64_t *lo, int64_t *hi, int timeout_ms, char *errbuf,
                                    size_t errlen)
{
    ws_err_t err;

    if (!r || !lo || !hi || partition < 0)
        return ws_fail(WS_ERR_INVALID, errbuf, errlen, "invalid watermark query");
    if ((err = check_topic(topic, errbuf, errlen)))
        return err;
    return query_wmarks(r, topic, partition, lo, hi, timeout_ms < 0 ? 0 : timeout_ms, errbuf,
                        errlen);
}

/*
 * Watermarks of every range in two ListOffsets round trips (one for the low, one for the high
 * watermarks of all partitions): which = RD_KAFKA_OFFSET_BEGINNING or RD_KAFKA_OFFSET_END.
 * errs[i] is the error of range i (a request-level error applies to every range).
 */
static void list_offsets(rd_kafka_t *rk, const struct ws_kafka_range *rg, const size_t *idx,
                         size_t n, int64_t which, int64_t *out, rd_kafka_resp_err_t *errs,
                         int timeout_ms)
{
    rd_kafka_topic_partition_list_t *tpl;
    rd_kafka_resp_err_t kerr;
    size_t i;

    if (!(tpl = rd_kafka_topic_partition_list_new((int)n))) {
        for (i = 0; i < n; i++)
            errs[i] = RD_KAFKA_RESP_ERR__FAIL;
        return;
    }
    for (i = 0; i < n; i++)
        rd_kafka_topic_partition_list_add(tpl, rg[idx[i]].topic, rg[idx[i]].partition)->offset =
            which;
    kerr = rd_kafka_offsets_for_times(rk, tpl, timeout_ms);
    for (i = 0; i < n; i++) {
        /* looked up, not indexed: the answer's order is librdkafka's business */
        rd_kafka_topic_partition_t *e =
            rd_kafka_topic_partition_list_find(tpl, rg[idx[i]].topic, rg[idx[i]].partition);

        errs[i] = !e ? RD_KAFKA_RESP_ERR__BAD_MSG : e->err ? e->err : kerr;
        out[i] = e ? e->offset : -1;
        if (!errs[i] && out[i] < 0)
            errs[i] = RD_KAFKA_RESP_ERR__BAD_MSG;
    }
    rd_kafka_topic_partition_list_destroy(tpl);
}

/*
 * Wait until every range idx[0..n) is retained and complete, ranges judged in window order: the
 * first permanent failure (unknown partition, records no longer retained) ends the wait at once;
 * incomplete ranges and retriable query failures are asked again until the deadline. On success
 * end[i] is range i's high watermark as the broker last answered (>= its until).
 */
static ws_err_t wait_ranges(struct ws_kafka_reader *r, const struct ws_kafka_range *rg,
                            const size_t *idx, size_t n, int64_t deadline, int64_t *end,
                            char *errbuf, size_t errlen)
{
    int64_t *lo = NULL, *hi, seen_hi = -1; /* seen_hi: kept from the last round answered */
    rd_kafka_resp_err_t *elo = NULL, *ehi;
    char why[256] = "";
    size_t i, late = 0; /* late: the first incomplete range, for the timeout's text */
    ws_err_t err = WS_OK;

    if (!(lo = calloc(2 * n, sizeof(*lo))) || !(elo = calloc(2 * n, sizeof(*elo)))) {
        err = ws_fail(WS_ERR_NOMEM, errbuf, errlen, "out of memory for %zu ranges", n);
        goto out_free;
    }
    hi = lo + n;
    ehi = elo + n;
    for (;;) {
        bool pending = false;

        list_offsets(r->rk, rg, idx, n, RD_KAFKA_OFFSET_BEGINNING, lo, elo,
                     ws_kafka_int_left(deadline, 10 * POLL_SLICE_MS));
        list_offsets(r->rk, rg, idx, n, RD_KAFKA_OFFSET_END, hi, ehi,
                     ws_kafka_int_left(deadline, 10 * POLL_SLICE_MS));
        for (i = 0; i < n; i++) {
            const struct ws_kafka_range *g = &rg[idx[i]];
            rd_kafka_resp_err_t kerr = elo[i] ? elo[i] : ehi[i];

            if (kerr) {
                ws_err_t e = ws_kafka_int_err(kerr);

                if (!ws_err_retriable(e)) {
                    err = ws_fail(e, errbuf, errlen, "watermarks of %s[%d]: %s", g->topic,
                                  (int)g->partition, rd_kafka_err2str(kerr));
                    goto out_free;
                }
                if (!pending)
                    snprintf(why, sizeof(why), "watermarks of %s[%d]: %s", g->topic,
                             (int)g->partition, rd_kafka_err2str(kerr));
                pending = true;
                continue;
            }
            if (g->from < lo[i]) {
                err = ws_fail(WS_ERR_NOT_RETAINED, errbuf, errlen,
                              "records no longer retained: %s[%d] low watermark %lld > from %lld",
                              g->topic, (int)g->partition, (long long)lo[i], (long long)g->from);
                goto out_free;
            }
            if (g->until > hi[i]) {
                if (!pending) {
                    late = i;
                    seen_hi = hi[i];
                }
                pending = true;
            }
        }
        if (!pending) {
            memcpy(end, hi, n * sizeof(*end));
            goto out_free;
        }
        if (ws_kafka_int_left(deadline, WMARK_RETRY_MS) == 0)
            break;
        sleep_ms(ws_kafka_int_left(deadline, WMARK_RETRY_MS));
    }
    /* The broker answered for the first pending range: it is simply not complete yet. */
    if (seen_hi >= 0)
        err = ws_fail(WS_ERR_TIMEOUT, errbuf, errlen,
                      "range not complete: %s[%d] high watermark %lld < until %lld",
                      rg[idx[late]].topic, (int)rg[idx[late]].partition, (long long)seen_hi,
                      (long long)rg[idx[late]].until);
    else
        err = ws_fail(WS_ERR_TIMEOUT, errbuf, errlen, "%s%s%s", why,
                      r->last_error[0] ? "; last client error: " : "", r->last_error);
out_free:
    free(lo);
    free(elo);
    return err;
}

/* Fill rec from m (m belongs to topic[partition], checked by the caller). */
static ws_err_t to_record(struct ws_kafka_reader *r, const rd_kafka_message_t *m, const char *topic,
                          struct ws_record *rec, char *errbuf, size_t errlen)
{
    rd_kafka_timestamp_type_t tstype;
    rd_kafka_headers_t *hs = NULL;
    rd_kafka_resp_err_t kerr;
    size_t i, n = 0;

    memset(rec, 0, sizeof(*rec));
    rec->topic = topic;
    rec->topic_len = (uint16_t)strlen(topic); /* checked by check_topic */
    rec->partition = m->partition;
    rec->offset = m->offset;
    rec->timestamp = rd_kafka_message_timestamp(m, &tstype);
    switch (tstype) {
    case RD_KAFKA_TIMESTAMP_CREATE_TIME:
        rec->ts_type = 1;
        break;
    case RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME:
        rec->ts_type = 2;
        break;
    default:
        rec->ts_type = 0;
        rec->timestamp = -1;
    }
    if (m->key_len > INT32_MAX || m->len > INT32_MAX)
        return ws_fail(WS_ERR_TOO_LARGE, errbuf, errlen, "%s[%d]@%lld: record too large", topic,
                       (int)m->partition, (long long)m->offset);
    rec->key = m->key;
    rec->key_len = m->key ? (int32_t)m->key_len : -1;
    rec->value = m->payload;
    rec->value_len = m->payload ? (int32_t)m->len : -1;

    kerr = rd_kafka_message_headers(m, &hs);
    if (kerr == RD_KAFKA_RESP_ERR__NOENT)
        return WS_OK;
    if (kerr)
        return ws_fail(WS_ERR_MALFORMED, errbuf, errlen, "%s[%d]@%lld: headers: %s", topic,
                       (int)m->partition, (long long)m->offset, rd_kafka_err2str(kerr));
    n = rd_kafka_header_cnt(hs);
    if (n > UINT32_MAX)
        return ws_fail(WS_ERR_TOO_LARGE, errbuf, errlen, "too many headers");
    if (n > r->hcap) {
        struct ws_header *nh = realloc(r->hdrs, n * sizeof(*nh));

        if (!nh)
            return ws_fail(WS_ERR_NOMEM, errbuf, errlen, "out of memory for %zu headers", n);
        r->hdrs = nh;
        r->hcap = n;
    }
    for (i = 0; i < n; i++) {
        const char *name;
        const void *val;
        size_t vlen, nlen;

        if (rd_kafka_header_get_all(hs, i, &name, &val, &vlen))
            return ws_fail(WS_ERR_MALFORMED, errbuf, errlen, "header %zu unreadable", i);
        nlen = strlen(name);
        if (nlen > UINT16_MAX || vlen > INT32_MAX)
            return ws_fail(WS_ERR_TOO_LARGE, errbuf, errlen, "%s[%d]@%lld: header %zu too large",
                           topic, (int)m->partition, (long long)m->offset, i);
        r->hdrs[i].name = name;
        r->hdrs[i].name_len = (uint16_t)nlen;
        r->hdrs[i].value = val;
        r->hdrs[i].value_len = val ? (int32_t)vlen : -1;
    }
    rec->headers = r->hdrs;
    rec->header_count = (uint32_t)n;
    return WS_OK;
}

static uint64_t span(const struct ws_kafka_range *g)
{
    return (uint64_t)(g->until - g->from);
}

/* One non-empty range of a read. */
struct slot {
    const struct ws_kafka_range *g;
    rd_kafka_queue_t *q; /* the partition's own fetch queue, split off the consumer queue */
    bool assigned;
    bool at_end;          /* until was the partition's high watermark when the read began */
    bool capped;          /* its queue was last seen at a cap: the fetcher may be parked */
    uint64_t taken, size; /* records taken and their key + value bytes: the average size */
    size_t left;          /* queue length after the last take */
};

/* Assign (add) or unassign slots [a, b) incrementally: the other partitions keep fetching. */
static ws_err_t reassign(struct ws_kafka_reader *r, struct slot *s, size_t a, size_t b, bool add,
                         char *errbuf, size_t errlen)
{
    rd_kafka_topic_partition_list_t *tpl;
    rd_kafka_error_t *e;
    ws_err_t err = WS_OK;
    size_t i;

    if (a >= b)
        return WS_OK;
    if (!(tpl = rd_kafka_topic_partition_list_new((int)(b - a))))
        return ws_fail(WS_ERR_NOMEM, errbuf, errlen, "out of memory");
    for (i = a; i < b; i++)
        rd_kafka_topic_partition_list_add(tpl, s[i].g->topic, s[i].g->partition)->offset =
            s[i].g->from;
    e = add ? rd_kafka_incremental_assign(r->rk, tpl) : rd_kafka_incremental_unassign(r->rk, tpl);
    if (e) {
        err = ws_fail(ws_kafka_int_err(rd_kafka_error_code(e)), errbuf, errlen,
                      "%s %s[%d]@%lld (%zu partitions): %s", add ? "assign" : "unassign",
                      s[a].g->topic, (int)s[a].g->partition, (long long)s[a].g->from, b - a,
                      rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    } else {
        for (i = a; i < b; i++)
            s[i].assigned = add;
    }
    rd_kafka_topic_partition_list_destroy(tpl);
    return err;
}

/* What librdkafka holds of a range at most: the range, or one partition queue's cap. */
static uint64_t held(const struct ws_kafka_reader *r, uint64_t offsets)
{
    return offsets < (uint64_t)r->qmin ? offsets : (uint64_t)r->qmin;
}

/*
 * Keep the ranges after cur fetching while what they and the rest of cur hold stays within
 * AHEAD_RECORDS (at most AHEAD_PARTS partitions ahead): the fetcher works ahead of the caller,
 * but memory does not grow with the window. A range counts as what its queue can hold (held()),
 * so the next partition is fetched ahead even when ranges are longer than AHEAD_RECORDS: no
 * cold start at every partition boundary. left: offsets of cur not yet passed.
 */
static ws_err_t top_up(struct ws_kafka_reader *r, struct slot *s, size_t n, size_t cur,
                       uint64_t left, size_t *next, char *errbuf, size_t errlen)
{
    uint64_t ahead = held(r, left);
    size_t j = *next, k;
    ws_err_t err;

    for (k = cur + 1; k < j; k++)
        ahead += held(r, span(s[k].g));
    while (j < n && (j <= cur ||
                     (j - cur <= AHEAD_PARTS && ahead + held(r, span(s[j].g)) <= AHEAD_RECORDS))) {
        if (j > cur)
            ahead += held(r, span(s[j].g));
        j++;
    }
    if ((err = reassign(r, s, *next, j, true, errbuf, errlen)))
        return err;
    *next = j;
    return WS_OK;
}

/*
 * Serve the consumer queue without waiting: client events, a fatal error. A record never lands
 * there (every partition's queue is split off before it is assigned); if one did, fail rather
 * than lose it.
 */
static ws_err_t serve_events(struct ws_kafka_reader *r, char *errbuf, size_t errlen)
{
    rd_kafka_message_t *m;
    ws_err_t err = WS_OK;

    while (!err && (m = rd_kafka_consumer_poll(r->rk, 0))) {
        if (m->err == RD_KAFKA_RESP_ERR__FATAL)
            err = ws_fail(WS_ERR_KAFKA_FATAL, errbuf, errlen, "kafka reader: %s",
                          rd_kafka_message_errstr(m));
        else if (!m->err && m->rkt)
            err = ws_fail(WS_ERR_KAFKA, errbuf, errlen,
                          "kafka reader: %s[%d]@%lld reached the shared queue",
                          rd_kafka_topic_name(m->rkt), (int)m->partition, (long long)m->offset);
        rd_kafka_message_destroy(m);
    }
    return err;
}

/* One message of g's partition queue: deliver it, or learn that the range is done. */
static ws_err_t take(struct ws_kafka_reader *r, const struct ws_kafka_range *g,
                     const rd_kafka_message_t *m, int64_t *last, bool *done, ws_kafka_record_fn fn,
                     void *opaque, char *errbuf, size_t errlen)
{
    struct ws_record rec;
    ws_err_t err;

    if (m->partition != g->partition)
        return WS_OK; /* cannot happen: the queue is this partition's alone */
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        /* m->offset is the high watermark: nothing exists between last and it. */
        *done = m->offset >= g->until;
        return WS_OK;
    }
    if (m->err) {
        err = ws_fail(ws_kafka_int_err(m->err), errbuf, errlen,
                      "reading %s[%d] [%lld, %lld) after offset %lld: %s", g->topic,
                      (int)g->partition, (long long)g->from, (long long)g->until, (long long)*last,
                      rd_kafka_message_errstr(m));
        if (err == WS_ERR_NOT_RETAINED)
            err = ws_fail(err, errbuf, errlen,
                          "records no longer retained: %s[%d] offset %lld was deleted while "
                          "reading",
                          g->topic, (int)g->partition, (long long)(*last + 1));
        return err;
    }
    if (m->offset >= g->until) {
        *done = true;
        return WS_OK;
    }
    if (m->offset <= *last)
        return WS_OK; /* already passed; an offset always names the same record */
    err = to_record(r, m, g->topic, &rec, errbuf, errlen);
    if (!err)
        err = fn(opaque, &rec);
    *last = m->offset;
    *done = *last == g->until - 1;
    return err;
}

/*
 * Is slot s's queue, holding qlen records, at one of librdkafka's caps? The byte cap is judged
 * from the average size of the records taken so far (librdkafka counts key + value bytes). A
 * wrong guess costs time, never records: a missed cap waits for librdkafka's 1 s wake-up, a
 * false one a seek that re-fetches what was in flight.
 */
static bool at_cap(const struct ws_kafka_reader *r, const struct slot *s, size_t qlen)
{
    if ((double)qlen >= CAP_NEAR * (double)r->qmin)
        return true;
    return s->taken > 0 &&
           (double)qlen * ((double)s->size / (double)s->taken) >= CAP_NEAR * (double)r->qbytes;
}

/*
 * The queue of a capped partition is empty: wake its fetcher by seeking to the next offset the
 * read needs (asynchronous; an op for the partition's broker thread, which re-decides what to
 * fetch). The seek's version barrier drops only what is in flight for the old position; the
 * queue holds nothing to lose, and what comes back starts at next.
 */
static ws_err_t restart(struct ws_kafka_reader *r, const struct ws_kafka_range *g, int64_t next,
                        char *errbuf, size_t errlen)
{
    rd_kafka_topic_partition_list_t *tpl;
    rd_kafka_error_t *e;
    ws_err_t err = WS_OK;

    if (!(tpl = rd_kafka_topic_partition_list_new(1)))
        return ws_fail(WS_ERR_NOMEM, errbuf, errlen, "out of memory");
    rd_kafka_topic_partition_list_add(tpl, g->topic, g->partition)->offset = next;
    if ((e = rd_kafka_seek_partitions(r->rk, tpl, 0))) {
        err = ws_fail(ws_kafka_int_err(rd_kafka_error_code(e)), errbuf, errlen,
                      "seek %s[%d]@%lld: %s", g->topic, (int)g->partition, (long long)next,
                      rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    }
    rd_kafka_topic_partition_list_destroy(tpl);
    return err;
}

/* Deliver slot i's range from its partition queue, topping up the ranges fetched ahead. */
static ws_err_t drain(struct ws_kafka_reader *r, struct slot *s, size_t n, size_t i, size_t *next,
                      int64_t deadline, ws_kafka_record_fn fn, void *opaque, char *errbuf,
                      size_t errlen)
{
    const struct ws_kafka_range *g = s[i].g;
    rd_kafka_message_t *batch[BATCH];
    int64_t last = g->from - 1; /* highest offset passed so far */
    ws_err_t err = WS_OK;
    bool done = false;

    while (!done && !err) {
        ssize_t got, k;

        if ((err = top_up(r, s, n, i, (uint64_t)(g->until - 1 - last), next, errbuf, errlen)))
            break;
        /* Take what is there; only wait (for one message) when the queue is empty. */
        got = rd_kafka_consume_batch_queue(s[i].q, 0, batch, BATCH);
        if (got > 0) {
            size_t qlen = (size_t)got + rd_kafka_queue_length(s[i].q);

            if (at_cap(r, &s[i], qlen))
                s[i].capped = true;
            else if (qlen > s[i].left) /* it grew since the last take: the fetcher runs */
                s[i].capped = false;
            s[i].left = qlen - (size_t)got;
        }
        if (got == 0 && s[i].capped) {
            s[i].capped = false; /* once per fill: a seek must not chase its own fetch */
            if ((err = restart(r, g, last + 1, errbuf, errlen)))
                break;
        }
        if (got == 0) {
            int wait = ws_kafka_int_left(deadline, POLL_SLICE_MS);

            if (wait == 0) {
                err = ws_fail(WS_ERR_TIMEOUT, errbuf, errlen,
                              "reading %s[%d] [%lld, %lld): timed out after offset %lld%s%s",
                              g->topic, (int)g->partition, (long long)g->from, (long long)g->until,
                              (long long)last, r->last_error[0] ? "; last client error: " : "",
                              r->last_error);
                break;
            }
            if ((err = serve_events(r, errbuf, errlen)))
                break;
            batch[0] = rd_kafka_consume_queue(s[i].q, wait);
            got = batch[0] != NULL;
        }
        if (got < 0) {
            err = ws_fail(WS_ERR_KAFKA, errbuf, errlen, "reading %s[%d]: %s", g->topic,
                          (int)g->partition, rd_kafka_err2str(rd_kafka_last_error()));
            break;
        }
        for (k = 0; k < got; k++) {
            if (!batch[k]->err) {
                s[i].taken++;
                s[i].size += batch[k]->len + batch[k]->key_len;
            }
            if (!done && !err)
                err = take(r, g, batch[k], &last, &done, fn, opaque, errbuf, errlen);
            rd_kafka_message_destroy(batch[k]);
        }
    }
    return err;
}

/*
 * Fetch the ranges idx[0..n) (non-empty, complete: wait_ranges said so) and deliver them in that
 * order. Every partition's fetch queue is split off the consumer queue BEFORE anything is
 * assigned: a queue split off after its partition starts fetching may already have passed
 * records to the consumer queue. The split sticks for the partition's life (librdkafka marks the
 * queue app-forwarded, and a later fetch start leaves such a queue alone), so doing it again on
 * every read is a no-op that also covers a partition librdkafka recreated meanwhile.
 *
 * A drained range is unassigned at once, so that its partition stops fetching beyond until,
 * unless the window is small (at most AHEAD_RECORDS records: its read takes milliseconds) and
 * the range ended at its partition's high watermark (end[i], from wait_ranges; NULL: unknown):
 * then only what is produced to it during the read can be fetched beyond until, and it is left
 * assigned until the one unassign at the end. (A big window's read takes seconds, in which an
 * active producer could fill the queue of every partition left assigned: not deferred.) Each
 * incremental unassign is a round trip to librdkafka's main thread (~50 us measured, 0.35 ms of
 * a 1000-record read over 8 partitions), and a caught-up stream job's batches end at the log
 * end.
 */
static ws_err_t fetch_ranges(struct ws_kafka_reader *r, const struct ws_kafka_range *rg,
                             const size_t *idx, size_t n, const int64_t *end, int64_t deadline,
                             ws_kafka_record_fn fn, void *opaque, char *errbuf, size_t errlen)
{
    rd_kafka_resp_err_t kerr;
    struct slot *s;
    size_t i, next = 0;
    uint64_t records = 0;
    ws_err_t err = WS_OK;

    for (i = 0; i < n; i++)
        records += span(&rg[idx[i]]);
    if (!(s = calloc(n, sizeof(*s))))
        return ws_fail(WS_ERR_NOMEM, errbuf, errlen, "out of memory for %zu ranges", n);
    for (i = 0; i < n; i++) {
        s[i].g = &rg[idx[i]];
        if (!(s[i].q = rd_kafka_queue_get_partition(r->rk, s[i].g->topic, s[i].g->partition))) {
            err = ws_fail(WS_ERR_KAFKA, errbuf, errlen, "no fetch queue for %s[%d]", s[i].g->topic,
                          (int)s[i].g->partition);
            goto out_unassign;
        }
        rd_kafka_queue_forward(s[i].q, NULL);
        s[i].at_end = end && records <= AHEAD_RECORDS && end[i] == s[i].g->until;
    }
    for (i = 0; i < n && !err; i++) {
        err = drain(r, s, n, i, &next, deadline, fn, opaque, errbuf, errlen);
        /* Done with it: stop fetching beyond until (the last one goes with the rest below). */
        if (!err && i + 1 < n && !s[i].at_end)
            err = reassign(r, s, i, i + 1, false, errbuf, errlen);
    }

out_unassign:
    /*
     * Leave nothing assigned, whatever happened: an unassign bumps each partition's op version,
     * so what was fetched for this read is dropped, never delivered to the next one.
     */
    kerr = rd_kafka_assign(r->rk, NULL);
    if (kerr && !err)
        err =
            ws_fail(ws_kafka_int_err(kerr), errbuf, errlen, "unassign: %s", rd_kafka_err2str(kerr));
    for (i = 0; i < n; i++)
        if (s[i].q)
            rd_kafka_queue_destroy(s[i].q);
    free(s);
    return err;
}

/* Same range order as the engine's window stream: topic bytes, then partition. */
static int range_cmp(const struct ws_kafka_range *a, const struct ws_kafka_range *b)
{
    int c = strcmp(a->topic, b->topic); /* compares as unsigned char: byte order */

    if (c)
        return c;
    return a->partition < b->partition ? -1 : a->partition > b->partition;
}

ws_err_t ws_kafka_read_ranges(struct ws_kafka_reader *r, const struct ws_kafka_range *ranges,
                              size_t n, int timeout_ms, ws_kafka_record_fn fn, void *opaque,
                              char *errbuf, size_t errlen)
{
    int64_t deadline, *end;
    size_t i, ne = 0, *idx;
    ws_err_t err;

    if (!r || !fn || (n && !ranges))
        return ws_fail(WS_ERR_INVALID, errbuf, errlen, "invalid read of %zu ranges", n);
    for (i = 0; i < n; i++) {
        const struct ws_kafka_range *g = &ranges[i];

        if ((err = check_topic(g->topic, errbuf, errlen)))
            return err;
        if (g->partition < 0 || g->from < 0 || g->until < g->from)
            return ws_fail(WS_ERR_INVALID, errbuf, errlen,
                           "invalid range [%lld, %lld) of partition %d", (long long)g->from,
                           (long long)g->until, (int)g->partition);
        /* A partition is assigned once per read: ranges must be distinct, in window order. */
        if (i > 0 && range_cmp(&ranges[i - 1], g) >= 0)
            return ws_fail(WS_ERR_INVALID, errbuf, errlen,
                           "ranges out of order: %s[%d] after %s[%d]", g->topic, (int)g->partition,
                           ranges[i - 1].topic, (int)ranges[i - 1].partition);
        ne += g->from < g->until;
    }
    if (ne == 0)
        return WS_OK; /* nothing to read: no broker request */
    idx = malloc(ne * sizeof(*idx));
    end = malloc(ne * sizeof(*end));
    if (!idx || !end) {
        free(idx);
        free(end);
        return ws_fail(WS_ERR_NOMEM, errbuf, errlen, "out of memory for %zu ranges", ne);
    }
    for (i = 0, ne = 0; i < n; i++)
        if (ranges[i].from < ranges[i].until)
            idx[ne++] = i;
    deadline = ws_clock_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
    r->last_error[0] = '\0';
    err = wait_ranges(r, ranges, idx, ne, deadline, end, errbuf, errlen);
    if (!err)
        err = fetch_ranges(r, ranges, idx, ne, end, deadline, fn, opaque, errbuf, errlen);
    free(idx);
    free(end);
    return err;
}

ws_err_t ws_kafka_read_range(struct ws_kafka_reader *r, const char *topic, int32_t partition,
                             int64_t from, int64_t until, int timeout_ms, ws_kafka_record_fn fn,
                             void *opaque, char *errbuf, size_t errlen)
{
    struct ws_kafka_range g = {topic, partition, from, until};
    ws_err_t err;

    if (!r || !fn || partition < 0 || from < 0 || until < from)
        return ws_fail(WS_ERR_INVALID, errbuf, errlen, "invalid range [%lld, %lld) of partition %d",
                       (long long)from, (long long)until, (int)partition);
    if ((err = check_topic(topic, errbuf, errlen)))
        return err;
    return ws_kafka_read_ranges(r, &g, 1, timeout_ms, fn, opaque, errbuf, errlen);
}

/* Partition count of topic: 0 if it does not exist; retries transient metadata errors. */
static ws_err_t partition_count(struct ws_kafka_reader *r, const char *topic, int64_t deadline,
                                int *count, char *errbuf, size_t errlen)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t kerr;
    rd_kafka_topic_t *rkt;
    ws_err_t err;

    if (!(rkt = rd_kafka_topic_new(r->rk, topic, NULL)))
        return ws_fail(ws_kafka_int_err(rd_kafka_last_error()), errbuf, errlen, "topic %s: %s",
                       topic, rd_kafka_err2str(rd_kafka_last_error()));
    for (;;) {
        kerr =
            rd_kafka_metadata(r->rk, 0, rkt, &md, ws_kafka_int_left(deadline, 10 * POLL_SLICE_MS));
        if (!kerr && md->topic_cnt == 1) {
            kerr = md->topics[0].err;
            *count = md->topics[0].partition_cnt;
            rd_kafka_metadata_destroy(md);
            if (kerr == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
                kerr == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC) {
                *count = 0;
                kerr = RD_KAFKA_RESP_ERR_NO_ERROR;
            }
        } else if (!kerr) {
            rd_kafka_metadata_destroy(md);
            kerr = RD_KAFKA_RESP_ERR__BAD_MSG;
        }
        err = ws_kafka_int_err(kerr);
        if (!err || !ws_err_retriable(err) || ws_kafka_int_left(deadline, 1) == 0)
            break;
        sleep_ms(ws_kafka_int_left(deadline, WMARK_RETRY_MS));
    }
    rd_kafka_topic_destroy(rkt);
    if (err)
        return ws_fail(err, errbuf, errlen, "metadata of %s: %s", topic, rd_kafka_err2str(kerr));
    return WS_OK;
}

/* Watermarks, retrying what is retriable (leader moves, broker down) until the deadline. */
static ws_err_t wmarks_until(struct ws_kafka_reader *r, const char *topic, int32_t partition,
                             int64_t *lo, int64_t *hi, int64_t deadline, char *errbuf,
                             size_t errlen)
{
    ws_err_t err;

    for (;;) {
        err = query_wmarks(r, topic, partition, lo, hi,
                           ws_kafka_int_left(deadline, 10 * POLL_SLICE_MS), errbuf, errlen);
        if (!err || !ws_err_retriable(err) || ws_kafka_int_left(deadline, WMARK_RETRY_MS) == 0)
            return err;
        sleep_ms(ws_kafka_int_left(deadline, WMARK_RETRY_MS));
    }
}

ws_err_t ws_kafka_read_all(struct ws_kafka_reader *r, const char *topic, ws_kafka_record_fn fn,
                           void *opaque, int timeout_ms, char *errbuf, size_t errlen)
{
    int64_t deadline, lo, hi;
    int p, np = 0;
    ws_err_t err;

    if (!r || !fn)
        return ws_fail(WS_ERR_INVALID, errbuf, errlen, "invalid read_all");
    if ((err = check_topic(topic, errbuf, errlen)))
        return err;
    deadline = ws_clock_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
    r->last_error[0] = '\0';
    if ((err = partition_count(r, topic, deadline, &np, errbuf, errlen)))
        return err;
    for (p = 0; p < np; p++) {
        struct ws_kafka_range g = {topic, p, 0, 0};
        size_t zero = 0;

        err = wmarks_until(r, topic, p, &lo, &hi, deadline, errbuf, errlen);
        g.from = lo;
        g.until = hi;
        if (!err && lo < hi)
            err = fetch_ranges(r, &g, &zero, 1, NULL, deadline, fn, opaque, errbuf, errlen);
        if (err)
            return err;
    }
    return WS_OK;
}
