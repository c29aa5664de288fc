/* sh_sched.h: the batch scheduler: the batch timer, the inputs' block queues and the batch
 * records (DESIGN.md "Batches are records"). Loop thread only, every function here. */
#ifndef SH_SCHED_H
#define SH_SCHED_H

#include "sh_blob.h"

#include <stdint.h>
#include <uv.h>

typedef struct sh_sched_s sh_sched_t;
typedef struct sh_batch_s sh_batch_t;

/* Called after the timer sealed one or more batch records; the owner takes them with
 * sh_sched_take(). Must not free the scheduler. */
typedef void (*sh_sched_sealed_cb)(void *ud);
/* Backpressure for one input: pause(ud, 1) when max_held bytes wait while a batch of it runs
 * (2 * max_held while none runs), or the bytes waiting plus those running reach 2 * max_held;
 * pause(ud, 0) when it may read again; pause(ud, -1) when the scheduler
 * is freed while the callback is still set (the receiver must not append any more). */
typedef void (*sh_sched_pause_cb)(void *ud, int pause);

/* A scheduler whose batches are at first_ms, first_ms + batch_ms, ... (epoch ms). Batch t
 * holds what each input received during (t - batch_ms, t]. The timer starts at once.
 * Returns NULL and sets *err on failure. The caller owns it until sh_sched_free(). */
sh_sched_t *sh_sched_new(uv_loop_t *loop, int64_t batch_ms, int64_t first_ms,
                         sh_sched_sealed_cb on_sealed, void *ud, int *err);

/* Stops the timer, releases the records not taken yet and frees the scheduler once its timer
 * is closed (the loop must turn). Records already taken stay valid until released. NULL is
 * ignored. */
void sh_sched_free(sh_sched_t *s);

/* A new input (receiver) of records of `kind` (SH_BLOB_LINES, ...), cut into blocks of about
 * block_bytes; reading pauses while max_held bytes wait (received, in no batch that has
 * started) and a batch runs (started, not released), or 2 * max_held bytes wait and run. Returns the input's index (>= 0) or SH_ENOMEM. */
int sh_sched_input_new(sh_sched_t *s, int kind, size_t block_bytes, size_t max_held);

/* Sets (or, with pause NULL, clears) the input's backpressure callback. A receiver that goes
 * away clears it; its blocks stay and are processed. */
void sh_sched_input_set_pause(sh_sched_t *s, int input, sh_sched_pause_cb pause, void *ud);

/* Appends `count` records (`len` bytes) received now to the input; the bytes are copied.
 * 0 or SH_ENOMEM (the records are dropped). */
int sh_sched_input_append(sh_sched_t *s, int input, const char *data, size_t len, uint32_t count);

/* Records received by the input so far, and bytes it holds unprocessed (for status). */
uint64_t sh_sched_input_received(const sh_sched_t *s, int input);

/* Seals everything the inputs hold into records now (graceful stop), each block into the
 * batch of its interval, and stops the timer: no record is sealed after this. Returns the
 * number of records sealed. */
int sh_sched_flush(sh_sched_t *s);

/* Stops the timer: no record is sealed after this; what the inputs hold is dropped with
 * the scheduler. */
void sh_sched_stop(sh_sched_t *s);

/* The oldest sealed record not taken yet, or NULL. The caller owns it until
 * sh_batch_release(). */
sh_batch_t *sh_sched_take(sh_sched_t *s);

/* The next batch time the timer will seal (epoch ms), or -1 once stopped. */
int64_t sh_sched_next_time(const sh_sched_t *s);

/* -- Batch records ------------------------------------------------------------------------ */

int64_t sh_batch_time(const sh_batch_t *b);
int sh_batch_ninputs(const sh_batch_t *b);
/* The blocks of input i (borrowed: valid until sh_batch_release), their number in *n. */
sh_blob_t *const *sh_batch_blocks(const sh_batch_t *b, int input, size_t *n);
/* Records and bytes of input i in this batch. */
uint64_t sh_batch_records(const sh_batch_t *b, int input);
uint64_t sh_batch_bytes(const sh_batch_t *b, int input);
/* The batch starts running: its bytes count as running until it is released, so receivers
 * read the next batch's data while this one is processed, within the 2 * max_held budget. */
void sh_batch_start(sh_batch_t *b);
/* The record takes over every reference in `made` (blobs the batch's tasks produced); they
 * are dropped when the record is released. 0 or SH_ENOMEM (then `made` is left as it was). */
int sh_batch_hold(sh_batch_t *b, sh_bloblist_t *made);
/* Drops the record: its blocks, what it holds, and its share of the inputs' backpressure
 * (a paused receiver may resume). NULL is ignored. */
void sh_batch_release(sh_batch_t *b);

#endif
