/*
 * tests/notif_check.h — the notification tests' checks (test_window_notification.c,
 * test_window_batchrules.c): every rejection is checked for its ws_err_t, a reason substring,
 * a printable errbuf and a zeroed output; every acceptance for WS_OK.
 */
#ifndef WS_TESTS_NOTIF_CHECK_H
#define WS_TESTS_NOTIF_CHECK_H

#include "window/window.h"

#include <stdio.h>
#include <string.h>

static unsigned checks, failures;

#define CHECK_AT(line, e)                                                                          \
    do {                                                                                           \
        checks++;                                                                                  \
        if (!(e)) {                                                                                \
            failures++;                                                                            \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, (line), #e);                    \
        }                                                                                          \
    } while (0)
#define CHECK(e) CHECK_AT(__LINE__, e)

static bool printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
            return false;
    return true;
}

static bool all_zero(const struct ws_notification *n)
{
    static const struct ws_notification zero;
    return memcmp(n, &zero, sizeof zero) == 0;
}

static void expect_fail_at(int line, const char *json, size_t len, const struct ws_notif_opts *o,
                           ws_err_t want, const char *reason)
{
    struct ws_notification n;
    char eb[512];
    ws_err_t err;

    memset(&n, 0x5a, sizeof n); /* the parser must not rely on a zeroed output */
    memset(eb, 0x5a, sizeof eb);
    err = ws_notification_parse(json, len, o, &n, eb, sizeof eb);
    CHECK_AT(line, err == want);
    CHECK_AT(line, memchr(eb, '\0', sizeof eb) != NULL);
    CHECK_AT(line, eb[0] != '\0');
    CHECK_AT(line, printable(eb));
    CHECK_AT(line, reason == NULL || strstr(eb, reason) != NULL);
    if (err != want || (reason && !strstr(eb, reason)))
        fprintf(stderr, "  line %d: got %s \"%s\", wanted %s \"%s\"\n  input: %.*s\n", line,
                ws_err_name(err), eb, ws_err_name(want), reason ? reason : "",
                (int)(len < 300 ? len : 300), json);
    if (err == WS_OK)
        ws_notification_free(&n);
    else
        CHECK_AT(line, all_zero(&n));
}
#define EXPECT_FAIL(json, want, reason)                                                            \
    expect_fail_at(__LINE__, json, strlen(json), NULL, want, reason)
#define EXPECT_FAIL_OPTS(json, o, want, reason)                                                    \
    expect_fail_at(__LINE__, json, strlen(json), o, want, reason)

static bool parse_at(int line, const char *json, const struct ws_notif_opts *o,
                     struct ws_notification *n)
{
    char eb[512] = "";
    ws_err_t err = ws_notification_parse(json, strlen(json), o, n, eb, sizeof eb);

    CHECK_AT(line, err == WS_OK);
    if (err) {
        fprintf(stderr, "  line %d: %s: %s\n", line, ws_err_name(err), eb);
        return false;
    }
    return true;
}
#define PARSE(json, o, n) parse_at(__LINE__, json, o, n)

static bool src_is(const struct ws_notif_source *s, const char *topic, int32_t p, int64_t from,
                   int64_t until)
{
    return strcmp(s->topic, topic) == 0 && s->partition == p && s->from_offset == from &&
           s->until_offset == until;
}

#endif
