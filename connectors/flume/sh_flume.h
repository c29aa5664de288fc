/* sh_flume.h: what the Flume connector's files share: the SH_BLOB_FLUME block layout, Avro's
 * binary encoding as the two protocols use it, the Avro RPC handshake, Avro's Netty framing
 * (with the optional zlib stream).
 * Thread contract for everything here: the caller owns the objects it passes (cursors,
 * buffers, streams, queues) and uses each from one thread at a time (the receivers: the loop
 * thread); the only shared state is the two protocols' hashes and the handshake schemas,
 * made once under a once-guard and read-only after. */
#ifndef SH_FLUME_H
#define SH_FLUME_H

#include <stddef.h>
#include <stdint.h>
#include <zlib.h>
#include <uv.h>

#include "sh_blob.h"
#include "sh_buf.h"

/* A block of Flume events (blob kind SH_BLOB_FLUME): events back to back, each
 *   uint32 header count, per header uint32 key length, key, uint32 value length, value,
 *   uint32 body length, body
 * in the host's byte order; count is the number of events. Workers decode them lazily
 * (lua/streamhost/codec.lua). */
#define SH_BLOB_FLUME 6

/* Frames larger than this (all buffers together), or with more buffers, are malformed. */
#define SH_FLUME_MAX_FRAME ((size_t) 64 << 20)
#define SH_FLUME_MAX_BUFFERS (1u << 20)
/* Events in one request at most (Flume agents send batches of hundreds to thousands): an
 * empty event is 2 bytes of Avro and 8 in a block, so a frame of tiny events costs memory
 * out of proportion to its size. */
#define SH_FLUME_MAX_EVENTS 1000000
#define SH_FLUME_MAX_EVENTS_TEXT "1000000"

/* -- Avro binary encoding (sh_flume_avro.c) ---------------------------------------------- */

/* A cursor over received bytes. A read past the end or a bad value sets err (a static
 * message) and every later read returns nothing. */
typedef struct {
    const uint8_t *p, *end;
    const char *err;
} sh_avro_in_t;

int64_t sh_avro_get_long(sh_avro_in_t *in);
/* A length-prefixed string or bytes: a pointer into the input, its length in *len. */
const uint8_t *sh_avro_get_bytes(sh_avro_in_t *in, size_t *len);
/* Skips a map<bytes> or map<string> (call metadata). */
void sh_avro_skip_map(sh_avro_in_t *in);

void sh_avro_put_long(sh_buf_t *b, int64_t v);
void sh_avro_put_bytes(sh_buf_t *b, const void *p, size_t len);

/* Reads `count` events {headers: map<string>, body: bytes} (AvroFlumeEvent and SparkSinkEvent
 * alike) as an Avro array when `array` (else one event) and appends them to `out` in the
 * SH_BLOB_FLUME layout. Returns the number of events read, or -1 with in->err set; `out` may
 * then hold part of them (the caller discards it). */
long sh_flume_get_events(sh_avro_in_t *in, int array, sh_buf_t *out);

/* -- The protocols and the handshake (sh_flume_avro.c) ----------------------------------- */

typedef struct {
    const char *name;   /* "AvroSourceProtocol" */
    const char *json;   /* the protocol's JSON text as python3-avro renders it */
    uint8_t md5[16];    /* MD5 of json: the protocol hash of the handshake */
} sh_flume_proto_t;

/* Flume's AvroSourceProtocol and Spark's SparkFlumeProtocol, hashes computed once. Any
 * thread (the first call initializes them under a once-guard). */
const sh_flume_proto_t *sh_flume_source_protocol(void);
const sh_flume_proto_t *sh_flume_sink_protocol(void);

enum { SH_MATCH_BOTH = 0, SH_MATCH_CLIENT = 1, SH_MATCH_NONE = 2 };

/* The server's side: the protocol hashes a server has accepted from clients (besides its own). */
typedef struct {
    uint8_t hashes[16][16];
    int n, next;
} sh_flume_known_t;

/* Reads a HandshakeRequest from `in` (by hand), decides the match as Avro's responders
 * do (clientHash known or clientProtocol given and naming `local`'s protocol: CLIENT, or BOTH
 * when serverHash is ours; else NONE) and appends the HandshakeResponse to `out` (with our
 * protocol and hash unless BOTH). Returns the match, or -1 with *err (a static message) when
 * the request is malformed. Loop thread (the server's). */
int sh_flume_handshake_serve(sh_avro_in_t *in, const sh_flume_proto_t *local,
                             sh_flume_known_t *known, sh_buf_t *out, const char **err);

/* The client's side: appends a HandshakeRequest for `local` (with its JSON text when
 * send_protocol), assuming the server speaks the same protocol. */
void sh_flume_handshake_request(const sh_flume_proto_t *local, int send_protocol, sh_buf_t *out);
/* Reads a HandshakeResponse: the match, or -1 with *err. */
int sh_flume_handshake_response(sh_avro_in_t *in, const char **err);

/* -- Avro's Netty framing and the zlib stream (sh_flume_frame.c) ------------------------- */

/* One connection's incoming byte stream: raw or through zlib. Compressed bytes are inflated
 * only as frames are taken, a slice at a time, so a small compressed input cannot make the
 * stream hold more than about one frame and one slice of plain bytes. */
typedef struct {
    uint8_t *data;        /* plain bytes; [head, len) not taken yet */
    size_t head, len, cap;
    size_t scan_pos, scan_total;  /* the next frame's header walk so far (scan_pos from head;
                                   * 0: not begun) */
    uint32_t scan_i;
    uint8_t *zdata;       /* compressed bytes; [zhead, zlen) not inflated yet */
    size_t zhead, zlen, zcap;
    z_stream zin, zout;
    int compressed;       /* zin/zout are initialized */
} sh_flume_stream_t;

/* 0 or SH_ENOMEM. */
int sh_flume_stream_init(sh_flume_stream_t *s, int compressed);
void sh_flume_stream_free(sh_flume_stream_t *s);
/* Adds received bytes (kept compressed until sh_flume_stream_frame needs them). 0 or
 * SH_ENOMEM (*err set). */
int sh_flume_stream_feed(sh_flume_stream_t *s, const char *bytes, size_t len, const char **err);
/* Takes the next complete frame from the stream: 1 with its serial and its buffers joined into
 * `msg` (emptied first); 0 when the frame is not complete yet; -1 when the frame is malformed
 * or the zlib stream corrupt (*err says how). Linear in the bytes taken. */
int sh_flume_stream_frame(sh_flume_stream_t *s, uint32_t *serial, sh_buf_t *msg, char *err,
                          size_t errlen);
/* Bytes received and not taken as frames yet (plain and still compressed). */
size_t sh_flume_stream_pending(const sh_flume_stream_t *s);
/* libuv's read allocator for Flume connections: a new 64 KiB buffer the read callback frees
 * (sh_free); len 0 when out of memory. Loop thread. */
void sh_flume_alloc_read(uv_handle_t *h, size_t hint, uv_buf_t *buf);
/* Lets go of a connection's per-request buffer when a large request made it grow past 1 MiB,
 * so that an idle connection holds little. The buffer's owner's thread. */
void sh_flume_buf_trim(sh_buf_t *b);
/* A frame holding `msg` as one buffer, deflated when the stream is compressed (with a sync
 * flush, as Netty's ZlibEncoder writes): a new buffer (free with sh_free) in *out. 0 or
 * SH_ENOMEM. */
int sh_flume_stream_encode(sh_flume_stream_t *s, uint32_t serial, const char *msg, size_t len,
                           char **out, size_t *outlen);

#endif
