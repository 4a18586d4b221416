/*
 * cli/audit_tree.h — what `audit` and `prove consistency` read (audit_tree.c), private to cli/:
 * a file sink's tree (FORMAT.md §7), either a local directory or an S3 bucket prefix
 * (`s3://bucket/prefix`, also s3a://), read the same way.
 *
 *   DIR/<queryId>/<batch20>.dsse.json          s3://bucket/prefix/<queryId>/<batch20>.dsse.json
 *   DIR/<queryId>/<batch20>.evidence.lz4       (ListObjectsV2 with delimiter '/', every page;
 *   DIR/<queryId>/checkpoint                    GETs through the shared S3 client of sinks/)
 *
 * An object store is listed into the same sorted batch lists as a directory, envelopes and
 * checkpoints are read into memory (bounded), and an evidence archive is streamed into a
 * temporary file (ws_verify_envelope reads a path) removed as soon as the window is checked:
 * disk, not memory, holds one window's evidence at a time.
 *
 * S3 settings: endpoint, region and addressing from the command line (--endpoint, --region,
 * --virtual-hosted), else AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL / AWS_REGION; credentials
 * from the environment only. A store that fails in a way that may pass (5xx, timeouts,
 * refused connections) is a runtime failure of the command (exit 3), not a verdict.
 */
#ifndef WS_CLI_AUDIT_TREE_H
#define WS_CLI_AUDIT_TREE_H

#include "cli/cli.h"
#include "sinks/sink.h"

struct ws_audit_tree; /* opaque */

/* How to reach a bucket; all NULL/false: the environment and path style. */
struct ws_audit_s3_opts {
    const char *endpoint, *region;
    bool virtual_hosted;
};

/*
 * where: a directory or s3://bucket[/prefix]. WS_ERR_CONFIG (bad URI, no credentials, bad
 * endpoint) with the reason; for a directory nothing is checked here.
 */
ws_err_t ws_audit_tree_open(const char *where, const struct ws_audit_s3_opts *s3,
                            struct ws_audit_tree **out, char *errbuf, size_t errlen) WS_MUST_CHECK;
void ws_audit_tree_close(struct ws_audit_tree *t);
bool ws_audit_tree_is_s3(const struct ws_audit_tree *t);
/* For messages: the directory, or "s3://bucket/prefix". */
const char *ws_audit_tree_name(const struct ws_audit_tree *t);
/* "<root>/<qid>" (qid NULL: the root), for messages and local paths. */
void ws_audit_tree_path(const struct ws_audit_tree *t, const char *qid, const char *name, char *out,
                        size_t cap);

/* Object stores: every query id with objects under the root, sorted (ws_query_id_safe ones). */
ws_err_t ws_audit_tree_queries(struct ws_audit_tree *t, char ***ids, size_t *n, char *errbuf,
                               size_t errlen) WS_MUST_CHECK;
void ws_audit_tree_free_ids(char **ids, size_t n);

/* The batch lists of <root>/<qid> (qid NULL: the root itself is the query's directory). */
ws_err_t ws_audit_tree_list(struct ws_audit_tree *t, const char *qid, struct ws_batch_list *out,
                            char *errbuf, size_t errlen) WS_MUST_CHECK;
/* <root>/<qid>/<name> into memory, at most max bytes; WS_ERR_NOT_FOUND if it is not there. */
ws_err_t ws_audit_tree_read(struct ws_audit_tree *t, const char *qid, const char *name, size_t max,
                            char **buf, size_t *len, char *errbuf, size_t errlen) WS_MUST_CHECK;
/*
 * A local path holding <root>/<qid>/<name> (the evidence): the file itself for a directory; for
 * a bucket a temporary copy (or, if the object is absent, a path that does not exist, so that
 * the verifier answers WS_ERR_NOT_FOUND as for a directory). Give it back with
 * ws_audit_tree_release.
 */
ws_err_t ws_audit_tree_local(struct ws_audit_tree *t, const char *qid, const char *name, char *path,
                             size_t cap, char *errbuf, size_t errlen) WS_MUST_CHECK;
void ws_audit_tree_release(struct ws_audit_tree *t, const char *path);

/* What ws_audit_list does per directory entry, for listings that are not directories. */
bool ws_audit_list_add(struct ws_batch_list *l, const char *name, size_t *cap_env, size_t *cap_ev);
void ws_audit_list_sort(struct ws_batch_list *l);

#endif /* WS_CLI_AUDIT_TREE_H */
