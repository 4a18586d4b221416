/*
 * outputs.c — SHA-256 of the files a batch wrote (notification outputs[].files).
 *
 * A file the engine cannot read is recorded with the reason and the window is still attested:
 * the records are the primary evidence, the outputs a cross-check. Only local paths and file://
 * URIs are read; other schemes (s3://, hdfs://) are named "not readable by windowseal". With
 * outputs.allowed_roots set, the real path (symlinks resolved) must lie under one of them.
 *
 * This version reads with plain read() in 1 MiB chunks on the engine thread.
 */
#include "engine/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHUNK (1u << 20)

static bool under_root(const char *real, const char *const *roots, size_t n)
{
    char r[PATH_MAX];

    if (n == 0)
        return true;
    for (size_t i = 0; i < n; i++) {
        size_t len;
        if (!realpath(roots[i], r))
            continue;
        len = strlen(r);
        if (strncmp(real, r, len) == 0 && (real[len] == '/' || real[len] == '\0' ||
                                           (len == 1 && r[0] == '/')))
            return true;
    }
    return false;
}

static const char *hash_file(const char *name, const char *const *roots, size_t nroots,
                             uint8_t *buf, struct ws_out_file *f, char *why, size_t whylen)
{
    const char *path = name;
    char real[PATH_MAX];
    struct ws_sha256 h;
    struct stat st;
    int fd;
    int64_t total = 0;

    if (strncmp(name, "file://", 7) == 0)
        path = name + 7;
    else if (strstr(name, "://"))
        return "not readable by windowseal (only local paths and file:// URIs)";
    if (!realpath(path, real))
        return snprintf(why, whylen, "%s", strerror(errno)), why;
    if (!under_root(real, roots, nroots))
        return "outside outputs.allowed_roots";
    fd = open(real, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return snprintf(why, whylen, "%s", strerror(errno)), why;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return S_ISDIR(st.st_mode) ? "is a directory" : "not a regular file";
    }
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    ws_sha256_init(&h);
    for (;;) {
        ssize_t n = read(fd, buf, CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            close(fd);
            return snprintf(why, whylen, "read: %s", strerror(errno)), why;
        }
        if (n == 0)
            break;
        ws_sha256_update(&h, buf, (size_t)n);
        total += n;
    }
    close(fd);
    ws_sha256_final(&h, f->sha256);
    f->has_digest = true;
    f->bytes = total;
    return NULL;
}

ws_err_t ws_outputs_hash(const struct ws_notification *n, const char *const *allowed_roots,
                         size_t nroots, struct ws_spool *spool, struct ws_output_set *out,
                         char *errbuf, size_t errlen)
{
    uint8_t *buf = NULL;
    char why[256];

    memset(out, 0, sizeof *out);
    if (n->noutputs == 0)
        return WS_OK;
    if (!(out->outputs = calloc(n->noutputs, sizeof *out->outputs)) || !(buf = malloc(CHUNK)))
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
            const char *e;
            files[j].name = o->files[j];
            files[j].bytes = -1;
            e = hash_file(o->files[j], allowed_roots, nroots, buf, &files[j], why, sizeof why);
            if (e && !(files[j].error = strdup(e)))
                goto nomem;
        }
    }
    free(buf);
    return WS_OK;
nomem:
    free(buf);
    ws_outputs_free(out);
    return ws_fail(WS_ERR_NOMEM, errbuf, errlen, "out of memory hashing outputs");
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
