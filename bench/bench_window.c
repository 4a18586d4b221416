/*
 * bench_window.c — one window of 120 k records over 4 partitions: notification -> attestation,
 * against kcat reading the same ranges from the same broker in the same run (issue 15).
 *
 *   bench_window [--quick] [--kcat PATH]     5 windows (--quick: 3); kcat default /usr/bin/kcat
 *
 * One process: the embedded broker (librdkafka's mock cluster), the engine as `windowseal run`
 * has it (file sink, spool, attestations topic, chain head, commit; bench_engine), a producer.
 * Per window: 30 000 records of 100 B to each of 4 partitions (produced and flushed, untimed),
 * then the notification; the engine's time runs from just before the notification is produced
 * to the window attested (every sink, head, commit). Right after, the baseline: one kcat per
 * partition, all four started at once (`kcat -C -p P -o FROM -c COUNT -e -q`, output to
 * /dev/null), timed from the first spawn to the last exit — a plain consumer's floor for the same
 * bytes, with its own process start, connect and metadata lookup, which the engine pays once at
 * start instead. The first window is a warm-up: it pays the engine's consumer group join (~3 s
 * on the mock broker) and is not counted. The mock keeps at most 5 MiB per partition, so each
 * window is read right after it is produced, and the low watermark is checked after both reads.
 *
 * Ratio = kcat time / engine time (higher is better; the target is >= 0.8): medians of the
 * windows. Exit 77 if kcat is missing (bench/run leaves the row out), 3 on a setup failure.
 * Prints its own table, the engine's window_timing stages and the CPU each thread used in the
 * engine's windows (where the time goes), the work floor of any attester here (bench/lib/work.c:
 * a bare librdkafka consumer's read of the last window, three times, plus hashing and LZ4 of the
 * engine's own evidence of it), then a `TABLE<TAB>...` line for bench/run whose verdict gives
 * the best ratio that floor allows.
 */
#include "bench/lib/benchlib.h"
#include "disk/disk.h"

#include <errno.h>
#include <libgen.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define NPART 4
#define PER_PART 30000 /* 120 k records a window */
#define TOPIC "win"
#define TAG "win"
#define QUERY "win"

extern char **environ;

/* Seconds for NPART kcat processes, one per range, all started at once; dies if one fails. */
static double run_kcat(const char *kcat, const char *boot, const struct bench_range *rg)
{
    char part[NPART][16], from[NPART][24], count[NPART][24];
    posix_spawn_file_actions_t fa;
    pid_t pid[NPART];
    double t0;

    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    t0 = bench_now_ms();
    for (int i = 0; i < NPART; i++) {
        snprintf(part[i], sizeof part[i], "%d", rg[i].part);
        snprintf(from[i], sizeof from[i], "%lld", (long long)rg[i].from);
        snprintf(count[i], sizeof count[i], "%lld", (long long)(rg[i].until - rg[i].from));
        char *argv[] = {(char *)kcat, "-C",    "-b", (char *)boot, "-t", TOPIC, "-p", part[i],
                        "-o",         from[i], "-c", count[i],     "-e", "-q",  NULL};
        if (posix_spawn(&pid[i], kcat, &fa, NULL, argv, environ) != 0)
            bench_die(kcat, "cannot start");
    }
    for (int i = 0; i < NPART; i++) {
        int status;
        if (waitpid(pid[i], &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            bench_die("kcat", "failed (run it by hand with the same arguments to see why)");
    }
    posix_spawn_file_actions_destroy(&fa);
    return (bench_now_ms() - t0) / 1e3;
}

/* Every range still retained after both reads: else the figures are of a different window. */
static void check_retained(const char *boot, const struct bench_range *rg)
{
    struct ws_kafka_conf kc = {boot, NULL, NULL, 0};
    char errbuf[512];
    struct ws_kafka_reader *rd = ws_kafka_reader_new(&kc, errbuf, sizeof errbuf);

    if (!rd)
        bench_die("reader", errbuf);
    for (int i = 0; i < NPART; i++) {
        int64_t lo, hi;
        if (ws_kafka_reader_watermarks(rd, TOPIC, rg[i].part, &lo, &hi, 10000, errbuf,
                                       sizeof errbuf))
            bench_die("watermarks", errbuf);
        if (lo > rg[i].from)
            bench_die("broker", "dropped records of the window during the run");
    }
    ws_kafka_reader_destroy(rd);
}

/* The engine's own split of the timed windows (batches 2..nw+1), medians of each stage. */
static void print_stages(const struct bench_tap *tp, int nw)
{
    double v[8];

    printf("engine stages (window_timing, p50 ms):");
    for (int s = 0; s < BENCH_TAP_NSTAGES; s++) {
        int n = 0;
        for (int w = 0; w < nw; w++)
            if (tp->has_timing[w + 2] && tp->stage_ms[w + 2][s] >= 0)
                v[n++] = tp->stage_ms[w + 2][s];
        if (n)
            printf(" %s %.1f", bench_tap_stages[s], bench_median(v, n));
    }
    printf("\n");
}

int main(int argc, char **argv)
{
    const char *kcat = "/usr/bin/kcat";
    bool quick = false;
    char sinks[PATH_MAX + 64], json[1024];
    struct bench_range rg[NPART];
    struct ws_kafka_producer *data, *notif;
    struct ws_config *cfg;
    struct ws_engine *e;
    struct bench B;
    static struct bench_tap tap; /* ~200 KiB: not on the stack */
    /* CPU by thread over the engine's timed spans: before, after one, the sum (and a zero) */
    static struct bench_threads thw0, thw1, thsum, thnone;
    double te[8], tk[8], ce[8], ck[8], tp[8], cp[8], floor_ratio;
    struct bench_pipe *pipe;
    struct bench_pipe_result pr;
    char verdict[224];
    int nw;

    bench_prog = "bench_window";
    signal(SIGPIPE, SIG_IGN);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            quick = true;
        else if (strcmp(argv[i], "--kcat") == 0 && i + 1 < argc)
            kcat = argv[++i];
        else {
            fprintf(stderr, "usage: bench_window [--quick] [--kcat PATH]\n");
            return 2;
        }
    }
    if (access(kcat, X_OK) != 0) {
        fprintf(stderr, "bench_window: %s: %s (apt-get install kcat): no row\n", kcat,
                strerror(errno));
        return 77;
    }
    nw = quick ? 3 : 5;
    ws_log_setup("warn", "logfmt");
    bench_open(&B);
    bench_topic(&B, TOPIC, NPART);
    bench_topic(&B, TAG ".batches", 1);
    snprintf(sinks, sizeof sinks, "[{\"type\":\"file\",\"path\":\"%s/att\"}]", B.dir);
    e = bench_engine(&B, TAG, sinks, NULL, &cfg);
    data = bench_producer(B.boot, true);
    notif = bench_producer(B.boot, false);

    /* warm-up: the group join, the producers' topic lookups; not counted */
    bench_notification(json, sizeof json, QUERY, 0, TOPIC, rg, 0);
    bench_post(notif, TAG ".batches", QUERY, json);
    if (!bench_step_until(e, notif, 1, 60))
        bench_die("engine", "warm-up window not attested");

    printf("one window of %d records (100 B values) over %d partitions of the embedded broker: "
           "notification produced -> attested,\nagainst %d kcat processes (one per range, "
           "started at once) reading the same ranges right after. Median of %d windows.\n\n",
           NPART * PER_PART, NPART, NPART, nw);
    pipe = bench_pipe_new(B.boot);
    printf("%8s %10s %10s %8s %12s %8s\n", "window", "engine s", "kcat s", "ratio", "pipeline s",
           "ratio");
    bench_tap_start(&tap, "debug"); /* each window's window_timing line: where its time went */
    for (int w = 0; w < nw; w++) {
        for (int i = 0; i < NPART; i++) {
            rg[i] = (struct bench_range){i, (int64_t)w * PER_PART, (int64_t)(w + 1) * PER_PART};
            bench_produce_records(data, TOPIC, i, PER_PART);
        }
        bench_flush(data);
        bench_notification(json, sizeof json, QUERY, w + 1, TOPIC, rg, NPART);
        bench_threads_snap(&thw0);
        double t0 = bench_now_ms(), c0 = bench_cpu_seconds(RUSAGE_SELF);
        bench_post(notif, TAG ".batches", QUERY, json);
        if (!bench_step_until(e, notif, (uint64_t)w + 2, 120))
            bench_die("engine", "window not attested (see the log above)");
        te[w] = (bench_now_ms() - t0) / 1e3;
        bench_threads_snap(&thw1);
        bench_threads_add(&thsum, &thw0, &thw1);
        double c1 = bench_cpu_seconds(RUSAGE_SELF), k1 = bench_cpu_seconds(RUSAGE_CHILDREN);
        tk[w] = run_kcat(kcat, B.boot, rg);
        /* the engine's window: this process (broker included); kcat's: the kcat children and
         * this process meanwhile (the broker serving them) */
        ce[w] = c1 - c0;
        ck[w] = bench_cpu_seconds(RUSAGE_SELF) - c1 + bench_cpu_seconds(RUSAGE_CHILDREN) - k1;
        if (w == 0) /* its first read connects and looks the topic up: not counted */
            (void)bench_pipe_read(pipe, TOPIC, rg, NPART, &pr);
        tp[w] = bench_pipe_read(pipe, TOPIC, rg, NPART, &pr);
        cp[w] = pr.cpu_s;
        if (pr.records != (uint64_t)NPART * PER_PART)
            bench_die("minimal pipeline", "read a different number of records");
        check_retained(B.boot, rg);
        printf("%8d %10.3f %10.3f %7.2fx %12.3f %7.2fx\n", w + 1, te[w], tk[w], tk[w] / te[w],
               tp[w], tk[w] / tp[w]);
        fflush(stdout);
    }
    bench_tap_stop(&tap);
    double me = bench_median(te, nw), mk = bench_median(tk, nw), mp = bench_median(tp, nw);
    printf("%8s %10.3f %10.3f %7.2fx %12.3f %7.2fx\n", "median", me, mk, mk / me, mp, mk / mp);
    print_stages(&tap, nw);
    printf("CPU by thread in the engine's window (ms, mean; broker and producers included):");
    bench_threads_print(&thnone, &thsum, nw);
    printf("\n");
    {
        /* The floor: the engine's window needs its CPU seconds over every core at best. */
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        double cpe = bench_median(ce, nw), cpk = bench_median(ck, nw);
        double floor_s = cpe / (double)(ncpu > 0 ? ncpu : 1);
        printf("CPU (user+sys, medians): engine window %.0f ms of CPU in %.0f ms (%.2f cores "
               "busy; broker included), kcat %.0f ms in %.0f ms (%.2f cores; broker + %d kcat). "
               "With %ld cores the engine's window takes at least %.0f ms: ratio at most %.2f "
               "with this CPU cost\n",
               cpe * 1e3, me * 1e3, cpe / me, cpk * 1e3, mk * 1e3, cpk / mk, NPART, ncpu,
               floor_s * 1e3, mk / floor_s);
    }
    {
        /* The floor of any attester here: a bare consumer's read of the last window (batch
         * nw, ranges rg; median of 3) plus hashing and LZ4 measured on the engine's own
         * evidence of it. */
        char ev[PATH_MAX], name[256], self[PATH_MAX];
        double bw[3], bcpu[3];
        struct bench_work wk;
        long ncpu;
        uint64_t got;

        snprintf(self, sizeof self, "%s", argv[0]);
        for (int r = 0; r < 3; r++) {
            bw[r] = bench_bare_read(dirname(self), B.boot, TOPIC, rg, NPART, &got, &bcpu[r]);
            snprintf(self, sizeof self, "%s", argv[0]); /* dirname may have written into it */
            if (got != (uint64_t)NPART * PER_PART)
                bench_die("bare consumer", "read a different number of records");
        }
        double rw = bench_median(bw, 3), rc = bench_median(bcpu, 3);
        ws_object_name(QUERY, nw, ".evidence.lz4", name);
        snprintf(ev, sizeof ev, "%s/att/%s", B.dir, name);
        bench_work_measure(ev, TOPIC, rg, NPART, 3, &wk);
        bench_work_print(&wk, rc, rw, "a bare librdkafka consumer", mk, 0.8);
        floor_ratio = mk / bench_work_floor(&wk, rc, rw, &ncpu);
        /* the last window's pipeline read hashed what the engine attested */
        if (memcmp(pr.stream_digest, wk.stream_digest, sizeof pr.stream_digest) != 0)
            bench_die("minimal pipeline", "its stream digest differs from the engine's evidence");
        printf(
            "minimal pipeline (bench/lib/pipeline.c: two bare consumers, every range at once and "
            "prefetch up to 1 M records a partition, feeding a hashing and an LZ4 thread; no "
            "notification, "
            "watermarks, spool, signing, sinks or commit): %.0f ms, %.0f ms of CPU (%.2f cores "
            "busy), ratio %.2f; the engine's window takes %.2fx its time\n",
            mp * 1e3, bench_median(cp, nw) * 1e3, bench_median(cp, nw) / mp, mk / mp, me / mp);
        snprintf(verdict, sizeof verdict,
                 "%s (at most %.2f here: work floor on %ld cores; minimal pipeline %.2f)",
                 bench_verdict(mk / me >= 0.8), floor_ratio, ncpu, mk / mp);
    }
    printf("TABLE\tone %d k-record window over %d partitions, notification -> attestation\t"
           "%.3f s\tkcat reading the same ranges %.3f s\t%.2f\t>= 0.8\t%s\n",
           NPART * PER_PART / 1000, NPART, me, mk, mk / me, verdict);
    bench_pipe_destroy(pipe);
    ws_kafka_producer_destroy(notif);
    ws_kafka_producer_destroy(data);
    ws_engine_destroy(e);
    ws_config_free(cfg);
    bench_close(&B);
    return 0;
}
