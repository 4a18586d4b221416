/*
 * audit_tree.c — a file sink's tree as the auditor reads it: a directory, or a bucket prefix
 * through the shared S3 client (cli/audit_tree.h says what each call does and why).
 *
 * A directory is read exactly as before this file existed (ws_audit_list, ws_file_read on the
 * same paths, so the same messages). A bucket is listed with ListObjectsV2 and delimiter '/'
 * — the query ids are the root's common prefixes, a query's objects the keys directly under
 * its prefix (deeper keys are not in a directory's readdir either) — and read with GETs.
 */
#include "cli/audit_tree.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct ws_audit_tree {
    char *root;              /* the directory, or the key prefix ("" or ending in '/') */
    char name[1200];         /* for messages */
    struct ws_s3_client *s3; /* NULL: a directory */
    char bucket[64];
    char tmpdir[PATH_MAX]; /* evidence copies; "" until the first one */
};

ws_err_t ws_audit_tree_open(const char *where, const struct ws_audit_s3_opts *o,
                            struct ws_audit_tree **out, char *errbuf, size_t errlen)
{
    struct ws_audit_tree *t = calloc(1, sizeof *t);
    struct ws_s3_settings st = {0};
    const char *p, *why;
    size_t plen;
    ws_err_t err;

    *out = NULL;
    if (!t)
        return ws_fail(WS_ERR_NOMEM, errbuf, errlen, "out of memory");
    if (!ws_s3_uri_is_s3(where)) {
        if (!(t->root = strdup(where))) {
            free(t);
            return ws_fail(WS_ERR_NOMEM, errbuf, errlen, "out of memory");
        }
        snprintf(t->name, sizeof t->name, "%s", where);
        *out = t;
        return WS_OK;
    }
    if (!ws_s3_uri_parse(where, t->bucket, sizeof t->bucket, &p, &why)) {
        err = ws_fail(WS_ERR_CONFIG, errbuf, errlen, "%s: %s", where, why);
        goto out_free;
    }
    plen = strlen(p);
    if (!(t->root = malloc(plen + 2))) {
        err = ws_fail(WS_ERR_NOMEM, errbuf, errlen, "out of memory");
        goto out_free;
    }
    /* "s3://b/prefix" and "s3://b/prefix/" name the same tree, as DIR and DIR/ do */
    snprintf(t->root, plen + 2, "%s%s", p, plen && p[plen - 1] != '/' ? "/" : "");
    snprintf(t->name, sizeof t->name, "s3://%s/%s", t->bucket, t->root);
    if (o) {
        st.endpoint = o->endpoint;
        st.region = o->region;
        st.path_style = !o->virtual_hosted;
    } else {
        st.path_style = true;
    }
    if ((err = ws_s3_client_new(&st, &t->s3, errbuf, errlen)))
        goto out_free;
    *out = t;
    return WS_OK;
out_free:
    free(t->root);
    free(t);
    return err;
}

void ws_audit_tree_close(struct ws_audit_tree *t)
{
    if (!t)
        return;
    if (t->tmpdir[0])
        rmdir(t->tmpdir);
    ws_s3_client_destroy(t->s3);
    free(t->root);
    free(t);
}

bool ws_audit_tree_is_s3(const struct ws_audit_tree *t)
{
    return t->s3 != NULL;
}

const char *ws_audit_tree_name(const struct ws_audit_tree *t)
{
    return t->name;
}

void ws_audit_tree_path(const struct ws_audit_tree *t, const char *qid, const char *name, char *out,
                        size_t cap)
{
    if (t->s3)
        snprintf(out, cap, "s3://%s/%s%s%s%s", t->bucket, t->root, qid ? qid : "",
                 qid && name ? "/" : "", name ? name : "");
    else
        snprintf(out, cap, "%s%s%s%s%s", t->root, qid ? "/" : "", qid ? qid : "", name ? "/" : "",
                 name ? name : "");
}

/* The key of <root>/<qid>/<name> in the bucket (qid or name may be NULL). */
static bool object_key(const struct ws_audit_tree *t, const char *qid, const char *name, char *key,
                       size_t cap)
{
    int n = snprintf(key, cap, "%s%s%s%s", t->root, qid ? qid : "", qid && name ? "/" : "",
                     name ? name : "");
    return n > 0 && (size_t)n < cap;
}

/* ------------------------------------------------------------------------------------------ */
/* Listing                                                                                        */

struct ids {
    char **v;
    size_t n, cap;
    size_t skip; /* strlen of the root prefix */
};

static ws_err_t add_id(void *ud, const char *key, uint64_t size, bool is_prefix)
{
    struct ids *ids = ud;
    size_t len;
    char *id;

    if (!is_prefix || strlen(key) <= ids->skip + 1)
        return WS_OK;
    len = strlen(key) - ids->skip - 1; /* without the root and the trailing '/' */
    if (!ws_query_id_safe(key + ids->skip, len))
        return WS_OK;
    if (ids->n == ids->cap) {
        size_t nc = ids->cap ? 2 * ids->cap : 64;
        char **nv = realloc(ids->v, nc * sizeof *nv);
        if (!nv)
            return WS_ERR_NOMEM;
        ids->v = nv;
        ids->cap = nc;
    }
    if (!(id = strndup(key + ids->skip, len)))
        return WS_ERR_NOMEM;
    ids->v[ids->n++] = id;
    return WS_OK;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void ws_audit_tree_free_ids(char **ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
}

ws_err_t ws_audit_tree_queries(struct ws_audit_tree *t, char ***out, size_t *n, char *errbuf,
                               size_t errlen)
{
    struct ids ids = {.skip = strlen(t->root)};
    ws_err_t err;

    *out = NULL;
    *n = 0;
    if (!t->s3)
        return ws_fail(WS_ERR_UNSUPPORTED, errbuf, errlen, "not an object store");
    err = ws_s3_list(t->s3, t->bucket, t->root, "/", add_id, &ids, errbuf, errlen);
    if (err == WS_ERR_NOMEM)
        ws_fail(err, errbuf, errlen, "out of memory listing %s", t->name);
    if (err) {
        ws_audit_tree_free_ids(ids.v, ids.n);
        return err;
    }
    if (ids.n)
        qsort(ids.v, ids.n, sizeof *ids.v, cmp_str);
    *out = ids.v;
    *n = ids.n;
    return WS_OK;
}

struct batches {
    struct ws_batch_list *l;
    size_t cap_env, cap_ev, skip;
};

static ws_err_t add_batch(void *ud, const char *key, uint64_t size, bool is_prefix)
{
    struct batches *b = ud;

    if (is_prefix || strlen(key) <= b->skip)
        return WS_OK;
    return ws_audit_list_add(b->l, key + b->skip, &b->cap_env, &b->cap_ev) ? WS_OK : WS_ERR_NOMEM;
}

ws_err_t ws_audit_tree_list(struct ws_audit_tree *t, const char *qid, struct ws_batch_list *out,
                            char *errbuf, size_t errlen)
{
    char path[PATH_MAX], prefix[1200];
    struct batches b = {.l = out};
    ws_err_t err;

    if (!t->s3) {
        ws_audit_tree_path(t, qid, NULL, path, sizeof path);
        return ws_audit_list(path, out, errbuf, errlen);
    }
    memset(out, 0, sizeof *out);
    if (!object_key(t, qid, qid ? "" : NULL, prefix, sizeof prefix))
        return ws_fail(WS_ERR_INVALID, errbuf, errlen, "prefix too long");
    b.skip = strlen(prefix);
    if ((err = ws_s3_list(t->s3, t->bucket, prefix, "/", add_batch, &b, errbuf, errlen))) {
        ws_audit_list_free(out);
        return err == WS_ERR_NOMEM ? ws_fail(err, errbuf, errlen, "out of memory") : err;
    }
    ws_audit_list_sort(out);
    return WS_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Reading                                                                                        */

ws_err_t ws_audit_tree_read(struct ws_audit_tree *t, const char *qid, const char *name, size_t max,
                            char **buf, size_t *len, char *errbuf, size_t errlen)
{
    char path[PATH_MAX], uri[1300], key[1200];
    struct stat st;

    *buf = NULL;
    *len = 0;
    if (!t->s3) {
        ws_audit_tree_path(t, qid, name, path, sizeof path);
        if (stat(path, &st) != 0 && errno == ENOENT)
            return ws_fail(WS_ERR_NOT_FOUND, errbuf, errlen, "%s: not found", path);
        return ws_file_read(path, max, buf, len, errbuf, errlen);
    }
    if (!object_key(t, qid, name, key, sizeof key))
        return ws_fail(WS_ERR_INVALID, errbuf, errlen, "object name too long");
    snprintf(uri, sizeof uri, "s3://%s/%s", t->bucket, key);
    return ws_s3_get_buf(t->s3, uri, max, buf, len, errbuf, errlen);
}

static ws_err_t to_file(void *ud, const void *data, size_t len)
{
    return fwrite(data, 1, len, ud) == len ? WS_OK : WS_ERR_IO;
}

ws_err_t ws_audit_tree_local(struct ws_audit_tree *t, const char *qid, const char *name, char *path,
                             size_t cap, char *errbuf, size_t errlen)
{
    char uri[1300], key[1200];
    const char *tmp = getenv("TMPDIR");
    ws_err_t err;
    FILE *f;

    if (!t->s3) {
        ws_audit_tree_path(t, qid, name, path, cap);
        return WS_OK;
    }
    if (!t->tmpdir[0]) {
        snprintf(t->tmpdir, sizeof t->tmpdir, "%s/windowseal-audit.XXXXXX",
                 tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(t->tmpdir)) {
            err = ws_fail(WS_ERR_IO, errbuf, errlen, "temporary directory %s: %s", t->tmpdir,
                          strerror(errno));
            t->tmpdir[0] = '\0';
            return err;
        }
    }
    if (!object_key(t, qid, name, key, sizeof key))
        return ws_fail(WS_ERR_INVALID, errbuf, errlen, "object name too long");
    snprintf(uri, sizeof uri, "s3://%s/%s", t->bucket, key);
    snprintf(path, cap, "%s/%s", t->tmpdir, name);
    if (!(f = fopen(path, "wb")))
        return ws_fail(WS_ERR_IO, errbuf, errlen, "%s: %s", path, strerror(errno));
    err = ws_s3_get_stream(t->s3, uri, to_file, f, NULL, errbuf, errlen);
    if (fclose(f) != 0 && !err)
        err = ws_fail(WS_ERR_IO, errbuf, errlen, "%s: %s", path, strerror(errno));
    if (err) {
        unlink(path);
        if (err == WS_ERR_NOT_FOUND)
            err = WS_OK; /* absent: the path does not exist, as in a directory */
    }
    return err;
}

void ws_audit_tree_release(struct ws_audit_tree *t, const char *path)
{
    if (t->s3)
        unlink(path);
}
