/*
 * fuzz_head.c — libFuzzer target for chain-head records read back from the heads topic: outside
 * input that decides where a chain continues. A head that decodes must re-encode and decode to
 * the same head.
 */
#include "engine/engine.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ws_head h, h2;
    char errbuf[256], *enc = NULL;
    size_t len;

    if (ws_head_decode((const char *)data, size, &h, errbuf, sizeof errbuf) != WS_OK)
        return 0;
    if (ws_head_encode(&h, &enc, &len) != WS_OK)
        abort();
    if (ws_head_decode(enc, len, &h2, errbuf, sizeof errbuf) != WS_OK ||
        memcmp(&h, &h2, sizeof h) != 0)
        abort();
    free(enc);
    return 0;
}
