/*
 * tap.c — a tap on stderr (benchlib.h): when the engine's log lines (ws_log, logfmt) arrive,
 * without a hook in the engine.
 *
 * bench_tap_start points fd 2 at a pipe and raises ws_log to `level`; a thread reads the pipe
 * and notes, with the monotonic clock, the first and the latest line of each event (rebalance:
 * the group join, or a revoke and then the assignment after it; received: a notification
 * polled, a debug line; window_attested), and, with the wall clock
 * (comparable with Kafka's CreateTime), when each batch id was first received, and each batch's
 * window_timing line (where the engine's time went, stage by stage). Lines other than
 * debug and info go on to the real stderr, so a warning or an error still shows. bench_tap_stop
 * puts ws_log back to warn and fd 2 back, which closes the pipe's last write end: the thread
 * reads EOF and is joined, after which the bench reads what it noted. One tap at a time.
 */
#include "benchlib.h"
#include "disk/disk.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* by enum BENCH_TAP_* */
static const char *const tap_events[BENCH_TAP_NEV] = {"rebalance", "received", "window_attested"};

const char *const bench_tap_stages[BENCH_TAP_NSTAGES] = {
    "wait",     "read",  "evidence", "seal",      "envelope", "to_engine",
    "to_store", "store", "to_topic", "topic_ack", "head_ack"};

/* "... event=window_timing detail... query=q batch=b ms: wait=0.05 read=1.20 ... total=..." */
static void note_timing(struct bench_tap *tp, const char *line)
{
    const char *b = strstr(line, " batch=");
    long long batch = b ? strtoll(b + 7, NULL, 10) : -1;

    if (batch < 0 || batch >= BENCH_TAP_BATCHES || tp->has_timing[batch])
        return;
    for (int s = 0; s < BENCH_TAP_NSTAGES; s++) {
        char pat[32];
        const char *v;
        snprintf(pat, sizeof pat, " %s=", bench_tap_stages[s]);
        v = strstr(line, pat);
        tp->stage_ms[batch][s] = v ? strtof(v + strlen(pat), NULL) : -1.0f;
    }
    tp->has_timing[batch] = true;
}

static void *tap_main(void *arg)
{
    struct bench_tap *tp = arg;
    char buf[16384];
    size_t len = 0;
    ssize_t n;

    while ((n = read(tp->rfd, buf + len, sizeof buf - 1 - len)) > 0) {
        double t = bench_now_ms(), wall = bench_wall_ms();
        char *line = buf, *nl;
        len += (size_t)n;
        buf[len] = '\0';
        while ((nl = strchr(line, '\n'))) {
            *nl = '\0';
            for (int k = 0; k < BENCH_TAP_NEV; k++) {
                char pat[64];
                snprintf(pat, sizeof pat, " event=%s ", tap_events[k]);
                if (strstr(line, pat)) {
                    if (!tp->t[k])
                        tp->t[k] = t;
                    tp->last[k] = t;
                }
            }
            if (strstr(line, " event=received ")) {
                char *b = strstr(line, " batch=");
                long long batch = b ? strtoll(b + 7, NULL, 10) : -1;
                if (batch >= 0 && batch < BENCH_TAP_BATCHES && !tp->received_wall[batch])
                    tp->received_wall[batch] = wall;
            }
            if (strstr(line, " event=window_timing "))
                note_timing(tp, line);
            if (!strstr(line, "level=debug") && !strstr(line, "level=info")) {
                *nl = '\n';
                if (write(tp->saved, line, (size_t)(nl - line + 1)) < 0)
                    break;
            }
            line = nl + 1;
        }
        len -= (size_t)(line - buf);
        memmove(buf, line, len);
        if (len == sizeof buf - 1)
            len = 0; /* an overlong line: dropped */
    }
    return NULL;
}

void bench_tap_start(struct bench_tap *tp, const char *level)
{
    int p[2];

    memset(tp, 0, sizeof *tp);
    fflush(stderr);
    if ((tp->saved = dup(2)) < 0 || pipe(p) || dup2(p[1], 2) < 0)
        bench_die("stderr tap", strerror(errno));
    close(p[1]);
    tp->rfd = p[0];
    ws_log_setup(level, "logfmt");
    if (pthread_create(&tp->th, NULL, tap_main, tp))
        bench_die("stderr tap", "pthread_create");
}

void bench_tap_stop(struct bench_tap *tp)
{
    ws_log_setup("warn", "logfmt");
    fflush(stderr);
    dup2(tp->saved, 2); /* closes the pipe's last write end: the tap reads EOF */
    pthread_join(tp->th, NULL);
    close(tp->saved);
    close(tp->rfd);
}
