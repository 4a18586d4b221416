/*
 * outputs.c — what a window's batch wrote, for its statement (FORMAT.md §5, SPEC §6): plain
 * outputs' files hashed as the job listed them (disk/outputs.c), Iceberg outputs of a
 * configured catalog resolved from the catalog and the table's own metadata instead
 * (iceberg/), merged back in the notification's order.
 *
 * The Iceberg module knows no object store: it reads manifest lists, manifests and data files
 * through the fetch below, which streams s3:// and s3a:// objects with the shared S3 client
 * (sinks/sink.h: outputs.s3, or the credentials the catalog vended for the table) and local
 * files (file:// URIs and paths, confined to outputs.allowed_roots when that is set, as plain
 * outputs are). Each build worker has its own struct eng_lake (its S3 client and connections
 * are used by that worker's thread only).
 *
 * Retries: a catalog or store that is down comes back as a retriable error from
 * eng_outputs_collect; the window is not signed and waits (the engine's retry policy), like a
 * sink. Everything the table or the configuration got wrong is inside the statement instead
 * (iceberg.error, a file's error).
 *
 * I2: the statement now also depends on the catalog's state at the time the window is built.
 * A window rebuilt after a crash is first looked up in the spool (build.c), so what was signed
 * is what is delivered; only a window that never reached the spool is resolved again.
 */
#include "engine/internal.h"
#include "iceberg/iceberg.h"

#include <assert.h>
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct eng_lake {
    const struct ws_config *cfg;
    struct ws_s3_client *s3; /* outputs.s3, made on first use */
};

ws_err_t eng_lake_new(const struct ws_config *cfg, struct eng_lake **out, char *errbuf,
                      size_t errlen)
{
    /* here, on the engine thread at start, before any worker speaks to a catalog or a store:
     * libcurl's global state is set up once, not raced to from the workers */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return ws_fail(WS_ERR_CONFIG, errbuf, errlen, "libcurl: curl_global_init failed");
    if (!(*out = calloc(1, sizeof **out)))
        return ws_fail(WS_ERR_NOMEM, errbuf, errlen, "out of memory for a lakehouse reader");
    (*out)->cfg = cfg;
    return WS_OK;
}

void eng_lake_destroy(struct eng_lake *l)
{
    if (!l)
        return;
    ws_s3_client_destroy(l->s3);
    free(l);
    curl_global_cleanup(); /* reference-counted: one per curl_global_init above */
}

/* A local file (a path or file:// URI), under the rules of plain outputs (disk/outputs.c). */
static ws_err_t fetch_local(struct eng_lake *l, const char *uri, ws_write_fn out, void *opaque,
                            uint64_t *bytes, char *errbuf, size_t errlen)
{
    char buf[64 * 1024], why[256];
    const char *e;
    ws_err_t err = WS_OK;
    uint64_t size;
    int fd;

    if ((e = ws_outputs_open(uri, (const char *const *)l->cfg->allowed_roots,
                             l->cfg->nallowed_roots, &fd, &size, why, sizeof why)))
        return ws_fail(strstr(e, "No such file")    ? WS_ERR_NOT_FOUND
                       : strstr(e, "allowed_roots") ? WS_ERR_PERMISSION
                                                    : WS_ERR_SINK_PERMANENT,
                       errbuf, errlen, "%s", e);
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            err = ws_fail(WS_ERR_SINK_PERMANENT, errbuf, errlen, "read: %s", strerror(errno));
            break;
        }
        if (n == 0)
            break;
        *bytes += (uint64_t)n;
        if ((err = out(opaque, buf, (size_t)n)))
            break;
    }
    close(fd);
    return err;
}

/* ws_iceberg_fetch_fn: s3:// and s3a:// objects, file:// URIs and local paths. */
static ws_err_t lake_fetch(void *opaque, const char *uri, const struct ws_iceberg_creds *vended,
                           ws_write_fn out, void *out_opaque, uint64_t *bytes, char *errbuf,
                           size_t errlen)
{
    struct eng_lake *l = opaque;
    const struct ws_config *cfg = l->cfg;
    struct ws_s3_settings st = {.endpoint = cfg->outputs_s3_endpoint,
                                .region = cfg->outputs_s3_region,
                                .path_style = cfg->outputs_s3_path_style};
    struct ws_s3_client *c = l->s3, *own = NULL;
    ws_err_t err;

    *bytes = 0;
    if (!strncmp(uri, "file://", 7) || uri[0] == '/')
        return fetch_local(l, uri, out, out_opaque, bytes, errbuf, errlen);
    if (!ws_s3_uri_is_s3(uri))
        return ws_fail(WS_ERR_UNSUPPORTED, errbuf, errlen,
                       "not readable by windowseal (s3://, s3a://, file:// and local paths are)");
    if (vended && vended->access_key_id && vended->secret_access_key) {
        /* the table's own credentials (and store), for this object only */
        st.access_key_id = vended->access_key_id;
        st.secret_access_key = vended->secret_access_key;
        st.session_token = vended->session_token;
        if (vended->endpoint)
            st.endpoint = vended->endpoint;
        if (vended->region)
            st.region = vended->region;
        if ((err = ws_s3_client_new(&st, &own, errbuf, errlen)))
            return err;
        c = own;
    } else if (!c) {
        if ((err = ws_s3_client_new(&st, &l->s3, errbuf, errlen)))
            return err;
        c = l->s3;
    }
    err = ws_s3_get_stream(c, uri, out, out_opaque, bytes, errbuf, errlen);
    ws_s3_client_destroy(own);
    return err;
}

void eng_outputs_free(struct eng_outputs *o)
{
    for (size_t i = 0; i < o->nice; i++) {
        ws_iceberg_result_free(&o->ice[i].res);
        free(o->ice[i].subjects);
    }
    free(o->ice);
    free(o->merged);
    ws_outputs_free(&o->plain);
    memset(o, 0, sizeof *o);
}

/* An Iceberg output's subjects, as the statement takes them. */
static ws_err_t subjects_of(struct eng_ice *ic, char *errbuf, size_t errlen)
{
    const struct ws_iceberg_result *r = &ic->res;

    if (!r->nsubjects)
        return WS_OK;
    if (!(ic->subjects = calloc(r->nsubjects, sizeof *ic->subjects)))
        return ws_fail(WS_ERR_NOMEM, errbuf, errlen, "out of memory");
    for (size_t j = 0; j < r->nsubjects; j++) {
        struct ws_out_file *f = &ic->subjects[j];
        f->name = r->subjects[j].path;
        f->bytes = (int64_t)r->subjects[j].bytes;
        f->has_digest =
            ws_hex_decode(r->subjects[j].sha256, WS_HASH_HEX_LEN, f->sha256, WS_HASH_LEN) == WS_OK;
        assert(f->has_digest); /* iceberg/ writes lowercase hex of a SHA-256 */
    }
    return WS_OK;
}

ws_err_t eng_outputs_collect(struct ws_engine *e, struct eng_lake *lake,
                             const struct ws_notification *n, struct eng_outputs *o, char *errbuf,
                             size_t errlen)
{
    const struct ws_config *cfg = e->cfg;
    struct ws_iceberg_io io = {lake_fetch, lake};
    struct ws_notification plain = *n;
    struct ws_notif_output *po = NULL;
    const struct ws_iceberg_catalog_conf **cat = NULL;
    size_t k = 0;
    ws_err_t err = WS_OK;

    memset(o, 0, sizeof *o);
    if (!n->noutputs)
        return WS_OK;
    if (!(cat = calloc(n->noutputs, sizeof *cat)) || !(po = calloc(n->noutputs, sizeof *po)) ||
        !(o->ice = calloc(n->noutputs, sizeof *o->ice)) ||
        !(o->merged = calloc(n->noutputs, sizeof *o->merged))) {
        err = ws_fail(WS_ERR_NOMEM, errbuf, errlen, "out of memory for %zu outputs", n->noutputs);
        goto out;
    }
    /* the plain outputs go to disk/outputs.c as a notification of their own */
    plain.noutputs = 0;
    plain.outputs = po;
    for (size_t i = 0; i < n->noutputs; i++)
        if (!(cat[i] = lake ? ws_iceberg_match(cfg->catalogs, cfg->ncatalogs, n->outputs[i].name)
                            : NULL))
            po[plain.noutputs++] = n->outputs[i];
    if ((err = ws_outputs_hash_cfg(&plain, cfg, e->spool, &o->plain, errbuf, errlen)))
        goto out;
    assert(o->plain.noutputs == plain.noutputs);
    for (size_t i = 0; i < n->noutputs; i++) {
        const struct ws_notif_output *no = &n->outputs[i];
        struct ws_output *m = &o->merged[i];

        if (!cat[i]) {
            *m = o->plain.outputs[k++];
            continue;
        }
        struct eng_ice *ic = &o->ice[o->nice];
        err =
            ws_iceberg_resolve(cat[i], no->name, no->snapshot_id, (const char *const *)no->files,
                               no->nfiles, n->query_id, n->batch_id, &io, &ic->res, errbuf, errlen);
        if (err)
            goto out; /* the catalog or the store is down: the window waits */
        o->nice++;
        if ((err = subjects_of(ic, errbuf, errlen)))
            goto out;
        o->discrepancies += ic->res.discrepancies;
        *m = (struct ws_output){.name = no->name,
                                .snapshot_id = no->snapshot_id,
                                .iceberg = ic->res.iceberg,
                                .discrepancy = ic->res.discrepancy,
                                .subjects = ic->subjects,
                                .nsubjects = ic->res.nsubjects};
    }
    o->noutputs = n->noutputs;
out:
    free(cat);
    free(po);
    if (err)
        eng_outputs_free(o);
    return err;
}
