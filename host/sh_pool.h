/* sh_pool.h: worker threads, each with its own LuaJIT state, and the task queues between them
 * and the driver. */
#ifndef SH_POOL_H
#define SH_POOL_H

#include "sh_blob.h"

#include <stddef.h>
#include <stdint.h>

typedef struct sh_pool_s sh_pool_t;

/* Called on a worker thread after each finished task, so the driver's loop wakes up. */
typedef void (*sh_pool_wake_cb)(void *ud);

/* Starts `nworkers` threads. Each creates a LuaJIT state with the modules under `lua_dir` and
 * loads the worker runtime (`streamhost.worker`); the call returns once every state is ready.
 * Returns NULL and stores a heap message in *errmsg (caller frees) when a state cannot start. */
sh_pool_t *sh_pool_new(int nworkers, const char *lua_dir, sh_pool_wake_cb wake, void *ud,
                       char **errmsg);

/* Queues a task. `payload` (an encoded task description) becomes the pool's. `affinity` is
 * a worker index, or -1 for whichever worker is free first. Returns the task id (> 0), or 0 when
 * out of memory (the payload is freed). Driver thread. */
uint64_t sh_pool_submit(sh_pool_t *p, int affinity, char *payload, size_t len);

/* Takes one finished task, if any: returns 1 and sets *id, *ok (1 on success), *result (the
 * runtime's result, or the error with traceback when !ok; the caller frees it with sh_free)
 * and *made (the blobs the task created, one reference each, now the caller's; empty for a
 * failed task, whose blobs were released), or returns 0 when none is finished. Driver thread. */
int sh_pool_next_done(sh_pool_t *p, uint64_t *id, int *ok, char **result, size_t *len,
                      sh_bloblist_t *made);

/* Blocks the calling thread until a finished task is waiting or timeout_ms passed, without
 * turning any loop; 1 when one is waiting. For the driver when it cannot yield. */
int sh_pool_wait(sh_pool_t *p, int timeout_ms);

/* Worker thread: the running task keeps a reference to `b`, a blob it created, and hands it
 * to the driver with its result (or drops it when the task fails). A no-op on other threads. */
void sh__pool_task_made(sh_blob_t *b);

int sh_pool_size(const sh_pool_t *p);

/* Lets running tasks finish, drops queued ones, joins the threads and frees everything. */
void sh_pool_free(sh_pool_t *p);

#endif
