/*
 * record.c — windowseal.record.v1 (FORMAT.md §2): the byte encoding of one Kafka record, its strict
 * decoder, and window-stream order (FORMAT.md §3).
 *
 * The encoding is what gets hashed into the Merkle leaf and the stream digest, so it must be one
 * function of the record: big-endian fixed-width integers, explicit lengths, -1 for null, headers
 * in record order. The decoder reads evidence archives, i.e. bytes from outside: every length is
 * checked against the bytes that remain before anything is read, trailing bytes are an error, and
 * a record is accepted only if re-encoding it would give back exactly the same bytes (so two
 * different byte strings can never describe the same record).
 *
 * The decoder validates the whole encoding, headers included, before it reports
 * WS_ERR_TOO_LARGE for a too-small header array: a caller that only needs the fixed fields
 * (the window accumulator) can pass max_hdrs = 0 and treat WS_ERR_TOO_LARGE as "valid".
 */
#include "window/window.h"

#include <string.h>

/* Smallest possible encoding: version, u16 topic len, partition, offset, timestamp, ts type,
 * key len, value len, header count. */
#define REC_FIXED (1 + 2 + 4 + 8 + 8 + 1 + 4 + 4 + 4)
#define HDR_FIXED (2 + 4)

static size_t optlen(int32_t len)
{
    return len > 0 ? (size_t)len : 0;
}

size_t ws_record_encoded_size(const struct ws_record *r)
{
    size_t n = REC_FIXED + r->topic_len + optlen(r->key_len) + optlen(r->value_len);

    for (uint32_t i = 0; i < r->header_count; i++)
        n += HDR_FIXED + r->headers[i].name_len + optlen(r->headers[i].value_len);
    return n;
}

static uint8_t *put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
    return p + 2;
}

static uint8_t *put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
    return p + 4;
}

static uint8_t *put64(uint8_t *p, uint64_t v)
{
    p = put32(p, (uint32_t)(v >> 32));
    return put32(p, (uint32_t)v);
}

/* Length-prefixed optional bytes: i32 length (-1 null) then the bytes. */
static uint8_t *putopt(uint8_t *p, const void *data, int32_t len)
{
    p = put32(p, (uint32_t)len);
    if (len > 0) {
        memcpy(p, data, (size_t)len);
        p += len;
    }
    return p;
}

/*
 * A record whose fields the decoder would refuse is not encoded either: a length below -1, or a
 * timestamp type outside 0..2. Returning 0 makes the caller report it instead of hashing bytes
 * no verifier would accept.
 */
static bool encodable(const struct ws_record *r)
{
    if (r->key_len < -1 || r->value_len < -1 || r->ts_type > 2)
        return false;
    if ((r->topic_len && !r->topic) || (r->key_len > 0 && !r->key) ||
        (r->value_len > 0 && !r->value) || (r->header_count && !r->headers))
        return false;
    for (uint32_t i = 0; i < r->header_count; i++) {
        const struct ws_header *h = &r->headers[i];
        if (h->value_len < -1 || (h->name_len && !h->name) || (h->value_len > 0 && !h->value))
            return false;
    }
    return true;
}

size_t ws_record_encode(const struct ws_record *r, uint8_t *buf, size_t cap)
{
    size_t need;
    uint8_t *p = buf;

    if (!encodable(r))
        return 0;
    need = ws_record_encoded_size(r);
    if (cap < need)
        return 0;
    *p++ = WS_RECORD_VERSION;
    p = put16(p, r->topic_len);
    if (r->topic_len) {
        memcpy(p, r->topic, r->topic_len);
        p += r->topic_len;
    }
    p = put32(p, (uint32_t)r->partition);
    p = put64(p, (uint64_t)r->offset);
    p = put64(p, (uint64_t)r->timestamp);
    *p++ = r->ts_type;
    p = putopt(p, r->key, r->key_len);
    p = putopt(p, r->value, r->value_len);
    p = put32(p, r->header_count);
    for (uint32_t i = 0; i < r->header_count; i++) {
        const struct ws_header *h = &r->headers[i];
        p = put16(p, h->name_len);
        if (h->name_len) {
            memcpy(p, h->name, h->name_len);
            p += h->name_len;
        }
        p = putopt(p, h->value, h->value_len);
    }
    return (size_t)(p - buf);
}

/* ------------------------------------------------------------------------------------------ */
/* Decoder: a cursor over [p, end) that never reads past end.                                     */

struct rd {
    const uint8_t *p, *end, *start;
};

static size_t left(const struct rd *c)
{
    return (size_t)(c->end - c->p);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get64(const uint8_t *p)
{
    return (uint64_t)get32(p) << 32 | get32(p + 4);
}

#define NEED(c, n, what)                                                                           \
    do {                                                                                           \
        if (left(c) < (size_t)(n))                                                                 \
            return ws_fail(WS_ERR_TRUNCATED, errbuf, errlen,                                       \
                           "record truncated: %s needs %zu bytes at byte %zu, %zu left", what,     \
                           (size_t)(n), (size_t)((c)->p - (c)->start), left(c));                   \
    } while (0)

/* i32 length (-1 null) then that many bytes; *data/ *len out. */
static ws_err_t get_optional(struct rd *c, const char *what, const void **data, int32_t *len,
                             char *errbuf, size_t errlen)
{
    int32_t n;

    NEED(c, 4, what);
    n = (int32_t)get32(c->p);
    if (n < -1)
        return ws_fail(WS_ERR_MALFORMED, errbuf, errlen, "record %s length %d is negative", what,
                       (int)n);
    c->p += 4;
    *len = n;
    *data = NULL;
    if (n >= 0) {
        NEED(c, n, what);
        *data = c->p;
        c->p += n;
    }
    return WS_OK;
}

ws_err_t ws_record_decode(const uint8_t *buf, size_t len, struct ws_record *out,
                          struct ws_header *hdrs, uint32_t max_hdrs, char *errbuf, size_t errlen)
{
    struct rd c = {buf, buf + len, buf};
    uint32_t count;
    ws_err_t err;

    memset(out, 0, sizeof(*out));
    if (!buf && len)
        return ws_fail(WS_ERR_INVALID, errbuf, errlen, "record buffer is NULL");
    if (len > WS_RECORD_MAX)
        return ws_fail(WS_ERR_TOO_LARGE, errbuf, errlen, "record of %zu bytes exceeds %u", len,
                       WS_RECORD_MAX);
    NEED(&c, 1, "version");
    if (c.p[0] != WS_RECORD_VERSION)
        return ws_fail(WS_ERR_MALFORMED, errbuf, errlen,
                       "record encoding version 0x%02x, expected 0x%02x", c.p[0],
                       WS_RECORD_VERSION);
    c.p++;

    NEED(&c, 2, "topic length");
    out->topic_len = (uint16_t)(c.p[0] << 8 | c.p[1]);
    c.p += 2;
    NEED(&c, out->topic_len, "topic");
    out->topic = (const char *)c.p;
    c.p += out->topic_len;

    NEED(&c, 4 + 8 + 8 + 1, "partition/offset/timestamp");
    out->partition = (int32_t)get32(c.p);
    out->offset = (int64_t)get64(c.p + 4);
    out->timestamp = (int64_t)get64(c.p + 12);
    out->ts_type = c.p[20];
    if (out->ts_type > 2)
        return ws_fail(WS_ERR_MALFORMED, errbuf, errlen, "record timestamp type %u not in 0..2",
                       out->ts_type);
    c.p += 21;

    err = get_optional(&c, "key", &out->key, &out->key_len, errbuf, errlen);
    if (err)
        return err;
    err = get_optional(&c, "value", &out->value, &out->value_len, errbuf, errlen);
    if (err)
        return err;

    NEED(&c, 4, "header count");
    count = get32(c.p);
    c.p += 4;
    /* Each header takes at least HDR_FIXED bytes: refuse absurd counts before looping. */
    if (count > left(&c) / HDR_FIXED)
        return ws_fail(WS_ERR_TRUNCATED, errbuf, errlen,
                       "record header count %u does not fit in the %zu bytes left", count,
                       left(&c));
    out->headers = hdrs;
    out->header_count = count;
    for (uint32_t i = 0; i < count; i++) {
        struct ws_header h;

        NEED(&c, 2, "header name length");
        h.name_len = (uint16_t)(c.p[0] << 8 | c.p[1]);
        c.p += 2;
        NEED(&c, h.name_len, "header name");
        h.name = (const char *)c.p;
        c.p += h.name_len;
        err = get_optional(&c, "header value", &h.value, &h.value_len, errbuf, errlen);
        if (err)
            return err;
        if (i < max_hdrs)
            hdrs[i] = h;
    }
    if (c.p != c.end)
        return ws_fail(WS_ERR_MALFORMED, errbuf, errlen,
                       "record has %zu trailing bytes after its last header", left(&c));
    if (count > max_hdrs)
        return ws_fail(WS_ERR_TOO_LARGE, errbuf, errlen, "record has %u headers, room for %u",
                       count, max_hdrs);
    return WS_OK;
}

int ws_record_cmp(const struct ws_record *a, const struct ws_record *b)
{
    size_t n = a->topic_len < b->topic_len ? a->topic_len : b->topic_len;
    int c = n ? memcmp(a->topic, b->topic, n) : 0; /* memcmp compares as unsigned char */

    if (c)
        return c < 0 ? -1 : 1;
    if (a->topic_len != b->topic_len)
        return a->topic_len < b->topic_len ? -1 : 1;
    if (a->partition != b->partition)
        return a->partition < b->partition ? -1 : 1;
    if (a->offset != b->offset)
        return a->offset < b->offset ? -1 : 1;
    return 0;
}
