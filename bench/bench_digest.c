/*
 * bench_digest.c — output-file digests: the engine's path against the usual tools, same files,
 * same run.
 *
 * Two file sets in a fresh directory (default under /tmp, i.e. on the local disk here):
 *   big    64 files x 16 MiB (1 GiB)
 *   small  10 000 files x 1 KiB
 * Each set is hashed warm (page cache filled by an untimed pass first) and cold (every file's
 * pages dropped with posix_fadvise(DONTNEED) before each repetition; the files are fsynced at
 * creation so their pages are clean and really go). Methods:
 *
 *   engine io_uring   ws_outputs_hash as the engine calls it (io_uring, up to 2 workers)
 *   engine read()     the same with spool.io_uring=off (plain read() workers)
 *   sha256sum         coreutils, one process, every file on its command line
 *   openssl dgst      `openssl dgst -sha256` likewise
 *   read+sha 1T       a plain read() (128 KiB) + SHA-256 (OpenSSL, via ws_sha256) loop, 1 thread
 *   read+sha 2T       the same loop on 2 threads taking files from a shared counter
 *
 * Reported: the median of the repetitions, GB/s (10^9 bytes of file content per second), and
 * ratios against sha256sum and openssl dgst measured in the same run. The engine's digests are
 * checked against the plain loop's before anything is timed.
 *
 * Usage: bench_digest [DIR] [warm-reps] [cold-reps]   (default /tmp, 5, 3). Release build.
 */
#include "disk/disk.h"

#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

struct set {
    const char *label;
    size_t nfiles, size;
    char **paths;
    uint8_t (*digests)[WS_HASH_LEN]; /* reference: the plain loop's */
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void make_set(struct set *s, const char *dir)
{
    uint8_t *buf = malloc(1 << 20);
    uint32_t x = 2463534242u;
    char sub[PATH_MAX];

    snprintf(sub, sizeof sub, "%s/%s", dir, s->label);
    mkdir(sub, 0755);
    s->paths = calloc(s->nfiles, sizeof *s->paths);
    s->digests = calloc(s->nfiles, sizeof *s->digests);
    for (size_t i = 0; i < s->nfiles; i++) {
        char p[PATH_MAX];
        int fd;
        snprintf(p, sizeof p, "%s/f%05zu.bin", sub, i);
        s->paths[i] = strdup(p);
        fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0) {
            perror(p);
            exit(1);
        }
        for (size_t left = s->size; left;) {
            size_t n = left < (1 << 20) ? left : (1 << 20);
            for (size_t k = 0; k < n; k += 4) {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                memcpy(buf + k, &x, 4);
            }
            if (write(fd, buf, n) != (ssize_t)n) {
                perror("write");
                exit(1);
            }
            left -= n;
        }
        fsync(fd); /* clean pages, so that DONTNEED really drops them */
        close(fd);
    }
    free(buf);
}

static void drop_cache(const struct set *s)
{
    for (size_t i = 0; i < s->nfiles; i++) {
        int fd = open(s->paths[i], O_RDONLY);
        if (fd >= 0) {
            posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
            close(fd);
        }
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Methods                                                                                      */

struct loop_ctx {
    const struct set *s;
    atomic_size_t next;
    bool keep; /* store digests as the reference */
};

static void *loop_worker(void *arg)
{
    struct loop_ctx *c = arg;
    uint8_t *buf = malloc(128 << 10);
    size_t i;

    while ((i = atomic_fetch_add(&c->next, 1)) < c->s->nfiles) {
        struct ws_sha256 h;
        uint8_t d[WS_HASH_LEN];
        int fd = open(c->s->paths[i], O_RDONLY | O_CLOEXEC);
        ssize_t n;
        if (fd < 0)
            continue;
        ws_sha256_init(&h);
        while ((n = read(fd, buf, 128 << 10)) > 0)
            ws_sha256_update(&h, buf, (size_t)n);
        close(fd);
        ws_sha256_final(&h, d);
        if (c->keep)
            memcpy(c->s->digests[i], d, WS_HASH_LEN);
    }
    free(buf);
    return NULL;
}

static void run_loop(const struct set *s, int threads, bool keep)
{
    struct loop_ctx c = {.s = s, .keep = keep};
    pthread_t th[8];

    atomic_init(&c.next, 0);
    for (int t = 1; t < threads; t++)
        pthread_create(&th[t], NULL, loop_worker, &c);
    loop_worker(&c);
    for (int t = 1; t < threads; t++)
        pthread_join(th[t], NULL);
}

static struct ws_notification notif_for(const struct set *s, struct ws_notif_output *o)
{
    struct ws_notification n = {0};

    o->name = (char *)"bench";
    o->files = s->paths;
    o->nfiles = s->nfiles;
    n.outputs = o;
    n.noutputs = 1;
    return n;
}

static bool run_engine(const struct set *s, struct ws_spool *spool, bool check)
{
    struct ws_notif_output o = {0};
    struct ws_notification n = notif_for(s, &o);
    struct ws_output_set out;
    char errbuf[256];
    bool ok = true;

    if (ws_outputs_hash(&n, NULL, 0, spool, &out, errbuf, sizeof errbuf)) {
        fprintf(stderr, "ws_outputs_hash: %s\n", errbuf);
        exit(1);
    }
    for (size_t i = 0; check && i < s->nfiles; i++) {
        const struct ws_out_file *f = &out.outputs[0].files[i];
        if (!f->has_digest || memcmp(f->sha256, s->digests[i], WS_HASH_LEN) != 0 ||
            f->bytes != (int64_t)s->size) {
            fprintf(stderr, "engine digest of %s differs: %s\n", f->name,
                    f->error ? f->error : "wrong digest");
            ok = false;
        }
    }
    ws_outputs_free(&out);
    return ok;
}

static void run_tool(const struct set *s, const char *const *pre, int npre)
{
    char **argv = calloc(s->nfiles + (size_t)npre + 1, sizeof *argv);
    posix_spawn_file_actions_t fa;
    pid_t pid;
    int status;

    for (int i = 0; i < npre; i++)
        argv[i] = (char *)pre[i];
    for (size_t i = 0; i < s->nfiles; i++)
        argv[npre + (int)i] = s->paths[i];
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    if (posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ) != 0) {
        perror(argv[0]);
        exit(1);
    }
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status)) {
        fprintf(stderr, "%s failed\n", argv[0]);
        exit(1);
    }
    posix_spawn_file_actions_destroy(&fa);
    free(argv);
}

enum method { M_ENGINE_URING, M_ENGINE_READ, M_SHA256SUM, M_OPENSSL, M_LOOP1, M_LOOP2, NMETHOD };
static const char *const mname[NMETHOD] = {"engine io_uring", "engine read()", "sha256sum",
                                           "openssl dgst",    "read+sha 1T",   "read+sha 2T"};

static struct ws_spool *spool_on, *spool_off;

static void run_method(enum method m, const struct set *s)
{
    static const char *const sha[] = {"sha256sum", "--"};
    static const char *const ossl[] = {"openssl", "dgst", "-sha256"};

    switch (m) {
    case M_ENGINE_URING:
        run_engine(s, spool_on, false);
        break;
    case M_ENGINE_READ:
        run_engine(s, spool_off, false);
        break;
    case M_SHA256SUM:
        run_tool(s, sha, 2);
        break;
    case M_OPENSSL:
        run_tool(s, ossl, 3);
        break;
    case M_LOOP1:
        run_loop(s, 1, false);
        break;
    case M_LOOP2:
        run_loop(s, 2, false);
        break;
    default:
        break;
    }
}

static double measure(enum method m, const struct set *s, bool cold, int reps)
{
    double t[32];

    if (reps > 32)
        reps = 32;
    if (!cold)
        run_method(m, s); /* fill the cache (and warm the code) */
    for (int r = 0; r < reps; r++) {
        double t0;
        if (cold)
            drop_cache(s);
        t0 = now();
        run_method(m, s);
        t[r] = now() - t0;
    }
    qsort(t, (size_t)reps, sizeof t[0], cmp_double);
    return t[reps / 2];
}

int main(int argc, char **argv)
{
    const char *root = argc > 1 ? argv[1] : "/tmp";
    int warm_reps = argc > 2 ? atoi(argv[2]) : 5, cold_reps = argc > 3 ? atoi(argv[3]) : 3;
    struct set sets[2] = {{"64x16MiB", 64, 16u << 20, NULL, NULL},
                          {"10000x1KiB", 10000, 1024, NULL, NULL}};
    char dir[PATH_MAX], sp[PATH_MAX + 16], errbuf[512];
    bool ok = true;

    ws_log_setup("error", NULL);
    snprintf(dir, sizeof dir, "%s/ws-bench-digest-XXXXXX", root);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(sp, sizeof sp, "%s/spool-on", dir);
    if (ws_spool_open(sp, WS_IO_ON, 1ull << 30, &spool_on, errbuf, sizeof errbuf)) {
        fprintf(stderr, "io_uring unavailable: %s\n", errbuf);
        return 77;
    }
    snprintf(sp, sizeof sp, "%s/spool-off", dir);
    if (ws_spool_open(sp, WS_IO_OFF, 1ull << 30, &spool_off, errbuf, sizeof errbuf)) {
        fprintf(stderr, "%s\n", errbuf);
        return 1;
    }
    printf("bench_digest: files under %s, %ld online CPUs, median of %d warm / %d cold runs\n", dir,
           sysconf(_SC_NPROCESSORS_ONLN), warm_reps, cold_reps);
    for (int k = 0; k < 2; k++) {
        make_set(&sets[k], dir);
        run_loop(&sets[k], 1, true);
        ok &= run_engine(&sets[k], spool_on, true);
        ok &= run_engine(&sets[k], spool_off, true);
    }
    if (!ok) {
        fprintf(stderr, "engine digests disagree with the plain loop: not timing\n");
        return 1;
    }
    printf("\n| set | cache | method | s | GB/s | files/s | vs sha256sum | vs openssl |\n");
    printf("|---|---|---|---:|---:|---:|---:|---:|\n");
    for (int k = 0; k < 2; k++) {
        for (int cold = 0; cold < 2; cold++) {
            double t[NMETHOD];
            double bytes = (double)sets[k].nfiles * (double)sets[k].size;
            for (int m = 0; m < NMETHOD; m++)
                t[m] = measure((enum method)m, &sets[k], cold, cold ? cold_reps : warm_reps);
            for (int m = 0; m < NMETHOD; m++)
                printf("| %s | %s | %s | %.3f | %.2f | %.0f | %.2fx | %.2fx |\n", sets[k].label,
                       cold ? "cold" : "warm", mname[m], t[m], bytes / t[m] / 1e9,
                       (double)sets[k].nfiles / t[m], t[M_SHA256SUM] / t[m], t[M_OPENSSL] / t[m]);
            fflush(stdout);
        }
    }
    ws_spool_close(spool_on);
    ws_spool_close(spool_off);
    snprintf(sp, sizeof sp, "rm -rf '%s'", dir);
    if (system(sp) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return 0;
}
