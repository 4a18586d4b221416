/*
 * test_lineage_event.c — the OpenLineage event builder (lineage/event.c): run ids against an
 * independent computation (Python's hashlib + uuid), Kafka namespaces as the Spark integration
 * writes them, every field SPEC 11 asks for read back from a real signed statement
 * (ws_statement_build + ws_dsse_sign with a fixed key, so the envelope is fixed too), the
 * COMPLETE's bytes against a golden copy, determinism, and malformed envelopes refused.
 * The schema validation of the same events is tests/it_lineage.sh's (python3-jsonschema).
 */
#include "lineage/lineage.h"
#include "check.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static char errbuf[512];

static const char key_pem[] = "-----BEGIN PRIVATE KEY-----\n"
                              "MC4CAQAwBQYDK2VwBCIEIDE0hdwO2sq58UP/6qjl0wtnj9lg6Hyg0BPh5DJwM+Vg\n"
                              "-----END PRIVATE KEY-----\n";

#define QID "8c5e7f5a-0d4c-4b53-9d1e-6f1c2a3b4c5d"
#define SPARK_RUN "5a1d6b2e-0c3f-4e8a-9b7d-2f1e0a9c0002"

static const char *sget(const json_t *o, const char *path)
{
    char key[64];
    while (o && *path) {
        size_t n = strcspn(path, ".");
        memcpy(key, path, n);
        key[n] = '\0';
        o = json_object_get(o, key);
        path += n + (path[n] == '.');
    }
    return json_string_value(o);
}

static const json_t *get(const json_t *o, const char *path)
{
    char key[64];
    while (o && *path) {
        size_t n = strcspn(path, ".");
        memcpy(key, path, n);
        key[n] = '\0';
        o = json_object_get(o, key);
        path += n + (path[n] == '.');
    }
    return o;
}

/* A signed envelope of a real statement: two topics over three sources, a plain output and an
 * Iceberg one; name and runId as given (NULL: absent). */
static char *make_envelope(const char *name, const char *run_id, size_t *len, char **stmt_out,
                           size_t *stmt_len)
{
    struct ws_window_source src[3] = {{"clicks", 0, 10, 20, 10, 1000},
                                      {"orders", 0, 95, 180, 85, 11986},
                                      {"orders", 1, 7, 9, 2, 300}};
    struct ws_window_result w = {.leaf_count = 97,
                                 .bytes = 13286,
                                 .has_time = true,
                                 .ts_min = 1795318545174,
                                 .ts_max = 1795318546942,
                                 .sources = src,
                                 .nsources = 3};
    struct ws_out_file f = {"/warehouse/x/00003.jsonl", true, {0}, 19249, NULL};
    json_t *ice =
        json_pack("{s:s,s:[s,s],s:s,s:s,s:s}", "catalog", "lake", "namespace", "sales", "eu",
                  "table", "orders", "snapshotId", "9007199254740995", "operation", "append");
    struct ws_output outs[2] = {{.name = "plain", .files = &f, .nfiles = 1},
                                {.name = "lake.sales.eu.orders", .iceberg = ice}};
    struct ws_statement_in in = {.query_id = QID,
                                 .name = name,
                                 .run_id = run_id,
                                 .batch_id = 3,
                                 .observed_at_ms = 1795318546947,
                                 .window = &w,
                                 .chain_length = 4,
                                 .genesis_window_id = QID "/0",
                                 .outputs = outs,
                                 .noutputs = 2,
                                 .group_id = "windowseal",
                                 .version = "0.1.0"};
    struct ws_key k;
    char *stmt = NULL, *env = NULL;
    size_t slen = 0;

    for (int i = 0; i < WS_HASH_LEN; i++) {
        w.stream_digest[i] = (uint8_t)i;
        w.root[i] = (uint8_t)(0xff - i);
        in.log_root[i] = (uint8_t)(0x40 + i);
        f.sha256[i] = 0x11;
    }
    CHECK_OK(ws_key_from_pem(key_pem, sizeof key_pem - 1, &k, errbuf, sizeof errbuf));
    in.keyid = k.keyid;
    CHECK_OK(ws_statement_build(&in, &stmt, &slen));
    CHECK_OK(ws_dsse_sign(&k, WS_PAYLOAD_TYPE, stmt, slen, &env, len));
    json_decref(ice);
    ws_key_wipe(&k);
    *stmt_out = stmt;
    *stmt_len = slen;
    return env;
}

static void test_run_id(void)
{
    char a[WS_LINEAGE_UUID_LEN + 1], b[WS_LINEAGE_UUID_LEN + 1];

    /* /usr/bin/python3: sha256(b"windowseal.openlineage.run.v1\n" + wid)[:16], v8 bits, uuid */
    ws_lineage_run_id(QID "/3", a);
    CHECK(strcmp(a, "6ee3a957-7889-8a28-b150-97d3e6387455") == 0);
    CHECK(a[14] == '8');          /* version 8 */
    CHECK(strchr("89ab", a[19])); /* variant 10 */
    ws_lineage_run_id(QID "/4", b);
    CHECK(strcmp(a, b) != 0);
    ws_lineage_run_id(QID "/3", b);
    CHECK(strcmp(a, b) == 0);
}

static void test_kafka_namespace(void)
{
    char ns[128];

    ws_lineage_kafka_namespace("kafka1:9092,kafka2:9092", ns, sizeof ns);
    CHECK(strcmp(ns, "kafka://kafka1:9092") == 0);
    ws_lineage_kafka_namespace(" SASL_SSL://b-1.msk:9096 , b-2.msk:9096", ns, sizeof ns);
    CHECK(strcmp(ns, "kafka://b-1.msk:9096") == 0);
    ws_lineage_kafka_namespace("[::1]:9092", ns, sizeof ns);
    CHECK(strcmp(ns, "kafka://[::1]:9092") == 0);
    ws_lineage_kafka_namespace("broker", ns, sizeof ns); /* Java's URI.getPort(): -1 */
    CHECK(strcmp(ns, "kafka://broker:-1") == 0);
}

/* The COMPLETE of make_envelope("orders-to-iceberg", SPARK_RUN), byte for byte. */
static const char golden_complete[] =
    "{\"eventTime\":\"2026-11-22T03:35:46.947Z\",\"eventType\":\"COMPLETE\",\"inputs\":[{\"name\""
    ":\"clicks\",\"namespace\":\"kafka://kafka1:9092\"},{\"name\":\"orders\",\"namespace\":\"kafka"
    "://kafka1:9092\"}],\"job\":{\"facets\":{\"jobType\":{\"_producer\":\"https://github.com/wi"
    "ndowseal/windowseal/tree/v0.1.0\",\"_schemaURL\":\"https://openlineage.io/spec/facet"
    "s/2-0-4/JobTypeJobFacet.json#/$defs/JobTypeJobFacet\",\"integration\":\"WINDOWSEAL\","
    "\"jobType\":\"ATTESTATION\",\"processingType\":\"STREAMING\"}},\"name\":\"orders-to-iceberg"
    ".attest\",\"namespace\":\"prod\"},\"outputs\":[{\"facets\":{\"version\":{\"_producer\":\"https"
    "://github.com/windowseal/windowseal/tree/v0.1.0\",\"_schemaURL\":\"https://openlinea"
    "ge.io/spec/facets/1-0-1/DatasetVersionDatasetFacet.json#/$defs/DatasetVersionDat"
    "asetFacet\",\"datasetVersion\":\"9007199254740995\"}},\"name\":\"sales.eu.orders\",\"names"
    "pace\":\"iceberg://lake\"}],\"producer\":\"https://github.com/windowseal/windowseal/tr"
    "ee/v0.1.0\",\"run\":{\"facets\":{\"parent\":{\"_producer\":\"https://github.com/windowseal"
    "/windowseal/tree/v0.1.0\",\"_schemaURL\":\"https://openlineage.io/spec/facets/1-2-0/"
    "ParentRunFacet.json#/$defs/ParentRunFacet\",\"job\":{\"name\":\"orders-to-iceberg\",\"na"
    "mespace\":\"prod\"},\"run\":{\"runId\":\"5a1d6b2e-0c3f-4e8a-9b7d-2f1e0a9c0002\"}},\"window"
    "seal_attestation\":{\"_producer\":\"https://github.com/windowseal/windowseal/tree/v0"
    ".1.0\",\"_schemaURL\":\"https://raw.githubusercontent.com/windowseal/windowseal/v0.1"
    ".0/docs/openlineage/1-0-0/WindowsealAttestationRunFacet.json#/$defs/Wind"
    "owsealAttestationRunFacet\",\"batchId\":3,\"chainLength\":4,\"envelope\":\"8c5e7f5a-0d4c"
    "-4b53-9d1e-6f1c2a3b4c5d/00000000000000000003.dsse.json\",\"evidence\":\"8c5e7f5a-0d4"
    "c-4b53-9d1e-6f1c2a3b4c5d/00000000000000000003.evidence.lz4\",\"keyid\":\"a981d1745a0"
    "ea4a8cec99c078a10521291807737e7fa5999684ff60333ef77f2\",\"logRoot\":\"40414243444546"
    "4748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f\",\"merkleRoot\":\"fffefdfcfbfaf9"
    "f8f7f6f5f4f3f2f1f0efeeedecebeae9e8e7e6e5e4e3e2e1e0\",\"predicateType\":\"https://mak"
    "oto.dev/stream-window/v1\",\"queryId\":\"8c5e7f5a-0d4c-4b53-9d1e-6f1c2a3b4c5d\",\"spar"
    "kRunId\":\"5a1d6b2e-0c3f-4e8a-9b7d-2f1e0a9c0002\",\"statementDigest\":\"57504eda19599f"
    "31cbee36ee8e5aaddd1ebf712e0d6aabcec6ed6f9027079e1b\",\"streamDigest\":\"000102030405"
    "060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\",\"windowId\":\"8c5e7f5a-0d4c-"
    "4b53-9d1e-6f1c2a3b4c5d/3\"}},\"runId\":\"6ee3a957-7889-8a28-b150-97d3e6387455\"},\"sch"
    "emaURL\":\"https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent\"}";

static void test_events(void)
{
    struct ws_lineage_conf conf = {"prod", "kafka://kafka1:9092"};
    struct ws_lineage_events ev, ev2;
    char *stmt, *env = NULL, hex[WS_HASH_HEX_LEN + 1], rid[WS_LINEAGE_UUID_LEN + 1];
    size_t len = 0, slen = 0;
    uint8_t d[WS_HASH_LEN];
    json_t *s, *c, *st;
    const json_t *a, *in, *out;

    env = make_envelope("orders-to-iceberg", SPARK_RUN, &len, &stmt, &slen);
    CHECK_OK(ws_lineage_build(&conf, env, len, &ev, errbuf, sizeof errbuf));
    CHECK_OK(ws_lineage_build(&conf, env, len, &ev2, errbuf, sizeof errbuf));
    /* determinism: the same envelope, the same bytes (a re-emit is harmless) */
    CHECK(ev.start_len == ev2.start_len && memcmp(ev.start, ev2.start, ev.start_len) == 0);
    CHECK(ev.complete_len == ev2.complete_len &&
          memcmp(ev.complete, ev2.complete, ev.complete_len) == 0);
    CHECK(strcmp(ev.complete, golden_complete) == 0);
    if (strcmp(ev.complete, golden_complete) != 0)
        fprintf(stderr, "complete now:\n%s\n", ev.complete);
    CHECK(strcmp(ev.key, "run:prod/orders-to-iceberg.attest") == 0);

    s = json_loads(ev.start, 0, NULL);
    c = json_loads(ev.complete, 0, NULL);
    st = json_loadb(stmt, slen, 0, NULL);
    CHECK(s && c && st);
    /* compact, keys sorted: re-serialising changes nothing */
    {
        char *again = json_dumps(c, JSON_COMPACT | JSON_SORT_KEYS);
        CHECK(again && strcmp(again, ev.complete) == 0);
        free(again);
    }
    ws_lineage_run_id(QID "/3", rid);
    CHECK(strcmp(ev.run_id, rid) == 0);
    for (int i = 0; i < 2; i++) {
        json_t *e = i ? c : s;
        CHECK(strcmp(sget(e, "eventType"), i ? "COMPLETE" : "START") == 0);
        CHECK(strcmp(sget(e, "eventTime"), sget(st, "predicate.window.observedAt")) == 0);
        CHECK(strcmp(sget(e, "eventTime"), "2026-11-22T03:35:46.947Z") == 0);
        CHECK(strcmp(sget(e, "run.runId"), rid) == 0);
        CHECK(strcmp(sget(e, "schemaURL"),
                     "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent") == 0);
        CHECK(strcmp(sget(e, "producer"), WS_LINEAGE_PRODUCER) == 0);
        CHECK(strcmp(sget(e, "job.namespace"), "prod") == 0);
        CHECK(strcmp(sget(e, "job.name"), "orders-to-iceberg.attest") == 0);
        CHECK(strcmp(sget(e, "job.facets.jobType.processingType"), "STREAMING") == 0);
        CHECK(strcmp(sget(e, "job.facets.jobType.integration"), "WINDOWSEAL") == 0);
        CHECK(strcmp(sget(e, "job.facets.jobType.jobType"), "ATTESTATION") == 0);
        CHECK(strcmp(sget(e, "run.facets.parent.run.runId"), SPARK_RUN) == 0);
        CHECK(strcmp(sget(e, "run.facets.parent.job.name"), "orders-to-iceberg") == 0);
        CHECK(strcmp(sget(e, "run.facets.parent.job.namespace"), "prod") == 0);
    }
    /* the START is the short one: no datasets, no attestation facet */
    CHECK(!get(s, "inputs") && !get(s, "outputs"));
    CHECK(!get(s, "run.facets." WS_LINEAGE_FACET_KEY));

    a = get(c, "run.facets." WS_LINEAGE_FACET_KEY);
    CHECK(a && json_object_size(a) == 15); /* SPEC 11's fields, sparkRunId given */
    ws_sha256(stmt, slen, d);
    ws_hex_encode(d, WS_HASH_LEN, hex);
    CHECK(strcmp(sget(a, "statementDigest"), hex) == 0);
    CHECK(strcmp(sget(a, "_schemaURL"), WS_LINEAGE_FACET_SCHEMA_URL) == 0);
    CHECK(strcmp(sget(a, "queryId"), QID) == 0);
    CHECK(strcmp(sget(a, "sparkRunId"), SPARK_RUN) == 0);
    CHECK(json_integer_value(get(a, "batchId")) == 3);
    CHECK(strcmp(sget(a, "windowId"), QID "/3") == 0);
    CHECK(strcmp(sget(a, "predicateType"), WS_PREDICATE_TYPE) == 0);
    CHECK(strcmp(sget(a, "merkleRoot"), sget(st, "predicate.integrity.merkleTree.root")) == 0);
    CHECK(strncmp(sget(a, "streamDigest"), "000102030405", 12) == 0);
    CHECK(json_integer_value(get(a, "chainLength")) == 4);
    CHECK(strcmp(sget(a, "logRoot"), sget(st, "predicate.integrity.chain.logRoot")) == 0);
    CHECK(strcmp(sget(a, "keyid"), sget(st, "predicate.collector.keyid")) == 0);
    CHECK(strcmp(sget(a, "envelope"), QID "/00000000000000000003.dsse.json") == 0);
    CHECK(strcmp(sget(a, "evidence"), QID "/00000000000000000003.evidence.lz4") == 0);

    in = get(c, "inputs");
    CHECK(json_array_size(in) == 2); /* one per topic, not per partition */
    CHECK(strcmp(sget(json_array_get(in, 0), "name"), "clicks") == 0);
    CHECK(strcmp(sget(json_array_get(in, 1), "name"), "orders") == 0);
    CHECK(strcmp(sget(json_array_get(in, 1), "namespace"), "kafka://kafka1:9092") == 0);
    out = get(c, "outputs");
    CHECK(json_array_size(out) == 1); /* the plain output is not a dataset here */
    CHECK(strcmp(sget(json_array_get(out, 0), "namespace"), "iceberg://lake") == 0);
    CHECK(strcmp(sget(json_array_get(out, 0), "name"), "sales.eu.orders") == 0);
    CHECK(strcmp(sget(json_array_get(out, 0), "facets.version.datasetVersion"),
                 "9007199254740995") == 0);
    json_decref(s);
    json_decref(c);
    json_decref(st);
    ws_lineage_events_free(&ev);
    ws_lineage_events_free(&ev2);
    free(env);
    free(stmt);

    /* no name, no runId: job named by the query id, no parent, no sparkRunId */
    env = make_envelope(NULL, NULL, &len, &stmt, &slen);
    CHECK_OK(ws_lineage_build(&conf, env, len, &ev, errbuf, sizeof errbuf));
    c = json_loads(ev.complete, 0, NULL);
    CHECK(strcmp(sget(c, "job.name"), QID ".attest") == 0);
    CHECK(!get(c, "run.facets.parent"));
    CHECK(!get(c, "run.facets." WS_LINEAGE_FACET_KEY ".sparkRunId"));
    CHECK(json_object_size(get(c, "run.facets." WS_LINEAGE_FACET_KEY)) == 14);
    CHECK(strcmp(ev.run_id, rid) == 0); /* the window id alone decides */
    json_decref(c);
    ws_lineage_events_free(&ev);
    free(env);
    free(stmt);

    /* a runId that is no UUID stays in the facet (it was signed) but makes no parent */
    env = make_envelope("q", "not-a-uuid", &len, &stmt, &slen);
    CHECK_OK(ws_lineage_build(&conf, env, len, &ev, errbuf, sizeof errbuf));
    c = json_loads(ev.complete, 0, NULL);
    CHECK(!get(c, "run.facets.parent"));
    CHECK(strcmp(sget(c, "run.facets." WS_LINEAGE_FACET_KEY ".sparkRunId"), "not-a-uuid") == 0);
    json_decref(c);
    ws_lineage_events_free(&ev);
    free(env);
    free(stmt);
}

static void test_malformed(void)
{
    struct ws_lineage_conf conf = {"ns", "kafka://k:1"};
    struct ws_lineage_events ev;
    const char *bad[] = {
        "not json",
        "{\"payload\":\"e30=\",\"payloadType\":\"text/plain\",\"signatures\":[]}",
        "{\"payload\":\"%%%\",\"payloadType\":\"application/vnd.in-toto+json\"}",
        /* {} : a statement without anything */
        "{\"payload\":\"e30=\",\"payloadType\":\"application/vnd.in-toto+json\"}",
    };

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&ev, 0x5a, sizeof ev);
        CHECK(ws_lineage_build(&conf, bad[i], strlen(bad[i]), &ev, errbuf, sizeof errbuf) ==
              WS_ERR_MALFORMED);
        CHECK(strncmp(errbuf, "lineage: ", 9) == 0);
    }
}

int main(void)
{
    test_run_id();
    test_kafka_namespace();
    test_events();
    test_malformed();
    return check_report("test_lineage_event");
}
