/*
 * config.c — the configuration file, driven by option tables.
 *
 * Like librdkafka's property table, `keys[]` below is the single source of truth for the fixed
 * sections: parsing, type and range checks, defaults, `--set` overrides and the generated docs
 * all read it. Each sink type brings its own table (struct ws_option_table, defined next to the
 * sink in sinks/ and handed in by the caller), read by the same code: store(), default_one(),
 * free_one() and the docs writer work on any struct ws_option, whatever struct it fills. A JSON
 * file is first merged with the `--set` overrides (as a JSON tree), then walked once: every
 * member must be a known section or key, of the right type, in range; every sink object must
 * name a known type and hold only that type's keys, with the required ones present.
 *
 * Keys with dots in their names (Kafka's "bootstrap.servers") are why a `--set` path is matched
 * against the table, longest known key first, instead of being split at every dot.
 */
#include "config/config.h"

#include <jansson.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* A key of a fixed section: the section it lives in, and the option filling struct ws_config. */
struct key {
    const char *section;
    struct ws_option opt;
};

/* clang-format off */
#define KEY(sec, name, type, field, def, min, max, choices, help) \
    {sec, {name, type, offsetof(struct ws_config, field), def, min, max, choices, false, help}}
/* clang-format on */

static const struct key keys[] = {
    KEY("kafka", "bootstrap.servers", WS_OPT_STRING, bootstrap, "127.0.0.1:9092", 0, 0, NULL,
        "Kafka bootstrap servers for every client of the engine."),
    KEY("kafka", "group.id", WS_OPT_STRING, group_id, "windowseal", 0, 0, NULL,
        "Consumer group of the notifications consumer; also names the collector "
        "(`windowseal:<group.id>`)."),
    KEY("kafka", "notifications.topic", WS_OPT_STRING, notifications_topic, "windowseal.batches", 0,
        0, NULL, "Topic the Spark jobs post batch notifications to (key = query id)."),
    KEY("kafka", "attestations.topic", WS_OPT_STRING, attestations_topic, "windowseal.attestations",
        0, 0, NULL, "Topic the DSSE envelopes are published to (key = query id)."),
    KEY("kafka", "deadletter.topic", WS_OPT_STRING, deadletter_topic, "", 0, 0, NULL,
        "Dead-letter topic for rejected notifications; empty: `<notifications.topic>.dlq`."),
    KEY("kafka", "heads.topic", WS_OPT_STRING, heads_topic, "", 0, 0, NULL,
        "Compacted topic holding each query's chain head; empty: `<attestations.topic>.heads`."),
    KEY("kafka", "properties", WS_OPT_STRMAP, kafka_props, NULL, 0, 0, NULL,
        "librdkafka properties passed to every client (string values), e.g. security.protocol."),
    KEY("signing", "key", WS_OPT_STRING, signing_key, "", 0, 0, NULL,
        "Ed25519 private key, PKCS#8 PEM, mode 0600 (made by `windowseal keygen`). Required by "
        "run."),
    KEY("signing", "verify_keys", WS_OPT_STRLIST, verify_keys, NULL, 0, 0, NULL,
        "Public keys (SPKI PEM) besides the signing key's whose envelopes the engine accepts when "
        "it "
        "reads back earlier windows (duplicate checks after a key rotation)."),
    KEY("spool", "path", WS_OPT_STRING, spool_path, "spool/", 0, 0, NULL,
        "Local directory where evidence and envelopes are made durable before any sink."),
    KEY("spool", "io_uring", WS_OPT_ENUM, spool_io_uring, "auto", 0, 0, "auto|on|off",
        "Use io_uring for spool writes, output-file reads and file-sink writes: auto falls back "
        "to plain syscalls."),
    KEY("spool", "max_bytes", WS_OPT_INT, spool_max_bytes, "1073741824", 1 << 20, INT64_MAX, NULL,
        "Spool size bound; when reached the engine pauses intake instead of dropping anything."),
    KEY("engine", "fetch_timeout_ms", WS_OPT_INT, fetch_timeout_ms, "30000", 10, 86400000, NULL,
        "How long a window waits for records beyond the high watermark before retrying later."),
    KEY("engine", "gap_wait_ms", WS_OPT_INT, gap_wait_ms, "5000", 0, 86400000, NULL,
        "How long a batch that skips ahead waits for the missing batches before they become a "
        "gap."),
    KEY("engine", "retry_base_ms", WS_OPT_INT, retry_base_ms, "100", 1, 3600000, NULL,
        "First retry delay for retriable failures (doubles, with jitter)."),
    KEY("engine", "retry_max_ms", WS_OPT_INT, retry_max_ms, "30000", 1, 86400000, NULL,
        "Largest retry delay."),
    KEY("engine", "max_windows_in_flight", WS_OPT_INT, max_windows_in_flight, "32", 1, 256, NULL,
        "Windows being written to the object stores at once (one store worker thread each, "
        "with its own connections); windows of one query are stored one after the other."),
    KEY("engine", "hash_lanes", WS_OPT_ENUM, hash_lanes, "auto", 0, 0, "auto|one|shani|avx512",
        "SHA-256 engine for the window hashes: auto measures the engines this CPU has at start "
        "(100-byte and 1 KiB records, about 4 ms) and takes the fastest over both; one, shani or "
        "avx512 force one (same bytes)."),
    KEY("engine", "build_workers", WS_OPT_INT, build_workers, "2", 1, 64, NULL,
        "Windows being built at once (records re-read, hashed, compressed, spooled; one worker "
        "thread each, with its own Kafka reader), so a big window delays only itself."),
    KEY("notifications", "initial_offsets", WS_OPT_ENUM, initial_offsets, "reject", 0, 0,
        "reject|earliest",
        "Spark batch 0 with startOffset null: reject it, or read from the earliest retained "
        "offset."),
    KEY("notifications", "max_bytes", WS_OPT_INT, notification_max_bytes, "1048576", 256,
        64 * 1024 * 1024, NULL, "Largest notification accepted; larger ones are dead-lettered."),
    KEY("outputs", "allowed_roots", WS_OPT_STRLIST, allowed_roots, NULL, 0, 0, NULL,
        "If set, output files are hashed only under these directories."),
    KEY("outputs.s3", "endpoint", WS_OPT_STRING, outputs_s3_endpoint, "", 0, 0, NULL,
        "S3 endpoint URL for `s3://` and `s3a://` output files; empty: `AWS_ENDPOINT_URL_S3`, "
        "`AWS_ENDPOINT_URL`, else AWS (`https://s3.<region>.amazonaws.com`). Credentials come "
        "from the environment."),
    KEY("outputs.s3", "region", WS_OPT_STRING, outputs_s3_region, "", 0, 0, NULL,
        "SigV4 region for output files; empty: `AWS_REGION`, `AWS_DEFAULT_REGION`, else "
        "us-east-1."),
    KEY("outputs.s3", "path_style", WS_OPT_BOOL, outputs_s3_path_style, "true", 0, 0, NULL,
        "Path-style addressing for output files (MinIO, s3rver); false: virtual-hosted style."),
    KEY("iceberg", "catalogs", WS_OPT_CATALOGS, catalogs, NULL, 0, 0, NULL,
        "Iceberg REST catalogs by name: an output named `<catalog>.<namespace...>.<table>` of one "
        "of them is resolved from the catalog's snapshot instead of the job's file list."),
    KEY("openlineage", "url", WS_OPT_STRING, ol_url, "", 0, 0, NULL,
        "OpenLineage HTTP backend (http or https), e.g. `http://marquez:5000`: each attested "
        "window "
        "is POSTed as a START and a COMPLETE RunEvent; empty: no HTTP lineage."),
    KEY("openlineage", "endpoint", WS_OPT_STRING, ol_endpoint, "api/v1/lineage", 0, 0, NULL,
        "Path under `url` the events are POSTed to (`{url}/{endpoint}`)."),
    KEY("openlineage", "namespace", WS_OPT_STRING, ol_namespace, "windowseal", 0, 0, NULL,
        "Job namespace of the events (job `<query name or id>.attest`)."),
    KEY("openlineage", "api_key_env", WS_OPT_STRING, ol_api_key_env, "", 0, 0, NULL,
        "Environment variable holding the bearer token sent to `url` (`Authorization: Bearer`); "
        "empty: no Authorization header."),
    KEY("openlineage", "kafka_topic", WS_OPT_STRING, ol_kafka_topic, "", 0, 0, NULL,
        "Instead of `url`: produce the events to this topic with the engine's producer (key "
        "`run:<namespace>/<job name>`)."),
    KEY("metrics", "listen", WS_OPT_STRING, metrics_listen, "", 0, 0, NULL,
        "HOST:PORT of the Prometheus endpoint; empty: off."),
    KEY("log", "level", WS_OPT_ENUM, log_level, "info", 0, 0, "debug|info|warn|error",
        "Lowest level logged."),
    KEY("log", "format", WS_OPT_ENUM, log_format, "logfmt", 0, 0, "logfmt|json",
        "One line per event, logfmt or JSON lines."),
};
#define NKEYS (sizeof keys / sizeof keys[0])

static const char *typename(enum ws_opt_type t)
{
    switch (t) {
    case WS_OPT_STRING:
    case WS_OPT_ENUM:
        return "string";
    case WS_OPT_INT:
        return "integer";
    case WS_OPT_BOOL:
        return "boolean";
    case WS_OPT_STRLIST:
        return "array of strings";
    case WS_OPT_STRMAP:
        return "object of strings";
    case WS_OPT_CATALOGS:
        return "object of catalogs";
    }
    return "?";
}

static bool choice_ok(const char *choices, const char *v)
{
    size_t n = strlen(v);
    const char *p = choices;

    while (p && *p) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && memcmp(p, v, n) == 0)
            return true;
        p = bar ? bar + 1 : NULL;
    }
    return false;
}

static ws_err_t set_string(char **dst, const char *v)
{
    char *s = strdup(v);
    if (!s)
        return WS_ERR_NOMEM;
    free(*dst);
    *dst = s;
    return WS_OK;
}

static void free_list(char **l, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(l[i]);
    free(l);
}

static ws_err_t store(void *base, const struct ws_option *o, const json_t *v, const char *keyname,
                      const char *file, char *errbuf, size_t errlen);
static ws_err_t default_one(void *base, const struct ws_option *o);

/* The keys of one catalog of iceberg.catalogs, read by the same code as a sink's table. */
/* clang-format off */
#define CAT(name, field, required, help) \
    {name, WS_OPT_STRING, offsetof(struct ws_iceberg_catalog_conf, field), "", 0, 0, NULL, \
     required, help}
static const struct ws_option catalog_opts[] = {
    CAT("uri", uri, true, "REST catalog base URL (http or https); requests go to `{uri}/v1/...`."),
    CAT("warehouse", warehouse, false,
        "Sent as `GET {uri}/v1/config?warehouse=...`; empty: the parameter is left out."),
    CAT("prefix", prefix, false,
        "Path prefix of the catalog's routes when the server's config has no `overrides.prefix` "
        "(it wins over the server's `defaults.prefix`)."),
    CAT("token_env", token_env, false,
        "Environment variable holding the bearer token; empty: no Authorization header."),
};
#undef CAT
/* clang-format on */
#define NCATALOG_OPTS (sizeof catalog_opts / sizeof catalog_opts[0])

static void free_catalogs(struct ws_iceberg_catalog_conf *cats, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(cats[i].name);
        for (size_t j = 0; j < NCATALOG_OPTS; j++)
            free(*(char **)((char *)&cats[i] + catalog_opts[j].offset));
    }
    free(cats);
}

/* {"<name>": {uri, warehouse?, prefix?, token_env?}, ...}: every catalog checked whole. A name
 * is the first dot-separated part of an output name, so it cannot hold a dot. */
static ws_err_t store_catalogs(struct ws_iceberg_catalog_conf **arr, size_t *n, const json_t *v,
                               const char *keyname, const char *file, char *errbuf, size_t errlen)
{
    const char *name, *k;
    json_t *cv, *e;
    char full[256];
    ws_err_t err;

    if (!json_is_object(v))
        return ws_fail(WS_ERR_CONFIG, errbuf, errlen, "%s: %s: expected an object of catalogs",
                       file, keyname);
    if (json_object_size(v) > WS_CONFIG_MAX_CATALOGS)
        return ws_fail(WS_ERR_CONFIG, errbuf, errlen, "%s: %s: at most %d catalogs", file, keyname,
                       WS_CONFIG_MAX_CATALOGS);
    free_catalogs(*arr, *n);
    *n = 0;
    if (!(*arr = calloc(json_object_size(v) + 1, sizeof **arr)))
        return WS_ERR_NOMEM;
    json_object_foreach((json_t *)v, name, cv)
    {
        struct ws_iceberg_catalog_conf *c = &(*arr)[*n];
        snprintf(full, sizeof full, "%s.%s", keyname, name);
        if (!*name || strchr(name, '.'))
            return ws_fail(WS_ERR_CONFIG, errbuf, errlen,
                           "%s: %s: a catalog name is one non-empty part without dots", file, full);
        if (!json_is_object(cv))
            return ws_fail(WS_ERR_CONFIG, errbuf, errlen, "%s: %s: expected an object", file, full);
        if (!(c->name = strdup(name)))
            return WS_ERR_NOMEM;
        (*n)++;
        for (size_t j = 0; j < NCATALOG_OPTS; j++)
            if ((err = default_one(c, &catalog_opts[j])))
                return err;
        json_object_foreach(cv, k, e)
        {
            const struct ws_option *o = NULL;
            for (size_t j = 0; j < NCATALOG_OPTS && !o; j++)
                if (strcmp(catalog_opts[j].name, k) == 0)
                    o = &catalog_opts[j];
            snprintf(full, sizeof full, "%s.%s.%s", keyname, name, k);
            if (!o)
                return ws_fail(WS_ERR_CONFIG, errbuf, errlen,
                               "%s: %s: unknown key (a catalog has uri, warehouse, prefix, "
                               "token_env)",
                               file, full);
            if ((err = store(c, o, e, full, file, errbuf, errlen)))
                return err;
        }
        if (strncmp(c->uri, "http://", 7) != 0 && strncmp(c->uri, "https://", 8) != 0)
            return ws_fail(WS_ERR_CONFIG, errbuf, errlen,
                           "%s: %s.%s.uri: required, an http:// or https:// URL", file, keyname,
                           name);
    }
    return WS_OK;
}

/* Store one JSON value into the field of base that o describes, after checking it. */
static ws_err_t store(void *base, const struct ws_option *o, const json_t *v, const char *keyname,
                      const char *file, char *errbuf, size_t errlen)
{
    char *p = (char *)base + o->offset;

    switch (o->type) {
    case WS_OPT_STRING:
    case WS_OPT_ENUM:
        if (!json_is_string(v))
            goto bad_type;
        if (o->type == WS_OPT_ENUM && !choice_ok(o->choices, json_string_value(v)))
            return ws_fail(WS_ERR_CONFIG, errbuf, errlen, "%s: %s: \"%s\" is not one of %s", file,
                           keyname, json_string_value(v), o->choices);
        if (strlen(json_string_value(v)) != json_string_length(v))
            return ws_fail(WS_ERR_CONFIG, errbuf, errlen, "%s: %s: contains a NUL byte", file,
                           keyname);
        return set_string((char **)p, json_string_value(v));
    case WS_OPT_INT:
        if (!json_is_integer(v))
            goto bad_type;
        if (json_integer_value(v) < o->min || json_integer_value(v) > o->max)
            return ws_fail(WS_ERR_CONFIG, errbuf, errlen,
                           "%s: %s: %lld is out of range [%lld, %lld]", file, keyname,
                           (long long)json_integer_value(v), (long long)o->min, (long long)o->max);
        *(int64_t *)p = json_integer_value(v);
        return WS_OK;
    case WS_OPT_BOOL:
        if (!json_is_boolean(v))
            goto bad_type;
        *(bool *)p = json_is_true(v);
        return WS_OK;
    case WS_OPT_STRLIST: {
        char ***arr = (char ***)p;
        size_t *n = (size_t *)(p + sizeof(char **));
        size_t i;
        json_t *e;
        if (!json_is_array(v))
            goto bad_type;
        json_array_foreach(v, i, e)
        {
            if (!json_is_string(e))
                goto bad_type;
        }
        free_list(*arr, *n);
        *n = 0;
        *arr = calloc(json_array_size(v) + 1, sizeof(char *));
        if (!*arr)
            return WS_ERR_NOMEM;
        json_array_foreach(v, i, e)
        {
            if (!((*arr)[i] = strdup(json_string_value(e))))
                return WS_ERR_NOMEM;
            *n = i + 1;
        }
        return WS_OK;
    }
    case WS_OPT_STRMAP: {
        char ***arr = (char ***)p;
        size_t *n = (size_t *)(p + sizeof(char **));
        const char *k;
        json_t *e;
        size_t i = 0;
        if (!json_is_object(v))
            goto bad_type;
        json_object_foreach((json_t *)v, k, e)
        {
            if (!json_is_string(e))
                return ws_fail(WS_ERR_CONFIG, errbuf, errlen,
                               "%s: %s.%s: librdkafka properties are strings", file, keyname, k);
        }
        *arr = calloc(2 * json_object_size(v) + 1, sizeof(char *));
        if (!*arr)
            return WS_ERR_NOMEM;
        json_object_foreach((json_t *)v, k, e)
        {
            if (!((*arr)[2 * i] = strdup(k)) || !((*arr)[2 * i + 1] = strdup(json_string_value(e))))
                return WS_ERR_NOMEM;
            *n = ++i;
        }
        return WS_OK;
    }
    case WS_OPT_CATALOGS:
        return store_catalogs((struct ws_iceberg_catalog_conf **)p,
                              (size_t *)(p + sizeof(struct ws_iceberg_catalog_conf *)), v, keyname,
                              file, errbuf, errlen);
    }
bad_type:
    return ws_fail(WS_ERR_CONFIG, errbuf, errlen, "%s: %s: expected %s", file, keyname,
                   typename(o->type));
}

static ws_err_t default_one(void *base, const struct ws_option *o)
{
    char *p = (char *)base + o->offset;

    if (!o->def)
        return WS_OK;
    switch (o->type) {
    case WS_OPT_STRING:
    case WS_OPT_ENUM:
        return set_string((char **)p, o->def);
    case WS_OPT_INT:
        *(int64_t *)p = strtoll(o->def, NULL, 10);
        return WS_OK;
    case WS_OPT_BOOL:
        *(bool *)p = strcmp(o->def, "true") == 0;
        return WS_OK;
    default:
        return WS_OK;
    }
}

static void free_one(void *base, const struct ws_option *o)
{
    char *p = (char *)base + o->offset;

    if (o->type == WS_OPT_STRING || o->type == WS_OPT_ENUM)
        free(*(char **)p);
    else if (o->type == WS_OPT_STRLIST)
        free_list(*(char ***)p, *(size_t *)(p + sizeof(char **)));
    else if (o->type == WS_OPT_STRMAP)
        free_list(*(char ***)p, 2 * *(size_t *)(p + sizeof(char **)));
    else if (o->type == WS_OPT_CATALOGS)
        free_catalogs(*(struct ws_iceberg_catalog_conf **)p,
                      *(size_t *)(p + sizeof(struct ws_iceberg_catalog_conf *)));
}

/* ------------------------------------------------------------------------------------------ */
/* Sinks: an array of objects, each checked against its type's table                           */

static const struct ws_option_table *find_type(const struct ws_sink_types *types, const char *name)
{
    for (size_t i = 0; types && i < types->n; i++)
        if (strcmp(types->tables[i]->name, name) == 0)
            return types->tables[i];
    return NULL;
}

static const struct ws_option *find_option(const struct ws_option_table *t, const char *name)
{
    for (size_t i = 0; i < t->nopts; i++)
        if (strcmp(t->options[i].name, name) == 0)
            return &t->options[i];
    return NULL;
}

/* The type names as `"a", "b" or "c"` with q as the quote. */
static void join_types(const struct ws_sink_types *types, const char *q, char *out, size_t cap)
{
    size_t n = types ? types->n : 0, o = 0;

    out[0] = '\0';
    if (n == 0) {
        snprintf(out, cap, "a sink type (none is known here)");
        return;
    }
    for (size_t i = 0; i < n && o < cap; i++)
        o += (size_t)snprintf(out + o, cap - o, "%s%s%s%s",
                              i == 0       ? ""
                              : i + 1 == n ? " or "
                                           : ", ",
                              q, types->tables[i]->name, q);
}

/* A required key that is absent, or an empty string. */
static bool missing(const void *base, const struct ws_option *o, const json_t *obj)
{
    const char *p = (const char *)base + o->offset;

    if (o->type == WS_OPT_STRING || o->type == WS_OPT_ENUM)
        return !*(char *const *)p || !**(char *const *)p;
    return !json_object_get(obj, o->name);
}

/* "a and b" of the required keys of t. */
static void join_required(const struct ws_option_table *t, char *out, size_t cap)
{
    size_t n = 0, k = 0, o = 0;

    for (size_t i = 0; i < t->nopts; i++)
        n += t->options[i].required;
    out[0] = '\0';
    for (size_t i = 0; i < t->nopts && o < cap; i++) {
        if (!t->options[i].required)
            continue;
        o += (size_t)snprintf(out + o, cap - o, "%s%s",
                              k == 0       ? ""
                              : k + 1 == n ? " and "
                                           : ", ",
                              t->options[i].name);
        k++;
    }
}

static ws_err_t load_sink(const json_t *obj, size_t idx, const struct ws_sink_types *types,
                          struct ws_sink_conf *s, const char *file, char *errbuf, size_t errlen)
{
    const json_t *t = json_object_get(obj, "type");
    const struct ws_option_table *tab =
        json_is_string(t) ? find_type(types, json_string_value(t)) : NULL;
    const char *k;
    json_t *v;
    char name[160], list[256];
    ws_err_t err;

    if (!tab) {
        join_types(types, "\"", list, sizeof list);
        return ws_fail(WS_ERR_CONFIG, errbuf, errlen, "%s: sinks[%zu].type: expected %s", file, idx,
                       list);
    }
    if (!(s->opts = calloc(1, tab->size ? tab->size : 1)))
        return WS_ERR_NOMEM;
    s->table = tab;
    s->type = tab->name;
    for (size_t i = 0; i < tab->nopts; i++)
        if ((err = default_one(s->opts, &tab->options[i])))
            return err;
    json_object_foreach((json_t *)obj, k, v)
    {
        const struct ws_option *o = find_option(tab, k);
        if (strcmp(k, "type") == 0)
            continue;
        snprintf(name, sizeof name, "sinks[%zu].%s", idx, k);
        if (!o)
            return ws_fail(WS_ERR_CONFIG, errbuf, errlen, "%s: %s: unknown key for a %s sink", file,
                           name, tab->name);
        if ((err = store(s->opts, o, v, name, file, errbuf, errlen)))
            return err;
    }
    for (size_t i = 0; i < tab->nopts; i++) {
        if (!tab->options[i].required || !missing(s->opts, &tab->options[i], obj))
            continue;
        join_required(tab, list, sizeof list);
        return ws_fail(WS_ERR_CONFIG, errbuf, errlen,
                       "%s: sinks[%zu].%s: required (%s sinks need %s)", file, idx,
                       tab->options[i].name, tab->name, list);
    }
    return WS_OK;
}

static ws_err_t load_sinks(const json_t *arr, const struct ws_sink_types *types,
                           struct ws_config *c, const char *file, char *errbuf, size_t errlen)
{
    size_t i;
    json_t *e;
    ws_err_t err;

    if (!json_is_array(arr))
        return ws_fail(WS_ERR_CONFIG, errbuf, errlen, "%s: sinks: expected an array", file);
    if (json_array_size(arr) > WS_CONFIG_MAX_SINKS)
        return ws_fail(WS_ERR_CONFIG, errbuf, errlen,
                       "%s: sinks: at most %d sinks (%zu given); the engine adds the "
                       "attestations topic to them",
                       file, WS_CONFIG_MAX_SINKS, json_array_size(arr));
    c->sinks = calloc(json_array_size(arr) + 1, sizeof *c->sinks);
    if (!c->sinks)
        return WS_ERR_NOMEM;
    json_array_foreach(arr, i, e)
    {
        if (!json_is_object(e))
            return ws_fail(WS_ERR_CONFIG, errbuf, errlen, "%s: sinks[%zu]: expected an object",
                           file, i);
        c->nsinks = i + 1;
        if ((err = load_sink(e, i, types, &c->sinks[i], file, errbuf, errlen)))
            return err;
    }
    return WS_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* The fixed sections                                                                           */

static const struct key *find_key(const char *section, const char *name)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].section, section) == 0 && strcmp(keys[i].opt.name, name) == 0)
            return &keys[i];
    return NULL;
}

static bool is_section(const char *s)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].section, s) == 0)
            return true;
    return false;
}

/* A section inside a section ("outputs.s3"): an object holding that section's keys. */
static ws_err_t walk_nested(struct ws_config *c, const char *sec, const json_t *sv,
                            const char *file, char *errbuf, size_t errlen)
{
    const char *name;
    json_t *v;
    char full[256];
    ws_err_t err;

    if (!json_is_object(sv))
        return ws_fail(WS_ERR_CONFIG, errbuf, errlen, "%s: %s: expected an object", file, sec);
    json_object_foreach((json_t *)sv, name, v)
    {
        const struct key *k = find_key(sec, name);
        snprintf(full, sizeof full, "%s.%s", sec, name);
        if (!k)
            return ws_fail(WS_ERR_CONFIG, errbuf, errlen, "%s: %s: unknown key", file, full);
        if ((err = store(c, &k->opt, v, full, file, errbuf, errlen)))
            return err;
    }
    return WS_OK;
}

static ws_err_t walk(const json_t *root, const struct ws_sink_types *types, struct ws_config *c,
                     const char *file, char *errbuf, size_t errlen)
{
    const char *sec, *name;
    json_t *sv, *v;
    char full[256];
    ws_err_t err;

    if (!json_is_object(root))
        return ws_fail(WS_ERR_CONFIG, errbuf, errlen, "%s: expected a JSON object", file);
    json_object_foreach((json_t *)root, sec, sv)
    {
        if (strcmp(sec, "sinks") == 0) {
            if ((err = load_sinks(sv, types, c, file, errbuf, errlen)))
                return err;
            continue;
        }
        if (!is_section(sec) || strchr(sec, '.')) /* "outputs.s3" is only nested */
            return ws_fail(WS_ERR_CONFIG, errbuf, errlen, "%s: %s: unknown key", file, sec);
        if (!json_is_object(sv))
            return ws_fail(WS_ERR_CONFIG, errbuf, errlen, "%s: %s: expected an object", file, sec);
        json_object_foreach(sv, name, v)
        {
            const struct key *k = find_key(sec, name);
            snprintf(full, sizeof full, "%s.%s", sec, name);
            if (!k && is_section(full)) {
                if ((err = walk_nested(c, full, v, file, errbuf, errlen)))
                    return err;
                continue;
            }
            if (!k)
                return ws_fail(WS_ERR_CONFIG, errbuf, errlen, "%s: %s: unknown key", file, full);
            if ((err = store(c, &k->opt, v, full, file, errbuf, errlen)))
                return err;
        }
    }
    return WS_OK;
}

/* The object member name of obj, made an empty object if absent; NULL if it is not an object
 * (or memory ran out). */
static json_t *member_object(json_t *obj, const char *name)
{
    json_t *m = json_object_get(obj, name);

    if (!m && json_object_set_new(obj, name, m = json_object()))
        return NULL;
    return json_is_object(m) ? m : NULL;
}

/* "outputs.s3.endpoint=v": a key of a nested section (the section is all before the last dot).
 * false if path is not one; else *err says how setting it went. */
static bool apply_nested(json_t *root, const char *path, json_t *val, ws_err_t *err, char *errbuf,
                         size_t errlen)
{
    const char *first = strchr(path, '.'), *last = strrchr(path, '.');
    char sec[256], top[256];
    json_t *t, *sub;

    if (!first || first == last || (size_t)(last - path) >= sizeof sec)
        return false;
    snprintf(sec, sizeof sec, "%.*s", (int)(last - path), path);
    if (!find_key(sec, last + 1))
        return false;
    snprintf(top, sizeof top, "%.*s", (int)(first - path), path);
    if (!(t = member_object(root, top)) || !(sub = member_object(t, sec + strlen(top) + 1))) {
        json_decref(val);
        *err = ws_fail(WS_ERR_CONFIG, errbuf, errlen, "--set %s: %s is not an object", path, sec);
        return true;
    }
    *err = json_object_set_new(sub, last + 1, val) ? WS_ERR_NOMEM : WS_OK;
    return true;
}

/* Apply "a.b=value" to the JSON tree, matching the path against the table. */
static ws_err_t apply_set(json_t *root, const char *set, char *errbuf, size_t errlen)
{
    const char *eq = strchr(set, '=');
    char path[256];
    json_t *val, *sec;
    const char *dot;

    if (!eq || eq == set || (size_t)(eq - set) >= sizeof path)
        return ws_fail(WS_ERR_CONFIG, errbuf, errlen, "--set %s: expected KEY=VALUE", set);
    memcpy(path, set, (size_t)(eq - set));
    path[eq - set] = '\0';
    val = json_loads(eq + 1, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
    if (!val)
        val = json_string(eq + 1);
    if (!val)
        return WS_ERR_NOMEM;
    if (strcmp(path, "sinks") == 0)
        return json_object_set_new(root, "sinks", val) ? WS_ERR_NOMEM : WS_OK;
    ws_err_t nerr;
    if (apply_nested(root, path, val, &nerr, errbuf, errlen))
        return nerr;
    dot = strchr(path, '.');
    if (!dot) {
        json_decref(val);
        return ws_fail(WS_ERR_CONFIG, errbuf, errlen, "--set %s: unknown key", path);
    }
    path[dot - path] = '\0';
    const char *name = dot + 1;
    /* kafka.properties.<librdkafka property>: everything after the second level is the name. */
    if (strcmp(path, "kafka") == 0 && strncmp(name, "properties.", 11) == 0) {
        sec = json_object_get(root, "kafka");
        if (!sec && json_object_set_new(root, "kafka", sec = json_object()))
            goto nomem;
        json_t *props = json_object_get(sec, "properties");
        if (!props && json_object_set_new(sec, "properties", props = json_object()))
            goto nomem;
        if (!json_is_string(val)) { /* librdkafka wants text: keep numbers as written */
            json_decref(val);
            val = json_string(eq + 1);
        }
        return json_object_set_new(props, name + 11, val) ? WS_ERR_NOMEM : WS_OK;
    }
    if (!find_key(path, name)) {
        json_decref(val);
        return ws_fail(WS_ERR_CONFIG, errbuf, errlen, "--set %s.%s: unknown key", path, name);
    }
    sec = json_object_get(root, path);
    if (!sec) {
        if (json_object_set_new(root, path, sec = json_object()))
            goto nomem;
    } else if (!json_is_object(sec)) {
        json_decref(val);
        return ws_fail(WS_ERR_CONFIG, errbuf, errlen, "--set %s.%s: %s is not an object", path,
                       name, path);
    }
    return json_object_set_new(sec, name, val) ? WS_ERR_NOMEM : WS_OK;
nomem:
    json_decref(val);
    return WS_ERR_NOMEM;
}

static ws_err_t derive(struct ws_config *c)
{
    char buf[512];

    if (!*c->deadletter_topic) {
        snprintf(buf, sizeof buf, "%s.dlq", c->notifications_topic);
        if (set_string(&c->deadletter_topic, buf))
            return WS_ERR_NOMEM;
    }
    if (!*c->heads_topic) {
        snprintf(buf, sizeof buf, "%s.heads", c->attestations_topic);
        if (set_string(&c->heads_topic, buf))
            return WS_ERR_NOMEM;
    }
    return WS_OK;
}

/* openlineage: one transport, and only keys that transport reads. */
static ws_err_t check_openlineage(const struct ws_config *c, const char *file, char *errbuf,
                                  size_t errlen)
{
    bool http = *c->ol_url, kafka = *c->ol_kafka_topic;

    if (http && kafka)
        return ws_fail(WS_ERR_CONFIG, errbuf, errlen,
                       "%s: openlineage: url and kafka_topic are two transports; set one", file);
    if (http && strncmp(c->ol_url, "http://", 7) != 0 && strncmp(c->ol_url, "https://", 8) != 0)
        return ws_fail(WS_ERR_CONFIG, errbuf, errlen,
                       "%s: openlineage.url: \"%s\" is not an http:// or https:// URL", file,
                       c->ol_url);
    if (*c->ol_api_key_env && !http)
        return ws_fail(WS_ERR_CONFIG, errbuf, errlen,
                       "%s: openlineage.api_key_env: the bearer token is sent to openlineage.url, "
                       "which is not set",
                       file);
    if ((http || kafka) && !*c->ol_namespace)
        return ws_fail(WS_ERR_CONFIG, errbuf, errlen,
                       "%s: openlineage.namespace: must not be empty", file);
    return WS_OK;
}

ws_err_t ws_config_load(const char *path, const char *const *sets, size_t nsets,
                        const struct ws_sink_types *sink_types, struct ws_config **out,
                        char *errbuf, size_t errlen)
{
    struct ws_config *c = calloc(1, sizeof *c);
    json_t *root = NULL;
    json_error_t jerr;
    char *text = NULL;
    size_t len;
    ws_err_t err = WS_OK;
    const char *file = path ? path : "(defaults)";

    if (!c)
        return ws_fail(WS_ERR_NOMEM, errbuf, errlen, "%s: out of memory", file);
    for (size_t i = 0; i < NKEYS; i++)
        if ((err = default_one(c, &keys[i].opt)))
            goto out_fail;
    if (path) {
        err = ws_file_read(path, 4 * 1024 * 1024, &text, &len, errbuf, errlen);
        if (err) {
            if (err != WS_ERR_NOMEM)
                err = WS_ERR_CONFIG;
            goto out_fail;
        }
        root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!root) {
            /* jansson says when it ran out of memory only where it notices (not in its lexer) */
            err = json_error_code(&jerr) == json_error_out_of_memory
                      ? WS_ERR_NOMEM
                      : ws_fail(WS_ERR_CONFIG, errbuf, errlen, "%s:%d:%d: %s", path, jerr.line,
                                jerr.column, jerr.text);
            goto out_fail;
        }
    } else if (!(root = json_object())) {
        err = WS_ERR_NOMEM;
        goto out_fail;
    }
    if (!json_is_object(root)) {
        err = ws_fail(WS_ERR_CONFIG, errbuf, errlen, "%s: expected a JSON object", file);
        goto out_fail;
    }
    for (size_t i = 0; i < nsets; i++)
        if ((err = apply_set(root, sets[i], errbuf, errlen)))
            goto out_fail;
    if ((err = walk(root, sink_types, c, file, errbuf, errlen)) || (err = derive(c)) ||
        (err = check_openlineage(c, file, errbuf, errlen)))
        goto out_fail;
    if (!(c->source = strdup(file))) {
        err = WS_ERR_NOMEM;
        goto out_fail;
    }
    *out = c;
    goto out_free;
out_fail:
    if (err == WS_ERR_NOMEM)
        ws_fail(err, errbuf, errlen, "%s: out of memory", file);
    else
        err = WS_ERR_CONFIG;
    ws_config_free(c);
out_free:
    json_decref(root);
    free(text);
    return err;
}

void ws_config_free(struct ws_config *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < NKEYS; i++)
        free_one(c, &keys[i].opt);
    for (size_t i = 0; i < c->nsinks; i++) {
        const struct ws_sink_conf *s = &c->sinks[i];
        for (size_t j = 0; s->opts && s->table && j < s->table->nopts; j++)
            free_one(s->opts, &s->table->options[j]);
        free(s->opts);
    }
    free(c->sinks);
    free(c->source);
    free(c);
}

/* ------------------------------------------------------------------------------------------ */
/* docs/CONFIGURATION.md                                                                        */

static bool same_str(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

/* The option of t that reads exactly like o (same name, type, default and docs), or NULL. */
static const struct ws_option *same_option(const struct ws_option_table *t,
                                           const struct ws_option *o)
{
    const struct ws_option *p = find_option(t, o->name);

    if (p && p->type == o->type && p->required == o->required && same_str(p->def, o->def) &&
        same_str(p->choices, o->choices) && same_str(p->help, o->help))
        return p;
    return NULL;
}

static void write_default(FILE *f, const struct ws_option *o)
{
    if (o->def)
        fprintf(f, "`%s`", o->def);
    else if (o->required)
        fprintf(f, "required");
}

/* One row per key; a key that reads the same in several sink types is one row naming them all. */
static void write_sink_docs(FILE *f, const struct ws_sink_types *types)
{
    size_t n = types ? types->n : 0;
    char list[256];

    fprintf(f, "\nEach element of `sinks` is an object:\n\n| key | sink types | type | default | "
               "description |\n|---|---|---|---|---|\n");
    fprintf(f, "| `type` | ");
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%s%s", i ? "|" : "", types->tables[i]->name);
    join_types(types, "`", list, sizeof list);
    fprintf(f, " | string |  | %s. |\n", list);
    for (size_t i = 0; i < n; i++) {
        const struct ws_option_table *t = types->tables[i];
        for (size_t j = 0; j < t->nopts; j++) {
            const struct ws_option *o = &t->options[j];
            bool seen = false;
            for (size_t k = 0; k < i && !seen; k++)
                seen = same_option(types->tables[k], o) != NULL;
            if (seen)
                continue;
            fprintf(f, "| `%s` | %s", o->name, t->name);
            for (size_t k = i + 1; k < n; k++)
                if (same_option(types->tables[k], o))
                    fprintf(f, "|%s", types->tables[k]->name);
            fprintf(f, " | %s%s%s | ", typename(o->type), o->choices ? ": " : "",
                    o->choices ? o->choices : "");
            write_default(f, o);
            fprintf(f, " | %s |\n", o->help);
        }
    }
}

void ws_config_write_docs(FILE *f, const struct ws_sink_types *sink_types)
{
    fprintf(f, "| key | type | default | description |\n|---|---|---|---|\n");
    for (size_t i = 0; i < NKEYS; i++) {
        const struct ws_option *o = &keys[i].opt;
        fprintf(f, "| `%s.%s` | %s%s%s | ", keys[i].section, o->name, typename(o->type),
                o->choices ? ": " : "", o->choices ? o->choices : "");
        write_default(f, o);
        fprintf(f, " | %s |\n", o->help);
        for (size_t j = 0; o->type == WS_OPT_CATALOGS && j < NCATALOG_OPTS; j++) {
            const struct ws_option *c = &catalog_opts[j];
            fprintf(f, "| `%s.%s.<name>.%s` | %s | ", keys[i].section, o->name, c->name,
                    typename(c->type));
            if (c->required)
                fprintf(f, "required");
            fprintf(f, " | %s |\n", c->help);
        }
    }
    write_sink_docs(f, sink_types);
}
