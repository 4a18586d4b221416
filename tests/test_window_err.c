/*
 * test_window_err.c — the error codes are an interface (dead-letter headers, logs, metrics and
 * scripts name them): every code keeps its number, name and class forever. This table is the
 * golden copy: a renumbered, renamed or reclassified code fails here; a new code must be added
 * here with the next number.
 */
#include "window/window.h"
#include "check.h"

#include <string.h>

int main(void)
{
    static const struct {
        ws_err_t code;
        int number;
        const char *name;
        bool retriable;
    } golden[] = {
        {WS_OK, 0, "WS_OK", false},
        {WS_ERR_NOMEM, 1, "WS_ERR_NOMEM", true},
        {WS_ERR_INVALID, 2, "WS_ERR_INVALID", false},
        {WS_ERR_MALFORMED, 3, "WS_ERR_MALFORMED", false},
        {WS_ERR_TRUNCATED, 4, "WS_ERR_TRUNCATED", false},
        {WS_ERR_TOO_LARGE, 5, "WS_ERR_TOO_LARGE", false},
        {WS_ERR_IO, 6, "WS_ERR_IO", true},
        {WS_ERR_NOSPACE, 7, "WS_ERR_NOSPACE", true},
        {WS_ERR_NOT_FOUND, 8, "WS_ERR_NOT_FOUND", false},
        {WS_ERR_EXISTS_DIFFERENT, 9, "WS_ERR_EXISTS_DIFFERENT", false},
        {WS_ERR_SIGNATURE, 10, "WS_ERR_SIGNATURE", false},
        {WS_ERR_VERIFY, 11, "WS_ERR_VERIFY", false},
        {WS_ERR_KEY, 12, "WS_ERR_KEY", false},
        {WS_ERR_CONFIG, 13, "WS_ERR_CONFIG", false},
        {WS_ERR_KAFKA, 14, "WS_ERR_KAFKA", true},
        {WS_ERR_KAFKA_FATAL, 15, "WS_ERR_KAFKA_FATAL", false},
        {WS_ERR_TIMEOUT, 16, "WS_ERR_TIMEOUT", true},
        {WS_ERR_NOT_RETAINED, 17, "WS_ERR_NOT_RETAINED", false},
        {WS_ERR_UNKNOWN_TOPIC, 18, "WS_ERR_UNKNOWN_TOPIC", false},
        {WS_ERR_CONFLICT, 19, "WS_ERR_CONFLICT", false},
        {WS_ERR_UNSAFE_ID, 20, "WS_ERR_UNSAFE_ID", false},
        {WS_ERR_CRYPTO, 21, "WS_ERR_CRYPTO", false},
        {WS_ERR_SINK_RETRY, 22, "WS_ERR_SINK_RETRY", true},
        {WS_ERR_SINK_PERMANENT, 23, "WS_ERR_SINK_PERMANENT", false},
        {WS_ERR_STOPPED, 24, "WS_ERR_STOPPED", false},
        {WS_ERR_PROOF, 25, "WS_ERR_PROOF", false},
        {WS_ERR_ORDER, 26, "WS_ERR_ORDER", false},
        {WS_ERR_UNSUPPORTED, 27, "WS_ERR_UNSUPPORTED", false},
        {WS_ERR_AGAIN, 28, "WS_ERR_AGAIN", true},
        {WS_ERR_PERMISSION, 29, "WS_ERR_PERMISSION", false},
        {WS_ERR_KEY_MISMATCH, 30, "WS_ERR_KEY_MISMATCH", false},
    };
    size_t n = sizeof golden / sizeof golden[0];

    CHECK(WS_ERR__COUNT == n);
    for (size_t i = 0; i < n; i++) {
        CHECK((int)golden[i].code == golden[i].number);
        CHECK(strcmp(ws_err_name(golden[i].code), golden[i].name) == 0);
        CHECK(ws_err_retriable(golden[i].code) == golden[i].retriable);
        CHECK(ws_strerror(golden[i].code)[0] != '\0');
    }
    /* out of range: named as unknown, never retriable, never a crash */
    CHECK(strcmp(ws_err_name((ws_err_t)WS_ERR__COUNT), "WS_ERR_UNKNOWN") == 0);
    CHECK(strcmp(ws_strerror((ws_err_t)-1), "unknown error") == 0);
    CHECK(!ws_err_retriable((ws_err_t)1000));
    return check_report("test_window_err");
}
