/*
 * config.c — the configuration file, driven by one table of known keys.
 *
 * Like librdkafka's property table, `keys[]` below is the single source of truth: parsing, type
 * and range checks, defaults, `--set` overrides and the generated docs all read it. A JSON file
 * is first merged with the `--set` overrides (as a JSON tree), then walked once: every member
 * must be a known section or key, of the right type, in range. Sinks are an array of objects
 * with their own small table per sink type, checked the same way.
 *
 * Keys with dots in their names (Kafka's "bootstrap.servers") are why a `--set` path is matched
 * against the table, longest known key first, instead of being split at every dot.
 */
#include "config/config.h"

#include <jansson.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

enum ktype { K_STRING, K_INT, K_BOOL, K_STRLIST, K_STRMAP, K_ENUM };

struct key {
    const char *section; /* "" top level */
    const char *name;
    enum ktype type;
    size_t off; /* into struct ws_config; for lists/maps the array, count follows */
    const char *def;
    int64_t min, max;
    const char *choices; /* K_ENUM: "a|b|c" */
    const char *desc;
};

#define OFF(f) offsetof(struct ws_config, f)
static const struct key keys[] = {
    {"kafka", "bootstrap.servers", K_STRING, OFF(bootstrap), "127.0.0.1:9092", 0, 0, NULL,
     "Kafka bootstrap servers for every client of the engine."},
    {"kafka", "group.id", K_STRING, OFF(group_id), "windowseal", 0, 0, NULL,
     "Consumer group of the notifications consumer; also names the collector "
     "(`windowseal:<group.id>`)."},
    {"kafka", "notifications.topic", K_STRING, OFF(notifications_topic), "windowseal.batches", 0, 0,
     NULL, "Topic the Spark jobs post batch notifications to (key = query id)."},
    {"kafka", "attestations.topic", K_STRING, OFF(attestations_topic), "windowseal.attestations", 0,
     0, NULL, "Topic the DSSE envelopes are published to (key = query id)."},
    {"kafka", "deadletter.topic", K_STRING, OFF(deadletter_topic), "", 0, 0, NULL,
     "Dead-letter topic for rejected notifications; empty: `<notifications.topic>.dlq`."},
    {"kafka", "heads.topic", K_STRING, OFF(heads_topic), "", 0, 0, NULL,
     "Compacted topic holding each query's chain head; empty: `<attestations.topic>.heads`."},
    {"kafka", "properties", K_STRMAP, OFF(kafka_props), NULL, 0, 0, NULL,
     "librdkafka properties passed to every client (string values), e.g. security.protocol."},
    {"signing", "key", K_STRING, OFF(signing_key), "", 0, 0, NULL,
     "Ed25519 private key, PKCS#8 PEM, mode 0600 (made by `windowseal keygen`). Required by run."},
    {"signing", "verify_keys", K_STRLIST, OFF(verify_keys), NULL, 0, 0, NULL,
     "Public keys (SPKI PEM) besides the signing key's whose envelopes the engine accepts when it "
     "reads back earlier windows (duplicate checks after a key rotation)."},
    {"spool", "path", K_STRING, OFF(spool_path), "spool/", 0, 0, NULL,
     "Local directory where evidence and envelopes are made durable before any sink."},
    {"spool", "io_uring", K_ENUM, OFF(spool_io_uring), "auto", 0, 0, "auto|on|off",
     "Use io_uring for spool writes and output-file reads: auto falls back to plain syscalls."},
    {"spool", "max_bytes", K_INT, OFF(spool_max_bytes), "1073741824", 1 << 20, INT64_MAX, NULL,
     "Spool size bound; when reached the engine pauses intake instead of dropping anything."},
    {"engine", "fetch_timeout_ms", K_INT, OFF(fetch_timeout_ms), "30000", 10, 86400000, NULL,
     "How long a window waits for records beyond the high watermark before retrying later."},
    {"engine", "gap_wait_ms", K_INT, OFF(gap_wait_ms), "5000", 0, 86400000, NULL,
     "How long a batch that skips ahead waits for the missing batches before they become a gap."},
    {"engine", "retry_base_ms", K_INT, OFF(retry_base_ms), "100", 1, 3600000, NULL,
     "First retry delay for retriable failures (doubles, with jitter)."},
    {"engine", "retry_max_ms", K_INT, OFF(retry_max_ms), "30000", 1, 86400000, NULL,
     "Largest retry delay."},
    {"notifications", "initial_offsets", K_ENUM, OFF(initial_offsets), "reject", 0, 0,
     "reject|earliest",
     "Spark batch 0 with startOffset null: reject it, or read from the earliest retained offset."},
    {"notifications", "max_bytes", K_INT, OFF(notification_max_bytes), "1048576", 256,
     64 * 1024 * 1024, NULL, "Largest notification accepted; larger ones are dead-lettered."},
    {"outputs", "allowed_roots", K_STRLIST, OFF(allowed_roots), NULL, 0, 0, NULL,
     "If set, output files are hashed only under these directories."},
    {"metrics", "listen", K_STRING, OFF(metrics_listen), "", 0, 0, NULL,
     "HOST:PORT of the Prometheus endpoint; empty: off."},
    {"log", "level", K_ENUM, OFF(log_level), "info", 0, 0, "debug|info|warn|error",
     "Lowest level logged."},
    {"log", "format", K_ENUM, OFF(log_format), "logfmt", 0, 0, "logfmt|json",
     "One line per event, logfmt or JSON lines."},
};
#define NKEYS (sizeof keys / sizeof keys[0])

/* Sinks: array "sinks", each object checked against its type's keys. */
struct sinkkey {
    const char *name;
    enum ktype type;
    size_t off;
    const char *def;
    const char *types; /* "file", "s3", "file|s3" */
    const char *desc;
};
#define SOFF(f) offsetof(struct ws_sink_conf, f)
static const struct sinkkey sinkkeys[] = {
    {"type", K_STRING, SOFF(type), NULL, "file|s3", "`file` or `s3`."},
    {"path", K_STRING, SOFF(path), NULL, "file", "Directory of the file sink."},
    {"endpoint", K_STRING, SOFF(endpoint), NULL, "s3",
     "S3 endpoint URL, e.g. http://127.0.0.1:4569."},
    {"bucket", K_STRING, SOFF(bucket), NULL, "s3", "Bucket name."},
    {"prefix", K_STRING, SOFF(prefix), "", "file|s3", "Prefix of every object name."},
    {"region", K_STRING, SOFF(region), "us-east-1", "s3", "Region used in SigV4 signing."},
    {"path_style", K_BOOL, SOFF(path_style), "true", "s3",
     "Path-style addressing (MinIO, s3rver); false: virtual-hosted style."},
    {"verify_tls", K_BOOL, SOFF(verify_tls), "true", "s3",
     "Verify the endpoint's TLS certificate."},
    {"timeout_ms", K_INT, SOFF(timeout_ms), "30000", "s3", "Per-request timeout."},
};
#define NSINKKEYS (sizeof sinkkeys / sizeof sinkkeys[0])

static const char *typename(enum ktype t)
{
    switch (t) {
    case K_STRING:
        return "string";
    case K_INT:
        return "integer";
    case K_BOOL:
        return "boolean";
    case K_STRLIST:
        return "array of strings";
    case K_STRMAP:
        return "object of strings";
    case K_ENUM:
        return "string";
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

/* Store one JSON value into a typed field after checking it. */
static ws_err_t store(void *base, size_t off, enum ktype type, const char *choices, int64_t min,
                      int64_t max, const json_t *v, const char *keyname, const char *file,
                      char *errbuf, size_t errlen)
{
    char *p = (char *)base + off;

    switch (type) {
    case K_STRING:
    case K_ENUM:
        if (!json_is_string(v))
            goto bad_type;
        if (type == K_ENUM && !choice_ok(choices, json_string_value(v)))
            return ws_fail(WS_ERR_CONFIG, errbuf, errlen, "%s: %s: \"%s\" is not one of %s", file,
                           keyname, json_string_value(v), choices);
        if (strlen(json_string_value(v)) != json_string_length(v))
            return ws_fail(WS_ERR_CONFIG, errbuf, errlen, "%s: %s: contains a NUL byte", file,
                           keyname);
        return set_string((char **)p, json_string_value(v));
    case K_INT:
        if (!json_is_integer(v))
            goto bad_type;
        if (json_integer_value(v) < min || json_integer_value(v) > max)
            return ws_fail(WS_ERR_CONFIG, errbuf, errlen,
                           "%s: %s: %lld is out of range [%lld, %lld]", file, keyname,
                           (long long)json_integer_value(v), (long long)min, (long long)max);
        *(int64_t *)p = json_integer_value(v);
        return WS_OK;
    case K_BOOL:
        if (!json_is_boolean(v))
            goto bad_type;
        *(bool *)p = json_is_true(v);
        return WS_OK;
    case K_STRLIST: {
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
        for (i = 0; i < *n; i++)
            free((*arr)[i]);
        free(*arr);
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
    case K_STRMAP: {
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
    }
bad_type:
    return ws_fail(WS_ERR_CONFIG, errbuf, errlen, "%s: %s: expected %s", file, keyname,
                   typename(type));
}

static ws_err_t default_one(void *base, size_t off, enum ktype type, const char *def)
{
    char *p = (char *)base + off;

    if (!def)
        return WS_OK;
    switch (type) {
    case K_STRING:
    case K_ENUM:
        return set_string((char **)p, def);
    case K_INT:
        *(int64_t *)p = strtoll(def, NULL, 10);
        return WS_OK;
    case K_BOOL:
        *(bool *)p = strcmp(def, "true") == 0;
        return WS_OK;
    default:
        return WS_OK;
    }
}

static bool type_has(const char *types, const char *t)
{
    return choice_ok(types, t);
}

static ws_err_t load_sink(const json_t *obj, size_t idx, struct ws_sink_conf *s, const char *file,
                          char *errbuf, size_t errlen)
{
    const json_t *t = json_object_get(obj, "type");
    const char *k;
    json_t *v;
    char name[160];
    ws_err_t err;

    if (!json_is_string(t) ||
        !(strcmp(json_string_value(t), "file") == 0 || strcmp(json_string_value(t), "s3") == 0))
        return ws_fail(WS_ERR_CONFIG, errbuf, errlen,
                       "%s: sinks[%zu].type: expected \"file\" or \"s3\"", file, idx);
    for (size_t i = 0; i < NSINKKEYS; i++)
        if (type_has(sinkkeys[i].types, json_string_value(t)) &&
            (err = default_one(s, sinkkeys[i].off, sinkkeys[i].type, sinkkeys[i].def)))
            return err;
    json_object_foreach((json_t *)obj, k, v)
    {
        size_t i;
        for (i = 0; i < NSINKKEYS; i++)
            if (strcmp(sinkkeys[i].name, k) == 0 &&
                type_has(sinkkeys[i].types, json_string_value(t)))
                break;
        snprintf(name, sizeof name, "sinks[%zu].%s", idx, k);
        if (i == NSINKKEYS)
            return ws_fail(WS_ERR_CONFIG, errbuf, errlen, "%s: %s: unknown key for a %s sink", file,
                           name, json_string_value(t));
        err = store(s, sinkkeys[i].off, sinkkeys[i].type, NULL, 1, 86400000, v, name, file, errbuf,
                    errlen);
        if (err)
            return err;
    }
    if (strcmp(s->type, "file") == 0 && (!s->path || !*s->path))
        return ws_fail(WS_ERR_CONFIG, errbuf, errlen, "%s: sinks[%zu].path: required", file, idx);
    if (strcmp(s->type, "s3") == 0 && (!s->endpoint || !s->bucket || !*s->bucket))
        return ws_fail(WS_ERR_CONFIG, errbuf, errlen,
                       "%s: sinks[%zu]: an s3 sink needs endpoint and bucket", file, idx);
    return WS_OK;
}

static ws_err_t load_sinks(const json_t *arr, struct ws_config *c, const char *file, char *errbuf,
                           size_t errlen)
{
    size_t i;
    json_t *e;
    ws_err_t err;

    if (!json_is_array(arr))
        return ws_fail(WS_ERR_CONFIG, errbuf, errlen, "%s: sinks: expected an array", file);
    c->sinks = calloc(json_array_size(arr) + 1, sizeof *c->sinks);
    if (!c->sinks)
        return WS_ERR_NOMEM;
    json_array_foreach(arr, i, e)
    {
        if (!json_is_object(e))
            return ws_fail(WS_ERR_CONFIG, errbuf, errlen, "%s: sinks[%zu]: expected an object",
                           file, i);
        c->nsinks = i + 1;
        if ((err = load_sink(e, i, &c->sinks[i], file, errbuf, errlen)))
            return err;
    }
    return WS_OK;
}

static const struct key *find_key(const char *section, const char *name)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].section, section) == 0 && strcmp(keys[i].name, name) == 0)
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

static ws_err_t walk(const json_t *root, struct ws_config *c, const char *file, char *errbuf,
                     size_t errlen)
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
            if ((err = load_sinks(sv, c, file, errbuf, errlen)))
                return err;
            continue;
        }
        if (!is_section(sec))
            return ws_fail(WS_ERR_CONFIG, errbuf, errlen, "%s: %s: unknown key", file, sec);
        if (!json_is_object(sv))
            return ws_fail(WS_ERR_CONFIG, errbuf, errlen, "%s: %s: expected an object", file, sec);
        json_object_foreach(sv, name, v)
        {
            const struct key *k = find_key(sec, name);
            snprintf(full, sizeof full, "%s.%s", sec, name);
            if (!k)
                return ws_fail(WS_ERR_CONFIG, errbuf, errlen, "%s: %s: unknown key", file, full);
            err = store(c, k->off, k->type, k->choices, k->min, k->max, v, full, file, errbuf,
                        errlen);
            if (err)
                return err;
        }
    }
    return WS_OK;
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

ws_err_t ws_config_load(const char *path, const char *const *sets, size_t nsets,
                        struct ws_config **out, char *errbuf, size_t errlen)
{
    struct ws_config *c = calloc(1, sizeof *c);
    json_t *root = NULL;
    json_error_t jerr;
    char *text = NULL;
    size_t len;
    ws_err_t err = WS_OK;
    const char *file = path ? path : "(defaults)";

    if (!c)
        return WS_ERR_NOMEM;
    for (size_t i = 0; i < NKEYS; i++)
        if ((err = default_one(c, keys[i].off, keys[i].type, keys[i].def)))
            goto out_fail;
    if (path) {
        err = ws_file_read(path, 4 * 1024 * 1024, &text, &len, errbuf, errlen);
        if (err) {
            err = WS_ERR_CONFIG;
            goto out_fail;
        }
        root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!root) {
            err = ws_fail(WS_ERR_CONFIG, errbuf, errlen, "%s:%d:%d: %s", path, jerr.line,
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
    if ((err = walk(root, c, file, errbuf, errlen)) || (err = derive(c)))
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
    ws_config_free(c);
out_free:
    json_decref(root);
    free(text);
    return err == WS_OK ? WS_OK : WS_ERR_CONFIG;
}

static void free_list(char **l, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(l[i]);
    free(l);
}

void ws_config_free(struct ws_config *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < NKEYS; i++) {
        char *p = (char *)c + keys[i].off;
        if (keys[i].type == K_STRING || keys[i].type == K_ENUM)
            free(*(char **)p);
        else if (keys[i].type == K_STRLIST)
            free_list(*(char ***)p, *(size_t *)(p + sizeof(char **)));
        else if (keys[i].type == K_STRMAP)
            free_list(*(char ***)p, 2 * *(size_t *)(p + sizeof(char **)));
    }
    for (size_t i = 0; i < c->nsinks; i++) {
        struct ws_sink_conf *s = &c->sinks[i];
        free(s->type), free(s->path), free(s->endpoint), free(s->bucket), free(s->prefix),
            free(s->region);
    }
    free(c->sinks);
    free(c->source);
    free(c);
}

void ws_config_write_docs(FILE *f)
{
    fprintf(f, "| key | type | default | description |\n|---|---|---|---|\n");
    for (size_t i = 0; i < NKEYS; i++)
        fprintf(f, "| `%s.%s` | %s%s%s | %s%s%s | %s |\n", keys[i].section, keys[i].name,
                typename(keys[i].type), keys[i].choices ? ": " : "",
                keys[i].choices ? keys[i].choices : "", keys[i].def ? "`" : "",
                keys[i].def ? keys[i].def : "", keys[i].def ? "`" : "", keys[i].desc);
    fprintf(f, "\nEach element of `sinks` is an object:\n\n| key | sink types | type | default | "
               "description |\n|---|---|---|---|---|\n");
    for (size_t i = 0; i < NSINKKEYS; i++)
        fprintf(f, "| `%s` | %s | %s | %s%s%s | %s |\n", sinkkeys[i].name, sinkkeys[i].types,
                typename(sinkkeys[i].type), sinkkeys[i].def ? "`" : "",
                sinkkeys[i].def ? sinkkeys[i].def : "", sinkkeys[i].def ? "`" : "",
                sinkkeys[i].desc);
}
