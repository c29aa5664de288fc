/* sh_common.h: allocation, error codes and small helpers shared by the host's C files. */
#ifndef SH_COMMON_H
#define SH_COMMON_H

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>

/* Error codes are negative errno values, as libuv's are, so uv errors pass through unchanged. */
#define SH__ERR(e) (-(e))
#define SH_ENOMEM  SH__ERR(ENOMEM)
#define SH_EINVAL  SH__ERR(EINVAL)
#define SH_ESTATE  SH__ERR(EALREADY) /* the object is in the wrong state for the call */
#define SH_ELUA    SH__ERR(EPROTO)   /* a Lua error; the message is in the host's last error */

/* All host allocation goes through these, so one place can count or fail them. */
static inline void *sh_malloc(size_t n) { return malloc(n ? n : 1); }
static inline void *sh_calloc(size_t n, size_t size) { return calloc(n ? n : 1, size ? size : 1); }
static inline void *sh_realloc(void *p, size_t n) { return realloc(p, n ? n : 1); }
static inline void sh_free(void *p) { free(p); }

/* Duplicates `len` bytes of `s` plus a terminating NUL; NULL on allocation failure. */
char *sh__strndup(const char *s, size_t len);
char *sh__strdup(const char *s);

#endif
