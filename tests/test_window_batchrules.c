/*
 * test_window_batchrules.c — which notifications are batches (FORMAT.md §1.1):
 * the key rule, idle triggers, Kafka sources by name, "None" and
 * "null" starts, no Kafka source, batch 0 under initial_offsets=reject and earliest, and
 * reportedInputRows; and the corpus tests/data/notifications (ok-*.json parse, err-<NAME>-*.json fail
 * with WS_ERR_<NAME>). The same rules run end to end on the embedded broker in it_spark.sh.
 */
#include "window/window.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "notif_check.h"

/* ------------------------------------------------------------------------------------------ */
/* Which notifications are batches (FORMAT.md §1.1): key, idle trigger, sources, batch 0.      */

#define KSRC(start, end, rows)                                                                     \
    "{\"description\":\"KafkaV2[Subscribe[t]]\",\"startOffset\":" start ",\"endOffset\":" end      \
    ",\"numInputRows\":" rows "}"

static void test_batch_rules(void)
{
    struct ws_notif_opts key_q = {.check_key = true, .key = "q", .key_len = 1};
    struct ws_notif_opts key_other = {.check_key = true, .key = "other", .key_len = 5};
    struct ws_notif_opts key_null = {.check_key = true, .key = NULL};
    struct ws_notif_opts key_prefix = {.check_key = true, .key = "qq", .key_len = 1};
    struct ws_notif_opts key_long = {.check_key = true, .key = "qq", .key_len = 2};
    struct ws_notif_opts early = {.allow_unresolved_start = true};
    struct ws_notification n;
    const char *idle = "{\"id\":\"q\",\"batchId\":7,\"durationMs\":{\"latestOffset\":2,"
                       "\"triggerExecution\":3},\"sources\":[" KSRC("{\"t\":{\"0\":9}}",
                                                                    "{\"t\":{\"0\":9}}", "0") "]}";
    const char *real = "{\"id\":\"q\",\"batchId\":7,\"durationMs\":{\"addBatch\":5,"
                       "\"triggerExecution\":9},\"sources\":[" KSRC("{\"t\":{\"0\":3}}",
                                                                    "{\"t\":{\"0\":9}}", "6") "]}";

    /* 1. the key rule, first of all: null and other keys named with the query id */
    EXPECT_FAIL_OPTS(real, &key_other, WS_ERR_KEY_MISMATCH,
                     "message key \"other\" is not the query id: id is \"q\"");
    EXPECT_FAIL_OPTS(real, &key_null, WS_ERR_KEY_MISMATCH, "message key is null but id is \"q\"");
    EXPECT_FAIL_OPTS(real, &key_long, WS_ERR_KEY_MISMATCH, "message key \"qq\"");
    EXPECT_FAIL_OPTS(idle, &key_other, WS_ERR_KEY_MISMATCH, "not the query id");
    EXPECT_FAIL_OPTS("{\"queryId\":\"q\",\"batchId\":1,\"sources\":[]}", &key_null,
                     WS_ERR_KEY_MISMATCH, "queryId is \"q\"");
    if (PARSE(real, &key_q, &n)) {
        CHECK(!n.idle && n.nsources == 1 && n.reported_input_rows == 6);
        ws_notification_free(&n);
    }
    if (PARSE(real, &key_prefix, &n)) { /* key_len, not the C string, is the key */
        ws_notification_free(&n);
    }
    /* a key that passes cannot make an unsafe id acceptable */
    EXPECT_FAIL_OPTS("{\"id\":\"../q\",\"batchId\":1,\"sources\":[]}", &key_q, WS_ERR_UNSAFE_ID,
                     "unsafe query id");

    /* 2. idle triggers: durationMs without addBatch, whatever the sources say */
    if (PARSE(idle, &key_q, &n)) {
        CHECK(n.idle && n.batch_id == 7 && strcmp(n.query_id, "q") == 0);
        CHECK(n.nsources == 0 && n.ninputs == 0 && n.reported_input_rows == -1);
        ws_notification_free(&n);
    }
    if (PARSE("{\"id\":\"q\",\"batchId\":0,\"durationMs\":{\"triggerExecution\":1},"
              "\"sources\":[{\"description\":\"RateStreamV2\",\"endOffset\":5}]}",
              NULL, &n)) { /* no Kafka source, but idle first: not dead-lettered */
        CHECK(n.idle);
        ws_notification_free(&n);
    }
    if (PARSE("{\"id\":\"q\",\"batchId\":0,\"durationMs\":{},\"sources\":[" KSRC(
                  "null", "{\"t\":{\"0\":0}}", "0") "]}",
              NULL, &n)) { /* batch 0's idle trigger with a null start is still idle */
        CHECK(n.idle);
        ws_notification_free(&n);
    }
    /* a stateful no-data batch runs addBatch with empty ranges: a real (empty) batch */
    if (PARSE("{\"id\":\"q\",\"batchId\":8,\"durationMs\":{\"addBatch\":40},\"sources\":[" KSRC(
                  "{\"t\":{\"0\":9}}", "{\"t\":{\"0\":9}}", "0") "]}",
              NULL, &n)) {
        CHECK(!n.idle && n.nsources == 1 && src_is(&n.sources[0], "t", 0, 9, 9));
        CHECK(n.reported_input_rows == 0);
        ws_notification_free(&n);
    }
    EXPECT_FAIL("{\"id\":\"q\",\"batchId\":8,\"durationMs\":5,\"sources\":[]}", WS_ERR_MALFORMED,
                "durationMs must be an object, not an integer");
    /* no durationMs at all (a hand-made progress): not idle */
    if (PARSE("{\"id\":\"q\",\"batchId\":8,\"sources\":[" KSRC("{\"t\":{\"0\":1}}",
                                                               "{\"t\":{\"0\":2}}", "1") "]}",
              NULL, &n)) {
        CHECK(!n.idle);
        ws_notification_free(&n);
    }

    /* 3. Kafka sources by name: no offset map is malformed, never an empty window */
    EXPECT_FAIL("{\"id\":\"q\",\"batchId\":3,\"sources\":[{\"description\":\"KafkaV2[Subscribe["
                "t]]\",\"numInputRows\":4}]}",
                WS_ERR_MALFORMED,
                "sources[0] (KafkaV2[Subscribe[t]]) is a Kafka source but its endOffset is null "
                "or missing, not a Kafka offset map");
    EXPECT_FAIL("{\"id\":\"q\",\"batchId\":3,\"sources\":[{\"description\":\"KafkaSource[Assign["
                "t-0]]\",\"startOffset\":{\"t\":{\"0\":1}},\"endOffset\":\"7\"}]}",
                WS_ERR_MALFORMED, "endOffset is something else, not a Kafka offset map");
    EXPECT_FAIL(
        "{\"id\":\"q\",\"batchId\":3,\"sources\":[" KSRC("5", "{\"t\":{\"0\":7}}", "2") "]}",
        WS_ERR_MALFORMED, "startOffset is not a Kafka offset map");
    /* Python's repr of the offsets (str(dict)) is no JSON: an error for a Kafka source ... */
    EXPECT_FAIL("{\"id\":\"q\",\"batchId\":3,\"sources\":[{\"description\":\"KafkaV2[Subscribe["
                "t]]\",\"startOffset\":\"{'t': {'0': 1}}\",\"endOffset\":\"{'t': {'0': 3}}\"}]}",
                WS_ERR_MALFORMED,
                "sources[0].endOffset of a Kafka source is a string that is not a Kafka offset map "
                "in JSON");
    /* ... and for any other source too (it might be Kafka's under another name) */
    EXPECT_FAIL("{\"id\":\"q\",\"batchId\":3,\"sources\":[{\"description\":\"Custom[x]\","
                "\"endOffset\":\"{'a': 1}\"}]}",
                WS_ERR_MALFORMED, "sources[0].endOffset: string or '}' expected");
    /* "None" / "null" strings mean null: batch 3 may not start at unknown offsets */
    EXPECT_FAIL(
        "{\"id\":\"q\",\"batchId\":3,\"sources\":[" KSRC("\"None\"", "{\"t\":{\"0\":7}}", "2") "]}",
        WS_ERR_INVALID, "only batch 0 may start at unknown offsets");
    EXPECT_FAIL(
        "{\"id\":\"q\",\"batchId\":0,\"sources\":[" KSRC("\"null\"", "{\"t\":{\"0\":7}}", "2") "]}",
        WS_ERR_INVALID, "configure notifications.initial_offsets");
    EXPECT_FAIL("{\"id\":\"q\",\"batchId\":0,\"sources\":[" KSRC("\"None \"", "{\"t\":{\"0\":7}}",
                                                                 "2") "]}",
                WS_ERR_MALFORMED, "startOffset is not a Kafka offset map");

    /* 4. no Kafka source, no window (progress shape) */
    EXPECT_FAIL("{\"id\":\"q\",\"batchId\":3,\"durationMs\":{\"addBatch\":1},\"sources\":[{"
                "\"description\":\"KinesisV2[s]\",\"startOffset\":{\"shardId-0\":\"1\"},"
                "\"endOffset\":{\"shardId-0\":\"9\"},\"numInputRows\":5}]}",
                WS_ERR_UNSUPPORTED,
                "no Kafka source to re-read: none of its sources is a Kafka source (batch 3 of "
                "query q)");
    EXPECT_FAIL("{\"id\":\"q\",\"batchId\":3,\"sources\":[]}", WS_ERR_UNSUPPORTED,
                "no Kafka source to re-read: sources is empty");
    /* a Kafka name that is not a prefix does not count */
    EXPECT_FAIL("{\"id\":\"q\",\"batchId\":3,\"sources\":[{\"description\":\"MyKafkaV2[x]\","
                "\"endOffset\":7}]}",
                WS_ERR_UNSUPPORTED, "no Kafka source");
    /* source rules come before batch 0: a broken Kafka source is reported, not the null start */
    EXPECT_FAIL(
        "{\"id\":\"q\",\"batchId\":0,\"sources\":[" KSRC(
            "null", "{\"t\":{\"0\":7}}",
            "2") ","
                 "{\"description\":\"KafkaV2[Subscribe[u]]\",\"startOffset\":{\"u\":{\"0\":1}}}]}",
        WS_ERR_MALFORMED, "sources[1] (KafkaV2[Subscribe[u]]) is a Kafka source");
    /* mixed: the Kafka part is attested, the rest named; reportedInputRows is Kafka's only */
    if (PARSE("{\"id\":\"q\",\"batchId\":3,\"sources\":[{\"description\":\"DeltaSource[file:/d]\","
              "\"startOffset\":{\"sourceVersion\":1,\"reservoirVersion\":3},\"endOffset\":{"
              "\"sourceVersion\":1,\"reservoirVersion\":4},\"numInputRows\":100}," KSRC(
                  "{\"t\":{\"0\":1}}", "{\"t\":{\"0\":5}}",
                  "4") "," KSRC("{\"t\":{\"1\":0}}", "{\"t\":{\"1\":2}}", "2") "]}",
              NULL, &n)) {
        CHECK(n.nsources == 2 && n.ninputs == 2 && n.nignored == 1);
        CHECK(n.reported_input_rows == 6);
        CHECK(n.nsources == 2 && n.sources[0].input == 0 && n.sources[1].input == 1);
        ws_notification_free(&n);
    }
    /* one Kafka source without numInputRows: the sum is not known, so not reported */
    if (PARSE(
            "{\"id\":\"q\",\"batchId\":3,\"sources\":[" KSRC(
                "{\"t\":{\"0\":1}}", "{\"t\":{\"0\":5}}",
                "4") ","
                     "{\"description\":\"KafkaV2[Subscribe[u]]\",\"startOffset\":{\"u\":{\"0\":1}},"
                     "\"endOffset\":{\"u\":{\"0\":2}}}]}",
            NULL, &n)) {
        CHECK(n.reported_input_rows == -1 && n.ninputs == 2);
        ws_notification_free(&n);
    }
    EXPECT_FAIL("{\"id\":\"q\",\"batchId\":3,\"sources\":[" KSRC("{\"t\":{\"0\":1}}",
                                                                 "{\"t\":{\"0\":5}}", "-4") "]}",
                WS_ERR_INVALID, "sources[0].numInputRows -4 is negative");
    EXPECT_FAIL("{\"id\":\"q\",\"batchId\":3,\"sources\":[" KSRC("{\"t\":{\"0\":1}}",
                                                                 "{\"t\":{\"0\":5}}", "\"4\"") "]}",
                WS_ERR_MALFORMED, "sources[0].numInputRows must be an integer");
    /* native shape: one input for all ranges, nothing reported */
    if (PARSE("{\"queryId\":\"q\",\"batchId\":3,\"sources\":[{\"topic\":\"t\",\"partition\":0,"
              "\"fromOffset\":1,\"untilOffset\":3},{\"topic\":\"t\",\"partition\":1,"
              "\"fromOffset\":1,\"untilOffset\":3}]}",
              NULL, &n)) {
        CHECK(n.ninputs == 1 && n.reported_input_rows == -1 && n.sources[1].input == 0);
        ws_notification_free(&n);
    }

    /* 5. batch 0 with a null start under initial_offsets=earliest */
    if (PARSE("{\"id\":\"q\",\"batchId\":0,\"sources\":[" KSRC("null", "{\"t\":{\"0\":7,\"1\":3}}",
                                                               "0") "]}",
              &early, &n)) { /* Spark read nothing (startingOffsets=latest): [until, until) */
        CHECK(n.nsources == 2 && src_is(&n.sources[0], "t", 0, 7, 7) &&
              src_is(&n.sources[1], "t", 1, 3, 3));
        CHECK(n.ninputs == 1 && !n.inputs[0].unresolved && n.reported_input_rows == 0);
        ws_notification_free(&n);
    }
    if (PARSE("{\"id\":\"q\",\"batchId\":0,\"sources\":[" KSRC("\"None\"", "{\"t\":{\"0\":7}}",
                                                               "5") "]}",
              &early, &n)) { /* resolved by the engine, then checked against 5 */
        CHECK(n.nsources == 1 && src_is(&n.sources[0], "t", 0, WS_OFFSET_UNRESOLVED, 7));
        CHECK(n.ninputs == 1 && n.inputs[0].unresolved && n.inputs[0].num_input_rows == 5);
        ws_notification_free(&n);
    }
    EXPECT_FAIL_OPTS("{\"id\":\"q\",\"batchId\":0,\"sources\":[{\"description\":\"KafkaV2[x]\","
                     "\"startOffset\":null,\"endOffset\":{\"t\":{\"0\":7}}}]}",
                     &early, WS_ERR_INVALID, "initial offsets ambiguous");
}

/* ------------------------------------------------------------------------------------------ */

/* tests/data/notifications: ok-*.json parse; err-<NAME>-*.json fail with WS_ERR_<NAME>. */
static void test_data_files(void)
{
    char dir[4096], path[8192];
    const char *slash = strrchr(__FILE__, '/');
    unsigned nfiles = 0;
    DIR *d;
    struct dirent *de;

    if (!slash) {
        printf("data files: __FILE__ has no directory, skipped\n");
        return;
    }
    snprintf(dir, sizeof dir, "%.*s/data/notifications", (int)(slash - __FILE__), __FILE__);
    d = opendir(dir);
    CHECK(d != NULL);
    if (!d)
        return;
    while ((de = readdir(d))) {
        const char *name = de->d_name;
        bool ok = strncmp(name, "ok-", 3) == 0, bad = strncmp(name, "err-", 4) == 0;
        char want[64] = "WS_ERR_", eb[512];
        struct ws_notification n;
        FILE *f;
        char *buf;
        long len;
        ws_err_t err;

        if (!ok && !bad)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, name);
        f = fopen(path, "rb");
        CHECK(f != NULL);
        if (!f)
            continue;
        fseek(f, 0, SEEK_END);
        len = ftell(f);
        rewind(f);
        buf = malloc((size_t)len + 1);
        CHECK(fread(buf, 1, (size_t)len, f) == (size_t)len);
        fclose(f);
        err = ws_notification_parse(buf, (size_t)len, NULL, &n, eb, sizeof eb);
        if (ok) {
            CHECK(err == WS_OK);
            if (err)
                fprintf(stderr, "  %s: %s %s\n", name, ws_err_name(err), eb);
            else
                ws_notification_free(&n);
        } else {
            const char *dash = strchr(name + 4, '-');
            snprintf(want + 7, sizeof want - 7, "%.*s", dash ? (int)(dash - name - 4) : 0,
                     name + 4);
            CHECK(strcmp(ws_err_name(err), want) == 0);
            CHECK(printable(eb) && eb[0]);
            if (strcmp(ws_err_name(err), want) != 0)
                fprintf(stderr, "  %s: got %s \"%s\"\n", name, ws_err_name(err), eb);
        }
        free(buf);
        nfiles++;
    }
    closedir(d);
    CHECK(nfiles >= 30);
    printf("data files: %u checked\n", nfiles);
}

int main(void)
{
    test_batch_rules();
    test_data_files();
    if (failures) {
        fprintf(stderr, "test_window_batchrules: %u of %u checks FAILED\n", failures, checks);
        return 1;
    }
    printf("test_window_batchrules: %u checks passed\n", checks);
    return 0;
}
