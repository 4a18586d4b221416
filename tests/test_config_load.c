/*
 * test_config_load.c — the configuration table: defaults, the SPEC 10 example, --set, and every
 * way a file can be wrong (each must name the key and the file). Also key files: permissions,
 * refusing to overwrite, public vs private.
 */
#include "config/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"

static char dir[] = "/tmp/ws_config_test_XXXXXX";

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
    ws_err_t err = ws_config_load(p, NULL, 0, &c, errbuf, sizeof errbuf);

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

    CHECK(ws_config_load(NULL, NULL, 0, &c, errbuf, sizeof errbuf) == WS_OK);
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
        " \"sinks\": [{\"type\": \"file\", \"path\": \"attestations/\"},\n"
        "   {\"type\": \"s3\", \"endpoint\": \"http://127.0.0.1:4569\", \"bucket\": \"attest\", "
        "\"prefix\": \"prod/\", \"region\": \"us-east-1\"}],\n"
        " \"spool\": {\"path\": \"spool/\"},\n"
        " \"metrics\": {\"listen\": \"127.0.0.1:9464\"}}\n";
    const char *p = write_file("spec.json", text);
    const char *sets[] = {"kafka.group.id=g2", "engine.gap_wait_ms=10",
                          "kafka.properties.fetch.wait.max.ms=20", "spool.io_uring=off"};
    struct ws_config *c = NULL;
    char errbuf[256] = "";

    CHECK(ws_config_load(p, NULL, 0, &c, errbuf, sizeof errbuf) == WS_OK);
    if (!c) {
        fprintf(stderr, "  %s\n", errbuf);
        return;
    }
    CHECK(c->nsinks == 2);
    CHECK(!strcmp(c->sinks[0].type, "file") && !strcmp(c->sinks[0].path, "attestations/"));
    CHECK(!strcmp(c->sinks[1].bucket, "attest") && !strcmp(c->sinks[1].prefix, "prod/"));
    CHECK(c->sinks[1].verify_tls && c->sinks[1].path_style);
    CHECK(c->nkafka_props == 1 && !strcmp(c->kafka_props[0], "security.protocol"));
    CHECK(!strcmp(c->metrics_listen, "127.0.0.1:9464"));
    ws_config_free(c);
    /* --set beats the file */
    CHECK(ws_config_load(p, sets, 4, &c, errbuf, sizeof errbuf) == WS_OK);
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
    expect_error("{\"sinks\": [{\"type\": \"file\", \"path\": \"a\", \"bucket\": \"b\"}]}",
                 "sinks[0].bucket: unknown key for a file sink");
    expect_error("{\"sinks\": [{\"type\": \"ftp\"}]}", "sinks[0].type");
    expect_error("{\"sinks\": [{\"type\": \"file\"}]}", "sinks[0].path: required");
    expect_error("{\"sinks\": [{\"type\": \"s3\", \"endpoint\": \"http://x\"}]}",
                 "an s3 sink needs endpoint and bucket");
    expect_error("{\"sinks\": {\"type\": \"file\"}}", "sinks: expected an array");
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

    CHECK(ws_config_load(NULL, bad1, 1, &c, errbuf, sizeof errbuf) == WS_ERR_CONFIG);
    CHECK(strstr(errbuf, "kafka.nope") != NULL);
    CHECK(ws_config_load(NULL, bad2, 1, &c, errbuf, sizeof errbuf) == WS_ERR_CONFIG);
    CHECK(strstr(errbuf, "KEY=VALUE") != NULL);
    CHECK(ws_config_load(NULL, bad3, 1, &c, errbuf, sizeof errbuf) == WS_ERR_CONFIG);
    CHECK(strstr(errbuf, "spool.max_bytes") != NULL);
    CHECK(ws_config_load("/nonexistent/x.json", NULL, 0, &c, errbuf, sizeof errbuf) ==
          WS_ERR_CONFIG);
    CHECK(strstr(errbuf, "/nonexistent/x.json") != NULL);
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
    test_keys();
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup failed\n");
    printf("test_config_load: %lu checks, %lu failed\n", checks, failures);
    return failures ? 1 : 0;
}
