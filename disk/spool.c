/*
 * spool.c — the local spool: a window's evidence archive and envelope are durable on local disk
 * before any sink sees them, so a sink outage or a crash never forces recomputing a window
 * whose records may meanwhile have left Kafka's retention.
 *
 * Layout mirrors the object stores: <spool>/<queryId>/<batch20>.evidence.lz4 and .dsse.json.
 * Each file is written to "<name>.tmp", fsynced, renamed into place and the directory fsynced;
 * the evidence first, then the envelope, so an envelope in the spool means a complete window
 * (ws_spool_lookup). Removal goes the other way round: envelope first. The engine overlaps the
 * two fsyncs (ws_spool_sync_start, then ws_spool_commit_with_envelope): the evidence's runs
 * while the window is sealed and its envelope written, and both renames wait for both fsyncs,
 * evidence first, then one directory fsync; the order of what becomes visible is unchanged.
 *
 * Write path. Bytes are staged in SPOOL_NBUF page-aligned blocks of SPOOL_BLOCK bytes; a full
 * block is written at its (block-aligned) file offset while the caller goes on producing the
 * next one, so several writes are in flight. With io_uring the final block's write is linked to
 * the fsync (IOSQE_IO_LINK) and both go to the kernel in one call after the earlier writes
 * completed (a linked fsync only orders after its own link, so the earlier ones are reaped
 * first). Without io_uring the same blocks go out with pwrite() at the same offsets, then
 * fsync(): the bytes on disk are identical either way, only the syscalls differ. Every
 * SPOOL_WB_BYTES of a file the writeback of what is written so far is started
 * (sync_file_range WRITE, start_writeback), so that a big evidence's fsync does not write it all.
 *
 * Errors are sticky per file (like Redis' rio): a write that fails in the kernel is seen at the
 * next write or at commit; on any error the temporary file is removed, so nothing partial is
 * ever visible under a final name. ENOSPC marks the spool full until something is committed or
 * removed, which pauses intake (engine/engine.c) instead of dropping windows.
 *
 * Recycling. A delivered window's two files are not unlinked but renamed into <spool>/.free
 * and truncated to zero; the next file begun takes one from there (a rename to its .tmp name)
 * instead of creating a new one, like RocksDB's recycled WAL files. File creation is what the
 * spool's churn costs the most: an inode allocated and freed twice a window, and on an ext4
 * without a journal (this project's CI machines) every creation scans past the inodes freed in
 * the last seconds (find_inode_bit, recently_deleted: ~0.3 ms of kernel CPU a file at 100+
 * windows/s, measured with perf, for our creations and the object store's on the same disk).
 * A file that another name still links (a file sink's hard link, st_nlink > 1) is never
 * recycled: it is that sink's object. At most SPOOL_NFREE files wait, all empty. Only the
 * spool's owner (the lock below) recycles, and only while no other process shares the spool
 * (they hold <spool>/.share shared; see release()): an unlinked file stays intact for whoever
 * still has it open, an emptied one would not. .free is opened once without following links
 * and must be our own directory, so a symlink there cannot aim the emptying anywhere else; it is
 * skipped by the byte count and by lookups and emptied at every start, and a crash anywhere
 * leaves a file in .free or a .tmp file, both removed at the next start. So after
 * ws_spool_remove a file's bytes may change: no reader keeps a spool path or descriptor past
 * it, and only a hard link keeps a file as it was.
 *
 * Size bound: the byte count is kept in memory from a scan at open plus what this process
 * writes and removes, so ws_spool_full() costs nothing on the hot path. Crossing the bound is
 * logged once each way (spool_paused / spool_resumed) and counted (ws_spool_get_stats).
 *
 * One process per spool directory: an advisory lock (<spool>/.lock) is taken at open; the owner
 * removes temporary files left by a crash. A second process sharing the directory is warned
 * about and leaves them alone.
 *
 * Threads. The engine's build workers write windows concurrently: any thread may use the
 * spool, one thread per ws_spool_file. What files share — the byte count and its full/paused
 * state, the staging-block pool, the rings — is under one mutex, held only for bookkeeping,
 * never across a system call that waits. io_uring rings are not shared between threads
 * (disk/uring.h), so each open file takes a ring of its own from the spool's free list (made on
 * first need, kept for the next file): a file's completions are all its own. A ring that cannot
 * be made (the kernel's limit) leaves that one file on the syscall path: same bytes.
 */
#include "disk/disk.h"
#include "config/config.h"
#include "disk/testhook.h"
#include "disk/uring.h"

#include <dirent.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * x SPOOL_NBUF: what one open file stages, any size. 128 KiB: ext4 takes no buffered write
 * from io_uring without blocking, so each block is handed to a kernel worker thread (iou-wrk)
 * and its completion wakes the writer. bench_spool, 64 MiB of incompressible evidence, CPU
 * medians: 64 KiB blocks 38-39 ms, and 43-46 ms once writeback (below) was started every MiB;
 * 128 KiB with it 35-38 ms; syscalls 21-22 ms. 256 KiB saved no more and raised the 1 M-record
 * window's peak RSS (bench_e2e memory).
 */
#define SPOOL_BLOCK (128u << 10)
#define SPOOL_NBUF 4
#define TAG_FSYNC SPOOL_NBUF      /* user_data index of a file's fsync */
#define TAG_WB (SPOOL_NBUF + 1)   /* ... and of a writeback start (Write path) */
#define SPOOL_WB_BYTES (1u << 20) /* writeback started every this many bytes of a file */
_Static_assert(TAG_WB <= 7, "request tags live in the low 3 bits of a 16-byte-aligned pointer");
#define SPOOL_RING 16
#define SPOOL_NRINGS 8 /* rings kept for reuse: one per concurrently open file is enough */
#define SPOOL_NPOOL (SPOOL_NBUF * 4)
#define SPOOL_NFREE 64 /* emptied files kept for reuse (Recycling, above) */
#define FREE_DIR ".free"
#define ALIGN 4096

struct ws_spool {
    char *dir;
    enum ws_io_mode mode;
    bool uring;         /* io_uring chosen for this spool (mode and the kernel's answer at open) */
    pthread_mutex_t mu; /* guards everything below it */
    struct ws_uring *rings[SPOOL_NRINGS]; /* idle rings, ready for the next file */
    unsigned nrings;
    int lock_fd;
    uint64_t max_bytes;
    uint64_t bytes;
    bool nospace;    /* the disk refused a write: paused until a commit or removal */
    bool was_full;   /* for logging the transitions once */
    uint64_t pauses; /* times the spool became full */
    uint64_t nospace_errors;
    uint64_t writebacks;        /* writeback starts (start_writeback) */
    uint8_t *pool[SPOOL_NPOOL]; /* staging blocks kept for the next file */
    unsigned npool;
    bool recycle; /* this process owns the spool and .free is usable: files are recycled */
    int free_fd;  /* <dir>/.free, opened without following links; -1 */
    int share_fd; /* <dir>/.share: other processes hold it shared (release()); -1 */
    pthread_mutex_t recycle_mu;       /* one release() at a time holds .share exclusively */
    uint64_t free_names[SPOOL_NFREE]; /* emptied files in <dir>/.free, by name */
    unsigned nfree;
    uint64_t free_next; /* next name for a file going to .free */
};

struct block {
    uint8_t *p;
    size_t len;    /* bytes staged */
    size_t done;   /* bytes the kernel has written (a short write resubmits the rest) */
    uint64_t off;  /* file offset of p[0] */
    bool busy;     /* staged or in flight */
    bool inflight; /* a write of it is with the kernel */
};

struct ws_spool_file {
    struct ws_spool *spool;
    struct ws_uring *ring; /* this file's own, or NULL: plain syscalls */
    int fd;
    uint64_t next_off; /* file offset of the next staged byte's block start */
    struct block blk[SPOOL_NBUF];
    int cur;          /* block being filled, -1 if none */
    uint64_t written; /* bytes accepted, counted in the spool's total */
    ws_err_t sticky;  /* first error: many writes, one check */
    int sticky_errno;
    bool sync_started;  /* sync_start ran: the last write and the fsync are on their way */
    int last;           /* after sync_start: the final block (in flight until sync_finish), -1 */
    bool sync_finished; /* sync_finish ran: durable, or sticky says why not */
    bool sync_done;     /* the linked fsync completed (or was cancelled): sync_res */
    int sync_res;
    bool wb;         /* writeback is started as the file grows (off once the kernel refuses) */
    uint64_t wb_off; /* writeback was started for [0, wb_off) */
    char tmp[PATH_MAX];
    char path[PATH_MAX];
};

/* Callers hold s->mu. */
static bool is_full(const struct ws_spool *s)
{
    return s->bytes >= s->max_bytes || s->nospace;
}

/* Callers hold s->mu. */
static void note_bytes(struct ws_spool *s)
{
    bool full = is_full(s);

    if (full && !s->was_full) {
        s->pauses++;
        ws_log(WS_LOG_WARN, "spool_paused",
               "bytes=%llu max_bytes=%llu disk_full=%s action=\"intake paused until sinks catch "
               "up\"",
               (unsigned long long)s->bytes, (unsigned long long)s->max_bytes,
               s->nospace ? "true" : "false");
    } else if (!full && s->was_full) {
        ws_log(WS_LOG_INFO, "spool_resumed", "bytes=%llu max_bytes=%llu",
               (unsigned long long)s->bytes, (unsigned long long)s->max_bytes);
    }
    s->was_full = full;
}

static void spool_lock(const struct ws_spool *s)
{
    pthread_mutex_lock((pthread_mutex_t *)&s->mu); /* const readers take it too */
}

static void spool_unlock(const struct ws_spool *s)
{
    pthread_mutex_unlock((pthread_mutex_t *)&s->mu);
}

static void bytes_add(struct ws_spool *s, uint64_t n)
{
    spool_lock(s);
    s->bytes += n;
    note_bytes(s);
    spool_unlock(s);
}

static void bytes_sub(struct ws_spool *s, uint64_t n)
{
    spool_lock(s);
    s->bytes -= n < s->bytes ? n : s->bytes;
    note_bytes(s);
    spool_unlock(s);
}

/* Room was made (a commit or a removal): a disk-full pause may end. */
static void room_made(struct ws_spool *s)
{
    spool_lock(s);
    if (s->nospace) {
        s->nospace = false;
        note_bytes(s);
    }
    spool_unlock(s);
}

/* A ring for a file being opened: an idle one, or a new one; NULL: syscalls for this file. */
static struct ws_uring *ring_get(struct ws_spool *s)
{
    struct ws_uring *u = NULL;

    if (!s->uring)
        return NULL;
    spool_lock(s);
    if (s->nrings)
        u = s->rings[--s->nrings];
    spool_unlock(s);
    if (u)
        return u;
    if (!(u = calloc(1, sizeof *u)))
        return NULL;
    if (ws_uring_init(u, SPOOL_RING) != 0) {
        free(u);
        return NULL;
    }
    return u;
}

static void ring_free(struct ws_uring *u)
{
    if (u) {
        ws_uring_exit(u);
        free(u);
    }
}

/* Back to the idle list; a ring with requests still in flight is not reused. */
static void ring_put(struct ws_spool *s, struct ws_uring *u)
{
    if (!u)
        return;
    if (!u->inflight) {
        spool_lock(s);
        if (s->nrings < SPOOL_NRINGS) {
            s->rings[s->nrings++] = u;
            u = NULL;
        }
        spool_unlock(s);
    }
    ring_free(u);
}

static bool is_tmp_name(const char *name)
{
    size_t n = strlen(name);
    return (n > 4 && strcmp(name + n - 4, ".tmp") == 0) || strstr(name, ".tmp.") != NULL;
}

/* Sum of regular files under dir; with clean, temporary files of a crashed run are removed. */
static uint64_t scan_bytes(const char *dir, bool clean, int depth)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    uint64_t total = 0;
    char p[PATH_MAX];
    struct stat st;

    if (!d)
        return 0;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        if (snprintf(p, sizeof p, "%s/%s", dir, de->d_name) >= (int)sizeof p)
            continue;
        if (lstat(p, &st) < 0)
            continue;
        if (S_ISDIR(st.st_mode) && depth < 2)
            total += scan_bytes(p, clean, depth + 1);
        else if (S_ISREG(st.st_mode) && clean && is_tmp_name(de->d_name) && unlink(p) == 0)
            ws_log(WS_LOG_INFO, "spool_tmp_removed", "path=\"%s\"", p);
        else if (S_ISREG(st.st_mode))
            total += (uint64_t)st.st_size;
    }
    closedir(d);
    return total;
}

static void free_name(uint64_t name, char *out, size_t cap)
{
    snprintf(out, cap, "%llu", (unsigned long long)name);
}

/*
 * The owner's .free, opened once without following a symlink and only if it is a directory of
 * ours, then emptied of what a previous run left (reuse starts afresh: nothing found there is
 * trusted). Any doubt leaves recycling off: files are then created and unlinked as before.
 */
static void free_open(struct ws_spool *s)
{
    char dir[PATH_MAX];
    struct dirent *de;
    struct stat st;
    DIR *d;
    int fd, dup_fd;

    snprintf(dir, sizeof dir, "%s/" FREE_DIR, s->dir);
    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        return;
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return;
    if (fstat(fd, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
        (dup_fd = dup(fd)) < 0 || !(d = fdopendir(dup_fd))) {
        close(fd);
        return;
    }
    while ((de = readdir(d)))
        if (de->d_name[0] != '.')
            unlinkat(fd, de->d_name, 0); /* a directory there stays, and is never used */
    closedir(d);
    s->free_fd = fd;
    s->recycle = true;
}

/* Off for good after an error that will repeat (another filesystem, permissions). */
static void recycle_off(struct ws_spool *s, int err)
{
    if (err != EXDEV && err != EACCES && err != EPERM && err != EROFS)
        return;
    spool_lock(s);
    if (s->recycle)
        ws_log(WS_LOG_WARN, "spool_recycle_off", "path=\"%s\" reason=\"%s\"", s->dir,
               strerror(err));
    s->recycle = false;
    spool_unlock(s);
}

/* Open a regular, singly linked file for writing, or -1; O_NONBLOCK so that a FIFO put in our
 * way cannot hang the open (cleared again for the writes). */
static int open_regular(const char *path, int flags)
{
    struct stat st;
    int fd = open(path, flags | O_WRONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0644);

    if (fd < 0)
        return -1;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1 ||
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0) {
        close(fd);
        errno = EEXIST;
        return -1;
    }
    return fd;
}

/* Create tmp for writing: an emptied file from .free renamed to it, else a new one. */
static int open_tmp(struct ws_spool *s, const char *tmp)
{
    char name[32];
    uint64_t n = 0;
    bool have = false;
    int fd;

    spool_lock(s);
    if (s->recycle && s->nfree > 0) {
        n = s->free_names[--s->nfree];
        have = true;
    }
    spool_unlock(s);
    if (have) {
        free_name(n, name, sizeof name);
        if (renameat(s->free_fd, name, AT_FDCWD, tmp) == 0) {
            if ((fd = open_regular(tmp, O_TRUNC)) >= 0)
                return fd;
            unlink(tmp); /* not the file we left there: gone, and a new one made below */
        } else {
            recycle_off(s, errno);
            unlinkat(s->free_fd, name, 0); /* never left behind untracked */
        }
    }
    fd = open_regular(tmp, O_CREAT | O_TRUNC);
    if (fd < 0 && errno == EEXIST) { /* something other than our file holds the name */
        unlink(tmp);
        fd = open_regular(tmp, O_CREAT | O_EXCL);
    }
    return fd;
}

/*
 * A delivered window's file leaves the spool: into .free when it may be reused, else unlinked.
 * Reused only if it is a regular file no other name links (st: lstat by the caller; a file
 * sink's hard link is that sink's object), .free has room, and no other process shares the
 * spool: those take the .share lock shared for their life, and the owner recycles only while it
 * can hold it exclusively (serialized by recycle_mu), so no file another process may be reading
 * or linking is ever emptied. Renamed first, then checked (same inode, still one link) and
 * emptied; a crash in between leaves a file in .free, removed at the next start. 0, or -1
 * (errno) as unlink.
 */
static int release(struct ws_spool *s, const char *path, const struct stat *st)
{
    char name[32];
    struct stat now;
    uint64_t n = 0;
    bool slot = false, kept = false;
    int fd, rc = 0;

    if (!S_ISREG(st->st_mode) || st->st_nlink != 1)
        return unlink(path);
    pthread_mutex_lock(&s->recycle_mu);
    if (flock(s->share_fd, LOCK_EX | LOCK_NB) == 0) {
        spool_lock(s);
        if (s->recycle && s->nfree < SPOOL_NFREE) {
            n = s->free_next++;
            slot = true;
        }
        spool_unlock(s);
    }
    if (!slot) {
        rc = unlink(path);
        goto out;
    }
    free_name(n, name, sizeof name);
    if (renameat(AT_FDCWD, path, s->free_fd, name) < 0) {
        recycle_off(s, errno);
        rc = unlink(path);
        goto out;
    }
    fd = openat(s->free_fd, name, O_WRONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd >= 0 && fstat(fd, &now) == 0 && S_ISREG(now.st_mode) && now.st_ino == st->st_ino &&
        now.st_dev == st->st_dev && now.st_nlink == 1 && ftruncate(fd, 0) == 0) {
        spool_lock(s);
        if (s->nfree < SPOOL_NFREE) {
            s->free_names[s->nfree++] = n;
            kept = true;
        }
        spool_unlock(s);
    }
    if (fd >= 0)
        close(fd);
    if (!kept)
        unlinkat(s->free_fd, name, 0); /* out of the spool either way */
out:
    flock(s->share_fd, LOCK_UN);
    pthread_mutex_unlock(&s->recycle_mu);
    return rc;
}

ws_err_t ws_spool_open(const char *path, enum ws_io_mode mode, uint64_t max_bytes,
                       struct ws_spool **out, char *errbuf, size_t errlen)
{
    struct ws_spool *s;
    char lock[PATH_MAX];
    size_t n = strlen(path);
    bool owner = false;
    ws_err_t err;
    int rc;

    if (n == 0 || n >= PATH_MAX - 300)
        return ws_fail(WS_ERR_CONFIG, errbuf, errlen, "spool.path: empty or too long");
    if (!(s = calloc(1, sizeof *s)) || !(s->dir = strdup(path))) {
        free(s);
        return WS_ERR_NOMEM;
    }
    s->lock_fd = -1;
    s->free_fd = -1;
    s->share_fd = -1;
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->recycle_mu, NULL);
    while (n > 1 && s->dir[n - 1] == '/')
        s->dir[--n] = '\0';
    if ((err = ws_mkdirs(s->dir, errbuf, errlen)))
        goto out_close;
    if (access(s->dir, W_OK) < 0) {
        err = ws_fail(WS_ERR_PERMISSION, errbuf, errlen, "spool %s: %s", s->dir, strerror(errno));
        goto out_close;
    }
    s->mode = mode;
    s->max_bytes = max_bytes;
    if (mode != WS_IO_OFF) {
        struct ws_uring *u = calloc(1, sizeof *u);
        rc = u ? ws_uring_init(u, SPOOL_RING) : -ENOMEM;
        if (rc == 0) {
            s->uring = true;
            s->rings[s->nrings++] = u; /* the first file's */
            u = NULL;
        }
        free(u);
        if (rc == 0) {
        } else if (mode == WS_IO_ON) {
            err = ws_fail(WS_ERR_CONFIG, errbuf, errlen,
                          "spool.io_uring is \"on\" but the kernel refused io_uring "
                          "(io_uring_setup: %s; check kernel.io_uring_disabled, seccomp or the "
                          "container's policy), or set spool.io_uring to \"auto\" or \"off\"",
                          strerror(-rc));
            goto out_close;
        } else {
            ws_log(WS_LOG_WARN, "spool_io",
                   "backend=syscalls mode=auto reason=\"io_uring_setup: %s\"", strerror(-rc));
        }
    }
    if (s->uring || mode == WS_IO_OFF)
        ws_log(WS_LOG_INFO, "spool_io", "backend=%s mode=%s path=\"%s\"",
               s->uring ? "io_uring" : "syscalls",
               mode == WS_IO_ON    ? "on"
               : mode == WS_IO_OFF ? "off"
                                   : "auto",
               s->dir);
    snprintf(lock, sizeof lock, "%s/.lock", s->dir);
    s->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (s->lock_fd >= 0 && flock(s->lock_fd, LOCK_EX | LOCK_NB) == 0)
        owner = true;
    else
        ws_log(WS_LOG_WARN, "spool_shared",
               "path=\"%s\" reason=\"another process holds the spool lock; temporary files are "
               "left alone\"",
               s->dir);
    s->bytes = scan_bytes(s->dir, owner, 0);
    snprintf(lock, sizeof lock, "%s/.share", s->dir);
    s->share_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (owner && s->share_fd >= 0)
        free_open(s);
    else if (s->share_fd >= 0)
        flock(s->share_fd, LOCK_SH); /* for our life: the owner no longer recycles (release()) */
    spool_lock(s);
    note_bytes(s);
    spool_unlock(s);
    *out = s;
    return WS_OK;
out_close:
    ws_spool_close(s);
    return err;
}

void ws_spool_close(struct ws_spool *s)
{
    if (!s)
        return;
    for (unsigned i = 0; i < s->nrings; i++)
        ring_free(s->rings[i]);
    for (unsigned i = 0; i < s->npool; i++)
        free(s->pool[i]);
    if (s->lock_fd >= 0)
        close(s->lock_fd); /* releases the lock */
    if (s->share_fd >= 0)
        close(s->share_fd);
    if (s->free_fd >= 0)
        close(s->free_fd);
    pthread_mutex_destroy(&s->recycle_mu);
    pthread_mutex_destroy(&s->mu);
    free(s->dir);
    free(s);
}

bool ws_spool_uses_io_uring(const struct ws_spool *s)
{
    return s && s->uring;
}

uint64_t ws_spool_bytes(const struct ws_spool *s)
{
    uint64_t n;

    spool_lock(s);
    n = s->bytes;
    spool_unlock(s);
    return n;
}

bool ws_spool_full(const struct ws_spool *s)
{
    bool full;

    spool_lock(s);
    full = is_full(s);
    spool_unlock(s);
    return full;
}

void ws_spool_get_stats(const struct ws_spool *s, struct ws_spool_stats *st)
{
    spool_lock(s);
    st->bytes = s->bytes;
    st->max_bytes = s->max_bytes;
    st->full = is_full(s);
    st->disk_full = s->nospace;
    st->io_uring = s->uring;
    st->pauses = s->pauses;
    st->nospace_errors = s->nospace_errors;
    st->writebacks = s->writebacks;
    spool_unlock(s);
}

void ws_spool_path(const struct ws_spool *s, const char *query_id, int64_t batch_id,
                   const char *suffix, char *out)
{
    char name[256];

    ws_object_name(query_id, batch_id, suffix, name);
    snprintf(out, PATH_MAX, "%s/%s", s->dir, name);
}

/* ------------------------------------------------------------------------------------------ */
/* Staging blocks and the two write backends                                                      */

static uint8_t *block_get(struct ws_spool *s)
{
    void *p = NULL;

    spool_lock(s);
    if (s->npool)
        p = s->pool[--s->npool];
    spool_unlock(s);
    if (p)
        return p;
    return posix_memalign(&p, ALIGN, SPOOL_BLOCK) ? NULL : p;
}

static void block_put(struct ws_spool *s, uint8_t *p)
{
    if (!p)
        return;
    spool_lock(s);
    if (s->npool < SPOOL_NPOOL) {
        s->pool[s->npool++] = p;
        p = NULL;
    }
    spool_unlock(s);
    free(p);
}

static void set_sticky(struct ws_spool_file *f, int err)
{
    if (err < 0)
        err = -err;
    if (f->sticky)
        return;
    f->sticky = ws_errno_local(err);
    f->sticky_errno = err;
    if (f->sticky == WS_ERR_NOSPACE) {
        spool_lock(f->spool);
        f->spool->nospace = true;
        f->spool->nospace_errors++;
        note_bytes(f->spool);
        spool_unlock(f->spool);
    }
}

static void pwrite_block(struct ws_spool_file *f, struct block *b)
{
    while (b->done < b->len && !f->sticky) {
        ssize_t n = pwrite(f->fd, b->p + b->done, b->len - b->done, (off_t)(b->off + b->done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            set_sticky(f, n < 0 ? errno : ENOSPC);
        else
            b->done += (size_t)n;
    }
    b->busy = false;
}

/* user_data of a request: the file (16-byte aligned) and the block index, or TAG_FSYNC, TAG_WB. */
static uint64_t tag(struct ws_spool_file *f, unsigned idx)
{
    return (uint64_t)(uintptr_t)f | idx;
}

static void prep_write(struct ws_spool_file *f, int idx, unsigned flags)
{
    struct block *b = &f->blk[idx];
    struct io_uring_sqe *sqe = ws_uring_sqe(f->ring);

    if (!sqe) {
        set_sticky(f, EIO);
        return;
    }
    io_uring_prep_write(sqe, f->fd, b->p + b->done, (unsigned)(b->len - b->done), b->off + b->done);
    io_uring_sqe_set_flags(sqe, flags);
    io_uring_sqe_set_data64(sqe, tag(f, idx));
    b->inflight = true;
}

/* A writeback the kernel took (ws_spool_stats.writebacks). */
static void count_writeback(struct ws_spool_file *f)
{
    spool_lock(f->spool);
    f->spool->writebacks++;
    spool_unlock(f->spool);
}

/*
 * One completion of f's ring: a block write (done, a short write's rest resubmitted, or a
 * sticky error) or the fsync. The tag names the file too: asserted to be f (rings are per file).
 */
static void complete(struct ws_spool_file *f, struct io_uring_cqe *cqe)
{
    uint64_t ud = io_uring_cqe_get_data64(cqe);
    unsigned idx = (unsigned)(ud & 7);
    int res = cqe->res;
    struct block *b;

    assert((struct ws_spool_file *)(uintptr_t)(ud & ~(uint64_t)7) == f);
    ws_uring_seen(f->ring, cqe);
    if (idx == TAG_FSYNC) {
        f->sync_res = res;
        f->sync_done = true;
        return;
    }
    if (idx == TAG_WB) {
        /* only a head start for the fsync, which reports any write error itself: a refusal
         * (a filesystem without sync_file_range) just stops asking */
        if (res < 0)
            f->wb = false;
        else
            count_writeback(f);
        return;
    }
    b = &f->blk[idx];
    b->inflight = false;
    if (res < 0) {
        set_sticky(f, res);
        b->busy = false;
    } else if (res == 0) {
        set_sticky(f, ENOSPC); /* a regular file write that makes no progress: out of space */
        b->busy = false;
    } else if ((b->done += (size_t)res) < b->len && !f->sticky) {
        prep_write(f, (int)idx, 0);
    } else {
        b->busy = false;
    }
}

/* Reap one completion, waiting if needed. */
static void reap_one(struct ws_spool_file *f)
{
    struct io_uring_cqe *cqe;
    int rc = ws_uring_wait(f->ring, &cqe);

    if (rc < 0) {
        set_sticky(f, rc);
        return;
    }
    if (cqe)
        complete(f, cqe);
}

/*
 * Start writing back [wb_off, upto) once it is SPOOL_WB_BYTES or more, as RocksDB's
 * bytes_per_sync does: otherwise every byte of a big window's evidence stays dirty in the page
 * cache until its fsync, which then writes them all while the window waits (bench_spool, 64 MiB
 * of incompressible evidence: 31-37 ms waiting at commit before, 9-14 ms with writeback every
 * MiB, the whole write 56-63 ms -> 36-39; every 512 KiB waited longer again, 17-21 ms). SYNC_FILE_RANGE_WRITE
 * only starts the writeback of pages already dirty and waits for nothing durable: a page whose
 * write is still in flight is simply left to the fsync, which alone makes the file durable, so
 * what is on disk, and when it is durable, do not change; only the fsync's wait gets shorter.
 * With io_uring it goes out with the block's write (the kernel's worker does it); without, it
 * is a syscall here.
 */
static void start_writeback(struct ws_spool_file *f, uint64_t upto)
{
    struct io_uring_sqe *sqe;

    /* a block whose write is still queued is not dirty yet: asked for now it would be skipped
     * and never asked for again, so the range ends where the first such block begins */
    for (int i = 0; i < SPOOL_NBUF; i++)
        if (f->blk[i].inflight && f->blk[i].off < upto)
            upto = f->blk[i].off;
    if (!f->wb || f->sticky || upto < f->wb_off + SPOOL_WB_BYTES)
        return;
    if (f->ring) {
        if (!(sqe = ws_uring_sqe(f->ring)))
            return; /* a broken ring: the write beside it reports that */
        io_uring_prep_sync_file_range(sqe, f->fd, (unsigned)(upto - f->wb_off), f->wb_off,
                                      SYNC_FILE_RANGE_WRITE);
        io_uring_sqe_set_data64(sqe, tag(f, TAG_WB));
    } else if (sync_file_range(f->fd, (off_t)f->wb_off, (off_t)(upto - f->wb_off),
                               SYNC_FILE_RANGE_WRITE) < 0) {
        f->wb = false; /* EINVAL, ENOSYS, ESPIPE: this filesystem does without */
        return;
    } else {
        count_writeback(f);
    }
    f->wb_off = upto;
}

static void submit_block(struct ws_spool_file *f, int idx)
{
    struct block *b = &f->blk[idx];

    b->done = 0;
    if (!f->ring) {
        pwrite_block(f, b);
        start_writeback(f, b->off + b->len);
        return;
    }
    start_writeback(f, b->off); /* up to this block, or the first one still queued */
    prep_write(f, idx, 0);
    /* Start it now: the kernel writes this block while the caller compresses the next one. */
    io_uring_submit(&f->ring->ring);
}

static int free_block(struct ws_spool_file *f)
{
    for (;;) {
        bool any_busy = false;
        for (int i = 0; i < SPOOL_NBUF; i++) {
            if (!f->blk[i].busy && (f->blk[i].p || (f->blk[i].p = block_get(f->spool))))
                return i;
            any_busy |= f->blk[i].busy;
        }
        if (!any_busy || f->sticky)
            return -1; /* no memory for a block */
        reap_one(f);
    }
}

static void drain(struct ws_spool_file *f)
{
    if (!f->ring)
        return;
    while (f->ring->inflight)
        reap_one(f);
}

/* ------------------------------------------------------------------------------------------ */
/* Files                                                                                          */

static ws_err_t file_begin(struct ws_spool *s, const char *query_id, int64_t batch_id,
                           const char *suffix, struct ws_spool_file **out, char *errbuf,
                           size_t errlen)
{
    struct ws_spool_file *f;
    char dir[PATH_MAX];
    struct stat st;
    ws_err_t err;

    if (!ws_query_id_safe(query_id, strlen(query_id)))
        return ws_fail(WS_ERR_UNSAFE_ID, errbuf, errlen, "spool: unsafe query id");
    if (!(f = calloc(1, sizeof *f)))
        return WS_ERR_NOMEM;
    f->spool = s;
    f->cur = -1;
    f->last = -1;
    f->wb = true;
    f->fd = -1;
    ws_spool_path(s, query_id, batch_id, suffix, f->path);
    if (snprintf(f->tmp, sizeof f->tmp, "%s.tmp", f->path) >= (int)sizeof f->tmp) {
        err = ws_fail(WS_ERR_INVALID, errbuf, errlen, "spool: path too long");
        goto out_free;
    }
    snprintf(dir, sizeof dir, "%s/%s", s->dir, query_id);
    if (stat(dir, &st) < 0) {
        /* A new query directory: its entry in the spool root must be durable too. */
        if ((err = ws_mkdirs(dir, errbuf, errlen)) || (err = ws_fsync_dir(s->dir, errbuf, errlen)))
            goto out_free;
    }
    f->fd = open_tmp(s, f->tmp);
    if (f->fd < 0) {
        int e = errno;
        set_sticky(f, e);
        err = ws_fail(f->sticky, errbuf, errlen, "spool %s: %s", f->tmp, strerror(e));
        f->tmp[0] = '\0';
        goto out_free;
    }
    f->ring = ring_get(s);
    *out = f;
    return WS_OK;
out_free:
    free(f);
    return err;
}

ws_err_t ws_spool_begin(struct ws_spool *s, const char *query_id, int64_t batch_id,
                        struct ws_spool_file **out, char *errbuf, size_t errlen)
{
    return file_begin(s, query_id, batch_id, ".evidence.lz4", out, errbuf, errlen);
}

#ifndef NDEBUG
/* A file's staging blocks: in flight only when staged, the kernel never past what was staged. */
static bool file_ok(const struct ws_spool_file *f)
{
    uint64_t staged = 0;

    if (!f || !f->spool || f->fd < 0 || f->cur < -1 || f->cur >= SPOOL_NBUF)
        return false;
    if (f->cur >= 0 && !f->blk[f->cur].busy)
        return false;
    for (int i = 0; i < SPOOL_NBUF; i++) {
        const struct block *b = &f->blk[i];
        /* done counts the kernel's progress of the write in flight (stale while filling) */
        if ((b->inflight && (!b->busy || b->done > b->len)) || b->len > SPOOL_BLOCK ||
            (b->busy && !b->p))
            return false;
        if (b->busy)
            staged += b->len - (b->inflight ? b->done : 0);
    }
    return staged <= f->written && (f->sticky != WS_OK || f->sticky_errno == 0);
}
#endif

void ws_spool_check(const struct ws_spool *s)
{
#ifndef NDEBUG
    assert(s && s->dir && s->lock_fd >= 0 && s->max_bytes > 0);
    spool_lock(s);
    assert(s->npool <= SPOOL_NPOOL && s->nrings <= SPOOL_NRINGS);
    for (unsigned i = 0; i < s->npool; i++)
        assert(s->pool[i] != NULL);
    for (unsigned i = 0; i < s->nrings; i++)
        assert(s->rings[i] && !s->rings[i]->inflight); /* idle rings hold no request */
    assert(!s->uring || s->mode != WS_IO_OFF);         /* io_uring only where allowed */
    assert(s->uring || !s->nrings);
    assert(s->nfree <= SPOOL_NFREE && (!s->recycle || (s->free_fd >= 0 && s->share_fd >= 0)));
    for (unsigned i = 0; i < s->nfree; i++)
        assert(s->free_names[i] < s->free_next); /* every waiting name was handed out */
    spool_unlock(s);
#else
    (void)s;
#endif
}

ws_err_t ws_spool_write(void *opaque, const void *buf, size_t len)
{
    struct ws_spool_file *f = opaque;
    const uint8_t *p = buf;

    assert(file_ok(f));
    /* ws_spool_sync_start: the bytes were complete; after a failed commit the file is dead and
     * a write only gets its sticky error back (the write error may surface at commit) */
    assert(!f->sync_started || f->sticky);
    WS_TEST_HOOK("spool_write");
    while (len && !f->sticky) {
        struct block *b;
        size_t n;
        if (f->cur < 0) {
            if ((f->cur = free_block(f)) < 0) {
                if (!f->sticky)
                    f->sticky = WS_ERR_NOMEM;
                break;
            }
            b = &f->blk[f->cur];
            b->busy = true;
            b->len = 0;
            b->off = f->next_off;
            f->next_off += SPOOL_BLOCK;
        }
        b = &f->blk[f->cur];
        n = SPOOL_BLOCK - b->len < len ? SPOOL_BLOCK - b->len : len;
        memcpy(b->p + b->len, p, n);
        b->len += n;
        p += n;
        len -= n;
        f->written += n;
        bytes_add(f->spool, n);
        if (b->len == SPOOL_BLOCK) {
            submit_block(f, f->cur);
            f->cur = -1;
        }
    }
    return f->sticky;
}

/* The last block (linked) and the fsync, in one submission; nothing is waited for. */
static void sync_submit(struct ws_spool_file *f, struct block *b)
{
    struct io_uring_sqe *sqe;

    if (b && b->done < b->len)
        prep_write(f, f->last, IOSQE_IO_LINK);
    if (f->sticky || !(sqe = ws_uring_sqe(f->ring))) {
        set_sticky(f, EIO);
        return;
    }
    io_uring_prep_fsync(sqe, f->fd, 0);
    io_uring_sqe_set_data64(sqe, tag(f, TAG_FSYNC));
    f->sync_done = false;
    io_uring_submit(&f->ring->ring);
}

/*
 * The file's bytes are all written: start the last block's write and the fsync. With io_uring
 * they are linked in one submission and not waited for (sync_finish reaps them), so the caller
 * can go on — sealing the window, writing its envelope — while the disk works. The earlier
 * blocks are reaped first: a linked fsync only orders after its own link. Without io_uring the
 * write and the fsync are done here.
 */
static void sync_start(struct ws_spool_file *f)
{
    struct block *b = f->cur >= 0 ? &f->blk[f->cur] : NULL;

    assert(!f->sync_started);
    f->sync_started = true;
    f->last = f->cur; /* no block is being filled any more: the final one is on its way */
    f->cur = -1;
    drain(f);
    if (b)
        b->done = 0;
    if (!f->ring) {
        if (b)
            pwrite_block(f, b); /* done with it: not busy */
        f->last = -1;
        if (!f->sticky && fsync(f->fd) < 0)
            set_sticky(f, errno);
        return;
    }
    if (!f->sticky)
        sync_submit(f, b);
}

/* Wait for what sync_start submitted; a short final write resubmits its rest (unlinked: the
 * fsync was cancelled) with a new fsync. Afterwards the bytes are durable or f->sticky says why. */
static void sync_finish(struct ws_spool_file *f)
{
    struct block *b = f->last >= 0 ? &f->blk[f->last] : NULL;

    assert(f->sync_started && !f->sync_finished);
    f->sync_finished = true;
    while (f->ring && !f->sticky) {
        while ((!f->sync_done || (b && b->inflight)) && f->ring->inflight && !f->sticky)
            reap_one(f);
        drain(f);
        if (f->sticky)
            break;
        if (!f->sync_done) {
            set_sticky(f, EIO);
            break;
        }
        if (f->sync_res < 0 && f->sync_res != -ECANCELED) {
            set_sticky(f, f->sync_res);
            break;
        }
        if (f->sync_res == 0 && (!b || b->done == b->len))
            break;
        sync_submit(f, b);
    }
    drain(f); /* nothing of ours may stay in flight: the blocks go back to the pool */
    if (b)
        b->busy = false;
    f->last = -1;
}

/* f's sticky error, naming its temporary file and the errno behind it. */
static ws_err_t sticky_fail(const struct ws_spool_file *f, char *errbuf, size_t errlen)
{
    return ws_fail(f->sticky, errbuf, errlen, "spool %s: %s", f->tmp,
                   f->sticky_errno ? strerror(f->sticky_errno) : ws_strerror(f->sticky));
}

/*
 * Flush, fsync, rename into place; the directory fsync only with sync_dir: the evidence is
 * renamed without it, because its envelope is renamed into the same directory next and that
 * directory fsync makes both renames durable — a window is complete in the spool only once its
 * envelope is (ws_spool_lookup), and a crash between the two renames leaves it incomplete.
 */
static ws_err_t file_commit(struct ws_spool_file *f, bool sync_dir, char *errbuf, size_t errlen)
{
    char dir[PATH_MAX];
    struct stat st;
    uint64_t old = 0;

    if (!f->sync_started)
        sync_start(f);
    if (!f->sync_finished)
        sync_finish(f);
    f->cur = -1;
    if (f->sticky)
        return sticky_fail(f, errbuf, errlen);
    if (lstat(f->path, &st) == 0 && S_ISREG(st.st_mode))
        old = (uint64_t)st.st_size; /* a window rebuilt after a crash replaces its old file */
    WS_TEST_HOOK("spool_rename");
    if (rename(f->tmp, f->path) < 0) {
        int e = errno;
        set_sticky(f, e);
        return ws_fail(f->sticky, errbuf, errlen, "spool rename %s: %s", f->path, strerror(e));
    }
    f->tmp[0] = '\0';
    close(f->fd);
    f->fd = -1;
    bytes_sub(f->spool, old);
    snprintf(dir, sizeof dir, "%s", f->path);
    *strrchr(dir, '/') = '\0';
    room_made(f->spool);
    return sync_dir ? ws_fsync_dir(dir, errbuf, errlen) : WS_OK;
}

void ws_spool_sync_start(struct ws_spool_file *f)
{
    assert(file_ok(f));
    if (!f->sync_started)
        sync_start(f);
}

ws_err_t ws_spool_commit(struct ws_spool_file *f, const char **path, char *errbuf, size_t errlen)
{
    ws_err_t err;

    assert(file_ok(f));
    err = file_commit(f, false, errbuf, errlen);

    if (!err)
        *path = f->path;
    return err;
}

void ws_spool_abort(struct ws_spool_file *f)
{
    if (!f)
        return;
    drain(f); /* the kernel may still be reading our blocks */
    for (int i = 0; i < SPOOL_NBUF; i++) {
        block_put(f->spool, f->blk[i].p);
        f->blk[i].p = NULL;
        f->blk[i].busy = false;
    }
    f->cur = -1;
    if (f->fd >= 0) {
        close(f->fd);
        f->fd = -1;
    }
    if (f->tmp[0]) {
        unlink(f->tmp);
        bytes_sub(f->spool, f->written);
        f->written = 0;
        f->tmp[0] = '\0';
    }
}

void ws_spool_file_free(struct ws_spool_file *f)
{
    if (!f)
        return;
    ws_spool_abort(f);
    ring_put(f->spool, f->ring);
    free(f);
}

/*
 * The envelope of the window whose evidence is ev (sync started, not committed): the envelope's
 * write and fsync go out while the evidence's may still be in flight; once both are durable the
 * evidence is renamed into place, then the envelope, then the one directory fsync (an envelope
 * that cannot be written leaves neither file under its name) — the same order of
 * renames and the same durability as ws_spool_commit followed by ws_spool_put_envelope, with
 * the two fsyncs overlapping instead of one after the other.
 */
ws_err_t ws_spool_commit_with_envelope(struct ws_spool_file *ev, const char *query_id,
                                       int64_t batch_id, const char *env, size_t len,
                                       const char **evidence_path, char *errbuf, size_t errlen)
{
    struct ws_spool_file *f = NULL;
    ws_err_t err;

    assert(file_ok(ev));
    ws_spool_sync_start(ev);
    if ((err = file_begin(ev->spool, query_id, batch_id, ".dsse.json", &f, errbuf, errlen)))
        return err;
    if ((err = ws_spool_write(f, env, len))) {
        ws_fail(err, errbuf, errlen, "spool envelope: %s", ws_strerror(err));
        goto out;
    }
    sync_start(f);
    sync_finish(f); /* the envelope durable before anything is renamed: a failure shows nothing */
    if (f->sticky) {
        err = sticky_fail(f, errbuf, errlen);
        goto out;
    }
    if ((err = file_commit(ev, false, errbuf, errlen)))
        goto out; /* the envelope's temporary file goes with f */
    *evidence_path = ev->path;
    WS_TEST_HOOK("spool_envelope");
    err = file_commit(f, true, errbuf, errlen);
out:
    ws_spool_file_free(f);
    return err;
}

ws_err_t ws_spool_put_envelope(struct ws_spool *s, const char *query_id, int64_t batch_id,
                               const char *env, size_t len, char *errbuf, size_t errlen)
{
    struct ws_spool_file *f = NULL;
    ws_err_t err;

    if ((err = file_begin(s, query_id, batch_id, ".dsse.json", &f, errbuf, errlen)))
        return err;
    if ((err = ws_spool_write(f, env, len)))
        ws_fail(err, errbuf, errlen, "spool envelope: %s", ws_strerror(err));
    else
        err = file_commit(f, true, errbuf, errlen);
    ws_spool_file_free(f);
    return err;
}

/* ------------------------------------------------------------------------------------------ */
/* Resume and cleanup                                                                             */

ws_err_t ws_spool_lookup(struct ws_spool *s, const char *query_id, int64_t batch_id,
                         struct ws_spool_window *out, char *errbuf, size_t errlen)
{
    char env_path[PATH_MAX];
    struct stat st;
    ws_err_t err;
    size_t got = 0;
    int fd;

    memset(out, 0, sizeof *out);
    if (!ws_query_id_safe(query_id, strlen(query_id)))
        return ws_fail(WS_ERR_UNSAFE_ID, errbuf, errlen, "spool: unsafe query id");
    ws_spool_path(s, query_id, batch_id, ".evidence.lz4", out->evidence_path);
    if (lstat(out->evidence_path, &st) < 0 || !S_ISREG(st.st_mode))
        return ws_fail(WS_ERR_NOT_FOUND, errbuf, errlen, "spool: no evidence for %s/%lld", query_id,
                       (long long)batch_id);
    out->evidence_bytes = (uint64_t)st.st_size;
    ws_spool_path(s, query_id, batch_id, ".dsse.json", env_path);
    fd = open(env_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return ws_fail(errno == ENOENT ? WS_ERR_NOT_FOUND : ws_errno_local(errno), errbuf, errlen,
                       "spool %s: %s", env_path, strerror(errno));
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 ||
        (uint64_t)st.st_size > WS_ENVELOPE_MAX) {
        err = ws_fail(WS_ERR_MALFORMED, errbuf, errlen, "spool %s: not a plausible envelope",
                      env_path);
        goto out_close;
    }
    if (!(out->envelope = malloc((size_t)st.st_size + 1))) {
        err = WS_ERR_NOMEM;
        goto out_close;
    }
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, out->envelope + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            err = ws_fail(WS_ERR_IO, errbuf, errlen, "spool read %s: %s", env_path,
                          n < 0 ? strerror(errno) : "file shrank");
            goto out_free;
        }
        got += (size_t)n;
    }
    out->envelope[got] = '\0';
    out->envelope_len = got;
    close(fd);
    return WS_OK;
out_free:
    free(out->envelope);
    out->envelope = NULL;
out_close:
    close(fd);
    return err;
}

void ws_spool_window_free(struct ws_spool_window *w)
{
    free(w->envelope);
    memset(w, 0, sizeof *w);
}

static void remove_one(struct ws_spool *s, const char *path)
{
    struct stat st;

    if (lstat(path, &st) == 0 && release(s, path, &st) == 0)
        bytes_sub(s, S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0);
}

void ws_spool_remove(struct ws_spool *s, const char *query_id, int64_t batch_id)
{
    char path[PATH_MAX];

    if (!ws_query_id_safe(query_id, strlen(query_id)))
        return;
    /* Envelope first: an evidence file without its envelope is an incomplete window. */
    ws_spool_path(s, query_id, batch_id, ".dsse.json", path);
    remove_one(s, path);
    WS_TEST_HOOK("spool_remove");
    ws_spool_path(s, query_id, batch_id, ".evidence.lz4", path);
    remove_one(s, path);
    room_made(s); /* try intake again */
}
