/*
 * test_disk_outputs.c — output-file digests (disk/outputs.c) against `sha256sum`.
 *
 * Every expected digest comes from the real sha256sum run on the same files, never from the
 * code under test. Each case runs through the three I/O choices the engine can make: io_uring
 * (spool.io_uring=on, and no spool = auto) and plain read() (spool.io_uring=off). Covered:
 *   - 0 B, 1 B, 4 KiB - 1, 4 KiB, 4 KiB + 1, 100 MiB (created in /tmp, deleted after), 1000
 *     small files of assorted sizes in one notification (spread over the worker threads), and
 *     the mapping of results back to their outputs[]/files[] slots;
 *   - a missing file, a directory, a FIFO (must not hang), another URI scheme, a file:// URI
 *     with a remote host or a bad escape: reported with a reason, never fatal;
 *   - file://, file://localhost/, Hadoop's file:/ and percent-decoding;
 *   - outputs.allowed_roots: inside, outside, a symlink escaping the root, a root that does not
 *     exist.
 */
#include "disk/disk.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"

#define NSMALL 1000
#define BIG (100u << 20)

static char base[200];

/* expected results: name as given in the notification -> sha256sum hex or NULL (an error) */
struct expect {
    char *name;
    char hex[65];
    int64_t bytes;
    const char *error_has; /* substring of the error text, when an error is expected */
};
static struct expect *ex;
static size_t nex, capex;

static struct expect *expect_add(const char *name)
{
    if (nex == capex) {
        capex = capex ? 2 * capex : 64;
        ex = realloc(ex, capex * sizeof *ex);
    }
    memset(&ex[nex], 0, sizeof ex[nex]);
    ex[nex].name = strdup(name);
    ex[nex].bytes = -1;
    return &ex[nex++];
}

static void write_file(const char *path, size_t len, unsigned seed)
{
    FILE *f = fopen(path, "wb");
    uint8_t buf[65536];
    uint32_t x = seed * 2654435761u + 1;

    if (!f) {
        perror(path);
        exit(1);
    }
    while (len) {
        size_t n = len < sizeof buf ? len : sizeof buf;
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            buf[i] = (uint8_t)x;
        }
        fwrite(buf, 1, n, f);
        len -= n;
    }
    fclose(f);
}

/* Run sha256sum in dir on the files matched by glob and record the digests of `prefix<name>`. */
static void sha256sum(const char *dir, const char *glob, const char *prefix)
{
    char cmd[1024], line[PATH_MAX + 80];
    FILE *p;

    snprintf(cmd, sizeof cmd, "cd '%s' && sha256sum -- %s", dir, glob);
    p = popen(cmd, "r");
    CHECK(p != NULL);
    if (!p)
        return;
    while (fgets(line, sizeof line, p)) {
        char name[PATH_MAX + 8], full[2 * PATH_MAX];
        struct stat st;
        size_t l = strlen(line);
        if (l && line[l - 1] == '\n')
            line[--l] = '\0';
        if (l < 67 || line[64] != ' ')
            continue;
        snprintf(name, sizeof name, "%s", line + 66);
        snprintf(full, sizeof full, "%s%s", prefix, name);
        struct expect *e = expect_add(full);
        memcpy(e->hex, line, 64);
        e->hex[64] = '\0';
        snprintf(full, sizeof full, "%s/%s", dir, name);
        e->bytes = stat(full, &st) == 0 ? (int64_t)st.st_size : -2;
    }
    CHECK(pclose(p) == 0);
}

static const struct expect *expect_find(const char *name)
{
    for (size_t i = 0; i < nex; i++)
        if (strcmp(ex[i].name, name) == 0)
            return &ex[i];
    return NULL;
}

/* Hash everything in ex[] as one notification with three outputs; check every entry. */
static void run_case(struct ws_spool *spool, const char *const *roots, size_t nroots,
                     const char *label)
{
    struct ws_notification n = {0};
    struct ws_notif_output outs[3] = {{0}};
    struct ws_output_set set;
    char errbuf[256], hex[65];
    size_t k = 0, seen = 0;

    /* split into three outputs of uneven size so results must land in the right slot */
    size_t split[3] = {nex / 7, nex / 2, nex - nex / 7 - nex / 2};
    for (int o = 0; o < 3; o++) {
        outs[o].name = (char *)(o == 0 ? "iceberg.db.t" : o == 1 ? "delta.events" : "files");
        outs[o].snapshot_id = o == 0 ? (char *)"5937117119577207079" : NULL;
        outs[o].files = calloc(split[o] ? split[o] : 1, sizeof(char *));
        outs[o].nfiles = split[o];
        for (size_t j = 0; j < split[o]; j++)
            outs[o].files[j] = ex[k++].name;
    }
    n.outputs = outs;
    n.noutputs = 3;
    CHECK(ws_outputs_hash(&n, roots, nroots, spool, &set, errbuf, sizeof errbuf) == WS_OK);
    CHECK(set.noutputs == 3);
    for (size_t o = 0; o < set.noutputs; o++) {
        CHECK(set.outputs[o].nfiles == outs[o].nfiles);
        CHECK(set.outputs[o].name == outs[o].name);
        CHECK(set.outputs[o].snapshot_id == outs[o].snapshot_id);
        for (size_t j = 0; j < set.outputs[o].nfiles; j++) {
            const struct ws_out_file *f = &set.outputs[o].files[j];
            const struct expect *e = expect_find(f->name);
            seen++;
            CHECK(f->name == outs[o].files[j]);
            CHECK(e != NULL);
            if (!e)
                continue;
            if (e->hex[0]) {
                ws_hex_encode(f->sha256, WS_HASH_LEN, hex);
                CHECK(f->has_digest && !f->error);
                CHECK(strcmp(hex, e->hex) == 0);
                CHECK(f->bytes == e->bytes);
                if (!f->has_digest || strcmp(hex, e->hex) != 0)
                    fprintf(stderr, "  [%s] %s: got %s error=%s\n", label, f->name,
                            f->has_digest ? hex : "-", f->error ? f->error : "-");
            } else {
                CHECK(!f->has_digest && f->error && f->bytes == -1);
                CHECK(f->error && strstr(f->error, e->error_has));
                if (!f->error || !strstr(f->error, e->error_has))
                    fprintf(stderr, "  [%s] %s: error=%s, want \"%s\"\n", label, f->name,
                            f->error ? f->error : "-", e->error_has);
            }
        }
    }
    CHECK(seen == nex);
    ws_outputs_free(&set);
    for (int o = 0; o < 3; o++)
        free(outs[o].files);
}

static void clear_expect(void)
{
    for (size_t i = 0; i < nex; i++)
        free(ex[i].name);
    nex = 0;
}

static void run_all_modes(struct ws_spool *on, struct ws_spool *off, const char *const *roots,
                          size_t nroots)
{
    if (on)
        run_case(on, roots, nroots, "io_uring");
    run_case(NULL, roots, nroots, "auto");
    run_case(off, roots, nroots, "read");
}

int main(void)
{
    char dir[300], path[600], uri[700], errbuf[512];
    struct ws_spool *on = NULL, *off = NULL;
    struct expect *e;

    ws_log_setup("error", NULL);
    /* s3:// names are read only with credentials (tests/it_outputs_s3.sh reads them from a real
     * store); without, they must be recorded as not readable, whatever the caller's shell has. */
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    snprintf(base, sizeof base, "/tmp/ws-outputs-test-XXXXXX");
    if (!mkdtemp(base)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(path, sizeof path, "%s/spool-on", base);
    if (ws_spool_open(path, WS_IO_ON, 1ull << 30, &on, errbuf, sizeof errbuf))
        fprintf(stderr, "io_uring not available (%s): testing read() and auto only\n", errbuf);
    snprintf(path, sizeof path, "%s/spool-off", base);
    CHECK(ws_spool_open(path, WS_IO_OFF, 1ull << 30, &off, errbuf, sizeof errbuf) == WS_OK);

    /* --- sizes, 100 MiB, 1000 small files, errors ------------------------------------------ */
    snprintf(dir, sizeof dir, "%s/out", base);
    mkdir(dir, 0755);
    const size_t sizes[] = {0, 1, 4095, 4096, 4097, 131072, 131073, 1048576 + 3};
    for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        snprintf(path, sizeof path, "%s/size-%zu.bin", dir, sizes[i]);
        write_file(path, sizes[i], i + 1);
    }
    snprintf(path, sizeof path, "%s/big-100MiB.bin", dir);
    write_file(path, BIG, 99);
    snprintf(path, sizeof path, "%s/small", dir);
    mkdir(path, 0755);
    for (int i = 0; i < NSMALL; i++) {
        snprintf(path, sizeof path, "%s/small/f%04d.dat", dir, i);
        write_file(path, (size_t)(i * 37) % 5000, 1000 + (unsigned)i);
    }
    char prefix[600];
    snprintf(prefix, sizeof prefix, "%s/", dir);
    sha256sum(dir, "size-*.bin big-100MiB.bin", prefix);
    snprintf(prefix, sizeof prefix, "%s/small/", dir);
    snprintf(path, sizeof path, "%s/small", dir);
    sha256sum(path, "*", prefix);
    CHECK(nex == 9 + NSMALL);
    snprintf(path, sizeof path, "%s/missing.parquet", dir);
    expect_add(path)->error_has = "No such file";
    snprintf(path, sizeof path, "%s/adir", dir);
    mkdir(path, 0755);
    expect_add(path)->error_has = "is a directory";
    snprintf(path, sizeof path, "%s/fifo", dir);
    CHECK(mkfifo(path, 0644) == 0);
    expect_add(path)->error_has = "not a regular file";
    expect_add("s3://warehouse/ods/orders/data/x.parquet")->error_has =
        "not readable by windowseal: no credentials";
    expect_add("hdfs://nn:8020/x")->error_has = "not readable";
    expect_add("file://remote-host/data/x")->error_has = "remote host";
    snprintf(uri, sizeof uri, "file://%s/bad%%zz", dir);
    expect_add(uri)->error_has = "malformed";
    snprintf(uri, sizeof uri, "file://%s/nul%%00", dir);
    expect_add(uri)->error_has = "malformed";
    expect_add("")->error_has = "empty";
    /* URI forms of files whose digest is known: the name stays as given */
    snprintf(path, sizeof path, "%s/with space %%.txt", dir);
    write_file(path, 5000, 7);
    {
        size_t n0 = nex;
        snprintf(prefix, sizeof prefix, "%s/", dir);
        sha256sum(dir, "'with space %.txt'", prefix);
        CHECK(nex == n0 + 1);
        char hex[65];
        memcpy(hex, ex[nex - 1].hex, 65);
        int64_t bytes = ex[nex - 1].bytes;
        snprintf(uri, sizeof uri, "file://%s/with%%20space%%20%%25.txt", dir);
        e = expect_add(uri);
        memcpy(e->hex, hex, 65);
        e->bytes = bytes;
        snprintf(uri, sizeof uri, "file://localhost%s/with%%20space%%20%%25.txt", dir);
        e = expect_add(uri);
        memcpy(e->hex, hex, 65);
        e->bytes = bytes;
        snprintf(uri, sizeof uri, "file:%s/with space %%.txt", dir); /* Hadoop: not decoded */
        e = expect_add(uri);
        memcpy(e->hex, hex, 65);
        e->bytes = bytes;
    }
    run_all_modes(on, off, NULL, 0);
    snprintf(path, sizeof path, "%s/big-100MiB.bin", dir);
    CHECK(unlink(path) == 0);
    clear_expect();

    /* --- allowed_roots ----------------------------------------------------------------------- */
    char root[400], outside[400];
    snprintf(root, sizeof root, "%s/root", base);
    snprintf(outside, sizeof outside, "%s/outside", base);
    mkdir(root, 0755);
    mkdir(outside, 0755);
    snprintf(path, sizeof path, "%s/in.bin", root);
    write_file(path, 70000, 3);
    snprintf(path, sizeof path, "%s/secret.bin", outside);
    write_file(path, 100, 4);
    snprintf(path, sizeof path, "%s/inner-link", root);
    CHECK(symlink("in.bin", path) == 0);
    snprintf(path, sizeof path, "%s/escape", root);
    CHECK(symlink("../outside/secret.bin", path) == 0);
    snprintf(prefix, sizeof prefix, "%s/", root);
    sha256sum(root, "in.bin inner-link", prefix);
    CHECK(nex == 2);
    snprintf(path, sizeof path, "%s/escape", root);
    expect_add(path)->error_has = "outside outputs.allowed_roots";
    snprintf(path, sizeof path, "%s/secret.bin", outside);
    expect_add(path)->error_has = "outside outputs.allowed_roots";
    snprintf(path, sizeof path, "%s/../outside/secret.bin", root);
    expect_add(path)->error_has = "outside outputs.allowed_roots";
    snprintf(path, sizeof path, "%s/nope.bin", root);
    expect_add(path)->error_has = "No such file";
    {
        char root_slash[420];
        snprintf(root_slash, sizeof root_slash, "%s/", root); /* trailing slash: same root */
        const char *roots[] = {"/nonexistent-root-for-test", root_slash};
        run_all_modes(on, off, roots, 2);
    }
    /* a prefix of the root's name is not the root: <base>/root-evil is outside <base>/root */
    clear_expect();
    snprintf(path, sizeof path, "%s/root-evil", base);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/root-evil/x.bin", base);
    write_file(path, 10, 5);
    expect_add(path)->error_has = "outside outputs.allowed_roots";
    {
        const char *roots[] = {root};
        run_all_modes(on, off, roots, 1);
    }
    /* only nonexistent roots: nothing is readable */
    clear_expect();
    snprintf(path, sizeof path, "%s/in.bin", root);
    expect_add(path)->error_has = "outside outputs.allowed_roots";
    {
        const char *roots[] = {"/nonexistent-root-for-test"};
        run_all_modes(on, off, roots, 1);
    }
    /* no outputs at all */
    {
        struct ws_notification n = {0};
        struct ws_output_set set;
        CHECK(ws_outputs_hash(&n, NULL, 0, off, &set, errbuf, sizeof errbuf) == WS_OK);
        CHECK(set.noutputs == 0 && set.outputs == NULL);
        ws_outputs_free(&set);
    }
    clear_expect();
    free(ex);
    ws_spool_close(on);
    ws_spool_close(off);
    snprintf(path, sizeof path, "rm -rf '%s'", base);
    CHECK(system(path) == 0);
    printf("test_disk_outputs: %lu checks passed\n", checks - failures);
    if (failures) {
        printf("test_disk_outputs: %lu of %lu checks FAILED\n", failures, checks);
        return 1;
    }
    return 0;
}
