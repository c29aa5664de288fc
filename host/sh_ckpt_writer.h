/* sh_ckpt_writer.h: the checkpoint writer: a thread of its own that writes checkpoint files
 * (sh_ckpt_file.h) in the order they were submitted, and prunes old ones, so the loop never
 * waits for a disk. Completions are collected by the loop thread after a wake callback.
 *
 * A job names one file (or none, for pruning only); its payload is a sequence of pieces,
 * bytes copied when added or blobs referenced (written from the blob as it is, released after
 * the write). After the write, the job may remove older files of a prefix. */
#ifndef SH_CKPT_WRITER_H
#define SH_CKPT_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include "sh_blob.h"

typedef struct sh_ckpt_writer_s sh_ckpt_writer_t;
typedef struct sh_ckpt_job_s sh_ckpt_job_t;

/* Called on the writer thread after each finished job, so the owner's loop wakes up. */
typedef void (*sh_ckpt_wake_cb)(void *ud);

/* A new writer and its thread; NULL with *errmsg set (caller frees with sh_free) when the
 * thread cannot start. `wake(ud)` is called from the writer thread after every job. Owner's
 * thread (the loop). */
sh_ckpt_writer_t *sh_ckpt_writer_new(sh_ckpt_wake_cb wake, void *ud, char **errmsg);

/* Writes every job still queued, joins the thread, and frees the writer with the results
 * nobody collected. NULL is fine. Owner's thread; no wake callback runs after it returns. */
void sh_ckpt_writer_free(sh_ckpt_writer_t *w);

/* A new job writing the checkpoint file `dir`/`name` (name NULL: write nothing, only prune);
 * NULL when out of memory. The strings are copied. Owner's thread, until submitted. */
sh_ckpt_job_t *sh_ckpt_job_new(const char *dir, const char *name);

/* Appends a copy of `len` bytes to the job's payload. 0 or SH_ENOMEM. */
int sh_ckpt_job_add_bytes(sh_ckpt_job_t *j, const void *bytes, size_t len);

/* Appends blob `b`'s bytes to the payload, taking a reference of its own (released once the
 * job is done or freed). 0 or SH_ENOMEM (then no reference is taken). */
int sh_ckpt_job_add_blob(sh_ckpt_job_t *j, sh_blob_t *b);

/* After the write succeeds (or, for a job without a file, at once): keeps the newest `keep`
 * files of `dir` named `prefix`<number> (sh_ckpt_keep_newest). 0 or SH_ENOMEM. */
int sh_ckpt_job_keep_newest(sh_ckpt_job_t *j, const char *prefix, size_t keep);

/* After the write succeeds (or at once): removes the files of `dir` named `prefix`<number> whose
 * number is below `below`. 0 or SH_ENOMEM. One prune of each kind per job; a later call
 * replaces the earlier. */
int sh_ckpt_job_remove_below(sh_ckpt_job_t *j, const char *prefix, uint64_t below);

/* Frees a job that was never submitted, with the blob references it holds. NULL is fine. */
void sh_ckpt_job_free(sh_ckpt_job_t *j);

/* Queues the job (the writer owns it from now on) and returns its id, 1, 2, ... in submission
 * order. Owner's thread. */
uint64_t sh_ckpt_writer_submit(sh_ckpt_writer_t *w, sh_ckpt_job_t *j);

/* Takes the oldest finished job's result: returns 1 with *id, *rc (0 or a negative code from
 * sh_ckpt_writev or the prune) and *errmsg (a new string naming the path and the cause when
 * rc != 0, else NULL; caller frees with sh_free), or 0 when none is finished. Owner's thread. */
int sh_ckpt_writer_next_done(sh_ckpt_writer_t *w, uint64_t *id, int *rc, char **errmsg);

/* Blocks until every job submitted so far has finished (their results stay to be taken).
 * Owner's thread. */
void sh_ckpt_writer_drain(sh_ckpt_writer_t *w);

#endif
