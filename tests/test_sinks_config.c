/*
 * test_sinks_config.c — the sink types' own option tables, as the configuration sees them
 * through ws_sink_types(): the FORMAT.md §10 example's file and s3 sinks (defaults filled, then
 * created from what was loaded), every refusal naming the file and the key (unknown key for the
 * type, required keys, types, ranges, the type list built from the registry, at most
 * WS_CONFIG_MAX_SINKS sinks), the generated docs, ws_sink_create refusing options that its
 * type's table did not fill, and what the s3 sink's create refuses beyond the table (no
 * credentials in the environment, unsafe bucket, prefix or region, an endpoint that is not
 * http(s), carries credentials, or is an IP address with virtual-hosted style). The generic
 * machinery is tests/test_config_load.c.
 */
#include "sinks/sink.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static char dir[] = "/tmp/ws_sinks_config_XXXXXX";

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

static void expect_error(const char *text, const char *needle)
{
    struct ws_config *c = NULL;
    char errbuf[512] = "";
    ws_err_t err = ws_config_load(write_file("c.json", text), NULL, 0, ws_sink_types(), &c, errbuf,
                                  sizeof errbuf);

    CHECK(err == WS_ERR_CONFIG);
    CHECK(strstr(errbuf, needle) != NULL && strstr(errbuf, "c.json: ") != NULL);
    if (!strstr(errbuf, needle))
        fprintf(stderr, "  expected '%s' in: %s\n", needle, errbuf);
    if (!err)
        ws_config_free(c);
}

static void test_spec_example(void)
{
    const char *text =
        "{\"sinks\": [{\"type\": \"file\", \"path\": \"%s/attestations/\"},\n"
        "   {\"type\": \"s3\", \"endpoint\": \"http://127.0.0.1:4569\", \"bucket\": \"attest\", "
        "\"prefix\": \"prod/\", \"region\": \"us-east-1\"}]}\n";
    char buf[1024], errbuf[512] = "", label[600];
    struct ws_config *c = NULL;
    struct ws_sink_ctx ctx = {0};
    struct ws_sink *s = NULL;

    snprintf(buf, sizeof buf, text, dir);
    CHECK(ws_config_load(write_file("spec.json", buf), NULL, 0, ws_sink_types(), &c, errbuf,
                         sizeof errbuf) == WS_OK);
    if (!c) {
        fprintf(stderr, "  %s\n", errbuf);
        return;
    }
    CHECK(c->nsinks == 2);
    CHECK(!strcmp(c->sinks[0].type, "file") && !strcmp(c->sinks[1].type, "s3"));
    CHECK(c->sinks[0].table == &ws_sink_lookup("file")->type);
    CHECK(c->sinks[1].table == &ws_sink_lookup("s3")->type);
    /* what was loaded is what the sinks are made of */
    CHECK(ws_sink_create(&c->sinks[0], &ctx, &s, errbuf, sizeof errbuf) == WS_OK);
    snprintf(label, sizeof label, "file:%s/attestations/", dir);
    CHECK(s && !strcmp(ws_sink_label(s), label) && ws_sink_can_get(s) && ws_sink_can_put(s));
    ws_sink_destroy(s);
    setenv("AWS_ACCESS_KEY_ID", "AKIDTEST", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "SECRET", 1);
    s = NULL;
    CHECK(ws_sink_create(&c->sinks[1], &ctx, &s, errbuf, sizeof errbuf) == WS_OK);
    CHECK(s && !strcmp(ws_sink_label(s), "s3:attest/prod/")); /* no secret in it */
    CHECK(s && ws_sink_can_get(s) && ws_sink_can_put(s));
    ws_sink_destroy(s);
    /* options filled by another type's table are refused, not misread */
    c->sinks[1].type = "file";
    CHECK(ws_sink_create(&c->sinks[1], &ctx, &s, errbuf, sizeof errbuf) == WS_ERR_INVALID);
    c->sinks[1].type = "nonesuch";
    CHECK(ws_sink_create(&c->sinks[1], &ctx, &s, errbuf, sizeof errbuf) == WS_ERR_CONFIG);
    c->sinks[1].type = "s3";
    ws_config_free(c);
}

static void test_errors(void)
{
    char text[2048];
    size_t o;

    expect_error("{\"sinks\": [{\"type\": \"file\", \"path\": \"x\", \"region\": \"r\"}]}",
                 "sinks[0].region: unknown key for a file sink");
    expect_error("{\"sinks\": [{\"type\": \"file\", \"path\": \"a\", \"bucket\": \"b\"}]}",
                 "sinks[0].bucket: unknown key for a file sink");
    expect_error("{\"sinks\": [{\"type\": \"ftp\"}]}",
                 "sinks[0].type: expected \"file\" or \"s3\"");
    expect_error("{\"sinks\": [{\"type\": \"kafka\"}]}",
                 "sinks[0].type: expected \"file\" or \"s3\"");
    expect_error("{\"sinks\": [{\"type\": \"file\"}]}", "sinks[0].path: required");
    expect_error("{\"sinks\": [{\"type\": \"file\", \"path\": \"\"}]}", "sinks[0].path: required");
    expect_error("{\"sinks\": [{\"type\": \"s3\", \"endpoint\": \"http://x\"}]}",
                 "sinks[0].bucket: required (s3 sinks need endpoint and bucket)");
    expect_error("{\"sinks\": [{\"type\": \"s3\", \"bucket\": \"b\"}]}",
                 "sinks[0].endpoint: required (s3 sinks need endpoint and bucket)");
    expect_error("{\"sinks\": [{\"type\": \"s3\", \"endpoint\": \"http://x\", \"bucket\": \"b\", "
                 "\"timeout_ms\": 0}]}",
                 "sinks[0].timeout_ms: 0 is out of range [1, 86400000]");
    expect_error("{\"sinks\": [{\"type\": \"s3\", \"endpoint\": \"http://x\", \"bucket\": \"b\", "
                 "\"path_style\": \"yes\"}]}",
                 "sinks[0].path_style: expected boolean");
    expect_error("{\"sinks\": [{\"type\": \"file\", \"path\": \"x\", \"prefix\": 1}]}",
                 "sinks[0].prefix: expected string");
    /* eight object stores: the engine holds seven and the attestations topic */
    o = (size_t)snprintf(text, sizeof text, "{\"sinks\": [");
    for (int i = 0; i < WS_CONFIG_MAX_SINKS + 1; i++)
        o += (size_t)snprintf(text + o, sizeof text - o,
                              "%s{\"type\": \"file\", \"path\": \"d%d\"}", i ? ", " : "", i);
    snprintf(text + o, sizeof text - o, "]}");
    expect_error(text, "sinks: at most 7 sinks (8 given)");
}

/* Load one s3 sink of this bucket with these other JSON members, then create it. */
static ws_err_t s3_create(const char *bucket, const char *members, char *errbuf, size_t errlen)
{
    char set[1024];
    const char *sets[] = {set};
    struct ws_config *c = NULL;
    struct ws_sink_ctx ctx = {0};
    struct ws_sink *s = NULL;
    ws_err_t err;

    snprintf(set, sizeof set, "sinks=[{\"type\":\"s3\",\"bucket\":\"%s\",%s}]", bucket, members);
    if ((err = ws_config_load(NULL, sets, 1, ws_sink_types(), &c, errbuf, errlen)))
        return err;
    err = ws_sink_create(&c->sinks[0], &ctx, &s, errbuf, errlen);
    ws_sink_destroy(s);
    ws_config_free(c);
    return err;
}

#define EP "\"endpoint\":\"http://127.0.0.1:9\""

static void test_s3_refusals(void)
{
    char errbuf[512];

    setenv("AWS_SECRET_ACCESS_KEY", "SECRET", 1);
    unsetenv("AWS_ACCESS_KEY_ID");
    CHECK(s3_create("attest", EP, errbuf, sizeof errbuf) == WS_ERR_CONFIG);
    CHECK(strstr(errbuf, "AWS_ACCESS_KEY_ID") != NULL);
    setenv("AWS_ACCESS_KEY_ID", "AKIDTEST", 1);
    CHECK_OK(s3_create("attest", EP, errbuf, sizeof errbuf));
    CHECK(s3_create("at/test", EP, errbuf, sizeof errbuf) == WS_ERR_CONFIG);
    CHECK(s3_create("attest", EP ",\"prefix\":\"../up/\"", errbuf, sizeof errbuf) == WS_ERR_CONFIG);
    CHECK(s3_create("attest", EP ",\"prefix\":\"a b/\"", errbuf, sizeof errbuf) == WS_ERR_CONFIG);
    CHECK(s3_create("attest", EP ",\"region\":\"us east\"", errbuf, sizeof errbuf) ==
          WS_ERR_CONFIG);
    CHECK(s3_create("attest", "\"endpoint\":\"ftp://127.0.0.1:21\"", errbuf, sizeof errbuf) ==
          WS_ERR_CONFIG);
    CHECK(s3_create("attest", "\"endpoint\":\"http://AKIDTEST:hunter2secret@127.0.0.1:9\"", errbuf,
                    sizeof errbuf) == WS_ERR_CONFIG);
    CHECK(strstr(errbuf, "hunter2secret") == NULL);
    /* the bucket cannot go in front of an IP address */
    CHECK(s3_create("attest", EP ",\"path_style\":false", errbuf, sizeof errbuf) == WS_ERR_CONFIG);
    CHECK(strstr(errbuf, "virtual-hosted") != NULL);
}

static void test_registry_and_docs(void)
{
    const struct ws_sink_types *t = ws_sink_types();
    char *doc = NULL;
    size_t len = 0;
    FILE *f;

    CHECK(t->n == 2 && !strcmp(t->tables[0]->name, "file") && !strcmp(t->tables[1]->name, "s3"));
    CHECK(ws_sink_lookup("kafka") && ws_sink_lookup("kafka")->type.nopts == 0);
    CHECK(ws_sink_lookup("ftp") == NULL);
    f = open_memstream(&doc, &len);
    ws_config_write_docs(f, t);
    fclose(f);
    CHECK(strstr(doc, "| `type` | file|s3 | string |  | `file` or `s3`. |\n") != NULL);
    CHECK(strstr(doc, "| `path` | file | string | required | Directory of the file sink. |\n"));
    CHECK(strstr(doc, "| `prefix` | file|s3 | string | `` | Prefix of every object name. |\n"));
    CHECK(strstr(doc, "| `bucket` | s3 | string | required | Bucket name. |\n") != NULL);
    CHECK(strstr(doc, "| `timeout_ms` | s3 | integer | `30000` | Per-request timeout. |\n"));
    free(doc);
}

int main(void)
{
    char cmd[600];

    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_spec_example();
    test_errors();
    test_s3_refusals();
    test_registry_and_docs();
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup failed\n");
    return check_report("test_sinks_config");
}
