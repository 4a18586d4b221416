/*
 * testhook.c — the crash-injection hook behind WS_TEST_HOOK (disk/testhook.h); compiled only
 * with -DWS_TEST_HOOKS=ON.
 *
 * WS_CRASH_AT="point:N" (N >= 1, default 1): the N-th call of ws_test_hook("point") writes one
 * line to stderr (so the test knows where the process died) and raises SIGKILL: no handler,
 * no atexit, no flush, no destructor runs — the same as `kill -9` at exactly that moment.
 * Anything else in WS_CRASH_AT (or no variable) disables the hook.
 *
 * Thread: any (points are on the engine thread and on its build and store workers); the hit
 * counter is under a mutex, so "the N-th pass" counts every thread's passes.
 */
#include "disk/testhook.h"

#ifdef WS_TEST_HOOKS
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void ws_test_hook(const char *point)
{
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    static int state; /* 0: not read yet, 1: armed, 2: disarmed */
    static char want[64];
    static unsigned long target, hits;
    unsigned long hit;
    bool fire;

    pthread_mutex_lock(&mu);
    if (state == 0) {
        const char *v = getenv("WS_CRASH_AT");
        const char *colon = v ? strchr(v, ':') : NULL;
        size_t n = colon ? (size_t)(colon - v) : v ? strlen(v) : 0;
        char *end = NULL;

        state = 2;
        if (v && n > 0 && n < sizeof want) {
            memcpy(want, v, n);
            want[n] = '\0';
            target = colon ? strtoul(colon + 1, &end, 10) : 1;
            if (target >= 1 && (!colon || (end && *end == '\0')))
                state = 1;
        }
    }
    fire = state == 1 && strcmp(point, want) == 0 && ++hits >= target;
    hit = hits;
    pthread_mutex_unlock(&mu);
    if (!fire)
        return;
    {
        char line[160];
        int len =
            snprintf(line, sizeof line, "ws_test_hook: SIGKILL at %s (hit %lu)\n", point, hit);
        if (len > 0)
            (void)!write(STDERR_FILENO, line,
                         (size_t)len < sizeof line ? (size_t)len : sizeof line - 1);
    }
    raise(SIGKILL);
}
#endif
