/*
 * bench_baseline_consumer.c — the floor for re-reading a window: a bare librdkafka batch
 * consumer, no windowseal code at all.
 *
 *   bench_baseline_consumer BOOTSTRAP TOPIC PARTITION:FROM:UNTIL...
 *
 * It assigns every range at once at its start offset and drains them with
 * rd_kafka_consume_batch_queue (10 000 messages a call) until each partition has passed
 * until - 1 or reported EOF at or past it, touching each record's key and value length the way
 * any consumer must. Configuration matches windowseal's range reader where it matters for speed
 * (fetch.wait.max.ms=1, queued.min.messages=1000000, TCP_NODELAY, read_uncommitted), so the
 * difference to the engine is what the engine does per record and per range, not client tuning.
 *
 * Timing starts after the client has connected (one metadata round trip, untimed) and ends at
 * the last record. Prints one line:
 *   records=N bytes=B seconds=S cpu=C
 * C: the process's CPU seconds (user + sys, every thread: librdkafka's included) over the same
 * span, so that a work floor (bench/lib/work.c) counts what reading costs, not starting up.
 * and exits 0, or 1 if a range could not be read completely (e.g. below the low watermark).
 * A measuring instrument, so it includes rdkafka.h directly.
 */
#include <librdkafka/rdkafka.h>

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

struct range {
    int32_t partition;
    int64_t from, until;
    bool done;
};

static double cpu_now(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int set(rd_kafka_conf_t *c, const char *k, const char *v)
{
    char err[256];

    if (rd_kafka_conf_set(c, k, v, err, sizeof err) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "bench_baseline_consumer: %s=%s: %s\n", k, v, err);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    enum { BATCH = 10000 };
    rd_kafka_message_t **msgs;
    rd_kafka_topic_partition_list_t *tpl;
    const struct rd_kafka_metadata *md;
    rd_kafka_queue_t *q;
    struct range *rs;
    rd_kafka_conf_t *conf;
    rd_kafka_t *rk;
    char err[512];
    size_t nr, left;
    uint64_t records = 0, bytes = 0;
    double t0, t1 = 0, c0, c1;
    int rc = 0;

    if (argc < 4) {
        fprintf(stderr, "usage: bench_baseline_consumer BOOTSTRAP TOPIC P:FROM:UNTIL...\n");
        return 2;
    }
    nr = (size_t)argc - 3;
    rs = calloc(nr, sizeof *rs);
    msgs = calloc(BATCH, sizeof *msgs);
    for (size_t i = 0; i < nr; i++) {
        long long f, u;
        int p;
        if (sscanf(argv[3 + i], "%d:%lld:%lld", &p, &f, &u) != 3 || p < 0 || f < 0 || u < f) {
            fprintf(stderr, "bad range %s\n", argv[3 + i]);
            return 2;
        }
        rs[i] = (struct range){p, f, u, f == u};
    }

    conf = rd_kafka_conf_new();
    if (set(conf, "bootstrap.servers", argv[1]) || set(conf, "group.id", "bench-baseline") ||
        set(conf, "enable.auto.commit", "false") || set(conf, "enable.partition.eof", "true") ||
        set(conf, "auto.offset.reset", "error") || set(conf, "fetch.wait.max.ms", "1") ||
        set(conf, "queued.min.messages", "1000000") || set(conf, "socket.nagle.disable", "true") ||
        set(conf, "isolation.level", "read_uncommitted"))
        return 2;
    if (!(rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err))) {
        fprintf(stderr, "rd_kafka_new: %s\n", err);
        return 2;
    }
    /* connect first: the engine's reader is long-lived, so connection setup is not the point */
    if (rd_kafka_metadata(rk, 0, NULL, &md, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR)
        rd_kafka_metadata_destroy(md);
    q = rd_kafka_queue_get_consumer(rk);

    c0 = cpu_now();
    t0 = now();
    tpl = rd_kafka_topic_partition_list_new((int)nr);
    left = 0;
    for (size_t i = 0; i < nr; i++)
        if (!rs[i].done) {
            rd_kafka_topic_partition_list_add(tpl, argv[2], rs[i].partition)->offset = rs[i].from;
            left++;
        }
    if (rd_kafka_assign(rk, tpl)) {
        fprintf(stderr, "assign failed\n");
        return 1;
    }
    rd_kafka_topic_partition_list_destroy(tpl);

    while (left > 0) {
        /* the call waits until BATCH messages are there or the timeout passes: a long timeout
         * would add up to itself to the last batch of every run */
        ssize_t n = rd_kafka_consume_batch_queue(q, 1, msgs, BATCH);
        if (n < 0) {
            fprintf(stderr, "consume: %s\n", rd_kafka_err2str(rd_kafka_last_error()));
            rc = 1;
            break;
        }
        if (now() - t0 > 120) {
            fprintf(stderr, "timed out with %zu ranges unfinished\n", left);
            rc = 1;
            break;
        }
        for (ssize_t k = 0; k < n; k++) {
            rd_kafka_message_t *m = msgs[k];
            struct range *r = NULL;
            for (size_t i = 0; i < nr; i++) /* 64 ranges: a scan is cheaper than a map */
                if (rs[i].partition == m->partition) {
                    r = &rs[i];
                    break;
                }
            if (r && !r->done) {
                if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                    if (m->offset >= r->until) {
                        r->done = true;
                        left--;
                    }
                } else if (m->err) {
                    fprintf(stderr, "partition %d: %s\n", (int)m->partition,
                            rd_kafka_message_errstr(m));
                    rc = 1;
                    left = 0;
                } else if (m->offset >= r->from && m->offset < r->until) {
                    records++;
                    bytes += m->len + m->key_len;
                    if (m->offset == r->until - 1) {
                        r->done = true;
                        left--;
                    }
                } else if (m->offset >= r->until) {
                    {
                        r->done = true;
                        left--;
                    }
                }
            }
            rd_kafka_message_destroy(m);
        }
        t1 = now();
    }
    if (!t1)
        t1 = now();
    c1 = cpu_now();
    printf("records=%" PRIu64 " bytes=%" PRIu64 " seconds=%.6f cpu=%.6f\n", records, bytes, t1 - t0,
           c1 - c0);
    rd_kafka_assign(rk, NULL);
    rd_kafka_queue_destroy(q);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    free(rs);
    free(msgs);
    return rc;
}
