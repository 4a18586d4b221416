/*
 * spool.c — the local spool: a window's evidence archive and envelope are durable on local disk
 * before any sink sees them, so a sink outage or a crash never forces recomputing a window
 * whose records may meanwhile have left Kafka's retention.
 *
 * Layout mirrors the object stores: <spool>/<queryId>/<batch20>.evidence.lz4 and .dsse.json.
 * The evidence is written to "<name>.tmp", fsynced, renamed, and the directory fsynced; the
 * envelope the same way (ws_file_write_atomic). A window is removed once every sink holds it.
 *
 * I/O backend: plain write()/fsync() in this version; `spool.io_uring` is accepted and
 * reported, and the io_uring backend is the subject of its own change (see docs/DESIGN.md).
 * The byte count is kept in memory from a scan at open plus what this process writes and
 * removes, so ws_spool_full() costs nothing on the hot path.
 */
#include "engine/internal.h"
#include "sinks/sink.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct ws_spool {
    char *dir;
    enum ws_io_mode mode;
    uint64_t max_bytes;
    uint64_t bytes;
};

struct ws_spool_file {
    struct ws_spool *spool;
    int fd;
    uint64_t written;
    ws_err_t sticky; /* first write error: many writes, one check (like Redis' rio) */
    char tmp[PATH_MAX];
    char path[PATH_MAX];
};

static uint64_t scan_bytes(const char *dir)
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
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        if (lstat(p, &st) < 0)
            continue;
        if (S_ISDIR(st.st_mode))
            total += scan_bytes(p);
        else if (S_ISREG(st.st_mode))
            total += (uint64_t)st.st_size;
    }
    closedir(d);
    return total;
}

ws_err_t ws_spool_open(const char *path, enum ws_io_mode mode, uint64_t max_bytes,
                       struct ws_spool **out, char *errbuf, size_t errlen)
{
    struct ws_spool *s;
    size_t n = strlen(path);
    ws_err_t err;

    if (!(s = calloc(1, sizeof *s)) || !(s->dir = strdup(path))) {
        free(s);
        return WS_ERR_NOMEM;
    }
    while (n > 1 && s->dir[n - 1] == '/')
        s->dir[--n] = '\0';
    if ((err = ws_mkdirs(s->dir, errbuf, errlen))) {
        ws_spool_close(s);
        return err;
    }
    if (access(s->dir, W_OK) < 0) {
        err = ws_fail(WS_ERR_PERMISSION, errbuf, errlen, "spool %s: %s", s->dir, strerror(errno));
        ws_spool_close(s);
        return err;
    }
    s->mode = mode;
    s->max_bytes = max_bytes;
    s->bytes = scan_bytes(s->dir);
    *out = s;
    return WS_OK;
}

void ws_spool_close(struct ws_spool *s)
{
    if (!s)
        return;
    free(s->dir);
    free(s);
}

bool ws_spool_uses_io_uring(const struct ws_spool *s)
{
    return false;
}

uint64_t ws_spool_bytes(const struct ws_spool *s)
{
    return s->bytes;
}

bool ws_spool_full(const struct ws_spool *s)
{
    return s->bytes >= s->max_bytes;
}

void ws_spool_path(const struct ws_spool *s, const char *query_id, int64_t batch_id,
                   const char *suffix, char *out)
{
    char name[256];

    ws_object_name(query_id, batch_id, suffix, name);
    snprintf(out, PATH_MAX, "%s/%s", s->dir, name);
}

ws_err_t ws_spool_begin(struct ws_spool *s, const char *query_id, int64_t batch_id,
                        struct ws_spool_file **out, char *errbuf, size_t errlen)
{
    struct ws_spool_file *f = calloc(1, sizeof *f);
    char dir[PATH_MAX];
    ws_err_t err;

    if (!f)
        return WS_ERR_NOMEM;
    f->spool = s;
    ws_spool_path(s, query_id, batch_id, ".evidence.lz4", f->path);
    snprintf(f->tmp, sizeof f->tmp, "%s.tmp", f->path);
    snprintf(dir, sizeof dir, "%s/%s", s->dir, query_id);
    if ((err = ws_mkdirs(dir, errbuf, errlen))) {
        free(f);
        return err;
    }
    f->fd = open(f->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (f->fd < 0) {
        err = ws_fail(errno == ENOSPC ? WS_ERR_NOSPACE : WS_ERR_IO, errbuf, errlen, "spool %s: %s",
                      f->tmp, strerror(errno));
        free(f);
        return err;
    }
    *out = f;
    return WS_OK;
}

ws_err_t ws_spool_write(void *opaque, const void *buf, size_t len)
{
    struct ws_spool_file *f = opaque;
    size_t off = 0;

    if (f->sticky)
        return f->sticky;
    while (off < len) {
        ssize_t n = write(f->fd, (const char *)buf + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return f->sticky = (errno == ENOSPC || errno == EDQUOT) ? WS_ERR_NOSPACE : WS_ERR_IO;
        off += (size_t)n;
    }
    f->written += len;
    f->spool->bytes += len;
    return WS_OK;
}

ws_err_t ws_spool_commit(struct ws_spool_file *f, const char **path, char *errbuf, size_t errlen)
{
    char dir[PATH_MAX];
    int dfd;

    if (f->sticky)
        return ws_fail(f->sticky, errbuf, errlen, "spool %s: %s", f->tmp, ws_strerror(f->sticky));
    if (fsync(f->fd) < 0)
        return ws_fail(errno == ENOSPC ? WS_ERR_NOSPACE : WS_ERR_IO, errbuf, errlen,
                       "spool fsync %s: %s", f->tmp, strerror(errno));
    if (rename(f->tmp, f->path) < 0)
        return ws_fail(WS_ERR_IO, errbuf, errlen, "spool rename %s: %s", f->path,
                       strerror(errno));
    snprintf(dir, sizeof dir, "%s", f->path);
    *strrchr(dir, '/') = '\0';
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    close(f->fd);
    f->fd = -1;
    f->tmp[0] = '\0';
    *path = f->path;
    return WS_OK;
}

void ws_spool_abort(struct ws_spool_file *f)
{
    if (!f)
        return;
    if (f->fd >= 0) {
        close(f->fd);
        f->fd = -1;
    }
    if (f->tmp[0]) {
        unlink(f->tmp);
        f->spool->bytes -= f->written < f->spool->bytes ? f->written : f->spool->bytes;
        f->tmp[0] = '\0';
    }
}

void ws_spool_file_free(struct ws_spool_file *f)
{
    if (!f)
        return;
    ws_spool_abort(f);
    free(f);
}

ws_err_t ws_spool_put_envelope(struct ws_spool *s, const char *query_id, int64_t batch_id,
                               const char *env, size_t len, char *errbuf, size_t errlen)
{
    char path[PATH_MAX];
    ws_err_t err;

    ws_spool_path(s, query_id, batch_id, ".dsse.json", path);
    err = ws_file_write_atomic(path, env, len, errbuf, errlen);
    if (!err)
        s->bytes += len;
    return err;
}

static void remove_one(struct ws_spool *s, const char *path)
{
    struct stat st;

    if (stat(path, &st) == 0 && unlink(path) == 0)
        s->bytes -= (uint64_t)st.st_size < s->bytes ? (uint64_t)st.st_size : s->bytes;
}

void ws_spool_remove(struct ws_spool *s, const char *query_id, int64_t batch_id)
{
    char path[PATH_MAX];

    /* Envelope first: an evidence file without its envelope is an incomplete window. */
    ws_spool_path(s, query_id, batch_id, ".dsse.json", path);
    remove_one(s, path);
    ws_spool_path(s, query_id, batch_id, ".evidence.lz4", path);
    remove_one(s, path);
}
