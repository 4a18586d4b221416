/*
 * keyfile.c — reading and writing key files.
 *
 * A private key is refused when group or others may read or write it, as ssh does: a signing key
 * that anyone on the host can copy is no evidence of anything. Files are written with O_EXCL so
 * that keygen can never overwrite a key that signed past windows.
 */
#include "config/config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sodium.h>

ws_err_t ws_key_load(const char *path, bool want_private, struct ws_key *k, char *errbuf,
                     size_t errlen)
{
    char *pem = NULL;
    size_t len = 0;
    struct stat st;
    char why[256];
    ws_err_t err;

    if (stat(path, &st) < 0)
        return ws_fail(WS_ERR_NOT_FOUND, errbuf, errlen, "key %s: %s", path, strerror(errno));
    err = ws_file_read(path, 64 * 1024, &pem, &len, errbuf, errlen);
    if (err)
        return err;
    err = ws_key_from_pem(pem, len, k, why, sizeof why);
    sodium_memzero(pem, len);
    free(pem);
    if (err)
        return ws_fail(err, errbuf, errlen, "key %s: %s", path, why);
    if (want_private && !k->has_secret) {
        ws_key_wipe(k);
        return ws_fail(WS_ERR_KEY, errbuf, errlen,
                       "key %s: a public key; signing needs the private key (PKCS#8 PEM)", path);
    }
    if (k->has_secret && (st.st_mode & 077)) {
        ws_key_wipe(k);
        return ws_fail(WS_ERR_PERMISSION, errbuf, errlen,
                       "key %s: private key has mode %04o; it must not be accessible by group or "
                       "others (chmod 600)",
                       path, (unsigned)(st.st_mode & 07777));
    }
    return WS_OK;
}

static ws_err_t write_new(const char *path, const char *text, mode_t mode, char *errbuf,
                          size_t errlen)
{
    size_t len = strlen(text), off = 0;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);

    if (fd < 0)
        return ws_fail(errno == EEXIST ? WS_ERR_EXISTS_DIFFERENT : WS_ERR_IO, errbuf, errlen,
                       "%s: %s", path,
                       errno == EEXIST ? "exists; refusing to overwrite a key" : strerror(errno));
    while (off < len) {
        ssize_t n = write(fd, text + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            unlink(path);
            return ws_fail(ws_errno_local(e), errbuf, errlen, "%s: write: %s", path, strerror(e));
        }
        off += (size_t)n;
    }
    if (fsync(fd) < 0 || close(fd) < 0) {
        unlink(path);
        return ws_fail(WS_ERR_IO, errbuf, errlen, "%s: %s", path, strerror(errno));
    }
    return WS_OK;
}

ws_err_t ws_key_save(const char *path, const struct ws_key *k, char *errbuf, size_t errlen)
{
    char priv[512], pub[512], pubpath[4096];
    ws_err_t err;

    if (snprintf(pubpath, sizeof pubpath, "%s.pub", path) >= (int)sizeof pubpath)
        return ws_fail(WS_ERR_INVALID, errbuf, errlen, "%s: path too long", path);
    if (access(pubpath, F_OK) == 0)
        return ws_fail(WS_ERR_EXISTS_DIFFERENT, errbuf, errlen,
                       "%s: exists; refusing to overwrite a key", pubpath);
    err = ws_key_private_pem(k, priv, sizeof priv);
    if (!err)
        err = ws_key_public_pem(k, pub, sizeof pub);
    if (err)
        goto out_wipe;
    err = write_new(path, priv, 0600, errbuf, errlen);
    if (err)
        goto out_wipe;
    err = write_new(pubpath, pub, 0644, errbuf, errlen);
    if (err)
        unlink(path);
out_wipe:
    sodium_memzero(priv, sizeof priv);
    return err;
}
