/* sh_blob.c: reference-counted byte buffers that carry records between threads. */
#include "sh_blob.h"
#include "sh_common.h"

#include <string.h>
#include <sys/mman.h>

/* Blobs of this capacity or more (received blocks, shuffle buckets) are mappings of their
 * own, returned to the system when freed: from malloc, freed blocks of many megabytes stay in
 * the heaps of whichever threads freed them (glibc raises its mmap threshold to the size of
 * the largest chunk freed), and the process's resident size grows by several blocks. */
#define BIG_CAP ((size_t) 256 << 10)

static sh_blob_t *blob_alloc(size_t cap)
{
    void *p;

    if (cap < BIG_CAP)
        return sh_malloc(sizeof(sh_blob_t) + cap);
    p = mmap(NULL, sizeof(sh_blob_t) + cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static void blob_free(sh_blob_t *b)
{
    if (b->cap < BIG_CAP)
        sh_free(b);
    else
        munmap(b, sizeof(*b) + b->cap);
}

/* Moves b (cap bytes) to room for ncap bytes; NULL (b untouched) when out of memory. */
static sh_blob_t *blob_grow(sh_blob_t *b, size_t ncap)
{
    sh_blob_t *nb;

    if (ncap < BIG_CAP)
        return sh_realloc(b, sizeof(*b) + ncap);
    if (b->cap >= BIG_CAP) {
        void *p = mremap(b, sizeof(*b) + b->cap, sizeof(*b) + ncap, MREMAP_MAYMOVE);
        return p == MAP_FAILED ? NULL : p;
    }
    nb = blob_alloc(ncap);
    if (nb == NULL)
        return NULL;
    memcpy(nb, b, sizeof(*b) + b->len);
    sh_free(b);
    return nb;
}

sh_blob_t *sh_blob_new(int kind, size_t cap)
{
    sh_blob_t *b = blob_alloc(cap);

    if (b == NULL)
        return NULL;
    b->refs = 1;
    b->kind = kind;
    b->reclen = 0;
    b->count = 0;
    b->len = 0;
    b->cap = cap;
    return b;
}

int sh_blob_append(sh_blob_t **bp, const void *bytes, size_t len)
{
    sh_blob_t *b = *bp;

    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        sh_blob_t *nb;

        while (cap < b->len + len)
            cap *= 2;
        nb = blob_grow(b, cap);
        if (nb == NULL)
            return SH_ENOMEM;
        nb->cap = cap;
        *bp = b = nb;
    }
    memcpy(b->data + b->len, bytes, len);
    b->len += len;
    return 0;
}

void sh_blob_ref(sh_blob_t *b)
{
    __atomic_add_fetch(&b->refs, 1, __ATOMIC_RELAXED);
}

void sh_blob_unref(sh_blob_t *b)
{
    if (b != NULL && __atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL) == 0)
        blob_free(b);
}

int sh_bloblist_add(sh_bloblist_t *l, sh_blob_t *b)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        sh_blob_t **nb = sh_realloc(l->blobs, cap * sizeof(*nb));
        if (nb == NULL)
            return SH_ENOMEM;
        l->blobs = nb;
        l->cap = cap;
    }
    sh_blob_ref(b);
    l->blobs[l->n++] = b;
    return 0;
}

int sh_bloblist_move(sh_bloblist_t *to, sh_bloblist_t *from)
{
    size_t i;

    if (to->n + from->n > to->cap) {
        size_t cap = to->cap ? to->cap : 8;
        sh_blob_t **nb;
        while (cap < to->n + from->n)
            cap *= 2;
        nb = sh_realloc(to->blobs, cap * sizeof(*nb));
        if (nb == NULL)
            return SH_ENOMEM;
        to->blobs = nb;
        to->cap = cap;
    }
    for (i = 0; i < from->n; i++)
        to->blobs[to->n++] = from->blobs[i];
    from->n = 0;
    return 0;
}

void sh_bloblist_clear(sh_bloblist_t *l)
{
    size_t i;

    for (i = 0; i < l->n; i++)
        sh_blob_unref(l->blobs[i]);
    sh_free(l->blobs);
    l->blobs = NULL;
    l->n = l->cap = 0;
}
