/*
 * config/config.h — the configuration file (SPEC 10) and key files.
 *
 * One table of known keys (config.c) drives parsing, type and range checks, defaults, `--set`
 * overrides and docs/CONFIGURATION.md: a key that is not in the table is an error, naming the
 * key and the file. Key files are read here so that their permission checks live in one place.
 *
 * Threads: load once at start; the result is read-only afterwards and may be shared.
 */
#ifndef WS_CONFIG_H
#define WS_CONFIG_H

#include "window/window.h"
#include <stdio.h>

struct ws_sink_conf {
    char *type;                                /* "file" or "s3" */
    char *path;                                /* file */
    char *endpoint, *bucket, *prefix, *region; /* s3 */
    bool path_style;
    bool verify_tls;
    int64_t timeout_ms;
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
    char *initial_offsets; /* reject | earliest */
    int64_t notification_max_bytes;
    char **allowed_roots; /* outputs.allowed_roots */
    size_t nallowed_roots;
    /* operations */
    char *metrics_listen;
    char *log_level;  /* debug | info | warn | error */
    char *log_format; /* logfmt | json */
};

/*
 * Load path (NULL: defaults only), then apply sets[0..nsets) of the form "a.b.c=value" (the
 * value is JSON if it parses as JSON, else a string). Unknown keys, wrong types and values out of
 * range are WS_ERR_CONFIG naming the key and the file.
 */
ws_err_t ws_config_load(const char *path, const char *const *sets, size_t nsets,
                        struct ws_config **out, char *errbuf, size_t errlen) WS_MUST_CHECK;
void ws_config_free(struct ws_config *c);
/* Markdown table of every key (type, default, description) for docs/CONFIGURATION.md. */
void ws_config_write_docs(FILE *f);

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
