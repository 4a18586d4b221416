/*
 * file.c — the `file` object-store sink: SPEC 9 layout under a directory.
 *
 *   <path>/<prefix><queryId>/<batch20>.evidence.lz4   written first
 *   <path>/<prefix><queryId>/<batch20>.dsse.json      written last: its presence means complete
 *
 * Each object is written once: to a temporary name, fsync, rename, fsync of the directory. If
 * the object exists, identical bytes count as written and other bytes are
 * WS_ERR_EXISTS_DIFFERENT. Query ids reaching this file have passed ws_query_id_safe, so the
 * names cannot leave the directory.
 */
#include "sinks/sink.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct file_sink {
    struct ws_sink base;
    char *dir; /* path + prefix */
};

ws_err_t ws_mkdirs(const char *path, char *errbuf, size_t errlen)
{
    char tmp[PATH_MAX];
    size_t n = strlen(path);

    if (n == 0 || n >= sizeof tmp)
        return ws_fail(WS_ERR_INVALID, errbuf, errlen, "bad directory name '%s'", path);
    memcpy(tmp, path, n + 1);
    for (char *p = tmp + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
                return ws_fail(errno == ENOSPC ? WS_ERR_NOSPACE : WS_ERR_IO, errbuf, errlen,
                               "mkdir %s: %s", tmp, strerror(errno));
            *p = c;
            if (c == '\0')
                break;
        }
    }
    return WS_OK;
}

static ws_err_t errno_err(int e)
{
    return e == ENOSPC || e == EDQUOT ? WS_ERR_NOSPACE : WS_ERR_IO;
}

static ws_err_t fsync_dir(const char *path, char *errbuf, size_t errlen)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    int fd;

    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else
        snprintf(dir, sizeof dir, "%.*s", slash == path ? 1 : (int)(slash - path), path);
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return ws_fail(WS_ERR_IO, errbuf, errlen, "open %s: %s", dir, strerror(errno));
    if (fsync(fd) < 0) {
        int e = errno;
        close(fd);
        return ws_fail(errno_err(e), errbuf, errlen, "fsync %s: %s", dir, strerror(e));
    }
    close(fd);
    return WS_OK;
}

ws_err_t ws_file_write_atomic(const char *path, const void *data, size_t len, char *errbuf,
                              size_t errlen)
{
    char tmp[PATH_MAX], dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    size_t off = 0;
    ws_err_t err;
    int fd;

    if (slash && slash != path) {
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
        if ((err = ws_mkdirs(dir, errbuf, errlen)))
            return err;
    }
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return ws_fail(WS_ERR_INVALID, errbuf, errlen, "%s: path too long", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return ws_fail(errno_err(errno), errbuf, errlen, "open %s: %s", tmp, strerror(errno));
    while (off < len) {
        ssize_t n = write(fd, (const char *)data + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            err = ws_fail(errno_err(errno), errbuf, errlen, "write %s: %s", tmp, strerror(errno));
            goto out_unlink;
        }
        off += (size_t)n;
    }
    if (fsync(fd) < 0) {
        err = ws_fail(errno_err(errno), errbuf, errlen, "fsync %s: %s", tmp, strerror(errno));
        goto out_unlink;
    }
    close(fd);
    fd = -1;
    if (rename(tmp, path) < 0) {
        err = ws_fail(errno_err(errno), errbuf, errlen, "rename %s: %s", path, strerror(errno));
        goto out_unlink;
    }
    return fsync_dir(path, errbuf, errlen);
out_unlink:
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    return err;
}

/* Existing object: identical bytes -> WS_OK, other bytes -> EXISTS_DIFFERENT, none -> NOT_FOUND. */
static ws_err_t compare_existing(const char *path, const void *data, size_t len, char *errbuf,
                                 size_t errlen)
{
    char *buf = NULL;
    size_t blen = 0;
    char why[256];
    ws_err_t err = ws_file_read(path, WS_ENVELOPE_MAX * 8ull, &buf, &blen, why, sizeof why);

    if (err == WS_ERR_NOT_FOUND)
        return WS_ERR_NOT_FOUND;
    if (err)
        return ws_fail(err == WS_ERR_TOO_LARGE ? WS_ERR_EXISTS_DIFFERENT : err, errbuf, errlen,
                       "%s", why);
    err = (blen == len && memcmp(buf, data, len) == 0) ? WS_OK : WS_ERR_EXISTS_DIFFERENT;
    free(buf);
    if (err)
        ws_fail(err, errbuf, errlen, "%s exists with different content (%zu bytes, ours %zu)", path,
                blen, len);
    return err;
}

static ws_err_t put_once(const char *path, const void *data, size_t len, char *errbuf,
                         size_t errlen)
{
    ws_err_t err = compare_existing(path, data, len, errbuf, errlen);

    if (err != WS_ERR_NOT_FOUND)
        return err;
    return ws_file_write_atomic(path, data, len, errbuf, errlen);
}

static ws_err_t file_create(const struct ws_sink_conf *conf, struct ws_kafka_producer *producer,
                            const char *topic, struct ws_sink **out, char *errbuf, size_t errlen)
{
    struct file_sink *f = calloc(1, sizeof *f);
    size_t n;
    ws_err_t err;

    if (!f)
        return WS_ERR_NOMEM;
    n = strlen(conf->path) + strlen(conf->prefix ? conf->prefix : "") + 2;
    if (!(f->dir = malloc(n))) {
        free(f);
        return WS_ERR_NOMEM;
    }
    snprintf(f->dir, n, "%s%s%s", conf->path, conf->path[strlen(conf->path) - 1] == '/' ? "" : "/",
             conf->prefix ? conf->prefix : "");
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
    char name[256], path[PATH_MAX], why[512];
    char *ev = NULL;
    size_t evlen = 0;
    ws_err_t err;

    ws_object_name(a->query_id, a->batch_id, ".evidence.lz4", name);
    snprintf(path, sizeof path, "%s%s", f->dir, name);
    err = ws_file_read(a->evidence_path, 1ull << 40, &ev, &evlen, why, sizeof why);
    if (err)
        return ws_fail(WS_ERR_SINK_RETRY, errbuf, errlen, "spool %s", why);
    err = put_once(path, ev, evlen, errbuf, errlen);
    free(ev);
    if (err)
        goto out;
    ws_object_name(a->query_id, a->batch_id, ".dsse.json", name);
    snprintf(path, sizeof path, "%s%s", f->dir, name);
    err = put_once(path, a->envelope, a->envelope_len, errbuf, errlen);
out:
    if (err && err != WS_ERR_EXISTS_DIFFERENT)
        err = ws_err_retriable(err) ? WS_ERR_SINK_RETRY : WS_ERR_SINK_PERMANENT;
    return err;
}

static ws_err_t file_put(struct ws_sink *s, const char *name, const void *data, size_t len,
                         char *errbuf, size_t errlen)
{
    struct file_sink *f = (struct file_sink *)s;
    char path[PATH_MAX];
    ws_err_t err;

    snprintf(path, sizeof path, "%s%s", f->dir, name);
    err = ws_file_write_atomic(path, data, len, errbuf, errlen);
    return err && ws_err_retriable(err) ? WS_ERR_SINK_RETRY : err ? WS_ERR_SINK_PERMANENT : WS_OK;
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
    .name = "file",
    .create = file_create,
    .publish = file_publish,
    .put = file_put,
    .get = file_get,
    .destroy = file_destroy,
};
