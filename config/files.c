/*
 * files.c — the one small unit of local-file plumbing every layer shares: errno to ws_err_t,
 * reading a small file whole, mkdir -p, making a directory entry durable.
 *
 * Two mappings, on purpose: ws_errno_err keeps the cause (a missing file, a permission), for
 * callers that report it; ws_errno_local is the policy for the engine's own disk (spool, file
 * sink, key files written by keygen): a local disk problem is never the notification's fault nor
 * a reason to stop a chain, so everything but a full disk or no memory is WS_ERR_IO, retriable —
 * a person fixing the mode or the mount unblocks the engine without a restart.
 */
#include "config/config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

ws_err_t ws_errno_err(int err)
{
    if (err < 0)
        err = -err;
    switch (err) {
    case 0:
        return WS_OK;
    case ENOSPC:
    case EDQUOT:
        return WS_ERR_NOSPACE;
    case ENOMEM:
        return WS_ERR_NOMEM;
    case EACCES:
    case EPERM:
    case EROFS:
        return WS_ERR_PERMISSION;
    case ENOENT:
        return WS_ERR_NOT_FOUND;
    default:
        return WS_ERR_IO;
    }
}

ws_err_t ws_errno_local(int err)
{
    ws_err_t e = ws_errno_err(err);

    return e == WS_OK || e == WS_ERR_NOSPACE || e == WS_ERR_NOMEM ? e : WS_ERR_IO;
}

ws_err_t ws_fsync_dir(const char *dir, char *errbuf, size_t errlen)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), e;

    if (fd < 0)
        return ws_fail(ws_errno_local(errno), errbuf, errlen, "open %s: %s", dir, strerror(errno));
    if (fsync(fd) < 0) {
        e = errno;
        close(fd);
        return ws_fail(ws_errno_local(e), errbuf, errlen, "fsync %s: %s", dir, strerror(e));
    }
    close(fd);
    return WS_OK;
}

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
                return ws_fail(ws_errno_local(errno), errbuf, errlen, "mkdir %s: %s", tmp,
                               strerror(errno));
            *p = c;
            if (c == '\0')
                break;
        }
    }
    return WS_OK;
}

ws_err_t ws_file_read(const char *path, size_t max, char **buf, size_t *len, char *errbuf,
                      size_t errlen)
{
    ws_err_t err = WS_OK;
    struct stat st;
    char *b = NULL;
    size_t got = 0;
    /* O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused just below */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);

    if (fd < 0)
        return ws_fail(errno == ENOENT ? WS_ERR_NOT_FOUND : WS_ERR_IO, errbuf, errlen, "%s: %s",
                       path, strerror(errno));
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        err = ws_fail(WS_ERR_INVALID, errbuf, errlen, "%s: not a regular file", path);
        goto out_close;
    }
    if ((uint64_t)st.st_size > max) {
        err = ws_fail(WS_ERR_TOO_LARGE, errbuf, errlen, "%s: %lld bytes, more than %zu", path,
                      (long long)st.st_size, max);
        goto out_close;
    }
    b = malloc((size_t)st.st_size + 1);
    if (!b) {
        err = WS_ERR_NOMEM;
        goto out_close;
    }
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, b + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            err = ws_fail(WS_ERR_IO, errbuf, errlen, "%s: read: %s", path,
                          n < 0 ? strerror(errno) : "file shrank");
            goto out_free;
        }
        got += (size_t)n;
    }
    b[got] = '\0';
    *buf = b;
    *len = got;
    b = NULL;
out_free:
    free(b);
out_close:
    close(fd);
    return err;
}
