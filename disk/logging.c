/*
 * logging.c — one line per event on stderr: logfmt (default) or JSON lines.
 *
 * Callers pass the event name and a preformatted "key=value ..." tail; in JSON mode the tail is
 * carried whole as "detail" rather than re-parsed, which keeps this tiny and allocation-free.
 * Values that come from outside (query ids, reasons) are escaped by ws_log itself only in JSON
 * mode; in logfmt mode callers quote them with %s inside "..." after ws_log_quote-free text
 * (query ids are already restricted to [A-Za-z0-9._-]).
 */
#include "disk/disk.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static enum ws_log_level min_level = WS_LOG_INFO;
static bool json_mode;

static const char *const names[] = {"debug", "info", "warn", "error"};

void ws_log_setup(const char *level, const char *format)
{
    for (int i = 0; level && i < 4; i++)
        if (!strcmp(level, names[i]))
            min_level = (enum ws_log_level)i;
    json_mode = format && !strcmp(format, "json");
}

static void json_escape(FILE *f, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
}

bool ws_log_enabled(enum ws_log_level lvl)
{
    return lvl >= min_level;
}

void ws_log(enum ws_log_level lvl, const char *event, const char *fmt, ...)
{
    char detail[2048], ts[32];
    struct timespec now;
    va_list ap;

    if (lvl < min_level)
        return;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    clock_gettime(CLOCK_REALTIME, &now);
    ws_format_time_ms((int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000, ts);
    flockfile(stderr);
    if (json_mode) {
        fprintf(stderr, "{\"ts\":\"%s\",\"level\":\"%s\",\"event\":\"%s\",\"detail\":\"", ts,
                names[lvl], event);
        json_escape(stderr, detail);
        fputs("\"}\n", stderr);
    } else {
        fprintf(stderr, "ts=%s level=%s event=%s %s\n", ts, names[lvl], event, detail);
    }
    funlockfile(stderr);
}
