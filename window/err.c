/*
 * err.c — the one error table (and the one monotonic clock, which every layer needs and which
 * belongs to no layer). Generated from WS_ERRORS in window.h so that the enum, its names,
 * its texts and its retriable/permanent class can never drift apart. Indexed by the explicit
 * numbers of the table, so a code keeps its number whatever is appended after it.
 */
#include "window/window.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

static const struct {
    const char *name;
    const char *text;
    bool retriable;
} errtab[] = {
#define WS_X_TAB(name, num, retr, text) [num] = {#name, text, retr},
    WS_ERRORS(WS_X_TAB)
#undef WS_X_TAB
};
/* A number skipped or used twice would leave a hole or make the table longer than the count. */
_Static_assert(sizeof errtab / sizeof errtab[0] == WS_ERR__COUNT,
               "WS_ERRORS numbers must be 0..count-1, each once");

const char *ws_strerror(ws_err_t err)
{
    if ((unsigned)err >= WS_ERR__COUNT || !errtab[err].name)
        return "unknown error";
    return errtab[err].text;
}

const char *ws_err_name(ws_err_t err)
{
    if ((unsigned)err >= WS_ERR__COUNT || !errtab[err].name)
        return "WS_ERR_UNKNOWN";
    return errtab[err].name;
}

bool ws_err_retriable(ws_err_t err)
{
    return (unsigned)err < WS_ERR__COUNT && errtab[err].retriable;
}

int64_t ws_clock_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t ws_clock_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

ws_err_t ws_fail(ws_err_t err, char *errbuf, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (errbuf && errlen) {
        va_start(ap, fmt);
        vsnprintf(errbuf, errlen, fmt, ap);
        va_end(ap);
    }
    return err;
}
