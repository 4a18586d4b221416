/*
 * test_config_load.c — the configuration table: defaults, the FORMAT.md §10 example, --set, and every
 * way a file can be wrong (each must name the key and the file). Sink objects are checked here
 * against two sink types defined by this test (config/ knows none itself; the real file and s3
 * tables are tests/test_sinks_config.c): defaults, unknown keys, types, ranges, required keys,
 * the type list in messages, at most WS_CONFIG_MAX_SINKS sinks, and the docs they generate.
 * Out of memory at every allocation of a load is WS_ERR_NOMEM, never a configuration error
 * (malloc is interposed below). Also key files: permissions, refusing to overwrite, public vs
 * private.
 */
#include "config/config.h"

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"

static char dir[] = "/tmp/ws_config_test_XXXXXX";

/* ------------------------------------------------------------------------------------------ */
/* Fault injection: the Nth allocation fails (glibc lets a program interpose malloc). Not under   */
/* AddressSanitizer, whose own malloc these would replace (it aborts before main).              */

#if defined(__SANITIZE_ADDRESS__)
#define WS_INTERPOSE_MALLOC 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WS_INTERPOSE_MALLOC 0
#endif
#endif
#ifndef WS_INTERPOSE_MALLOC
#define WS_INTERPOSE_MALLOC 1
#endif

#if WS_INTERPOSE_MALLOC
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
static long fail_at; /* 0: off; else the allocation number that fails */
static long nallocs;

static bool fail_now(void)
{
    return fail_at && ++nallocs == fail_at;
}

void *malloc(size_t n)
{
    return fail_now() ? NULL : __libc_malloc(n);
}

void *calloc(size_t a, size_t b)
{
    return fail_now() ? NULL : __libc_calloc(a, b);
}

void *realloc(void *p, size_t n)
{
    return fail_now() ? NULL : __libc_realloc(p, n);
}
#endif

/* ------------------------------------------------------------------------------------------ */
/* Two sink types of this test's own                                                              */

struct alpha {
    char *dir, *mode;
    int64_t n;
    bool on;
    char **tags;
    size_t ntags;
};
static const struct ws_option alpha_opts[] = {
    {"dir", WS_OPT_STRING, offsetof(struct alpha, dir), NULL, 0, 0, NULL, true, "Where."},
    {"n", WS_OPT_INT, offsetof(struct alpha, n), "5", 1, 10, NULL, false, "How many."},
    {"on", WS_OPT_BOOL, offsetof(struct alpha, on), "true", 0, 0, NULL, false, "Whether."},
    {"mode", WS_OPT_ENUM, offsetof(struct alpha, mode), "a", 0, 0, "a|b", false, "Which."},
    {"tags", WS_OPT_STRLIST, offsetof(struct alpha, tags), NULL, 0, 0, NULL, false, "Labels."},
};
struct beta {
    char *url, *name, *dir;
};
static const struct ws_option beta_opts[] = {
    {"url", WS_OPT_STRING, offsetof(struct beta, url), NULL, 0, 0, NULL, true, "Endpoint."},
    {"name", WS_OPT_STRING, offsetof(struct beta, name), NULL, 0, 0, NULL, true, "Name."},
    {"dir", WS_OPT_STRING, offsetof(struct beta, dir), NULL, 0, 0, NULL, true, "Where."},
};
static const struct ws_option_table alpha = {"alpha", alpha_opts, 5, sizeof(struct alpha)};
static const struct ws_option_table beta = {"beta", beta_opts, 3, sizeof(struct beta)};
static const struct ws_option_table *const both[] = {&alpha, &beta};
static const struct ws_sink_types types = {both, 2};

static const char *write_file(const char *name, const char *text)
{
    static char path[512];
    FILE *f;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    return path;
}

/* Loading text must fail with a message containing every needle. */
static void expect_error(const char *text, const char *needle)
{
    struct ws_config *c = NULL;
    char errbuf[512] = "";
    const char *p = write_file("bad.json", text);
    ws_err_t err = ws_config_load(p, NULL, 0, &types, &c, errbuf, sizeof errbuf);

    CHECK(err == WS_ERR_CONFIG);
    CHECK(strstr(errbuf, needle) != NULL);
    CHECK(strstr(errbuf, "bad.json") != NULL);
    if (!strstr(errbuf, needle))
        fprintf(stderr, "  expected '%s' in: %s\n", needle, errbuf);
    if (!err)
        ws_config_free(c);
}

static void test_defaults(void)
{
    struct ws_config *c = NULL;
    char errbuf[256];

    CHECK(ws_config_load(NULL, NULL, 0, &types, &c, errbuf, sizeof errbuf) == WS_OK);
    CHECK(!strcmp(c->notifications_topic, "windowseal.batches"));
    CHECK(!strcmp(c->deadletter_topic, "windowseal.batches.dlq"));
    CHECK(!strcmp(c->heads_topic, "windowseal.attestations.heads"));
    CHECK(!strcmp(c->spool_io_uring, "auto"));
    CHECK(c->gap_wait_ms == 5000);
    CHECK(c->nsinks == 0);
    ws_config_free(c);
}

static void test_spec_example(void)
{
    const char *text =
        "{\"kafka\": {\"bootstrap.servers\": \"127.0.0.1:9092\", \"group.id\": \"windowseal\",\n"
        "  \"notifications.topic\": \"windowseal.batches\", \"attestations.topic\": "
        "\"windowseal.attestations\",\n"
        "  \"properties\": {\"security.protocol\": \"plaintext\"}},\n"
        " \"signing\": {\"key\": \"keys/windowseal.key\"},\n"
        " \"sinks\": [{\"type\": \"alpha\", \"dir\": \"attestations/\"},\n"
        "   {\"type\": \"beta\", \"url\": \"http://127.0.0.1:4569\", \"name\": \"attest\", "
        "\"dir\": \"prod/\"}],\n"
        " \"spool\": {\"path\": \"spool/\"},\n"
        " \"metrics\": {\"listen\": \"127.0.0.1:9464\"}}\n";
    const char *p = write_file("spec.json", text);
    const char *sets[] = {"kafka.group.id=g2", "engine.gap_wait_ms=10",
                          "kafka.properties.fetch.wait.max.ms=20", "spool.io_uring=off"};
    struct ws_config *c = NULL;
    char errbuf[256] = "";

    CHECK(ws_config_load(p, NULL, 0, &types, &c, errbuf, sizeof errbuf) == WS_OK);
    if (!c) {
        fprintf(stderr, "  %s\n", errbuf);
        return;
    }
    CHECK(c->nsinks == 2);
    CHECK(!strcmp(c->sinks[0].type, "alpha") && c->sinks[0].table == &alpha);
    const struct alpha *a = c->sinks[0].opts;
    CHECK(!strcmp(a->dir, "attestations/") && a->n == 5 && a->on && !strcmp(a->mode, "a"));
    const struct beta *b = c->sinks[1].opts;
    CHECK(c->sinks[1].table == &beta && !strcmp(b->name, "attest") && !strcmp(b->dir, "prod/"));
    CHECK(c->nkafka_props == 1 && !strcmp(c->kafka_props[0], "security.protocol"));
    CHECK(!strcmp(c->metrics_listen, "127.0.0.1:9464"));
    ws_config_free(c);
    /* --set beats the file */
    CHECK(ws_config_load(p, sets, 4, &types, &c, errbuf, sizeof errbuf) == WS_OK);
    if (!c)
        return;
    CHECK(!strcmp(c->group_id, "g2"));
    CHECK(c->gap_wait_ms == 10);
    CHECK(c->nkafka_props == 2);
    CHECK(!strcmp(c->kafka_props[2], "fetch.wait.max.ms") && !strcmp(c->kafka_props[3], "20"));
    CHECK(!strcmp(c->spool_io_uring, "off"));
    ws_config_free(c);
}

static void test_errors(void)
{
    expect_error("{\"kafka\": {\"bootstrap.servers\": 9092}}", "kafka.bootstrap.servers");
    expect_error("{\"kafka\": {\"group.id\": true}}", "kafka.group.id: expected string");
    expect_error("{\"kafka\": {\"properties\": {\"acks\": 1}}}", "kafka.properties.acks");
    expect_error("{\"kafka\": {\"properties\": []}}", "kafka.properties");
    expect_error("{\"signing\": {\"key\": [\"a\"]}}", "signing.key");
    expect_error("{\"signing\": {\"verify_keys\": [1]}}", "signing.verify_keys");
    expect_error("{\"spool\": {\"io_uring\": \"maybe\"}}", "spool.io_uring");
    expect_error("{\"spool\": {\"max_bytes\": 5}}", "spool.max_bytes: 5 is out of range");
    expect_error("{\"spool\": {\"max_bytes\": \"big\"}}", "spool.max_bytes: expected integer");
    expect_error("{\"engine\": {\"gap_wait_ms\": -1}}", "engine.gap_wait_ms");
    expect_error("{\"engine\": {\"fetch_timeout_ms\": 1.5}}", "engine.fetch_timeout_ms");
    expect_error("{\"notifications\": {\"initial_offsets\": \"latest\"}}",
                 "notifications.initial_offsets");
    expect_error("{\"log\": {\"level\": \"loud\"}}", "log.level");
    expect_error("{\"metrics\": {\"listen\": 1}}", "metrics.listen");
    expect_error("{\"outputs\": {\"allowed_roots\": \"/x\"}}", "outputs.allowed_roots");
    /* unknown keys at each level */
    expect_error("{\"kafka\": {}, \"nonsense\": 1}", "nonsense: unknown key");
    expect_error("{\"kafka\": {\"bootstrap\": \"x\"}}", "kafka.bootstrap: unknown key");
    expect_error("{\"sinks\": {\"type\": \"alpha\"}}", "sinks: expected an array");
    expect_error("{\"kafka\": 1}", "kafka: expected an object");
    expect_error("[1, 2]", "expected a JSON object");
    expect_error("{\"kafka\": {\"group.id\": \"a\", \"group.id\": \"b\"}}", "duplicate");
    expect_error("{\"kafka\": {", "bad.json:");
}

static void test_set_errors(void)
{
    struct ws_config *c = NULL;
    char errbuf[256] = "";
    const char *bad1[] = {"kafka.nope=1"}, *bad2[] = {"novalue"}, *bad3[] = {"spool.max_bytes=x"};

    CHECK(ws_config_load(NULL, bad1, 1, &types, &c, errbuf, sizeof errbuf) == WS_ERR_CONFIG);
    CHECK(strstr(errbuf, "kafka.nope") != NULL);
    CHECK(ws_config_load(NULL, bad2, 1, &types, &c, errbuf, sizeof errbuf) == WS_ERR_CONFIG);
    CHECK(strstr(errbuf, "KEY=VALUE") != NULL);
    CHECK(ws_config_load(NULL, bad3, 1, &types, &c, errbuf, sizeof errbuf) == WS_ERR_CONFIG);
    CHECK(strstr(errbuf, "spool.max_bytes") != NULL);
    CHECK(ws_config_load("/nonexistent/x.json", NULL, 0, &types, &c, errbuf, sizeof errbuf) ==
          WS_ERR_CONFIG);
    CHECK(strstr(errbuf, "/nonexistent/x.json") != NULL);
}

/* Every sink object is checked against its own type's table, by the same code as the sections. */
static void test_sink_tables(void)
{
    struct ws_config *c = NULL;
    char errbuf[512] = "";

    expect_error("{\"sinks\": [{\"type\": \"alpha\", \"dir\": \"a\", \"url\": \"b\"}]}",
                 "sinks[0].url: unknown key for a alpha sink");
    expect_error("{\"sinks\": [{\"type\": \"ftp\"}]}",
                 "sinks[0].type: expected \"alpha\" or \"beta\"");
    expect_error("{\"sinks\": [{\"dir\": \"x\"}]}", "sinks[0].type: expected");
    expect_error("{\"sinks\": [{\"type\": 1}]}", "sinks[0].type: expected");
    expect_error("{\"sinks\": [1]}", "sinks[0]: expected an object");
    expect_error("{\"sinks\": [{\"type\": \"alpha\"}]}",
                 "sinks[0].dir: required (alpha sinks need dir)");
    expect_error("{\"sinks\": [{\"type\": \"alpha\", \"dir\": \"\"}]}", "sinks[0].dir: required");
    expect_error("{\"sinks\": [{\"type\": \"alpha\", \"dir\": \"a\"}, {\"type\": \"beta\", "
                 "\"url\": \"u\"}]}",
                 "sinks[1].name: required (beta sinks need url, name and dir)");
    expect_error("{\"sinks\": [{\"type\": \"alpha\", \"dir\": \"a\", \"n\": 11}]}",
                 "sinks[0].n: 11 is out of range [1, 10]");
    expect_error("{\"sinks\": [{\"type\": \"alpha\", \"dir\": \"a\", \"n\": \"2\"}]}",
                 "sinks[0].n: expected integer");
    expect_error("{\"sinks\": [{\"type\": \"alpha\", \"dir\": \"a\", \"on\": 1}]}",
                 "sinks[0].on: expected boolean");
    expect_error("{\"sinks\": [{\"type\": \"alpha\", \"dir\": \"a\", \"mode\": \"c\"}]}",
                 "sinks[0].mode: \"c\" is not one of a|b");
    expect_error("{\"sinks\": [{\"type\": \"alpha\", \"dir\": \"a\", \"tags\": [1]}]}",
                 "sinks[0].tags: expected array of strings");

    /* Values given override the defaults; lists are kept. */
    const char *sets[] = {"sinks=[{\"type\":\"alpha\",\"dir\":\"d\",\"n\":10,\"on\":false,"
                          "\"mode\":\"b\",\"tags\":[\"x\",\"y\"]}]"};
    CHECK(ws_config_load(NULL, sets, 1, &types, &c, errbuf, sizeof errbuf) == WS_OK);
    if (c) {
        const struct alpha *a = c->sinks[0].opts;
        CHECK(c->nsinks == 1 && a->n == 10 && !a->on && !strcmp(a->mode, "b"));
        CHECK(a->ntags == 2 && !strcmp(a->tags[1], "y"));
        ws_config_free(c);
    }

    /* Without sink types (a caller that has none), any sink is refused, saying so. */
    c = NULL;
    CHECK(ws_config_load(NULL, sets, 1, NULL, &c, errbuf, sizeof errbuf) == WS_ERR_CONFIG);
    CHECK(strstr(errbuf, "sinks[0].type: expected a sink type (none is known here)") != NULL);
}

/* The engine holds WS_CONFIG_MAX_SINKS configured sinks plus the attestations topic: more were
 * silently dropped; now the file is refused, naming the limit. */
static void test_sink_limit(void)
{
    char text[2048], set[2048];
    const char *sets[] = {set};
    struct ws_config *c = NULL;
    char errbuf[512] = "";
    size_t o;

    for (int n = WS_CONFIG_MAX_SINKS; n <= WS_CONFIG_MAX_SINKS + 1; n++) {
        o = (size_t)snprintf(text, sizeof text, "{\"sinks\": [");
        for (int i = 0; i < n; i++)
            o += (size_t)snprintf(text + o, sizeof text - o,
                                  "%s{\"type\": \"alpha\", \"dir\": \"d%d\"}", i ? ", " : "", i);
        snprintf(text + o, sizeof text - o, "]}");
        if (n > WS_CONFIG_MAX_SINKS) {
            expect_error(text, "sinks: at most 7 sinks");
            /* the same through --set */
            snprintf(set, sizeof set, "sinks=%.*s", (int)(strlen(text) - 11), text + 10);
            CHECK(ws_config_load(NULL, sets, 1, &types, &c, errbuf, sizeof errbuf) ==
                  WS_ERR_CONFIG);
            CHECK(strstr(errbuf, "(defaults): sinks: at most 7 sinks (8 given)") != NULL);
            continue;
        }
        CHECK(ws_config_load(write_file("max.json", text), NULL, 0, &types, &c, errbuf,
                             sizeof errbuf) == WS_OK);
        CHECK(c && c->nsinks == WS_CONFIG_MAX_SINKS);
        ws_config_free(c);
    }
}

/* The docs come from the tables: the type list, a key shared by two types on one row. */
static void test_docs(void)
{
    char *doc = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&doc, &len);

    ws_config_write_docs(f, &types);
    fclose(f);
    CHECK(strstr(doc, "| `kafka.group.id` | string | `windowseal` |") != NULL);
    CHECK(strstr(doc, "| `type` | alpha|beta | string |  | `alpha` or `beta`. |\n") != NULL);
    CHECK(strstr(doc, "| `dir` | alpha|beta | string | required | Where. |\n") != NULL);
    CHECK(strstr(doc, "| `n` | alpha | integer | `5` | How many. |\n") != NULL);
    CHECK(strstr(doc, "| `mode` | alpha | string: a|b | `a` | Which. |\n") != NULL);
    CHECK(strstr(doc, "| `url` | beta | string | required | Endpoint. |\n") != NULL);
    free(doc);
}

/* Each allocation of a load, failing in turn: the answer is WS_ERR_NOMEM, never WS_ERR_CONFIG. */
static void test_out_of_memory(void)
{
#if !WS_INTERPOSE_MALLOC
    printf("out of memory: skipped under AddressSanitizer (it owns malloc); the plain build runs "
           "it\n");
    return;
#else
    const char *text = "{\"kafka\": {\"group.id\": \"g\", \"properties\": {\"acks\": \"all\"}},"
                       " \"signing\": {\"verify_keys\": [\"a.pub\"]},"
                       " \"sinks\": [{\"type\": \"alpha\", \"dir\": \"d\", \"tags\": [\"t\"]},"
                       " {\"type\": \"beta\", \"url\": \"u\", \"name\": \"n\", \"dir\": \"d\"}]}";
    const char *sets[] = {"engine.gap_wait_ms=7"};
    const char *p = write_file("oom.json", text);
    int nomem = 0, wrong = 0;
    ws_err_t err;

    /* jansson's parser reports some of its own allocation failures as syntax errors: keep it
     * out of the injection, which is about config/'s own allocations. */
    json_set_alloc_funcs(__libc_malloc, free);

    for (long n = 1; n < 100000; n++) {
        struct ws_config *c = NULL;
        char errbuf[256] = "";
        nallocs = 0;
        fail_at = n;
        err = ws_config_load(p, sets, 1, &types, &c, errbuf, sizeof errbuf);
        fail_at = 0;
        if (err == WS_OK) {
            ws_config_free(c);
            if (nallocs < n) /* every allocation has had its turn */
                break;
            continue;
        }
        nomem += err == WS_ERR_NOMEM && strstr(errbuf, "out of memory") != NULL;
        wrong += err != WS_ERR_NOMEM;
        if (err != WS_ERR_NOMEM)
            fprintf(stderr, "  allocation %ld failed: %s (%s)\n", n, ws_err_name(err), errbuf);
    }
    json_set_alloc_funcs(malloc, free);
    CHECK(nomem > 20);
    CHECK(wrong == 0);
    printf("out of memory: %d failing allocations, each WS_ERR_NOMEM\n", nomem);
#endif
}

static void test_keys(void)
{
    struct ws_key k, l;
    char path[512], pub[520], errbuf[256] = "";

    snprintf(path, sizeof path, "%s/k", dir);
    snprintf(pub, sizeof pub, "%s.pub", path);
    CHECK(ws_key_generate(&k) == WS_OK);
    CHECK(ws_key_save(path, &k, errbuf, sizeof errbuf) == WS_OK);
    struct stat st;
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
    /* refuses to overwrite */
    CHECK(ws_key_save(path, &k, errbuf, sizeof errbuf) == WS_ERR_EXISTS_DIFFERENT);
    CHECK(ws_key_load(path, true, &l, errbuf, sizeof errbuf) == WS_OK);
    CHECK(l.has_secret && !memcmp(l.pk, k.pk, 32) && !strcmp(l.keyid, k.keyid));
    CHECK(ws_key_load(pub, false, &l, errbuf, sizeof errbuf) == WS_OK);
    CHECK(!l.has_secret && !strcmp(l.keyid, k.keyid));
    CHECK(ws_key_load(pub, true, &l, errbuf, sizeof errbuf) == WS_ERR_KEY);
    CHECK(strstr(errbuf, "public key") != NULL);
    /* a private key readable by others is refused */
    chmod(path, 0644);
    CHECK(ws_key_load(path, true, &l, errbuf, sizeof errbuf) == WS_ERR_PERMISSION);
    CHECK(strstr(errbuf, "0644") != NULL);
    /* garbage */
    CHECK(ws_key_load(write_file("junk.pem", "-----BEGIN PRIVATE KEY-----\nAAAA\n"), false, &l,
                      errbuf, sizeof errbuf) != WS_OK);
    CHECK(ws_key_load("/nonexistent.key", false, &l, errbuf, sizeof errbuf) == WS_ERR_NOT_FOUND);
    ws_key_wipe(&k);
    ws_key_wipe(&l);
}

int main(void)
{
    char cmd[600];

    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_defaults();
    test_spec_example();
    test_errors();
    test_set_errors();
    test_sink_tables();
    test_sink_limit();
    test_docs();
    test_out_of_memory();
    test_keys();
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup failed\n");
    printf("test_config_load: %lu checks, %lu failed\n", checks, failures);
    return failures ? 1 : 0;
}
