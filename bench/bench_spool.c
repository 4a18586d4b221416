/*
 * bench_spool.c — a big window's evidence into the spool: written and made durable, against the
 * plainest durable writer of the same bytes in the same directory, in the same run (issue 15).
 *
 *   bench_spool [--quick] [MIB]      MIB of evidence a round (default 64), 9 rounds (--quick: 5)
 *
 * The bytes are incompressible (already-compressed payloads: Avro or Parquet pages, images), so
 * the evidence is as big as the window stream: the case where the spool's write path, not LZ4,
 * sets what a big window costs. Fed in 64 KiB writes, as the LZ4 writer hands its output on.
 * Per round, timed from the file's creation to the file durable under its final name:
 *   spool, io_uring   ws_spool_begin / ws_spool_write / ws_spool_commit, then the fsync of its
 *                     directory (in the engine the envelope's commit does that one), spool.io_uring auto
 *                     (the engine's default; the row says so if the kernel refuses a ring)
 *   spool, syscalls   the same with spool.io_uring off (pwrite, fsync)
 *   baseline          write() of the same bytes to a new file in 128 KiB calls, fdatasync,
 *                     rename, fsync of the directory: what a program that only wants the bytes
 *                     durable does
 * with "commit" the wait from the last byte handed over to durable (for the spool: the fsync the
 * window waits for before its statement can be spooled, spool.c "Write path"), and the CPU of
 * the process in the round (the kernel's io_uring workers, iou-wrk, are threads of it). Medians.
 * Ratio = baseline time / spool time (higher is better). Prints a `TABLE<TAB>...` line.
 */
#include "bench/lib/benchlib.h"
#include "disk/disk.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define FEED (64u << 10)
#define RAW_WRITE (128u << 10)
#define ROUNDS_MAX 9

struct round {
    double total, commit, cpu;
};

static struct round med(struct round *r, int n)
{
    double t[ROUNDS_MAX], c[ROUNDS_MAX], u[ROUNDS_MAX];

    for (int i = 0; i < n; i++) {
        t[i] = r[i].total;
        c[i] = r[i].commit;
        u[i] = r[i].cpu;
    }
    return (struct round){bench_median(t, n), bench_median(c, n), bench_median(u, n)};
}

/* One evidence of mib MiB through a spool opened with mode; dies on any failure. */
static struct round spool_round(const char *dir, enum ws_io_mode mode, const uint8_t *data,
                                size_t mib, int64_t batch, bool *uring)
{
    char errbuf[512];
    struct ws_spool *s;
    struct ws_spool_file *f;
    const char *path;
    struct round r;

    if (ws_spool_open(dir, mode, 1ull << 40, &s, errbuf, sizeof errbuf))
        bench_die("spool", errbuf);
    *uring = ws_spool_uses_io_uring(s);
    double t0 = bench_now_ms(), c0 = bench_cpu_seconds(RUSAGE_SELF); /* the file's creation too */
    if (ws_spool_begin(s, "bench", batch, &f, errbuf, sizeof errbuf))
        bench_die("spool begin", errbuf);
    for (size_t i = 0; i < mib * (1048576 / FEED); i++)
        if (ws_spool_write(f, data + (i % (1048576 / FEED)) * FEED, FEED))
            bench_die("spool write", "refused (disk full?)");
    double t1 = bench_now_ms();
    if (ws_spool_commit(f, &path, errbuf, sizeof errbuf))
        bench_die("spool commit", errbuf);
    /* the rename durable too, as the baseline's: in the engine the envelope's commit into the
     * same directory does this fsync (spool.c), here it is done by hand */
    {
        char qdir[600];
        int dfd;
        snprintf(qdir, sizeof qdir, "%s/bench", dir);
        if ((dfd = open(qdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 || fsync(dfd) || close(dfd))
            bench_die("spool directory fsync", strerror(errno));
    }
    r.commit = bench_now_ms() - t1;
    r.total = bench_now_ms() - t0;
    r.cpu = (bench_cpu_seconds(RUSAGE_SELF) - c0) * 1e3;
    ws_spool_file_free(f);
    ws_spool_remove(s, "bench", batch);
    ws_spool_close(s);
    return r;
}

static struct round raw_round(const char *dir, const uint8_t *data, size_t mib, int n)
{
    char tmp[512], fin[512];
    struct round r;
    int fd, dfd;

    snprintf(tmp, sizeof tmp, "%s/raw%d.tmp", dir, n);
    snprintf(fin, sizeof fin, "%s/raw%d", dir, n);
    double t0 = bench_now_ms(), c0 = bench_cpu_seconds(RUSAGE_SELF);
    if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0)
        bench_die("open", strerror(errno));
    for (size_t i = 0; i < mib * (1048576 / RAW_WRITE); i++) {
        const uint8_t *p = data + (i % (1048576 / RAW_WRITE)) * RAW_WRITE;
        for (size_t done = 0; done < RAW_WRITE;) {
            ssize_t k = write(fd, p + done, RAW_WRITE - done);
            if (k <= 0)
                bench_die("write", k < 0 ? strerror(errno) : "no progress");
            done += (size_t)k;
        }
    }
    double t1 = bench_now_ms();
    if (fdatasync(fd) || close(fd) || rename(tmp, fin))
        bench_die("fdatasync/rename", strerror(errno));
    if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 || fsync(dfd) || close(dfd))
        bench_die("directory fsync", strerror(errno));
    r.commit = bench_now_ms() - t1;
    r.total = bench_now_ms() - t0;
    r.cpu = (bench_cpu_seconds(RUSAGE_SELF) - c0) * 1e3;
    unlink(fin);
    return r;
}

int main(int argc, char **argv)
{
    bool quick = false, uring = false, plain_uring;
    size_t mib = 64;
    char dir[] = "/tmp/ws_bench_spool_XXXXXX", sdir[600], pdir[600], cmd[700];
    struct round ru[ROUNDS_MAX], rp[ROUNDS_MAX], rb[ROUNDS_MAX];
    uint8_t *data;

    bench_prog = "bench_spool";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick"))
            quick = true;
        else if (atol(argv[i]) > 0)
            mib = (size_t)atol(argv[i]);
        else
            return fprintf(stderr, "usage: bench_spool [--quick] [MIB]\n"), 2;
    }
    int n = quick ? 5 : ROUNDS_MAX;
    if (!mkdtemp(dir) || !(data = malloc(1048576)))
        bench_die("setup", strerror(errno));
    for (size_t i = 0, x = 88172645463325252ull; i < 1048576; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift: no byte pattern for LZ4 to find */
        data[i] = (uint8_t)(x >> 24);
    }
    snprintf(sdir, sizeof sdir, "%s/uring", dir);
    snprintf(pdir, sizeof pdir, "%s/plain", dir);
    ws_log_setup("warn", "logfmt");
    /* interleaved, so that a busy moment of the host falls on all three alike */
    for (int i = 0; i < n; i++) {
        ru[i] = spool_round(sdir, WS_IO_AUTO, data, mib, i, &uring);
        rp[i] = spool_round(pdir, WS_IO_OFF, data, mib, i, &plain_uring);
        rb[i] = raw_round(dir, data, mib, i);
    }
    struct round mu = med(ru, n), mp = med(rp, n), mb = med(rb, n);
    printf(
        "%zu MiB of incompressible evidence, written in 64 KiB pieces and made durable under its "
        "final name;\nmedians of %d rounds, ms\n\n",
        mib, n);
    printf("%-34s %9s %9s %9s %9s\n", "", "total", "commit", "CPU", "MB/s");
    printf("%-34s %9.1f %9.1f %9.1f %9.0f\n", uring ? "spool, io_uring" : "spool, auto (no ring)",
           mu.total, mu.commit, mu.cpu, mib * 1.048576e3 / mu.total);
    printf("%-34s %9.1f %9.1f %9.1f %9.0f\n", "spool, syscalls", mp.total, mp.commit, mp.cpu,
           mib * 1.048576e3 / mp.total);
    printf("%-34s %9.1f %9.1f %9.1f %9.0f\n", "write() + fdatasync (baseline)", mb.total, mb.commit,
           mb.cpu, mib * 1.048576e3 / mb.total);
    printf("TABLE\tspool: %zu MiB of incompressible evidence written and durable (%s)\t%.1f ms "
           "(%.1f ms waiting at commit), %.0f ms of CPU; with syscalls %.1f ms (%.1f), %.0f ms\t"
           "write() + fdatasync %.1f ms (%.1f), %.0f ms of CPU\t%.2f\t-\t-\n",
           mib, uring ? "io_uring" : "no ring: syscalls", mu.total, mu.commit, mu.cpu, mp.total,
           mp.commit, mp.cpu, mb.total, mb.commit, mb.cpu, mb.total / mu.total);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    free(data);
    return 0;
}
