/*
 * benchlib.h — the bench helper library (ws_benchlib, built from the .c files of bench/lib/): the
 * parts of the benches that are no bench of their own, so that a bench program stays its
 * measurements and its table.
 *
 *   util.c             clocks, CPU by thread, exit on a setup failure, percentiles, verdicts
 *   fixture.c          embedded broker + key in a temporary directory, producers, records,
 *                      native notifications, engines configured from `--set` strings, stepping
 *   slowstore_proxy.c  the delay proxy: a loopback TCP proxy adding N ms to every request
 *   s3rver.c           npm s3rver as a child process on loopback, and its credentials
 *   tap.c              a tap on stderr: when the engine's log lines arrive
 *   kafka_times.c      CreateTime of notifications and attestations read back from Kafka, a bare
 *                      consumer as the delivery floor, timed reads and produces
 *   work.c             the work floor of a window: hashing and LZ4 of the engine's own evidence,
 *                      one thread each, added to a baseline's CPU over every core
 *   pipeline.c         a minimal attester's read: two bare consumers feeding a hashing and an
 *                      LZ4 thread, nothing else: what the work takes when only the work runs
 *
 * Only public headers (engine, config, kafka, sinks, window, disk), as the benches themselves:
 * the figures keep their meaning across a rework of the engine's internals. Every name is
 * bench_* (struct bench for the fixture), so that the library never collides with a bench's own
 * static helpers nor with the ws_* libraries. A setup failure is not measured: bench_die prints
 * "<bench_prog>: what: why" and exits 3; a bench sets bench_prog to its name first thing.
 * A bench drives its engines from one thread; the proxy, the tap and the bare consumer run
 * threads of their own: the proxy's counters and the bare consumer's got_first are atomics, read
 * while they run; the rest of what the tap and the bare consumer note is read once stopped.
 */
#ifndef WS_BENCHLIB_H
#define WS_BENCHLIB_H

#include "engine/engine.h"
#include "kafka/kafka.h"

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- util.c ------------------------------------------------------------------------------ */

extern const char *bench_prog; /* prefix of bench_die's and the library's messages */

double bench_now_ms(void);  /* CLOCK_MONOTONIC, ms */
double bench_wall_ms(void); /* CLOCK_REALTIME, ms (as Kafka's CreateTime) */
/* CPU seconds (user + system) of this process (RUSAGE_SELF) or its waited-for children
 * (RUSAGE_CHILDREN): the CPU a window costs, beside the time it takes */
double bench_cpu_seconds(int who);
/* The same of another running process (/proc/PID/stat, clock-tick resolution); -1 if unreadable */
double bench_proc_cpu_seconds(pid_t pid);
void bench_sleep_ms(double ms);
/* Where a process's CPU goes, thread by thread: a snapshot of every thread of this process (its
 * name and its time on CPU, /proc/self/task/TID/schedstat, ns resolution). */
#define BENCH_THREADS_MAX 256
struct bench_threads {
    int n;
    struct {
        int tid;
        char comm[16];
        double ms;
    } t[BENCH_THREADS_MAX];
};
void bench_threads_snap(struct bench_threads *s);
/* Print "name ms ..." for the CPU each thread name used from a to b, divided by div (e.g. per
 * window), largest first; names that differ only in a trailing number are one (ws:build0 and
 * ws:build1 are ws:build*, the reader's and the producers' rdk:broker1 likewise). */
/* acc += b - a, thread by thread (acc starts zeroed): the CPU of several timed spans */
void bench_threads_add(struct bench_threads *acc, const struct bench_threads *a,
                       const struct bench_threads *b);
void bench_threads_print(const struct bench_threads *a, const struct bench_threads *b, double div);
_Noreturn void bench_die(const char *what, const char *why); /* "<prog>: what: why", exit 3 */
double bench_pct(double *v, int n, double p); /* nearest-rank percentile (sorts v); 0 if n <= 0 */
double bench_median(double *v, int n);        /* bench_pct(v, n, 0.5) */
const char *bench_verdict(bool met);          /* "met" or "MISSED" */

/* ---- fixture.c --------------------------------------------------------------------------- */

/* A temporary directory (/tmp/ws_bench_slow_XXXXXX) with a signing key, and an embedded broker. */
struct bench {
    char dir[64], key[128];
    struct ws_kafka_broker *b;
    const char *boot;
};

struct bench_range {
    int part;
    int64_t from, until;
};

void bench_open(struct bench *B);
void bench_close(struct bench *B); /* the broker, and rm -rf of the directory */
void bench_topic(struct bench *B, const char *name, int partitions);
/* batched: setup speed for data (never timed); else linger 0, as notifications go out */
struct ws_kafka_producer *bench_producer(const char *bootstrap, bool batched);
/* n records (100 B values) to topic[part], asynchronously */
void bench_produce_records(struct ws_kafka_producer *p, const char *topic, int part, int n);
void bench_flush(struct ws_kafka_producer *p); /* every record delivered within 60 s, or die */
/* Native notification (FORMAT.md): one source per range, all of topic. */
void bench_notification(char *json, size_t cap, const char *query, int64_t batch, const char *topic,
                        const struct bench_range *rg, int n);
void bench_post(struct ws_kafka_producer *p, const char *topic, const char *query,
                const char *json);
/* The same to one partition of topic (-1: the partitioner's choice, as bench_post). */
void bench_post_to(struct ws_kafka_producer *p, const char *topic, int partition, const char *query,
                   const char *json);
/* An engine on its own notifications topic (<tag>.batches), attestations topic (<tag>.att),
 * group and spool; sinks_json: the `sinks` array; props_json: kafka.properties or NULL. */
struct ws_engine *bench_engine(struct bench *B, const char *tag, const char *sinks_json,
                               const char *props_json, struct ws_config **cfgp);
/* One more member of tag's group (same topics and group), with a spool of its own,
 * <tag>.<member>.spool: instances of one consumer group, as a platform scales windowseal out. */
struct ws_engine *bench_engine_member(struct bench *B, const char *tag, const char *member,
                                      const char *sinks_json, const char *props_json,
                                      struct ws_config **cfgp);
/* Step e (1 ms polls, p polled too if not NULL) until `windows` windows are attested in all,
 * or a dead letter, or timeout_s; true: all attested. */
bool bench_step_until(struct ws_engine *e, struct ws_kafka_producer *p, uint64_t windows,
                      double timeout_s);
/* The same as `windowseal run` steps: ws_engine_step(e, 100). */
bool bench_step_until_run(struct ws_engine *e, uint64_t windows, double timeout_s);

/* ---- slowstore_proxy.c ------------------------------------------------------------------- */

struct bench_proxy;

/* Listen on 127.0.0.1 (a free port) and forward to 127.0.0.1:upstream_port, each client chunk
 * delay_ms after it arrived; dies if it cannot. */
struct bench_proxy *bench_proxy_start(int upstream_port, int delay_ms);
void bench_proxy_stop(struct bench_proxy *px); /* closes every connection, frees px */
int bench_proxy_port(const struct bench_proxy *px);
unsigned long bench_proxy_exchanges(struct bench_proxy *px);   /* request-response exchanges */
unsigned long bench_proxy_connections(struct bench_proxy *px); /* connections accepted */

/* ---- s3rver.c ---------------------------------------------------------------------------- */

struct bench_s3rver {
    pid_t pid;
    int port;
    char dir[PATH_MAX];
};

/* s3rver.js: explicit_path if not NULL, else $WS_S3RVER, else
 * <self_dir>/node/node_modules/s3rver/bin/s3rver.js; NULL if the one chosen is not readable. */
const char *bench_s3rver_find(const char *explicit_path, const char *self_dir);
/* Start s3rver on a free loopback port with the bucket `attest`; its data and log under dir. */
bool bench_s3rver_start(const char *script, const char *dir, struct bench_s3rver *s);
void bench_s3rver_stop(struct bench_s3rver *s);
void bench_s3_credentials(void); /* AWS_* in the environment as s3rver knows them */

/* ---- tap.c ------------------------------------------------------------------------------- */

enum { BENCH_TAP_REBALANCE, BENCH_TAP_RECEIVED, BENCH_TAP_ATTESTED, BENCH_TAP_NEV };
#define BENCH_TAP_BATCHES 4096
/* the stages of the engine's window_timing line (engine/internal.h, enum mark), in order */
#define BENCH_TAP_NSTAGES 11
/* ... and the one that ends at the attestation's produce (its CreateTime); the acks follow it */
#define BENCH_TAP_TO_TOPIC 8
extern const char *const bench_tap_stages[BENCH_TAP_NSTAGES];

struct bench_tap {
    int saved, rfd;
    pthread_t th;
    double t[BENCH_TAP_NEV]; /* bench_now_ms() when the first line of each event arrived; 0: none */
    double
        last[BENCH_TAP_NEV]; /* ... and when its latest line did (a revoke, then an assignment) */
    /* wall-clock ms (CLOCK_REALTIME, as Kafka's CreateTime) when the engine logged that it
     * received batch b (the first time): 0 none */
    double received_wall[BENCH_TAP_BATCHES];
    /* the engine's `window_timing` debug line of batch b: ms of each stage (bench_tap_stages),
     * -1 where the line had none; has_timing[b]: a line was seen */
    float stage_ms[BENCH_TAP_BATCHES][BENCH_TAP_NSTAGES];
    bool has_timing[BENCH_TAP_BATCHES];
};

/* stderr into a pipe read by a thread, ws_log at `level` (logfmt); lines other than debug and
 * info go on to the real stderr. */
void bench_tap_start(struct bench_tap *tp, const char *level);
void bench_tap_stop(struct bench_tap *tp); /* ws_log back to warn, stderr back; tp readable */

/* ---- kafka_times.c ----------------------------------------------------------------------- */

/* CreateTime of every batch's notification (<tag>.batches) and first attestation (<tag>.att)
 * for query, by batch id 0..n-1 (-1: not seen). */
void bench_read_times(struct bench *B, const char *tag, const char *query, int n, int64_t *nt,
                      int64_t *at);

/* A bare group member of its own group on the engine's notifications topic: when it gets each
 * notification (wall clock, as CreateTime), the floor of the engine's delivery. */
struct bench_bare {
    struct bench *B;
    const char *topic, *group;
    pthread_t th;
    atomic_bool stop, got_first;
    double recv_wall[BENCH_TAP_BATCHES];
};

void bench_bare_start(struct bench_bare *bc); /* B, topic and group set; the rest zero */
void bench_bare_stop(struct bench_bare *bc);

/* ms one call takes: read partitions [a, b) of tp over [from, until) (dies unless every record
 * came), the watermarks of one partition, a whole topic, one produce_sync */
double bench_t_read(struct ws_kafka_reader *rd, const char *tp, int a, int b, int64_t from,
                    int64_t until);
double bench_t_wmarks(struct ws_kafka_reader *rd, const char *tp, int part);
double bench_t_read_all(struct ws_kafka_reader *rd, const char *tp);
double bench_t_produce(struct ws_kafka_producer *p, const char *tp, int part);

/* ---- work.c ------------------------------------------------------------------------------ */

/* A bare librdkafka consumer (self_dir/bench_baseline_consumer) reading topic's ranges rg[0..n):
 * its timed seconds (connected, first assign to last record); *cpu_s its CPU over that span plus
 * this process's meanwhile (the broker serving it); *records what it read. Dies on failure. */
double bench_bare_read(const char *self_dir, const char *boot, const char *topic,
                       const struct bench_range *rg, int n, uint64_t *records, double *cpu_s);
/* Thread CPU seconds of the hashing stage and of LZ4 over one window's stream (best of reps). */
struct bench_work {
    double hash_s, lz4_s;
    uint64_t records, stream_bytes, evidence_bytes;
    uint8_t stream_digest[32]; /* the archive's, recomputed and checked */
};
/* Measure on the evidence archive at `evidence` (the window of topic's ranges rg[0..n)); dies if
 * the recomputed stream digest differs from the archive's. */
void bench_work_measure(const char *evidence, const char *topic, const struct bench_range *rg,
                        int n, int reps, struct bench_work *out);
/* The least a window can take here: max(read wall, (read CPU + work) / cores), the read being a
 * bare consumer's (bench_bare_read). */
double bench_work_floor(const struct bench_work *w, double read_cpu_s, double read_wall_s,
                        long *ncpu);
/* One line: the work, the floor, and whether `target` (a ratio to the row's baseline, which
 * took base_wall_s) is ruled out here. */
void bench_work_print(const struct bench_work *w, double read_cpu_s, double read_wall_s,
                      const char *read_name, double base_wall_s, double target);

/* ---- pipeline.c -------------------------------------------------------------------------- */

struct bench_pipe; /* two consumers of its own, a hashing and an LZ4 thread */
struct bench_pipe_result {
    uint64_t records, evidence_bytes;
    double cpu_s; /* this process's CPU over the read (the embedded broker's included) */
    uint8_t stream_digest[32], root[32];
};
struct bench_pipe *bench_pipe_new(const char *boot);
void bench_pipe_destroy(struct bench_pipe *p);
/* Seconds for one window of topic's ranges rg[0..n) (ascending partitions: window order), from
 * the assign to the last record hashed and compressed; dies on any failure. */
double bench_pipe_read(struct bench_pipe *p, const char *topic, const struct bench_range *rg, int n,
                       struct bench_pipe_result *out);

#endif
