/*
 * test_window_notification.c — the notification parser (FORMAT.md §1).
 *
 * Every accepted shape is checked field by field against values written here by hand; every
 * rejection is checked for its ws_err_t, a reason substring, a printable errbuf and a zeroed
 * output. The sources digest is checked against a canonical encoding built independently in this
 * file (the batch rules and the tests/data/notifications corpus: test_window_batchrules.c).
 * Runs under ASan/LSan: a leak on any error path fails the test.
 */
#include "window/window.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "notif_check.h"

/* ------------------------------------------------------------------------------------------ */

static void test_native(void)
{
    struct ws_notification n;
    const char *json =
        "{\"queryId\":\"8c5e7f5a-0d4c-4b53-9d1e-6f1c2a3b4c5d\",\"runId\":\"r-1\","
        "\"name\":\"orders-to-iceberg\",\"batchId\":42,\"sources\":["
        "{\"topic\":\"orders\",\"partition\":1,\"fromOffset\":5,\"untilOffset\":9},"
        "{\"topic\":\"orders\",\"partition\":0,\"fromOffset\":100,\"untilOffset\":200},"
        "{\"topic\":\"a\",\"partition\":7,\"fromOffset\":0,\"untilOffset\":0},"
        "{\"topic\":\"_x\",\"partition\":0,\"fromOffset\":1,\"untilOffset\":2},"
        "{\"topic\":\"Z\",\"partition\":0,\"fromOffset\":1,\"untilOffset\":2},"
        "{\"topic\":\"9\",\"partition\":0,\"fromOffset\":1,\"untilOffset\":2},"
        "{\"topic\":\"-\",\"partition\":2147483647,\"fromOffset\":0,"
        "\"untilOffset\":9223372036854775807}],"
        "\"outputs\":[{\"name\":\"iceberg.ods.orders\",\"snapshotId\":\"5937117119577207079\","
        "\"files\":[\"/w/a.parquet\",\"/w/b.parquet\"]},"
        "{\"name\":\"t2\",\"snapshotId\":1234567890123,\"files\":[]},"
        "{\"name\":\"t3\",\"snapshotId\":null},{\"name\":\"t4\",\"snapshotId\":-5}],"
        "\"future\":{\"x\":[1,2,{\"y\":null}]},\"schema\":2}";

    if (!PARSE(json, NULL, &n))
        return;
    CHECK(n.shape == WS_NOTIF_NATIVE);
    CHECK(strcmp(n.query_id, "8c5e7f5a-0d4c-4b53-9d1e-6f1c2a3b4c5d") == 0);
    CHECK(strcmp(n.run_id, "r-1") == 0);
    CHECK(strcmp(n.name, "orders-to-iceberg") == 0);
    CHECK(n.batch_id == 42);
    CHECK(n.nsources == 7);
    if (n.nsources == 7) {
        /* byte order: '-' 0x2d < '9' < 'Z' < '_' 0x5f < 'a' < 'o' (not locale, not case-folded) */
        CHECK(src_is(&n.sources[0], "-", INT32_MAX, 0, INT64_MAX));
        CHECK(src_is(&n.sources[1], "9", 0, 1, 2));
        CHECK(src_is(&n.sources[2], "Z", 0, 1, 2));
        CHECK(src_is(&n.sources[3], "_x", 0, 1, 2));
        CHECK(src_is(&n.sources[4], "a", 7, 0, 0));
        CHECK(src_is(&n.sources[5], "orders", 0, 100, 200));
        CHECK(src_is(&n.sources[6], "orders", 1, 5, 9));
    }
    CHECK(n.noutputs == 4);
    if (n.noutputs == 4) {
        CHECK(strcmp(n.outputs[0].name, "iceberg.ods.orders") == 0);
        CHECK(strcmp(n.outputs[0].snapshot_id, "5937117119577207079") == 0);
        CHECK(n.outputs[0].nfiles == 2);
        CHECK(n.outputs[0].nfiles == 2 && strcmp(n.outputs[0].files[0], "/w/a.parquet") == 0 &&
              strcmp(n.outputs[0].files[1], "/w/b.parquet") == 0);
        CHECK(strcmp(n.outputs[1].snapshot_id, "1234567890123") == 0);
        CHECK(n.outputs[1].nfiles == 0);
        CHECK(strcmp(n.outputs[2].name, "t3") == 0 && n.outputs[2].snapshot_id == NULL);
        CHECK(n.outputs[2].nfiles == 0 && n.outputs[2].files == NULL);
        CHECK(strcmp(n.outputs[3].snapshot_id, "-5") == 0);
    }
    CHECK(n.nignored == 0);
    ws_notification_free(&n);
    CHECK(all_zero(&n));
    ws_notification_free(&n); /* idempotent on a freed (zeroed) struct */
    ws_notification_free(NULL);

    /* the empty window is legitimate; optional strings may be null */
    if (PARSE("{\"queryId\":\"q\",\"batchId\":0,\"sources\":[],\"runId\":null,\"name\":null}", NULL,
              &n)) {
        CHECK(n.nsources == 0 && n.sources == NULL && n.batch_id == 0);
        CHECK(n.run_id == NULL && n.name == NULL && n.noutputs == 0);
        ws_notification_free(&n);
    }
    if (PARSE("{\"queryId\":\"q\",\"batchId\":0,\"sources\":[],\"outputs\":[]}", NULL, &n)) {
        CHECK(n.noutputs == 0 && n.outputs == NULL);
        ws_notification_free(&n);
    }
    /* queryId wins when both keys are present */
    if (PARSE("{\"queryId\":\"q\",\"id\":\"other\",\"batchId\":1,\"sources\":[]}", NULL, &n)) {
        CHECK(n.shape == WS_NOTIF_NATIVE && strcmp(n.query_id, "q") == 0);
        ws_notification_free(&n);
    }
    /* errbuf may be NULL */
    CHECK(ws_notification_parse("{", 1, NULL, &n, NULL, 0) == WS_ERR_MALFORMED);
}

/* ------------------------------------------------------------------------------------------ */

#define PROGRESS_HEAD                                                                              \
    "{\"id\":\"q-1\",\"runId\":\"run\",\"name\":null,\"timestamp\":\"2026-11-22T03:19:36.123Z\","  \
    "\"numInputRows\":10,\"durationMs\":{\"addBatch\":5},\"stateOperators\":[],"

static const char progress_obj[] =
    PROGRESS_HEAD "\"batchId\":7,\"sources\":[{\"description\":\"KafkaV2[Subscribe[orders,pay]]\","
                  "\"startOffset\":{\"orders\":{\"2\":20,\"10\":100,\"0\":0,\"1\":10},"
                  "\"pay\":{\"0\":5}},"
                  "\"endOffset\":{\"orders\":{\"10\":110,\"1\":15,\"0\":3,\"2\":20},"
                  "\"pay\":{\"0\":9}},"
                  "\"latestOffset\":{\"orders\":{\"10\":120}},\"numInputRows\":10,"
                  "\"metrics\":{\"avgOffsetsBehindLatest\":\"3.0\"}}],"
                  "\"sink\":{\"description\":\"ForeachBatchSink\",\"numOutputRows\":-1}}";

/* PySpark's listener hands offsets over as strings holding JSON */
static const char progress_str[] =
    PROGRESS_HEAD "\"batchId\":7,\"sources\":[{\"description\":\"KafkaV2[Subscribe[orders,pay]]\","
                  "\"startOffset\":\"{\\\"pay\\\":{\\\"0\\\":5},\\\"orders\\\":{\\\"1\\\":10,"
                  "\\\"0\\\":0,\\\"10\\\":100,\\\"2\\\":20}}\","
                  "\"endOffset\":\" {\\\"orders\\\":{\\\"0\\\":3,\\\"1\\\":15,\\\"2\\\":20,"
                  "\\\"10\\\":110},\\\"pay\\\":{\\\"0\\\":9}}\"}]}";

static void check_progress_sources(int line, const struct ws_notification *n)
{
    CHECK_AT(line, n->shape == WS_NOTIF_PROGRESS);
    CHECK_AT(line, strcmp(n->query_id, "q-1") == 0);
    CHECK_AT(line, strcmp(n->run_id, "run") == 0);
    CHECK_AT(line, n->name == NULL);
    CHECK_AT(line, n->batch_id == 7);
    CHECK_AT(line, n->nsources == 5);
    CHECK_AT(line, n->nignored == 0 && n->noutputs == 0);
    if (n->nsources != 5)
        return;
    /* partition order is numeric, not the keys' string order ("10" < "2") */
    CHECK_AT(line, src_is(&n->sources[0], "orders", 0, 0, 3));
    CHECK_AT(line, src_is(&n->sources[1], "orders", 1, 10, 15));
    CHECK_AT(line, src_is(&n->sources[2], "orders", 2, 20, 20));
    CHECK_AT(line, src_is(&n->sources[3], "orders", 10, 100, 110));
    CHECK_AT(line, src_is(&n->sources[4], "pay", 0, 5, 9));
}

static void test_progress(void)
{
    struct ws_notification a, b, n;
    uint8_t da[WS_HASH_LEN], db[WS_HASH_LEN];
    struct ws_notif_opts allow = {.allow_unresolved_start = true};

    if (!PARSE(progress_obj, NULL, &a))
        return;
    check_progress_sources(__LINE__, &a);
    if (PARSE(progress_str, NULL, &b)) {
        check_progress_sources(__LINE__, &b);
        ws_notification_sources_digest(&a, da);
        ws_notification_sources_digest(&b, db);
        CHECK(memcmp(da, db, WS_HASH_LEN) == 0);
        ws_notification_free(&b);
    }
    ws_notification_free(&a);

    /* non-Kafka sources are ignored and named, in order; the Kafka one still counts */
    const char *mixed =
        "{\"id\":\"q-2\",\"batchId\":3,\"sources\":["
        "{\"description\":\"FileStreamSource[file:/data/in]\",\"startOffset\":{\"logOffset\":3},"
        "\"endOffset\":{\"logOffset\":4}},"
        "{\"description\":\"RateStreamV2[rowsPerSecond=1]\",\"startOffset\":5,\"endOffset\":\"6\"},"
        "{\"description\":\"KafkaV2[Subscribe[t]]\",\"startOffset\":{\"t\":{\"0\":1}},"
        "\"endOffset\":{\"t\":{\"0\":4}}},"
        "{\"description\":\"RateStreamContinuous\",\"startOffset\":{\"0\":{\"value\":1,"
        "\"runTimeMs\":5}},\"endOffset\":{\"0\":{\"value\":3,\"runTimeMs\":9}}},"
        "{\"description\":\"MemoryStream[value#1]\",\"startOffset\":null,\"endOffset\":null},"
        "{\"description\":\"FileStreamSource[s3://b]\",\"endOffset\":\"{\\\"logOffset\\\":0}\"},"
        "{\"description\":\"SocketSource\",\"endOffset\":\"not json\"}]}";
    if (PARSE(mixed, NULL, &n)) {
        CHECK(n.nsources == 1 && src_is(&n.sources[0], "t", 0, 1, 4));
        CHECK(n.run_id == NULL && n.name == NULL);
        CHECK(n.nignored == 6);
        if (n.nignored == 6) {
            CHECK(strcmp(n.ignored_sources[0], "FileStreamSource[file:/data/in]") == 0);
            CHECK(strcmp(n.ignored_sources[1], "RateStreamV2[rowsPerSecond=1]") == 0);
            CHECK(strcmp(n.ignored_sources[2], "RateStreamContinuous") == 0);
            CHECK(strcmp(n.ignored_sources[3], "MemoryStream[value#1]") == 0);
            CHECK(strcmp(n.ignored_sources[4], "FileStreamSource[s3://b]") == 0);
            CHECK(strcmp(n.ignored_sources[5], "SocketSource") == 0);
        }
        ws_notification_free(&n);
    }

    /* two Kafka sources, several topics; an empty map contributes nothing */
    const char *two = "{\"id\":\"q\",\"batchId\":1,\"sources\":["
                      "{\"description\":\"k1\",\"startOffset\":{\"b\":{\"1\":0},\"a\":{\"0\":2}},"
                      "\"endOffset\":{\"b\":{\"1\":1},\"a\":{\"0\":2}}},"
                      "{\"description\":\"k2\",\"startOffset\":{},\"endOffset\":{}},"
                      "{\"description\":\"k3\",\"startOffset\":{\"a\":{\"1\":7,\"5\":1}},"
                      "\"endOffset\":{\"a\":{\"1\":8}}}]}";
    if (PARSE(two, NULL, &n)) {
        CHECK(n.nsources == 3 && n.nignored == 0);
        if (n.nsources == 3) {
            CHECK(src_is(&n.sources[0], "a", 0, 2, 2));
            CHECK(src_is(&n.sources[1], "a", 1, 7, 8));
            CHECK(src_is(&n.sources[2], "b", 1, 0, 1));
        }
        ws_notification_free(&n);
    }

    /* batch 0 with startOffset null: refused unless the operator configured how to resolve it */
    const char *b0 = "{\"id\":\"q-0\",\"batchId\":0,\"sources\":[{\"description\":\"k\","
                     "\"startOffset\":null,\"endOffset\":{\"t\":{\"1\":50,\"0\":40}},"
                     "\"numInputRows\":12}]}";
    EXPECT_FAIL(b0, WS_ERR_INVALID,
                "batch 0 of query q-0 has startOffset null in sources[0]: its initial offsets are "
                "not known; configure notifications.initial_offsets");
    if (PARSE(b0, &allow, &n)) {
        CHECK(n.nsources == 2);
        CHECK(n.nsources == 2 && src_is(&n.sources[0], "t", 0, WS_OFFSET_UNRESOLVED, 40));
        CHECK(n.nsources == 2 && src_is(&n.sources[1], "t", 1, WS_OFFSET_UNRESOLVED, 50));
        ws_notification_free(&n);
    }
    /* a missing startOffset is the same as null */
    const char *b0m = "{\"id\":\"q-0\",\"batchId\":0,\"sources\":[{\"description\":\"k\","
                      "\"endOffset\":\"{\\\"t\\\":{\\\"0\\\":40}}\",\"numInputRows\":3}]}";
    EXPECT_FAIL(b0m, WS_ERR_INVALID, "configure notifications.initial_offsets");
    if (PARSE(b0m, &allow, &n)) {
        CHECK(n.nsources == 1 && src_is(&n.sources[0], "t", 0, WS_OFFSET_UNRESOLVED, 40));
        ws_notification_free(&n);
    }
    /* only batch 0 may be unresolved, whatever the option says */
    const char *b5 = "{\"id\":\"q-5\",\"batchId\":5,\"sources\":[{\"description\":\"k\","
                     "\"startOffset\":null,\"endOffset\":{\"t\":{\"0\":40}}}]}";
    EXPECT_FAIL(b5, WS_ERR_INVALID, "batch 5 of query q-5 has startOffset null");
    EXPECT_FAIL_OPTS(b5, &allow, WS_ERR_INVALID, "only batch 0");
}

/* ------------------------------------------------------------------------------------------ */

static void test_malformed(void)
{
    struct ws_notif_opts big = {.max_bytes = 64u * 1024 * 1024};
    const char *valid = "{\"queryId\":\"q1\",\"batchId\":1,\"sources\":[{\"topic\":\"t\","
                        "\"partition\":0,\"fromOffset\":1,\"untilOffset\":2}]}";
    size_t vlen = strlen(valid);
    char *buf;

    EXPECT_FAIL("not json", WS_ERR_MALFORMED, "malformed JSON: '[' or '{' expected near 'not'");
    EXPECT_FAIL("{\"queryId\": }", WS_ERR_MALFORMED, "line 1, column");
    EXPECT_FAIL("", WS_ERR_MALFORMED, "empty");
    EXPECT_FAIL("\"a string\"", WS_ERR_MALFORMED, "malformed JSON");
    EXPECT_FAIL("42", WS_ERR_MALFORMED, "malformed JSON");
    EXPECT_FAIL("null", WS_ERR_MALFORMED, "malformed JSON");
    EXPECT_FAIL("{\"queryId\":\"q\",\"batchId\":1,\"sources\":[]} x", WS_ERR_MALFORMED,
                "end of file expected");
    CHECK(ws_notification_parse(NULL, 0, NULL, &(struct ws_notification){0}, NULL, 0) ==
          WS_ERR_MALFORMED);

    /* every proper prefix of a valid notification is refused */
    for (size_t cut = 0; cut < vlen; cut++)
        expect_fail_at(__LINE__, valid, cut, NULL, WS_ERR_MALFORMED, NULL);
    /* a raw NUL in the middle of the bytes (length-delimited input, not a C string) */
    {
        static const char nul[] = "{\"queryId\":\"q\"\0,\"batchId\":1,\"sources\":[]}";
        expect_fail_at(__LINE__, nul, sizeof nul - 1, NULL, WS_ERR_MALFORMED, "malformed JSON");
    }

    /* 100000 '[': jansson's depth limit, not the stack */
    buf = malloc(200001);
    memset(buf, '[', 100000);
    memset(buf + 100000, ']', 100000);
    buf[200000] = '\0';
    expect_fail_at(__LINE__, buf, 100000, NULL, WS_ERR_MALFORMED, "maximum parsing depth");
    expect_fail_at(__LINE__, buf, 200000, NULL, WS_ERR_MALFORMED, "maximum parsing depth");
    free(buf);
    buf = malloc(200100);
    strcpy(buf, "{\"queryId\":\"q\",\"batchId\":0,\"sources\":");
    {
        size_t hl = strlen(buf);
        memset(buf + hl, '{', 100000);
        buf[hl + 100000] = '\0';
    }
    EXPECT_FAIL(buf, WS_ERR_MALFORMED, "malformed JSON");
    free(buf);

    /* a 10 MB value: refused on length before any parsing */
    size_t ten = 10u * 1024 * 1024;
    buf = malloc(ten + 100);
    int h = snprintf(buf, 100, "{\"queryId\":\"q\",\"batchId\":0,\"sources\":[],\"name\":\"");
    memset(buf + h, 'x', ten);
    strcpy(buf + h + ten, "\"}");
    EXPECT_FAIL(buf, WS_ERR_TOO_LARGE, "limit (max_bytes) is 1048576");
    {
        struct ws_notification n;
        if (PARSE(buf, &big, &n)) { /* the same bytes are fine under a larger limit */
            CHECK(strlen(n.name) == ten);
            ws_notification_free(&n);
        }
    }
    free(buf);

    /* numbers beyond int64 */
    EXPECT_FAIL("{\"queryId\":\"q\",\"batchId\":1,\"sources\":[{\"topic\":\"t\",\"partition\":0,"
                "\"fromOffset\":0,\"untilOffset\":9223372036854775808}]}",
                WS_ERR_MALFORMED, "too big integer");
    EXPECT_FAIL("{\"queryId\":\"q\",\"batchId\":1,\"sources\":[{\"topic\":\"t\",\"partition\":0,"
                "\"fromOffset\":-9223372036854775809,\"untilOffset\":1}]}",
                WS_ERR_MALFORMED, "too big negative integer");
    EXPECT_FAIL("{\"queryId\":\"q\",\"batchId\":99999999999999999999999,\"sources\":[]}",
                WS_ERR_MALFORMED, "too big integer");
    EXPECT_FAIL("{\"id\":\"q\",\"batchId\":1,\"sources\":[{\"description\":\"k\","
                "\"startOffset\":{\"t\":{\"0\":1}},"
                "\"endOffset\":\"{\\\"t\\\":{\\\"0\\\":18446744073709551616}}\"}]}",
                WS_ERR_MALFORMED, "sources[0].endOffset: too big integer");

    /* duplicate keys, at the top, in a source, inside an offset string */
    EXPECT_FAIL("{\"queryId\":\"q\",\"batchId\":1,\"batchId\":2,\"sources\":[]}", WS_ERR_MALFORMED,
                "duplicate object key");
    EXPECT_FAIL("{\"queryId\":\"q\",\"batchId\":1,\"sources\":[{\"topic\":\"t\",\"partition\":0,"
                "\"fromOffset\":1,\"fromOffset\":0,\"untilOffset\":2}]}",
                WS_ERR_MALFORMED, "duplicate object key");
    EXPECT_FAIL("{\"id\":\"q\",\"batchId\":1,\"sources\":[{\"description\":\"k\","
                "\"startOffset\":\"{\\\"t\\\":{\\\"0\\\":1,\\\"0\\\":0}}\","
                "\"endOffset\":{\"t\":{\"0\":4}}}]}",
                WS_ERR_MALFORMED, "sources[0].startOffset: duplicate object key");
    EXPECT_FAIL("{\"id\":\"q\",\"batchId\":1,\"sources\":[{\"description\":\"k\","
                "\"startOffset\":{\"t\":{\"0\":1}},\"endOffset\":\"{\\\"t\\\":{\\\"0\\\":\"}]}",
                WS_ERR_MALFORMED, "sources[0].endOffset:");

    /* bad UTF-8: truncated sequence, overlong, surrogate, raw 0xff, in keys too */
    EXPECT_FAIL("{\"queryId\":\"q\",\"name\":\"caf\xc3\",\"batchId\":1,\"sources\":[]}",
                WS_ERR_MALFORMED, "unable to decode byte 0xc3");
    EXPECT_FAIL("{\"queryId\":\"q\",\"name\":\"\xc0\xaf\",\"batchId\":1,\"sources\":[]}",
                WS_ERR_MALFORMED, "malformed JSON");
    EXPECT_FAIL("{\"queryId\":\"q\",\"name\":\"\xed\xa0\x80\",\"batchId\":1,\"sources\":[]}",
                WS_ERR_MALFORMED, "malformed JSON");
    EXPECT_FAIL("{\"queryId\":\"q\",\"\xff\":1,\"batchId\":1,\"sources\":[]}", WS_ERR_MALFORMED,
                "malformed JSON");
    EXPECT_FAIL("{\"queryId\":\"q\xff\",\"batchId\":1,\"sources\":[]}", WS_ERR_MALFORMED,
                "malformed JSON");
    /* jansson quotes the offending token; the control byte must come out escaped */
    EXPECT_FAIL("{\"queryId\":\x01}", WS_ERR_MALFORMED, "invalid token near '\\x01'");
    /* unpaired \u surrogate escapes */
    EXPECT_FAIL("{\"queryId\":\"q\",\"name\":\"\\ud800\",\"batchId\":1,\"sources\":[]}",
                WS_ERR_MALFORMED, "malformed JSON");
}

/* ------------------------------------------------------------------------------------------ */

static void test_offsets(void)
{
    EXPECT_FAIL("{\"queryId\":\"q\",\"batchId\":1,\"sources\":[{\"topic\":\"orders\","
                "\"partition\":0,\"fromOffset\":200,\"untilOffset\":100}]}",
                WS_ERR_INVALID, "inverted range orders[0]: fromOffset 200 > untilOffset 100");
    EXPECT_FAIL("{\"queryId\":\"q\",\"batchId\":1,\"sources\":[{\"topic\":\"orders\","
                "\"partition\":3,\"fromOffset\":-1,\"untilOffset\":100}]}",
                WS_ERR_INVALID, "negative offset orders[3]: fromOffset -1");
    /* the unresolved marker is not accepted from the native shape */
    EXPECT_FAIL("{\"queryId\":\"q\",\"batchId\":1,\"sources\":[{\"topic\":\"orders\","
                "\"partition\":3,\"fromOffset\":-2,\"untilOffset\":100}]}",
                WS_ERR_INVALID, "negative offset orders[3]: fromOffset -2");
    EXPECT_FAIL("{\"queryId\":\"q\",\"batchId\":1,\"sources\":[{\"topic\":\"orders\","
                "\"partition\":3,\"fromOffset\":0,\"untilOffset\":-5}]}",
                WS_ERR_INVALID, "negative offset orders[3]: untilOffset -5");
    EXPECT_FAIL("{\"queryId\":\"q\",\"batchId\":-1,\"sources\":[]}", WS_ERR_INVALID,
                "batchId -1 is negative");
    EXPECT_FAIL("{\"queryId\":\"q\",\"batchId\":1,\"sources\":[{\"topic\":\"orders\","
                "\"partition\":-1,\"fromOffset\":0,\"untilOffset\":5}]}",
                WS_ERR_INVALID, "sources[0].partition -1 is outside 0..2147483647");
    EXPECT_FAIL("{\"queryId\":\"q\",\"batchId\":1,\"sources\":[{\"topic\":\"orders\","
                "\"partition\":2147483648,\"fromOffset\":0,\"untilOffset\":5}]}",
                WS_ERR_INVALID, "outside 0..2147483647");
    /* Spark's special -2 (earliest) / -1 (latest) in progress offsets */
    EXPECT_FAIL("{\"id\":\"q\",\"batchId\":1,\"sources\":[{\"description\":\"k\","
                "\"startOffset\":{\"t\":{\"0\":-2}},\"endOffset\":{\"t\":{\"0\":4}}}]}",
                WS_ERR_INVALID, "sources[0].startOffset t[0] is -2: negative offsets");
    EXPECT_FAIL("{\"id\":\"q\",\"batchId\":1,\"sources\":[{\"description\":\"k\","
                "\"startOffset\":{\"t\":{\"0\":1}},\"endOffset\":{\"t\":{\"0\":-1}}}]}",
                WS_ERR_INVALID, "sources[0].endOffset t[0] is -1");
    EXPECT_FAIL("{\"id\":\"q\",\"batchId\":1,\"sources\":[{\"description\":\"k\","
                "\"startOffset\":{\"t\":{\"4\":9}},\"endOffset\":{\"t\":{\"4\":8}}}]}",
                WS_ERR_INVALID, "inverted range t[4]: fromOffset 9 > untilOffset 8");

    /* a partition of endOffset missing from startOffset (partition, then whole topic) */
    EXPECT_FAIL("{\"id\":\"q\",\"batchId\":1,\"sources\":[{\"description\":\"k\","
                "\"startOffset\":{\"orders\":{\"0\":1}},"
                "\"endOffset\":{\"orders\":{\"0\":2,\"1\":5}}}]}",
                WS_ERR_MALFORMED, "partition orders[1] is in endOffset but not in startOffset");
    EXPECT_FAIL("{\"id\":\"q\",\"batchId\":1,\"sources\":[{\"description\":\"k\","
                "\"startOffset\":{\"orders\":{\"0\":1}},"
                "\"endOffset\":{\"orders\":{\"0\":2},\"pay\":{\"3\":5}}}]}",
                WS_ERR_MALFORMED, "partition pay[3] is in endOffset but not in startOffset");

    /* the same topic-partition twice: native, and across progress sources */
    EXPECT_FAIL("{\"queryId\":\"q\",\"batchId\":1,\"sources\":["
                "{\"topic\":\"orders\",\"partition\":0,\"fromOffset\":1,\"untilOffset\":2},"
                "{\"topic\":\"x\",\"partition\":0,\"fromOffset\":1,\"untilOffset\":2},"
                "{\"topic\":\"orders\",\"partition\":0,\"fromOffset\":1,\"untilOffset\":2}]}",
                WS_ERR_MALFORMED, "duplicate topic-partition orders[0]");
    EXPECT_FAIL("{\"id\":\"q\",\"batchId\":1,\"sources\":["
                "{\"description\":\"k1\",\"startOffset\":{\"t\":{\"2\":1}},"
                "\"endOffset\":{\"t\":{\"2\":4}}},"
                "{\"description\":\"k2\",\"startOffset\":{\"t\":{\"2\":1}},"
                "\"endOffset\":{\"t\":{\"2\":4}}}]}",
                WS_ERR_MALFORMED, "duplicate topic-partition t[2]");

    /* partition keys must be canonical decimals */
    static const char *const badkeys[] = {"-1",         "007",         "1x",  "+1",
                                          "2147483648", "99999999999", "0x1", "1 "};
    for (size_t i = 0; i < sizeof badkeys / sizeof *badkeys; i++) {
        char json[512];
        snprintf(json, sizeof json,
                 "{\"id\":\"q\",\"batchId\":1,\"sources\":[{\"description\":\"k\","
                 "\"startOffset\":{\"t\":{\"%s\":1}},\"endOffset\":{\"t\":{\"%s\":4}}}]}",
                 badkeys[i], badkeys[i]);
        EXPECT_FAIL(json, WS_ERR_MALFORMED, "is not a decimal partition number");
    }
}

/* ------------------------------------------------------------------------------------------ */

static void test_query_ids(void)
{
    char json[1024], id[201];

    EXPECT_FAIL("{\"queryId\":\"tenant/q\",\"batchId\":1,\"sources\":[]}", WS_ERR_UNSAFE_ID,
                "\"tenant/q\" contains '/' at byte 6");
    EXPECT_FAIL("{\"queryId\":\"..\",\"batchId\":1,\"sources\":[]}", WS_ERR_UNSAFE_ID,
                "\"..\" starts with '.'");
    EXPECT_FAIL("{\"queryId\":\"../../etc/passwd\",\"batchId\":1,\"sources\":[]}", WS_ERR_UNSAFE_ID,
                "starts with '.'");
    EXPECT_FAIL("{\"queryId\":\"a/../b\",\"batchId\":1,\"sources\":[]}", WS_ERR_UNSAFE_ID,
                "contains '/'");
    EXPECT_FAIL("{\"queryId\":\".hidden\",\"batchId\":1,\"sources\":[]}", WS_ERR_UNSAFE_ID,
                "starts with '.'");
    EXPECT_FAIL("{\"queryId\":\"abc\\u0000def\",\"batchId\":1,\"sources\":[]}", WS_ERR_UNSAFE_ID,
                "\"abc\\x00def\" contains a NUL character at byte 3");
    EXPECT_FAIL("{\"queryId\":\"\",\"batchId\":1,\"sources\":[]}", WS_ERR_UNSAFE_ID, "is empty");
    EXPECT_FAIL("{\"queryId\":\"a\\u0001\\u001b[31m\",\"batchId\":1,\"sources\":[]}",
                WS_ERR_UNSAFE_ID, "\"a\\x01\\x1b[31m\" contains byte 0x01 at byte 1");
    EXPECT_FAIL("{\"queryId\":\"caf\xc3\xa9\",\"batchId\":1,\"sources\":[]}", WS_ERR_UNSAFE_ID,
                "\"caf\\xc3\\xa9\" contains byte 0xc3");
    EXPECT_FAIL("{\"queryId\":\"a b\",\"batchId\":1,\"sources\":[]}", WS_ERR_UNSAFE_ID,
                "'/', '..', NUL and ids over 128 characters are refused");
    EXPECT_FAIL("{\"queryId\":12345,\"batchId\":1,\"sources\":[]}", WS_ERR_UNSAFE_ID,
                "queryId must be a string");
    EXPECT_FAIL("{\"queryId\":null,\"batchId\":1,\"sources\":[]}", WS_ERR_UNSAFE_ID,
                "queryId must be a string (the query id), not null");
    EXPECT_FAIL("{\"id\":\"x/y\",\"batchId\":1,\"sources\":[]}", WS_ERR_UNSAFE_ID,
                "unsafe query id in id:");
    EXPECT_FAIL("{\"id\":[\"x\"],\"batchId\":1,\"sources\":[]}", WS_ERR_UNSAFE_ID,
                "id must be a string");

    memset(id, 'q', 200);
    id[200] = '\0';
    snprintf(json, sizeof json, "{\"queryId\":\"%s\",\"batchId\":1,\"sources\":[]}", id);
    EXPECT_FAIL(json, WS_ERR_UNSAFE_ID, "is 200 bytes long (max 128)");
    /* shown truncated: the reason never carries the whole 200 bytes */
    {
        struct ws_notification n;
        char eb[1024];
        CHECK(ws_notification_parse(json, strlen(json), NULL, &n, eb, sizeof eb) ==
              WS_ERR_UNSAFE_ID);
        CHECK(strstr(eb, id) == NULL && strstr(eb, "...") != NULL);
    }
    /* 128 is the longest allowed, 129 is refused */
    id[128] = '\0';
    snprintf(json, sizeof json, "{\"queryId\":\"%s\",\"batchId\":1,\"sources\":[]}", id);
    {
        struct ws_notification n;
        if (PARSE(json, NULL, &n)) {
            CHECK(strlen(n.query_id) == 128);
            ws_notification_free(&n);
        }
    }
    id[128] = 'q';
    id[129] = '\0';
    snprintf(json, sizeof json, "{\"queryId\":\"%s\",\"batchId\":1,\"sources\":[]}", id);
    EXPECT_FAIL(json, WS_ERR_UNSAFE_ID, "is 129 bytes long");
    /* dots inside are fine: ".." is refused because it leads, not because it appears */
    {
        struct ws_notification n;
        if (PARSE("{\"queryId\":\"a..b_C-9\",\"batchId\":1,\"sources\":[]}", NULL, &n)) {
            CHECK(strcmp(n.query_id, "a..b_C-9") == 0);
            ws_notification_free(&n);
        }
    }
}

/* ------------------------------------------------------------------------------------------ */

static void test_types(void)
{
    /* a native notification with one field replaced: each must be refused with its path named */
    static const struct {
        const char *src; /* fragment spliced into a native notification */
        ws_err_t want;
        const char *reason;
    } native[] = {
        {"\"batchId\":\"1\",\"sources\":[]", WS_ERR_MALFORMED,
         "batchId must be an integer, not a string"},
        {"\"batchId\":1.0,\"sources\":[]", WS_ERR_MALFORMED,
         "batchId must be an integer, not a real"},
        {"\"batchId\":true,\"sources\":[]", WS_ERR_MALFORMED, "not a boolean"},
        {"\"sources\":[]", WS_ERR_MALFORMED, "batchId is missing"},
        {"\"batchId\":1", WS_ERR_MALFORMED, "sources is missing"},
        {"\"batchId\":1,\"sources\":{}", WS_ERR_MALFORMED,
         "sources must be an array, not an object"},
        {"\"batchId\":1,\"sources\":null", WS_ERR_MALFORMED, "sources must be an array, not null"},
        {"\"batchId\":1,\"sources\":[\"t\"]", WS_ERR_MALFORMED, "sources[0] must be an object"},
        {"\"batchId\":1,\"sources\":[{\"partition\":0,\"fromOffset\":0,\"untilOffset\":1}]",
         WS_ERR_MALFORMED, "sources[0].topic is missing"},
        {"\"batchId\":1,\"sources\":[{\"topic\":5,\"partition\":0,\"fromOffset\":0,"
         "\"untilOffset\":1}]",
         WS_ERR_MALFORMED, "sources[0].topic must be a string, not an integer"},
        {"\"batchId\":1,\"sources\":[{\"topic\":\"\",\"partition\":0,\"fromOffset\":0,"
         "\"untilOffset\":1}]",
         WS_ERR_MALFORMED, "\"\" is not a Kafka topic name"},
        {"\"batchId\":1,\"sources\":[{\"topic\":\"a b\",\"partition\":0,\"fromOffset\":0,"
         "\"untilOffset\":1}]",
         WS_ERR_MALFORMED, "\"a b\" is not a Kafka topic name"},
        {"\"batchId\":1,\"sources\":[{\"topic\":\"..\",\"partition\":0,\"fromOffset\":0,"
         "\"untilOffset\":1}]",
         WS_ERR_MALFORMED, "is not a Kafka topic name"},
        {"\"batchId\":1,\"sources\":[{\"topic\":\"t\\u0000x\",\"partition\":0,\"fromOffset\":0,"
         "\"untilOffset\":1}]",
         WS_ERR_MALFORMED, "\"t\\x00x\" is not a Kafka topic name"},
        {"\"batchId\":1,\"sources\":[{\"topic\":\"t\",\"partition\":\"0\",\"fromOffset\":0,"
         "\"untilOffset\":1}]",
         WS_ERR_MALFORMED, "sources[0].partition must be an integer"},
        {"\"batchId\":1,\"sources\":[{\"topic\":\"t\",\"partition\":0,\"fromOffset\":\"0\","
         "\"untilOffset\":1}]",
         WS_ERR_MALFORMED, "sources[0].fromOffset must be an integer"},
        {"\"batchId\":1,\"sources\":[{\"topic\":\"t\",\"partition\":0,\"fromOffset\":0,"
         "\"untilOffset\":null}]",
         WS_ERR_MALFORMED, "sources[0].untilOffset must be an integer, not null"},
        {"\"batchId\":1,\"sources\":[{\"topic\":\"t\",\"partition\":0,\"fromOffset\":0}]",
         WS_ERR_MALFORMED, "sources[0].untilOffset is missing"},
        {"\"batchId\":1,\"sources\":[{\"topic\":\"t\",\"partition\":0,\"fromOffset\":0,"
         "\"untilOffset\":1e2}]",
         WS_ERR_MALFORMED, "not a real number"},
        {"\"batchId\":1,\"sources\":[],\"runId\":5", WS_ERR_MALFORMED, "runId must be a string"},
        {"\"batchId\":1,\"sources\":[],\"name\":[]", WS_ERR_MALFORMED,
         "name must be a string, not an array"},
        {"\"batchId\":1,\"sources\":[],\"name\":\"a\\u0000b\"", WS_ERR_MALFORMED,
         "name contains a NUL"},
        {"\"batchId\":1,\"sources\":[],\"outputs\":{}", WS_ERR_MALFORMED,
         "outputs must be an array"},
        {"\"batchId\":1,\"sources\":[],\"outputs\":[1]", WS_ERR_MALFORMED,
         "outputs[0] must be an object"},
        {"\"batchId\":1,\"sources\":[],\"outputs\":[{\"files\":[]}]", WS_ERR_MALFORMED,
         "outputs[0].name is missing"},
        {"\"batchId\":1,\"sources\":[],\"outputs\":[{\"name\":null}]", WS_ERR_MALFORMED,
         "outputs[0].name is missing"},
        {"\"batchId\":1,\"sources\":[],\"outputs\":[{\"name\":\"o\\u0000\"}]", WS_ERR_MALFORMED,
         "outputs[0].name contains a NUL"},
        {"\"batchId\":1,\"sources\":[],\"outputs\":[{\"name\":7}]", WS_ERR_MALFORMED,
         "outputs[0].name must be a string"},
        {"\"batchId\":1,\"sources\":[],\"outputs\":[{\"name\":\"o\",\"snapshotId\":1.5}]",
         WS_ERR_MALFORMED, "outputs[0].snapshotId must be a string or an integer, not a real"},
        {"\"batchId\":1,\"sources\":[],\"outputs\":[{\"name\":\"o\",\"snapshotId\":false}]",
         WS_ERR_MALFORMED, "snapshotId must be a string or an integer"},
        {"\"batchId\":1,\"sources\":[],\"outputs\":[{\"name\":\"o\",\"files\":\"f\"}]",
         WS_ERR_MALFORMED, "outputs[0].files must be an array"},
        {"\"batchId\":1,\"sources\":[],\"outputs\":[{\"name\":\"o\"},{\"name\":\"p\",\"files\":"
         "[\"a\",2]}]",
         WS_ERR_MALFORMED, "outputs[1].files[1] must be a string, not an integer"},
        {"\"batchId\":1,\"sources\":[],\"outputs\":[{\"name\":\"o\",\"files\":[null]}]",
         WS_ERR_MALFORMED, "outputs[0].files[0] must be a string, not null"},
        {"\"batchId\":1,\"sources\":[],\"outputs\":[{\"name\":\"o\",\"files\":[\"a\\u0000\"]}]",
         WS_ERR_MALFORMED, "outputs[0].files[0] contains a NUL"},
    };
    /* progress-shape mutations of one source */
    static const struct {
        const char *src;
        ws_err_t want;
        const char *reason;
    } progress[] = {
        {"\"batchId\":\"1\",\"sources\":[]", WS_ERR_MALFORMED, "batchId must be an integer"},
        {"\"batchId\":1,\"sources\":\"[]\"", WS_ERR_MALFORMED, "sources must be an array"},
        {"\"batchId\":1", WS_ERR_MALFORMED, "sources is missing"},
        {"\"batchId\":1,\"name\":3,\"sources\":[]", WS_ERR_MALFORMED, "name must be a string"},
        {"\"batchId\":1,\"sources\":[[]]", WS_ERR_MALFORMED,
         "sources[0] must be an object, not an array"},
        {"\"batchId\":1,\"sources\":[{\"endOffset\":{}}]", WS_ERR_MALFORMED,
         "sources[0].description is missing"},
        {"\"batchId\":1,\"sources\":[{\"description\":5}]", WS_ERR_MALFORMED,
         "sources[0].description must be a string, not an integer"},
        {"\"batchId\":1,\"sources\":[{\"description\":\"d\\u0000\",\"endOffset\":1}]",
         WS_ERR_MALFORMED, "description contains a NUL"},
        {"\"batchId\":1,\"sources\":[{\"description\":\"k\",\"startOffset\":{\"t\":{\"0\":1}},"
         "\"endOffset\":{\"t\":{\"0\":\"5\"}}}]",
         WS_ERR_MALFORMED, "sources[0].endOffset t[0] must be an integer, not a string"},
        {"\"batchId\":1,\"sources\":[{\"description\":\"k\",\"startOffset\":{\"t\":{\"0\":1.5}},"
         "\"endOffset\":{\"t\":{\"0\":5}}}]",
         WS_ERR_MALFORMED, "sources[0].startOffset t[0] must be an integer, not a real"},
        {"\"batchId\":1,\"sources\":[{\"description\":\"k\",\"startOffset\":{\"t\":{\"0\":null}},"
         "\"endOffset\":{\"t\":{\"0\":5}}}]",
         WS_ERR_MALFORMED, "must be an integer, not null"},
        {"\"batchId\":1,\"sources\":[{\"description\":\"Kafka\",\"startOffset\":5,"
         "\"endOffset\":{\"t\":{\"0\":5}}}]",
         WS_ERR_MALFORMED,
         "sources[0] (Kafka): endOffset is a Kafka offset map but startOffset is not"},
        {"\"batchId\":1,\"sources\":[{\"description\":\"k\",\"startOffset\":{\"t\":5},"
         "\"endOffset\":{\"t\":{\"0\":5}}}]",
         WS_ERR_MALFORMED, "startOffset is not"},
        {"\"batchId\":1,\"sources\":[{\"description\":\"k\",\"startOffset\":\"{bad\","
         "\"endOffset\":{\"t\":{\"0\":5}}}]",
         WS_ERR_MALFORMED, "sources[0].startOffset:"},
        {"\"batchId\":1,\"sources\":[{\"description\":\"k\",\"startOffset\":{\"t\":{\"0\":1}},"
         "\"endOffset\":{\"t\":{\"0\":{\"a\":1}}}}]",
         WS_ERR_MALFORMED, "must be an integer, not an object"},
        {"\"batchId\":1,\"sources\":[{\"description\":\"k\",\"startOffset\":{\"t/x\":{\"0\":1}},"
         "\"endOffset\":{\"t/x\":{\"0\":5}}}]",
         WS_ERR_MALFORMED, "sources[0].endOffset: \"t/x\" is not a Kafka topic name"},
    };
    char json[1024];

    for (size_t i = 0; i < sizeof native / sizeof *native; i++) {
        snprintf(json, sizeof json, "{\"queryId\":\"q\",%s}", native[i].src);
        expect_fail_at(__LINE__, json, strlen(json), NULL, native[i].want, native[i].reason);
    }
    for (size_t i = 0; i < sizeof progress / sizeof *progress; i++) {
        snprintf(json, sizeof json, "{\"id\":\"q\",%s}", progress[i].src);
        expect_fail_at(__LINE__, json, strlen(json), NULL, progress[i].want, progress[i].reason);
    }

    /* unknown shapes */
    static const char *const unknown[] = {
        "{}", "{\"id\":\"q\",\"sources\":[]}", "{\"batchId\":1,\"sources\":[]}", "[1,2]",
        "[]", "{\"query\":\"q\",\"batch\":1}"};
    for (size_t i = 0; i < sizeof unknown / sizeof *unknown; i++)
        expect_fail_at(__LINE__, unknown[i], strlen(unknown[i]), NULL, WS_ERR_MALFORMED,
                       "unknown notification shape: expected queryId (native) or id + batchId "
                       "(Spark progress)");
}

/* ------------------------------------------------------------------------------------------ */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void test_limits(void)
{
    const size_t million = 1000000;
    struct ws_notif_opts o = {.max_bytes = 256u * 1024 * 1024};
    size_t cap = million * 80 + 100, len;
    char *buf = malloc(cap);
    double t0, dt;

    /* a million real sources: refused by max_sources during the pre-scan, before jansson */
    len = (size_t)snprintf(buf, cap, "{\"queryId\":\"q\",\"batchId\":1,\"sources\":[");
    for (size_t i = 0; i < million; i++)
        len += (size_t)snprintf(buf + len, cap - len,
                                "%s{\"topic\":\"t\",\"partition\":%zu,\"fromOffset\":0,"
                                "\"untilOffset\":1}",
                                i ? "," : "", i);
    len += (size_t)snprintf(buf + len, cap - len, "]}");
    t0 = now_s();
    expect_fail_at(__LINE__, buf, len, &o, WS_ERR_TOO_LARGE,
                   "more than 100000 sources (max_sources)");
    dt = now_s() - t0;
    printf("million sources (%zu bytes) rejected in %.3f s\n", len, dt);
    CHECK(dt < 2.0);
    /* the same for the progress shape (a million tiny sources) */
    len = (size_t)snprintf(buf, cap, "{\"id\":\"q\",\"batchId\":1,\"sources\":[");
    for (size_t i = 0; i < million; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s{}", i ? "," : "");
    len += (size_t)snprintf(buf + len, cap - len, "]}");
    expect_fail_at(__LINE__, buf, len, &o, WS_ERR_TOO_LARGE, "(max_sources)");
    /* and a million values anywhere else: the generic value cap */
    len = (size_t)snprintf(buf, cap, "{\"queryId\":\"q\",\"batchId\":1,\"sources\":[],\"x\":[");
    for (size_t i = 0; i < 2 * million; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s[]", i ? "," : "");
    len += (size_t)snprintf(buf + len, cap - len, "]}");
    expect_fail_at(__LINE__, buf, len, &o, WS_ERR_TOO_LARGE, "JSON values");
    free(buf);

    /* values hidden inside an offset string are counted too */
    buf = malloc(400000);
    len = (size_t)snprintf(buf, 400000,
                           "{\"id\":\"q\",\"batchId\":1,\"sources\":[{\"description\":\"k\","
                           "\"endOffset\":\"{\\\"x\\\":[");
    for (size_t i = 0; i < 100000; i++)
        len += (size_t)snprintf(buf + len, 400000 - len, "%s[]", i ? "," : "");
    len += (size_t)snprintf(buf + len, 400000 - len, "]}\"}]}");
    {
        struct ws_notif_opts small = {.max_sources = 2, .max_files = 2}; /* 8*4+65536 values */
        expect_fail_at(__LINE__, buf, len, &small, WS_ERR_TOO_LARGE, "more than 65568 JSON values");
    }
    free(buf);

    /* DOM-side checks: an escaped key dodges the pre-scan but not the limit */
    struct ws_notif_opts two = {.max_sources = 2, .max_files = 2};
    EXPECT_FAIL_OPTS("{\"queryId\":\"q\",\"batchId\":1,\"sour\\u0063es\":[{},{},{}]}", &two,
                     WS_ERR_TOO_LARGE, "more than 2 sources");
    EXPECT_FAIL_OPTS("{\"queryId\":\"q\",\"batchId\":1,\"sources\":[{},{},{}]}", &two,
                     WS_ERR_TOO_LARGE, "more than 2 sources");
    EXPECT_FAIL_OPTS("{\"queryId\":\"q\",\"batchId\":1,\"sources\":[\"a\",\"b\",\"c\"]}", &two,
                     WS_ERR_TOO_LARGE, "more than 2 sources");
    EXPECT_FAIL_OPTS("{\"id\":\"q\",\"batchId\":1,\"sour\\u0063es\":[{},{},{}]}", &two,
                     WS_ERR_TOO_LARGE, "more than 2 sources");
    /* ranges, not source elements, in the progress shape */
    EXPECT_FAIL_OPTS("{\"id\":\"q\",\"batchId\":1,\"sources\":[{\"description\":\"k\","
                     "\"startOffset\":{\"t\":{\"0\":1,\"1\":1,\"2\":1}},"
                     "\"endOffset\":{\"t\":{\"0\":1,\"1\":1,\"2\":1}}}]}",
                     &two, WS_ERR_TOO_LARGE, "more than 2 sources (max_sources)");
    EXPECT_FAIL_OPTS(
        "{\"queryId\":\"q\",\"batchId\":1,\"sources\":[],\"outputs\":["
        "{\"name\":\"a\",\"files\":[\"1\",\"2\"]},{\"name\":\"b\",\"files\":[\"3\"]}]}",
        &two, WS_ERR_TOO_LARGE, "more than 2 files (max_files)");
    {
        struct ws_notification n;
        if (PARSE("{\"queryId\":\"q\",\"batchId\":1,\"sources\":[{\"topic\":\"t\",\"partition\":0,"
                  "\"fromOffset\":0,\"untilOffset\":1},{\"topic\":\"t\",\"partition\":1,"
                  "\"fromOffset\":0,\"untilOffset\":1}],\"outputs\":[{\"name\":\"a\",\"files\":"
                  "[\"1\"]},{\"name\":\"b\",\"files\":[\"2\"]}]}",
                  &two, &n)) {
            CHECK(n.nsources == 2 && n.noutputs == 2); /* exactly at the limits */
            ws_notification_free(&n);
        }
    }
    /* max_bytes is checked on the length alone */
    struct ws_notif_opts tiny = {.max_bytes = 10};
    EXPECT_FAIL_OPTS("{\"queryId\":\"q\",\"batchId\":1,\"sources\":[]}", &tiny, WS_ERR_TOO_LARGE,
                     "is 40 bytes; the limit (max_bytes) is 10");
}

/* ------------------------------------------------------------------------------------------ */

/* The canonical encoding, written out here independently of the parser. */
static void expected_digest(const char *const *topics, const int32_t *parts, const int64_t *from,
                            const int64_t *until, size_t n, uint8_t out[WS_HASH_LEN])
{
    uint8_t buf[4096];
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        size_t tl = strlen(topics[i]);
        buf[o++] = (uint8_t)(tl >> 8);
        buf[o++] = (uint8_t)tl;
        memcpy(buf + o, topics[i], tl);
        o += tl;
        for (int b = 3; b >= 0; b--)
            buf[o++] = (uint8_t)((uint32_t)parts[i] >> (8 * b));
        for (int b = 7; b >= 0; b--)
            buf[o++] = (uint8_t)((uint64_t)from[i] >> (8 * b));
        for (int b = 7; b >= 0; b--)
            buf[o++] = (uint8_t)((uint64_t)until[i] >> (8 * b));
    }
    ws_sha256(buf, o, out);
}

static void test_digest(void)
{
    static const char order1[] =
        "{\"queryId\":\"q\",\"batchId\":1,\"sources\":["
        "{\"topic\":\"b\",\"partition\":0,\"fromOffset\":1,\"untilOffset\":2},"
        "{\"topic\":\"a\",\"partition\":10,\"fromOffset\":300,\"untilOffset\":4294967296},"
        "{\"topic\":\"a\",\"partition\":2,\"fromOffset\":5,\"untilOffset\":6}]}";
    static const char order2[] =
        "{\"sources\":["
        "{\"untilOffset\":6,\"fromOffset\":5,\"partition\":2,\"topic\":\"a\"},"
        "{\"topic\":\"b\",\"partition\":0,\"fromOffset\":1,\"untilOffset\":2},"
        "{\"topic\":\"a\",\"partition\":10,\"fromOffset\":300,\"untilOffset\":4294967296}],"
        "\"batchId\":9,\"queryId\":\"other\",\"runId\":\"r\"}";
    static const char changed[] =
        "{\"queryId\":\"q\",\"batchId\":1,\"sources\":["
        "{\"topic\":\"b\",\"partition\":0,\"fromOffset\":1,\"untilOffset\":3},"
        "{\"topic\":\"a\",\"partition\":10,\"fromOffset\":300,\"untilOffset\":4294967296},"
        "{\"topic\":\"a\",\"partition\":2,\"fromOffset\":5,\"untilOffset\":6}]}";
    /* same bytes regrouped: "a"+"b..." must not collide with "ab"+"..." */
    static const char regroup[] =
        "{\"queryId\":\"q\",\"batchId\":1,\"sources\":["
        "{\"topic\":\"ab\",\"partition\":0,\"fromOffset\":1,\"untilOffset\":2}]}";
    static const char *const topics[] = {"a", "a", "b"};
    static const int32_t parts[] = {2, 10, 0};
    static const int64_t from[] = {5, 300, 1}, until[] = {6, 4294967296LL, 2};
    struct ws_notification a, b, c, d, e;
    uint8_t da[WS_HASH_LEN], db[WS_HASH_LEN], dc[WS_HASH_LEN], dd[WS_HASH_LEN], de[WS_HASH_LEN],
        want[WS_HASH_LEN];

    if (!PARSE(order1, NULL, &a) || !PARSE(order2, NULL, &b) || !PARSE(changed, NULL, &c) ||
        !PARSE(regroup, NULL, &d) ||
        !PARSE("{\"queryId\":\"q\",\"batchId\":1,\"sources\":[]}", NULL, &e))
        return;
    ws_notification_sources_digest(&a, da);
    ws_notification_sources_digest(&b, db);
    ws_notification_sources_digest(&c, dc);
    ws_notification_sources_digest(&d, dd);
    ws_notification_sources_digest(&e, de);
    expected_digest(topics, parts, from, until, 3, want);
    CHECK(memcmp(da, want, WS_HASH_LEN) == 0);
    CHECK(memcmp(da, db, WS_HASH_LEN) == 0); /* other order, other ids: same sources */
    CHECK(memcmp(da, dc, WS_HASH_LEN) != 0); /* one offset changed */
    CHECK(memcmp(da, dd, WS_HASH_LEN) != 0);
    expected_digest(NULL, NULL, NULL, NULL, 0, want);
    CHECK(memcmp(de, want, WS_HASH_LEN) == 0); /* empty window: SHA-256 of nothing */
    /* progress shape: digest of the unresolved marker differs from a resolved 0 */
    {
        struct ws_notif_opts allow = {.allow_unresolved_start = true};
        struct ws_notification u, r;
        uint8_t du[WS_HASH_LEN], dr[WS_HASH_LEN];
        if (PARSE("{\"id\":\"q\",\"batchId\":0,\"sources\":[{\"description\":\"k\","
                  "\"startOffset\":null,\"endOffset\":{\"t\":{\"0\":4}},\"numInputRows\":1}]}",
                  &allow, &u) &&
            PARSE("{\"id\":\"q\",\"batchId\":0,\"sources\":[{\"description\":\"k\","
                  "\"startOffset\":{\"t\":{\"0\":0}},\"endOffset\":{\"t\":{\"0\":4}}}]}",
                  &allow, &r)) {
            ws_notification_sources_digest(&u, du);
            ws_notification_sources_digest(&r, dr);
            CHECK(memcmp(du, dr, WS_HASH_LEN) != 0);
            ws_notification_free(&u);
            ws_notification_free(&r);
        }
    }
    ws_notification_free(&a);
    ws_notification_free(&b);
    ws_notification_free(&c);
    ws_notification_free(&d);
    ws_notification_free(&e);
}

int main(void)
{
    test_native();
    test_progress();
    test_malformed();
    test_offsets();
    test_query_ids();
    test_types();
    test_limits();
    test_digest();
    if (failures) {
        fprintf(stderr, "test_window_notification: %u of %u checks FAILED\n", failures, checks);
        return 1;
    }
    printf("test_window_notification: %u checks passed\n", checks);
    return 0;
}
