/* sh_ffi.c: the plain-C functions that lua/streamhost/ffi.lua declares: clock, the driver's
 * timer and stop request, worker pool, blobs, the function registry, key hashing, and the batch
 * scheduler's records. */
#include "sh_blob.h"
#include "sh_common.h"
#include "sh_fnreg.h"
#include "sh_host.h"
#include "sh_ops.h"
#include "sh_pool.h"
#include "sh_sched.h"

#include <time.h>
#include <string.h>
#include <unistd.h>

#define SH_EXPORT __attribute__((visibility("default")))

/* -- Clock and loop ----------------------------------------------------- */

/* Wall-clock time in epoch seconds with sub-millisecond precision. Any thread. */
SH_EXPORT double sh_ffi_now(void)
{
    return sh__now();
}

/* Takes the host's stop request: 1 when sh_host_stop() was called since the last take. */
SH_EXPORT int sh_ffi_take_stop(sh_host_t *h)
{
    return __atomic_exchange_n(&h->stop_requested, 0, __ATOMIC_ACQ_REL);
}

/* The driver's timer: the loop calls the driver's dispatch in `ms` milliseconds (0: on the
 * next turn); a negative ms disarms it. Loop thread. */
SH_EXPORT void sh_ffi_timer_arm(sh_host_t *h, double ms)
{
    sh__host_arm_timer(h, ms);
}

/* The host's status model, for lua/streamhost/status.lua, which updates it through the
 * sh_status_* setters (any thread; see sh_status.h). Owned by the host. */
SH_EXPORT sh_status_t *sh_ffi_status(sh_host_t *h)
{
    return h->status;
}

/* Hot reload's outcome and the script now running (see sh_host.h). Loop thread. */
SH_EXPORT void sh_ffi_reload_result(sh_host_t *h, int failed, const char *msg)
{
    sh__host_reload_result(h, failed, msg);
}

SH_EXPORT void sh_ffi_script_changed(sh_host_t *h, const char *script)
{
    sh__host_script_changed(h, script);
}

SH_EXPORT const char *sh_ffi_master(sh_host_t *h)
{
    return h->master;
}

SH_EXPORT const char *sh_ffi_lua_dir(sh_host_t *h)
{
    return h->lua_dir;
}

SH_EXPORT int sh_ffi_cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int) n : 1;
}

SH_EXPORT void sh_ffi_free(void *p)
{
    sh_free(p);
}

/* -- Worker pool -------------------------------------------------------- */

static void wake_driver(void *ud)
{
    uv_async_send(&((sh_host_t *) ud)->wake);
}

/* A pool of n workers; NULL with *errmsg set (free with sh_ffi_free) on failure. */
SH_EXPORT sh_pool_t *sh_ffi_pool_new(sh_host_t *h, int n, char **errmsg)
{
    return sh_pool_new(n, h->lua_dir, wake_driver, h, errmsg);
}

SH_EXPORT void sh_ffi_pool_free(sh_pool_t *p)
{
    sh_pool_free(p);
}

/* Queues a copy of `payload`; returns the task id, 0 when out of memory. */
SH_EXPORT double sh_ffi_pool_submit(sh_pool_t *p, int affinity, const char *payload, size_t len)
{
    char *copy = sh__strndup(payload, len);

    if (copy == NULL)
        return 0;
    return (double) sh_pool_submit(p, affinity, copy, len);
}

/* One finished task: returns 1 with *id, *ok, *result (free it with sh_ffi_free) and *made
 * (the blobs the task created: a list the caller owns, NULL when empty; give it to a batch
 * with sh_ffi_batch_hold or drop it with sh_ffi_bloblist_free), or 0. Loop thread. */
SH_EXPORT int sh_ffi_pool_next_done(sh_pool_t *p, double *id, int *ok, char **result,
                                    size_t *len, sh_bloblist_t **made)
{
    uint64_t tid;
    sh_bloblist_t list;
    int got = sh_pool_next_done(p, &tid, ok, result, len, &list);

    *made = NULL;
    if (!got)
        return 0;
    *id = (double) tid;
    if (list.n > 0) {
        *made = sh_malloc(sizeof(**made));
        if (*made == NULL) {  /* the result names blobs it cannot hand over: a failed task */
            sh_bloblist_clear(&list);
            sh_free(*result);
            *result = sh__strdup("out of memory handing over a task's blobs");
            *len = *result ? strlen(*result) : 0;
            *ok = 0;
        } else {
            **made = list;
        }
    } else {
        sh_bloblist_clear(&list);
    }
    return 1;
}

/* Waits (blocking the thread, not turning the loop) until a task is finished or timeout_ms
 * passed. For driver code that cannot yield. */
SH_EXPORT int sh_ffi_pool_wait(sh_pool_t *p, int timeout_ms)
{
    return sh_pool_wait(p, timeout_ms);
}

/* Drops every reference of a list from sh_ffi_pool_next_done and frees it. NULL is ignored. */
SH_EXPORT void sh_ffi_bloblist_free(sh_bloblist_t *l)
{
    if (l == NULL)
        return;
    sh_bloblist_clear(l);
    sh_free(l);
}

/* -- Blobs --------------------------------------------------------------- */

/* A new blob holding a copy of `data`; NULL when out of memory. The caller holds one reference. */
SH_EXPORT sh_blob_t *sh_ffi_blob_new(int kind, const char *data, size_t len, uint32_t reclen,
                                     uint32_t count)
{
    sh_blob_t *b = sh_blob_new(kind, len);

    if (b == NULL)
        return NULL;
    memcpy(b->data, data, len);
    b->len = len;
    b->reclen = reclen;
    b->count = count;
    sh__pool_task_made(b);  /* in a worker's task, the task hands a reference to the driver */
    return b;
}

SH_EXPORT void sh_ffi_blob_ref(sh_blob_t *b)
{
    sh_blob_ref(b);
}

SH_EXPORT void sh_ffi_blob_unref(sh_blob_t *b)
{
    sh_blob_unref(b);
}

/* -- Shipped values ------------------------------------------------------- */

/* The function registry (sh_fnreg.h) as lua/streamhost/ship.lua uses it. Ids travel as
 * uint64_t; every one is below 2^53, so tonumber() keeps it exact. */

/* Stores a serialized closure or broadcast value (the registry copies `bytes`) and returns
 * its id with one reference owned by the caller (ship.lua attaches sh_ffi_fn_unref to the
 * id's cdata with ffi.gc); equal bytes share an entry. 0 when out of memory. Any thread. */
SH_EXPORT uint64_t sh_ffi_fn_put(const char *bytes, size_t len)
{
    return sh__fnreg_put(bytes, len);
}

/* Drops the caller's reference to entry `id`; the last one frees it and logs the id.
 * 0 or SH_EINVAL (unknown id). Any thread, including a Lua finalizer. */
SH_EXPORT int sh_ffi_fn_unref(uint64_t id)
{
    return sh__fnreg_unref(id);
}

/* Makes every worker drop its cached copy of entry `id` (logged as dropped) while the entry
 * stays. 0 or SH_EINVAL. Any thread. */
SH_EXPORT int sh_ffi_fn_evict(uint64_t id)
{
    return sh__fnreg_evict(id);
}

/* The bytes of entry `id` in a blob holding one reference for the caller (release it with
 * sh_ffi_blob_unref, also after the entry is gone); NULL for an unknown id. Any thread. */
SH_EXPORT sh_blob_t *sh_ffi_fn_get(uint64_t id)
{
    return sh__fnreg_get(id);
}

/* Up to `max` ids dropped (or evicted) since the caller's position *pos, which it owns and
 * which advances past them; returns how many, or SH_FNREG_LOST (-1) when the caller fell
 * behind the log: drop every cached copy. No lock when nothing is new. Any thread. */
SH_EXPORT int sh_ffi_fn_dropped_since(uint64_t *pos, uint64_t *ids, int max)
{
    return sh__fnreg_dropped_since(pos, ids, max);
}

/* The number of live entries and the bytes they hold. Any thread. */
SH_EXPORT void sh_ffi_fn_stats(size_t *live, size_t *bytes)
{
    sh__fnreg_stats(live, bytes);
}

/* -- Key hashing ----------------------------------------------------------- */

/* The same bytes hash the same in every state and thread: partitioning depends on it. */
static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

SH_EXPORT uint32_t sh_ffi_hash_bytes(const char *s, size_t len, uint32_t seed)
{
    uint64_t h = mix64(seed + 0x9e3779b97f4a7c15ull * (len + 1));
    size_t i = 0;

    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        h = mix64(h ^ w);
    }
    if (i < len) {
        uint64_t w = 0;
        memcpy(&w, s + i, len - i);
        h = mix64(h ^ w ^ ((uint64_t) (len - i) << 56));
    }
    return (uint32_t) (h ^ (h >> 32));
}

SH_EXPORT uint32_t sh_ffi_hash_number(double x, uint32_t seed)
{
    uint64_t bits;

    if (x == 0)
        x = 0;  /* -0 and 0 are the same key */
    memcpy(&bits, &x, sizeof bits);
    bits = mix64(bits ^ mix64(seed));
    return (uint32_t) (bits ^ (bits >> 32));
}

/* -- Built-in operators' kernel (sh_ops.h) --------------------------------------------------- */

/* A new count owned by the caller (a worker's task: free it with sh_ffi_count_free when the
 * task ends, or let its ffi.gc finalizer do it); NULL when out of memory. */
SH_EXPORT sh_ops_count_t *sh_ffi_count_new(void)
{
    return sh_ops_count_new();
}

SH_EXPORT void sh_ffi_count_free(sh_ops_count_t *c)
{
    sh_ops_count_free(c);
}

/* Counts the records of bytes [from, to) of a LINES blob the caller holds (to < 0: to its end),
 * each line (split = 0) or each word (split = 1), adding v to each key. 0, SH_EINVAL (not a
 * LINES blob, a key too long to encode) or SH_ENOMEM. */
SH_EXPORT int sh_ffi_count_blob(sh_ops_count_t *c, const sh_blob_t *b, double from, double to,
                                int split, double v)
{
    size_t lo = from > 0 ? (size_t) from : 0, hi = to < 0 ? b->len : (size_t) to;

    if (b->kind != SH_BLOB_LINES)
        return SH_EINVAL;
    if (hi > b->len)
        hi = b->len;
    if (lo >= hi)
        return 0;
    return sh_ops_count_lines(c, b->data + lo, hi - lo, split, v);
}

SH_EXPORT double sh_ffi_count_size(const sh_ops_count_t *c)
{
    return (double) sh_ops_count_size(c);
}

/* The counts as n ENCODED blobs by partition (out[i] NULL when empty), each with one
 * reference for the caller; with hand_over, in a worker's task, the task also hands each to
 * the driver, as sh_ffi_blob_new does. 0 or SH_ENOMEM (no blob left). */
SH_EXPORT int sh_ffi_count_buckets(const sh_ops_count_t *c, int n, sh_blob_t **out, int hand_over)
{
    int rc = sh_ops_count_buckets(c, n, out), i;

    if (rc == 0 && hand_over)
        for (i = 0; i < n; i++)
            if (out[i] != NULL)
                sh__pool_task_made(out[i]);
    return rc;
}

/* -- Batch scheduler and records (sh_sched.h) -------------------------------------------- */

/* A scheduler for batches of batch_ms from first_ms (epoch ms) on the host's loop; when it
 * seals records the host runs the driver's dispatch. NULL when out of memory. The caller frees
 * it with sh_ffi_sched_free after closing the receivers that feed it. Loop thread, as every
 * function below. */
SH_EXPORT sh_sched_t *sh_ffi_sched_new(sh_host_t *h, double batch_ms, double first_ms)
{
    int err = 0;

    return sh_sched_new(h->loop, (int64_t) batch_ms, (int64_t) first_ms, sh__host_dispatch_cb, h, &err);
}

SH_EXPORT void sh_ffi_sched_free(sh_sched_t *s)
{
    sh_sched_free(s);
}

SH_EXPORT int sh_ffi_sched_input_new(sh_sched_t *s, int kind, double block_bytes, double max_held)
{
    return sh_sched_input_new(s, kind, (size_t) block_bytes, (size_t) max_held);
}

SH_EXPORT double sh_ffi_sched_input_received(sh_sched_t *s, int input)
{
    return (double) sh_sched_input_received(s, input);
}

SH_EXPORT int sh_ffi_sched_flush(sh_sched_t *s)
{
    return sh_sched_flush(s);
}

SH_EXPORT void sh_ffi_sched_stop(sh_sched_t *s)
{
    sh_sched_stop(s);
}

SH_EXPORT sh_batch_t *sh_ffi_sched_take(sh_sched_t *s)
{
    return sh_sched_take(s);
}

SH_EXPORT double sh_ffi_sched_next_time(sh_sched_t *s)
{
    return (double) sh_sched_next_time(s);
}

SH_EXPORT double sh_ffi_batch_time(sh_batch_t *b)
{
    return (double) sh_batch_time(b);
}

/* Up to `max` blocks of input i from index `from` into out (borrowed: take a reference to keep
 * one past sh_ffi_batch_release); returns how many. */
SH_EXPORT int sh_ffi_batch_blocks(sh_batch_t *b, int input, int from, sh_blob_t **out, int max)
{
    size_t n, i;
    sh_blob_t *const *blocks = sh_batch_blocks(b, input, &n);
    int got = 0;

    for (i = (size_t) from; i < n && got < max; i++)
        out[got++] = blocks[i];
    return got;
}

SH_EXPORT double sh_ffi_batch_records(sh_batch_t *b, int input)
{
    return (double) sh_batch_records(b, input);
}

SH_EXPORT double sh_ffi_batch_bytes(sh_batch_t *b, int input)
{
    return (double) sh_batch_bytes(b, input);
}

/* The record takes over the list (then freed) or, out of memory, the list's references are
 * dropped now. */
SH_EXPORT void sh_ffi_batch_hold(sh_batch_t *b, sh_bloblist_t *l)
{
    if (l == NULL)
        return;
    if (sh_batch_hold(b, l) != 0)
        sh_bloblist_clear(l);
    sh_free(l->blobs);
    sh_free(l);
}

SH_EXPORT void sh_ffi_batch_start(sh_batch_t *b)
{
    sh_batch_start(b);
}

SH_EXPORT void sh_ffi_batch_release(sh_batch_t *b)
{
    sh_batch_release(b);
}

/* Blocks the calling thread for `ms` milliseconds (driver code that cannot yield). */
SH_EXPORT void sh_ffi_sleep_ms(double ms)
{
    struct timespec ts;

    if (ms <= 0)
        return;
    ts.tv_sec = (time_t) (ms / 1000);
    ts.tv_nsec = (long) ((ms - (double) ts.tv_sec * 1000) * 1e6);
    nanosleep(&ts, NULL);
}
