/* sh_flume_frame.c: one Flume connection's byte stream: Avro's Netty transport framing (serial,
 * buffer count, length-prefixed buffers, all big-endian), the optional zlib stream both ways
 * (Flume's NettyServer with compression). */
#include "sh_flume.h"
#include "sh_common.h"

#include <stdio.h>
#include <string.h>

#define INFLATE_STEP ((size_t) 64 << 10)

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
    s->data = NULL;
    s->len = s->cap = 0;
}

static int reserve(sh_flume_stream_t *s, size_t more)
{
    size_t cap = s->cap ? s->cap : INFLATE_STEP;
    uint8_t *p;

    if (s->cap - s->len >= more)
        return 0;
    while (cap - s->len < more)
        cap *= 2;
    p = sh_realloc(s->data, cap);
    if (p == NULL)
        return SH_ENOMEM;
    s->data = p;
    s->cap = cap;
    return 0;
}

int sh_flume_stream_feed(sh_flume_stream_t *s, const char *bytes, size_t len, const char **err)
{
    if (!s->compressed) {
        if (reserve(s, len))
            return SH_ENOMEM;
        memcpy(s->data + s->len, bytes, len);
        s->len += len;
        return 0;
    }
    s->zin.next_in = (Bytef *) bytes;
    s->zin.avail_in = (uInt) len;
    while (s->zin.avail_in > 0) {
        int rc;

        if (reserve(s, INFLATE_STEP))
            return SH_ENOMEM;
        s->zin.next_out = s->data + s->len;
        s->zin.avail_out = (uInt) (s->cap - s->len);
        rc = inflate(&s->zin, Z_SYNC_FLUSH);
        s->len = (size_t) (s->zin.next_out - s->data);
        if (rc == Z_STREAM_END) {
            /* A new zlib stream may follow (a client that finished one). */
            inflateReset(&s->zin);
        } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
            *err = s->zin.msg ? s->zin.msg : "corrupt zlib stream";
            return -1;
        }
    }
    return 0;
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

int sh_flume_stream_frame(sh_flume_stream_t *s, uint32_t *serial, sh_buf_t *msg, char *err,
                          size_t errlen)
{
    size_t pos = 8, total = 0, i;
    uint32_t count;

    if (s->len < 8)
        return 0;
    count = be32(s->data + 4);
    if (count > SH_FLUME_MAX_BUFFERS) {
        snprintf(err, errlen, "malformed frame: %u buffers", count);
        return -1;
    }
    /* Walks the buffer headers first: nothing is copied until the whole frame is here. */
    for (i = 0; i < count; i++) {
        uint32_t n;

        if (s->len - pos < 4)
            return 0;
        n = be32(s->data + pos);
        total += n;
        if (n > SH_FLUME_MAX_FRAME || total > SH_FLUME_MAX_FRAME) {
            snprintf(err, errlen, "malformed frame: %zu bytes (the limit is %zu)", total,
                     SH_FLUME_MAX_FRAME);
            return -1;
        }
        if (s->len - pos - 4 < n)
            return 0;
        pos += 4 + n;
    }
    *serial = be32(s->data);
    msg->len = 0;
    if (msg->data)
        msg->data[0] = '\0';
    for (pos = 8, i = 0; i < count; i++) {
        uint32_t n = be32(s->data + pos);

        sh_buf_add(msg, (const char *) s->data + pos + 4, n);
        pos += 4 + n;
    }
    memmove(s->data, s->data + pos, s->len - pos);
    s->len -= pos;
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
    deflate(&s->zout, Z_SYNC_FLUSH);
    *outlen = cap - s->zout.avail_out;
    *out = (char *) z;
    sh_free(frame);
    return 0;
}
