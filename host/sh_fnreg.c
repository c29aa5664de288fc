/* sh_fnreg.c: the process-wide registry of shipped values (serialized closures, broadcast
 * values) by id, with reference counts and a log of the ids whose cached copies must go.
 *
 * Each entry sits in two chained hash tables: by id (lookups from workers) and by a hash of its
 * bytes (deduplication on put). One mutex guards everything; the log's end position is also
 * published atomically so that a worker with nothing new to learn takes no lock. */
#include "sh_fnreg.h"
#include "sh_common.h"

#include <pthread.h>
#include <string.h>

typedef struct entry_s {
    uint64_t id;
    uint64_t hash;              /* of the bytes */
    uint64_t refs;              /* references held by callers of put */
    sh_blob_t *blob;            /* the bytes; readers may hold more references to it */
    struct entry_s *next_by_id;
    struct entry_s *next_by_hash;
} entry_t;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static entry_t **by_id, **by_hash;  /* nbuckets chains each */
static size_t nbuckets;             /* a power of two; 0 before the first put */
static size_t nlive, nbytes;
static uint64_t next_id = 1;

/* The log: record i (counting from 0 over the process's life) is at log_ids[i % LOG_SIZE];
 * records [log_end - LOG_SIZE, log_end) are still there. */
static uint64_t log_ids[SH_FNREG_LOG_SIZE];
static uint64_t log_end;            /* written under mu, read atomically without it */

/* -- Hashing and tables ------------------------------------------------------ */

static uint64_t hash_bytes(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ull;  /* FNV-1a */
    size_t i;

    for (i = 0; i < len; i++)
        h = (h ^ (unsigned char) s[i]) * 1099511628211ull;
    return h;
}

static size_t id_bucket(uint64_t id, size_t n)
{
    id *= 0x9e3779b97f4a7c15ull;  /* ids are consecutive: spread them over the buckets */
    return (size_t) (id >> 32) & (n - 1);
}

/* Doubles both tables (or makes the first ones). 0 or SH_ENOMEM, with the old tables intact. */
static int grow(void)
{
    size_t n = nbuckets ? nbuckets * 2 : 64, i;
    entry_t **ids = sh_calloc(n, sizeof(*ids));
    entry_t **hashes = sh_calloc(n, sizeof(*hashes));

    if (ids == NULL || hashes == NULL) {
        sh_free(ids);
        sh_free(hashes);
        return SH_ENOMEM;
    }
    for (i = 0; i < nbuckets; i++) {
        entry_t *e, *next;

        for (e = by_id[i]; e != NULL; e = next) {
            size_t j = id_bucket(e->id, n);

            next = e->next_by_id;
            e->next_by_id = ids[j];
            ids[j] = e;
        }
        for (e = by_hash[i]; e != NULL; e = next) {
            size_t j = (size_t) e->hash & (n - 1);

            next = e->next_by_hash;
            e->next_by_hash = hashes[j];
            hashes[j] = e;
        }
    }
    sh_free(by_id);
    sh_free(by_hash);
    by_id = ids;
    by_hash = hashes;
    nbuckets = n;
    return 0;
}

/* The link that points at entry `id` in its id chain (so that it can be unlinked), or NULL.
 * Caller holds mu. */
static entry_t **find_id(uint64_t id)
{
    entry_t **link;

    if (nbuckets == 0)
        return NULL;
    for (link = &by_id[id_bucket(id, nbuckets)]; *link != NULL; link = &(*link)->next_by_id)
        if ((*link)->id == id)
            return link;
    return NULL;
}

/* Caller holds mu. */
static void log_append(uint64_t id)
{
    log_ids[log_end & (SH_FNREG_LOG_SIZE - 1)] = id;
    __atomic_store_n(&log_end, log_end + 1, __ATOMIC_RELEASE);
}

/* -- Entries ------------------------------------------------------------------ */

uint64_t sh__fnreg_put(const char *bytes, size_t len)
{
    uint64_t h = hash_bytes(bytes, len), id = 0;
    entry_t *e;
    size_t j;

    pthread_mutex_lock(&mu);
    if (nlive >= nbuckets && grow() != 0)
        goto out;
    j = (size_t) h & (nbuckets - 1);
    for (e = by_hash[j]; e != NULL; e = e->next_by_hash) {
        if (e->hash == h && e->blob->len == len
            && (len == 0 || memcmp(e->blob->data, bytes, len) == 0)) {
            e->refs++;
            id = e->id;
            goto out;
        }
    }
    if (next_id >= SH_FNREG_MAX_ID)
        goto out;
    e = sh_malloc(sizeof(*e));
    if (e == NULL)
        goto out;
    e->blob = sh_blob_new(SH_BLOB_ENCODED, len);
    if (e->blob == NULL) {
        sh_free(e);
        goto out;
    }
    if (len > 0)
        memcpy(e->blob->data, bytes, len);
    e->blob->len = len;
    e->id = id = next_id++;
    e->hash = h;
    e->refs = 1;
    e->next_by_hash = by_hash[j];
    by_hash[j] = e;
    j = id_bucket(id, nbuckets);
    e->next_by_id = by_id[j];
    by_id[j] = e;
    nlive++;
    nbytes += len;
out:
    pthread_mutex_unlock(&mu);
    return id;
}

int sh__fnreg_unref(uint64_t id)
{
    entry_t **link, *e;
    sh_blob_t *blob = NULL;

    pthread_mutex_lock(&mu);
    link = find_id(id);
    if (link == NULL) {
        pthread_mutex_unlock(&mu);
        return SH_EINVAL;
    }
    e = *link;
    if (--e->refs == 0) {
        *link = e->next_by_id;
        for (link = &by_hash[(size_t) e->hash & (nbuckets - 1)]; *link != e;
             link = &(*link)->next_by_hash)
            ;
        *link = e->next_by_hash;
        nlive--;
        nbytes -= e->blob->len;
        log_append(id);
        blob = e->blob;
        sh_free(e);
    }
    pthread_mutex_unlock(&mu);
    sh_blob_unref(blob);  /* readers that still hold the bytes keep them until they let go */
    return 0;
}

int sh__fnreg_evict(uint64_t id)
{
    int rc = SH_EINVAL;

    pthread_mutex_lock(&mu);
    if (find_id(id) != NULL) {
        log_append(id);
        rc = 0;
    }
    pthread_mutex_unlock(&mu);
    return rc;
}

sh_blob_t *sh__fnreg_get(uint64_t id)
{
    entry_t **link;
    sh_blob_t *b = NULL;

    pthread_mutex_lock(&mu);
    link = find_id(id);
    if (link != NULL) {
        b = (*link)->blob;
        sh_blob_ref(b);
    }
    pthread_mutex_unlock(&mu);
    return b;
}

/* -- Log and statistics ------------------------------------------------------- */

int sh__fnreg_dropped_since(uint64_t *pos, uint64_t *ids, int max)
{
    int n = 0;

    /* The common case, nothing dropped since the last task, costs one atomic load. A drop that
     * happened before the task was handed over (under the pool's lock) is always seen. */
    if (__atomic_load_n(&log_end, __ATOMIC_ACQUIRE) == *pos)
        return 0;
    pthread_mutex_lock(&mu);
    if (*pos > log_end || log_end - *pos > SH_FNREG_LOG_SIZE) {
        *pos = log_end;
        pthread_mutex_unlock(&mu);
        return SH_FNREG_LOST;
    }
    while (*pos < log_end && n < max)
        ids[n++] = log_ids[(*pos)++ & (SH_FNREG_LOG_SIZE - 1)];
    pthread_mutex_unlock(&mu);
    return n;
}

void sh__fnreg_stats(size_t *live, size_t *bytes)
{
    pthread_mutex_lock(&mu);
    *live = nlive;
    *bytes = nbytes;
    pthread_mutex_unlock(&mu);
}
