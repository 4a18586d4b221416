/*
 * work.c — the floor of a window (issue 15): the work any attester must add to reading the
 * records, measured on the engine's own evidence of the window, in the same run.
 *
 * Reading a window's records costs at least what a bare librdkafka consumer spends on them
 * (bench_bare_read: bench_baseline_consumer's CPU over its timed span, every thread, plus the
 * broker serving it; not its start-up). An attester must also hash the window stream (leaf
 * encoding, Merkle tree, stream digest: the engine's hashing stage, order checks included) and
 * compress it into the LZ4 evidence (SPEC 3.3). This file measures those two on one thread
 * each, on exactly the window the engine attested: its evidence archive is decompressed into
 * memory (untimed), then
 *   hashing  ws_window_add_encoded per frame, as the engine's hasher thread does;
 *   LZ4      ws_evidence_write of the stream in 128 KiB pieces (the hasher's chunks) into a
 *            discarding sink with the engine's 64 KiB output blocks, as its compressor does;
 * thread CPU time, the best of `reps` runs each (a floor takes the least). The hashing run's
 * stream digest must equal the archive's, or the measure is of something else: die.
 *
 * bench_work_floor turns it into the shortest time the window can take on this machine: the
 * bare read's CPU plus this work, spread perfectly over every core, and never less than the
 * bare read's own time (the records cannot be read faster than that). A row's ratio target is
 * ruled out on this machine when (the row's baseline time / floor) is below it, for any
 * attester that reads the records with librdkafka from this broker, whatever its design; above
 * it, the target is only not ruled out. Optimistic by construction: no hand-off, no encoding,
 * no spool, no signing, no sink, no commit is counted, and the two stages are timed alone,
 * without the cache and core sharing they meet beside the reader.
 */
#include "bench/lib/benchlib.h"

#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define PIECE (128u << 10)    /* what the engine hands its compressor at once (hasher.c) */
#define OUT_BLOCK (64u << 10) /* the engine's evidence output block (engine/build.c) */

static double thread_cpu_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static ws_err_t file_in(void *opaque, void *buf, size_t cap, size_t *got)
{
    FILE *f = opaque;

    *got = fread(buf, 1, cap, f);
    return ferror(f) ? WS_ERR_IO : WS_OK;
}

static ws_err_t discard(void *opaque, const void *buf, size_t len)
{
    (void)buf;
    *(size_t *)opaque += len;
    return WS_OK;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* The window stream of an evidence archive, frames as the engine wrote them; its digest. */
static uint8_t *load_stream(const char *path, size_t *len, uint64_t *records,
                            uint8_t digest[WS_HASH_LEN])
{
    char errbuf[256];
    FILE *f = fopen(path, "rb");
    struct ws_evidence_reader *rd;
    uint8_t *s = NULL;
    size_t cap = 0;

    if (!f)
        bench_die(path, strerror(errno));
    if (!(rd = ws_evidence_reader_new(file_in, f)))
        bench_die("evidence reader", "out of memory");
    *len = 0;
    *records = 0;
    for (;;) {
        const uint8_t *rec;
        size_t n;

        if (ws_evidence_next(rd, &rec, &n, errbuf, sizeof errbuf))
            bench_die(path, errbuf);
        if (!rec)
            break;
        if (*len + 4 + n > cap) {
            cap = cap ? cap * 2 : (16u << 20);
            while (*len + 4 + n > cap)
                cap *= 2;
            if (!(s = realloc(s, cap)))
                bench_die("window stream", "out of memory");
        }
        put32(s + *len, (uint32_t)n);
        memcpy(s + *len + 4, rec, n);
        *len += 4 + n;
        (*records)++;
    }
    ws_evidence_stream_digest(rd, digest);
    ws_evidence_reader_destroy(rd);
    fclose(f);
    return s;
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static double hash_once(const uint8_t *s, size_t len, const char *topic,
                        const struct bench_range *rg, int n, const uint8_t want[WS_HASH_LEN])
{
    char errbuf[256];
    struct ws_window_result res;
    struct ws_window *w = ws_window_new(NULL, NULL);
    double t0, spent;

    if (!w)
        bench_die("window", "out of memory");
    for (int i = 0; i < n; i++)
        if (ws_window_add_source(w, topic, rg[i].part, rg[i].from, rg[i].until))
            bench_die("window", "source refused");
    t0 = thread_cpu_s();
    for (size_t at = 0; at < len;) {
        size_t k = get32(s + at);

        if (ws_window_add_encoded(w, s + at + 4, k, errbuf, sizeof errbuf))
            bench_die("hashing the evidence's records", errbuf);
        at += 4 + k;
    }
    if (ws_window_finish(w, &res))
        bench_die("window", "finish failed");
    spent = thread_cpu_s() - t0;
    if (memcmp(res.stream_digest, want, WS_HASH_LEN) != 0)
        bench_die("work floor", "the stream digest differs from the evidence's");
    ws_window_destroy(w);
    return spent;
}

static double lz4_once(const uint8_t *s, size_t len, size_t *out_bytes)
{
    struct ws_evidence_writer *ew;
    double t0, spent;

    *out_bytes = 0;
    if (!(ew = ws_evidence_writer_new(discard, out_bytes, OUT_BLOCK)))
        bench_die("evidence writer", "out of memory");
    t0 = thread_cpu_s();
    for (size_t at = 0; at < len; at += PIECE)
        if (ws_evidence_write(ew, s + at, len - at < PIECE ? len - at : PIECE))
            bench_die("evidence writer", "write failed");
    if (ws_evidence_finish(ew))
        bench_die("evidence writer", "finish failed");
    spent = thread_cpu_s() - t0;
    ws_evidence_writer_destroy(ew);
    return spent;
}

double bench_bare_read(const char *self_dir, const char *boot, const char *topic,
                       const struct bench_range *rg, int n, uint64_t *records, double *cpu_s)
{
    char exe[PATH_MAX], (*ranges)[64] = calloc((size_t)n, sizeof *ranges), out[256] = "";
    char **argv = calloc((size_t)n + 4, sizeof *argv);
    posix_spawn_file_actions_t fa;
    unsigned long long rec, bytes;
    double secs, cpu, self0;
    int fds[2], status;
    ssize_t got;
    pid_t pid;

    if (!ranges || !argv)
        bench_die("bare read", "out of memory");
    snprintf(exe, sizeof exe, "%s/bench_baseline_consumer", self_dir);
    argv[0] = exe;
    argv[1] = (char *)boot;
    argv[2] = (char *)topic;
    for (int i = 0; i < n; i++) {
        snprintf(ranges[i], sizeof ranges[i], "%d:%lld:%lld", rg[i].part, (long long)rg[i].from,
                 (long long)rg[i].until);
        argv[3 + i] = ranges[i];
    }
    if (pipe(fds))
        bench_die("pipe", strerror(errno));
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    self0 = bench_cpu_seconds(RUSAGE_SELF);
    if (posix_spawn(&pid, exe, &fa, NULL, argv, environ) != 0)
        bench_die(exe, "cannot start (build the bench_baseline_consumer target)");
    close(fds[1]);
    got = read(fds[0], out, sizeof out - 1);
    close(fds[0]);
    waitpid(pid, &status, 0);
    posix_spawn_file_actions_destroy(&fa);
    if (got <= 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        bench_die("bare consumer", "failed");
    if (sscanf(out, "records=%llu bytes=%llu seconds=%lf cpu=%lf", &rec, &bytes, &secs, &cpu) != 4)
        bench_die("bare consumer output", out);
    /* its timed span, and this process meanwhile: the broker serving it (and its connect) */
    *cpu_s = cpu + bench_cpu_seconds(RUSAGE_SELF) - self0;
    *records = rec;
    free(ranges);
    free(argv);
    return secs;
}

void bench_work_measure(const char *evidence, const char *topic, const struct bench_range *rg,
                        int n, int reps, struct bench_work *out)
{
    uint8_t digest[WS_HASH_LEN];
    size_t len, zbytes = 0;
    uint8_t *s = load_stream(evidence, &len, &out->records, digest);

    if (reps < 1 || out->records == 0)
        bench_die("work floor", "nothing to measure (no runs, or an empty window)");
    out->hash_s = out->lz4_s = -1;
    for (int r = 0; r < reps; r++) {
        double h = hash_once(s, len, topic, rg, n, digest), z = lz4_once(s, len, &zbytes);

        if (out->hash_s < 0 || h < out->hash_s)
            out->hash_s = h;
        if (out->lz4_s < 0 || z < out->lz4_s)
            out->lz4_s = z;
    }
    out->stream_bytes = len;
    out->evidence_bytes = zbytes;
    memcpy(out->stream_digest, digest, sizeof out->stream_digest);
    free(s);
}

double bench_work_floor(const struct bench_work *w, double read_cpu_s, double read_wall_s,
                        long *ncpu)
{
    long nc = sysconf(_SC_NPROCESSORS_ONLN);
    double spread;

    *ncpu = nc > 0 ? nc : 1;
    spread = (read_cpu_s + w->hash_s + w->lz4_s) / (double)*ncpu;
    return spread > read_wall_s ? spread : read_wall_s;
}

void bench_work_print(const struct bench_work *w, double read_cpu_s, double read_wall_s,
                      const char *read_name, double base_wall_s, double target)
{
    long ncpu;
    double floor_s = bench_work_floor(w, read_cpu_s, read_wall_s, &ncpu);
    double best = base_wall_s / floor_s;

    printf("work floor (the same window's evidence, one thread each, best of runs): hashing %.0f "
           "ms, LZ4 %.0f ms (%.0f and %.0f ns a record; %.1f MB of stream, %.1f MB of evidence); "
           "%s read it in %.0f ms with %.0f ms of CPU; %.0f ms of CPU over %ld cores: no attester "
           "reading with librdkafka takes less than %.0f ms here, ratio at most %.2f (target %.2f "
           "%s on this machine)\n",
           w->hash_s * 1e3, w->lz4_s * 1e3, w->hash_s * 1e9 / (double)w->records,
           w->lz4_s * 1e9 / (double)w->records, (double)w->stream_bytes / 1e6,
           (double)w->evidence_bytes / 1e6, read_name, read_wall_s * 1e3, read_cpu_s * 1e3,
           (read_cpu_s + w->hash_s + w->lz4_s) * 1e3, ncpu, floor_s * 1e3, best, target,
           best >= target ? "not ruled out" : "ruled out");
}
