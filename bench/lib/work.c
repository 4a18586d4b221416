/*
 * work.c — the floor of a window (issue 15): the work any attester must add to reading the
 * records, measured on the engine's own evidence of the window, in the same run.
 *
 * Reading a window's records costs what the row's baseline (a bare consumer, kcat) spends: its
 * CPU, broker included. An attester must also hash the window stream (leaf encoding, Merkle
 * tree, stream digest: the engine's hashing stage, order checks included) and compress it into
 * the LZ4 evidence (SPEC 3.3). This file measures those two on one thread each, on exactly the
 * window the engine attested: its evidence archive is decompressed into memory (untimed), then
 *   hashing  ws_window_add_encoded per frame, as the engine's hasher thread does;
 *   LZ4      ws_evidence_write of the stream in 128 KiB pieces into a discarding sink, as the
 *            engine's compressor thread does;
 * thread CPU time, the best of `reps` runs each (a floor takes the least). The hashing run's
 * stream digest must equal the archive's, or the measure is of something else: die.
 *
 * bench_work_floor turns it into the shortest time the window can take on this machine: the
 * baseline's CPU plus this work, spread perfectly over every core, and never less than the
 * baseline's own time (the records cannot be read faster than the baseline reads them). The
 * ratio target of a row is out of reach on this machine when baseline / floor is below it,
 * for any attester that reads the records as the baseline does (librdkafka, the same broker),
 * whatever its design. Optimistic by construction: no hand-off, no encoding, no spool, no
 * signing, no sink, no commit is counted, and the two stages are timed alone, without the
 * cache and core sharing they meet beside the reader.
 */
#include "bench/lib/benchlib.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PIECE (128u << 10) /* what the engine hands its compressor at once (hasher.c) */

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
    double t0;

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
    t0 = thread_cpu_s() - t0;
    if (memcmp(res.stream_digest, want, WS_HASH_LEN) != 0)
        bench_die("work floor", "the stream digest differs from the evidence's");
    ws_window_destroy(w);
    return t0;
}

static double lz4_once(const uint8_t *s, size_t len, size_t *out_bytes)
{
    struct ws_evidence_writer *ew;
    double t0;

    *out_bytes = 0;
    if (!(ew = ws_evidence_writer_new(discard, out_bytes, 0)))
        bench_die("evidence writer", "out of memory");
    t0 = thread_cpu_s();
    for (size_t at = 0; at < len; at += PIECE)
        if (ws_evidence_write(ew, s + at, len - at < PIECE ? len - at : PIECE))
            bench_die("evidence writer", "write failed");
    if (ws_evidence_finish(ew))
        bench_die("evidence writer", "finish failed");
    t0 = thread_cpu_s() - t0;
    ws_evidence_writer_destroy(ew);
    return t0;
}

void bench_work_measure(const char *evidence, const char *topic, const struct bench_range *rg,
                        int n, int reps, struct bench_work *out)
{
    uint8_t digest[WS_HASH_LEN];
    size_t len, zbytes = 0;
    uint8_t *s = load_stream(evidence, &len, &out->records, digest);

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
    free(s);
}

double bench_work_floor(const struct bench_work *w, double base_cpu_s, double base_wall_s,
                        long *ncpu)
{
    long nc = sysconf(_SC_NPROCESSORS_ONLN);
    double spread;

    *ncpu = nc > 0 ? nc : 1;
    spread = (base_cpu_s + w->hash_s + w->lz4_s) / (double)*ncpu;
    return spread > base_wall_s ? spread : base_wall_s;
}

void bench_work_print(const struct bench_work *w, double base_cpu_s, double base_wall_s,
                      const char *base_name, double target)
{
    long ncpu;
    double floor_s = bench_work_floor(w, base_cpu_s, base_wall_s, &ncpu);
    double best = base_wall_s / floor_s;

    printf("work floor (the same window's evidence, one thread each, best of runs): hashing %.0f "
           "ms, LZ4 %.0f ms (%.0f and %.0f ns a record, %.1f MB of stream); with %s's %.0f ms of "
           "CPU, %.0f ms over %ld cores: no attester reading as it does takes less than %.0f ms "
           "here, ratio at most %.2f (target %.2f %s on this machine)\n",
           w->hash_s * 1e3, w->lz4_s * 1e3, w->hash_s * 1e9 / (double)w->records,
           w->lz4_s * 1e9 / (double)w->records, (double)w->stream_bytes / 1e6, base_name,
           base_cpu_s * 1e3, (base_cpu_s + w->hash_s + w->lz4_s) * 1e3, ncpu, floor_s * 1e3, best,
           target, best >= target ? "within reach" : "out of reach");
}
