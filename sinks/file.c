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

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHUNK (256u * 1024)

struct file_conf {
    char *path;
    char *prefix;
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
};

struct file_sink {
    struct ws_sink base;
    char *dir; /* path + prefix */
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

/*
 * tmp, fsync, rename; then the directory fsync that makes the rename durable, unless sync_dir is
 * false because the caller renames another file into the same directory next and fsyncs it
 * once for both (the evidence before its envelope).
 */
static ws_err_t write_atomic(const char *path, const struct source *src, bool sync_dir,
                             char *errbuf, size_t errlen)
{
    char tmp[PATH_MAX], dir[PATH_MAX], *buf = NULL;
    const char *slash = strrchr(path, '/');
    const char *chunk;
    ws_err_t err;
    int fd;

    if (slash && slash != path) {
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
        if ((err = ws_mkdirs(dir, errbuf, errlen)))
            return err;
    }
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return ws_fail(WS_ERR_INVALID, errbuf, errlen, "%s: path too long", path);
    if (src->fd >= 0 && !(buf = malloc(CHUNK)))
        return ws_fail(WS_ERR_NOMEM, errbuf, errlen, "%s: out of memory", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        err = ws_fail(ws_errno_local(errno), errbuf, errlen, "open %s: %s", tmp, strerror(errno));
        goto out_free;
    }
    for (uint64_t off = 0; off < src->size;) {
        size_t n = src->size - off < CHUNK ? (size_t)(src->size - off) : CHUNK;
        if ((err = source_chunk(src, off, buf, n, &chunk, errbuf, errlen)) ||
            (err = write_all(fd, chunk, n, tmp, errbuf, errlen)))
            goto out_unlink;
        off += n;
    }
    if (fsync(fd) < 0) {
        err = ws_fail(ws_errno_local(errno), errbuf, errlen, "fsync %s: %s", tmp, strerror(errno));
        goto out_unlink;
    }
    close(fd);
    fd = -1;
    if (rename(tmp, path) < 0) {
        err =
            ws_fail(ws_errno_local(errno), errbuf, errlen, "rename %s: %s", path, strerror(errno));
        goto out_unlink;
    }
    err = sync_dir ? fsync_parent(path, errbuf, errlen) : WS_OK;
    goto out_free;
out_unlink:
    if (fd >= 0)
        close(fd);
    unlink(tmp);
out_free:
    free(buf);
    return err;
}

ws_err_t ws_file_write_atomic(const char *path, const void *data, size_t len, char *errbuf,
                              size_t errlen)
{
    struct source src = {.fd = -1, .mem = data, .size = len};

    return write_atomic(path, &src, true, errbuf, errlen);
}

/*
 * Existing object against our bytes, chunk by chunk: identical -> WS_OK, other bytes ->
 * EXISTS_DIFFERENT, none -> NOT_FOUND.
 */
static ws_err_t compare_existing(const char *path, const struct source *src, char *errbuf,
                                 size_t errlen)
{
    char *theirs = NULL, *ours = NULL;
    const char *chunk;
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
    if (!(theirs = malloc(CHUNK)) || (src->fd >= 0 && !(ours = malloc(CHUNK)))) {
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

/* Write once: identical bytes already there are success (*wrote false). */
static ws_err_t put_once(const char *path, const struct source *src, bool sync_dir, bool *wrote,
                         char *errbuf, size_t errlen)
{
    ws_err_t err = compare_existing(path, src, errbuf, errlen);

    *wrote = false;
    if (err != WS_ERR_NOT_FOUND)
        return err;
    *wrote = true;
    return write_atomic(path, src, sync_dir, errbuf, errlen);
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
    char name[256], path[PATH_MAX];
    struct stat st;
    bool wrote_ev, wrote_env;
    ws_err_t err;

    if ((ev.fd = open(a->evidence_path, O_RDONLY | O_CLOEXEC)) < 0)
        return ws_fail(WS_ERR_IO, errbuf, errlen, "spool %s: %s", a->evidence_path,
                       strerror(errno));
    if (fstat(ev.fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(ev.fd);
        return ws_fail(WS_ERR_IO, errbuf, errlen, "spool %s: not a regular file", a->evidence_path);
    }
    ev.size = (uint64_t)st.st_size;
    ws_object_name(a->query_id, a->batch_id, ".evidence.lz4", name);
    snprintf(path, sizeof path, "%s%s", f->dir, name);
    /* one directory fsync for both renames: the envelope's (same directory, renamed second) */
    err = put_once(path, &ev, false, &wrote_ev, errbuf, errlen);
    close(ev.fd);
    if (err)
        return err;
    ws_object_name(a->query_id, a->batch_id, ".dsse.json", name);
    snprintf(path, sizeof path, "%s%s", f->dir, name);
    if ((err = put_once(path, &env, true, &wrote_env, errbuf, errlen)))
        return err;
    return wrote_ev && !wrote_env ? fsync_parent(path, errbuf, errlen) : WS_OK;
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
    .get = file_get,
    .destroy = file_destroy,
};
