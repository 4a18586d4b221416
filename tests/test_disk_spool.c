/*
 * test_disk_spool.c — the local spool (disk/spool.c): durable, atomic, bounded.
 *
 * The reference for "what a spool file holds" is the input itself, generated from a seeded PRNG
 * and fed in chunks of awkward sizes; the io_uring and plain-syscall backends are each compared
 * with it and with each other. Covered:
 *   - both backends write byte-identical files (raw stream, LZ4 evidence, envelope, and a
 *     window committed the engine's way: the evidence's fsync started, then
 *     ws_spool_commit_with_envelope; found again by the resume lookup);
 *   - several threads writing and removing windows of one spool at once (the engine's build
 *     workers): every file exactly its input, the byte count exact afterwards;
 *   - nothing is visible under the final name before commit, nothing at all after abort;
 *   - the byte count, the bound (ws_spool_full) and the resume lookup;
 *   - temporary files of a crashed run are removed at open;
 *   - recycling: a delivered window's files go to <spool>/.free emptied, and the next files are
 *     those inodes again with exactly their own bytes; a file a file sink hard-linked is never
 *     recycled (its linked copy keeps its bytes while later windows are written); .free is
 *     emptied at open (a full file left there by a kill too) and not counted; while another
 *     process shares the spool nothing is emptied (its open file keeps its bytes); a symlink
 *     put in place of .free is not followed (the directory it names keeps its file);
 *   - spool.io_uring=on when the kernel refuses io_uring (a seccomp filter in a child) is an
 *     error naming io_uring, and auto falls back;
 *   - a 2 MiB tmpfs: ENOSPC becomes WS_ERR_NOSPACE, no partial file, ws_spool_full() reflects
 *     both the byte bound and the full disk, and an envelope that does not fit beside an
 *     evidence whose fsync is in flight leaves neither file. This part needs mount(2) in a private mount
 *     namespace (root in CI); without it every other check still runs and the program exits 77.
 */
#include "disk/disk.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

#define QID "q-0123.test_A"

static char base[256];

static uint64_t rng_state;
static uint8_t rnd8(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint8_t)(rng_state >> 24);
}

static uint8_t *make_data(size_t len, uint64_t seed)
{
    uint8_t *p = malloc(len ? len : 1);

    rng_state = seed;
    for (size_t i = 0; i < len; i++)
        p[i] = (i % 4096 < 2048) ? rnd8() : (uint8_t)(i / 4096); /* half noise, half runs */
    return p;
}

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *p = NULL;
    long n;

    *len = 0;
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    p = malloc(n > 0 ? (size_t)n : 1);
    if (p && n > 0 && fread(p, 1, (size_t)n, f) != (size_t)n) {
        free(p);
        p = NULL;
    }
    fclose(f);
    if (p)
        *len = (size_t)n;
    return p;
}

static bool exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static void rm_rf(const char *path)
{
    char cmd[PATH_MAX + 32];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0)
        fprintf(stderr, "warning: could not remove %s\n", path);
}

/* Regular files under dir (two levels, like the spool) whose name ends in suffix. */
static int count_files(const char *dir, const char *suffix)
{
    char sub[PATH_MAX];
    struct dirent *de, *de2;
    DIR *d = opendir(dir), *d2;
    int n = 0;

    if (!d)
        return 0;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        snprintf(sub, sizeof sub, "%s/%s", dir, de->d_name);
        if (!(d2 = opendir(sub)))
            continue;
        while ((de2 = readdir(d2))) {
            size_t l = strlen(de2->d_name), sl = strlen(suffix);
            if (l >= sl && strcmp(de2->d_name + l - sl, suffix) == 0)
                n++;
        }
        closedir(d2);
    }
    closedir(d);
    return n;
}

/* Feed data in chunks of varying size: 1 byte, odd sizes, exactly a block, more than a block. */
static ws_err_t feed(struct ws_spool_file *f, const uint8_t *p, size_t len)
{
    static const size_t sizes[] = {1, 7, 4096, 65535, 262144, 1 << 20, 3, 300001, 262143};
    size_t off = 0;
    ws_err_t err = WS_OK;

    for (unsigned i = 0; off < len && !err; i++) {
        size_t n = sizes[i % (sizeof sizes / sizeof sizes[0])];
        if (n > len - off)
            n = len - off;
        err = ws_spool_write(f, p + off, n);
        off += n;
    }
    return err;
}

static bool uring_available(void)
{
    struct ws_spool *s = NULL;
    char dir[PATH_MAX], errbuf[512];
    bool ok;

    snprintf(dir, sizeof dir, "%s/probe", base);
    if (ws_spool_open(dir, WS_IO_ON, 1ull << 30, &s, errbuf, sizeof errbuf))
        return false;
    ok = ws_spool_uses_io_uring(s);
    ws_spool_close(s);
    rm_rf(dir);
    return ok;
}

/* ------------------------------------------------------------------------------------------ */

/* Write one window (raw stream + LZ4 evidence via the engine's writer + envelope) in `mode`. */
static void write_window(enum ws_io_mode mode, const char *dir, int64_t batch, const uint8_t *data,
                         size_t len)
{
    struct ws_spool *s = NULL;
    struct ws_spool_file *f = NULL;
    struct ws_evidence_writer *ew;
    char errbuf[512], path[PATH_MAX];
    const char *committed = NULL;

    CHECK(ws_spool_open(dir, mode, 1ull << 40, &s, errbuf, sizeof errbuf) == WS_OK);
    if (!s)
        return;
    CHECK(ws_spool_uses_io_uring(s) == (mode == WS_IO_ON));
    /* batch: raw bytes as the evidence file */
    CHECK(ws_spool_begin(s, QID, batch, &f, errbuf, sizeof errbuf) == WS_OK);
    CHECK(feed(f, data, len) == WS_OK);
    ws_spool_path(s, QID, batch, ".evidence.lz4", path);
    CHECK(!exists(path)); /* not visible before commit */
    CHECK(ws_spool_commit(f, &committed, errbuf, sizeof errbuf) == WS_OK);
    CHECK(committed && strcmp(committed, path) == 0);
    ws_spool_file_free(f);
    CHECK(exists(path));
    /* batch+1: the same data through the LZ4 evidence writer, as the engine does */
    CHECK(ws_spool_begin(s, QID, batch + 1, &f, errbuf, sizeof errbuf) == WS_OK);
    ew = ws_evidence_writer_new(ws_spool_write, f, 0);
    CHECK(ew != NULL);
    if (ew) {
        for (size_t off = 0; off < len; off += 100000)
            CHECK(ws_evidence_write(ew, data + off, len - off < 100000 ? len - off : 100000) ==
                  WS_OK);
        CHECK(ws_evidence_finish(ew) == WS_OK);
        ws_evidence_writer_destroy(ew);
    }
    CHECK(ws_spool_commit(f, &committed, errbuf, sizeof errbuf) == WS_OK);
    ws_spool_file_free(f);
    CHECK(ws_spool_put_envelope(s, QID, batch + 1, (const char *)data, 5000, errbuf,
                                sizeof errbuf) == WS_OK);
    /* batch+2: the engine's path, the evidence's fsync started before its envelope is written */
    CHECK(ws_spool_begin(s, QID, batch + 2, &f, errbuf, sizeof errbuf) == WS_OK);
    CHECK(feed(f, data, len) == WS_OK);
    ws_spool_sync_start(f);
    ws_spool_sync_start(f); /* twice: no-op */
    ws_spool_path(s, QID, batch + 2, ".evidence.lz4", path);
    CHECK(!exists(path)); /* started is not committed */
    committed = NULL;
    CHECK(ws_spool_commit_with_envelope(f, QID, batch + 2, (const char *)data + 1, 4000, &committed,
                                        errbuf, sizeof errbuf) == WS_OK);
    CHECK(committed && strcmp(committed, path) == 0);
    ws_spool_file_free(f);
    {
        struct ws_spool_window win;
        CHECK(ws_spool_lookup(s, QID, batch + 2, &win, errbuf, sizeof errbuf) == WS_OK);
        CHECK(win.envelope_len == 4000 && win.evidence_bytes == len &&
              strcmp(win.evidence_path, path) == 0);
        ws_spool_window_free(&win);
    }
    ws_spool_close(s);
}

static void test_backends_identical(bool have_uring)
{
    char on[300], off[300], a[600], b[600], cmd[2000];
    const char *sfx[] = {".evidence.lz4", ".evidence.lz4", ".dsse.json", ".evidence.lz4",
                         ".dsse.json"};
    const int64_t batch[] = {7, 8, 8, 9, 9};
    size_t len = 3 * (1 << 20) + 12345, la, lb;
    uint8_t *data = make_data(len, 42), *pa, *pb;
    char name[256];

    snprintf(on, sizeof on, "%s/on", base);
    snprintf(off, sizeof off, "%s/off", base);
    if (have_uring)
        write_window(WS_IO_ON, on, 7, data, len);
    write_window(WS_IO_OFF, off, 7, data, len);
    for (int i = 0; i < 5; i++) {
        ws_object_name(QID, batch[i], sfx[i], name);
        snprintf(a, sizeof a, "%s/%s", on, name);
        snprintf(b, sizeof b, "%s/%s", off, name);
        pb = slurp(b, &lb);
        CHECK(pb != NULL);
        if (i == 0 || i == 3)
            CHECK(lb == len && pb && memcmp(pb, data, len) == 0); /* exactly the input */
        if (i == 4)
            CHECK(lb == 4000 && pb && memcmp(pb, data + 1, 4000) == 0);
        if (i == 2)
            CHECK(lb == 5000 && pb && memcmp(pb, data, 5000) == 0);
        if (i == 1) { /* the real lz4 CLI gives the input back */
            snprintf(cmd, sizeof cmd, "lz4 -dc '%s' | cmp -s - '%s/%s'", b, off,
                     (ws_object_name(QID, 7, ".evidence.lz4", name), name));
            CHECK(system(cmd) == 0);
        }
        if (have_uring) {
            ws_object_name(QID, batch[i], sfx[i], name);
            pa = slurp(a, &la);
            CHECK(pa && pb && la == lb && memcmp(pa, pb, la) == 0);
            free(pa);
        }
        free(pb);
    }
    /* no temporary file left behind by either backend */
    CHECK(count_files(on, ".tmp") == 0 && count_files(off, ".tmp") == 0);
    free(data);
}

/*
 * Writeback started ahead of the fsync (spool.c, start_writeback): a file of several MiB asks
 * for it as it grows, a small one never does, and either way the bytes are exactly the input
 * and survive a reopen (the hint changes nothing on disk).
 */
static void test_writeback(enum ws_io_mode mode)
{
    const size_t big = 3 * 1048576 + 12345, small = 100000;
    char dir[PATH_MAX], errbuf[512], path[PATH_MAX];
    struct ws_spool *s = NULL;
    struct ws_spool_stats st0, st1, st2;

    snprintf(dir, sizeof dir, "%s/writeback-%d", base, (int)mode);
    CHECK(ws_spool_open(dir, mode, 1ull << 40, &s, errbuf, sizeof errbuf) == WS_OK);
    if (!s)
        return;
    ws_spool_get_stats(s, &st0);
    for (int i = 0; i < 2; i++) {
        size_t len = i ? small : big, gl;
        uint8_t *data = make_data(len, 77 + (uint64_t)i), *got;
        struct ws_spool_file *f = NULL;
        const char *p;
        CHECK(ws_spool_begin(s, QID, i, &f, errbuf, sizeof errbuf) == WS_OK);
        CHECK(feed(f, data, len) == WS_OK);
        CHECK(ws_spool_commit(f, &p, errbuf, sizeof errbuf) == WS_OK);
        ws_spool_file_free(f);
        ws_spool_get_stats(s, i ? &st2 : &st1);
        ws_spool_path(s, QID, i, ".evidence.lz4", path);
        got = slurp(path, &gl);
        CHECK(got && gl == len && memcmp(got, data, len) == 0);
        free(got);
        free(data);
    }
    /*
     * 3 MiB + a bit, 128 KiB blocks: with syscalls writeback follows each block's end: at 1, 2
     * and 3 MiB. With io_uring it stops short of the block being submitted and of any still
     * queued (at most 3 blocks, 384 KiB, before it): once between 1 and 1.375 MiB, once more by
     * the last full block (2.875 MiB), never a third time.
     */
    CHECK(st1.writebacks == st0.writebacks + (mode == WS_IO_ON ? 2 : 3));
    CHECK(st2.writebacks == st1.writebacks); /* under 1 MiB: the fsync alone */
    ws_spool_close(s);
}

/* Empty evidence, exact block multiples and a 1-byte file: edges of the staging blocks. */
static void test_sizes(enum ws_io_mode mode)
{
    const size_t sizes[] = {0, 1, 4095, 4096, 262144, 262145, 4 * 262144, 5 * 262144 - 1};
    char dir[PATH_MAX], errbuf[512], path[PATH_MAX];
    struct ws_spool *s = NULL;
    uint64_t total = 0;

    snprintf(dir, sizeof dir, "%s/sizes-%d", base, (int)mode);
    CHECK(ws_spool_open(dir, mode, 1ull << 40, &s, errbuf, sizeof errbuf) == WS_OK);
    if (!s)
        return;
    for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        struct ws_spool_file *f = NULL;
        const char *p;
        uint8_t *data = make_data(sizes[i], 1000 + i), *got;
        size_t gl;
        CHECK(ws_spool_begin(s, QID, i, &f, errbuf, sizeof errbuf) == WS_OK);
        CHECK(feed(f, data, sizes[i]) == WS_OK);
        CHECK(ws_spool_commit(f, &p, errbuf, sizeof errbuf) == WS_OK);
        ws_spool_file_free(f);
        ws_spool_path(s, QID, i, ".evidence.lz4", path);
        got = slurp(path, &gl);
        CHECK(got && gl == sizes[i] && (gl == 0 || memcmp(got, data, gl) == 0));
        total += sizes[i];
        free(got);
        free(data);
    }
    CHECK(ws_spool_bytes(s) == total);
    ws_spool_close(s);
    /* a fresh open counts the same bytes from disk */
    CHECK(ws_spool_open(dir, mode, 1ull << 40, &s, errbuf, sizeof errbuf) == WS_OK);
    if (s) {
        CHECK(ws_spool_bytes(s) == total);
        ws_spool_close(s);
    }
}

static void test_abort_bound_lookup(enum ws_io_mode mode)
{
    char dir[PATH_MAX], errbuf[512], path[PATH_MAX], tmp[PATH_MAX + 8];
    struct ws_spool *s = NULL;
    struct ws_spool_file *f = NULL;
    struct ws_spool_window win;
    struct ws_spool_stats st;
    size_t len = (1 << 20) + 777;
    uint8_t *data = make_data(len, 9);
    const char *p;
    int fd;

    snprintf(dir, sizeof dir, "%s/bound-%d", base, (int)mode);
    CHECK(ws_spool_open(dir, mode, 1 << 20, &s, errbuf, sizeof errbuf) == WS_OK);
    if (!s) {
        free(data);
        return;
    }
    CHECK(!ws_spool_full(s) && ws_spool_bytes(s) == 0);
    /* abort: the temporary file goes, nothing under the final name, bytes back to 0 */
    CHECK(ws_spool_begin(s, QID, 1, &f, errbuf, sizeof errbuf) == WS_OK);
    CHECK(feed(f, data, len) == WS_OK);
    ws_spool_path(s, QID, 1, ".evidence.lz4", path);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    CHECK(exists(tmp) && !exists(path));
    CHECK(ws_spool_full(s)); /* over the bound while being written */
    ws_spool_file_free(f);
    CHECK(!exists(tmp) && !exists(path));
    CHECK(ws_spool_bytes(s) == 0 && !ws_spool_full(s));
    /* lookup: nothing, then evidence only (incomplete), then the complete window */
    CHECK(ws_spool_lookup(s, QID, 1, &win, errbuf, sizeof errbuf) == WS_ERR_NOT_FOUND);
    CHECK(ws_spool_begin(s, QID, 1, &f, errbuf, sizeof errbuf) == WS_OK);
    CHECK(feed(f, data, len) == WS_OK);
    CHECK(ws_spool_commit(f, &p, errbuf, sizeof errbuf) == WS_OK);
    ws_spool_file_free(f);
    CHECK(ws_spool_lookup(s, QID, 1, &win, errbuf, sizeof errbuf) == WS_ERR_NOT_FOUND);
    CHECK(ws_spool_put_envelope(s, QID, 1, "{\"payload\":\"x\"}", 15, errbuf, sizeof errbuf) ==
          WS_OK);
    CHECK(ws_spool_lookup(s, QID, 1, &win, errbuf, sizeof errbuf) == WS_OK);
    CHECK(win.envelope && win.envelope_len == 15 &&
          strcmp(win.envelope, "{\"payload\":\"x\"}") == 0);
    CHECK(strcmp(win.evidence_path, path) == 0 && win.evidence_bytes == len);
    ws_spool_window_free(&win);
    CHECK(ws_spool_lookup(s, "../etc", 1, &win, errbuf, sizeof errbuf) == WS_ERR_UNSAFE_ID);
    /* the bound: over 1 MiB held -> full; stats say so */
    CHECK(ws_spool_bytes(s) == len + 15 && ws_spool_full(s));
    ws_spool_get_stats(s, &st);
    CHECK(st.full && !st.disk_full && st.max_bytes == (1 << 20) && st.bytes == len + 15);
    CHECK(st.pauses >= 1 && st.io_uring == (mode == WS_IO_ON));
    /* rebuilding a window replaces its file and does not count it twice */
    CHECK(ws_spool_begin(s, QID, 1, &f, errbuf, sizeof errbuf) == WS_OK);
    CHECK(feed(f, data, 1000) == WS_OK);
    CHECK(ws_spool_commit(f, &p, errbuf, sizeof errbuf) == WS_OK);
    ws_spool_file_free(f);
    CHECK(ws_spool_bytes(s) == 1000 + 15 && !ws_spool_full(s));
    /* every sink holds it: removed, count back to 0 */
    ws_spool_remove(s, QID, 1);
    CHECK(!exists(path) && ws_spool_bytes(s) == 0 && !ws_spool_full(s));
    ws_spool_close(s);
    /* a crashed run's temporary file is removed at open and not counted */
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0 && write(fd, data, 4096) == 4096);
    if (fd >= 0)
        close(fd);
    CHECK(ws_spool_open(dir, mode, 1 << 20, &s, errbuf, sizeof errbuf) == WS_OK);
    CHECK(!exists(tmp));
    if (s) {
        CHECK(ws_spool_bytes(s) == 0);
        ws_spool_close(s);
    }
    free(data);
}

/* ------------------------------------------------------------------------------------------ */
/* io_uring refused by the kernel: a seccomp filter in a child makes io_uring_setup fail.       */

static int refuse_io_uring(void)
{
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {sizeof f / sizeof f[0], f};

    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return -1;
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}

static void test_refused(void)
{
    char dir[PATH_MAX];
    pid_t pid;
    int status = 0;

    snprintf(dir, sizeof dir, "%s/refused", base);
    fflush(NULL);
    pid = fork();
    if (pid == 0) {
        struct ws_spool *s = NULL;
        struct ws_spool_file *f = NULL;
        char errbuf[512];
        const char *p;
        int rc = 0;
        if (refuse_io_uring() < 0)
            _exit(10);
        if (ws_spool_open(dir, WS_IO_ON, 1 << 30, &s, errbuf, sizeof errbuf) != WS_ERR_CONFIG)
            rc |= 1;
        else if (!strstr(errbuf, "io_uring") || !strstr(errbuf, "on"))
            rc |= 2;
        if (ws_spool_open(dir, WS_IO_AUTO, 1 << 30, &s, errbuf, sizeof errbuf) != WS_OK)
            _exit(rc | 4);
        if (ws_spool_uses_io_uring(s))
            rc |= 8;
        if (ws_spool_begin(s, QID, 3, &f, errbuf, sizeof errbuf) || ws_spool_write(f, "abc", 3) ||
            ws_spool_commit(f, &p, errbuf, sizeof errbuf))
            rc |= 16;
        ws_spool_file_free(f);
        ws_spool_close(s);
        _exit(rc);
    }
    CHECK(pid > 0);
    if (pid > 0)
        CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    if (WIFEXITED(status) && WEXITSTATUS(status))
        fprintf(stderr, "refused: child status %d\n", WEXITSTATUS(status));
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* ------------------------------------------------------------------------------------------ */
/* A 2 MiB tmpfs                                                                                */

static void tmpfs_case(enum ws_io_mode mode, const char *mnt)
{
    char dir[PATH_MAX], errbuf[512], path[PATH_MAX];
    struct ws_spool *s = NULL;
    struct ws_spool_file *f = NULL;
    size_t len = (1 << 20) + (200 << 10); /* 1.2 MiB: one fits in 2 MiB, two do not */
    uint8_t *data = make_data(len, 77);
    const char *p;
    ws_err_t err;

    snprintf(dir, sizeof dir, "%s/spool-%d", mnt, (int)mode);
    CHECK(ws_spool_open(dir, mode, 1 << 20, &s, errbuf, sizeof errbuf) == WS_OK);
    if (!s) {
        free(data);
        return;
    }
    CHECK(ws_spool_uses_io_uring(s) == (mode == WS_IO_ON));
    /* batch 1 fits on the disk and takes the spool over its 1 MiB bound */
    CHECK(ws_spool_begin(s, QID, 1, &f, errbuf, sizeof errbuf) == WS_OK);
    CHECK(feed(f, data, len) == WS_OK);
    CHECK(ws_spool_commit(f, &p, errbuf, sizeof errbuf) == WS_OK);
    ws_spool_file_free(f);
    CHECK(ws_spool_full(s)); /* the byte bound */
    /* batch 2 does not fit: NOSPACE from a write or the commit, cleanly */
    f = NULL;
    err = ws_spool_begin(s, QID, 2, &f, errbuf, sizeof errbuf);
    CHECK(err == WS_OK);
    if (!err) {
        err = feed(f, data, len);
        if (!err)
            err = ws_spool_commit(f, &p, errbuf, sizeof errbuf);
        CHECK(err == WS_ERR_NOSPACE);
        CHECK(ws_spool_write(f, "x", 1) == WS_ERR_NOSPACE); /* sticky */
        ws_spool_file_free(f);
    }
    ws_spool_path(s, QID, 2, ".evidence.lz4", path);
    CHECK(!exists(path));
    CHECK(count_files(dir, ".tmp") == 0);
    CHECK(ws_spool_full(s));
    {
        struct ws_spool_stats st;
        ws_spool_get_stats(s, &st);
        CHECK(st.disk_full && st.nospace_errors >= 1);
    }
    /* the envelope of batch 1 does not fit either: no partial envelope */
    {
        size_t big = 900 << 10;
        uint8_t *env = make_data(big, 5);
        CHECK(ws_spool_put_envelope(s, QID, 1, (const char *)env, big, errbuf, sizeof errbuf) ==
              WS_ERR_NOSPACE);
        ws_spool_path(s, QID, 1, ".dsse.json", path);
        CHECK(!exists(path) && count_files(dir, ".tmp") == 0);
        /* nor with its evidence's fsync in flight (the engine's path): neither file appears */
        CHECK(ws_spool_begin(s, QID, 3, &f, errbuf, sizeof errbuf) == WS_OK);
        CHECK(feed(f, data, 1000) == WS_OK);
        ws_spool_sync_start(f);
        CHECK(ws_spool_commit_with_envelope(f, QID, 3, (const char *)env, big, &p, errbuf,
                                            sizeof errbuf) == WS_ERR_NOSPACE);
        ws_spool_file_free(f);
        ws_spool_path(s, QID, 3, ".evidence.lz4", path);
        CHECK(!exists(path));
        ws_spool_path(s, QID, 3, ".dsse.json", path);
        CHECK(!exists(path) && count_files(dir, ".tmp") == 0);
        free(env);
    }
    /* sinks caught up: batch 1 removed, room again, intake resumes; batch 2 now fits */
    ws_spool_remove(s, QID, 1);
    CHECK(!ws_spool_full(s) && ws_spool_bytes(s) == 0);
    CHECK(ws_spool_begin(s, QID, 2, &f, errbuf, sizeof errbuf) == WS_OK);
    CHECK(feed(f, data, 500000) == WS_OK);
    CHECK(ws_spool_commit(f, &p, errbuf, sizeof errbuf) == WS_OK);
    ws_spool_file_free(f);
    ws_spool_path(s, QID, 2, ".evidence.lz4", path);
    {
        size_t gl;
        uint8_t *got = slurp(path, &gl);
        CHECK(got && gl == 500000 && memcmp(got, data, gl) == 0);
        free(got);
    }
    ws_spool_remove(s, QID, 2);
    ws_spool_close(s);
    free(data);
}

/* Returns false if mounting is not permitted here. */
static bool test_tmpfs(bool have_uring)
{
    char mnt[PATH_MAX];

    if (unshare(CLONE_NEWNS) < 0) {
        fprintf(stderr, "tmpfs part skipped: unshare(CLONE_NEWNS): %s\n", strerror(errno));
        return false;
    }
    /* keep the mount private to this process even if it dies */
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
        fprintf(stderr, "tmpfs part skipped: make-rprivate: %s\n", strerror(errno));
        return false;
    }
    snprintf(mnt, sizeof mnt, "%s/tmpfs", base);
    mkdir(mnt, 0755);
    if (mount("tmpfs", mnt, "tmpfs", 0, "size=2m") < 0) {
        fprintf(stderr, "tmpfs part skipped: mount tmpfs: %s\n", strerror(errno));
        return false;
    }
    if (have_uring)
        tmpfs_case(WS_IO_ON, mnt);
    {
        char cmd[PATH_MAX + 32];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'/*", mnt); /* empties the tmpfs between the cases */
        CHECK(system(cmd) == 0);
    }
    tmpfs_case(WS_IO_OFF, mnt);
    CHECK(umount(mnt) == 0);
    return true;
}

/* ------------------------------------------------------------------------------------------ */
/* Concurrent writers: one spool, one thread per file (what the build workers do)               */

#define CW_THREADS 4
#define CW_WINDOWS 6

struct cw_arg {
    struct ws_spool *s;
    int id;
    unsigned bad;  /* failures seen on this thread (CHECK counts are main-thread only) */
    uint64_t kept; /* bytes of the windows it keeps */
    char qid[32];
};

static void *cw_run(void *opaque)
{
    struct cw_arg *a = opaque;
    char errbuf[512], path[PATH_MAX];

    snprintf(a->qid, sizeof a->qid, "cw-%d", a->id);
    for (int64_t b = 0; b < CW_WINDOWS; b++) {
        size_t len = 300000 + (size_t)(a->id * 77777 + b * 131071) % 1200000, got = 0;
        uint8_t *data = malloc(len), *back;
        struct ws_spool_file *f = NULL;
        const char *committed;
        uint64_t x = (uint64_t)(a->id * 100 + b + 1) * 0x9E3779B97F4A7C15ull;

        for (size_t i = 0; data && i < len; i++) { /* make_data's PRNG is not per thread */
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            data[i] = i % 4096 < 2048 ? (uint8_t)(x >> 24) : (uint8_t)(i / 4096);
        }
        if (!data || ws_spool_begin(a->s, a->qid, b, &f, errbuf, sizeof errbuf) ||
            feed(f, data, len) || ws_spool_commit(f, &committed, errbuf, sizeof errbuf) ||
            ws_spool_put_envelope(a->s, a->qid, b, "{}", 2, errbuf, sizeof errbuf))
            a->bad++;
        ws_spool_file_free(f);
        ws_spool_path(a->s, a->qid, b, ".evidence.lz4", path);
        back = slurp(path, &got);
        if (!back || got != len || memcmp(back, data, len) != 0)
            a->bad++;
        free(back);
        free(data);
        if (b % 2) /* delivered: removed, as the engine does once the head is acknowledged */
            ws_spool_remove(a->s, a->qid, b);
        else
            a->kept += len + 2;
    }
    return NULL;
}

static void test_concurrent(enum ws_io_mode mode)
{
    struct cw_arg a[CW_THREADS];
    pthread_t t[CW_THREADS];
    struct ws_spool *s = NULL;
    char dir[PATH_MAX], errbuf[512];
    uint64_t kept = 0;
    unsigned bad = 0;

    snprintf(dir, sizeof dir, "%s/concurrent-%d", base, (int)mode);
    CHECK(ws_spool_open(dir, mode, 1ull << 40, &s, errbuf, sizeof errbuf) == WS_OK);
    if (!s)
        return;
    for (int i = 0; i < CW_THREADS; i++) {
        a[i] = (struct cw_arg){.s = s, .id = i};
        CHECK(pthread_create(&t[i], NULL, cw_run, &a[i]) == 0);
    }
    for (int i = 0; i < CW_THREADS; i++) {
        pthread_join(t[i], NULL);
        bad += a[i].bad;
        kept += a[i].kept;
    }
    CHECK(bad == 0);
    CHECK(count_files(dir, ".evidence.lz4") == CW_THREADS * CW_WINDOWS / 2);
    CHECK(count_files(dir, ".dsse.json") == CW_THREADS * CW_WINDOWS / 2);
    CHECK(count_files(dir, ".tmp") == 0);
    CHECK(ws_spool_bytes(s) == kept); /* every write and removal of every thread counted once */
    ws_spool_check(s);
    ws_spool_close(s);
}

/* Entries directly in dir (not dot-names). */
static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int n = 0;

    if (!d)
        return -1;
    while ((de = readdir(d)))
        n += de->d_name[0] != '.';
    closedir(d);
    return n;
}

/* One window's evidence (data) and envelope committed; their inodes in ino[0..1]. */
static void put_window(struct ws_spool *s, int64_t batch, const uint8_t *data, size_t len,
                       ino_t ino[2])
{
    char errbuf[512], path[PATH_MAX];
    struct ws_spool_file *f = NULL;
    const char *p = NULL;
    struct stat st;

    CHECK(ws_spool_begin(s, QID, batch, &f, errbuf, sizeof errbuf) == WS_OK);
    if (!f)
        return;
    CHECK(feed(f, data, len) == WS_OK);
    ws_spool_sync_start(f);
    CHECK(ws_spool_commit_with_envelope(f, QID, batch, "{\"e\":1}", 7, &p, errbuf, sizeof errbuf) ==
          WS_OK);
    ws_spool_file_free(f);
    ws_spool_path(s, QID, batch, ".evidence.lz4", path);
    CHECK(stat(path, &st) == 0 && (size_t)st.st_size == len);
    ino[0] = st.st_ino;
    ws_spool_path(s, QID, batch, ".dsse.json", path);
    CHECK(stat(path, &st) == 0 && st.st_size == 7);
    ino[1] = st.st_ino;
}

static void test_recycle(enum ws_io_mode mode)
{
    char dir[PATH_MAX], fdir[PATH_MAX + 8], path[PATH_MAX], linked[PATH_MAX + 16], errbuf[512];
    uint8_t *big = make_data(300000, 77), *small = make_data(10, 78), *other = make_data(5000, 79);
    struct ws_spool *s = NULL;
    ino_t a[2], b[2], c[2], d[2], e[2];
    uint8_t *got;
    size_t gl;

    snprintf(dir, sizeof dir, "%s/recycle-%d", base, (int)mode);
    snprintf(fdir, sizeof fdir, "%s/.free", dir);
    CHECK(ws_spool_open(dir, mode, 1ull << 40, &s, errbuf, sizeof errbuf) == WS_OK);
    if (!s)
        goto out;
    CHECK(count_entries(fdir) == 0);
    put_window(s, 1, big, 300000, a);
    ws_spool_remove(s, QID, 1);
    ws_spool_check(s);
    CHECK(count_entries(fdir) == 2); /* both files wait in .free ... */
    CHECK(ws_spool_bytes(s) == 0);   /* ... emptied, and not counted */
    put_window(s, 2, small, 10, b);  /* the same inodes again, their own bytes only */
    CHECK((b[0] == a[0] || b[0] == a[1]) && (b[1] == a[0] || b[1] == a[1]) && b[0] != b[1]);
    CHECK(count_entries(fdir) == 0);
    ws_spool_path(s, QID, 2, ".evidence.lz4", path);
    got = slurp(path, &gl);
    CHECK(got && gl == 10 && memcmp(got, small, 10) == 0);
    free(got);
    CHECK(ws_spool_bytes(s) == 17);
    ws_spool_remove(s, QID, 2);

    /* A file sink's hard link: that inode is the sink's object and never comes back. */
    put_window(s, 3, big, 300000, c);
    ws_spool_path(s, QID, 3, ".evidence.lz4", path);
    snprintf(linked, sizeof linked, "%s/linked-%d", base, (int)mode);
    CHECK(link(path, linked) == 0);
    ws_spool_remove(s, QID, 3);
    CHECK(count_entries(fdir) == 1); /* the envelope only */
    put_window(s, 4, other, 5000, d);
    put_window(s, 5, other, 5000, e);
    CHECK(d[0] != c[0] && d[1] != c[0] && e[0] != c[0] && e[1] != c[0]);
    got = slurp(linked, &gl);
    CHECK(got && gl == 300000 && memcmp(got, big, gl) == 0);
    free(got);
    ws_spool_remove(s, QID, 4);
    CHECK(count_entries(fdir) == 2);
    ws_spool_check(s);
    ws_spool_close(s);

    /* A new start empties .free: nothing found there is trusted, not even a full file (a kill
     * between its rename and its truncate), and nothing there is counted. */
    snprintf(path, sizeof path, "%s/999", fdir);
    {
        FILE *fp = fopen(path, "w");
        CHECK(fp && fwrite(big, 1, 300000, fp) == 300000);
        if (fp)
            fclose(fp);
    }
    CHECK(ws_spool_open(dir, mode, 1ull << 40, &s, errbuf, sizeof errbuf) == WS_OK);
    if (!s)
        goto out;
    CHECK(count_entries(fdir) == 0);
    CHECK(ws_spool_bytes(s) == 5007); /* window 5 */

    /* Another process on the same spool (a second open: not the owner) holds .share: while it
     * is there the owner empties nothing another reader may hold; both unlink. */
    {
        struct ws_spool *s2 = NULL;
        ino_t f[2];
        char p5[PATH_MAX];
        int fd5;

        CHECK(ws_spool_open(dir, mode, 1ull << 40, &s2, errbuf, sizeof errbuf) == WS_OK);
        ws_spool_path(s, QID, 5, ".evidence.lz4", p5);
        fd5 = open(p5, O_RDONLY); /* the other process reading window 5 */
        ws_spool_remove(s, QID, 5);
        CHECK(count_entries(fdir) == 0);
        got = fd5 >= 0 ? malloc(5000) : NULL;
        CHECK(got && pread(fd5, got, 5000, 0) == 5000 && memcmp(got, other, 5000) == 0);
        free(got);
        if (fd5 >= 0)
            close(fd5);
        if (s2) {
            put_window(s2, 6, small, 10, f);
            ws_spool_remove(s2, QID, 6);
            CHECK(count_entries(fdir) == 0);
            ws_spool_close(s2);
        }
        put_window(s, 7, small, 10, f); /* the other one gone: recycling again */
        ws_spool_remove(s, QID, 7);
        CHECK(count_entries(fdir) == 2);
    }
    ws_spool_check(s);
    ws_spool_close(s);

    /* .free replaced by a symlink to somebody else's directory: not followed, nothing there
     * removed or emptied; the spool works without recycling. */
    {
        char victim[PATH_MAX + 16], vfile[PATH_MAX + 32];
        ino_t f[2];

        snprintf(victim, sizeof victim, "%s/victim-%d", base, (int)mode);
        snprintf(vfile, sizeof vfile, "%s/object", victim);
        CHECK(mkdir(victim, 0755) == 0);
        {
            FILE *fp = fopen(vfile, "w");
            CHECK(fp && fwrite(small, 1, 10, fp) == 10);
            if (fp)
                fclose(fp);
        }
        rm_rf(fdir);
        CHECK(symlink(victim, fdir) == 0);
        CHECK(ws_spool_open(dir, mode, 1ull << 40, &s, errbuf, sizeof errbuf) == WS_OK);
        if (s) {
            put_window(s, 8, other, 5000, f);
            ws_spool_remove(s, QID, 8);
            ws_spool_check(s);
            ws_spool_close(s);
        }
        got = slurp(vfile, &gl);
        CHECK(got && gl == 10 && memcmp(got, small, 10) == 0 && count_entries(victim) == 1);
        free(got);
    }
out:
    free(big);
    free(small);
    free(other);
}

int main(void)
{
    bool have_uring, mounted;

    ws_log_setup("error", NULL);
    snprintf(base, sizeof base, "/tmp/ws-spool-test-XXXXXX");
    if (!mkdtemp(base)) {
        perror("mkdtemp");
        return 1;
    }
    have_uring = uring_available();
    if (!have_uring)
        fprintf(stderr, "io_uring not available here: only the plain backend is tested\n");
    test_backends_identical(have_uring);
    if (have_uring) {
        test_sizes(WS_IO_ON);
        test_writeback(WS_IO_ON);
        test_abort_bound_lookup(WS_IO_ON);
    }
    test_sizes(WS_IO_OFF);
    test_writeback(WS_IO_OFF);
    test_abort_bound_lookup(WS_IO_OFF);
    if (have_uring)
        test_recycle(WS_IO_ON);
    test_recycle(WS_IO_OFF);
    if (have_uring)
        test_concurrent(WS_IO_ON);
    test_concurrent(WS_IO_OFF);
    test_refused();
    mounted = test_tmpfs(have_uring);
    rm_rf(base);
    printf("test_disk_spool: %lu checks passed%s\n", checks - failures,
           mounted ? "" : " (tmpfs part skipped)");
    if (failures) {
        printf("test_disk_spool: %lu of %lu checks FAILED\n", failures, checks);
        return 1;
    }
    return mounted ? 0 : 77;
}
