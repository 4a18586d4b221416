/*
 * bench_merkle.c — what hashing a window costs, against the floor of hashing its bytes once.
 *
 * One run, one core, N synthetic records (default 1,000,000: topic "orders", 8 partitions,
 * 8-byte key, 100-byte value, create-time timestamp, no headers: 150-byte encodings, 154-byte
 * frames). The same window is hashed four ways, each the best of a few repetitions:
 *
 *   flat      SHA-256 over the whole window stream (u32 length || encoding per record) in one
 *             pass: the floor, what `sha256sum` of the decompressed evidence costs
 *   leaf      ws_merkle_add_leaf over each encoding: the bare RFC 6962 tree (leaf + node hashes)
 *   window    ws_window_add per record: encode + order/range checks + stream digest + tree +
 *             per-source stats — what the engine pays per record it reads from Kafka
 *   encoded   ws_window_add_encoded per frame: decode + the same — what `verify --evidence` pays
 *
 * The window stream is built once in memory (N * 154 bytes) so that flat, leaf and encoded
 * read the same bytes; window builds each ws_record on the fly and encodes it itself.
 * Usage: bench_merkle [records] [repetitions]. Build in Release, without sanitizers.
 */
#include "window/window.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NPART 8
#define VALUE_LEN 100
#define POOL (64 * 1024)

static uint8_t pool[POOL + VALUE_LEN];

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Record i of the window, in window-stream order: partition-major, offsets from 1000. */
static void make_record(uint64_t i, uint64_t n, struct ws_record *r, char key[8])
{
    uint64_t per = (n + NPART - 1) / NPART;
    uint64_t p = i / per, o = i % per;

    memcpy(key, "k-", 2);
    for (int j = 0; j < 6; j++)
        key[2 + j] = (char)('0' + (i >> (3 * j) & 7));
    *r = (struct ws_record){.topic = "orders",
                            .topic_len = 6,
                            .partition = (int32_t)p,
                            .offset = 1000 + (int64_t)o,
                            .timestamp = 1700000000000 + (int64_t)i,
                            .ts_type = 1,
                            .key = key,
                            .key_len = 8,
                            .value = pool + (i * 37) % POOL,
                            .value_len = VALUE_LEN};
}

static struct ws_window *new_window(uint64_t n)
{
    struct ws_window *w = ws_window_new(NULL, NULL);
    uint64_t per = (n + NPART - 1) / NPART;

    for (int p = 0; p < NPART; p++)
        if (ws_window_add_source(w, "orders", p, 1000, 1000 + (int64_t)per) != WS_OK) {
            fprintf(stderr, "add_source failed\n");
            exit(3);
        }
    return w;
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int main(int argc, char **argv)
{
    uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
    int reps = argc > 2 ? atoi(argv[2]) : 3;
    double best[4] = {1e9, 1e9, 1e9, 1e9};
    uint8_t flat_digest[WS_HASH_LEN], leaf_root[WS_HASH_LEN];
    struct ws_window_result res[2];
    char eb[256], key[8], hex[WS_HASH_HEX_LEN + 1];
    size_t stream_len = 0;
    uint8_t *stream;
    int ok = 1;

    if (n == 0 || reps <= 0) {
        fprintf(stderr, "usage: bench_merkle [records > 0] [repetitions > 0]\n");
        return 2;
    }
    for (size_t i = 0; i < sizeof(pool); i++)
        pool[i] = (uint8_t)((i * 2654435761u) >> 13);

    /* the window stream, built once */
    {
        struct ws_record r;
        make_record(0, n, &r, key);
        size_t frame = 4 + ws_record_encoded_size(&r);
        stream = malloc(frame * n);
        if (!stream) {
            fprintf(stderr, "no memory for %llu records\n", (unsigned long long)n);
            return 3;
        }
        for (uint64_t i = 0; i < n; i++) {
            make_record(i, n, &r, key);
            size_t len = ws_record_encode(&r, stream + stream_len + 4, frame - 4);
            stream[stream_len] = (uint8_t)(len >> 24);
            stream[stream_len + 1] = (uint8_t)(len >> 16);
            stream[stream_len + 2] = (uint8_t)(len >> 8);
            stream[stream_len + 3] = (uint8_t)len;
            stream_len += 4 + len;
        }
    }

    for (int rep = 0; rep < reps; rep++) {
        double t;

        /* flat */
        t = now();
        ws_sha256(stream, stream_len, flat_digest);
        t = now() - t;
        best[0] = t < best[0] ? t : best[0];

        /* leaf: the bare tree */
        t = now();
        {
            struct ws_merkle m;
            ws_merkle_init(&m);
            for (size_t pos = 0; pos < stream_len;) {
                uint32_t len = get32(stream + pos);
                ws_merkle_add_leaf(&m, stream + pos + 4, len);
                pos += 4 + len;
            }
            ws_merkle_root(&m, leaf_root);
        }
        t = now() - t;
        best[1] = t < best[1] ? t : best[1];

        /* window: encode + checks + stream digest + tree + stats */
        t = now();
        {
            struct ws_window *w = new_window(n);
            struct ws_record r;
            for (uint64_t i = 0; i < n; i++) {
                make_record(i, n, &r, key);
                if (ws_window_add(w, &r, eb, sizeof(eb)) != WS_OK) {
                    fprintf(stderr, "ws_window_add: %s\n", eb);
                    return 3;
                }
            }
            if (ws_window_finish(w, &res[0]) != WS_OK)
                return 3;
            t = now() - t;
            res[0].sources = NULL; /* owned by w */
            ws_window_destroy(w);
        }
        best[2] = t < best[2] ? t : best[2];

        /* encoded: decode + the same, from the evidence bytes */
        t = now();
        {
            struct ws_window *w = new_window(n);
            for (size_t pos = 0; pos < stream_len;) {
                uint32_t len = get32(stream + pos);
                if (ws_window_add_encoded(w, stream + pos + 4, len, eb, sizeof(eb)) != WS_OK) {
                    fprintf(stderr, "ws_window_add_encoded: %s\n", eb);
                    return 3;
                }
                pos += 4 + len;
            }
            if (ws_window_finish(w, &res[1]) != WS_OK)
                return 3;
            t = now() - t;
            res[1].sources = NULL;
            ws_window_destroy(w);
        }
        best[3] = t < best[3] ? t : best[3];
    }

    /* the four must agree, or the numbers mean nothing */
    for (int k = 0; k < 2; k++) {
        if (memcmp(res[k].stream_digest, flat_digest, WS_HASH_LEN) != 0 ||
            memcmp(res[k].root, leaf_root, WS_HASH_LEN) != 0 || res[k].leaf_count != n)
            ok = 0;
    }
    if (!ok) {
        fprintf(stderr, "bench_merkle: digests disagree between passes\n");
        return 1;
    }

    static const char *names[4] = {"flat sha256", "merkle leaf", "window add", "window encoded"};
    static const char *what[4] = {
        "SHA-256 over the window stream, one pass",
        "ws_merkle_add_leaf per encoding",
        "ws_window_add: encode + digest + tree + stats",
        "ws_window_add_encoded: decode + digest + tree + stats",
    };
    printf("bench_merkle: %llu records, %.1f MB window stream (%zu-byte frames), best of %d\n",
           (unsigned long long)n, (double)stream_len / 1e6, stream_len / n, reps);
    printf("%-15s %10s %12s %10s %9s  %s\n", "pass", "ms", "records/s", "MB/s", "vs flat",
           "measures");
    for (int k = 0; k < 4; k++)
        printf("%-15s %10.1f %12.0f %10.1f %8.2fx  %s\n", names[k], best[k] * 1e3,
               (double)n / best[k], (double)stream_len / best[k] / 1e6, best[k] / best[0], what[k]);
    ws_hex_encode(res[0].root, WS_HASH_LEN, hex);
    printf("root %s\n", hex);
    ws_hex_encode(flat_digest, WS_HASH_LEN, hex);
    printf("stream digest %s\n", hex);
    free(stream);
    return 0;
}
