/* sh_in_kinesis.h: the Kinesis receiver (KinesisUtils.createStream): its blocks of records and
 * the shard positions they carry, and the receiver the driver opens on the loop. */
#ifndef SH_IN_KINESIS_H
#define SH_IN_KINESIS_H

#include <stdint.h>

#include "sh_blob.h"
#include "sh_host.h"
#include "sh_sched.h"

/* A block of Kinesis records (blob kind SH_BLOB_KINESIS): entries back to back, each
 *   int32 flags (0: a record; SH_KINESIS_SHARD_END: the shard was read to its end, no data;
 *   SH_KINESIS_SHARD_LATEST: a shard that starts at LATEST was first asked for an iterator at
 *   the time in the arrival field, no data: where a recovery resumes while it read nothing),
 *   int32 shard id length, int32 sequence number length, int32 partition key length,
 *   int32 data length, int32 0, int64 approximate arrival (epoch ms, 0 when unknown),
 *   shard id, sequence number, partition key, data (decoded from base64)
 * in the host's byte order; count is the number of records (end marks are not counted).
 * Workers decode them lazily (lua/streamhost/codec.lua). */
#define SH_BLOB_KINESIS 5
#define SH_KINESIS_HEADER 32
#define SH_KINESIS_SHARD_END 1
#define SH_KINESIS_SHARD_LATEST 2

/* Appends one entry to a block its creator still owns (no other thread may see it yet); 0 or
 * SH_ENOMEM (*bp may move; entries appended before stay). Any thread, the block's owner's. */
int sh__kinesis_block_append(sh_blob_t **bp, int32_t flags, const char *shard, const char *seq,
                             const char *key, const char *data, size_t data_len,
                             int64_t arrival_ms);

/* -- Positions: where each shard's reading stands after some blocks ---------------------- */

/* A map shard id -> (last sequence number read, ended, LATEST time: when a shard that starts
 * at LATEST was first asked for an iterator, 0 when none). The creator owns it; one thread at
 * a time; any thread. */
typedef struct sh_kinesis_pos_s sh_kinesis_pos_t;
sh_kinesis_pos_t *sh_ffi_kinesis_pos_new(void);
void sh_ffi_kinesis_pos_free(sh_kinesis_pos_t *p);
/* Sets a shard's position (seq NULL: none read; a later set replaces it). 0 or -1 (memory). */
int sh_ffi_kinesis_pos_set(sh_kinesis_pos_t *p, const char *shard, const char *seq, int ended);
/* Moves the positions forward by the entries of a block (in order: the last one of a shard
 * wins). 0, or -1 for a block that is cut short or out of memory. */
int sh_ffi_kinesis_pos_add_block(sh_kinesis_pos_t *p, const sh_blob_t *b);
int sh_ffi_kinesis_pos_count(const sh_kinesis_pos_t *p);
/* Entry i's shard id and sequence number (NULL when none; borrowed, valid until the map
 * changes) and whether the shard ended. */
const char *sh_ffi_kinesis_pos_shard(const sh_kinesis_pos_t *p, int i);
const char *sh_ffi_kinesis_pos_seq(const sh_kinesis_pos_t *p, int i);
int sh_ffi_kinesis_pos_ended(const sh_kinesis_pos_t *p, int i);
/* Sets a shard's LATEST time (epoch ms; the shard is added when missing). 0 or -1 (memory). */
int sh_ffi_kinesis_pos_set_latest(sh_kinesis_pos_t *p, const char *shard, double latest_ms);
/* Entry i's LATEST time in epoch ms (0: none). */
double sh_ffi_kinesis_pos_latest(const sh_kinesis_pos_t *p, int i);

/* -- The receiver -------------------------------------------------------------------------- */

typedef struct sh_kinesis_recv_s sh_kinesis_recv_t;

/* Options of a receiver; strings are copied by open. */
typedef struct sh_kinesis_opts_s {
    const char *stream, *endpoint, *region;
    const char *access_key, *secret_key;  /* NULL: from the environment */
    int latest;                 /* shards with no position start at LATEST, else TRIM_HORIZON */
    int idle_ms;                /* a shard with nothing new is asked again after this long */
    int list_ms;                /* the shards are listed again this often */
    int timeout_ms;             /* one call's limit */
} sh_kinesis_opts_t;

/* Follows every shard of the stream and appends its records to input `input` of `sched` as
 * SH_BLOB_KINESIS blocks, on the loop of h (libcurl multi on libuv; the loop never waits on
 * a thread). `saved` holds the positions to resume after (may be NULL: none); it is copied. Errors after open (stream
 * unknown, endpoint down, throttling) are retried with backoff and queued as events
 * (sh_ffi_kinesis_recv_event). NULL with *errmsg (free with sh_ffi_free) for a bad endpoint
 * URL, no credentials or no memory. The driver owns the receiver until
 * sh_ffi_kinesis_recv_close(), which must come before sh_sched_free(sched). Loop thread, every
 * function of the receiver. */
sh_kinesis_recv_t *sh_ffi_kinesis_recv_open(sh_host_t *h, sh_sched_t *sched, int input,
                                            const sh_kinesis_opts_t *o,
                                            const sh_kinesis_pos_t *saved, char **errmsg);
/* Takes the oldest event (an error met, or "receiving again"): 1 with *msg (free with
 * sh_ffi_free), or 0. */
int sh_ffi_kinesis_recv_event(sh_kinesis_recv_t *r, char **msg);
/* Shards being read now (holding an iterator); shards read to their end and the times
 * backpressure paused reading into *ended and *pauses (either may be NULL). */
int sh_ffi_kinesis_recv_reading(const sh_kinesis_recv_t *r, int *ended, int *pauses);
/* Stops: calls in flight are dropped; received records stay in the scheduler's input. Frees
 * the receiver once its handles have closed (the loop must turn). NULL is ignored. */
void sh_ffi_kinesis_recv_close(sh_kinesis_recv_t *r);

#endif
