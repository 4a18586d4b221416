/*
 * windowlog.c — the per-query window log (FORMAT.md §4): an append-only RFC 6962 log whose entries are
 * `0x01 || u64 batchId || window Merkle root || stream digest`.
 *
 * The log is a plain ws_merkle over these entries, so its state is the same compact range the
 * engine persists for the chain head, and consistency proofs between two attestations' log
 * sizes come from merkle.c unchanged. The leading version byte keeps the entry format
 * extensible without ever colliding with v1 leaves.
 */
#include "window/window.h"

#include <string.h>

void ws_log_entry_encode(int64_t batch_id, const uint8_t root[WS_HASH_LEN],
                         const uint8_t stream_digest[WS_HASH_LEN], uint8_t out[WS_LOG_ENTRY_LEN])
{
    uint64_t b = (uint64_t)batch_id;

    out[0] = 0x01;
    for (int i = 0; i < 8; i++)
        out[1 + i] = (uint8_t)(b >> (56 - 8 * i));
    memcpy(out + 9, root, WS_HASH_LEN);
    memcpy(out + 9 + WS_HASH_LEN, stream_digest, WS_HASH_LEN);
}

void ws_log_append(struct ws_merkle *log, int64_t batch_id, const uint8_t root[WS_HASH_LEN],
                   const uint8_t stream_digest[WS_HASH_LEN])
{
    uint8_t entry[WS_LOG_ENTRY_LEN];

    ws_log_entry_encode(batch_id, root, stream_digest, entry);
    ws_merkle_add_leaf(log, entry, sizeof(entry));
}
