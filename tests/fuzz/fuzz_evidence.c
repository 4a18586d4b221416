/*
 * fuzz_evidence.c — libFuzzer target for the evidence reader (LZ4 frame + window-stream framing)
 * and the record decoder behind it, fed exactly as `verify --evidence` feeds them.
 *
 * The input is the compressed archive; every record the reader yields goes through
 * ws_window_add_encoded against one wide declared range per topic seen, so decoding, ordering
 * and range checks all run. Reads are served in small uneven chunks to exercise records that
 * straddle decompression buffers.
 */
#include "window/window.h"

#include <stdlib.h>
#include <string.h>

struct src {
    const uint8_t *p;
    size_t n, off;
};

static ws_err_t rd(void *opaque, void *buf, size_t cap, size_t *got)
{
    struct src *s = opaque;
    size_t k = s->n - s->off;

    if (k > cap)
        k = cap;
    if (k > 1 + (s->off % 97)) /* uneven chunks */
        k = 1 + (s->off % 97);
    memcpy(buf, s->p + s->off, k);
    s->off += k;
    *got = k;
    return WS_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct src s = {data, size, 0};
    struct ws_evidence_reader *r = ws_evidence_reader_new(rd, &s);
    struct ws_window *w = ws_window_new(NULL, NULL);
    struct ws_window_result res;
    const uint8_t *rec;
    size_t len;
    char errbuf[256];
    uint8_t digest[WS_HASH_LEN];

    if (!r || !w)
        abort();
    static const char *const topics[] = {"orders", "payments", "t", "x"}; /* the seeds' */
    for (int i = 0; i < 4; i++)
        for (int32_t p = 0; p < 8; p++)
            if (ws_window_add_source(w, topics[i], p, 0, INT64_MAX / 2) != WS_OK)
                abort();
    while (ws_evidence_next(r, &rec, &len, errbuf, sizeof errbuf) == WS_OK && rec)
        if (ws_window_add_encoded(w, rec, len, errbuf, sizeof errbuf) != WS_OK)
            break;
    ws_evidence_stream_digest(r, digest);
    if (ws_window_finish(w, &res) != WS_OK)
        abort();
    ws_window_destroy(w);
    ws_evidence_reader_destroy(r);
    return 0;
}
