/* sh_blob.c: reference-counted byte buffers that carry records between threads. */
#include "sh_blob.h"
#include "sh_common.h"

#include <string.h>

sh_blob_t *sh_blob_new(int kind, size_t cap)
{
    sh_blob_t *b = sh_malloc(sizeof(*b) + cap);

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
        nb = sh_realloc(b, sizeof(*b) + cap);
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
        sh_free(b);
}
