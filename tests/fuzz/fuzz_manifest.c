/*
 * fuzz_manifest.c — libFuzzer target for the Iceberg Avro readers (iceberg/avro.c): the input is
 * one object container file, fed to both the manifest-list and the manifest reader exactly as
 * ws_iceberg_resolve feeds a fetched object (whole, from memory).
 *
 * What it hunts: reads outside the buffer or a decompressed block, unbounded allocations from
 * declared lengths and counts (libFuzzer's -malloc_limit_mb catches those), libavro decoding
 * bytes the bounds pass should have refused, leaks on every error path. A successful read must
 * yield entries whose strings are intact C strings (NUL-free paths are a promise of the API).
 *
 * Seeds (tests/fuzz/corpus/manifest/): manifests and manifest lists written by python3-avro
 * from the Iceberg spec, null, deflate and snappy, as tests/it/iceberg_catalog.py makes them.
 */
#include "iceberg/iceberg.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char errbuf[256];
    struct ws_iceberg_manifest *m = NULL;
    struct ws_iceberg_entry *e = NULL;
    size_t n = 0;

    if (ws_iceberg_read_manifest_list(data, size, &m, &n, errbuf, sizeof errbuf) == WS_OK) {
        for (size_t i = 0; i < n; i++)
            if (!m[i].path || strlen(m[i].path) > size)
                abort();
    } else if (m || n) {
        abort(); /* an error leaves nothing behind */
    }
    ws_iceberg_manifests_free(m, n);
    n = 0;
    if (ws_iceberg_read_manifest(data, size, &e, &n, errbuf, sizeof errbuf) == WS_OK) {
        for (size_t i = 0; i < n; i++)
            if (!e[i].path || e[i].status < 0 || e[i].status > 2 || e[i].file_size < 0)
                abort();
    } else if (e || n) {
        abort();
    }
    ws_iceberg_entries_free(e, n);
    return 0;
}
