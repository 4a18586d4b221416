/*
 * evidence.c — the evidence archive (FORMAT.md §3): the window stream as one standard LZ4 frame.
 *
 * Writer. Window-stream bytes are copied into a 64 KiB staging block; every full block goes to
 * LZ4F_compressUpdate in one call, the compressed bytes collect in an output buffer that is
 * handed to out() whenever it holds about block_size bytes. Frame parameters:
 *   - 64 KiB blocks, linked. LZ4 matches reach back at most 64 KiB, so linked 64 KiB blocks
 *     compress as well as 4 MiB independent ones, while writer and reader need ~64 KiB of block
 *     buffers instead of ~4 MiB: memory is small and fixed whatever the window size.
 *   - content checksum and block checksums off: the stream digest in the signed statement covers
 *     every decompressed byte already; a second, unsigned checksum adds nothing.
 *   - no content size (the writer streams; it does not know the total in advance).
 * Because LZ4F always sees the same call sequence (full 64 KiB blocks, then the tail at finish)
 * the archive bytes are a pure function of the window stream, independent of how callers split
 * their writes: a window re-attested after a crash yields a byte-identical archive.
 *
 * Reader. Compressed bytes come from a ws_read_fn into a 64 KiB input buffer; LZ4F_decompress
 * writes straight into a "pending" buffer from which `u32 length || encoding` records are cut.
 * The pending buffer grows only to hold the largest record seen (bounded by WS_RECORD_MAX), so a
 * record that straddles any number of decompression calls is handled. Every decompressed byte
 * is hashed as it is produced: ws_evidence_stream_digest is the stream digest once the frame end
 * has been reached. Anything but exactly one complete frame (truncation, garbage, a second frame,
 * trailing bytes) is an error; errors are sticky.
 *
 * Threads: a writer or reader is used by one thread at a time.
 */
#include "window/window.h"

#include <lz4frame.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <stdarg.h>

#define STAGE_SIZE (64u * 1024)           /* == the frame's block size */
#define DEFAULT_OUT_BLOCK (1024u * 1024)  /* block_size 0 */
#define MAX_OUT_BLOCK (64u * 1024 * 1024) /* larger requests are clamped */
#define READ_CHUNK (64u * 1024)           /* compressed bytes per in() call */
#define PENDING_MIN (128u * 1024)         /* initial decompressed buffer */
#define PENDING_SLACK (64u * 1024)        /* room kept beyond the record being assembled */

/* ------------------------------------------------------------------------------------------ */
/* Writer                                                                                         */

struct ws_evidence_writer {
    ws_write_fn out;
    void *opaque;
    LZ4F_cctx *cctx;
    LZ4F_preferences_t prefs;
    uint8_t *stage; /* STAGE_SIZE bytes of uncompressed input */
    size_t stagelen;
    uint8_t *obuf; /* compressed output waiting for out() */
    size_t olen, ocap, oflush;
    bool finished;
    ws_err_t err; /* sticky: once set every call returns it */
};

static ws_err_t flush_out(struct ws_evidence_writer *e)
{
    ws_err_t err;

    if (e->olen == 0)
        return WS_OK;
    err = e->out(e->opaque, e->obuf, e->olen);
    e->olen = 0;
    return err;
}

/* Compress one staged block (full, or the tail at finish). */
static ws_err_t compress_stage(struct ws_evidence_writer *e)
{
    size_t n;

    if (e->stagelen == 0)
        return WS_OK;
    /* obuf was sized so that, below oflush, one block's worst case always fits */
    n = LZ4F_compressUpdate(e->cctx, e->obuf + e->olen, e->ocap - e->olen, e->stage, e->stagelen,
                            NULL);
    if (LZ4F_isError(n))
        return WS_ERR_INVALID; /* cannot happen with a correctly sized obuf */
    e->olen += n;
    e->stagelen = 0;
    if (e->olen >= e->oflush)
        return flush_out(e);
    return WS_OK;
}

struct ws_evidence_writer *ws_evidence_writer_new(ws_write_fn out, void *opaque, size_t block_size)
{
    struct ws_evidence_writer *e;
    size_t hdr;

    if (!out)
        return NULL;
    e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    e->out = out;
    e->opaque = opaque;
    e->prefs.frameInfo.blockSizeID = LZ4F_max64KB;
    e->prefs.frameInfo.blockMode = LZ4F_blockLinked;
    e->prefs.frameInfo.contentChecksumFlag = LZ4F_noContentChecksum;
    e->prefs.frameInfo.blockChecksumFlag = LZ4F_noBlockChecksum;
    e->prefs.frameInfo.frameType = LZ4F_frame;
    e->prefs.compressionLevel = 0; /* the fast default: evidence is written on the hot path */
    e->prefs.autoFlush = 1;        /* each full block leaves LZ4F at once: nothing hides inside */

    e->oflush = block_size ? block_size : DEFAULT_OUT_BLOCK;
    if (e->oflush > MAX_OUT_BLOCK)
        e->oflush = MAX_OUT_BLOCK;
    e->ocap = e->oflush + LZ4F_compressBound(STAGE_SIZE, &e->prefs) + LZ4F_HEADER_SIZE_MAX;
    e->obuf = malloc(e->ocap);
    e->stage = malloc(STAGE_SIZE);
    if (!e->obuf || !e->stage)
        goto out_free;
    if (LZ4F_isError(LZ4F_createCompressionContext(&e->cctx, LZ4F_VERSION)))
        goto out_free;
    hdr = LZ4F_compressBegin(e->cctx, e->obuf, e->ocap, &e->prefs);
    if (LZ4F_isError(hdr))
        goto out_free;
    e->olen = hdr;
    return e;

out_free:
    ws_evidence_writer_destroy(e);
    return NULL;
}

ws_err_t ws_evidence_write(struct ws_evidence_writer *e, const void *buf, size_t len)
{
    const uint8_t *p = buf;

    if (e->err)
        return e->err;
    if (e->finished)
        return e->err = WS_ERR_INVALID;
    while (len > 0) {
        size_t n = STAGE_SIZE - e->stagelen;

        if (n > len)
            n = len;
        memcpy(e->stage + e->stagelen, p, n);
        e->stagelen += n;
        p += n;
        len -= n;
        if (e->stagelen == STAGE_SIZE) {
            ws_err_t err = compress_stage(e);
            if (err)
                return e->err = err;
        }
    }
    return WS_OK;
}

ws_err_t ws_evidence_finish(struct ws_evidence_writer *e)
{
    ws_err_t err;
    size_t n;

    if (e->err)
        return e->err;
    if (e->finished)
        return WS_OK;
    err = compress_stage(e);
    if (err)
        return e->err = err;
    /* olen < oflush here and ocap - oflush >= compressBound(0): the end mark fits */
    n = LZ4F_compressEnd(e->cctx, e->obuf + e->olen, e->ocap - e->olen, NULL);
    if (LZ4F_isError(n))
        return e->err = WS_ERR_INVALID;
    e->olen += n;
    err = flush_out(e);
    if (err)
        return e->err = err;
    e->finished = true;
    return WS_OK;
}

void ws_evidence_writer_destroy(struct ws_evidence_writer *e)
{
    if (!e)
        return;
    LZ4F_freeCompressionContext(e->cctx);
    free(e->stage);
    free(e->obuf);
    free(e);
}

ws_err_t ws_evidence_write_cb(void *writer, const void *buf, size_t len)
{
    return ws_evidence_write(writer, buf, len);
}

/* ------------------------------------------------------------------------------------------ */
/* Reader                                                                                         */

struct ws_evidence_reader {
    ws_read_fn in;
    void *opaque;
    LZ4F_dctx *dctx;
    uint8_t *ibuf; /* compressed bytes: [ipos, ilen) not yet given to LZ4F */
    size_t ipos, ilen;
    uint64_t total_in; /* compressed bytes read so far */
    uint8_t magic[4];  /* the archive's first four bytes */
    bool in_eof;
    bool frame_done;
    uint8_t *pend; /* decompressed bytes: [poff, plen) not yet returned */
    size_t poff, plen, pcap;
    size_t consumed; /* bytes of the record returned last, dropped at the next call */
    struct ws_sha256 digest;
    ws_err_t err;     /* sticky */
    char errmsg[160]; /* the sticky error's reason */
};

struct ws_evidence_reader *ws_evidence_reader_new(ws_read_fn in, void *opaque)
{
    struct ws_evidence_reader *r;

    if (!in)
        return NULL;
    r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->in = in;
    r->opaque = opaque;
    r->ibuf = malloc(READ_CHUNK);
    r->pend = malloc(PENDING_MIN);
    r->pcap = PENDING_MIN;
    if (!r->ibuf || !r->pend)
        goto out_free;
    if (LZ4F_isError(LZ4F_createDecompressionContext(&r->dctx, LZ4F_VERSION)))
        goto out_free;
    ws_sha256_init(&r->digest);
    return r;

out_free:
    ws_evidence_reader_destroy(r);
    return NULL;
}

void ws_evidence_reader_destroy(struct ws_evidence_reader *r)
{
    if (!r)
        return;
    LZ4F_freeDecompressionContext(r->dctx);
    free(r->ibuf);
    free(r->pend);
    free(r);
}

void ws_evidence_stream_digest(const struct ws_evidence_reader *r, uint8_t out[WS_HASH_LEN])
{
    struct ws_sha256 copy = r->digest; /* finalising a copy keeps the running hash usable */

    ws_sha256_final(&copy, out);
}

/* Record a sticky error with its reason. */
static ws_err_t rfail(struct ws_evidence_reader *r, ws_err_t err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static ws_err_t rfail(struct ws_evidence_reader *r, ws_err_t err, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(r->errmsg, sizeof(r->errmsg), fmt, ap);
    va_end(ap);
    return r->err = err;
}

static ws_err_t read_input(struct ws_evidence_reader *r)
{
    size_t got = 0;
    ws_err_t err;

    err = r->in(r->opaque, r->ibuf, READ_CHUNK, &got);
    if (err)
        return rfail(r, err, "evidence: reading the archive failed: %s", ws_strerror(err));
    if (got > READ_CHUNK)
        return rfail(r, WS_ERR_INVALID, "evidence: read callback returned more than asked");
    for (size_t i = 0; i < got && r->total_in + i < 4; i++)
        r->magic[r->total_in + i] = r->ibuf[i];
    r->ipos = 0;
    r->ilen = got;
    r->total_in += got;
    if (got == 0)
        r->in_eof = true;
    return WS_OK;
}

/* After the frame's end mark nothing may follow: not bytes, not a second frame. */
static ws_err_t check_trailing(struct ws_evidence_reader *r)
{
    ws_err_t err;

    for (;;) {
        if (r->ipos < r->ilen)
            return rfail(r, WS_ERR_MALFORMED, "evidence: data after the end of the LZ4 frame");
        if (r->in_eof)
            return WS_OK;
        err = read_input(r);
        if (err)
            return err;
    }
}

/*
 * Decompress until at least one more byte is pending (returns WS_OK) or the frame has ended
 * (r->frame_done, nothing added). The pending buffer must have free space.
 */
static ws_err_t decompress_more(struct ws_evidence_reader *r)
{
    for (;;) {
        size_t src, dst, ret;

        if (r->frame_done)
            return WS_OK;
        if (r->ipos == r->ilen && !r->in_eof) {
            ws_err_t err = read_input(r);
            if (err)
                return err;
        }
        src = r->ilen - r->ipos;
        dst = r->pcap - r->plen;
        ret = LZ4F_decompress(r->dctx, r->pend + r->plen, &dst, r->ibuf + r->ipos, &src, NULL);
        if (LZ4F_isError(ret))
            return rfail(r, WS_ERR_MALFORMED, "evidence: corrupt LZ4 frame: %s",
                         LZ4F_getErrorName(ret));
        r->ipos += src;
        ws_sha256_update(&r->digest, r->pend + r->plen, dst);
        r->plen += dst;
        if (ret == 0) {
            /* LZ4F "decodes" a lone skippable frame as nothing: it is not a window stream */
            if ((r->magic[0] & 0xf0) == 0x50 && r->magic[1] == 0x2a && r->magic[2] == 0x4d &&
                r->magic[3] == 0x18)
                return rfail(r, WS_ERR_MALFORMED, "evidence: a skippable frame, not an LZ4 frame");
            r->frame_done = true;
            return check_trailing(r);
        }
        if (dst > 0)
            return WS_OK;
        if (src == 0 && r->ipos == r->ilen && r->in_eof) {
            if (r->total_in == 0)
                return rfail(r, WS_ERR_TRUNCATED, "evidence: empty archive (no LZ4 frame)");
            return rfail(r, WS_ERR_TRUNCATED, "evidence: archive ends inside the LZ4 frame");
        }
        if (src == 0 && r->ipos < r->ilen)
            return rfail(r, WS_ERR_MALFORMED, "evidence: LZ4 decoder made no progress");
    }
}

/* Make room so that `need` bytes from poff fit, plus slack for decompression. */
static ws_err_t make_room(struct ws_evidence_reader *r, size_t need)
{
    size_t have = r->plen - r->poff;

    if (r->poff > 0) {
        memmove(r->pend, r->pend + r->poff, have);
        r->plen = have;
        r->poff = 0;
    }
    if (r->pcap - r->plen == 0 || r->pcap < need) {
        size_t ncap = need + PENDING_SLACK;
        uint8_t *p;

        if (ncap < r->pcap)
            ncap = r->pcap;
        p = realloc(r->pend, ncap);
        if (!p)
            return rfail(r, WS_ERR_NOMEM, "evidence: out of memory for a %zu-byte record", need);
        r->pend = p;
        r->pcap = ncap;
    }
    return WS_OK;
}

ws_err_t ws_evidence_next(struct ws_evidence_reader *r, const uint8_t **rec, size_t *len,
                          char *errbuf, size_t errlen)
{
    ws_err_t err;

    *rec = NULL;
    *len = 0;
    if (r->err)
        goto out_err;
    r->poff += r->consumed;
    r->consumed = 0;
    for (;;) {
        size_t have = r->plen - r->poff;
        size_t need = 4;

        if (have >= 4) {
            const uint8_t *p = r->pend + r->poff;
            uint32_t n = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];

            if (n == 0) {
                rfail(r, WS_ERR_MALFORMED, "evidence: zero-length record in the window stream");
                goto out_err;
            }
            if (n > WS_RECORD_MAX) {
                rfail(r, WS_ERR_TOO_LARGE, "evidence: record of %u bytes exceeds the %u limit", n,
                      WS_RECORD_MAX);
                goto out_err;
            }
            need = 4 + (size_t)n;
            if (have >= need) {
                *rec = p + 4;
                *len = n;
                r->consumed = need;
                return WS_OK;
            }
        }
        if (r->frame_done) {
            if (have == 0)
                return WS_OK; /* clean end */
            rfail(r, WS_ERR_TRUNCATED, "evidence: window stream ends inside a record");
            goto out_err;
        }
        err = make_room(r, need);
        if (err)
            goto out_err;
        err = decompress_more(r);
        if (err)
            goto out_err;
    }

out_err:
    return ws_fail(r->err, errbuf, errlen, "%s", r->errmsg);
}
