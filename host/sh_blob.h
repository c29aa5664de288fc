/* sh_blob.h: reference-counted byte buffers that carry records between threads. */
#ifndef SH_BLOB_H
#define SH_BLOB_H

#include <stddef.h>
#include <stdint.h>

/* How the bytes of a blob hold its records. */
enum {
    SH_BLOB_ENCODED = 1, /* one LuaJIT string.buffer-encoded array of records */
    SH_BLOB_LINES = 2,   /* UTF-8 text, every record terminated by '\n' */
    SH_BLOB_FIXED = 3    /* records of `reclen` bytes each, back to back */
};

/* A blob is immutable once sealed; any thread may read it while it holds a reference.
 * The layout is shared with lua/streamhost/ffi.lua: keep the two in step. */
typedef struct sh_blob_s {
    int32_t refs;     /* atomic */
    int32_t kind;     /* SH_BLOB_* */
    uint32_t reclen;  /* SH_BLOB_FIXED only */
    uint32_t count;   /* number of records, when known (ENCODED: nil records included) */
    size_t len;       /* bytes used */
    size_t cap;       /* bytes allocated after the header */
    char data[];
} sh_blob_t;

/* A new blob with one reference held by the caller and room for `cap` bytes; NULL when out of memory. */
sh_blob_t *sh_blob_new(int kind, size_t cap);
/* Appends bytes while the blob is still private to its creator; 0 or SH_ENOMEM (may move the blob:
 * *bp is updated). */
int sh_blob_append(sh_blob_t **bp, const void *bytes, size_t len);
void sh_blob_ref(sh_blob_t *b);
/* Drops one reference; the last one frees the blob. NULL is ignored. Any thread. */
void sh_blob_unref(sh_blob_t *b);

/* A list of blob references: what one task made, or what one batch record holds. Loop or
 * worker thread, one at a time (the list itself is not locked). */
typedef struct sh_bloblist_s {
    sh_blob_t **blobs;
    size_t n, cap;
} sh_bloblist_t;

/* Adds `b` to the list, taking one new reference to it. 0 or SH_ENOMEM (then no reference). */
int sh_bloblist_add(sh_bloblist_t *l, sh_blob_t *b);
/* Moves every reference of `from` to `to` (from ends empty). 0 or SH_ENOMEM (nothing moved). */
int sh_bloblist_move(sh_bloblist_t *to, sh_bloblist_t *from);
/* Drops every reference the list holds and frees its array; the list is empty afterwards. */
void sh_bloblist_clear(sh_bloblist_t *l);

#endif
