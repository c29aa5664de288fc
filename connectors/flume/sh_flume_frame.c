/* sh_flume_frame.c: one Flume connection's byte stream: Avro's Netty transport framing (serial,
 * buffer count, length-prefixed buffers, all big-endian), the optional zlib stream both ways
 * (Flume's NettyServer with compression), and the read buffers of its connections. */
#include "sh_flume.h"
#include "sh_common.h"

#include <stdio.h>
#include <string.h>

#define INFLATE_SLICE ((size_t) 256 << 10)  /* plain bytes inflated at a time, at most */
#define KEEP_BYTES ((size_t) 1 << 20)        /* buffers larger than this are let go when empty */

int sh_flume_stream_init(sh_flume_stream_t *s, int compressed)
{
    memset(s, 0, sizeof *s);
    if (!compressed)
        return 0;
    if (inflateInit(&s->zin) != Z_OK)
        return SH_ENOMEM;
    if (deflateInit(&s->zout, 6) != Z_OK) {
        inflateEnd(&s->zin);
        return SH_ENOMEM;
    }
    s->compressed = 1;
    return 0;
}

void sh_flume_stream_free(sh_flume_stream_t *s)
{
    if (s->compressed) {
        inflateEnd(&s->zin);
        deflateEnd(&s->zout);
        s->compressed = 0;
    }
    sh_free(s->data);
    sh_free(s->zdata);
    s->data = s->zdata = NULL;
    s->head = s->len = s->cap = s->zhead = s->zlen = s->zcap = 0;
}

size_t sh_flume_stream_pending(const sh_flume_stream_t *s)
{
    return (s->len - s->head) + (s->zlen - s->zhead);
}

#define READ_BYTES ((size_t) 64 << 10)

void sh_flume_alloc_read(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void) h;
    (void) hint;
    buf->base = sh_malloc(READ_BYTES);
    buf->len = buf->base ? READ_BYTES : 0;
}

void sh_flume_buf_trim(sh_buf_t *b)
{
    if (b->cap > KEEP_BYTES) {
        sh_buf_close(b);
        sh_buf_init(b);
    }
}

/* Room for `more` bytes after [*head, *len) of *data: what was taken is moved out first (once
 * per call, so taking many small frames stays linear); a large buffer left empty is let go. */
static int make_room(uint8_t **data, size_t *head, size_t *len, size_t *cap, size_t more)
{
    size_t keep = *len - *head, want;
    uint8_t *p;

    if (*head > 0) {
        memmove(*data, *data + *head, keep);
        *len = keep;
        *head = 0;
    }
    if (keep == 0 && *cap > KEEP_BYTES) {
        sh_free(*data);
        *data = NULL;
        *cap = 0;
    }
    if (*cap - *len >= more)
        return 0;
    for (want = *cap ? *cap : 16384; want - *len < more; want *= 2)
        ;
    p = sh_realloc(*data, want);
    if (p == NULL)
        return SH_ENOMEM;
    *data = p;
    *cap = want;
    return 0;
}

int sh_flume_stream_feed(sh_flume_stream_t *s, const char *bytes, size_t len, const char **err)
{
    if (s->compressed) {
        if (make_room(&s->zdata, &s->zhead, &s->zlen, &s->zcap, len)) {
            *err = "out of memory";
            return SH_ENOMEM;
        }
        memcpy(s->zdata + s->zlen, bytes, len);
        s->zlen += len;
        return 0;
    }
    if (make_room(&s->data, &s->head, &s->len, &s->cap, len)) {
        *err = "out of memory";
        return SH_ENOMEM;
    }
    memcpy(s->data + s->len, bytes, len);
    s->len += len;
    return 0;
}

/* Inflates one slice of what waits compressed into the plain bytes: 1 when it made progress,
 * 0 when nothing more can be inflated now, -1 on a corrupt stream (*err). */
static int inflate_slice(sh_flume_stream_t *s, const char **err)
{
    size_t before_in, before_out;
    int rc;

    if (!s->compressed || s->zhead == s->zlen)
        return 0;
    if (make_room(&s->data, &s->head, &s->len, &s->cap, INFLATE_SLICE)) {
        *err = "out of memory";
        return -1;
    }
    s->zin.next_in = s->zdata + s->zhead;
    s->zin.avail_in = (uInt) (s->zlen - s->zhead);
    s->zin.next_out = s->data + s->len;
    s->zin.avail_out = (uInt) INFLATE_SLICE;
    before_in = s->zin.avail_in;
    before_out = s->zin.avail_out;
    rc = inflate(&s->zin, Z_SYNC_FLUSH);
    s->zhead += before_in - s->zin.avail_in;
    s->len += before_out - s->zin.avail_out;
    if (rc == Z_STREAM_END) {
        inflateReset(&s->zin);  /* a new zlib stream may follow (a client that finished one) */
    } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
        *err = s->zin.msg ? s->zin.msg : "corrupt zlib stream";
        return -1;
    }
    return before_in != s->zin.avail_in || before_out != s->zin.avail_out;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t) (v >> 24);
    p[1] = (uint8_t) (v >> 16);
    p[2] = (uint8_t) (v >> 8);
    p[3] = (uint8_t) v;
}

/* Walks the next frame's buffer headers as far as the bytes go, from where the last walk
 * stopped: 1 when the frame is whole (its end in *end, from head), 0 when more is needed, -1
 * when it is malformed. Nothing is copied until the whole frame is here. */
static int scan_frame(sh_flume_stream_t *s, size_t *end, char *err, size_t errlen)
{
    const uint8_t *p = s->data + s->head;
    size_t have = s->len - s->head;
    uint32_t count;

    if (have < 8)
        return 0;
    count = be32(p + 4);
    if (count > SH_FLUME_MAX_BUFFERS) {
        snprintf(err, errlen, "malformed frame: %u buffers", count);
        return -1;
    }
    if (s->scan_pos == 0) {
        s->scan_pos = 8;
        s->scan_i = 0;
        s->scan_total = 0;
    }
    while (s->scan_i < count) {
        uint32_t n;

        if (have - s->scan_pos < 4)
            return 0;
        n = be32(p + s->scan_pos);
        s->scan_total += n;
        if (n > SH_FLUME_MAX_FRAME || s->scan_total > SH_FLUME_MAX_FRAME) {
            snprintf(err, errlen, "malformed frame: %zu bytes (the limit is %zu)", s->scan_total,
                     SH_FLUME_MAX_FRAME);
            return -1;
        }
        if (have - s->scan_pos - 4 < n) {
            s->scan_total -= n;  /* this buffer is walked again when more has come */
            return 0;
        }
        s->scan_pos += 4 + n;
        s->scan_i++;
    }
    *end = s->scan_pos;
    return 1;
}

int sh_flume_stream_frame(sh_flume_stream_t *s, uint32_t *serial, sh_buf_t *msg, char *err,
                          size_t errlen)
{
    const char *zerr = NULL;
    size_t end, pos, i;
    const uint8_t *p;
    uint32_t count;
    int rc;

    while ((rc = scan_frame(s, &end, err, errlen)) == 0) {
        int more = inflate_slice(s, &zerr);

        if (more < 0) {
            snprintf(err, errlen, "%s", zerr);
            return -1;
        }
        if (more == 0)
            return 0;
    }
    if (rc < 0)
        return -1;
    p = s->data + s->head;
    *serial = be32(p);
    count = be32(p + 4);
    msg->len = 0;
    if (msg->data)
        msg->data[0] = '\0';
    for (pos = 8, i = 0; i < count; i++) {
        uint32_t n = be32(p + pos);

        sh_buf_add(msg, (const char *) p + pos + 4, n);
        pos += 4 + n;
    }
    s->head += end;
    s->scan_pos = 0;
    if (msg->oom) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 1;
}

int sh_flume_stream_encode(sh_flume_stream_t *s, uint32_t serial, const char *msg, size_t len,
                           char **out, size_t *outlen)
{
    size_t flen = 12 + len, cap;
    uint8_t *frame = sh_malloc(flen), *z;

    if (frame == NULL)
        return SH_ENOMEM;
    put_be32(frame, serial);
    put_be32(frame + 4, 1);
    put_be32(frame + 8, (uint32_t) len);
    memcpy(frame + 12, msg, len);
    if (!s->compressed) {
        *out = (char *) frame;
        *outlen = flen;
        return 0;
    }
    cap = deflateBound(&s->zout, flen) + 64;
    z = sh_malloc(cap);
    if (z == NULL) {
        sh_free(frame);
        return SH_ENOMEM;
    }
    s->zout.next_in = frame;
    s->zout.avail_in = (uInt) flen;
    s->zout.next_out = z;
    s->zout.avail_out = (uInt) cap;
    /* With room for deflateBound, one call consumes everything and flushes. */
    if (deflate(&s->zout, Z_SYNC_FLUSH) != Z_OK || s->zout.avail_in != 0) {
        sh_free(frame);
        sh_free(z);
        return SH_ENOMEM;
    }
    *outlen = cap - s->zout.avail_out;
    *out = (char *) z;
    sh_free(frame);
    return 0;
}
