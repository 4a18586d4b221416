/*
 * fuzz_envelope.c — libFuzzer target for what `windowseal verify` and `audit` read first: the
 * DSSE envelope parser and the statement checks behind it.
 *
 * A fixed key signs whatever the fuzzer's bytes are as a statement payload, so the statement
 * checker (engine/verify.c) sees arbitrary JSON behind a valid signature; the raw bytes are
 * also parsed as an envelope directly. Nothing may crash, leak or trip UBSan, and an error must
 * leave a message.
 */
#include "engine/engine.h"

#include <stdlib.h>
#include <string.h>

static struct ws_key key;

static void check(const char *env, size_t len)
{
    struct ws_verified v;
    char errbuf[512] = "";
    ws_err_t err = ws_verify_envelope(env, len, &key, 1, NULL, &v, errbuf, sizeof errbuf);

    if (err && errbuf[0] == '\0' && err != WS_ERR_NOMEM)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *env = NULL;
    size_t envlen = 0;

    if (!key.has_secret && ws_key_generate(&key) != WS_OK)
        abort();
    check((const char *)data, size);
    if (ws_dsse_sign(&key, WS_PAYLOAD_TYPE, data, size, &env, &envlen) == WS_OK) {
        check(env, envlen);
        free(env);
    }
    return 0;
}
