/*
 * test_window_statement.c — the in-toto statement (FORMAT.md §5) and its naming helpers.
 *
 * The window result is filled by hand (no dependency on the accumulator). Expected values are
 * the inputs themselves, re-derived here (hex by a local encoder, times by the C library's
 * gmtime_r), never bytes produced by the code under test.
 */
#include "window/window.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"

static const char *QID = "8c5e7f5a-0d4c-4b53-9d1e-6f1c2a3b4c5d";

static void fill(uint8_t h[WS_HASH_LEN], uint8_t v)
{
    for (int i = 0; i < WS_HASH_LEN; i++)
        h[i] = (uint8_t)(v + i);
}

static const char *hexof(uint8_t v)
{
    static char s[4][65];
    static int k;
    k = (k + 1) % 4;
    for (int i = 0; i < 32; i++)
        sprintf(s[k] + 2 * i, "%02x", (unsigned)(uint8_t)(v + i));
    return s[k];
}

/* Deliberately unsorted, two partitions of one topic: the builder must sort and dedupe. */
static struct ws_window_source sources[] = {
    {"payments", 1, 10, 20, 7, 700},
    {"orders", 2, 0, 5, 5, 500},
    {"orders", 0, 100, 200, 90, 9000},
};

static void base_input(struct ws_statement_in *in, struct ws_window_result *w)
{
    memset(w, 0, sizeof(*w));
    fill(w->stream_digest, 0x10);
    fill(w->root, 0x20);
    w->leaf_count = 102;
    w->bytes = 10200;
    w->sources = sources;
    w->nsources = 3;

    memset(in, 0, sizeof(*in));
    in->query_id = QID;
    in->batch_id = 42;
    in->observed_at_ms = 1763781576123; /* 2025-11-22T03:19:36.123Z */
    in->window = w;
    in->chain_length = 1;
    fill(in->log_root, 0x30);
    in->genesis_window_id = "8c5e7f5a-0d4c-4b53-9d1e-6f1c2a3b4c5d/42";
    in->group_id = "windowseal";
    in->version = "0.1.0";
    in->keyid = "ab54c01bf0bfc1f1a3c6f0e4b8a2f8d0d0e1a5b9c3f27d6e4a1b2c3d4e5f6071";
}

static json_t *get(json_t *root, const char *path)
{
    char buf[256], *save = NULL, *tok;
    json_t *cur = root;

    snprintf(buf, sizeof(buf), "%s", path);
    for (tok = strtok_r(buf, ".", &save); tok && cur; tok = strtok_r(NULL, ".", &save)) {
        if (tok[0] >= '0' && tok[0] <= '9')
            cur = json_array_get(cur, (size_t)atoi(tok));
        else
            cur = json_object_get(cur, tok);
    }
    return cur;
}

static bool is_str(json_t *root, const char *path, const char *want)
{
    json_t *v = get(root, path);
    bool ok = json_is_string(v) && strcmp(json_string_value(v), want) == 0;

    if (!ok)
        fprintf(stderr, "  %s: want \"%s\", have %s\n", path, want,
                json_is_string(v) ? json_string_value(v) : "(not a string)");
    return ok;
}

static bool is_int(json_t *root, const char *path, long long want)
{
    json_t *v = get(root, path);
    return json_is_integer(v) && json_integer_value(v) == want;
}

/* Build, check determinism and canonical form, parse. */
static json_t *build(const struct ws_statement_in *in, char **out)
{
    char *a, *b, *redump;
    size_t la, lb;
    json_error_t jerr;
    json_t *root;

    CHECK(ws_statement_build(in, &a, &la) == WS_OK);
    CHECK(ws_statement_build(in, &b, &lb) == WS_OK);
    CHECK(la == lb && memcmp(a, b, la) == 0 && la == strlen(a));
    free(b);
    root = json_loadb(a, la, JSON_REJECT_DUPLICATES, &jerr);
    CHECK(root != NULL);
    /* keys sorted, compact, UTF-8 unescaped: a canonical re-dump gives the same bytes */
    redump = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
    CHECK(redump && strcmp(redump, a) == 0);
    free(redump);
    if (out)
        *out = a;
    else
        free(a);
    return root;
}

static void full_and_minimal(void)
{
    struct ws_statement_in in;
    struct ws_window_result w;
    json_t *root;
    char *json;
    char prev_id[200];

    /* minimal: first window, no time, no outputs, no gaps, no ignored sources, no name/runId */
    base_input(&in, &w);
    root = build(&in, &json);
    printf("minimal statement:\n%s\n", json);
    free(json);
    CHECK(is_str(root, "_type", "https://in-toto.io/Statement/v1"));
    CHECK(is_str(root, "predicateType", "https://makoto.dev/stream-window/v1"));
    CHECK(json_array_size(get(root, "subject")) == 1);
    CHECK(is_str(root, "subject.0.name", "stream:8c5e7f5a-0d4c-4b53-9d1e-6f1c2a3b4c5d/42"));
    CHECK(is_str(root, "subject.0.digest.sha256", hexof(0x10)));
    CHECK(json_object_size(get(root, "subject.0.digest")) == 1);
    CHECK(is_str(root, "predicate.makotoLevel", "L2"));
    CHECK(is_str(root, "predicate.stream.id", QID));
    CHECK(get(root, "predicate.stream.name") == NULL &&
          get(root, "predicate.stream.runId") == NULL);
    CHECK(json_array_size(get(root, "predicate.stream.topics")) == 2);
    CHECK(is_str(root, "predicate.stream.topics.0", "orders"));
    CHECK(is_str(root, "predicate.stream.topics.1", "payments"));
    CHECK(is_str(root, "predicate.window.type", "micro-batch"));
    CHECK(is_str(root, "predicate.window.id", "8c5e7f5a-0d4c-4b53-9d1e-6f1c2a3b4c5d/42"));
    CHECK(is_int(root, "predicate.window.batchId", 42));
    CHECK(is_str(root, "predicate.window.observedAt", "2025-11-22T03:19:36.123Z"));
    CHECK(get(root, "predicate.window.start") == NULL && get(root, "predicate.window.end") == NULL);
    CHECK(get(root, "predicate.window.ignoredSources") == NULL);
    CHECK(json_array_size(get(root, "predicate.window.sources")) == 3);
    CHECK(is_str(root, "predicate.window.sources.0.topic", "orders"));
    CHECK(is_int(root, "predicate.window.sources.0.partition", 0));
    CHECK(is_int(root, "predicate.window.sources.0.fromOffset", 100));
    CHECK(is_int(root, "predicate.window.sources.0.untilOffset", 200));
    CHECK(is_int(root, "predicate.window.sources.0.recordCount", 90));
    CHECK(is_int(root, "predicate.window.sources.0.bytes", 9000));
    CHECK(json_object_size(get(root, "predicate.window.sources.0")) == 6);
    CHECK(is_int(root, "predicate.window.sources.1.partition", 2));
    CHECK(is_str(root, "predicate.window.sources.2.topic", "payments"));
    CHECK(is_str(root, "predicate.integrity.merkleTree.algorithm", "sha256"));
    CHECK(is_str(root, "predicate.integrity.merkleTree.scheme", "rfc6962"));
    CHECK(is_str(root, "predicate.integrity.merkleTree.leafEncoding", "windowseal.record.v1"));
    CHECK(is_int(root, "predicate.integrity.merkleTree.leafCount", 102));
    CHECK(is_str(root, "predicate.integrity.merkleTree.root", hexof(0x20)));
    CHECK(get(root, "predicate.integrity.previousWindow") == NULL);
    CHECK(is_int(root, "predicate.integrity.chain.chainLength", 1));
    CHECK(is_str(root, "predicate.integrity.chain.logRoot", hexof(0x30)));
    CHECK(is_str(root, "predicate.integrity.chain.genesisWindowId",
                 "8c5e7f5a-0d4c-4b53-9d1e-6f1c2a3b4c5d/42"));
    CHECK(json_object_size(get(root, "predicate.integrity.chain")) == 3);
    CHECK(get(root, "predicate.integrity.gaps") == NULL);
    CHECK(get(root, "predicate.outputs") == NULL);
    CHECK(is_int(root, "predicate.aggregates.recordCount", 102));
    CHECK(is_int(root, "predicate.aggregates.bytes", 10200));
    CHECK(is_str(root, "predicate.collector.id", "windowseal:windowseal"));
    CHECK(is_str(root, "predicate.collector.version.windowseal", "0.1.0"));
    CHECK(is_str(root, "predicate.collector.keyid", in.keyid));
    CHECK(json_is_true(get(root, "predicate.verification.merkleProofAvailable")));
    CHECK(is_str(root, "predicate.verification.evidence.name",
                 "8c5e7f5a-0d4c-4b53-9d1e-6f1c2a3b4c5d/00000000000000000042.evidence.lz4"));
    CHECK(is_str(root, "predicate.verification.evidence.compression", "lz4-frame"));
    CHECK(json_object_size(root) == 4);
    CHECK(json_object_size(get(root, "predicate")) == 7);
    json_decref(root);

    /* full: every optional field set */
    static const char *ignored[] = {"FileStreamSource[/data/in]", "RateStreamV2[rowsPerSecond=1]"};
    static const struct ws_gap gaps[] = {{40, 41}};
    static const struct ws_out_file files[] = {
        {"/warehouse/ods/orders/data/00000-1-a.parquet", true, {0}, 4096, NULL},
        {"/warehouse/ods/orders/data/00001-1-b.parquet", false, {0}, -1, "No such file"},
        {"/warehouse/ods/orders/data/ファイル.parquet", true, {0}, 0, NULL},
    };
    struct ws_out_file f[3];
    memcpy(f, files, sizeof(f));
    fill(f[0].sha256, 0x50);
    fill(f[2].sha256, 0x60);
    struct ws_output outputs[] = {{.name = "iceberg.ods.orders",
                                   .snapshot_id = "5937117119577207079",
                                   .files = f,
                                   .nfiles = 3},
                                  {.name = "console"}};
    base_input(&in, &w);
    w.has_time = true;
    w.ts_min = 1763781500000;
    w.ts_max = 1763781576000;
    in.name = "orders-to-iceberg";
    in.run_id = "run-7";
    in.ignored_sources = ignored;
    in.nignored = 2;
    in.has_previous = true;
    snprintf(prev_id, sizeof(prev_id), "%s/39", QID);
    in.previous_window_id = prev_id;
    fill(in.previous_root, 0x70);
    fill(in.previous_attestation_digest, 0x80);
    in.chain_length = 40;
    in.genesis_window_id = "8c5e7f5a-0d4c-4b53-9d1e-6f1c2a3b4c5d/0";
    in.gaps = gaps;
    in.ngaps = 1;
    in.outputs = outputs;
    in.noutputs = 2;
    root = build(&in, &json);
    printf("full statement:\n%s\n", json);
    CHECK(strstr(json, "ファイル") != NULL); /* raw UTF-8, not \u escapes */
    free(json);
    CHECK(is_str(root, "predicate.stream.name", "orders-to-iceberg"));
    CHECK(is_str(root, "predicate.stream.runId", "run-7"));
    CHECK(is_str(root, "predicate.window.start", "2025-11-22T03:18:20.000Z"));
    CHECK(is_str(root, "predicate.window.end", "2025-11-22T03:19:36.000Z"));
    CHECK(is_str(root, "predicate.window.ignoredSources.1", "RateStreamV2[rowsPerSecond=1]"));
    CHECK(json_array_size(get(root, "subject")) == 3);
    CHECK(is_str(root, "subject.1.name", "/warehouse/ods/orders/data/00000-1-a.parquet"));
    CHECK(is_str(root, "subject.1.digest.sha256", hexof(0x50)));
    CHECK(is_str(root, "subject.2.name", "/warehouse/ods/orders/data/ファイル.parquet"));
    CHECK(is_str(root, "subject.2.digest.sha256", hexof(0x60)));
    CHECK(is_str(root, "predicate.integrity.previousWindow.windowId", prev_id));
    CHECK(is_str(root, "predicate.integrity.previousWindow.merkleRoot", hexof(0x70)));
    CHECK(is_str(root, "predicate.integrity.previousWindow.attestationDigest", hexof(0x80)));
    CHECK(is_str(root, "predicate.integrity.chain.previousWindowId", prev_id));
    CHECK(is_str(root, "predicate.integrity.chain.previousMerkleRoot", hexof(0x70)));
    CHECK(is_str(root, "predicate.integrity.chain.previousAttestationDigest", hexof(0x80)));
    CHECK(is_int(root, "predicate.integrity.chain.chainLength", 40));
    CHECK(is_int(root, "predicate.integrity.gaps.0.fromBatchId", 40));
    CHECK(is_int(root, "predicate.integrity.gaps.0.untilBatchId", 41));
    CHECK(is_str(root, "predicate.outputs.0.name", "iceberg.ods.orders"));
    CHECK(is_str(root, "predicate.outputs.0.snapshotId", "5937117119577207079"));
    CHECK(is_str(root, "predicate.outputs.0.files.0.sha256", hexof(0x50)));
    CHECK(is_int(root, "predicate.outputs.0.files.0.bytes", 4096));
    CHECK(get(root, "predicate.outputs.0.files.0.error") == NULL);
    CHECK(get(root, "predicate.outputs.0.files.1.sha256") == NULL);
    CHECK(get(root, "predicate.outputs.0.files.1.bytes") == NULL);
    CHECK(is_str(root, "predicate.outputs.0.files.1.error", "No such file"));
    CHECK(is_int(root, "predicate.outputs.0.files.2.bytes", 0));
    CHECK(get(root, "predicate.outputs.1.snapshotId") == NULL);
    CHECK(json_array_size(get(root, "predicate.outputs.1.files")) == 0);
    json_decref(root);
}

static void edge_cases(void)
{
    struct ws_statement_in in;
    struct ws_window_result w;
    char *json;
    size_t len;
    json_t *root;

    /* an empty window: no sources, no topics, zero counts */
    base_input(&in, &w);
    w.nsources = 0;
    w.sources = NULL;
    w.leaf_count = 0;
    w.bytes = 0;
    root = build(&in, NULL);
    CHECK(json_array_size(get(root, "predicate.stream.topics")) == 0);
    CHECK(json_array_size(get(root, "predicate.window.sources")) == 0);
    CHECK(is_int(root, "predicate.aggregates.recordCount", 0));
    json_decref(root);

    /* uint64 beyond INT64_MAX cannot be a JSON integer here */
    base_input(&in, &w);
    w.leaf_count = (uint64_t)INT64_MAX + 1;
    CHECK(ws_statement_build(&in, &json, &len) == WS_ERR_TOO_LARGE && json == NULL);
    base_input(&in, &w);
    in.chain_length = UINT64_MAX;
    CHECK(ws_statement_build(&in, &json, &len) == WS_ERR_TOO_LARGE);
    base_input(&in, &w);
    w.leaf_count = INT64_MAX;
    root = build(&in, NULL);
    CHECK(is_int(root, "predicate.integrity.merkleTree.leafCount", INT64_MAX));
    json_decref(root);

    /* invalid input */
    base_input(&in, &w);
    in.query_id = "../etc";
    CHECK(ws_statement_build(&in, &json, &len) == WS_ERR_UNSAFE_ID);
    base_input(&in, &w);
    in.keyid = NULL;
    CHECK(ws_statement_build(&in, &json, &len) == WS_ERR_INVALID);
    base_input(&in, &w);
    in.has_previous = true;
    CHECK(ws_statement_build(&in, &json, &len) == WS_ERR_INVALID);
    base_input(&in, &w);
    in.name = "bad \xff utf8";
    CHECK(ws_statement_build(&in, &json, &len) == WS_ERR_INVALID && json == NULL);
    base_input(&in, &w);
    in.observed_at_ms = -1;
    CHECK(ws_statement_build(&in, &json, &len) == WS_ERR_INVALID);
    base_input(&in, &w);
    in.batch_id = -1;
    CHECK(ws_statement_build(&in, &json, &len) == WS_ERR_INVALID);
    base_input(&in, &w);
    w.has_time = true;
    w.ts_min = 0;
    w.ts_max = 253402300800000LL; /* year 10000 */
    CHECK(ws_statement_build(&in, &json, &len) == WS_ERR_INVALID);

    /* any input change changes the bytes */
    {
        char *a, *b;
        size_t la, lb;
        base_input(&in, &w);
        CHECK(ws_statement_build(&in, &a, &la) == WS_OK);
        w.stream_digest[31] ^= 1;
        CHECK(ws_statement_build(&in, &b, &lb) == WS_OK);
        CHECK(la == lb && memcmp(a, b, la) != 0);
        free(a);
        free(b);
    }
}

static void helpers(void)
{
    char out[32], name[256];
    uint64_t s = 88172645463325252ull;

    ws_format_time_ms(0, out);
    CHECK(strcmp(out, "1970-01-01T00:00:00.000Z") == 0);
    ws_format_time_ms(-1, out);
    CHECK(strcmp(out, "1969-12-31T23:59:59.999Z") == 0);
    ws_format_time_ms(951782400000, out);
    CHECK(strcmp(out, "2000-02-29T00:00:00.000Z") == 0);
    ws_format_time_ms(253402300799999LL, out);
    CHECK(strcmp(out, "9999-12-31T23:59:59.999Z") == 0);
    ws_format_time_ms(-62167219200000LL, out);
    CHECK(strcmp(out, "0000-01-01T00:00:00.000Z") == 0);
    ws_format_time_ms(INT64_MAX, out); /* clamped */
    CHECK(strcmp(out, "9999-12-31T23:59:59.999Z") == 0);
    ws_format_time_ms(INT64_MIN, out);
    CHECK(strcmp(out, "0000-01-01T00:00:00.000Z") == 0);
    /* against gmtime_r over random instants in 1900..2400, both signs */
    for (int i = 0; i < 20000; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        int64_t ms = (int64_t)(s % 15778800000000ull) - 2208988800000LL;
        time_t t = (time_t)(ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000));
        int msr = (int)(ms - (int64_t)t * 1000);
        struct tm tm;
        char want[96];
        gmtime_r(&t, &tm);
        snprintf(want, sizeof(want), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, msr);
        ws_format_time_ms(ms, out);
        if (strcmp(out, want) != 0) {
            fprintf(stderr, "  %" PRId64 ": %s != %s\n", ms, out, want);
            CHECK(0);
            break;
        }
    }
    checks++;

    ws_object_name(QID, 42, ".dsse.json", name);
    CHECK(strcmp(name, "8c5e7f5a-0d4c-4b53-9d1e-6f1c2a3b4c5d/00000000000000000042.dsse.json") == 0);
    ws_object_name("q", INT64_MAX, "", name);
    CHECK(strcmp(name, "q/09223372036854775807") == 0);
    ws_object_name("q", 0, ".evidence.lz4", name);
    CHECK(strcmp(name, "q/00000000000000000000.evidence.lz4") == 0);

    CHECK(ws_query_id_safe(QID, strlen(QID)));
    CHECK(ws_query_id_safe("a", 1));
    CHECK(ws_query_id_safe("A.b_c-9", 7));
    CHECK(ws_query_id_safe("a..b", 4));
    CHECK(!ws_query_id_safe("", 0));
    CHECK(!ws_query_id_safe(".hidden", 7));
    CHECK(!ws_query_id_safe("..", 2));
    CHECK(!ws_query_id_safe("a/b", 3));
    CHECK(!ws_query_id_safe("a b", 3));
    CHECK(!ws_query_id_safe("a\0b", 3));
    CHECK(!ws_query_id_safe("caf\xc3\xa9", 5));
    {
        char long_id[130];
        memset(long_id, 'x', sizeof(long_id));
        CHECK(ws_query_id_safe(long_id, 128));
        CHECK(!ws_query_id_safe(long_id, 129));
    }
}

/* An Iceberg output resolved from its catalog: the object as given, its subjects, no files. */
static void iceberg_output(void)
{
    struct ws_statement_in in;
    struct ws_window_result w;
    json_error_t jerr;
    json_t *ice = json_loads("{\"catalog\":\"lake\",\"namespace\":[\"ods\"],\"table\":\"orders\","
                             "\"snapshotId\":\"9223372036854775807\",\"addedDataFiles\":[]}",
                             0, &jerr);
    json_t *disc =
        json_loads("{\"notInSnapshot\":[\"s3://w/forged.parquet\"],\"notReported\":[]}", 0, &jerr);
    struct ws_out_file job[] = {{"s3://w/forged.parquet", false, {0}, -1, NULL}};
    struct ws_out_file added[] = {{"s3://w/data/a.parquet", true, {0}, 10, NULL},
                                  {"s3://w/data/b.parquet", false, {0}, 20, "HTTP 404"}};
    struct ws_output outputs[1] = {
        {.name = "lake.ods.orders", .snapshot_id = "42", .files = job, .nfiles = 1}};
    char *json = NULL;
    size_t len;
    json_t *root;

    CHECK(ice && disc);
    fill(added[0].sha256, 0x33);
    outputs[0].iceberg = ice;
    outputs[0].discrepancy = disc;
    outputs[0].subjects = added;
    outputs[0].nsubjects = 2;
    base_input(&in, &w);
    in.outputs = outputs;
    in.noutputs = 1;
    root = build(&in, &json);
    CHECK(is_str(root, "predicate.outputs.0.name", "lake.ods.orders"));
    CHECK(is_str(root, "predicate.outputs.0.snapshotId", "42")); /* what the job sent */
    CHECK(get(root, "predicate.outputs.0.files") == NULL);       /* compared, not hashed */
    CHECK(is_str(root, "predicate.outputs.0.iceberg.snapshotId", "9223372036854775807"));
    CHECK(is_str(root, "predicate.outputs.0.discrepancy.notInSnapshot.0", "s3://w/forged.parquet"));
    /* subjects: the stream, then the added file that was read whole (not the job's forged one) */
    CHECK(json_array_size(get(root, "subject")) == 2);
    CHECK(is_str(root, "subject.1.name", "s3://w/data/a.parquet"));
    CHECK(is_str(root, "subject.1.digest.sha256", hexof(0x33)));
    CHECK(json && !strstr(json, "forged.parquet\",\"sha256"));
    json_decref(root);
    free(json);
    /* the caller's objects are untouched (deep copies went into the statement) */
    CHECK(json_object_size(ice) == 5 && ice->refcount == 1 && disc->refcount == 1);
    /* a discrepancy without an iceberg object is not a valid input */
    outputs[0].iceberg = NULL;
    CHECK(ws_statement_build(&in, &json, &len) == WS_ERR_INVALID);
    json_decref(ice);
    json_decref(disc);
}

int main(void)
{
    full_and_minimal();
    iceberg_output();
    edge_cases();
    helpers();
    if (failures) {
        fprintf(stderr, "test_window_statement: %lu of %lu checks FAILED\n", failures, checks);
        return 1;
    }
    printf("test_window_statement: %lu checks passed\n", checks);
    return 0;
}
