/*
 * test_sinks_file.c — the file sink: FORMAT.md §7 layout, write-once (identical bytes: success and
 * nothing rewritten; other bytes anywhere in the object, or another size: WS_ERR_EXISTS_DIFFERENT
 * and nothing touched), the mutable checkpoint, get, and the cause of failures (a spool file
 * that is gone: WS_ERR_IO, retriable; a directory where an object should be: WS_ERR_INVALID).
 *
 * Both write paths run the same checks: io_uring (ctx.io_uring) and plain syscalls, with
 * `link` off (copies). With `link` on (the default): the objects are the spool's files (same
 * inode) when spool and sink share a filesystem, the envelope only when the spool's envelope
 * file holds the artifact's bytes, write-once still compared before anything is linked; a
 * spool on another filesystem (/dev/shm, when it is one) falls back to copies. The checkpoint
 * that rides along with a window (ws_artifact.checkpoint), on both paths, linked and copied:
 * written with the window, replaced by a retry's, untouched when the window is refused.
 *
 * Memory: the evidence is streamed, never held whole. A 64 MiB evidence file is published, then
 * published again (the compare path), and the process's peak RSS (getrusage ru_maxrss) must grow
 * by less than 16 MiB each time; the test itself writes and checks the file in 1 MiB pieces.
 */
#include "sinks/sink.h"

#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"

#define QID "q-file-1"
#define MIB (1024 * 1024)
#define EVIDENCE_MIB 64

static char dir[] = "/tmp/ws_sinks_file_XXXXXX";
static char spool[600], root[600], evobj[700], envobj[700];
static const char envelope[] = "{\"payloadType\":\"application/vnd.in-toto+json\"}";
static char errbuf[1024];

static long peak_rss_kib(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* Deterministic bytes of piece i (1 MiB), so the file can be rebuilt piece by piece. */
static void piece(unsigned i, unsigned char *buf)
{
    unsigned x = 2463534242u ^ (i * 2654435761u);

    for (size_t k = 0; k < MIB; k++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        buf[k] = (unsigned char)x;
    }
}

static bool write_evidence(const char *path, unsigned mib, size_t extra)
{
    unsigned char *buf = malloc(MIB);
    FILE *f = fopen(path, "wb");
    bool ok = buf && f;

    for (unsigned i = 0; ok && i < mib; i++) {
        piece(i, buf);
        ok = fwrite(buf, 1, MIB, f) == MIB;
    }
    if (ok && extra)
        ok = fwrite("tail", 1, extra, f) == extra;
    if (f)
        ok = fclose(f) == 0 && ok;
    free(buf);
    return ok;
}

static bool same_file(const char *a, const char *b)
{
    unsigned char *x = malloc(MIB), *y = malloc(MIB);
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    bool same = x && y && fa && fb;
    size_t n, m;

    while (same) {
        n = fread(x, 1, MIB, fa);
        m = fread(y, 1, MIB, fb);
        same = n == m && memcmp(x, y, n) == 0;
        if (n < MIB)
            break;
    }
    if (fa)
        fclose(fa);
    if (fb)
        fclose(fb);
    free(x);
    free(y);
    return same;
}

static struct ws_sink *make_sink(bool uring, bool link)
{
    char set[800];
    const char *sets[] = {set};
    struct ws_config *c = NULL;
    struct ws_sink_ctx ctx = {.io_uring = uring};
    struct ws_sink *s = NULL;

    snprintf(set, sizeof set,
             "sinks=[{\"type\":\"file\",\"path\":\"%s\",\"prefix\":\"p/\",\"link\":%s}]", root,
             link ? "true" : "false");
    CHECK_OK(ws_config_load(NULL, sets, 1, ws_sink_types(), &c, errbuf, sizeof errbuf));
    if (c)
        CHECK_OK(ws_sink_create(&c->sinks[0], &ctx, &s, errbuf, sizeof errbuf));
    ws_config_free(c);
    return s;
}

/* Window 3 of QID: the test envelope, this evidence, this spooled envelope (or NULL). */
static struct ws_artifact window3(const char *evidence_path, const char *env_path)
{
    return (struct ws_artifact){.query_id = QID,
                                .batch_id = 3,
                                .window_id = QID "/3",
                                .envelope = envelope,
                                .envelope_len = strlen(envelope),
                                .evidence_path = evidence_path,
                                .envelope_path = env_path};
}

static ws_err_t publish_env(struct ws_sink *s, const char *evidence_path, const char *env_path)
{
    struct ws_artifact a = window3(evidence_path, env_path);

    return ws_sink_publish(s, &a, errbuf, sizeof errbuf);
}

static ws_err_t publish(struct ws_sink *s, const char *evidence_path)
{
    return publish_env(s, evidence_path, NULL);
}

static bool write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    bool ok = f && fputs(text, f) >= 0;

    return (f && fclose(f) == 0) && ok;
}

static bool same_inode(const char *a, const char *b)
{
    struct stat x, y;

    return stat(a, &x) == 0 && stat(b, &y) == 0 && x.st_dev == y.st_dev && x.st_ino == y.st_ino;
}

/* link on: the spool's files become the objects; copies where they cannot. */
static void test_link(void)
{
    struct ws_sink *s = make_sink(true, true);
    char spool_env[700], other_env[700], shm_dir[] = "/dev/shm/ws_sinks_file_XXXXXX";
    char shm_ev[700], cmd[800];
    struct stat st, sd;

    if (!s)
        return;
    snprintf(spool_env, sizeof spool_env, "%s/spool.dsse.json", dir);
    snprintf(other_env, sizeof other_env, "%s/other.dsse.json", dir);
    CHECK(write_evidence(spool, 3, 3));
    CHECK(write_text(spool_env, envelope) && write_text(other_env, "{\"adopted\":1}"));

    /* same filesystem: both objects are the spool's files, nothing copied */
    CHECK_OK(publish_env(s, spool, spool_env));
    CHECK(same_inode(spool, evobj) && same_inode(spool_env, envobj));
    CHECK(stat(evobj, &st) == 0 && st.st_nlink == 2);
    /* again: identical, success, still the same files */
    CHECK_OK(publish_env(s, spool, spool_env));
    CHECK(same_inode(spool, evobj) && same_inode(spool_env, envobj));
    /* the spool removes its names: the objects stay, whole */
    CHECK(unlink(spool_env) == 0);
    CHECK(stat(envobj, &st) == 0 && st.st_nlink == 1 && st.st_size == (off_t)strlen(envelope));

    /* a spooled envelope with other bytes than the artifact's (adopted): the envelope is
     * written from the artifact, the evidence still linked */
    CHECK(unlink(evobj) == 0 && unlink(envobj) == 0);
    CHECK_OK(publish_env(s, spool, other_env));
    CHECK(same_inode(spool, evobj) && !same_inode(other_env, envobj));
    CHECK(stat(envobj, &st) == 0 && st.st_size == (off_t)strlen(envelope));
    /* no envelope file named: written from memory */
    CHECK(unlink(envobj) == 0);
    CHECK_OK(publish(s, spool));
    CHECK(stat(envobj, &st) == 0 && st.st_size == (off_t)strlen(envelope));

    /* write once before any link: another evidence there is refused, not replaced */
    CHECK(unlink(evobj) == 0 && unlink(envobj) == 0);
    CHECK(write_text(evobj, "someone else's evidence"));
    CHECK(publish_env(s, spool, other_env) == WS_ERR_EXISTS_DIFFERENT);
    CHECK(!same_inode(spool, evobj) && stat(envobj, &st) != 0);
    CHECK(unlink(evobj) == 0);

    /* a spool on another filesystem: copies, same bytes */
    if (stat(dir, &sd) == 0 && mkdtemp(shm_dir) && stat(shm_dir, &st) == 0 &&
        st.st_dev != sd.st_dev) {
        snprintf(shm_ev, sizeof shm_ev, "%s/spool.evidence.lz4", shm_dir);
        CHECK(write_evidence(shm_ev, 2, 2));
        CHECK_OK(publish(s, shm_ev));
        CHECK(!same_inode(shm_ev, evobj) && same_file(shm_ev, evobj));
        CHECK(stat(evobj, &st) == 0 && st.st_nlink == 1);
        printf("link: a spool on another filesystem (%s) was copied\n", shm_dir);
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", shm_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "cleanup failed\n");
    } else {
        printf("link: no second filesystem at /dev/shm, the cross-filesystem copy is not run\n");
        if (shm_dir[strlen(shm_dir) - 1] != 'X')
            rmdir(shm_dir);
    }
    unlink(other_env);
    ws_sink_destroy(s);
}

/* Does path hold exactly text? */
static bool holds(const char *path, const char *text)
{
    char buf[256];
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;

    if (f)
        fclose(f);
    return f && n == strlen(text) && memcmp(buf, text, n) == 0;
}

/*
 * The checkpoint riding along with the window (ws_artifact.checkpoint): written with the
 * window's objects (linked or copied), replaced by the next one, and left alone when the
 * window is refused.
 */
static void test_checkpoint(bool uring, bool link)
{
    struct ws_sink *s = make_sink(uring, link);
    char spool_env[700], ckobj[700], cmd[800];
    struct ws_artifact a;

    if (!s)
        return;
    snprintf(cmd, sizeof cmd, "rm -rf '%s/p'", root); /* what earlier checks left there */
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup failed\n");
    CHECK(ws_sink_takes_checkpoint(s) && ws_sink_can_put(s));
    snprintf(spool_env, sizeof spool_env, "%s/spool.dsse.json", dir);
    snprintf(ckobj, sizeof ckobj, "%s/p/%s/checkpoint", root, QID);
    a = window3(spool, spool_env);
    a.checkpoint_name = QID "/checkpoint";
    a.checkpoint = "ckpt one\n";
    a.checkpoint_len = 9;
    CHECK(write_evidence(spool, 1, 1) && write_text(spool_env, envelope));
    CHECK_OK(ws_sink_publish(s, &a, errbuf, sizeof errbuf));
    CHECK(same_file(spool, evobj) && holds(envobj, envelope) && holds(ckobj, "ckpt one\n"));
    CHECK(same_inode(spool, evobj) == link);
    /* the window again (a retry): identical objects, the checkpoint replaced */
    a.checkpoint = "ckpt two!\n";
    a.checkpoint_len = 10;
    CHECK_OK(ws_sink_publish(s, &a, errbuf, sizeof errbuf));
    CHECK(holds(ckobj, "ckpt two!\n"));
    /* another envelope there: refused, and the checkpoint is not moved */
    CHECK(unlink(envobj) == 0 && write_text(envobj, "{\"other\":1}"));
    a.checkpoint = "ckpt three\n";
    a.checkpoint_len = 11;
    CHECK(ws_sink_publish(s, &a, errbuf, sizeof errbuf) == WS_ERR_EXISTS_DIFFERENT);
    CHECK(holds(ckobj, "ckpt two!\n"));
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", root, spool_env);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup failed\n");
    ws_sink_destroy(s);
}

static void flip_byte(const char *path, off_t off)
{
    int fd = open(path, O_RDWR);
    unsigned char c = 0;

    CHECK(fd >= 0 && pread(fd, &c, 1, off) == 1);
    c ^= 0x5a;
    CHECK(pwrite(fd, &c, 1, off) == 1);
    close(fd);
}

static void test_stream_and_write_once(struct ws_sink *s)
{
    struct stat st1, st2;
    long before, grew;

    CHECK(!strncmp(ws_sink_label(s), "file:", 5) && ws_sink_can_get(s) && ws_sink_can_put(s));
    CHECK(write_evidence(spool, EVIDENCE_MIB, 0));

    before = peak_rss_kib();
    CHECK_OK(publish(s, spool));
    grew = peak_rss_kib() - before;
    printf("publish of %d MiB evidence: peak RSS grew %ld KiB\n", EVIDENCE_MIB, grew);
    CHECK(grew < 16 * 1024);
    CHECK(same_file(spool, evobj));
    CHECK(stat(envobj, &st1) == 0 && st1.st_size == (off_t)strlen(envelope));

    /* Identical bytes: success, nothing rewritten; the compare streams too. */
    CHECK(stat(evobj, &st1) == 0);
    before = peak_rss_kib();
    CHECK_OK(publish(s, spool));
    grew = peak_rss_kib() - before;
    printf("republish (compare): peak RSS grew %ld KiB\n", grew);
    CHECK(grew < 16 * 1024);
    CHECK(stat(evobj, &st2) == 0 && st1.st_ino == st2.st_ino &&
          st1.st_mtim.tv_nsec == st2.st_mtim.tv_nsec && st1.st_mtim.tv_sec == st2.st_mtim.tv_sec);

    /* One byte different deep inside the stored evidence. */
    flip_byte(evobj, 40 * MIB + 123);
    CHECK(publish(s, spool) == WS_ERR_EXISTS_DIFFERENT);
    CHECK(strstr(errbuf, "exists with different content") && strstr(errbuf, ".evidence.lz4"));
    flip_byte(evobj, 40 * MIB + 123);
    CHECK_OK(publish(s, spool));

    /* Another size: different, and the stored object is left as it is. */
    CHECK(truncate(evobj, 10 * MIB) == 0);
    CHECK(publish(s, spool) == WS_ERR_EXISTS_DIFFERENT);
    CHECK(stat(evobj, &st2) == 0 && st2.st_size == 10 * MIB);
    CHECK(unlink(evobj) == 0);

    /* Only the envelope differs (e.g. signed by a previous key): different, evidence written. */
    FILE *f = fopen(envobj, "w");
    fputs("{}", f);
    fclose(f);
    CHECK(publish(s, spool) == WS_ERR_EXISTS_DIFFERENT);
    CHECK(strstr(errbuf, ".dsse.json") != NULL);
    CHECK(same_file(spool, evobj));
    CHECK(unlink(envobj) == 0);
    CHECK_OK(publish(s, spool));
}

static void test_objects_and_causes(struct ws_sink *s)
{
    char name[128], *buf = NULL, other[700];
    size_t len = 0;
    ws_err_t err;

    /* the checkpoint is replaced, and read back */
    CHECK_OK(ws_sink_put(s, QID "/checkpoint", "one\n", 4, errbuf, sizeof errbuf));
    CHECK_OK(ws_sink_put(s, QID "/checkpoint", "second\n", 7, errbuf, sizeof errbuf));
    CHECK_OK(ws_sink_get(s, QID "/checkpoint", &buf, &len, errbuf, sizeof errbuf));
    CHECK(buf && len == 7 && !memcmp(buf, "second\n", 7));
    free(buf);
    buf = NULL;
    snprintf(name, sizeof name, "%s/00000000000000000003.dsse.json", QID);
    CHECK_OK(ws_sink_get(s, name, &buf, &len, errbuf, sizeof errbuf));
    CHECK(buf && len == strlen(envelope));
    free(buf);
    CHECK(ws_sink_get(s, QID "/00000000000000000009.dsse.json", &buf, &len, errbuf,
                      sizeof errbuf) == WS_ERR_NOT_FOUND);

    /* the spool file is gone: I/O, retriable */
    snprintf(other, sizeof other, "%s/gone.evidence.lz4", dir);
    err = publish(s, other);
    CHECK(err == WS_ERR_IO && ws_err_retriable(err));
    CHECK(strstr(errbuf, "gone.evidence.lz4") != NULL);

    /* a directory where the evidence object should be: permanent */
    CHECK(unlink(evobj) == 0 && mkdir(evobj, 0755) == 0);
    err = publish(s, spool);
    CHECK(err == WS_ERR_INVALID && !ws_err_retriable(err));
    rmdir(evobj);
}

int main(void)
{
    struct ws_sink *s;
    char cmd[700];

    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(spool, sizeof spool, "%s/spool.evidence.lz4", dir);
    snprintf(root, sizeof root, "%s/att", dir);
    snprintf(evobj, sizeof evobj, "%s/p/%s/00000000000000000003.evidence.lz4", root, QID);
    snprintf(envobj, sizeof envobj, "%s/p/%s/00000000000000000003.dsse.json", root, QID);
    /* both write paths, the same checks and the same bytes: io_uring, then plain syscalls */
    {
        struct io_uring ring; /* what the sink's create asks the kernel too */
        bool ok = io_uring_queue_init(16, &ring, 0) == 0;
        if (ok)
            io_uring_queue_exit(&ring);
        printf("io_uring %s\n", ok ? "allowed: both paths run"
                                   : "refused by the kernel: the syscall path runs twice");
    }
    for (int uring = 1; uring >= 0; uring--) {
        printf("write path: %s\n", uring ? "io_uring" : "syscalls");
        if ((s = make_sink(uring, false))) {
            test_stream_and_write_once(s);
            test_objects_and_causes(s);
            ws_sink_destroy(s);
        }
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
        if (system(cmd) != 0)
            fprintf(stderr, "cleanup failed\n");
    }
    printf("link on\n");
    test_link();
    for (int uring = 1; uring >= 0; uring--)
        for (int link = 1; link >= 0; link--)
            test_checkpoint(uring, link);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup failed\n");
    return check_report("test_sinks_file");
}
