/*
 * kafka/kafka.h — windowseal's only door to Kafka (librdkafka behind opaque handles).
 *
 * Five small clients, each one rd_kafka_t, each used by one thread at a time:
 *
 *   ws_kafka_reader     re-reads exact offset ranges [from, until) of one partition (the records
 *                       a Spark micro-batch read) and whole topics (the chain-state topic). A plain
 *                       consumer that never joins a group: partitions are assigned by hand at a
 *                       fixed offset for each read and unassigned afterwards. Create it once and
 *                       reuse it: a new rd_kafka_t costs milliseconds, a read of a hot range less.
 *   ws_kafka_consumer   the notifications consumer: a group member subscribed to one topic, no
 *                       auto-commit, offsets committed synchronously by the engine once a window
 *                       is durable everywhere; a generation counter tells the engine when
 *                       partitions moved so it can reload per-query state.
 *   ws_kafka_producer   idempotent producer (acks=all) with one delivery-report callback.
 *   ws_kafka_broker     an embedded Kafka-protocol broker (librdkafka's mock cluster) for the
 *                       demo, the `windowseal broker` command and the tests.
 *
 * Failure: every fallible call returns a ws_err_t (window/window.h) and writes a human reason
 * into errbuf. Retriable: WS_ERR_TIMEOUT, WS_ERR_KAFKA, WS_ERR_AGAIN. Permanent:
 * WS_ERR_NOT_RETAINED, WS_ERR_UNKNOWN_TOPIC, WS_ERR_TOO_LARGE, WS_ERR_PERMISSION, WS_ERR_CONFIG,
 * WS_ERR_INVALID; WS_ERR_KAFKA_FATAL means the handle is unusable (destroy and recreate it).
 *
 * Threads: a handle is used by one thread at a time (librdkafka's own threads are internal);
 * ws_kafka_consumer_generation() and everything on ws_kafka_broker may be called from any thread.
 */
#ifndef WS_KAFKA_H
#define WS_KAFKA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "window/window.h"

/* ------------------------------------------------------------------------------------------ */
/* Client configuration                                                                           */

struct ws_kafka_conf {
    const char *bootstrap;    /* bootstrap.servers; may be NULL if props sets it */
    const char *group_id;     /* the consumer group (consumer: required; reader: see below) */
    const char *const *props; /* key0, value0, key1, value1, ... passed to librdkafka */
    size_t nprops;            /* number of key/value PAIRS: props holds 2 * nprops strings */
};

/*
 * Properties are applied in this order: the client's defaults, bootstrap, props, then the few
 * properties the client's correctness depends on (listed per constructor; props cannot change
 * them). An unknown or invalid property fails the constructor with WS_ERR_CONFIG and an errbuf
 * that names it: `kafka property "fetch.wait.max.mss": No such configuration property`.
 */

/* Apply conf to a fresh librdkafka configuration and throw it away: WS_ERR_CONFIG naming a bad
 * property, without any network activity. */
ws_err_t ws_kafka_conf_check(const struct ws_kafka_conf *conf, char *errbuf,
                             size_t errlen) WS_MUST_CHECK;

/* ------------------------------------------------------------------------------------------ */
/* Range reader                                                                                   */

struct ws_kafka_reader;

/*
 * A record handed to a read callback. *r and everything it points to is valid only during the
 * call. A non-WS_OK return aborts the read, which returns that same error.
 */
typedef ws_err_t (*ws_kafka_record_fn)(void *opaque, const struct ws_record *r);

/*
 * Create a reader. Defaults: fetch.wait.max.ms=1, queued.min.messages=16384 and
 * queued.max.messages.kbytes=16384 (a partition's fetch-ahead: flat memory, reader.c),
 * isolation.level=read_uncommitted (must match the Spark source's kafka.isolation.level: with
 * read_committed Spark's offsets and ours would disagree on aborted records).
 * Forced: enable.auto.commit=false, enable.partition.eof=true, auto.offset.reset=error (a range
 * deleted mid-read must fail, never silently jump). group.id is conf->group_id or "windowseal":
 * librdkafka needs one for assign(); the reader never joins the group nor commits.
 * Returns NULL with errbuf set on failure (WS_ERR_CONFIG-worthy: bad property).
 */
struct ws_kafka_reader *ws_kafka_reader_new(const struct ws_kafka_conf *conf, char *errbuf,
                                            size_t errlen);
void ws_kafka_reader_destroy(struct ws_kafka_reader *r);

/*
 * Low (first retained) and high (next to be written) watermarks of topic[partition], asked of
 * the partition leader. WS_ERR_UNKNOWN_TOPIC if the topic or partition does not exist,
 * WS_ERR_TIMEOUT / WS_ERR_KAFKA if the broker did not answer in timeout_ms.
 */
ws_err_t ws_kafka_reader_watermarks(struct ws_kafka_reader *r, const char *topic, int32_t partition,
                                    int64_t *lo, int64_t *hi, int timeout_ms, char *errbuf,
                                    size_t errlen) WS_MUST_CHECK;

/*
 * Call fn for exactly the records of topic[partition] with from <= offset < until, in offset
 * order, whatever the gaps (compaction, transaction markers): a missing offset is simply not
 * delivered. ws_record fields: timestamp -1 and ts_type 0 when the record has none (1 create
 * time, 2 log-append time); null key/value/header value: pointer NULL, length -1; headers in
 * record order.
 *
 * Before any record is delivered the watermarks are checked:
 *   from == until            -> WS_OK at once, no call, no broker request;
 *   unknown topic/partition  -> WS_ERR_UNKNOWN_TOPIC;
 *   from < low watermark     -> WS_ERR_NOT_RETAINED ("records no longer retained: orders[0]
 *                               low watermark 120 > from 100");
 *   until > high watermark   -> the watermarks are asked again until timeout_ms has passed,
 *                               then WS_ERR_TIMEOUT (retriable: the range is not complete yet).
 * So fn is only called once the whole range exists. timeout_ms bounds the whole call. An error
 * after some records were delivered (fn's own, a fetch error, the range being deleted mid-read:
 * WS_ERR_NOT_RETAINED) still returns the error: the caller discards what it got and retries.
 */
ws_err_t ws_kafka_read_range(struct ws_kafka_reader *r, const char *topic, int32_t partition,
                             int64_t from, int64_t until, int timeout_ms, ws_kafka_record_fn fn,
                             void *opaque, char *errbuf, size_t errlen) WS_MUST_CHECK;

/* One partition's offsets [from, until) of a window; topic is borrowed for the call. */
struct ws_kafka_range {
    const char *topic;
    int32_t partition;
    int64_t from, until;
};

/*
 * ws_kafka_read_range for n ranges at once, fetched concurrently and delivered in exactly the
 * given order: every record of ranges[0] in offset order, then ranges[1], ... ranges must be
 * strictly ordered by (topic bytes, partition), which is the window-stream order (so a partition
 * appears once); otherwise WS_ERR_INVALID before any request. Same per-range semantics as
 * ws_kafka_read_range: empty ranges are skipped without a request (all empty: WS_OK, no call).
 * The watermarks of every non-empty range are checked first (two ListOffsets requests for all
 * of them), ranges judged in order: WS_ERR_UNKNOWN_TOPIC / WS_ERR_NOT_RETAINED for the first
 * range that has it, at once; any incomplete range is asked again until timeout_ms, then
 * WS_ERR_TIMEOUT naming the first incomplete range. So fn is first called once every range
 * exists. timeout_ms bounds the whole call. An error after some records were delivered (fn's
 * own, a fetch error, a range deleted mid-read: WS_ERR_NOT_RETAINED, the deadline) returns the
 * error and no further record: the caller discards what it got. Nothing stays assigned after
 * the call, whatever it returns; records fetched for it never reach a later read.
 * The fetcher runs ahead of fn by at most ~16 k offsets (across ranges), so memory does not grow
 * with the window beyond one range's prefetch (bounded by queued.max.messages.kbytes).
 */
ws_err_t ws_kafka_read_ranges(struct ws_kafka_reader *r, const struct ws_kafka_range *ranges,
                              size_t n, int timeout_ms, ws_kafka_record_fn fn, void *opaque,
                              char *errbuf, size_t errlen) WS_MUST_CHECK;

/*
 * Read every partition of topic from its low to its high watermark as they are when the call
 * starts, calling fn in (partition, offset) order. A topic that does not exist is an empty topic
 * (WS_OK, no calls; a broker with auto-create may create it as a side effect). timeout_ms bounds
 * the whole call.
 */
ws_err_t ws_kafka_read_all(struct ws_kafka_reader *r, const char *topic, ws_kafka_record_fn fn,
                           void *opaque, int timeout_ms, char *errbuf, size_t errlen) WS_MUST_CHECK;

/* ------------------------------------------------------------------------------------------ */
/* Notifications consumer                                                                         */

struct ws_kafka_consumer;

/* A polled message; the pointers stay valid until ws_kafka_msg_release(). */
struct ws_kafka_msg {
    const char *topic;
    int32_t partition;
    int64_t offset;
    int64_t timestamp; /* ms since the epoch, -1 when none */
    const void *key;
    int32_t key_len; /* -1: null */
    const void *value;
    int32_t value_len; /* -1: null */
    void *handle_;     /* private */
};

/*
 * Join conf->group_id (required) and subscribe to topic. Defaults: auto.offset.reset=earliest
 * (a group without a committed offset starts at the first notification, FORMAT.md §9),
 * session.timeout.ms=6000 and heartbeat.interval.ms=1000 (a replacement instance takes over
 * within seconds of a kill -9). Forced: enable.auto.commit=false,
 * enable.auto.offset.store=false, group.id. Any assignment strategy works (eager or
 * cooperative). The group is joined asynchronously, during ws_kafka_consumer_poll().
 */
struct ws_kafka_consumer *ws_kafka_consumer_new(const struct ws_kafka_conf *conf, const char *topic,
                                                char *errbuf, size_t errlen);
/* Leaves the group cleanly (revokes partitions) and frees. Uncommitted offsets stay uncommitted. */
void ws_kafka_consumer_destroy(struct ws_kafka_consumer *c);

/*
 * Wait up to timeout_ms for the next notification. WS_OK: *out holds a message, release it with
 * ws_kafka_msg_release(). WS_ERR_TIMEOUT: nothing arrived (partition-EOF events are swallowed).
 * WS_ERR_KAFKA (retriable: broker down, topic not created yet, ...) or WS_ERR_KAFKA_FATAL
 * (recreate the consumer), with errbuf. Rebalances run inside this call.
 */
ws_err_t ws_kafka_consumer_poll(struct ws_kafka_consumer *c, int timeout_ms,
                                struct ws_kafka_msg *out, char *errbuf,
                                size_t errlen) WS_MUST_CHECK;
void ws_kafka_msg_release(struct ws_kafka_msg *m);
/*
 * Make a ws_kafka_consumer_poll that is blocked, or the next one, return WS_ERR_TIMEOUT at once:
 * how the engine's other event sources (its workers, the producer's reports) end its wait on
 * the notifications. Any thread; a wake is never lost, several may be merged into one.
 */
void ws_kafka_consumer_wake(struct ws_kafka_consumer *c);

/*
 * Bumped (from 0) every time this member's assignment changes: partitions assigned, revoked or
 * lost. If it differs from the value seen when per-query state was loaded, reload. Any thread.
 */
uint64_t ws_kafka_consumer_generation(const struct ws_kafka_consumer *c);
/*
 * Give m back: every assigned partition is paused and m's partition sought back to m's
 * offset, so later polls still serve the group (rebalances, heartbeats) but deliver nothing
 * until ws_kafka_consumer_resume; then m comes again. m is released on success; on failure the
 * caller still has it (and the position is past it). A rebalance's new assignment is not paused.
 */
ws_err_t ws_kafka_consumer_give_back(struct ws_kafka_consumer *c, struct ws_kafka_msg *m,
                                     char *errbuf, size_t errlen) WS_MUST_CHECK;
void ws_kafka_consumer_resume(struct ws_kafka_consumer *c);
/* Whether partition of the subscribed topic is currently assigned to this member. Poll thread. */
bool ws_kafka_consumer_owns(const struct ws_kafka_consumer *c, int32_t partition);

/*
 * Commit next_offset (the offset of the last processed message + 1) for partition of the
 * subscribed topic. sync: wait for the coordinator's answer; fails with WS_ERR_KAFKA if it refused
 * (e.g. the partition moved to another member: check the generation) or WS_ERR_TIMEOUT. Not
 * sync: the commit is only enqueued (librdkafka sends commits in order; the outcome is not
 * reported, so the caller repeats it — a later commit covers a lost one).
 */
ws_err_t ws_kafka_consumer_commit(struct ws_kafka_consumer *c, int32_t partition,
                                  int64_t next_offset, bool sync, char *errbuf,
                                  size_t errlen) WS_MUST_CHECK;

/*
 * Messages not yet returned by poll over the assigned partitions (high watermark - position),
 * from librdkafka's cached fetch state, no broker request: approximate, 0 before the first
 * fetch. WS_ERR_KAFKA if the assignment cannot be read.
 */
ws_err_t ws_kafka_consumer_lag(struct ws_kafka_consumer *c, int64_t *lag) WS_MUST_CHECK;

/* ------------------------------------------------------------------------------------------ */
/* Producer                                                                                       */

struct ws_kafka_producer;

/*
 * Delivery report for one produced message: err WS_OK when acknowledged by all in-sync replicas.
 * Retriable: WS_ERR_TIMEOUT (message.timeout.ms passed), WS_ERR_KAFKA (transport, leader moves);
 * permanent: WS_ERR_TOO_LARGE, WS_ERR_UNKNOWN_TOPIC, WS_ERR_PERMISSION, WS_ERR_INVALID,
 * WS_ERR_KAFKA_FATAL (the producer is unusable), WS_ERR_STOPPED (purged by destroy). reason is
 * librdkafka's text, valid during the call. Runs on the thread calling poll/flush/destroy.
 */
typedef void (*ws_kafka_dr_fn)(void *app_opaque, void *cookie, ws_err_t err, const char *reason);

/*
 * Defaults: linger.ms=0, partitioner=murmur2_random (the Java client's partitioning, so that
 * tools agree where a key lands), message.timeout.ms=30000. Forced: enable.idempotence=true
 * (implies acks=all, in-order, no duplicates from internal retries).
 */
struct ws_kafka_producer *ws_kafka_producer_new(const struct ws_kafka_conf *conf, ws_kafka_dr_fn dr,
                                                void *app_opaque, char *errbuf, size_t errlen);
/*
 * Purges whatever is not delivered yet (their reports fire now with WS_ERR_STOPPED) and frees.
 * Call ws_kafka_producer_flush() first to deliver instead.
 */
void ws_kafka_producer_destroy(struct ws_kafka_producer *p);

/*
 * Enqueue one message; non-blocking, key/value/headers are copied. partition -1 picks one from
 * the key (null key: random). key NULL = null key; value NULL = null value (keylen/vlen ignored
 * then); header value_len -1 = null header value. cookie comes back in the delivery report,
 * which fires exactly once per message accepted here (WS_OK return). WS_ERR_AGAIN: the local
 * queue is full, poll and retry.
 */
ws_err_t ws_kafka_produce(struct ws_kafka_producer *p, const char *topic, int32_t partition,
                          const void *key, size_t keylen, const void *value, size_t vlen,
                          const struct ws_header *headers, size_t nheaders, void *cookie,
                          char *errbuf, size_t errlen) WS_MUST_CHECK;
/*
 * The delivery state of one message, for producers whose report callback is
 * ws_kafka_delivery_report (every cookie is then a struct ws_kafka_delivery): done is set once,
 * with err and librdkafka's reason. An abandoned delivery (its waiter gave up) belongs to the
 * producer and is freed when its report finally fires.
 */
struct ws_kafka_delivery {
    bool done;
    ws_err_t err;
    char reason[256];
    bool abandoned; /* heap-allocated, nobody waits: the report frees it */
};
void ws_kafka_delivery_report(void *app_opaque, void *cookie, ws_err_t err, const char *reason);
/*
 * Produce one message and serve reports until it is acknowledged, at most timeout_ms (the
 * producer must report through ws_kafka_delivery_report). WS_ERR_TIMEOUT: it is still queued
 * and may yet be delivered — retrying may duplicate it, so only for messages whose duplicates
 * are harmless (byte-identical envelopes, heads, dead letters). Other errors are the delivery's.
 */
ws_err_t ws_kafka_produce_sync(struct ws_kafka_producer *p, const char *topic, int32_t partition,
                               const void *key, size_t keylen, const void *value, size_t vlen,
                               const struct ws_header *headers, size_t nheaders, int timeout_ms,
                               char *errbuf, size_t errlen) WS_MUST_CHECK;
/* Serve delivery reports, waiting up to timeout_ms for one. Returns how many were served. */
int ws_kafka_producer_poll(struct ws_kafka_producer *p, int timeout_ms);
/*
 * fn(opaque) is called from one of librdkafka's threads when a delivery report (or another
 * event) waits to be served by ws_kafka_producer_poll and none did before: the caller's loop
 * can sleep on something else and still serve reports at once. fn must be quick and
 * thread-safe (the engine's wakes its consumer poll). NULL turns it off.
 */
void ws_kafka_producer_set_wake(struct ws_kafka_producer *p, void (*fn)(void *), void *opaque);
/* Wait until every message is delivered (reports served). WS_ERR_TIMEOUT if some remain. */
ws_err_t ws_kafka_producer_flush(struct ws_kafka_producer *p, int timeout_ms) WS_MUST_CHECK;
/*
 * Look a topic up now, so that the first message to it is sent at once: librdkafka 2.0.2's
 * producer otherwise learns of a topic it has not produced to yet on a once-a-second timer, so
 * a window's first attestation and first chain head each waited ~1 s (librdkafka issue #3202;
 * bench_slowstore measured 999.7 ms). A failure is only logged by the caller: the timer still
 * works.
 */
ws_err_t ws_kafka_producer_prepare(struct ws_kafka_producer *p, const char *topic, int timeout_ms,
                                   char *errbuf, size_t errlen) WS_MUST_CHECK;

/* ------------------------------------------------------------------------------------------ */
/* Embedded broker (librdkafka's mock cluster, one broker)                                        */

struct ws_kafka_broker;

/*
 * Start a one-broker Kafka-protocol cluster in this process (its own thread). listen is "IPv4:PORT"
 * (port 0 = any free port) or NULL for 127.0.0.1 on a free port; the broker advertises that same
 * address, so clients that reach it can keep using it. partitions (>0) is the default for
 * ws_kafka_broker_create_topic(b, t, 0) and for the windowseal topics that `windowseal broker`
 * (cli/broker.c) pre-creates. Topics that clients auto-create get 4 partitions: librdkafka 2.0.2's
 * mock has a fixed default and no API to change it. Data lives in memory only, at most 5 MiB or
 * 100000 batches per partition: older batches are dropped and the low watermark moves. No
 * transaction markers are written (offsets have no gaps). Its group coordinator is slow: a first
 * join takes ~3 s, a takeover after a member left ~5 s. A fixed listen address works by handing the
 * mock an already bound socket (see broker.c); a busy port is WS_ERR_IO.
 */
struct ws_kafka_broker *ws_kafka_broker_new(const char *listen, int partitions, char *errbuf,
                                            size_t errlen);
void ws_kafka_broker_destroy(struct ws_kafka_broker *b);
/* Whether ws_kafka_broker_new would accept listen as an address: WS_OK, or WS_ERR_INVALID with
 * the reason (so a command can tell bad usage from a broker that cannot start). */
ws_err_t ws_kafka_broker_check_listen(const char *listen, char *errbuf,
                                      size_t errlen) WS_MUST_CHECK;
/* "127.0.0.1:PORT"; owned by b. */
const char *ws_kafka_broker_bootstrap(const struct ws_kafka_broker *b);
/* partitions 0: the broker's default. WS_ERR_KAFKA if the topic already exists. */
ws_err_t ws_kafka_broker_create_topic(struct ws_kafka_broker *b, const char *topic, int partitions,
                                      char *errbuf, size_t errlen) WS_MUST_CHECK;

/* Fault injection for tests. down: close every connection and refuse new ones; false undoes. */
ws_err_t ws_kafka_broker_set_down(struct ws_kafka_broker *b, bool down) WS_MUST_CHECK;
/*
 * The next count requests of api ("Produce", "Fetch", "ListOffsets", "Metadata", "OffsetCommit",
 * "OffsetFetch", "FindCoordinator", "JoinGroup", "Heartbeat", "SyncGroup", "InitProducerId")
 * fail with the Kafka protocol error code errcode (e.g. 7 REQUEST_TIMED_OUT; -195, librdkafka's
 * _TRANSPORT, makes the broker drop the connection). WS_ERR_INVALID for an unknown api name.
 */
ws_err_t ws_kafka_broker_push_errors(struct ws_kafka_broker *b, const char *api, int count,
                                     int errcode) WS_MUST_CHECK;
/* Drop the errors pushed for api and not yet returned (NULL: for every api). */
ws_err_t ws_kafka_broker_clear_errors(struct ws_kafka_broker *b, const char *api) WS_MUST_CHECK;
/*
 * Make Metadata answer errcode for topic (e.g. 3 UNKNOWN_TOPIC_OR_PART: the topic looks
 * nonexistent even though the broker auto-creates topics); 0 undoes.
 */
ws_err_t ws_kafka_broker_set_topic_error(struct ws_kafka_broker *b, const char *topic,
                                         int errcode) WS_MUST_CHECK;

#endif /* WS_KAFKA_H */
