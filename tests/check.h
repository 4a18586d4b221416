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

static inline int check_report(const char *name)
{
    printf("%s: %lu checks, %lu failed\n", name, checks, failures);
    return failures ? 1 : 0;
}

#endif
