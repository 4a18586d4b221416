/*
 * kafka/reader.c — re-read exact offset ranges, the heart of an attestation.
 *
 * DESIGN. One rd_kafka_t consumer per reader, created once and reused for every window: it
 * never subscribes, never joins its group, never commits. A read is
 *
 *     watermarks ok? --no--> wait (ask again) ... timeout -> WS_ERR_TIMEOUT
 *        | yes
 *     assign(topic[partition] @ from) -> poll messages -> deliver while offset < until
 *        -> stop at offset until-1, at the first offset >= until, or at partition EOF >= until
 *     unassign (always)
 *
 * so the end of a range is known without waiting for a poll timeout, and gaps (compaction,
 * transaction markers, a last offset that is a control record) cannot make a read hang: the EOF
 * event at the high watermark ends it.
 *
 * librdkafka 2.0.2 pitfalls measured on this project: the fetcher pauses (a fixed 1 s before
 * 2.1's fetch.queue.backoff.ms) once its queue holds queued.min.messages (or
 * queued.max.messages.kbytes, 64 MiB) while the application lags, so the count is raised to
 * 1000000. fetch.wait.max.ms is 1: a broker answers requests on one connection in order, and
 * after a read stops the fetcher's next long-poll at the log end is already in flight, so the
 * next read's ListOffsets waited behind it for fetch.wait.max.ms (10 ms per read with 10). The
 * mock broker also needs TCP_NODELAY on its side (see broker.c), or each read costs ~40 ms more.
 * auto.offset.reset=error turns a range that is deleted mid-read into an error instead of a
 * silent jump to another offset. The mock broker writes no transaction markers, so gaps and
 * isolation.level are only documented, not tested: read_uncommitted (the default here) must
 * match Spark's kafka.isolation.level.
 *
 * Stale events: after unassign librdkafka drops what was fetched for the old assignment (op
 * version barrier); we also ignore messages for other partitions and offsets we already passed,
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

#define POLL_SLICE_MS 100 /* longest single wait, so deadlines are kept */
#define WMARK_RETRY_MS 20 /* pause between watermark queries while a range is incomplete */

struct ws_kafka_reader {
    rd_kafka_t *rk;
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
        "queued.min.messages", "1000000",
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
    int64_t deadline = ws_kafka_int_now_ms() + timeout_ms;
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
 * Wait until [from, until) is retained and complete. Retriable query failures (broker down,
 * leader moving) are retried until the deadline like an incomplete range.
 */
static ws_err_t wait_range(struct ws_kafka_reader *r, const char *topic, int32_t partition,
                           int64_t from, int64_t until, int64_t deadline, char *errbuf,
                           size_t errlen)
{
    int64_t lo, hi, seen_hi = -1;
    char why[256] = "";
    ws_err_t err;

    for (;;) {
        err = query_wmarks(r, topic, partition, &lo, &hi,
                           ws_kafka_int_left(deadline, 10 * POLL_SLICE_MS), why, sizeof(why));
        if (err == WS_OK) {
            if (from < lo)
                return ws_fail(WS_ERR_NOT_RETAINED, errbuf, errlen,
                               "records no longer retained: %s[%d] low watermark %lld > from "
                               "%lld",
                               topic, (int)partition, (long long)lo, (long long)from);
            if (until <= hi)
                return WS_OK;
            seen_hi = hi;
        } else if (!ws_err_retriable(err)) {
            return ws_fail(err, errbuf, errlen, "%s", why);
        }
        if (ws_kafka_int_left(deadline, WMARK_RETRY_MS) == 0)
            break;
        sleep_ms(ws_kafka_int_left(deadline, WMARK_RETRY_MS));
    }
    /* The broker answered at least once: the range is simply not complete yet. */
    if (seen_hi >= 0)
        return ws_fail(WS_ERR_TIMEOUT, errbuf, errlen,
                       "range not complete: %s[%d] high watermark %lld < until %lld", topic,
                       (int)partition, (long long)seen_hi, (long long)until);
    return ws_fail(WS_ERR_TIMEOUT, errbuf, errlen, "%s%s%s", why,
                   r->last_error[0] ? "; last client error: " : "", r->last_error);
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

/* Fetch [from, until) once the watermarks said it is complete. */
static ws_err_t fetch_range(struct ws_kafka_reader *r, const char *topic, int32_t partition,
                            int64_t from, int64_t until, int64_t deadline, ws_kafka_record_fn fn,
                            void *opaque, char *errbuf, size_t errlen)
{
    rd_kafka_topic_partition_list_t *tpl;
    rd_kafka_resp_err_t kerr;
    int64_t last = from - 1; /* highest offset passed so far */
    struct ws_record rec;
    ws_err_t err = WS_OK;
    bool done = false;

    if (!(tpl = rd_kafka_topic_partition_list_new(1)))
        return ws_fail(WS_ERR_NOMEM, errbuf, errlen, "out of memory");
    rd_kafka_topic_partition_list_add(tpl, topic, partition)->offset = from;
    kerr = rd_kafka_assign(r->rk, tpl);
    rd_kafka_topic_partition_list_destroy(tpl);
    if (kerr)
        return ws_fail(ws_kafka_int_err(kerr), errbuf, errlen, "assign %s[%d]@%lld: %s", topic,
                       (int)partition, (long long)from, rd_kafka_err2str(kerr));

    while (!done) {
        int wait = ws_kafka_int_left(deadline, POLL_SLICE_MS);
        rd_kafka_message_t *m;

        if (wait == 0) {
            err = ws_fail(WS_ERR_TIMEOUT, errbuf, errlen,
                          "reading %s[%d] [%lld, %lld): timed out after offset %lld%s%s", topic,
                          (int)partition, (long long)from, (long long)until, (long long)last,
                          r->last_error[0] ? "; last client error: " : "", r->last_error);
            break;
        }
        if (!(m = rd_kafka_consumer_poll(r->rk, wait)))
            continue;
        if (!m->rkt || m->partition != partition || strcmp(rd_kafka_topic_name(m->rkt), topic)) {
            if (m->err == RD_KAFKA_RESP_ERR__FATAL) {
                err = ws_fail(WS_ERR_KAFKA_FATAL, errbuf, errlen, "kafka reader: %s",
                              rd_kafka_message_errstr(m));
                done = true;
            }
            rd_kafka_message_destroy(m); /* another partition's leftovers, or client noise */
            continue;
        }
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            /* m->offset is the high watermark: nothing exists between last and it. */
            done = m->offset >= until;
        } else if (m->err) {
            err = ws_fail(ws_kafka_int_err(m->err), errbuf, errlen,
                          "reading %s[%d] [%lld, %lld) after offset %lld: %s", topic,
                          (int)partition, (long long)from, (long long)until, (long long)last,
                          rd_kafka_message_errstr(m));
            if (err == WS_ERR_NOT_RETAINED)
                err = ws_fail(err, errbuf, errlen,
                              "records no longer retained: %s[%d] offset %lld was deleted while "
                              "reading",
                              topic, (int)partition, (long long)(last + 1));
            done = true;
        } else if (m->offset >= until) {
            done = true;
        } else if (m->offset > last) {
            err = to_record(r, m, topic, &rec, errbuf, errlen);
            if (!err)
                err = fn(opaque, &rec);
            last = m->offset;
            done = err != WS_OK || last == until - 1;
        }
        rd_kafka_message_destroy(m);
    }

    /* Stop fetching now: the next read may be elsewhere, and prefetch costs memory. */
    kerr = rd_kafka_assign(r->rk, NULL);
    if (kerr && !err)
        err = ws_fail(ws_kafka_int_err(kerr), errbuf, errlen, "unassign %s[%d]: %s", topic,
                      (int)partition, rd_kafka_err2str(kerr));
    return err;
}

ws_err_t ws_kafka_read_range(struct ws_kafka_reader *r, const char *topic, int32_t partition,
                             int64_t from, int64_t until, int timeout_ms, ws_kafka_record_fn fn,
                             void *opaque, char *errbuf, size_t errlen)
{
    int64_t deadline;
    ws_err_t err;

    if (!r || !fn || partition < 0 || from < 0 || until < from)
        return ws_fail(WS_ERR_INVALID, errbuf, errlen, "invalid range [%lld, %lld) of partition %d",
                       (long long)from, (long long)until, (int)partition);
    if ((err = check_topic(topic, errbuf, errlen)))
        return err;
    if (from == until)
        return WS_OK;
    deadline = ws_kafka_int_now_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
    r->last_error[0] = '\0';
    if ((err = wait_range(r, topic, partition, from, until, deadline, errbuf, errlen)))
        return err;
    return fetch_range(r, topic, partition, from, until, deadline, fn, opaque, errbuf, errlen);
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
    deadline = ws_kafka_int_now_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
    r->last_error[0] = '\0';
    if ((err = partition_count(r, topic, deadline, &np, errbuf, errlen)))
        return err;
    for (p = 0; p < np; p++) {
        err = wmarks_until(r, topic, p, &lo, &hi, deadline, errbuf, errlen);
        if (!err && lo < hi)
            err = fetch_range(r, topic, p, lo, hi, deadline, fn, opaque, errbuf, errlen);
        if (err)
            return err;
    }
    return WS_OK;
}
