/*
 * util.c — clocks, CPU by thread, the exit on a setup failure, percentiles and verdicts for the
 * benches (benchlib.h).
 *
 * bench_die is for what a bench cannot measure without (a broker, a topic, a thread): it prints
 * "<bench_prog>: what: why" on stderr and exits 3 (bench_slowstore: 77 is a skip, 2 a usage
 * error). Percentiles are nearest-rank over the
 * samples as given (bench_pct sorts them in place), no interpolation: with few samples a p99 is
 * the largest, as it should be read. CPU by thread comes from /proc/self/task/TID/schedstat (time
 * on CPU in ns; /proc's stat counts 10 ms clock ticks, too coarse for a thread's share of a
 * 100 ms window).
 */
#include "benchlib.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

const char *bench_prog = "bench";

double bench_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

double bench_cpu_seconds(int who)
{
    struct rusage ru;

    getrusage(who, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

double bench_proc_cpu_seconds(pid_t pid)
{
    char path[64], buf[1024], *p;
    unsigned long ut, st;
    size_t n;
    FILE *f;

    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    if (!(f = fopen(path, "r")))
        return -1;
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* fields after the command name, which is in parentheses and may hold spaces */
    if (!(p = strrchr(buf, ')')) ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

double bench_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

void bench_sleep_ms(double ms)
{
    struct timespec ts = {(time_t)(ms / 1000),
                          (long)((ms - (double)(time_t)(ms / 1000) * 1000) * 1e6)};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

void bench_die(const char *what, const char *why)
{
    fprintf(stderr, "%s: %s: %s\n", bench_prog, what, why);
    exit(3);
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double bench_pct(double *v, int n, double p)
{
    if (n <= 0)
        return 0;
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    int i = (int)(p * (n - 1) + 0.5);
    return v[i];
}

const char *bench_verdict(bool met)
{
    return met ? "met" : "MISSED";
}

double bench_median(double *v, int n)
{
    return bench_pct(v, n, 0.5);
}

void bench_threads_snap(struct bench_threads *s)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *de;

    s->n = 0;
    while (d && (de = readdir(d)) && s->n < BENCH_THREADS_MAX) {
        char path[96], comm[16] = "";
        unsigned long long ns;
        FILE *f;
        int ok;

        if (!isdigit((unsigned char)de->d_name[0]))
            continue;
        snprintf(path, sizeof path, "/proc/self/task/%s/schedstat", de->d_name);
        if (!(f = fopen(path, "r")))
            continue; /* the thread ended meanwhile */
        ok = fscanf(f, "%llu", &ns) == 1;
        fclose(f);
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", de->d_name);
        if (ok && (f = fopen(path, "r"))) {
            if (fgets(comm, sizeof comm, f))
                comm[strcspn(comm, "\n")] = '\0';
            fclose(f);
        }
        if (!ok)
            continue;
        s->t[s->n].tid = atoi(de->d_name);
        snprintf(s->t[s->n].comm, sizeof s->t[s->n].comm, "%s", comm);
        s->t[s->n].ms = (double)ns / 1e6;
        s->n++;
    }
    if (d)
        closedir(d);
}

static double thread_ms(const struct bench_threads *s, int tid)
{
    for (int j = 0; j < s->n; j++)
        if (s->t[j].tid == tid)
            return s->t[j].ms;
    return 0; /* born since */
}

void bench_threads_add(struct bench_threads *acc, const struct bench_threads *a,
                       const struct bench_threads *b)
{
    for (int i = 0; i < b->n; i++) {
        int k;
        for (k = 0; k < acc->n && acc->t[k].tid != b->t[i].tid; k++)
            ;
        if (k == acc->n) {
            if (acc->n == BENCH_THREADS_MAX)
                continue;
            acc->t[k] = b->t[i];
            acc->t[k].ms = 0;
            acc->n++;
        }
        acc->t[k].ms += b->t[i].ms - thread_ms(a, b->t[i].tid);
    }
}

void bench_threads_print(const struct bench_threads *a, const struct bench_threads *b, double div)
{
    char name[BENCH_THREADS_MAX][16];
    double ms[BENCH_THREADS_MAX];
    int n = 0;

    for (int i = 0; i < b->n; i++) {
        double before = thread_ms(a, b->t[i].tid);
        char base[16];
        size_t len;
        int k;

        snprintf(base, sizeof base, "%s", b->t[i].comm);
        len = strlen(base);
        while (len > 0 && isdigit((unsigned char)base[len - 1]))
            len--;
        if (len < strlen(base) && len < sizeof base - 1)
            base[len++] = '*';
        base[len] = '\0';
        for (k = 0; k < n && strcmp(name[k], base) != 0; k++)
            ;
        if (k == n) {
            snprintf(name[n], sizeof name[n], "%s", base);
            ms[n++] = 0;
        }
        ms[k] += b->t[i].ms - before;
    }
    for (int printed = 0; printed < n; printed++) {
        int top = -1;
        for (int k = 0; k < n; k++)
            if (ms[k] >= 0 && (top < 0 || ms[k] > ms[top]))
                top = k;
        if (top < 0 || ms[top] / div < 0.05)
            break;
        printf(" %s %.1f", name[top], ms[top] / div);
        ms[top] = -1;
    }
}
