/* sh_fnreg.h: the process-wide registry of shipped values (serialized closures, broadcast
 * values) by id, with reference counts and a log of the ids whose cached copies must go. */
#ifndef SH_FNREG_H
#define SH_FNREG_H

#include "sh_blob.h"

#include <stddef.h>
#include <stdint.h>

/* Ids are handed out in increasing order from 1 and never reused; they stay below 2^53 so
 * that a Lua number holds every one of them exactly. 0 is never an id. */
#define SH_FNREG_MAX_ID (UINT64_C(1) << 53)

/* How many ids the log of dropped entries remembers. A reader that fell further behind gets
 * SH_FNREG_LOST and must drop every cached copy it holds. */
#define SH_FNREG_LOG_SIZE 4096

/* sh__fnreg_dropped_since: the reader's position is older than the log remembers. */
#define SH_FNREG_LOST (-1)

/* Stores `len` bytes and returns their id with one reference held by the caller, who drops
 * it with sh__fnreg_unref(). Bytes equal to those of a live entry are not stored twice: the
 * live entry's id comes back and its count goes up by one. The registry keeps its own copy;
 * `bytes` stays the caller's. Returns 0 when out of memory (or out of ids). Any thread. */
uint64_t sh__fnreg_put(const char *bytes, size_t len);

/* Drops one reference to entry `id`. The last one removes the entry: its id is logged (see
 * sh__fnreg_dropped_since), is never handed out again, and the bytes are freed once no
 * reader holds them (sh__fnreg_get). Returns 0, or SH_EINVAL when no entry has that id.
 * Any thread. */
int sh__fnreg_unref(uint64_t id);

/* Logs `id` as if it were dropped, but keeps the entry: readers drop their cached copies and
 * read the bytes again on next use (a broadcast's unpersist). 0 or SH_EINVAL. Any thread. */
int sh__fnreg_evict(uint64_t id);

/* The bytes of entry `id` as a blob (kind SH_BLOB_ENCODED) with one reference for the caller,
 * who releases it with sh_blob_unref(); the blob stays valid after the entry is dropped.
 * NULL when no entry has that id. Any thread. */
sh_blob_t *sh__fnreg_get(uint64_t id);

/* The ids logged since position *pos (a count of log records; start at 0): copies up to `max`
 * of them into ids[], advances *pos past them and returns how many (0: up to date; call again
 * while it returns max). Returns SH_FNREG_LOST, with *pos moved to the newest position, when
 * records after *pos were already overwritten: the caller must drop every cached copy. A call
 * with nothing new takes no lock. Any thread; each reader owns its position. */
int sh__fnreg_dropped_since(uint64_t *pos, uint64_t *ids, int max);

/* The number of live entries and the bytes they hold (for tests and benchmarks). Any thread. */
void sh__fnreg_stats(size_t *live, size_t *bytes);

#endif
