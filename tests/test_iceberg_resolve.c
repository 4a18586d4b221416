/*
 * test_iceberg_resolve.c — iceberg/ against tables written from the Iceberg spec by another
 * Avro implementation, served by a loopback REST catalog (tests/it/iceberg_catalog.py).
 *
 * The fixture builds the tables (python3-avro; each file read back by avrocat), starts the
 * catalog, prints its port, and writes expected.json: per case, the exact `outputs[i].iceberg`
 * object (digests by hashlib) or the failure to record. This program implements the caller's
 * side: an I/O vtable for file:// and http:// (what the engine's S3 reader is to s3://), the
 * catalog configuration, and compares what ws_iceberg_resolve produces with the fixture's
 * expectation key by key (json_equal), subjects and discrepancy included.
 *
 * Then, without the server: every Avro file of the fixture through the readers directly, each
 * cut short at every length and with each byte flipped (no crash, an error or the same entries,
 * never more), ws_iceberg_match, the iceberg.catalogs configuration key, and a catalog that
 * refuses connections (retriable).
 *
 * Exits 77 (skipped) when python3-avro or avrocat is missing.
 */
#include "iceberg/iceberg.h"
#include "check.h"

#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char errbuf[1024];

/* ------------------------------------------------------------------------------------------ */
/* The caller's I/O: file:// and http://                                                          */

struct io_state {
    char last_vended_key[128];
    unsigned fetches;
};

struct curl_sink {
    ws_write_fn out;
    void *opaque;
    ws_err_t err;
    uint64_t n;
};

static size_t curl_cb(char *d, size_t sz, size_t nm, void *o)
{
    struct curl_sink *s = o;
    if ((s->err = s->out(s->opaque, d, sz * nm)))
        return 0;
    s->n += sz * nm;
    return sz * nm;
}

static ws_err_t test_fetch(void *opaque, const char *uri, const struct ws_iceberg_creds *vended,
                           ws_write_fn out, void *out_opaque, uint64_t *bytes, char *eb, size_t el)
{
    struct io_state *st = opaque;

    st->fetches++;
    *bytes = 0;
    if (vended && vended->access_key_id)
        snprintf(st->last_vended_key, sizeof st->last_vended_key, "%s", vended->access_key_id);
    if (!strncmp(uri, "file://", 7)) {
        char buf[65536];
        ssize_t k;
        ws_err_t err = WS_OK;
        int fd = open(uri + 7, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return ws_fail(errno == ENOENT ? WS_ERR_NOT_FOUND : WS_ERR_PERMISSION, eb, el,
                           errno == ENOENT ? "not found" : "%s", strerror(errno));
        while ((k = read(fd, buf, sizeof buf)) > 0) {
            if ((err = out(out_opaque, buf, (size_t)k)))
                break;
            *bytes += (uint64_t)k;
        }
        close(fd);
        if (!err && k < 0)
            err = ws_fail(WS_ERR_IO, eb, el, "read: %s", strerror(errno));
        return err;
    }
    if (!strncmp(uri, "http://", 7)) {
        CURL *h = curl_easy_init();
        struct curl_sink s = {out, out_opaque, WS_OK, 0};
        long status = 0;
        CURLcode rc;
        curl_easy_setopt(h, CURLOPT_URL, uri);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, curl_cb);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        /* an error page is not the object: stop before its body reaches out */
        curl_easy_setopt(h, CURLOPT_FAILONERROR, 1L);
        rc = curl_easy_perform(h);
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_cleanup(h);
        *bytes = s.n;
        if (s.err)
            return s.err;
        if (rc == CURLE_HTTP_RETURNED_ERROR)
            return ws_fail(status == 404   ? WS_ERR_NOT_FOUND
                           : status >= 500 ? WS_ERR_IO
                                           : WS_ERR_PERMISSION,
                           eb, el, "HTTP %ld", status);
        if (rc != CURLE_OK)
            return ws_fail(WS_ERR_IO, eb, el, "%s", curl_easy_strerror(rc));
        return WS_OK;
    }
    return ws_fail(WS_ERR_UNSUPPORTED, eb, el, "no reader for %s", uri);
}

/* ------------------------------------------------------------------------------------------ */
/* The fixture                                                                                    */

static pid_t fixture_pid;
static int fixture_stdin = -1;

static int start_fixture(const char *dir, const char *script)
{
    int in[2], outp[2];
    char line[64];
    ssize_t k, n = 0;

    if (pipe(in) || pipe(outp))
        return -1;
    fixture_pid = fork();
    if (fixture_pid == 0) {
        dup2(in[0], 0);
        dup2(outp[1], 1);
        close(in[1]);
        close(outp[0]);
        execl("/usr/bin/python3", "python3", script, dir, (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(outp[1]);
    fixture_stdin = in[1];
    while (n < (ssize_t)sizeof line - 1 && (k = read(outp[0], line + n, 1)) == 1 && line[n] != '\n')
        n++;
    close(outp[0]);
    line[n] = '\0';
    return n > 0 ? atoi(line) : -1;
}

static void stop_fixture(void)
{
    int st;
    if (fixture_stdin >= 0)
        close(fixture_stdin); /* the server stops when its stdin closes */
    if (fixture_pid > 0 && waitpid(fixture_pid, &st, 0) < 0)
        kill(fixture_pid, SIGKILL);
}

/* ------------------------------------------------------------------------------------------ */
/* Cases from expected.json                                                                       */

static struct ws_iceberg_catalog_conf cats[6];
static char uris[6][128];

static void set_cat(int i, const char *name, const char *wh, const char *prefix,
                    const char *token_env)
{
    cats[i] = (struct ws_iceberg_catalog_conf){(char *)name, uris[i], (char *)wh, (char *)prefix,
                                               (char *)token_env};
}

static void show_diff(const char *name, const json_t *got, const json_t *want)
{
    char *g = json_dumps(got, JSON_SORT_KEYS | JSON_COMPACT);
    char *w = json_dumps(want, JSON_SORT_KEYS | JSON_COMPACT);
    fprintf(stderr, "case %s:\n  got  %s\n  want %s\n", name, g ? g : "(null)", w ? w : "(null)");
    free(g);
    free(w);
}

static unsigned ran_ok, ran_err, ran_retry;

static void run_case(const json_t *c, struct io_state *st)
{
    const char *name = json_string_value(json_object_get(c, "name"));
    const char *output = json_string_value(json_object_get(c, "output"));
    const char *catname = json_string_value(json_object_get(c, "catalog"));
    const char *snap = json_string_value(json_object_get(c, "snapshotId"));
    const char *query = json_string_value(json_object_get(c, "queryId"));
    const json_t *expect = json_object_get(c, "expect"), *disc = json_object_get(c, "discrepancy");
    const char *error = json_string_value(json_object_get(c, "error"));
    const char *creds = json_string_value(json_object_get(c, "creds"));
    const json_t *files = json_object_get(c, "files");
    const char *jf[16];
    size_t njf = 0;
    const struct ws_iceberg_catalog_conf *cat = ws_iceberg_match(cats, 6, output);
    struct ws_iceberg_result res;
    ws_err_t err;

    CHECK(cat && !strcmp(cat->name, catname));
    if (!cat)
        return;
    for (size_t i = 0; i < json_array_size(files) && njf < 16; i++)
        jf[njf++] = json_string_value(json_array_get(files, i));
    st->last_vended_key[0] = '\0';
    errbuf[0] = '\0';
    err = ws_iceberg_resolve(cat, output, snap, jf, njf, query,
                             json_integer_value(json_object_get(c, "batchId")),
                             &(struct ws_iceberg_io){test_fetch, st}, &res, errbuf, sizeof errbuf);
    if (json_is_true(json_object_get(c, "retriable"))) {
        CHECK(err != WS_OK && ws_err_retriable(err));
        CHECK(res.iceberg == NULL && res.nsubjects == 0);
        if (err == WS_OK || !ws_err_retriable(err))
            fprintf(stderr, "case %s: %s, want a retriable error\n", name, ws_err_name(err));
        ran_retry++;
        ws_iceberg_result_free(&res);
        return;
    }
    CHECK_OK(err);
    if (err) {
        fprintf(stderr, "case %s failed\n", name);
        return;
    }
    if (expect) {
        bool eq = json_equal(res.iceberg, (json_t *)expect);
        CHECK(eq);
        if (!eq)
            show_diff(name, res.iceberg, expect);
        /* subjects: exactly the files read whole, with their digests */
        const json_t *added = json_object_get(expect, "addedDataFiles"), *f;
        size_t i, k = 0;
        json_array_foreach(added, i, f)
        {
            const char *sha = json_string_value(json_object_get(f, "sha256"));
            if (!sha)
                continue;
            CHECK(k < res.nsubjects);
            if (k < res.nsubjects) {
                CHECK(!strcmp(res.subjects[k].path, json_string_value(json_object_get(f, "path"))));
                CHECK(!strcmp(res.subjects[k].sha256, sha));
                CHECK(res.subjects[k].bytes ==
                      (uint64_t)json_integer_value(json_object_get(f, "bytes")));
            }
            k++;
        }
        CHECK(k == res.nsubjects);
        unsigned want = (disc ? 1u : 0u) + (json_object_get(expect, "summaryMismatch") ? 1u : 0u);
        CHECK(res.discrepancies == want);
        if (disc) {
            bool deq = json_equal(res.discrepancy, (json_t *)disc);
            CHECK(deq);
            if (!deq)
                show_diff(name, res.discrepancy, disc);
        } else {
            CHECK(res.discrepancy == NULL);
        }
        if (creds)
            CHECK(!strcmp(st->last_vended_key, creds));
        else
            CHECK(st->last_vended_key[0] == '\0');
        ran_ok++;
    } else {
        /* the failure shape: {catalog, namespace, table, snapshotId?, error} */
        const char *got = json_string_value(json_object_get(res.iceberg, "error"));
        size_t keys = 4 + (json_object_get(res.iceberg, "snapshotId") ? 1 : 0);
        CHECK(got && error && strstr(got, error));
        if (!got || !error || !strstr(got, error))
            fprintf(stderr, "case %s: error \"%s\", want one with \"%s\"\n", name,
                    got ? got : "(none)", error ? error : "?");
        CHECK(json_object_size(res.iceberg) == keys);
        CHECK(json_is_array(json_object_get(res.iceberg, "namespace")));
        CHECK(!strcmp(json_string_value(json_object_get(res.iceberg, "catalog")), catname));
        CHECK(res.nsubjects == 0 && res.discrepancy == NULL);
        ran_err++;
    }
    ws_iceberg_result_free(&res);
}

/* ------------------------------------------------------------------------------------------ */
/* The readers alone, on every Avro file of the fixture                                          */

static unsigned avro_files, avro_mutations;

static void read_whole(const char *path, uint8_t **buf, size_t *len)
{
    FILE *f = fopen(path, "rb");
    *buf = NULL;
    *len = 0;
    if (!f)
        return;
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    rewind(f);
    *buf = malloc(*len ? *len : 1);
    if (*buf && fread(*buf, 1, *len, f) != *len)
        *len = 0;
    fclose(f);
}

static void reader_on(const uint8_t *b, size_t n, bool list, size_t *count, ws_err_t *err)
{
    if (list) {
        struct ws_iceberg_manifest *m;
        *err = ws_iceberg_read_manifest_list(b, n, &m, count, errbuf, sizeof errbuf);
        ws_iceberg_manifests_free(m, *count);
    } else {
        struct ws_iceberg_entry *e;
        *err = ws_iceberg_read_manifest(b, n, &e, count, errbuf, sizeof errbuf);
        ws_iceberg_entries_free(e, *count);
    }
}

static void hostile_file(const char *path)
{
    uint8_t *b;
    size_t n, whole = 0, cnt;
    bool list = strstr(path, "-list.avro") != NULL;
    ws_err_t err;

    read_whole(path, &b, &n);
    if (!b)
        return;
    reader_on(b, n, list, &whole, &err);
    if (strstr(path, "bad.avro") || (strstr(path, "halflist") && list) || strstr(path, "bz.avro")) {
        CHECK(err != WS_OK); /* the fixture's corrupt, truncated and bzip2 files */
        CHECK(err == WS_ERR_UNSUPPORTED || !strstr(path, "bz.avro"));
        free(b);
        return;
    }
    CHECK_OK(err);
    CHECK(whole > 0);
    avro_files++;
    /* Cut short: never OK with as many entries (a file cut between blocks is a shorter valid
     * file), never a crash. */
    for (size_t cut = 0; cut < n; cut++) {
        reader_on(b, cut, list, &cnt, &err);
        CHECK(err != WS_OK || cnt < whole);
        avro_mutations++;
    }
    /* Every byte flipped: an error, or no more entries than the original. */
    for (size_t i = 0; i < n; i++) {
        b[i] ^= 0xff;
        reader_on(b, n, list, &cnt, &err);
        CHECK(err != WS_OK || cnt <= whole);
        b[i] ^= 0xff;
        avro_mutations++;
    }
    free(b);
}

static void walk(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[1024];

    if (!d)
        return;
    while ((e = readdir(d))) {
        struct stat sb;
        if (e->d_name[0] == '.')
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (stat(p, &sb))
            continue;
        if (S_ISDIR(sb.st_mode))
            walk(p);
        else if (strstr(e->d_name, ".avro"))
            hostile_file(p);
    }
    closedir(d);
}

/* ------------------------------------------------------------------------------------------ */

static void test_match(void)
{
    CHECK(ws_iceberg_match(cats, 6, "ice.db.t") == &cats[0]);
    CHECK(ws_iceberg_match(cats, 6, "ice.a.b.c.t") == &cats[0]);
    CHECK(ws_iceberg_match(cats, 6, "ice.t") == NULL);      /* two parts: a plain output */
    CHECK(ws_iceberg_match(cats, 6, "other.db.t") == NULL); /* not configured */
    CHECK(ws_iceberg_match(cats, 6, "ice..t") == NULL);
    CHECK(ws_iceberg_match(cats, 6, "ice.db.") == NULL);
    CHECK(ws_iceberg_match(cats, 6, "/data/out.parquet") == NULL);
    CHECK(ws_iceberg_match(cats, 6, "") == NULL);
}

static void test_config(const char *dir)
{
    char path[512];
    struct ws_config *c = NULL;
    FILE *f;
    static const char *bad[] = {
        "{\"iceberg\": {\"catalogs\": {\"x\": {\"uri\": \"http://h\", \"nope\": \"1\"}}}}",
        "{\"iceberg\": {\"catalogs\": {\"x\": {\"warehouse\": \"w\"}}}}",
        "{\"iceberg\": {\"catalogs\": {\"x.y\": {\"uri\": \"http://h\"}}}}",
        "{\"iceberg\": {\"catalogs\": {\"x\": {\"uri\": \"file:///etc\"}}}}",
        "{\"iceberg\": {\"catalogs\": {\"x\": {\"uri\": 7}}}}",
        "{\"iceberg\": {\"catalogs\": [\"x\"]}}",
        "{\"iceberg\": {\"catalog\": {}}}",
    };

    snprintf(path, sizeof path, "%s/ws.json", dir);
    f = fopen(path, "w");
    fprintf(f, "{\"iceberg\": {\"catalogs\": {\"lake\": {\"uri\": \"http://cat:8181/\", "
               "\"warehouse\": \"s3://wh\", \"token_env\": \"TOK\"}, \"b\": {\"uri\": "
               "\"https://b\", \"prefix\": \"p/q\"}}}}");
    fclose(f);
    CHECK_OK(ws_config_load(path, NULL, 0, NULL, &c, errbuf, sizeof errbuf));
    if (c) {
        CHECK(c->ncatalogs == 2);
        CHECK(!strcmp(c->catalogs[0].name, "lake") &&
              !strcmp(c->catalogs[0].uri, "http://cat:8181/"));
        CHECK(!strcmp(c->catalogs[0].warehouse, "s3://wh") && !*c->catalogs[0].prefix);
        CHECK(!strcmp(c->catalogs[0].token_env, "TOK"));
        CHECK(!strcmp(c->catalogs[1].prefix, "p/q") && !*c->catalogs[1].token_env);
        CHECK(ws_iceberg_match(c->catalogs, c->ncatalogs, "b.ns.t") == &c->catalogs[1]);
        ws_config_free(c);
    }
    const char *set = "iceberg.catalogs={\"s\": {\"uri\": \"http://s\"}}";
    c = NULL;
    CHECK_OK(ws_config_load(NULL, &set, 1, NULL, &c, errbuf, sizeof errbuf));
    CHECK(c && c->ncatalogs == 1 && !strcmp(c->catalogs[0].uri, "http://s"));
    ws_config_free(c);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        f = fopen(path, "w");
        fputs(bad[i], f);
        fclose(f);
        c = NULL;
        CHECK(ws_config_load(path, NULL, 0, NULL, &c, errbuf, sizeof errbuf) == WS_ERR_CONFIG);
        CHECK(strstr(errbuf, "iceberg.catalog") != NULL);
        ws_config_free(c);
    }
}

int main(void)
{
    char dir[] = "/tmp/ws-iceberg-XXXXXX", script[1024], exp[600];
    struct io_state st = {0};
    json_t *root, *cases;
    int port;

    if (access("/usr/bin/python3", X_OK) ||
        system("/usr/bin/python3 -c 'import avro' 2>/dev/null") ||
        system("command -v avrocat >/dev/null 2>&1")) {
        printf("test_iceberg_resolve: python3-avro or avrocat missing: skipped\n");
        return 77;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (!mkdtemp(dir))
        return 1;
    /* The fixture sits next to this file in the source tree (CMake compiles it by full path). */
    snprintf(script, sizeof script, "%s", __FILE__);
    *strrchr(script, '/') = '\0';
    strcat(script, "/it/iceberg_catalog.py");
    port = start_fixture(dir, script);
    CHECK(port > 0);
    if (port <= 0) {
        stop_fixture();
        return check_report("test_iceberg_resolve");
    }
    for (int i = 0; i < 6; i++)
        snprintf(uris[i], sizeof uris[i], "http://127.0.0.1:%d%s", port, i == 1 ? "/" : "");
    setenv("WS_TEST_ICE_TOKEN", "s3cret", 1);
    setenv("WS_TEST_ICE_BADTOKEN", "forged", 1);
    set_cat(0, "ice", "main", "", "");
    set_cat(1, "wh", "main", "ignored", ""); /* the server's overrides.prefix wins */
    set_cat(2, "pre", "", "main", "");       /* configured prefix beats defaults.prefix */
    set_cat(3, "dflt", "dflt", "", "");      /* defaults.prefix, nothing else */
    set_cat(4, "sec", "secure", "", "WS_TEST_ICE_TOKEN");
    set_cat(5, "bad", "secure", "", "WS_TEST_ICE_BADTOKEN");

    snprintf(exp, sizeof exp, "%s/expected.json", dir);
    root = json_load_file(exp, 0, NULL);
    cases = json_object_get(root, "cases");
    CHECK(json_array_size(cases) >= 20);
    for (size_t i = 0; i < json_array_size(cases); i++)
        run_case(json_array_get(cases, i), &st);
    printf("test_iceberg_resolve: %u resolved, %u recorded errors, %u retriable (of %zu cases)\n",
           ran_ok, ran_err, ran_retry, json_array_size(cases));
    CHECK(ran_ok >= 12 && ran_err >= 10 && ran_retry >= 1);

    /* A token variable that is not set: recorded, not retried. */
    {
        struct ws_iceberg_catalog_conf c = cats[4];
        struct ws_iceberg_result res;
        c.token_env = "WS_TEST_ICE_UNSET";
        unsetenv("WS_TEST_ICE_UNSET");
        CHECK_OK(ws_iceberg_resolve(&c, "sec.db.events", "1001", NULL, 0, "q", 0,
                                    &(struct ws_iceberg_io){test_fetch, &st}, &res, errbuf,
                                    sizeof errbuf));
        CHECK(strstr(json_string_value(json_object_get(res.iceberg, "error")), "not set"));
        ws_iceberg_result_free(&res);
    }
    json_decref(root);
    stop_fixture();

    /* The catalog gone: connection refused is retriable, and nothing is recorded. */
    {
        struct ws_iceberg_result res;
        ws_err_t err = ws_iceberg_resolve(&cats[0], "ice.db.events", "1001", NULL, 0, "q", 0,
                                          &(struct ws_iceberg_io){test_fetch, &st}, &res, errbuf,
                                          sizeof errbuf);
        CHECK(err == WS_ERR_IO && ws_err_retriable(err) && res.iceberg == NULL);
        CHECK(strstr(errbuf, "catalog ice") != NULL);
    }

    test_match();
    test_config(dir);
    walk(dir);
    printf("test_iceberg_resolve: %u Avro files, %u cut or flipped copies read\n", avro_files,
           avro_mutations);
    CHECK(avro_files >= 15);

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    curl_global_cleanup();
    return check_report("test_iceberg_resolve");
}
