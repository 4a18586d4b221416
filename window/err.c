/*
 * err.c — the one error table. Generated from WS_ERRORS in window.h so that the enum, its names,
 * its texts and its retriable/permanent class can never drift apart.
 */
#include "window/window.h"

#include <stdarg.h>
#include <stdio.h>

static const struct {
    const char *name;
    const char *text;
    bool retriable;
} errtab[] = {
#define WS_X_TAB(name, retr, text) {#name, text, retr},
    WS_ERRORS(WS_X_TAB)
#undef WS_X_TAB
};

const char *ws_strerror(ws_err_t err)
{
    if ((unsigned)err >= WS_ERR__COUNT)
        return "unknown error";
    return errtab[err].text;
}

const char *ws_err_name(ws_err_t err)
{
    if ((unsigned)err >= WS_ERR__COUNT)
        return "WS_ERR_UNKNOWN";
    return errtab[err].name;
}

bool ws_err_retriable(ws_err_t err)
{
    return (unsigned)err < WS_ERR__COUNT && errtab[err].retriable;
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
