/*
 * outputs.c — SHA-256 of the files a batch wrote (notification outputs[].files).
 *
 * A file the engine cannot read is recorded with the reason and the window is still attested:
 * the records are the primary evidence, the outputs a cross-check. Local paths, file:// URIs
 * (percent-decoded, host empty or "localhost"), Hadoop's "file:/path", and object-store URIs
 * (s3://, s3a://, s3n://) are read; other schemes (hdfs://) are named "not readable by
 * windowseal".
 *
 * Object stores. s3:// files are GETs through the shared S3 client (sinks/sink.h: SigV4,
 * outputs.s3 settings, credentials from the environment), all of a notification's at once on
 * one curl multi handle (16 in flight), each body fed to its own SHA-256 as it arrives: a 5 GB
 * Parquet file costs curl's receive buffer, never its size. They are fetched before the local
 * files are hashed. What an answer means:
 *   2xx                         sha256 and bytes (what the body held)
 *   403, 404, other 4xx, 3xx    the file's `error` ("HTTP 404 NoSuchKey: ..."): the store said
 *                               what it holds, and the window is attested with it
 *   5xx, 429, timeout, refused  the whole call fails with that retriable cause, so the window
 *                               waits and is tried again (SPEC 6: nothing is signed without the
 *                               store). Recording such a file as an error would sign a
 *                               statement that depends on a passing outage.
 *   no credentials, a bad endpoint: every s3:// file's `error` (a configuration the engine
 *                               cannot fix by waiting)
 * Only the store's <Code> and <Message> enter the error, not its request id: a re-attested
 * window must come out byte-identical.
 *
 * Confinement. With outputs.allowed_roots set, the real path (symlinks resolved) must lie under
 * one of them, and the file is then opened by that resolved path with openat2(RESOLVE_NO_SYMLINKS)
 * (O_NOFOLLOW where openat2 is missing): a component swapped for a symlink between the check and
 * the open makes the open fail instead of escaping the roots. Files are opened O_NONBLOCK so a
 * FIFO named by a hostile notification cannot hang the engine, and anything but a regular file
 * is refused. Exactly st_size bytes (as of the open) are hashed; a file that shrinks meanwhile
 * is reported, not hashed short.
 *
 * Throughput. Hashing (SHA-NI, ~1.8 GB/s a core) is the bottleneck on a warm page cache, so
 * with two or more files the work is spread over up to MAX_WORKERS threads (the caller is one of
 * them) that take files from a shared counter. Each worker has its own io_uring ring and
 * NRBUF buffers of RBUF bytes: reads for the oldest open file first, and, once its tail is in
 * flight, for the next files (up to MAXOPEN open at once), so small files go to the kernel
 * eight at a time and a large file has several reads ahead of the hash. Chunks are hashed in
 * file order as they complete. The in-flight window stays at 1 MiB per worker: measured here,
 * more than that loses on a warm cache (the data no longer sits in the 2 MiB L2 when it is
 * hashed). Without io_uring (spool.io_uring=off, or refused) the same workers use read(); the
 * digests are the same, only the syscalls differ.
 *
 * Thread: called on the engine's thread; the helper threads live only for the call.
 */
#include "disk/disk.h"
#include "disk/uring.h"
#include "sinks/sink.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef RBUF /* overridable only to measure other in-flight windows (bench/README.md) */
#define RBUF (128u << 10)
#endif
#ifndef NRBUF
#define NRBUF 8
#endif
#define MAXOPEN 8
#define RING_ENTRIES 32
#define MAX_WORKERS 2
#define TAG_CLOSE UINT64_MAX

struct job {
    const char *name;
    struct ws_out_file *out;
};

struct shared {
    struct job *jobs;
    size_t njobs;
    atomic_size_t next;
    char **roots; /* real paths of allowed_roots that exist */
    size_t nroots;
    bool confine; /* allowed_roots configured (even if none of them exists) */
    bool uring;
    atomic_bool nomem;
};

/* ------------------------------------------------------------------------------------------ */
/* Naming and opening                                                                           */

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* The local path a file entry names, or NULL with the reason. */
static const char *local_path(const char *name, char *out, size_t cap)
{
    const char *p = name;
    size_t n = 0;

    if (strncmp(name, "file://", 7) == 0) {
        p = name + 7;
        if (strncmp(p, "localhost/", 10) == 0)
            p += 9;
        if (*p != '/')
            return "not readable by windowseal (file:// URI with a remote host)";
        for (; *p; p++) {
            int hi, lo;
            char c = *p;
            if (c == '%') {
                if ((hi = hexval(p[1])) < 0 || (lo = hexval(p[2])) < 0 || (hi | lo) == 0)
                    return "malformed file:// URI";
                c = (char)(hi << 4 | lo);
                p += 2;
            }
            if (n + 1 >= cap)
                return "path too long";
            out[n++] = c;
        }
        out[n] = '\0';
        return NULL;
    }
    if (strncmp(name, "file:/", 6) == 0) /* Hadoop's Path.toString() of a local file */
        p = name + 5;
    else if (strstr(name, "://"))
        return "not readable by windowseal (only local paths, file:// and s3:// URIs)";
    if (!*p)
        return "empty path";
    if (strlen(p) >= cap)
        return "path too long";
    strcpy(out, p);
    return NULL;
}

static bool under_root(const struct shared *sh, const char *real)
{
    for (size_t i = 0; i < sh->nroots; i++) {
        const char *r = sh->roots[i];
        size_t len = strlen(r);
        if (len == 1 && r[0] == '/')
            return true;
        if (strncmp(real, r, len) == 0 && (real[len] == '/' || real[len] == '\0'))
            return true;
    }
    return false;
}

static int open_resolved(const char *real)
{
    struct open_how how = {
        .flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY,
        .resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
    };
    long fd = syscall(SYS_openat2, AT_FDCWD, real, &how, sizeof how);

    if (fd < 0 && (errno == ENOSYS || errno == EPERM)) /* old kernel or a seccomp filter */
        fd = open(real, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY | O_NOFOLLOW);
    return (int)fd;
}

/* strerror_r: workers run on several threads. */
static const char *errno_why(int e, char *why, size_t whylen)
{
    char tmp[128];

    snprintf(why, whylen, "%s", strerror_r(e, tmp, sizeof tmp));
    return why;
}

/* Open an output file for hashing: NULL with *fd and *size, or the reason it cannot be read. */
static const char *open_output(const struct shared *sh, const char *name, bool blocking, int *fd,
                               uint64_t *size, char *why, size_t whylen)
{
    char path[PATH_MAX], real[PATH_MAX];
    const char *e;
    struct stat st;

    *fd = -1;
    if ((e = local_path(name, path, sizeof path)))
        return e;
    if (sh->confine) {
        if (!realpath(path, real))
            return errno_why(errno, why, whylen);
        if (!under_root(sh, real))
            return "outside outputs.allowed_roots";
        *fd = open_resolved(real);
        if (*fd < 0 && (errno == ELOOP || errno == EXDEV))
            return "changed while being opened (a symlink appeared in its path)";
    } else {
        *fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    }
    if (*fd < 0)
        return errno_why(errno, why, whylen);
    if (fstat(*fd, &st) < 0) {
        e = errno_why(errno, why, whylen);
        goto out_close;
    }
    if (!S_ISREG(st.st_mode)) {
        e = S_ISDIR(st.st_mode) ? "is a directory" : "not a regular file";
        goto out_close;
    }
    if (st.st_size == 0) {
        /* procfs and friends report 0 bytes and still have content: do not hash them as empty */
        char c;
        ssize_t n = pread(*fd, &c, 1, 0);
        if (n != 0) {
            e = n < 0 ? errno_why(errno, why, whylen) : "size unknown (not a file on disk)";
            goto out_close;
        }
    }
    /* io_uring honours O_NONBLOCK on regular files too (-EAGAIN on a cold cache): drop it. */
    if (blocking && fcntl(*fd, F_SETFL, O_RDONLY) < 0) {
        e = errno_why(errno, why, whylen);
        goto out_close;
    }
    *size = (uint64_t)st.st_size;
    return NULL;
out_close:
    close(*fd);
    *fd = -1;
    return e;
}

const char *ws_outputs_open(const char *name, const char *const *allowed_roots, size_t nroots,
                            int *fd, uint64_t *size, char *why, size_t whylen)
{
    struct shared sh;
    char real[PATH_MAX], *roots[64];
    const char *e;

    memset(&sh, 0, sizeof sh);
    sh.confine = nroots > 0;
    sh.roots = roots;
    for (size_t i = 0; i < nroots && sh.nroots < sizeof roots / sizeof roots[0]; i++)
        if (realpath(allowed_roots[i], real) && !(roots[sh.nroots++] = strdup(real)))
            return "out of memory";
    e = open_output(&sh, name, true, fd, size, why, whylen);
    for (size_t i = 0; i < sh.nroots; i++)
        free(roots[i]);
    return e;
}

static void set_error(struct shared *sh, struct job *j, const char *e)
{
    j->out->has_digest = false;
    j->out->bytes = -1;
    if (!(j->out->error = strdup(e)))
        atomic_store(&sh->nomem, true);
}

static void set_digest(struct job *j, struct ws_sha256 *h, uint64_t size)
{
    ws_sha256_final(h, j->out->sha256);
    j->out->has_digest = true;
    j->out->bytes = (int64_t)size;
}

static struct job *next_job(struct shared *sh)
{
    size_t i = atomic_fetch_add(&sh->next, 1);
    return i < sh->njobs ? &sh->jobs[i] : NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Plain read() worker                                                                          */

static void hash_plain(struct shared *sh, struct job *j, uint8_t *buf)
{
    char why[256];
    const char *e;
    struct ws_sha256 h;
    uint64_t size, got = 0;
    int fd;

    if ((e = open_output(sh, j->name, false, &fd, &size, why, sizeof why))) {
        set_error(sh, j, e);
        return;
    }
    ws_sha256_init(&h);
    while (got < size) {
        size_t want = size - got < RBUF ? (size_t)(size - got) : RBUF;
        ssize_t n = read(fd, buf, want);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0) {
            e = n < 0 ? errno_why(errno, why, sizeof why) : "shrank while being read";
            break;
        }
        ws_sha256_update(&h, buf, (size_t)n);
        got += (uint64_t)n;
    }
    close(fd);
    if (e)
        set_error(sh, j, e);
    else
        set_digest(j, &h, size);
}

static void worker_plain(struct shared *sh)
{
    uint8_t *buf = malloc(RBUF);
    struct job *j;

    if (!buf) {
        atomic_store(&sh->nomem, true);
        return;
    }
    while ((j = next_job(sh)))
        hash_plain(sh, j, buf);
    free(buf);
}

/* ------------------------------------------------------------------------------------------ */
/* io_uring worker                                                                              */

struct slot {
    struct job *job; /* NULL: free */
    int fd;
    uint64_t size, submitted, hashed;
    unsigned inflight;           /* reads of this file with the kernel */
    unsigned next_seq, hash_seq; /* chunks are numbered in file order */
    uint64_t admitted;           /* oldest file first */
    const char *err;
    char why[128];
    struct ws_sha256 h;
};

struct rbuf {
    uint8_t *p;
    int slot; /* -1: free */
    unsigned seq;
    uint64_t off;
    size_t len, got;
    bool ready; /* all len bytes read, waiting for its turn to be hashed */
};

struct uworker {
    struct shared *sh;
    struct ws_uring u;
    struct slot slots[MAXOPEN];
    struct rbuf bufs[NRBUF];
    uint64_t admitted;
    bool jobs_left;
};

static void maybe_finish(struct uworker *w, struct slot *s);

static void prep_read(struct uworker *w, int b)
{
    struct rbuf *r = &w->bufs[b];
    struct io_uring_sqe *sqe = ws_uring_sqe(&w->u);

    if (!sqe) { /* the ring is broken: the file gets an error, the buffer is released */
        struct slot *s = &w->slots[r->slot];
        if (!s->err)
            s->err = "io_uring submission failed";
        r->slot = -1;
        maybe_finish(w, s);
        return;
    }
    w->slots[r->slot].inflight++;
    io_uring_prep_read(sqe, w->slots[r->slot].fd, r->p + r->got, (unsigned)(r->len - r->got),
                       r->off + r->got);
    io_uring_sqe_set_data64(sqe, (uint64_t)b);
}

static void close_slot(struct uworker *w, struct slot *s)
{
    /* Rides along with the next submission (no syscall of its own), unless many closes are
     * queued already (a run of empty files): the completion ring must not overflow. */
    struct io_uring_sqe *sqe = w->u.inflight < RING_ENTRIES ? ws_uring_sqe(&w->u) : NULL;

    if (sqe) {
        io_uring_prep_close(sqe, s->fd);
        io_uring_sqe_set_data64(sqe, TAG_CLOSE);
    } else {
        close(s->fd);
    }
    s->job = NULL;
    s->fd = -1;
}

/* A file is done when every byte is hashed, or when it failed and nothing of it is in flight. */
static void maybe_finish(struct uworker *w, struct slot *s)
{
    if (s->inflight)
        return;
    if (s->err) {
        /* Chunks read but not hashed yet must not outlive the slot (it is reused next). */
        for (int b = 0; b < NRBUF; b++)
            if (w->bufs[b].slot == (int)(s - w->slots))
                w->bufs[b].slot = -1;
        set_error(w->sh, s->job, s->err);
    } else if (s->hashed == s->size)
        set_digest(s->job, &s->h, s->size);
    else
        return;
    close_slot(w, s);
}

/* Open the next file into a free slot; false when there is no free slot or no file left. */
static bool admit(struct uworker *w)
{
    struct slot *s = NULL;
    struct job *j;
    const char *e;

    for (int i = 0; i < MAXOPEN && !s; i++)
        if (!w->slots[i].job)
            s = &w->slots[i];
    if (!s || !w->jobs_left)
        return false;
    if (!(j = next_job(w->sh))) {
        w->jobs_left = false;
        return false;
    }
    memset(s, 0, sizeof *s);
    s->job = j;
    e = open_output(w->sh, j->name, true, &s->fd, &s->size, s->why, sizeof s->why);
    if (e) {
        set_error(w->sh, j, e);
        s->job = NULL;
        return true;
    }
    ws_sha256_init(&s->h);
    s->admitted = w->admitted++;
    maybe_finish(w, s); /* an empty file is done at once */
    return true;
}

static struct slot *oldest_wanting(struct uworker *w)
{
    struct slot *best = NULL;

    for (int i = 0; i < MAXOPEN; i++) {
        struct slot *s = &w->slots[i];
        if (s->job && !s->err && s->submitted < s->size && (!best || s->admitted < best->admitted))
            best = s;
    }
    return best;
}

/* Give every free buffer a chunk to read, opening files as needed. */
static void fill(struct uworker *w)
{
    for (int b = 0; b < NRBUF; b++) {
        struct rbuf *r = &w->bufs[b];
        struct slot *s;
        if (r->slot >= 0)
            continue;
        while (!(s = oldest_wanting(w)))
            if (!admit(w))
                return;
        r->slot = (int)(s - w->slots);
        r->seq = s->next_seq++;
        r->off = s->submitted;
        r->len = s->size - s->submitted < RBUF ? (size_t)(s->size - s->submitted) : RBUF;
        r->got = 0;
        r->ready = false;
        s->submitted += r->len;
        prep_read(w, b);
    }
}

static void on_read(struct uworker *w, int b, int res)
{
    struct rbuf *r = &w->bufs[b];
    struct slot *s = &w->slots[r->slot];

    s->inflight--;
    if (res == -EAGAIN || res == -EINTR) {
        prep_read(w, b);
        return;
    }
    if (res < 0 && !s->err) {
        s->err = errno_why(-res, s->why, sizeof s->why);
    } else if (res == 0 && !s->err) {
        s->err = "shrank while being read";
    } else if (res > 0 && (r->got += (size_t)res) < r->len) {
        if (!s->err) {
            prep_read(w, b); /* a short read: the rest of the chunk */
            return;
        }
    }
    if (s->err) {
        r->slot = -1;
        maybe_finish(w, s);
        return;
    }
    if (r->got == r->len)
        r->ready = true;
}

/* Hash every chunk whose turn it is, in file order; finish the files that are complete. */
static void hash_ready(struct uworker *w)
{
    for (bool progress = true; progress;) {
        progress = false;
        for (int b = 0; b < NRBUF; b++) {
            struct rbuf *r = &w->bufs[b];
            struct slot *s;
            if (r->slot < 0 || !r->ready)
                continue;
            s = &w->slots[r->slot];
            if (r->seq != s->hash_seq)
                continue;
            ws_sha256_update(&s->h, r->p, r->len);
            s->hashed += r->len;
            s->hash_seq++;
            r->slot = -1;
            r->ready = false;
            maybe_finish(w, s);
            progress = true;
        }
    }
}

static bool busy(const struct uworker *w)
{
    if (w->u.inflight)
        return true;
    for (int i = 0; i < MAXOPEN; i++)
        if (w->slots[i].job)
            return true;
    return false;
}

/* false if the ring could not be set up (the caller falls back to read()). */
static bool worker_uring(struct shared *sh)
{
    struct uworker *w = calloc(1, sizeof *w);
    struct io_uring_cqe *cqe;
    uint8_t *mem = NULL;
    bool ok = false;

    if (!w || posix_memalign((void **)&mem, 4096, (size_t)NRBUF * RBUF)) {
        atomic_store(&sh->nomem, true);
        goto out_free;
    }
    if (ws_uring_init(&w->u, RING_ENTRIES) < 0)
        goto out_free;
    ok = true;
    w->sh = sh;
    w->jobs_left = true;
    for (int i = 0; i < MAXOPEN; i++)
        w->slots[i].fd = -1;
    for (int b = 0; b < NRBUF; b++) {
        w->bufs[b].p = mem + (size_t)b * RBUF;
        w->bufs[b].slot = -1;
    }
    for (;;) {
        fill(w);
        if (!busy(w))
            break;
        if (ws_uring_wait(&w->u, &cqe) < 0)
            break;
        while (cqe) {
            uint64_t tag = io_uring_cqe_get_data64(cqe);
            int res = cqe->res;
            ws_uring_seen(&w->u, cqe);
            if (tag != TAG_CLOSE)
                on_read(w, (int)tag, res);
            cqe = ws_uring_peek(&w->u);
        }
        hash_ready(w);
    }
    /* Only a broken ring leaves files open here: report them, never leave them unreported. */
    for (int i = 0; i < MAXOPEN; i++)
        if (w->slots[i].job) {
            set_error(sh, w->slots[i].job, "io_uring failure while reading");
            close(w->slots[i].fd);
        }
    ws_uring_exit(&w->u);
out_free:
    free(mem);
    free(w);
    return ok;
}

static void *worker(void *arg)
{
    struct shared *sh = arg;

    if (!sh->uring || !worker_uring(sh))
        worker_plain(sh);
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Public                                                                                       */

static unsigned nworkers(size_t njobs)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned n = MAX_WORKERS;

    if (cpus > 0 && (unsigned long)cpus < n)
        n = (unsigned)cpus;
    if (njobs < n)
        n = (unsigned)njobs;
    return n ? n : 1;
}

static void run_workers(struct shared *sh)
{
    pthread_t th[MAX_WORKERS];
    unsigned n = nworkers(sh->njobs), started = 0;

    for (unsigned i = 1; i < n; i++)
        if (pthread_create(&th[started], NULL, worker, sh) == 0)
            (void)pthread_setname_np(th[started++], "ws:digest"); /* for top -H, perf */
    worker(sh);                                                   /* the caller is a worker too */
    for (unsigned i = 0; i < started; i++)
        pthread_join(th[i], NULL);
}

/* ------------------------------------------------------------------------------------------ */
/* Object stores                                                                                */

struct s3_job {
    struct ws_out_file *out;
    struct ws_sha256 h;
};

static ws_err_t s3_hash_chunk(void *ud, const void *data, size_t len)
{
    ws_sha256_update(&((struct s3_job *)ud)->h, data, len);
    return WS_OK;
}

/* "s3 GET s3://b/k: HTTP 404 NoSuchKey: ..." -> "HTTP 404 NoSuchKey: ...": the entry names the
 * file already. */
static const char *short_error(const char *e)
{
    const char *p = strncmp(e, "s3 GET ", 7) == 0 ? strstr(e, ": ") : NULL;
    return p ? p + 2 : e;
}

/*
 * Hash the s3:// files among outs (those not named by jobs, the local ones). WS_OK: each has a
 * digest or an error; otherwise a retriable cause (or WS_ERR_NOMEM) and nothing may be signed.
 */
static ws_err_t hash_s3(struct ws_output_set *out, const struct ws_s3_settings *st, size_t count,
                        char *errbuf, size_t errlen)
{
    struct s3_job *jobs = calloc(count, sizeof *jobs);
    struct ws_s3_get *gets = calloc(count, sizeof *gets);
    struct ws_s3_client *c = NULL;
    char why[600];
    size_t k = 0;
    ws_err_t err = WS_OK;

    if (!jobs || !gets) {
        err = ws_fail(WS_ERR_NOMEM, errbuf, errlen, "out of memory hashing outputs");
        goto out_free;
    }
    for (size_t i = 0; i < out->noutputs; i++)
        for (size_t j = 0; j < out->outputs[i].nfiles; j++) {
            struct ws_out_file *f = (struct ws_out_file *)&out->outputs[i].files[j];
            if (!ws_s3_uri_is_s3(f->name))
                continue;
            jobs[k].out = f;
            ws_sha256_init(&jobs[k].h);
            gets[k].uri = f->name;
            gets[k].on_data = s3_hash_chunk;
            gets[k].ud = &jobs[k];
            k++;
        }
    if ((err = ws_s3_client_new(st, &c, why, sizeof why))) {
        if (err == WS_ERR_NOMEM) {
            err = ws_fail(err, errbuf, errlen, "out of memory hashing outputs");
            goto out_free;
        }
        /* A configuration to fix, not a store to wait for: every file says why. */
        char text[700];
        snprintf(text, sizeof text, "not readable by windowseal: %s",
                 strncmp(why, "s3: ", 4) == 0 ? why + 4 : why);
        err = WS_OK;
        for (size_t i = 0; i < k; i++)
            if (!(jobs[i].out->error = strdup(text)))
                err = ws_fail(WS_ERR_NOMEM, errbuf, errlen, "out of memory hashing outputs");
        goto out_free;
    }
    if ((err = ws_s3_get_many(c, gets, k, errbuf, errlen)))
        goto out_free;
    for (size_t i = 0; i < k && !err; i++) /* first the store's trouble: then nothing is kept */
        if (gets[i].err && ws_err_retriable(gets[i].err))
            err = ws_fail(gets[i].err, errbuf, errlen, "output file %s: %s", gets[i].uri,
                          gets[i].error);
    for (size_t i = 0; i < k && !err; i++) {
        struct ws_out_file *f = jobs[i].out;
        if (gets[i].err == WS_OK) {
            ws_sha256_final(&jobs[i].h, f->sha256);
            f->has_digest = true;
            f->bytes = (int64_t)gets[i].bytes;
        } else if (!(f->error = strdup(short_error(gets[i].error)))) {
            err = ws_fail(WS_ERR_NOMEM, errbuf, errlen, "out of memory hashing outputs");
        }
    }
out_free:
    ws_s3_client_destroy(c);
    free(gets);
    free(jobs);
    return err;
}

/* ------------------------------------------------------------------------------------------ */
/* Public                                                                                       */

static ws_err_t hash_all(const struct ws_notification *n, const char *const *allowed_roots,
                         size_t nroots, const struct ws_s3_settings *s3, struct ws_spool *spool,
                         struct ws_output_set *out, char *errbuf, size_t errlen)
{
    struct shared sh = {0};
    size_t k = 0, ns3 = 0;
    ws_err_t err;

    memset(out, 0, sizeof *out);
    if (n->noutputs == 0)
        return WS_OK;
    if (!(out->outputs = calloc(n->noutputs, sizeof *out->outputs)))
        goto nomem;
    out->noutputs = n->noutputs;
    for (size_t i = 0; i < n->noutputs; i++) {
        const struct ws_notif_output *o = &n->outputs[i];
        struct ws_out_file *files = NULL;
        out->outputs[i].name = o->name;
        out->outputs[i].snapshot_id = o->snapshot_id;
        if (o->nfiles && !(files = calloc(o->nfiles, sizeof *files)))
            goto nomem;
        out->outputs[i].files = files;
        out->outputs[i].nfiles = o->nfiles;
        for (size_t j = 0; j < o->nfiles; j++) {
            files[j].name = o->files[j];
            files[j].bytes = -1;
            if (ws_s3_uri_is_s3(o->files[j]))
                ns3++;
            else
                sh.njobs++;
        }
    }
    /* The store first: if it is down the window waits, and the local reads would be wasted. */
    if (ns3 && (err = hash_s3(out, s3, ns3, errbuf, errlen))) {
        ws_outputs_free(out);
        return err;
    }
    if (sh.njobs && !(sh.jobs = calloc(sh.njobs, sizeof *sh.jobs)))
        goto nomem;
    for (size_t i = 0; i < n->noutputs; i++)
        for (size_t j = 0; j < n->outputs[i].nfiles; j++) {
            if (ws_s3_uri_is_s3(n->outputs[i].files[j]))
                continue;
            sh.jobs[k].name = n->outputs[i].files[j];
            sh.jobs[k++].out = (struct ws_out_file *)&out->outputs[i].files[j];
        }
    sh.confine = nroots > 0;
    if (nroots && !(sh.roots = calloc(nroots, sizeof *sh.roots)))
        goto nomem;
    for (size_t i = 0; i < nroots; i++) {
        char real[PATH_MAX];
        if (realpath(allowed_roots[i], real) && !(sh.roots[sh.nroots++] = strdup(real)))
            goto nomem;
    }
    sh.uring = spool ? ws_spool_uses_io_uring(spool) : true;
    atomic_init(&sh.next, 0);
    atomic_init(&sh.nomem, false);
    if (sh.njobs)
        run_workers(&sh);
    if (atomic_load(&sh.nomem))
        goto nomem;
    for (size_t i = 0; i < sh.nroots; i++)
        free(sh.roots[i]);
    free(sh.roots);
    free(sh.jobs);
    return WS_OK;
nomem:
    for (size_t i = 0; i < sh.nroots; i++)
        free(sh.roots[i]);
    free(sh.roots);
    free(sh.jobs);
    ws_outputs_free(out);
    return ws_fail(WS_ERR_NOMEM, errbuf, errlen, "out of memory hashing outputs");
}

ws_err_t ws_outputs_hash(const struct ws_notification *n, const char *const *allowed_roots,
                         size_t nroots, struct ws_spool *spool, struct ws_output_set *out,
                         char *errbuf, size_t errlen)
{
    /* outputs.s3 at its defaults: endpoint and region from the environment, path style */
    struct ws_s3_settings s3 = {.path_style = true};

    return hash_all(n, allowed_roots, nroots, &s3, spool, out, errbuf, errlen);
}

ws_err_t ws_outputs_hash_cfg(const struct ws_notification *n, const struct ws_config *cfg,
                             struct ws_spool *spool, struct ws_output_set *out, char *errbuf,
                             size_t errlen)
{
    struct ws_s3_settings s3 = {.endpoint = cfg->outputs_s3_endpoint,
                                .region = cfg->outputs_s3_region,
                                .path_style = cfg->outputs_s3_path_style};

    return hash_all(n, (const char *const *)cfg->allowed_roots, cfg->nallowed_roots, &s3, spool,
                    out, errbuf, errlen);
}

void ws_outputs_free(struct ws_output_set *o)
{
    for (size_t i = 0; i < o->noutputs; i++) {
        struct ws_out_file *files = (struct ws_out_file *)o->outputs[i].files;
        for (size_t j = 0; j < o->outputs[i].nfiles && files; j++)
            free((char *)files[j].error);
        free(files);
    }
    free(o->outputs);
    memset(o, 0, sizeof *o);
}
