/*
 * iceberg/iceberg.h — what an Iceberg snapshot added, read from the REST catalog and the table's
 * own Avro metadata instead of the Spark job's word (FORMAT.md §5 "Iceberg outputs", SPEC §6
 * "Iceberg snapshots").
 *
 *   ws_iceberg_match          is an output name `<catalog>.<namespace…>.<table>` of a configured
 *                             catalog (else it is a plain output)
 *   ws_iceberg_resolve        the whole story for one output: REST catalog (config, loadTable),
 *                             the snapshot (by id or by summary stamps), its manifest list, the
 *                             manifests it added, the ADDED data files hashed, the summary
 *                             cross-check, the discrepancy with the job's own list, and the
 *                             `outputs[i].iceberg` JSON object
 *   ws_iceberg_read_*         the two Avro readers (manifest list, manifest), public so that the
 *                             fuzzer and the tests drive exactly what resolve runs
 *
 * Objects (manifest lists, manifests, data files) are read through a vtable the caller provides
 * (struct ws_iceberg_io): this module knows no object store. Its fetch streams an object into a
 * ws_write_fn; manifests are buffered here up to WS_ICEBERG_MAX_AVRO bytes, data files only pass
 * through SHA-256. The catalog itself is spoken to here, over libcurl.
 *
 * Errors: ws_iceberg_resolve returns a retriable ws_err_t (WS_ERR_IO, WS_ERR_TIMEOUT, WS_ERR_NOMEM)
 * when the catalog or the store is down, slow or overloaded (5xx, 429, timeouts, refused
 * connections): nothing is decided and the caller retries the window later. Everything that is
 * the table's fault or the configuration's (404, 401, 403, a corrupt or unsupported Avro file, a
 * manifest outside the table's location, no such snapshot) is WS_OK with the reason in the
 * result's `iceberg.error`: the window is attested with it.
 *
 * Threads: no global state besides libcurl's (curl_global_init is the caller's, once, before any
 * thread); every function may be called from any thread, concurrently with the others.
 */
#ifndef WS_ICEBERG_H
#define WS_ICEBERG_H

#include "config/config.h"
#include "window/window.h"

#include <jansson.h>

/* Largest manifest list or manifest buffered (compressed, as stored). */
#define WS_ICEBERG_MAX_AVRO (64u * 1024 * 1024)
/* Largest decompressed Avro block; larger ones are refused as hostile. */
#define WS_ICEBERG_MAX_BLOCK (64u * 1024 * 1024)
/* Largest catalog response (a loadTable with snapshots=all of a long-lived table). */
#define WS_ICEBERG_MAX_RESPONSE (64u * 1024 * 1024)
/* Most entries read from one Avro file, and most added data files of one snapshot. */
#define WS_ICEBERG_MAX_ENTRIES 1000000u
#define WS_ICEBERG_MAX_FILES 100000u
/* Catalog requests: connect + transfer. */
#define WS_ICEBERG_TIMEOUT_MS 30000

/* ------------------------------------------------------------------------------------------ */
/* Object I/O: the caller's                                                                       */

/* Credentials the catalog vended for one table (LoadTableResult.config); NULL members: absent. */
struct ws_iceberg_creds {
    const char *access_key_id;     /* s3.access-key-id */
    const char *secret_access_key; /* s3.secret-access-key */
    const char *session_token;     /* s3.session-token */
    const char *endpoint;          /* s3.endpoint */
    const char *region;            /* client.region */
};

/*
 * Stream the object at uri (s3://, s3a://, file://, http://… as the table names it) into
 * out(out_opaque, …) and set *bytes to the number of bytes delivered. vended: the table's
 * credentials, or NULL for the caller's defaults (outputs.s3). Returns WS_OK, WS_ERR_NOT_FOUND
 * (404, no such file), WS_ERR_PERMISSION (401, 403), a retriable error (5xx, 429, timeout,
 * connection) or another permanent one; if out fails, fetch stops and returns out's error.
 * errbuf says what happened in words that go into the statement ("HTTP 404").
 */
typedef ws_err_t (*ws_iceberg_fetch_fn)(void *opaque, const char *uri,
                                        const struct ws_iceberg_creds *vended, ws_write_fn out,
                                        void *out_opaque, uint64_t *bytes, char *errbuf,
                                        size_t errlen);
struct ws_iceberg_io {
    ws_iceberg_fetch_fn fetch;
    void *opaque;
};

/* ------------------------------------------------------------------------------------------ */
/* Resolving one output                                                                           */

/* A data file that was read whole: a subject of the statement. */
struct ws_iceberg_subject {
    char *path;                       /* as the manifest names it */
    char sha256[WS_HASH_HEX_LEN + 1]; /* lowercase hex */
    uint64_t bytes;
};

struct ws_iceberg_result {
    json_t *iceberg;     /* outputs[i].iceberg (success or failure shape); owned */
    json_t *discrepancy; /* outputs[i].discrepancy, or NULL when absent; owned */
    /* What windowseal_output_discrepancies_total counts: 1 for a discrepancy object, 1 for a
     * summaryMismatch. */
    unsigned discrepancies;
    struct ws_iceberg_subject *subjects; /* sorted by path; owned */
    size_t nsubjects;
};
void ws_iceberg_result_free(struct ws_iceberg_result *r);

/*
 * The configured catalog an output name belongs to: the name has at least three non-empty
 * dot-separated parts and the first names one of cats[0..n). NULL: a plain output.
 */
const struct ws_iceberg_catalog_conf *ws_iceberg_match(const struct ws_iceberg_catalog_conf *cats,
                                                       size_t n, const char *output_name);

/*
 * Resolve output_name (which ws_iceberg_match mapped to cat) for batch batch_id of query_id.
 * job_snapshot_id: the notification's outputs[i].snapshotId (decimal string) or NULL;
 * job_files[0..njob): the files the job listed (compared, never hashed). On WS_OK, *out holds
 * the iceberg object (error or not), the discrepancy and the subjects; free it with
 * ws_iceberg_result_free. A retriable error (see the top of this file) leaves *out empty and
 * errbuf saying what was down. Blocking: catalog requests time out after WS_ICEBERG_TIMEOUT_MS,
 * fetches after whatever io does.
 */
ws_err_t ws_iceberg_resolve(const struct ws_iceberg_catalog_conf *cat, const char *output_name,
                            const char *job_snapshot_id, const char *const *job_files, size_t njob,
                            const char *query_id, int64_t batch_id, const struct ws_iceberg_io *io,
                            struct ws_iceberg_result *out, char *errbuf,
                            size_t errlen) WS_MUST_CHECK;

/* ------------------------------------------------------------------------------------------ */
/* The Avro readers (Iceberg table spec: manifest lists and manifests, fields by field id)       */

/* One manifest_file of a manifest list. */
struct ws_iceberg_manifest {
    char *path;                /* 500 manifest_path */
    int64_t length;            /* 501 manifest_length */
    int64_t added_snapshot_id; /* 503 */
    int32_t content;           /* 517, absent (v1): 0 = data */
    int64_t sequence_number;   /* 515, absent (v1): 0 */
};

/* One manifest_entry of a manifest. */
struct ws_iceberg_entry {
    int32_t status;       /* 0 EXISTING, 1 ADDED, 2 DELETED */
    bool snapshot_id_set; /* false: null, inherited from the manifest's added_snapshot_id */
    int64_t snapshot_id;  /* 1 */
    int32_t content;      /* 2.134: 0 data, 1 position deletes, 2 equality deletes */
    char *path;           /* 2.100 file_path */
    int64_t record_count; /* 2.103 */
    int64_t file_size;    /* 2.104 file_size_in_bytes */
};

/*
 * Read an Avro object container file (codec null, deflate or snappy) holding a manifest list /
 * a manifest, whole, from buf[0..len). Fields are found by their Iceberg field ids in the
 * writer schema (names differ between writers). Arrays are malloc'ed; free them with
 * ws_iceberg_manifests_free / ws_iceberg_entries_free. Errors: WS_ERR_MALFORMED,
 * WS_ERR_TRUNCATED (not Avro, corrupt, a field missing or of the wrong type), WS_ERR_UNSUPPORTED
 * (another codec: the reason names it), WS_ERR_TOO_LARGE (beyond the bounds above),
 * WS_ERR_NOMEM; errbuf says where.
 */
ws_err_t ws_iceberg_read_manifest_list(const void *buf, size_t len,
                                       struct ws_iceberg_manifest **out, size_t *n, char *errbuf,
                                       size_t errlen) WS_MUST_CHECK;
ws_err_t ws_iceberg_read_manifest(const void *buf, size_t len, struct ws_iceberg_entry **out,
                                  size_t *n, char *errbuf, size_t errlen) WS_MUST_CHECK;
void ws_iceberg_manifests_free(struct ws_iceberg_manifest *m, size_t n);
void ws_iceberg_entries_free(struct ws_iceberg_entry *e, size_t n);

#endif /* WS_ICEBERG_H */
