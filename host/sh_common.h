/* sh_common.h: allocation, error codes and small helpers shared by the host's C files. */
#ifndef SH_COMMON_H
#define SH_COMMON_H

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>

#include "streamhost.h"  /* the error codes: negative errno values, so uv errors pass through */
#include <stdint.h>

#define SH__ERR(e) (-(e))

/* All host allocation goes through these, so one place can count or fail them. */
static inline void *sh_malloc(size_t n) { return malloc(n ? n : 1); }
static inline void *sh_calloc(size_t n, size_t size) { return calloc(n ? n : 1, size ? size : 1); }
static inline void *sh_realloc(void *p, size_t n) { return realloc(p, n ? n : 1); }
static inline void sh_free(void *p) { free(p); }

/* Duplicates `len` bytes of `s` plus a terminating NUL; NULL on allocation failure. */
char *sh__strndup(const char *s, size_t len);
char *sh__strdup(const char *s);

/* Packs n strings into NUL-terminated strings back to back in a new *out (free with sh_free),
 * *len bytes in all: how listings cross to Lua. 0 or SH_ENOMEM. Any thread. */
int sh__pack_names(char *const *list, size_t n, char **out, size_t *len);

/* Wall-clock time: epoch milliseconds, and epoch seconds with sub-millisecond precision. Batch
 * times are epoch milliseconds, so receivers, the scheduler and Lua share this clock. */
int64_t sh__now_ms(void);
double sh__now(void);

#endif
