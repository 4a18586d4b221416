/*
 * file.c — the `file` object-store sink: FORMAT.md §7 layout under a directory.
 *
 *   <path>/<prefix><queryId>/<batch20>.evidence.lz4   written first
 *   <path>/<prefix><queryId>/<batch20>.dsse.json      written last: its presence means complete
 *
 * Each object is written once: to a temporary name, fsync, rename, fsync of the directory. If
 * the object exists, identical bytes count as written and other bytes are
 * WS_ERR_EXISTS_DIFFERENT. Query ids reaching this file have passed ws_query_id_safe, so the
 * names cannot leave the directory.
 *
 * Linked, not copied, where it can be (option `link`, default on): the spool's evidence file,
 * and its envelope file when it holds exactly the artifact's envelope, become the objects by
 * linkat() when the spool and the directory share a filesystem. The spool fsynced those bytes
 * before renaming them into place, so a link costs no data written and no file fsync, only
 * the directory's fsync (one for the window); a window of gigabytes is not written twice. The
 * spool never writes into a file another name links: it recycles only files with one link
 * (disk/spool.c, Recycling) and unlinks the rest, so the objects never change under their
 * names. Another filesystem (EXDEV) or one without hard links: copies, as below,
 * for this sink instance from then on. Evidence first, then envelope, as for copies.
 *
 * Copies: a window's two objects are one write set (write_set): both temporary files written,
 * both fsynced, then renamed in order (evidence first: an envelope's presence means complete)
 * and the directory fsynced once for both renames. With io_uring (ctx.io_uring, the spool's
 * decision) the writes of both files go out together, NBUF chunks in flight while the next is
 * read from the spool, and the two fsyncs are in flight at once, so the journal commits them
 * together instead of one after the other (issue 14: ~1.1 ms each on this disk). Without it,
 * or when the kernel refuses a ring, the same bytes go out with write() and fsync() in turn.
 * Which fsyncs are needed for what: docs/DESIGN.md, "Durability".
 *
 * Memory does not grow with the window: the evidence is streamed from the spool file in CHUNK
 * pieces, into the temporary file when the object is absent, or side by side with the existing
 * object when it is there (sizes first, then chunk by chunk, stopping at the first difference).
 *
 * Errors keep their cause: WS_ERR_NOSPACE (ENOSPC, EDQUOT), WS_ERR_IO (anything else the disk
 * says, including EACCES: the operator can fix the directory and the engine's retry then
 * succeeds, so it stays retriable), WS_ERR_NOMEM, WS_ERR_INVALID (a path too long, a directory
 * where an object should be), WS_ERR_EXISTS_DIFFERENT.
 */
#include "sinks/sink_int.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <liburing.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHUNK (256u * 1024)
#define NBUF 4          /* chunks in flight at once on the io_uring path */
#define MAX_PUTS 3      /* objects in one write set: a window's evidence, envelope, checkpoint */
#define RING_ENTRIES 16 /* > NBUF + MAX_PUTS: a submission slot is always free */
#define WB_BYTES (1u << 20) /* a copy's writeback is started every MiB (start_writeback) */

struct file_conf {
    char *path;
    char *prefix;
    bool link;
};

static const struct ws_option options[] = {
    {.name = "path",
     .type = WS_OPT_STRING,
     .offset = offsetof(struct file_conf, path),
     .required = true,
     .help = "Directory of the file sink."},
    {.name = "prefix",
     .type = WS_OPT_STRING,
     .offset = offsetof(struct file_conf, prefix),
     .def = "",
     .help = "Prefix of every object name."},
    {.name = "link",
     .type = WS_OPT_BOOL,
     .offset = offsetof(struct file_conf, link),
     .def = "true",
     .help = "Hard-link the spool's evidence and envelope files into the directory when both "
             "are on one filesystem (no second copy, no second fsync of the bytes); false: "
             "always write copies."},
};

struct file_sink {
    struct ws_sink base;
    char *dir;    /* path + prefix */
    bool uring;   /* write sets through io_uring (ctx.io_uring, and the kernel allowed a ring) */
    bool no_link; /* the spool's files cannot be linked here (another filesystem): copies */
};

/* Our bytes: an open spool file (fd >= 0) or a buffer. */
struct source {
    int fd;
    const char *mem;
    uint64_t size;
    const char *path; /* the spool file, for messages */
};

/* The directory that holds path, made durable (the rename into it). */
static ws_err_t fsync_parent(const char *path, char *errbuf, size_t errlen)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');

    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else
        snprintf(dir, sizeof dir, "%.*s", slash == path ? 1 : (int)(slash - path), path);
    return ws_fsync_dir(dir, errbuf, errlen);
}

/* Up to n bytes at off; *got < n only at end of file. */
static int read_at(int fd, uint64_t off, char *buf, size_t n, size_t *got)
{
    *got = 0;
    while (*got < n) {
        ssize_t r = pread(fd, buf + *got, n - *got, (off_t)(off + *got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return errno;
        if (r == 0)
            break;
        *got += (size_t)r;
    }
    return 0;
}

/* Exactly n of our bytes at off: from the buffer, or read from the spool file into buf. */
static ws_err_t source_chunk(const struct source *src, uint64_t off, char *buf, size_t n,
                             const char **out, char *errbuf, size_t errlen)
{
    size_t got;
    int e;

    if (src->fd < 0) {
        *out = src->mem + off;
        return WS_OK;
    }
    if ((e = read_at(src->fd, off, buf, n, &got)) || got < n)
        return ws_fail(WS_ERR_IO, errbuf, errlen, "spool %s: read: %s", src->path,
                       e ? strerror(e) : "file shrank");
    *out = buf;
    return WS_OK;
}

static ws_err_t write_all(int fd, const char *p, size_t n, const char *path, char *errbuf,
                          size_t errlen)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return ws_fail(ws_errno_local(errno), errbuf, errlen, "write %s: %s", path,
                           strerror(errno));
        p += w;
        n -= (size_t)w;
    }
    return WS_OK;
}

/* One object of a write set: its final path, our bytes, and its temporary file meanwhile. */
struct put {
    const char *path;
    const struct source *src;
    bool replace; /* a mutable object (the checkpoint): renamed over what is there */
    char tmp[PATH_MAX];
    int fd;          /* the temporary file, -1 when not open */
    uint64_t wb_off; /* writeback started for [0, wb_off) of it */
};

/*
 * A big copy's bytes would otherwise stay dirty in the page cache until its fsync, which then
 * writes them all while the window waits: start their writeback every WB_BYTES as they are
 * written, as the spool does (disk/spool.c, start_writeback, which has the figures).
 * SYNC_FILE_RANGE_WRITE only starts writing pages already dirty: a write still in flight is
 * left to the fsync, which alone makes the file durable. A refusal (a filesystem without it)
 * is no error: the fsync still does everything.
 */
static void start_writeback(struct put *p, uint64_t upto)
{
    if (upto < p->wb_off + WB_BYTES)
        return;
    (void)sync_file_range(p->fd, (off_t)p->wb_off, (off_t)(upto - p->wb_off),
                          SYNC_FILE_RANGE_WRITE);
    p->wb_off = upto;
}

static ws_err_t put_open(struct put *p, char *errbuf, size_t errlen)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(p->path, '/');
    ws_err_t err;

    p->tmp[0] = '\0';
    if (slash && slash != p->path) {
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - p->path), p->path);
        if ((err = ws_mkdirs(dir, errbuf, errlen)))
            return err;
    }
    if (snprintf(p->tmp, sizeof p->tmp, "%s.tmp.%ld", p->path, (long)getpid()) >=
        (int)sizeof p->tmp) {
        p->tmp[0] = '\0';
        return ws_fail(WS_ERR_INVALID, errbuf, errlen, "%s: path too long", p->path);
    }
    if ((p->fd = open(p->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0) {
        err =
            ws_fail(ws_errno_local(errno), errbuf, errlen, "open %s: %s", p->tmp, strerror(errno));
        p->tmp[0] = '\0';
        return err;
    }
    return WS_OK;
}

/* Plain syscalls: each file's bytes with write(), then its fsync, one file after the other. */
static ws_err_t fill_syscalls(struct put *p, size_t n, char *buf, char *errbuf, size_t errlen)
{
    const char *chunk = NULL;
    ws_err_t err;

    for (size_t i = 0; i < n; i++) {
        for (uint64_t off = 0; off < p[i].src->size;) {
            uint64_t left = p[i].src->size - off;
            size_t len = left < CHUNK ? (size_t)left : CHUNK;
            if ((err = source_chunk(p[i].src, off, buf, len, &chunk, errbuf, errlen)) ||
                (err = write_all(p[i].fd, chunk, len, p[i].tmp, errbuf, errlen)))
                return err;
            off += len;
            start_writeback(&p[i], off);
        }
        if (fsync(p[i].fd) < 0)
            return ws_fail(ws_errno_local(errno), errbuf, errlen, "fsync %s: %s", p[i].tmp,
                           strerror(errno));
    }
    return WS_OK;
}

/* A write in flight on the ring: slot i owns buffer i (for bytes read from the spool). */
struct ureq {
    bool used;
    size_t put;
    uint64_t off;
    const char *data;
    size_t len;
};

/* The first failure of a write set on the ring; later ones only drain. */
static ws_err_t ring_fail(ws_err_t err, int res, const struct put *p, const char *what,
                          char *errbuf, size_t errlen)
{
    if (err)
        return err;
    if (res == 0) /* a write that wrote nothing would loop: the disk said no */
        return ws_fail(WS_ERR_IO, errbuf, errlen, "%s %s: wrote 0 bytes", what, p->tmp);
    return ws_fail(ws_errno_local(-res), errbuf, errlen, "%s %s: %s", what, p->tmp, strerror(-res));
}

/* Reap every completion there is; short writes go out again for the rest. */
static ws_err_t ring_reap(struct io_uring *ring, struct ureq *rq, struct put *p, unsigned *inflight,
                          ws_err_t err, char *errbuf, size_t errlen)
{
    struct io_uring_cqe *cqe;

    while (io_uring_peek_cqe(ring, &cqe) == 0) {
        uint64_t tag = io_uring_cqe_get_data64(cqe);
        int res = cqe->res;
        struct ureq *r;

        io_uring_cqe_seen(ring, cqe);
        (*inflight)--;
        if (tag >= NBUF) { /* an fsync: tag NBUF + put */
            if (res < 0)
                err = ring_fail(err, res, &p[tag - NBUF], "fsync", errbuf, errlen);
            continue;
        }
        r = &rq[tag];
        if (res <= 0 || err) {
            if (res <= 0)
                err = ring_fail(err, res, &p[r->put], "write", errbuf, errlen);
            r->used = false;
            continue;
        }
        if ((size_t)res < r->len) { /* short: the rest at its own offset */
            struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
            assert(sqe != NULL); /* RING_ENTRIES > everything in flight */
            r->data += res;
            r->off += (uint64_t)res;
            r->len -= (size_t)res;
            io_uring_prep_write(sqe, p[r->put].fd, r->data, (unsigned)r->len, r->off);
            io_uring_sqe_set_data64(sqe, tag);
            (*inflight)++;
            continue;
        }
        r->used = false;
    }
    return err;
}

static int ring_wait(struct io_uring *ring, unsigned want)
{
    int rc;

    while ((rc = io_uring_submit_and_wait(ring, want)) == -EINTR)
        ;
    return rc < 0 ? rc : 0;
}

/*
 * io_uring: every chunk of every file written with up to NBUF writes in flight (the next chunk
 * read from the spool while they go), then every file's fsync submitted together.
 */
static ws_err_t fill_uring(struct io_uring *ring, struct put *p, size_t n, char *bufs, bool *stuck,
                           char *errbuf, size_t errlen)
{
    struct ureq rq[NBUF] = {{0}};
    unsigned inflight = 0;
    size_t cur = 0;
    uint64_t off = 0;
    ws_err_t err = WS_OK;
    int rc;

    for (;;) {
        for (unsigned slot = 0; !err && slot < NBUF && cur < n; slot++) {
            struct io_uring_sqe *sqe;
            uint64_t left;
            size_t len;

            if (rq[slot].used)
                continue;
            while (cur < n && off >= p[cur].src->size) {
                cur++;
                off = 0;
            }
            if (cur == n)
                break;
            left = p[cur].src->size - off;
            len = left < CHUNK ? (size_t)left : CHUNK;
            if ((err = source_chunk(p[cur].src, off, bufs + (size_t)slot * CHUNK, len,
                                    &rq[slot].data, errbuf, errlen)))
                break;
            sqe = io_uring_get_sqe(ring);
            assert(sqe != NULL);
            rq[slot] = (struct ureq){true, cur, off, rq[slot].data, len};
            io_uring_prep_write(sqe, p[cur].fd, rq[slot].data, (unsigned)len, off);
            io_uring_sqe_set_data64(sqe, slot);
            inflight++;
            off += len;
        }
        if (!inflight)
            break;
        if ((rc = ring_wait(ring, 1)) < 0) {
            *stuck = true; /* writes may still be in flight: their buffers must outlive them */
            return ws_fail(WS_ERR_IO, errbuf, errlen, "io_uring submit: %s", strerror(-rc));
        }
        err = ring_reap(ring, rq, p, &inflight, err, errbuf, errlen);
        if (!err && cur < n) {
            /* the file being written, up to its first chunk still in flight (not dirty yet) */
            uint64_t upto = off;
            for (unsigned slot = 0; slot < NBUF; slot++)
                if (rq[slot].used && rq[slot].put == cur && rq[slot].off < upto)
                    upto = rq[slot].off;
            start_writeback(&p[cur], upto);
        }
    }
    if (err)
        return err;
    for (size_t i = 0; i < n; i++) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
        assert(sqe != NULL);
        io_uring_prep_fsync(sqe, p[i].fd, 0);
        io_uring_sqe_set_data64(sqe, NBUF + i);
        inflight++;
    }
    while (inflight) {
        if ((rc = ring_wait(ring, inflight)) < 0) {
            *stuck = true;
            return ws_fail(WS_ERR_IO, errbuf, errlen, "io_uring submit: %s", strerror(-rc));
        }
        err = ring_reap(ring, rq, p, &inflight, err, errbuf, errlen);
    }
    return err;
}

static ws_err_t compare_existing(const char *path, const struct source *src, char *errbuf,
                                 size_t errlen);

/*
 * Rename a complete temporary file onto its name. once (write-once objects): never over an
 * object that appeared meanwhile (another writer between the compare and here): identical
 * bytes there are success, other bytes WS_ERR_EXISTS_DIFFERENT. A filesystem without
 * RENAME_NOREPLACE gets a plain rename (the compare before it is then the only check).
 */
static ws_err_t put_rename(const struct put *p, bool once, char *errbuf, size_t errlen)
{
    if (once && renameat2(AT_FDCWD, p->tmp, AT_FDCWD, p->path, RENAME_NOREPLACE) == 0)
        return WS_OK;
    if (once && errno == EEXIST) {
        ws_err_t err = compare_existing(p->path, p->src, errbuf, errlen);
        return err != WS_ERR_NOT_FOUND
                   ? err
                   : ws_fail(WS_ERR_IO, errbuf, errlen, "%s appeared and went while it was written",
                             p->path);
    }
    if (once && errno != EINVAL && errno != ENOSYS)
        return ws_fail(ws_errno_local(errno), errbuf, errlen, "rename %s: %s", p->path,
                       strerror(errno));
    if (rename(p->tmp, p->path) < 0)
        return ws_fail(ws_errno_local(errno), errbuf, errlen, "rename %s: %s", p->path,
                       strerror(errno));
    return WS_OK;
}

/*
 * The write set p[0..n): every object written to its temporary name and fsynced, then renamed
 * in order, then one fsync of their directory (they share it) that makes the renames durable.
 * On failure no temporary file is left and nothing is renamed that was not complete.
 */
static ws_err_t write_set(bool uring, bool once, struct put *p, size_t n, char *errbuf,
                          size_t errlen)
{
    struct io_uring ring;
    bool ring_ok = uring && io_uring_queue_init(RING_ENTRIES, &ring, 0) == 0, stuck = false;
    char *bufs = NULL;
    ws_err_t err = WS_OK;
    size_t i;

    assert(n >= 1 && n <= MAX_PUTS);
    for (i = 0; i < n; i++) {
        p[i].fd = -1;
        p[i].wb_off = 0;
    }
    for (i = 0; i < n && !err; i++)
        err = put_open(&p[i], errbuf, errlen);
    if (!err && !(bufs = malloc((ring_ok ? NBUF : 1) * (size_t)CHUNK)))
        err = ws_fail(WS_ERR_NOMEM, errbuf, errlen, "%s: out of memory", p[0].path);
    if (!err)
        err = ring_ok ? fill_uring(&ring, p, n, bufs, &stuck, errbuf, errlen)
                      : fill_syscalls(p, n, bufs, errbuf, errlen);
    if (ring_ok)
        io_uring_queue_exit(&ring);
    if (!stuck) /* else a broken ring may still write from them: leaked, never reused */
        free(bufs);
    for (i = 0; i < n; i++)
        if (p[i].fd >= 0)
            close(p[i].fd);
    for (i = 0; i < n && !err; i++)
        if (!(err = put_rename(&p[i], once && !p[i].replace, errbuf, errlen)))
            p[i].tmp[0] = '\0';
    for (i = 0; i < n; i++)
        if (p[i].tmp[0])
            unlink(p[i].tmp);
    return err ? err : fsync_parent(p[n - 1].path, errbuf, errlen);
}

ws_err_t ws_file_write_atomic(const char *path, const void *data, size_t len, char *errbuf,
                              size_t errlen)
{
    struct source src = {.fd = -1, .mem = data, .size = len};
    struct put p = {.path = path, .src = &src};

    /* replaced in place (the checkpoint); small: syscalls cost less than a ring */
    return write_set(false, false, &p, 1, errbuf, errlen);
}

/*
 * Existing object against our bytes, chunk by chunk: identical -> WS_OK, other bytes ->
 * EXISTS_DIFFERENT, none -> NOT_FOUND.
 */
static ws_err_t compare_existing(const char *path, const struct source *src, char *errbuf,
                                 size_t errlen)
{
    char *theirs = NULL, *ours = NULL;
    const char *chunk = NULL;
    struct stat st;
    ws_err_t err = WS_OK;
    size_t got;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK), e;

    if (fd < 0)
        return errno == ENOENT
                   ? WS_ERR_NOT_FOUND
                   : ws_fail(WS_ERR_IO, errbuf, errlen, "%s: %s", path, strerror(errno));
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        err = ws_fail(WS_ERR_INVALID, errbuf, errlen, "%s: not a regular file", path);
        goto out_close;
    }
    if ((uint64_t)st.st_size != src->size)
        goto out_different;
    /* pieces of at most CHUNK: a small object (an envelope) takes buffers of its own size */
    size_t cap = src->size < CHUNK ? (size_t)src->size + 1 : CHUNK;
    if (!(theirs = malloc(cap)) || (src->fd >= 0 && !(ours = malloc(cap)))) {
        err = ws_fail(WS_ERR_NOMEM, errbuf, errlen, "%s: out of memory", path);
        goto out_free;
    }
    for (uint64_t off = 0; off < src->size;) {
        size_t n = src->size - off < CHUNK ? (size_t)(src->size - off) : CHUNK;
        if ((e = read_at(fd, off, theirs, n, &got))) {
            err = ws_fail(WS_ERR_IO, errbuf, errlen, "%s: read: %s", path, strerror(e));
            goto out_free;
        }
        if (got < n) /* it shrank under us: not our bytes */
            goto out_different;
        if ((err = source_chunk(src, off, ours, n, &chunk, errbuf, errlen)))
            goto out_free;
        if (memcmp(theirs, chunk, n) != 0)
            goto out_different;
        off += n;
    }
    goto out_free;
out_different:
    err = ws_fail(WS_ERR_EXISTS_DIFFERENT, errbuf, errlen,
                  "%s exists with different content (%lld bytes, ours %llu)", path,
                  (long long)st.st_size, (unsigned long long)src->size);
out_free:
    free(theirs);
    free(ours);
out_close:
    close(fd);
    return err;
}

/*
 * Is the object to be written? NOT_FOUND: yes; WS_OK: identical bytes are already there (write
 * once); any other error stands.
 */
static ws_err_t needs_write(const char *path, const struct source *src, char *errbuf, size_t errlen)
{
    return compare_existing(path, src, errbuf, errlen);
}

/*
 * The spool's file itself as the object: a hard link to it under the object's name. The spool
 * fsynced the file's bytes before renaming it into place (disk/spool.c), so the new name needs
 * only its directory's fsync, which the caller does once for the window. WS_OK: linked, or our
 * bytes were already there (write once: EEXIST is compared); WS_ERR_NOT_FOUND: no link can be
 * made here (another filesystem, or one without hard links: f->no_link from then on, copies);
 * any other error stands. The bytes were checked through src, the link is made by name: what
 * the new name holds is checked again (want: the inode src->fd is open on; NULL: the bytes,
 * for a small envelope), and a link to anything else is taken back (the spool's name moved to
 * another file in between; retriable).
 */
static ws_err_t put_link(struct file_sink *f, const char *from, const char *path,
                         const struct source *src, const struct stat *want, char *errbuf,
                         size_t errlen)
{
    struct stat got;
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    ws_err_t err;

    if (slash && slash != path) {
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
        if ((err = ws_mkdirs(dir, errbuf, errlen)))
            return err;
    }
    if (linkat(AT_FDCWD, from, AT_FDCWD, path, 0) == 0) {
        if (want ? stat(path, &got) == 0 && got.st_dev == want->st_dev && got.st_ino == want->st_ino
                 : compare_existing(path, src, errbuf, errlen) == WS_OK)
            return WS_OK;
        unlink(path);
        return ws_fail(WS_ERR_IO, errbuf, errlen, "%s: the spool file changed while it was linked",
                       path);
    }
    switch (errno) {
    case EEXIST: /* another writer since needs_write: ours only if it holds our bytes */
        err = compare_existing(path, src, errbuf, errlen);
        return err != WS_ERR_NOT_FOUND ? err
                                       : ws_fail(WS_ERR_IO, errbuf, errlen,
                                                 "%s appeared and went while it was linked", path);
    case EXDEV:
    case EPERM: /* a filesystem without hard links (FAT, some FUSE and network mounts) */
    case EOPNOTSUPP:
    case ENOSYS: /* FUSE without link support (sshfs without its hardlink extension) */
    case EMLINK:
        f->no_link = errno != EMLINK;
        return WS_ERR_NOT_FOUND;
    default:
        return ws_fail(ws_errno_local(errno), errbuf, errlen, "link %s -> %s: %s", from, path,
                       strerror(errno));
    }
}

static ws_err_t file_create(const void *opts, const struct ws_sink_ctx *ctx, struct ws_sink **out,
                            char *errbuf, size_t errlen)
{
    const struct file_conf *conf = opts;
    const char *prefix = conf->prefix ? conf->prefix : "";
    struct file_sink *f;
    size_t n;
    ws_err_t err;

    if (!conf->path || !*conf->path)
        return ws_fail(WS_ERR_CONFIG, errbuf, errlen, "file sink: path is required");
    n = strlen(conf->path) + strlen(prefix) + 2;
    if (!(f = calloc(1, sizeof *f)) || !(f->dir = malloc(n))) {
        free(f);
        return ws_fail(WS_ERR_NOMEM, errbuf, errlen, "file sink: out of memory");
    }
    snprintf(f->dir, n, "%s%s%s", conf->path, conf->path[strlen(conf->path) - 1] == '/' ? "" : "/",
             prefix);
    if ((err = ws_mkdirs(conf->path, errbuf, errlen))) {
        free(f->dir);
        free(f);
        return err;
    }
    if (ctx && ctx->io_uring) { /* the kernel's answer once: refused, syscalls from here on */
        struct io_uring ring;
        if ((f->uring = io_uring_queue_init(RING_ENTRIES, &ring, 0) == 0))
            io_uring_queue_exit(&ring);
    }
    f->no_link = !conf->link;
    f->base.ops = &ws_sink_file_ops;
    snprintf(f->base.label, sizeof f->base.label, "file:%s", conf->path);
    *out = &f->base;
    return WS_OK;
}

static ws_err_t file_publish(struct ws_sink *s, const struct ws_artifact *a, char *errbuf,
                             size_t errlen)
{
    struct file_sink *f = (struct file_sink *)s;
    struct source ev = {.path = a->evidence_path};
    struct source env = {.fd = -1, .mem = a->envelope, .size = a->envelope_len};
    struct source ck = {.fd = -1, .mem = a->checkpoint, .size = a->checkpoint_len};
    char name[256], evpath[PATH_MAX], envpath[PATH_MAX], ckpath[PATH_MAX], why[512] = "";
    char scratch[512];
    struct put set[MAX_PUTS];
    struct stat st;
    size_t n = 0, copies;
    ws_err_t err, env_err;

    if ((ev.fd = open(a->evidence_path, O_RDONLY | O_CLOEXEC)) < 0)
        return ws_fail(WS_ERR_IO, errbuf, errlen, "spool %s: %s", a->evidence_path,
                       strerror(errno));
    if (fstat(ev.fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(ev.fd);
        return ws_fail(WS_ERR_IO, errbuf, errlen, "spool %s: not a regular file", a->evidence_path);
    }
    ev.size = (uint64_t)st.st_size;
    ws_object_name(a->query_id, a->batch_id, ".evidence.lz4", name);
    snprintf(evpath, sizeof evpath, "%s%s", f->dir, name);
    ws_object_name(a->query_id, a->batch_id, ".dsse.json", name);
    snprintf(envpath, sizeof envpath, "%s%s", f->dir, name);
    /* The evidence: linked to the spool's file when the two share a filesystem, else copied. */
    err = needs_write(evpath, &ev, errbuf, errlen);
    if (err == WS_ERR_NOT_FOUND && !f->no_link)
        err = put_link(f, a->evidence_path, evpath, &ev, &st, errbuf, errlen);
    if (err == WS_ERR_NOT_FOUND)
        set[n++] = (struct put){.path = evpath, .src = &ev};
    else if (err)
        goto out;
    /* The envelope after it: linked too when the evidence is in place already and the spool's
     * envelope file holds exactly these bytes (an adopted envelope does not). An envelope that
     * differs is reported, but the evidence before it is still written. */
    env_err = needs_write(envpath, &env, why, sizeof why);
    if (env_err == WS_ERR_NOT_FOUND && n == 0 && !f->no_link && a->envelope_path &&
        compare_existing(a->envelope_path, &env, scratch, sizeof scratch) == WS_OK)
        env_err = put_link(f, a->envelope_path, envpath, &env, NULL, why, sizeof why);
    if (env_err == WS_ERR_NOT_FOUND)
        set[n++] = (struct put){.path = envpath, .src = &env};
    copies = n;
    /* The checkpoint last, renamed after the window's objects and made durable by the same
     * directory fsync (it shares their directory); not when the envelope was refused. */
    if (a->checkpoint && (env_err == WS_OK || env_err == WS_ERR_NOT_FOUND)) {
        snprintf(ckpath, sizeof ckpath, "%s%s", f->dir, a->checkpoint_name);
        set[n++] = (struct put){.path = ckpath, .src = &ck, .replace = true};
    }
    /* Nothing left to copy (linked, or already there): fsync their directory anyway, for the
     * links, or in case the renames before a crash never reached the disk (the window then
     * counts as published, I1). A set of the small checkpoint alone goes by syscalls. */
    err = n ? write_set(f->uring && copies, true, set, n, errbuf, errlen)
            : fsync_parent(envpath, errbuf, errlen);
    if (!err && env_err && env_err != WS_ERR_NOT_FOUND)
        err = ws_fail(env_err, errbuf, errlen, "%s", why);
out:
    close(ev.fd);
    return err;
}

static ws_err_t file_put(struct ws_sink *s, const char *name, const void *data, size_t len,
                         char *errbuf, size_t errlen)
{
    struct file_sink *f = (struct file_sink *)s;
    char path[PATH_MAX];

    snprintf(path, sizeof path, "%s%s", f->dir, name);
    return ws_file_write_atomic(path, data, len, errbuf, errlen);
}

static ws_err_t file_get(struct ws_sink *s, const char *name, char **buf, size_t *len, char *errbuf,
                         size_t errlen)
{
    struct file_sink *f = (struct file_sink *)s;
    char path[PATH_MAX];

    snprintf(path, sizeof path, "%s%s", f->dir, name);
    return ws_file_read(path, WS_ENVELOPE_MAX, buf, len, errbuf, errlen);
}

static void file_destroy(struct ws_sink *s)
{
    struct file_sink *f = (struct file_sink *)s;

    free(f->dir);
    free(f);
}

const struct ws_sink_ops ws_sink_file_ops = {
    .type = {.name = "file",
             .options = options,
             .nopts = WS_SINK_NOPTS(options),
             .size = sizeof(struct file_conf)},
    .create = file_create,
    .publish = file_publish,
    .put = file_put,
    .publishes_checkpoint = true,
    .get = file_get,
    .destroy = file_destroy,
};
