/* sh_ops.c: the C kernel of the built-in operators: sums by key over text lines (whole lines
 * or whitespace-separated words) in an insertion-ordered hash table, written out as arrays in
 * LuaJIT's string.buffer encoding, which worker states decode as if Lua had encoded them. */
#include "sh_ops.h"
#include "sh_common.h"

#include <string.h>

typedef struct {
    uint64_t h;      /* lookup hash */
    size_t off;      /* key bytes in the arena */
    uint32_t len;
    double sum;
} entry_t;

struct sh_ops_count_s {
    entry_t *e;         /* entries in first-seen order */
    size_t n, cap;
    uint32_t *slot;     /* open addressing: entry index + 1, 0 = empty */
    size_t mask;        /* slots - 1 (a power of two) */
    char *arena;
    size_t alen, acap;
};

/* The bytes Lua's %s matches (lj_char_isspace: ASCII only). */
static const unsigned char space_of[256] = {
    [' '] = 1, ['\t'] = 1, ['\n'] = 1, ['\v'] = 1, ['\f'] = 1, ['\r'] = 1,
};

/* A lookup hash (not the portable one, which only partitions): 8 bytes a step. */
static inline uint64_t lookup_hash(const char *s, size_t len)
{
    uint64_t h = 0x9e3779b97f4a7c15ull ^ len;
    size_t i = 0;

    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    if (i < len) {
        uint64_t w = 0;
        memcpy(&w, s + i, len - i);
        h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
    }
    h ^= h >> 29;
    return h;
}

sh_ops_count_t *sh_ops_count_new(void)
{
    sh_ops_count_t *c = sh_calloc(1, sizeof(*c));

    if (c == NULL)
        return NULL;
    c->mask = 1023;
    c->slot = sh_calloc(c->mask + 1, sizeof(*c->slot));
    if (c->slot == NULL) {
        sh_free(c);
        return NULL;
    }
    return c;
}

void sh_ops_count_free(sh_ops_count_t *c)
{
    if (c == NULL)
        return;
    sh_free(c->e);
    sh_free(c->slot);
    sh_free(c->arena);
    sh_free(c);
}

size_t sh_ops_count_size(const sh_ops_count_t *c)
{
    return c->n;
}

/* Doubles the slot array (load stays at most 1/2). 0 or SH_ENOMEM. */
static int grow_slots(sh_ops_count_t *c)
{
    size_t nmask = c->mask * 2 + 1, i;
    uint32_t *ns = sh_calloc(nmask + 1, sizeof(*ns));

    if (ns == NULL)
        return SH_ENOMEM;
    for (i = 0; i < c->n; i++) {
        size_t j = (size_t) c->e[i].h & nmask;

        while (ns[j] != 0)
            j = (j + 1) & nmask;
        ns[j] = (uint32_t) (i + 1);
    }
    sh_free(c->slot);
    c->slot = ns;
    c->mask = nmask;
    return 0;
}

/* Adds v to key [s, s + len). 0 or SH_ENOMEM (SH_EINVAL for a key the encoding cannot hold). */
static inline int add_key(sh_ops_count_t *c, const char *s, size_t len, double v)
{
    uint64_t h = lookup_hash(s, len);
    size_t j = (size_t) h & c->mask;
    uint32_t at;
    entry_t *e;

    while ((at = c->slot[j]) != 0) {
        e = &c->e[at - 1];
        if (e->h == h && e->len == len && memcmp(c->arena + e->off, s, len) == 0) {
            e->sum += v;
            return 0;
        }
        j = (j + 1) & c->mask;
    }
    if (len > UINT32_MAX - 0x40 || c->n >= UINT32_MAX / 2 - 1)
        return SH_EINVAL;
    if (c->n == c->cap) {
        size_t ncap = c->cap ? c->cap * 2 : 1024;
        entry_t *ne = sh_realloc(c->e, ncap * sizeof(*ne));

        if (ne == NULL)
            return SH_ENOMEM;
        c->e = ne;
        c->cap = ncap;
    }
    if (c->alen + len > c->acap) {
        size_t ncap = c->acap ? c->acap : 16384;
        char *na;

        while (ncap < c->alen + len)
            ncap *= 2;
        na = sh_realloc(c->arena, ncap);
        if (na == NULL)
            return SH_ENOMEM;
        c->arena = na;
        c->acap = ncap;
    }
    memcpy(c->arena + c->alen, s, len);
    e = &c->e[c->n];
    e->h = h;
    e->off = c->alen;
    e->len = (uint32_t) len;
    e->sum = v;
    c->alen += len;
    c->slot[j] = (uint32_t) ++c->n;
    if (c->n * 2 > c->mask + 1)
        return grow_slots(c);
    return 0;
}

int sh_ops_count_lines(sh_ops_count_t *c, const char *data, size_t len, int split, double v)
{
    const char *p = data, *end = data + len;
    int rc;

    if (!split) {
        while (p < end) {
            const char *nl = memchr(p, '\n', (size_t) (end - p));
            const char *stop = nl ? nl : end;

            if ((rc = add_key(c, p, (size_t) (stop - p), v)) != 0)
                return rc;
            p = stop + 1;
        }
        return 0;
    }
    for (;;) {
        const char *w;

        while (p < end && space_of[(unsigned char) *p])
            p++;
        if (p == end)
            return 0;
        w = p;
        while (p < end && !space_of[(unsigned char) *p])
            p++;
        if ((rc = add_key(c, w, (size_t) (p - w), v)) != 0)
            return rc;
    }
}

/* -- string.buffer encoding (lj_serialize.c's format) -------------------------------------- */

enum { SER_NUM = 0x07, SER_ARRAY1 = 0x0c, SER_STR = 0x20 };

/* The bytes of a variable-length unsigned (lj_serialize's wu124). */
static size_t wu124_len(uint32_t v)
{
    return v < 0xe0 ? 1 : v < 0x1fe0 ? 2 : 5;
}

static char *put_wu124(char *w, uint32_t v)
{
    if (v < 0xe0) {
        *w++ = (char) v;
    } else if (v < 0x1fe0) {
        v -= 0xe0;
        *w++ = (char) (0xe0 | (v >> 8));
        *w++ = (char) v;
    } else {
        *w++ = (char) 0xff;
        *w++ = (char) v;
        *w++ = (char) (v >> 8);
        *w++ = (char) (v >> 16);
        *w++ = (char) (v >> 24);
    }
    return w;
}

static char *put_num(char *w, double x)
{
    uint64_t u;
    int i;

    memcpy(&u, &x, sizeof u);
    *w++ = SER_NUM;
    for (i = 0; i < 8; i++)  /* little-endian, whatever the host's order */
        *w++ = (char) (u >> (8 * i));
    return w;
}

int sh_ops_count_buckets(const sh_ops_count_t *c, int n, sh_blob_t **out)
{
    uint32_t *part = NULL;
    size_t *pairs = NULL, *bytes = NULL, i;
    char **w = NULL;
    int p, rc = SH_ENOMEM;

    if (n < 1)
        return SH_EINVAL;
    for (p = 0; p < n; p++)
        out[p] = NULL;
    part = sh_malloc(c->n * sizeof(*part));
    pairs = sh_calloc((size_t) n, sizeof(*pairs));
    bytes = sh_calloc((size_t) n, sizeof(*bytes));
    w = sh_calloc((size_t) n, sizeof(*w));
    if (part == NULL || pairs == NULL || bytes == NULL || w == NULL)
        goto done;
    for (i = 0; i < c->n; i++) {
        const entry_t *e = &c->e[i];

        part[i] = n == 1 ? 0 : sh_ffi_hash_bytes(c->arena + e->off, e->len, 1) % (uint32_t) n;
        pairs[part[i]]++;
        bytes[part[i]] += wu124_len(SER_STR + e->len) + e->len + 9;
    }
    for (p = 0; p < n; p++) {
        uint32_t count;

        if (pairs[p] == 0)
            continue;
        count = (uint32_t) (pairs[p] * 2 + 1);
        bytes[p] += 1 + wu124_len(count + 1) + 9;
        out[p] = sh_blob_new(SH_BLOB_ENCODED, bytes[p]);
        if (out[p] == NULL)
            goto done;
        out[p]->count = count;
        out[p]->len = bytes[p];
        w[p] = out[p]->data;
        *w[p]++ = SER_ARRAY1;                     /* an array from index 1 */
        w[p] = put_wu124(w[p], count + 1);        /* its size, slot 0 included */
        w[p] = put_num(w[p], (double) pairs[p]);  /* [1] = the number of pairs */
    }
    for (i = 0; i < c->n; i++) {
        const entry_t *e = &c->e[i];
        char *q = put_wu124(w[part[i]], SER_STR + e->len);

        memcpy(q, c->arena + e->off, e->len);
        w[part[i]] = put_num(q + e->len, e->sum);
    }
    rc = 0;
done:
    if (rc != 0)
        for (p = 0; p < n; p++) {
            sh_blob_unref(out[p]);
            out[p] = NULL;
        }
    sh_free(part);
    sh_free(pairs);
    sh_free(bytes);
    sh_free(w);
    return rc;
}
