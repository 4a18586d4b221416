/*
 * tests/check.h — the one assertion macro of the C test programs: count every check, report
 * every failure with file:line and the expression, keep going, and exit non-zero at the end.
 * A program ends with `return check_report("test_name");`.
 */
#ifndef WS_TESTS_CHECK_H
#define WS_TESTS_CHECK_H

#include <stdio.h>

static unsigned long checks, failures;

#define CHECK(e)                                                                                   \
    do {                                                                                           \
        checks++;                                                                                  \
        if (!(e)) {                                                                                \
            failures++;                                                                            \
            if (failures <= 50)                                                                    \
                fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #e);              \
        }                                                                                          \
    } while (0)

/* A call that must return WS_OK; the including file provides `errbuf` with the reason. */
#define CHECK_OK(e)                                                                                \
    do {                                                                                           \
        ws_err_t err_ = (e);                                                                       \
        checks++;                                                                                  \
        if (err_ != WS_OK) {                                                                       \
            failures++;                                                                            \
            fprintf(stderr, "%s:%d: %s -> %s (%s)\n", __FILE__, __LINE__, #e, ws_err_name(err_),   \
                    errbuf);                                                                       \
        }                                                                                          \
    } while (0)

static inline int check_report(const char *name)
{
    printf("%s: %lu checks, %lu failed\n", name, checks, failures);
    return failures ? 1 : 0;
}

#endif
