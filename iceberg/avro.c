/*
 * avro.c — Iceberg manifest lists and manifests: Avro object container files from an untrusted
 * store, read with Apache Avro C (libavro) behind a framing and bounds layer of our own.
 *
 * Why the layer: libavro's container reader trusts its input (a negative or huge block length
 * goes straight to malloc, a decompression error is ignored, an array of nulls with a block count
 * of 2^62 is appended to forever). So the work is split:
 *
 *   1. framing (here): magic, the header's metadata map, the sync marker, then every block's
 *      count and size, each checked against what is left of the buffer and against the bounds of
 *      iceberg.h, the sync marker after each block compared;
 *   2. codecs (here): null, deflate (raw zlib, as Avro and Iceberg's "gzip" write it) and snappy
 *      (raw snappy + big-endian CRC32 of the output), each decompressing into a buffer of at most
 *      WS_ICEBERG_MAX_BLOCK bytes; any other codec is WS_ERR_UNSUPPORTED naming it;
 *   3. a bounds pass (here) over each block, driven by libavro's parse of the writer schema: every
 *      varint at most 10 bytes, every length and union index in range, every array and map
 *      block count non-negative and bounded in total, recursion bounded; the block must be
 *      consumed exactly. After it, every allocation libavro makes is bounded by the block;
 *   4. decoding (libavro): avro_value_read of each datum into a generic value of the writer
 *      schema, fields then fetched by index;
 *   5. field ids (here): the indexes come from the writer schema's JSON, whose fields carry the
 *      Iceberg "field-id" attribute that libavro does not keep. The JSON and libavro's schema are
 *      checked to agree field by field (same count, same names), so an index found by id in one
 *      is that field in the other.
 *
 * Invariants:
 *   (1) no byte outside buf[0..len) or a decompressed block is read: every read goes through
 *       struct cur, whose take() refuses to pass its end;
 *   (2) libavro only ever decodes a block that pass 3 accepted for exactly its datum count;
 *   (3) a field id resolves to an index < the record's field count of both schemas.
 */
#include "iceberg/iceberg_int.h"

#include <avro.h>
#include <snappy-c.h>
#include <zlib.h>

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#define SYNC_LEN 16
#define MAX_HEADER_ENTRIES 1024
#define MAX_SCHEMA_DEPTH 64
/* Array items and map entries of one block, in all: bounds zero-byte items (nulls). */
#define MAX_ITEMS_PER_BLOCK (4u * 1024 * 1024)

/* A cursor over bytes we do not trust (invariant 1). */
struct cur {
    const uint8_t *p, *end;
};

static bool take(struct cur *c, size_t n, const uint8_t **out)
{
    if ((size_t)(c->end - c->p) < n)
        return false;
    if (out)
        *out = c->p;
    c->p += n;
    return true;
}

/* Avro long: zig-zag varint of at most 10 bytes (what libavro accepts, no more). */
static bool read_long(struct cur *c, int64_t *v)
{
    uint64_t u = 0;

    for (int i = 0; i < 10; i++) {
        if (c->p >= c->end)
            return false;
        uint8_t b = *c->p++;
        u |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *v = (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
            return true;
        }
    }
    return false;
}

/* ------------------------------------------------------------------------------------------ */
/* Pass 3: bounds                                                                                 */

static bool check_datum(struct cur *c, avro_schema_t s, int depth, uint64_t *items)
{
    int64_t v;

    if (depth > MAX_SCHEMA_DEPTH)
        return false;
    switch (avro_typeof(s)) {
    case AVRO_NULL:
        return true;
    case AVRO_BOOLEAN:
        return take(c, 1, NULL);
    case AVRO_INT32:
        return read_long(c, &v) && v >= INT32_MIN && v <= INT32_MAX;
    case AVRO_INT64:
        return read_long(c, &v);
    case AVRO_FLOAT:
        return take(c, 4, NULL);
    case AVRO_DOUBLE:
        return take(c, 8, NULL);
    case AVRO_STRING:
    case AVRO_BYTES:
        return read_long(c, &v) && v >= 0 && take(c, (size_t)v, NULL);
    case AVRO_FIXED:
        v = avro_schema_fixed_size(s);
        return v >= 0 && take(c, (size_t)v, NULL);
    case AVRO_ENUM:
        return read_long(c, &v) && v >= 0 && v < avro_schema_enum_number_of_symbols(s);
    case AVRO_RECORD:
        for (size_t i = 0; i < avro_schema_record_size(s); i++) {
            avro_schema_t f = avro_schema_record_field_get_by_index(s, (int)i);
            if (!f || !check_datum(c, f, depth + 1, items))
                return false;
        }
        return true;
    case AVRO_UNION: {
        avro_schema_t b;
        if (!read_long(c, &v) || v < 0 || (uint64_t)v >= avro_schema_union_size(s))
            return false;
        b = avro_schema_union_branch(s, (int)v);
        return b && check_datum(c, b, depth + 1, items);
    }
    case AVRO_ARRAY:
    case AVRO_MAP: {
        avro_schema_t item =
            is_avro_array(s) ? avro_schema_array_items(s) : avro_schema_map_values(s);
        for (;;) {
            int64_t count, size;
            if (!read_long(c, &count))
                return false;
            if (count == 0)
                return true;
            if (count < 0) { /* a block with its byte size: the size must fit too */
                if (count == INT64_MIN || !read_long(c, &size) || size < 0 ||
                    (uint64_t)size > (uint64_t)(c->end - c->p))
                    return false;
                count = -count;
            }
            if ((uint64_t)count > MAX_ITEMS_PER_BLOCK - *items)
                return false;
            *items += (uint64_t)count;
            for (int64_t i = 0; i < count; i++) {
                if (is_avro_map(s) && (!read_long(c, &v) || v < 0 || !take(c, (size_t)v, NULL)))
                    return false;
                if (!check_datum(c, item, depth + 1, items))
                    return false;
            }
        }
    }
    case AVRO_LINK:
        return check_datum(c, avro_schema_link_target(s), depth + 1, items);
    default:
        return false;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Field ids (step 5)                                                                            */

/* The index of the field with Iceberg field id `id` in a record schema's JSON, -1 if none. */
static int index_of_id(const json_t *rec, json_int_t id)
{
    const json_t *fields = json_object_get(rec, "fields"), *f;
    size_t i;

    json_array_foreach(fields, i, f)
    {
        const json_t *fid = json_object_get(f, "field-id");
        if (json_is_integer(fid) && json_integer_value(fid) == id)
            return (int)i;
    }
    return -1;
}

/* The JSON record and libavro's record agree: same number of fields, same names in order. */
static bool same_record(const json_t *rec, avro_schema_t s)
{
    const json_t *fields = json_object_get(rec, "fields"), *f;
    size_t i;

    if (!json_is_array(fields) || !is_avro_record(s) ||
        json_array_size(fields) != avro_schema_record_size(s))
        return false;
    json_array_foreach(fields, i, f)
    {
        const char *n = json_string_value(json_object_get(f, "name"));
        const char *an = avro_schema_record_field_name(s, (int)i);
        if (!n || !an || strcmp(n, an) != 0)
            return false;
    }
    return true;
}

/* A field's value, through an optional union; AVRO_NULL type for null. */
static bool field(avro_value_t *rec, int idx, avro_value_t *out)
{
    avro_value_t v;

    if (idx < 0 || avro_value_get_by_index(rec, (size_t)idx, &v, NULL))
        return false;
    if (avro_value_get_type(&v) == AVRO_UNION) {
        if (avro_value_get_current_branch(&v, out))
            return false;
        return true;
    }
    *out = v;
    return true;
}

/* An int or long field (Avro promotes int to long; Iceberg writers differ). set: not null. */
static bool field_long(avro_value_t *rec, int idx, int64_t *out, bool *set)
{
    avro_value_t v;
    int32_t i32;

    *set = false;
    if (idx < 0) /* absent from this writer's schema: the caller's default */
        return true;
    if (!field(rec, idx, &v))
        return false;
    switch (avro_value_get_type(&v)) {
    case AVRO_NULL:
        return true;
    case AVRO_INT32:
        if (avro_value_get_int(&v, &i32))
            return false;
        *out = i32;
        *set = true;
        return true;
    case AVRO_INT64:
        *set = avro_value_get_long(&v, out) == 0;
        return *set;
    default:
        return false;
    }
}

/* A required string field, copied; a NUL inside it is malformed (paths are compared whole). */
static bool field_string(avro_value_t *rec, int idx, char **out)
{
    avro_value_t v;
    const char *s;
    size_t size;

    if (!field(rec, idx, &v) || avro_value_get_type(&v) != AVRO_STRING ||
        avro_value_get_string(&v, &s, &size) || size == 0 || strlen(s) != size - 1)
        return false;
    return (*out = strdup(s)) != NULL;
}

/*
 * The writer schema's names, checked before Apache Avro C sees the schema: its parser leaks the
 * types it had built when it refuses a schema for a name defined twice, a field name used twice
 * in a record, or a reference to a name not defined before (libavro 1.11.1, found by
 * fuzz_manifest), and a manifest is outside input. So those are refused here, the same way,
 * and libavro only parses schemas whose names are sound. names: a set (JSON object) of the full
 * names defined so far, in Avro's depth-first definition order.
 */
static bool is_primitive(const char *t)
{
    static const char *const prim[] = {"null",  "boolean", "int",   "long",
                                       "float", "double",  "bytes", "string"};
    for (size_t i = 0; i < sizeof prim / sizeof prim[0]; i++)
        if (!strcmp(t, prim[i]))
            return true;
    return false;
}

/* The full name of name in namespace ns (Avro: a dotted name is already full). */
static void full_name(const char *name, const char *ns, char *out, size_t cap)
{
    if (strchr(name, '.') || !ns || !*ns)
        snprintf(out, cap, "%s", name);
    else
        snprintf(out, cap, "%s.%s", ns, name);
}

static bool names_ok(const json_t *s, const char *ns, json_t *names, int depth)
{
    char full[512];
    const char *type;
    size_t i;
    json_t *v;

    if (depth > MAX_SCHEMA_DEPTH)
        return false;
    if (json_is_string(s)) { /* a primitive, or a reference to a type defined before */
        const char *t = json_string_value(s);
        if (is_primitive(t))
            return true;
        full_name(t, ns, full, sizeof full);
        return json_object_get(names, full) || json_object_get(names, t);
    }
    if (json_is_array(s)) { /* a union */
        json_array_foreach(s, i, v)
        {
            if (!names_ok(v, ns, names, depth + 1))
                return false;
        }
        return true;
    }
    if (!json_is_object(s))
        return false;
    v = json_object_get(s, "type");
    if (!json_is_string(v)) /* {"type": {...}} or {"type": [...]} */
        return v && names_ok(v, ns, names, depth + 1);
    type = json_string_value(v);
    if (!strcmp(type, "array"))
        return names_ok(json_object_get(s, "items"), ns, names, depth + 1);
    if (!strcmp(type, "map"))
        return names_ok(json_object_get(s, "values"), ns, names, depth + 1);
    if (strcmp(type, "record") && strcmp(type, "error") && strcmp(type, "enum") &&
        strcmp(type, "fixed"))
        return names_ok(v, ns, names, depth + 1); /* {"type": "long", ...} and the like */
    /* a named type: defined once */
    {
        const json_t *n = json_object_get(s, "name"), *nsj = json_object_get(s, "namespace");
        const json_t *fields;
        char inner_ns[512];
        json_t *seen;
        bool ok = true;

        if (!json_is_string(n) || (nsj && !json_is_string(nsj)))
            return false;
        if (nsj)
            ns = json_string_value(nsj);
        full_name(json_string_value(n), ns, full, sizeof full);
        if (json_object_get(names, full) || json_object_set_new(names, full, json_true()))
            return false;
        if (strrchr(full, '.')) { /* the namespace of what is inside: the full name's */
            snprintf(inner_ns, sizeof inner_ns, "%.*s", (int)(strrchr(full, '.') - full), full);
            ns = inner_ns;
        }
        if (strcmp(type, "record") && strcmp(type, "error"))
            return true;
        fields = json_object_get(s, "fields");
        if (!json_is_array(fields) || !(seen = json_object()))
            return false;
        json_array_foreach(fields, i, v)
        {
            const json_t *fn = json_object_get(v, "name");
            if (!json_is_object(v) || !json_is_string(fn) ||
                json_object_get(seen, json_string_value(fn)) ||
                json_object_set_new(seen, json_string_value(fn), json_true()) ||
                !names_ok(json_object_get(v, "type"), ns, names, depth + 1)) {
                ok = false;
                break;
            }
        }
        json_decref(seen);
        return ok;
    }
}

/* Nesting depth of a JSON value, counted no further than MAX_SCHEMA_DEPTH + 1. */
static int json_depth(const json_t *j, int d)
{
    const char *k;
    const json_t *v;
    size_t i;
    int m = d;

    if (d > MAX_SCHEMA_DEPTH)
        return d;
    if (json_is_object(j)) {
        json_object_foreach((json_t *)j, k, v)
        {
            int x = json_depth(v, d + 1);
            m = x > m ? x : m;
        }
    } else if (json_is_array(j)) {
        json_array_foreach(j, i, v)
        {
            int x = json_depth(v, d + 1);
            m = x > m ? x : m;
        }
    }
    return m;
}

/* ------------------------------------------------------------------------------------------ */
/* The container                                                                                 */

enum codec { CODEC_NULL, CODEC_DEFLATE, CODEC_SNAPPY };

struct container {
    struct cur in;
    enum codec codec;
    uint8_t sync[SYNC_LEN];
    json_t *schema_json;
    avro_schema_t schema;
    uint8_t *block; /* decompressed block (codecs other than null) */
    size_t block_cap;
};

static ws_err_t inflate_block(struct container *k, const uint8_t *src, size_t n,
                              const uint8_t **out, size_t *outlen, char *errbuf, size_t errlen)
{
    z_stream z;
    int rc;

    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, -15) != Z_OK)
        return ws_fail(WS_ERR_NOMEM, errbuf, errlen, "zlib: cannot initialise");
    z.next_in = (Bytef *)src;
    z.avail_in = (uInt)n;
    z.next_out = k->block;
    z.avail_out = (uInt)k->block_cap; /* the previous block's buffer, reused */
    do {
        if (z.avail_out == 0) {
            size_t used = z.total_out;
            size_t cap = k->block_cap ? 2 * k->block_cap : 64 * 1024;
            if (k->block_cap >= WS_ICEBERG_MAX_BLOCK) {
                inflateEnd(&z);
                return ws_fail(WS_ERR_TOO_LARGE, errbuf, errlen,
                               "deflate block inflates beyond %u bytes", WS_ICEBERG_MAX_BLOCK);
            }
            if (cap > WS_ICEBERG_MAX_BLOCK)
                cap = WS_ICEBERG_MAX_BLOCK;
            uint8_t *nb = realloc(k->block, cap);
            if (!nb) {
                inflateEnd(&z);
                return WS_ERR_NOMEM;
            }
            k->block = nb;
            k->block_cap = cap;
            z.next_out = nb + used;
            z.avail_out = (uInt)(cap - used);
        }
        rc = inflate(&z, Z_NO_FLUSH);
    } while (rc == Z_OK && !(z.avail_in == 0 && z.avail_out != 0));
    *outlen = z.total_out;
    inflateEnd(&z);
    if (rc != Z_STREAM_END)
        return ws_fail(WS_ERR_MALFORMED, errbuf, errlen, "deflate block is corrupt (zlib %d)", rc);
    *out = k->block;
    return WS_OK;
}

static ws_err_t snappy_block(struct container *k, const uint8_t *src, size_t n, const uint8_t **out,
                             size_t *outlen, char *errbuf, size_t errlen)
{
    size_t ulen;
    uint32_t crc;

    if (n < 4 || snappy_uncompressed_length((const char *)src, n - 4, &ulen) != SNAPPY_OK)
        return ws_fail(WS_ERR_MALFORMED, errbuf, errlen, "snappy block is corrupt");
    if (ulen > WS_ICEBERG_MAX_BLOCK)
        return ws_fail(WS_ERR_TOO_LARGE, errbuf, errlen, "snappy block of %zu bytes (limit %u)",
                       ulen, WS_ICEBERG_MAX_BLOCK);
    if (ulen > k->block_cap) {
        uint8_t *nb = realloc(k->block, ulen ? ulen : 1);
        if (!nb)
            return WS_ERR_NOMEM;
        k->block = nb;
        k->block_cap = ulen;
    }
    if (snappy_uncompress((const char *)src, n - 4, (char *)k->block, &ulen) != SNAPPY_OK)
        return ws_fail(WS_ERR_MALFORMED, errbuf, errlen, "snappy block is corrupt");
    crc = (uint32_t)crc32(0, k->block, (uInt)ulen);
    if (src[n - 4] != (uint8_t)(crc >> 24) || src[n - 3] != (uint8_t)(crc >> 16) ||
        src[n - 2] != (uint8_t)(crc >> 8) || src[n - 1] != (uint8_t)crc)
        return ws_fail(WS_ERR_MALFORMED, errbuf, errlen, "snappy block fails its CRC32");
    *out = k->block;
    *outlen = ulen;
    return WS_OK;
}

static ws_err_t open_container(struct container *k, const void *buf, size_t len, char *errbuf,
                               size_t errlen)
{
    const uint8_t *magic, *v, *sync;
    const uint8_t *schema = NULL, *codec = NULL;
    size_t schema_len = 0, codec_len = 0, entries = 0;
    int64_t count, n;
    json_error_t jerr;

    memset(k, 0, sizeof *k);
    k->in.p = buf;
    k->in.end = k->in.p + len;
    if (len > WS_ICEBERG_MAX_AVRO)
        return ws_fail(WS_ERR_TOO_LARGE, errbuf, errlen, "Avro file of %zu bytes (limit %u)", len,
                       WS_ICEBERG_MAX_AVRO);
    if (!take(&k->in, 4, &magic) || memcmp(magic, "Obj\x01", 4) != 0)
        return ws_fail(WS_ERR_MALFORMED, errbuf, errlen, "not an Avro object container file");
    /* The metadata: a map of bytes, in blocks like any Avro map. */
    for (;;) {
        if (!read_long(&k->in, &count))
            goto truncated;
        if (count == 0)
            break;
        if (count < 0) {
            if (count == INT64_MIN || !read_long(&k->in, &n))
                goto truncated;
            count = -count;
        }
        for (int64_t i = 0; i < count; i++) {
            const uint8_t *key;
            int64_t klen, vlen;
            if (++entries > MAX_HEADER_ENTRIES)
                return ws_fail(WS_ERR_TOO_LARGE, errbuf, errlen, "Avro header has over %d entries",
                               MAX_HEADER_ENTRIES);
            if (!read_long(&k->in, &klen) || klen < 0 || !take(&k->in, (size_t)klen, &key) ||
                !read_long(&k->in, &vlen) || vlen < 0 || !take(&k->in, (size_t)vlen, &v))
                goto truncated;
            if (klen == 11 && memcmp(key, "avro.schema", 11) == 0) {
                schema = v;
                schema_len = (size_t)vlen;
            } else if (klen == 10 && memcmp(key, "avro.codec", 10) == 0) {
                codec = v;
                codec_len = (size_t)vlen;
            }
        }
    }
    if (!take(&k->in, SYNC_LEN, &sync))
        goto truncated;
    memcpy(k->sync, sync, SYNC_LEN);
    if (!codec || (codec_len == 4 && memcmp(codec, "null", 4) == 0))
        k->codec = CODEC_NULL;
    else if (codec_len == 7 && memcmp(codec, "deflate", 7) == 0)
        k->codec = CODEC_DEFLATE;
    else if (codec_len == 6 && memcmp(codec, "snappy", 6) == 0)
        k->codec = CODEC_SNAPPY;
    else {
        char name[33];
        size_t m = codec_len < 32 ? codec_len : 32;
        for (size_t i = 0; i < m; i++) /* the name goes into a statement: printable only */
            name[i] = codec[i] >= 0x20 && codec[i] < 0x7f && codec[i] != '"' ? (char)codec[i] : '?';
        name[m] = '\0';
        return ws_fail(WS_ERR_UNSUPPORTED, errbuf, errlen,
                       "unsupported Avro codec \"%s\" (null, deflate and snappy are read)", name);
    }
    if (!schema)
        return ws_fail(WS_ERR_MALFORMED, errbuf, errlen, "Avro header has no avro.schema");
    /* Depth 64 is ample for Iceberg's schemas (jansson's own bound is 2048); libavro's schema
     * parser recurses once per level, so a bound here is a bound on its stack too. */
    k->schema_json = json_loadb((const char *)schema, schema_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!k->schema_json)
        return ws_fail(WS_ERR_MALFORMED, errbuf, errlen, "Avro schema is not JSON: %s", jerr.text);
    if (json_depth(k->schema_json, 0) > MAX_SCHEMA_DEPTH)
        return ws_fail(WS_ERR_TOO_LARGE, errbuf, errlen, "Avro schema nested too deep");
    {
        json_t *names = json_object();
        bool ok = names && names_ok(k->schema_json, "", names, 0);
        json_decref(names);
        if (!ok)
            return ws_fail(WS_ERR_MALFORMED, errbuf, errlen,
                           "Avro schema: a name defined twice, a field name repeated in a "
                           "record, or a reference to an undefined type");
    }
    if (avro_schema_from_json_length((const char *)schema, schema_len, &k->schema) || !k->schema)
        return ws_fail(WS_ERR_MALFORMED, errbuf, errlen, "Avro schema: %s", avro_strerror());
    return WS_OK;
truncated:
    return ws_fail(WS_ERR_TRUNCATED, errbuf, errlen, "Avro header is truncated or corrupt");
}

static void close_container(struct container *k)
{
    if (k->schema)
        avro_schema_decref(k->schema);
    json_decref(k->schema_json);
    free(k->block);
}

/* Called for each datum, decoded into a generic value of the writer schema. */
typedef ws_err_t (*datum_fn)(void *ctx, avro_value_t *rec, char *errbuf, size_t errlen);

static ws_err_t each_datum(struct container *k, datum_fn fn, void *ctx, char *errbuf, size_t errlen)
{
    avro_value_iface_t *iface = avro_generic_class_from_schema(k->schema);
    avro_value_t val;
    uint64_t total = 0;
    ws_err_t err = WS_OK;
    bool have_val = false;

    if (!iface)
        return ws_fail(WS_ERR_MALFORMED, errbuf, errlen, "Avro schema: %s", avro_strerror());
    if (avro_generic_value_new(iface, &val)) {
        err = ws_fail(WS_ERR_NOMEM, errbuf, errlen, "Avro: %s", avro_strerror());
        goto out;
    }
    have_val = true;
    while (k->in.p < k->in.end) {
        int64_t count, size;
        const uint8_t *raw, *sync, *data = NULL;
        size_t dlen = 0;
        if (!read_long(&k->in, &count) || !read_long(&k->in, &size) || count < 0 || size < 0 ||
            !take(&k->in, (size_t)size, &raw) || !take(&k->in, SYNC_LEN, &sync)) {
            err = ws_fail(WS_ERR_TRUNCATED, errbuf, errlen, "Avro block is truncated or corrupt");
            goto out;
        }
        if (memcmp(sync, k->sync, SYNC_LEN) != 0) {
            err = ws_fail(WS_ERR_MALFORMED, errbuf, errlen,
                          "Avro block ends without its sync "
                          "marker");
            goto out;
        }
        if ((uint64_t)count > WS_ICEBERG_MAX_ENTRIES - total) {
            err = ws_fail(WS_ERR_TOO_LARGE, errbuf, errlen, "Avro file has over %u entries",
                          WS_ICEBERG_MAX_ENTRIES);
            goto out;
        }
        total += (uint64_t)count;
        if (k->codec == CODEC_DEFLATE)
            err = inflate_block(k, raw, (size_t)size, &data, &dlen, errbuf, errlen);
        else if (k->codec == CODEC_SNAPPY)
            err = snappy_block(k, raw, (size_t)size, &data, &dlen, errbuf, errlen);
        else {
            data = raw;
            dlen = (size_t)size;
        }
        if (err)
            goto out;
        /* Pass 3 over the whole block before libavro sees any of it (invariant 2). */
        struct cur c = {data, data + dlen};
        uint64_t items = 0;
        for (int64_t i = 0; i < count; i++)
            if (!check_datum(&c, k->schema, 0, &items)) {
                err = ws_fail(WS_ERR_MALFORMED, errbuf, errlen,
                              "Avro datum %lld of a block does not match the schema", (long long)i);
                goto out;
            }
        if (c.p != c.end) {
            err = ws_fail(WS_ERR_MALFORMED, errbuf, errlen, "Avro block has trailing bytes");
            goto out;
        }
        avro_reader_t rd = avro_reader_memory((const char *)data, (int64_t)dlen);
        if (!rd) {
            err = WS_ERR_NOMEM;
            goto out;
        }
        for (int64_t i = 0; i < count && !err; i++) {
            avro_value_reset(&val);
            if (avro_value_read(rd, &val))
                err = ws_fail(WS_ERR_MALFORMED, errbuf, errlen, "Avro: %s", avro_strerror());
            else
                err = fn(ctx, &val, errbuf, errlen);
        }
        avro_reader_free(rd);
        if (err)
            goto out;
    }
out:
    if (have_val)
        avro_value_decref(&val);
    avro_value_iface_decref(iface);
    return err;
}

/* ------------------------------------------------------------------------------------------ */
/* Manifest lists                                                                                */

struct list_ctx {
    int i_path, i_length, i_snap, i_content, i_seq;
    struct ws_iceberg_manifest *v;
    size_t n, cap;
};

static ws_err_t grow(void **v, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return WS_OK;
    size_t nc = *cap ? 2 * *cap : 16;
    void *p = realloc(*v, nc * elem);
    if (!p)
        return WS_ERR_NOMEM;
    *v = p;
    *cap = nc;
    return WS_OK;
}

static ws_err_t on_manifest(void *opaque, avro_value_t *rec, char *errbuf, size_t errlen)
{
    struct list_ctx *c = opaque;
    struct ws_iceberg_manifest m = {0};
    int64_t content = 0;
    bool set;

    if (grow((void **)&c->v, &c->cap, c->n, sizeof *c->v))
        return WS_ERR_NOMEM;
    if (!field_long(rec, c->i_snap, &m.added_snapshot_id, &set) || !set ||
        !field_long(rec, c->i_length, &m.length, &set) ||
        !field_long(rec, c->i_content, &content, &set) || content < 0 || content > 1 ||
        !field_long(rec, c->i_seq, &m.sequence_number, &set))
        goto bad;
    m.content = (int32_t)content;
    if (!field_string(rec, c->i_path, &m.path))
        goto bad;
    c->v[c->n++] = m;
    return WS_OK;
bad:
    return ws_fail(WS_ERR_MALFORMED, errbuf, errlen,
                   "manifest list entry %zu: a field has the wrong type or is missing", c->n);
}

ws_err_t ws_iceberg_read_manifest_list(const void *buf, size_t len,
                                       struct ws_iceberg_manifest **out, size_t *n, char *errbuf,
                                       size_t errlen)
{
    struct container k;
    struct list_ctx c = {0};
    ws_err_t err;

    *out = NULL;
    *n = 0;
    if ((err = open_container(&k, buf, len, errbuf, errlen)))
        goto out;
    if (!same_record(k.schema_json, k.schema)) {
        err = ws_fail(WS_ERR_MALFORMED, errbuf, errlen, "manifest list schema is not a record");
        goto out;
    }
    c.i_path = index_of_id(k.schema_json, 500);
    c.i_length = index_of_id(k.schema_json, 501);
    c.i_snap = index_of_id(k.schema_json, 503);
    c.i_seq = index_of_id(k.schema_json, 515);
    c.i_content = index_of_id(k.schema_json, 517);
    if (c.i_path < 0 || c.i_snap < 0) {
        err =
            ws_fail(WS_ERR_MALFORMED, errbuf, errlen, "manifest list schema lacks field id %d (%s)",
                    c.i_path < 0 ? 500 : 503, c.i_path < 0 ? "manifest_path" : "added_snapshot_id");
        goto out;
    }
    assert(c.i_path < (int)avro_schema_record_size(k.schema)); /* invariant 3 */
    if ((err = each_datum(&k, on_manifest, &c, errbuf, errlen)))
        goto out;
    *out = c.v;
    *n = c.n;
    c.v = NULL;
    c.n = 0;
out:
    ws_iceberg_manifests_free(c.v, c.n);
    close_container(&k);
    return err;
}

void ws_iceberg_manifests_free(struct ws_iceberg_manifest *m, size_t n)
{
    for (size_t i = 0; m && i < n; i++)
        free(m[i].path);
    free(m);
}

/* ------------------------------------------------------------------------------------------ */
/* Manifests                                                                                     */

struct entry_ctx {
    int i_status, i_snap, i_file;             /* in manifest_entry */
    int i_content, i_path, i_records, i_size; /* in data_file (field id 2) */
    struct ws_iceberg_entry *v;
    size_t n, cap;
};

static ws_err_t on_entry(void *opaque, avro_value_t *rec, char *errbuf, size_t errlen)
{
    struct entry_ctx *c = opaque;
    struct ws_iceberg_entry e = {0};
    avro_value_t df;
    int64_t v;
    bool set;

    if (grow((void **)&c->v, &c->cap, c->n, sizeof *c->v))
        return WS_ERR_NOMEM;
    if (!field_long(rec, c->i_status, &v, &set) || !set || v < 0 || v > 2)
        goto bad;
    e.status = (int32_t)v;
    if (!field_long(rec, c->i_snap, &e.snapshot_id, &e.snapshot_id_set))
        goto bad;
    if (!field(rec, c->i_file, &df) || avro_value_get_type(&df) != AVRO_RECORD)
        goto bad;
    if (!field_long(&df, c->i_content, &v, &set) || (set && (v < 0 || v > 2)))
        goto bad;
    e.content = set ? (int32_t)v : 0;
    if (!field_long(&df, c->i_records, &e.record_count, &set) || !set ||
        !field_long(&df, c->i_size, &e.file_size, &set) || !set || e.record_count < 0 ||
        e.file_size < 0)
        goto bad;
    if (!field_string(&df, c->i_path, &e.path))
        goto bad;
    c->v[c->n++] = e;
    return WS_OK;
bad:
    return ws_fail(WS_ERR_MALFORMED, errbuf, errlen,
                   "manifest entry %zu: a field has the wrong type, is missing or out of range",
                   c->n);
}

ws_err_t ws_iceberg_read_manifest(const void *buf, size_t len, struct ws_iceberg_entry **out,
                                  size_t *n, char *errbuf, size_t errlen)
{
    struct container k;
    struct entry_ctx c = {0};
    const json_t *df_json;
    avro_schema_t df_schema;
    ws_err_t err;

    *out = NULL;
    *n = 0;
    if ((err = open_container(&k, buf, len, errbuf, errlen)))
        goto out;
    if (!same_record(k.schema_json, k.schema)) {
        err = ws_fail(WS_ERR_MALFORMED, errbuf, errlen, "manifest schema is not a record");
        goto out;
    }
    c.i_status = index_of_id(k.schema_json, 0);
    c.i_snap = index_of_id(k.schema_json, 1);
    c.i_file = index_of_id(k.schema_json, 2);
    if (c.i_status < 0 || c.i_file < 0) {
        err = ws_fail(WS_ERR_MALFORMED, errbuf, errlen, "manifest schema lacks field id %d (%s)",
                      c.i_status < 0 ? 0 : 2, c.i_status < 0 ? "status" : "data_file");
        goto out;
    }
    /* data_file is a required record: its JSON is the field's type object (never a union). */
    df_json = json_object_get(
        json_array_get(json_object_get(k.schema_json, "fields"), (size_t)c.i_file), "type");
    df_schema = avro_schema_record_field_get_by_index(k.schema, c.i_file);
    if (!json_is_object(df_json) || !df_schema || !same_record(df_json, df_schema)) {
        err = ws_fail(WS_ERR_MALFORMED, errbuf, errlen,
                      "manifest schema: data_file (field id 2) is not an inline record");
        goto out;
    }
    c.i_content = index_of_id(df_json, 134);
    c.i_path = index_of_id(df_json, 100);
    c.i_records = index_of_id(df_json, 103);
    c.i_size = index_of_id(df_json, 104);
    if (c.i_path < 0 || c.i_records < 0 || c.i_size < 0) {
        err = ws_fail(WS_ERR_MALFORMED, errbuf, errlen,
                      "manifest schema: data_file lacks field id %d",
                      c.i_path < 0      ? 100
                      : c.i_records < 0 ? 103
                                        : 104);
        goto out;
    }
    if ((err = each_datum(&k, on_entry, &c, errbuf, errlen)))
        goto out;
    *out = c.v;
    *n = c.n;
    c.v = NULL;
    c.n = 0;
out:
    ws_iceberg_entries_free(c.v, c.n);
    close_container(&k);
    return err;
}

void ws_iceberg_entries_free(struct ws_iceberg_entry *e, size_t n)
{
    for (size_t i = 0; e && i < n; i++)
        free(e[i].path);
    free(e);
}
