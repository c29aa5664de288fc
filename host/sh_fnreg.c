/* sh_fnreg.c: the process-wide registry of shipped functions (serialized closures by id).
 * Entries live as long as the process: workers may load a function at any later batch, and
 * deduplication keeps the registry as small as the set of distinct closures. */
#include "sh_fnreg.h"
#include "sh_common.h"

#include <pthread.h>
#include <string.h>

typedef struct {
    char *bytes;
    size_t len;
    uint64_t hash;
} entry_t;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static entry_t *entries;       /* id i lives at entries[i - 1] */
static uint32_t count, cap;
static uint32_t *slots;        /* open addressing over ids, 0 = empty */
static uint32_t nslots;

static uint64_t hash_bytes(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    size_t i;

    for (i = 0; i < len; i++)
        h = (h ^ (unsigned char) s[i]) * 1099511628211ull;
    return h;
}

static int grow_slots(void)
{
    uint32_t n = nslots ? nslots * 2 : 256, i;
    uint32_t *s = sh_calloc(n, sizeof(*s));

    if (s == NULL)
        return SH_ENOMEM;
    for (i = 0; i < count; i++) {
        uint32_t j = (uint32_t) entries[i].hash & (n - 1);
        while (s[j])
            j = (j + 1) & (n - 1);
        s[j] = i + 1;
    }
    sh_free(slots);
    slots = s;
    nslots = n;
    return 0;
}

uint32_t sh__fnreg_put(const char *bytes, size_t len)
{
    uint64_t h = hash_bytes(bytes, len);
    uint32_t id = 0, j;

    pthread_mutex_lock(&mu);
    if ((count + 1) * 2 > nslots && grow_slots())
        goto out;
    for (j = (uint32_t) h & (nslots - 1); slots[j]; j = (j + 1) & (nslots - 1)) {
        entry_t *e = &entries[slots[j] - 1];
        if (e->hash == h && e->len == len && memcmp(e->bytes, bytes, len) == 0) {
            id = slots[j];
            goto out;
        }
    }
    if (count == cap) {
        uint32_t ncap = cap ? cap * 2 : 64;
        entry_t *ne = sh_realloc(entries, ncap * sizeof(*ne));
        if (ne == NULL)
            goto out;
        entries = ne;
        cap = ncap;
    }
    entries[count].bytes = sh__strndup(bytes, len);
    if (entries[count].bytes == NULL)
        goto out;
    entries[count].len = len;
    entries[count].hash = h;
    id = slots[j] = ++count;
out:
    pthread_mutex_unlock(&mu);
    return id;
}

int sh__fnreg_get(uint32_t id, const char **bytes, size_t *len)
{
    int rc = -1;

    pthread_mutex_lock(&mu);
    if (id >= 1 && id <= count) {
        *bytes = entries[id - 1].bytes;
        *len = entries[id - 1].len;
        rc = 0;
    }
    pthread_mutex_unlock(&mu);
    return rc;
}
