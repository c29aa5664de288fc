/* sh_ffi.c: the plain-C functions that lua/streamhost/ffi.lua declares: clock, loop pump,
 * worker pool, blobs, the function registry and key hashing. */
#include "sh_blob.h"
#include "sh_common.h"
#include "sh_fnreg.h"
#include "sh_host.h"
#include "sh_pool.h"

#include <string.h>
#include <time.h>
#include <unistd.h>

#define SH_EXPORT __attribute__((visibility("default")))

/* -- Clock and loop ----------------------------------------------------- */

/* Wall-clock time in epoch seconds with sub-millisecond precision. */
SH_EXPORT double sh_ffi_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static void on_pump_timeout(uv_timer_t *t)
{
    (void) t;  /* only there to make uv_run(UV_RUN_ONCE) return */
}

/* Runs one turn of the driver loop: receivers read, timers fire, finished tasks and stop
 * requests wake it. Blocks at most `timeout_ms` (0: poll). Returns 1 while a stop request is
 * pending (until sh_ffi_clear_stop), else 0. Driver thread. */
SH_EXPORT int sh_ffi_pump(sh_host_t *h, int timeout_ms)
{
    if (timeout_ms <= 0) {
        uv_run(&h->loop, UV_RUN_NOWAIT);
    } else {
        /* The loop's clock went stale while Lua ran. And a one-shot timer that fires in
         * uv_run's own timer pass would leave its poll with no timeout at all, so the timer
         * repeats: the poll never waits longer than timeout_ms. */
        uv_update_time(&h->loop);
        uv_timer_start(&h->pump_timer, on_pump_timeout, (uint64_t) timeout_ms, (uint64_t) timeout_ms);
        uv_run(&h->loop, UV_RUN_ONCE);
        uv_timer_stop(&h->pump_timer);
    }
    return __atomic_load_n(&h->stop_requested, __ATOMIC_ACQUIRE);
}

/* Clears a stop request once the job has acted on it. */
SH_EXPORT void sh_ffi_clear_stop(sh_host_t *h)
{
    __atomic_store_n(&h->stop_requested, 0, __ATOMIC_RELEASE);
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

/* One finished task: returns 1 with *id, *ok and *result (free it with sh_ffi_free), or 0. */
SH_EXPORT int sh_ffi_pool_next_done(sh_pool_t *p, double *id, int *ok, char **result,
                                    size_t *len)
{
    uint64_t tid;
    int got = sh_pool_next_done(p, &tid, ok, result, len);

    if (got)
        *id = (double) tid;
    return got;
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
