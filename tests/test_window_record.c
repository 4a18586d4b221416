/*
 * test_window_record.c — windowseal.record.v1 (FORMAT.md §2): encoding, strict decoding, order.
 *
 * One small record is checked byte for byte against a vector written out by hand from docs/FORMAT.md
 * layout; the others round-trip field by field through encode and decode; every truncation of a
 * valid encoding, a trailing byte and each kind of bad field must be refused.
 */
#include "window/window.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static bool bytes_eq(const void *a, int32_t alen, const void *b, int32_t blen)
{
    if (alen != blen)
        return false;
    return alen <= 0 || memcmp(a, b, (size_t)alen) == 0;
}

/* decode(encode(r)) == r, field by field; returns the encoding (malloc'ed) for further use. */
static uint8_t *roundtrip(const struct ws_record *r, size_t *lenp)
{
    size_t len = ws_record_encoded_size(r);
    uint8_t *buf = malloc(len + 1);
    struct ws_header hdrs[16];
    struct ws_record d;
    char eb[256] = "";

    CHECK(ws_record_encode(r, buf, len - 1) == 0); /* one byte short */
    CHECK(ws_record_encode(r, buf, len) == len);
    ws_err_t err = ws_record_decode(buf, len, &d, hdrs, 16, eb, sizeof(eb));
    CHECK(err == WS_OK);
    if (err) {
        fprintf(stderr, "  decode: %s\n", eb);
        *lenp = len;
        return buf;
    }
    CHECK(d.topic_len == r->topic_len && memcmp(d.topic, r->topic, r->topic_len) == 0);
    CHECK(d.partition == r->partition && d.offset == r->offset);
    CHECK(d.timestamp == r->timestamp && d.ts_type == r->ts_type);
    CHECK(bytes_eq(d.key, d.key_len, r->key, r->key_len));
    CHECK(bytes_eq(d.value, d.value_len, r->value, r->value_len));
    CHECK((d.key_len == -1) == (d.key == NULL) && (d.value_len == -1) == (d.value == NULL));
    CHECK(d.header_count == r->header_count);
    for (uint32_t i = 0; i < r->header_count && i < d.header_count; i++) {
        CHECK(d.headers[i].name_len == r->headers[i].name_len &&
              memcmp(d.headers[i].name, r->headers[i].name, r->headers[i].name_len) == 0);
        CHECK(bytes_eq(d.headers[i].value, d.headers[i].value_len, r->headers[i].value,
                       r->headers[i].value_len));
    }
    /* too few header slots: TOO_LARGE with the count needed */
    if (r->header_count > 0) {
        CHECK(ws_record_decode(buf, len, &d, hdrs, r->header_count - 1, eb, sizeof(eb)) ==
              WS_ERR_TOO_LARGE);
        CHECK(d.header_count == r->header_count);
    }
    *lenp = len;
    return buf;
}

/* Every proper prefix and one trailing byte are refused, with a reason. */
static void reject_mutations(const uint8_t *enc, size_t len)
{
    uint8_t *buf = malloc(len + 1);
    struct ws_header hdrs[16];
    struct ws_record d;
    char eb[256];

    for (size_t cut = 0; cut < len; cut++) {
        memcpy(buf, enc, cut);
        eb[0] = '\0';
        ws_err_t err = ws_record_decode(buf, cut, &d, hdrs, 16, eb, sizeof(eb));
        CHECK(err == WS_ERR_TRUNCATED || err == WS_ERR_MALFORMED);
        CHECK(eb[0] != '\0');
    }
    memcpy(buf, enc, len);
    buf[len] = 0;
    eb[0] = '\0';
    CHECK(ws_record_decode(buf, len + 1, &d, hdrs, 16, eb, sizeof(eb)) == WS_ERR_MALFORMED);
    CHECK(strstr(eb, "trailing") != NULL);
    free(buf);
}

/* The FORMAT.md §2 layout written out by hand for one small record. */
static void test_vector(void)
{
    static const struct ws_header hdr[2] = {{"h", 1, "v1", 2}, {"n", 1, NULL, -1}};
    const struct ws_record r = {.topic = "ab",
                                .topic_len = 2,
                                .partition = 3,
                                .offset = 0x0102030405060708LL,
                                .timestamp = 1700000000123LL, /* 0x18BCFE5687B */
                                .ts_type = 1,
                                .key = NULL,
                                .key_len = -1,
                                .value = "xyz",
                                .value_len = 3,
                                .headers = hdr,
                                .header_count = 2};
    static const uint8_t want[] = {
        0x01,                                                /* version */
        0x00, 0x02, 'a',  'b',                               /* topic */
        0x00, 0x00, 0x00, 0x03,                              /* partition */
        0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,      /* offset */
        0x00, 0x00, 0x01, 0x8B, 0xCF, 0xE5, 0x68, 0x7B,      /* timestamp */
        0x01,                                                /* ts type */
        0xff, 0xff, 0xff, 0xff,                              /* null key */
        0x00, 0x00, 0x00, 0x03, 'x',  'y',  'z',             /* value */
        0x00, 0x00, 0x00, 0x02,                              /* header count */
        0x00, 0x01, 'h',  0x00, 0x00, 0x00, 0x02, 'v',  '1', /* header 0 */
        0x00, 0x01, 'n',  0xff, 0xff, 0xff, 0xff,            /* header 1, null value */
    };
    uint8_t buf[sizeof(want)];
    size_t len;

    CHECK(ws_record_encoded_size(&r) == sizeof(want));
    CHECK(ws_record_encode(&r, buf, sizeof(buf)) == sizeof(want));
    CHECK(memcmp(buf, want, sizeof(want)) == 0);
    free(roundtrip(&r, &len));
    reject_mutations(want, sizeof(want));
}

static void test_roundtrips(void)
{
    static const char utf8_topic[] = "z\xc3\xbcrich-\xe6\x97\xa5\xe6\x9c\xac-\xf0\x9f\x98\x80";
    static const struct ws_header hdrs[4] = {
        {"trace", 5, "abc", 3}, {"", 0, "", 0}, {"nul", 3, NULL, -1}, {"trace", 5, "\0\1", 2}};
    const size_t big = 1 << 20;
    uint8_t *bigval = malloc(big);
    uint8_t *enc;
    size_t len;

    for (size_t i = 0; i < big; i++)
        bigval[i] = (uint8_t)(i * 131 + (i >> 9));

    struct ws_record base = {.topic = "orders",
                             .topic_len = 6,
                             .partition = 0,
                             .offset = 0,
                             .timestamp = -1,
                             .ts_type = 0,
                             .key_len = -1,
                             .value_len = -1};
    struct ws_record r;

    /* null key, null value, no headers */
    r = base;
    enc = roundtrip(&r, &len);
    CHECK(len == 1 + 2 + 6 + 4 + 8 + 8 + 1 + 4 + 4 + 4);
    reject_mutations(enc, len);
    free(enc);

    /* empty key and value are not null */
    r = base;
    r.key = "";
    r.key_len = 0;
    r.value = "";
    r.value_len = 0;
    r.timestamp = 0;
    r.ts_type = 2;
    enc = roundtrip(&r, &len);
    {
        static const uint8_t zeros[12];
        CHECK(memcmp(enc + len - 12, zeros, 12) == 0); /* key len 0, value len 0, 0 headers */
    }
    free(enc);

    /* headers including null and empty values, repeated names kept in order */
    r = base;
    r.key = "k1";
    r.key_len = 2;
    r.value = "{\"a\":1}";
    r.value_len = 7;
    r.headers = hdrs;
    r.header_count = 4;
    r.partition = INT32_MAX;
    r.offset = INT64_MAX;
    r.timestamp = INT64_MAX;
    enc = roundtrip(&r, &len);
    reject_mutations(enc, len);
    free(enc);

    /* non-ASCII topic, 1 MiB value */
    r = base;
    r.topic = utf8_topic;
    r.topic_len = (uint16_t)strlen(utf8_topic);
    r.value = bigval;
    r.value_len = (int32_t)big;
    r.timestamp = 1;
    r.ts_type = 1;
    enc = roundtrip(&r, &len);
    CHECK(len == ws_record_encoded_size(&r) && len > big);
    {
        struct ws_record d;
        char eb[128];
        /* a few truncations of the big one: right before, inside and right after the value */
        size_t value_at = 1 + 2 + r.topic_len + 4 + 8 + 8 + 1 + 4 + 4;
        size_t cuts[] = {value_at - 1,       value_at,       value_at + 1,
                         value_at + big - 1, value_at + big, len - 1};
        for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++)
            CHECK(ws_record_decode(enc, cuts[i], &d, NULL, 0, eb, sizeof(eb)) == WS_ERR_TRUNCATED);
    }
    free(enc);
    free(bigval);
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void test_malformed(void)
{
    static const struct ws_header hdr[1] = {{"h", 1, "v", 1}};
    const struct ws_record r = {.topic = "t",
                                .topic_len = 1,
                                .partition = 1,
                                .offset = 5,
                                .timestamp = 9,
                                .ts_type = 1,
                                .key = "k",
                                .key_len = 1,
                                .value = "v",
                                .value_len = 1,
                                .headers = hdr,
                                .header_count = 1};
    /* offsets in the encoding of r */
    enum {
        VER = 0,
        TOPIC_LEN = 1,
        TS_TYPE = 1 + 2 + 1 + 4 + 8 + 8,
        KEY_LEN = TS_TYPE + 1,
        VAL_LEN = KEY_LEN + 4 + 1,
        HCOUNT = VAL_LEN + 4 + 1,
        HNAME_LEN = HCOUNT + 4,
        HVAL_LEN = HNAME_LEN + 2 + 1,
        END = HVAL_LEN + 4 + 1
    };
    uint8_t good[64], buf[64];
    struct ws_header hdrs[4];
    struct ws_record d;
    char eb[256];
    size_t len = ws_record_encode(&r, good, sizeof(good));

    CHECK(len == END);
    CHECK(ws_record_decode(good, len, &d, hdrs, 4, eb, sizeof(eb)) == WS_OK);

#define MUTATE(stmt, want_err, word)                                                               \
    do {                                                                                           \
        memcpy(buf, good, len);                                                                    \
        stmt;                                                                                      \
        eb[0] = '\0';                                                                              \
        CHECK(ws_record_decode(buf, len, &d, hdrs, 4, eb, sizeof(eb)) == (want_err));              \
        CHECK(strstr(eb, word) != NULL);                                                           \
    } while (0)

    MUTATE(buf[VER] = 0x02, WS_ERR_MALFORMED, "version");
    MUTATE(buf[VER] = 0x00, WS_ERR_MALFORMED, "version");
    MUTATE(buf[TS_TYPE] = 3, WS_ERR_MALFORMED, "timestamp type");
    MUTATE(buf[TS_TYPE] = 0xff, WS_ERR_MALFORMED, "timestamp type");
    MUTATE(put32(buf + KEY_LEN, (uint32_t)-2), WS_ERR_MALFORMED, "key");
    MUTATE(put32(buf + KEY_LEN, 0x80000000u), WS_ERR_MALFORMED, "key");
    MUTATE(put32(buf + VAL_LEN, (uint32_t)-7), WS_ERR_MALFORMED, "value");
    MUTATE(put32(buf + HVAL_LEN + 0, (uint32_t)-3), WS_ERR_MALFORMED, "header value");
    /* lengths that claim more than is there */
    MUTATE(buf[TOPIC_LEN + 1] = 200, WS_ERR_TRUNCATED, "topic");
    MUTATE(put32(buf + KEY_LEN, 1000), WS_ERR_TRUNCATED, "key");
    MUTATE(put32(buf + KEY_LEN, 0x7fffffffu), WS_ERR_TRUNCATED, "key");
    MUTATE(put32(buf + VAL_LEN, 100), WS_ERR_TRUNCATED, "value");
    MUTATE(put32(buf + HCOUNT, 2), WS_ERR_TRUNCATED, "header");
    MUTATE(put32(buf + HCOUNT, 0xffffffffu), WS_ERR_TRUNCATED, "header count");
    MUTATE(buf[HNAME_LEN + 1] = 50, WS_ERR_TRUNCATED, "header name");
    MUTATE(put32(buf + HVAL_LEN, 2), WS_ERR_TRUNCATED, "header value");
    /* lengths that claim less than is there: the rest becomes trailing garbage */
    MUTATE(put32(buf + HCOUNT, 0), WS_ERR_MALFORMED, "trailing");
    MUTATE(put32(buf + HVAL_LEN, 0), WS_ERR_MALFORMED, "trailing");
    MUTATE(put32(buf + HVAL_LEN, (uint32_t)-1), WS_ERR_MALFORMED, "trailing");
    /* a shorter key length shifts every later field: must still be refused */
    memcpy(buf, good, len);
    put32(buf + KEY_LEN, 0);
    CHECK(ws_record_decode(buf, len, &d, hdrs, 4, eb, sizeof(eb)) != WS_OK);
#undef MUTATE

    CHECK(ws_record_decode(good, WS_RECORD_MAX + 1u, &d, hdrs, 4, eb, sizeof(eb)) ==
          WS_ERR_TOO_LARGE);

    /* the encoder refuses what the decoder would refuse */
    struct ws_record bad = r;
    bad.ts_type = 3;
    CHECK(ws_record_encode(&bad, buf, sizeof(buf)) == 0);
    bad = r;
    bad.key_len = -2;
    CHECK(ws_record_encode(&bad, buf, sizeof(buf)) == 0);
    bad = r;
    bad.value = NULL;
    CHECK(ws_record_encode(&bad, buf, sizeof(buf)) == 0);
    struct ws_header badh = {"x", 1, NULL, -5};
    bad = r;
    bad.headers = &badh;
    CHECK(ws_record_encode(&bad, buf, sizeof(buf)) == 0);
}

static struct ws_record rec(const char *topic, size_t tlen, int32_t p, int64_t o)
{
    return (struct ws_record){
        .topic = topic, .topic_len = (uint16_t)tlen, .partition = p, .offset = o};
}

static void test_cmp(void)
{
    struct ws_record a, b;

    a = rec("a", 1, 0, 0);
    CHECK(ws_record_cmp(&a, &a) == 0);
    /* shorter prefix first */
    a = rec("ab", 2, 9, 9), b = rec("abc", 3, 0, 0);
    CHECK(ws_record_cmp(&a, &b) < 0 && ws_record_cmp(&b, &a) > 0);
    /* topic bytes as unsigned: 0xc3 (UTF-8 lead) after 'z' */
    a = rec("z", 1, 0, 0), b = rec("\xc3\xbc", 2, 0, 0);
    CHECK(ws_record_cmp(&a, &b) < 0 && ws_record_cmp(&b, &a) > 0);
    /* Upper case before lower case (bytes, not locale) */
    a = rec("Zeta", 4, 0, 0), b = rec("alpha", 5, 0, 0);
    CHECK(ws_record_cmp(&a, &b) < 0);
    /* then partition, numerically */
    a = rec("t", 1, 2, 100), b = rec("t", 1, 10, 0);
    CHECK(ws_record_cmp(&a, &b) < 0 && ws_record_cmp(&b, &a) > 0);
    /* then offset, numerically (not as bytes) */
    a = rec("t", 1, 1, 255), b = rec("t", 1, 1, 256);
    CHECK(ws_record_cmp(&a, &b) < 0 && ws_record_cmp(&b, &a) > 0);
    a = rec("t", 1, 1, 7), b = rec("t", 1, 1, 7);
    CHECK(ws_record_cmp(&a, &b) == 0);
    /* embedded NUL is just a byte */
    a = rec("t\0a", 3, 0, 0), b = rec("t\0b", 3, 0, 0);
    CHECK(ws_record_cmp(&a, &b) < 0);
    a = rec("t", 1, 0, 0), b = rec("t\0", 2, 0, 0);
    CHECK(ws_record_cmp(&a, &b) < 0);
}

int main(void)
{
    test_vector();
    test_roundtrips();
    test_malformed();
    test_cmp();
    if (failures) {
        fprintf(stderr, "test_window_record: %lu of %lu checks FAILED\n", failures, checks);
        return 1;
    }
    printf("test_window_record: %lu checks passed\n", checks);
    return 0;
}
