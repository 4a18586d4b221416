/*
 * config/config.h — the configuration file (FORMAT.md §10) and key files.
 *
 * Option tables drive everything (librdkafka's property table, Fluent Bit's config_map): a
 * `struct ws_option` names a key, its type, where its value goes in the struct the table fills,
 * its default, range, whether it is required, and its line of docs/CONFIGURATION.md. config.c
 * holds the table of the fixed sections (kafka, signing, spool, ...); a key that is not in a
 * table is an error naming the key and the file.
 *
 * Sinks are an array of objects, each of a type whose keys config/ does not know: each sink
 * type declares its own table next to its callbacks (sinks/), and the caller hands the types
 * in (`ws_sink_types()`), so that config/ stays below sinks/. Every sink object is checked
 * against its type's table at load time, the same way as the sections, and kept as
 * {type, table, filled struct} for the sink to read at create.
 *
 * Key files are read here so that their permission checks live in one place.
 *
 * Threads: load once at start; the result is read-only afterwards and may be shared.
 */
#ifndef WS_CONFIG_H
#define WS_CONFIG_H

#include "window/window.h"
#include <stdio.h>

/* ------------------------------------------------------------------------------------------ */
/* Option tables                                                                                  */

enum ws_opt_type {
    WS_OPT_STRING,   /* char * (malloc'ed) */
    WS_OPT_INT,      /* int64_t in [min, max] */
    WS_OPT_BOOL,     /* bool */
    WS_OPT_ENUM,     /* char *, one of choices */
    WS_OPT_STRLIST,  /* char ** array, then its size_t count */
    WS_OPT_STRMAP,   /* char ** of key, value, key, value, ..., then its size_t pair count */
    WS_OPT_CATALOGS, /* struct ws_iceberg_catalog_conf * array, then its size_t count */
};

/* One key. "type" is reserved in sink tables: it names the sink type. */
struct ws_option {
    const char *name;
    enum ws_opt_type type;
    size_t offset;       /* of the field in the struct the table fills */
    const char *def;     /* default as JSON-less text ("30000", "true", "us-east-1"); NULL: none */
    int64_t min, max;    /* WS_OPT_INT */
    const char *choices; /* WS_OPT_ENUM: "a|b|c" */
    bool required;       /* must be given; a string must not be empty */
    const char *help;    /* one line for docs/CONFIGURATION.md */
};

/* A named option table: one sink type's keys and the size of the struct they fill. */
struct ws_option_table {
    const char *name; /* the sink type, "file" */
    const struct ws_option *options;
    size_t nopts;
    size_t size;
};

/* The sink types a configuration may name, in the order messages and docs list them. */
struct ws_sink_types {
    const struct ws_option_table *const *tables;
    size_t n;
};

/* One Iceberg REST catalog of iceberg.catalogs: {"<name>": {uri, warehouse?, prefix?, token_env?}}.
 * Absent optional strings are "" (never NULL). */
struct ws_iceberg_catalog_conf {
    char *name;      /* first part of an output name `<catalog>.<namespace...>.<table>` */
    char *uri;       /* REST base, e.g. http://catalog:8181 (requests go to {uri}/v1/...) */
    char *warehouse; /* ?warehouse= of GET /v1/config */
    char *prefix;    /* used when the server's config has no overrides.prefix */
    char *token_env; /* environment variable holding the bearer token */
};
#define WS_CONFIG_MAX_CATALOGS 64

/* Configured sinks; the engine adds the attestations topic as one more (8 in all). */
#define WS_CONFIG_MAX_SINKS 7

struct ws_sink_conf {
    const char *type;                    /* table->name */
    const struct ws_option_table *table; /* from the ws_sink_types given to ws_config_load */
    void *opts;                          /* table->size bytes filled from table; owned */
};

struct ws_config {
    char *source; /* file the configuration came from, or "(defaults)" */
    /* kafka */
    char *bootstrap;
    char *group_id;
    char *notifications_topic;
    char *attestations_topic;
    char *deadletter_topic; /* default <notifications topic>.dlq */
    char *heads_topic;      /* default <attestations topic>.heads */
    char **kafka_props;     /* key, value, key, value, ... */
    size_t nkafka_props;    /* number of pairs */
    /* signing */
    char *signing_key;
    char **verify_keys; /* extra public keys accepted when adopting existing envelopes */
    size_t nverify_keys;
    /* sinks */
    struct ws_sink_conf *sinks;
    size_t nsinks;
    /* spool */
    char *spool_path;
    char *spool_io_uring; /* auto | on | off */
    int64_t spool_max_bytes;
    /* engine */
    int64_t fetch_timeout_ms;
    int64_t gap_wait_ms;
    int64_t retry_base_ms;
    int64_t retry_max_ms;
    int64_t max_windows_in_flight;
    int64_t build_workers;
    char *hash_lanes;      /* auto | one | shani | avx512 */
    char *initial_offsets; /* reject | earliest */
    int64_t notification_max_bytes;
    char **allowed_roots; /* outputs.allowed_roots */
    size_t nallowed_roots;
    char *outputs_s3_endpoint; /* outputs.s3: how s3:// output files are read ("": environment) */
    char *outputs_s3_region;
    bool outputs_s3_path_style;
    /* iceberg */
    struct ws_iceberg_catalog_conf *catalogs; /* iceberg.catalogs, in the file's order */
    size_t ncatalogs;
    /* openlineage (FORMAT.md §11): off unless url or kafka_topic is set */
    char *ol_url;         /* HTTP backend base, e.g. http://marquez:5000 */
    char *ol_endpoint;    /* POST {url}/{endpoint} */
    char *ol_namespace;   /* the job namespace */
    char *ol_api_key_env; /* environment variable holding the bearer token ("": none) */
    char *ol_kafka_topic; /* instead of url: produce the events to this topic */
    /* operations */
    char *metrics_listen;
    char *log_level;  /* debug | info | warn | error */
    char *log_format; /* logfmt | json */
};

/*
 * Load path (NULL: defaults only), then apply sets[0..nsets) of the form "a.b.c=value" (the
 * value is JSON if it parses as JSON, else a string). Each element of "sinks" must be of one of
 * sink_types (NULL: none) and is checked against its table. Unknown keys, wrong types, values
 * out of range, missing required keys and more than WS_CONFIG_MAX_SINKS sinks are
 * WS_ERR_CONFIG naming the key and the file; WS_ERR_NOMEM if memory ran out.
 */
ws_err_t ws_config_load(const char *path, const char *const *sets, size_t nsets,
                        const struct ws_sink_types *sink_types, struct ws_config **out,
                        char *errbuf, size_t errlen) WS_MUST_CHECK;
void ws_config_free(struct ws_config *c);
/* Markdown tables of every key (type, default, description) for docs/CONFIGURATION.md. */
void ws_config_write_docs(FILE *f, const struct ws_sink_types *sink_types);

/* Local files (files.c). errno (or -errno) -> its cause: NOSPACE, NOMEM, PERMISSION, NOT_FOUND,
 * IO. */
ws_err_t ws_errno_err(int err);
/* The engine's own disk: never permanent, so NOSPACE, NOMEM or IO (retriable). */
ws_err_t ws_errno_local(int err);
/* fsync a directory, so that a rename or create in it is durable. */
ws_err_t ws_fsync_dir(const char *dir, char *errbuf, size_t errlen) WS_MUST_CHECK;
/* mkdir -p with mode 0755. */
ws_err_t ws_mkdirs(const char *path, char *errbuf, size_t errlen) WS_MUST_CHECK;
/* Read a whole file of at most max bytes; *buf is malloc'ed and NUL-terminated. */
ws_err_t ws_file_read(const char *path, size_t max, char **buf, size_t *len, char *errbuf,
                      size_t errlen) WS_MUST_CHECK;
/*
 * Load a key file. A private key must not be readable or writable by group or others
 * (WS_ERR_PERMISSION, saying which mode it has). want_private: the file must hold a private key.
 */
ws_err_t ws_key_load(const char *path, bool want_private, struct ws_key *k, char *errbuf,
                     size_t errlen) WS_MUST_CHECK;
/* Write PATH (0600, private) and PATH.pub; refuses to overwrite either (WS_ERR_EXISTS_DIFFERENT). */
ws_err_t ws_key_save(const char *path, const struct ws_key *k, char *errbuf,
                     size_t errlen) WS_MUST_CHECK;

#endif /* WS_CONFIG_H */
