/* sh_ops.h: the C kernel of the built-in operators (sh.ops, API.md): counting the records of
 * text lines by key, each a whole line or each whitespace-separated word, and writing the
 * counts as shuffle buckets or as one array in the one record encoding (string.buffer). */
#ifndef SH_OPS_H
#define SH_OPS_H

#include "sh_blob.h"

#include <stddef.h>
#include <stdint.h>

/* Sums by key (byte strings), in first-seen order. Owned by its creator; one thread at a time. */
typedef struct sh_ops_count_s sh_ops_count_t;

/* An empty count; NULL when out of memory. Free it with sh_ops_count_free. */
sh_ops_count_t *sh_ops_count_new(void);
/* Frees a count and every key it copied. NULL is ignored. */
void sh_ops_count_free(sh_ops_count_t *c);

/* Adds v to the key of every record of the text [data, data + len): with split = 0 each line
 * (without its '\n'; bytes after the last '\n' make a last line), with split = 1 each run of
 * bytes that are not whitespace (the bytes Lua's %s matches: space, \t, \n, \v, \f, \r), as
 * gmatch("%S+") gives them. Keys are copied. 0 or SH_ENOMEM (then some records may be added). */
int sh_ops_count_lines(sh_ops_count_t *c, const char *data, size_t len, int split, double v);

/* The number of distinct keys. */
size_t sh_ops_count_size(const sh_ops_count_t *c);

/* Writes the counts into n new ENCODED blobs, one per partition (the key's portable hash
 * modulo n, as keys.lua partitions a string key), each holding the flat array
 * {pairs, key1, sum1, key2, sum2, ...} (in first-seen order) that a shuffle's map side writes
 * for a combined key; out[i] is NULL for a partition with no key. The caller owns one
 * reference to each blob. With n = 1 the one blob holds every key. 0 or SH_ENOMEM (then no
 * blob is left). */
int sh_ops_count_buckets(const sh_ops_count_t *c, int n, sh_blob_t **out);

/* The portable hash of a string key (defined in sh_ffi.c, shared with keys.lua). Any thread. */
uint32_t sh_ffi_hash_bytes(const char *s, size_t len, uint32_t seed);

#endif
