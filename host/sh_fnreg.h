/* sh_fnreg.h: the process-wide registry of shipped functions (serialized closures by id). */
#ifndef SH_FNREG_H
#define SH_FNREG_H

#include <stddef.h>
#include <stdint.h>

/* Stores a copy of a serialized function and returns its id (> 0); the same bytes always get
 * the same id, so re-shipping an unchanged closure costs no memory. 0 when out of memory.
 * Any thread. */
uint32_t sh__fnreg_put(const char *bytes, size_t len);
/* Looks up a function by id: 0 and sets *bytes and *len (valid for the process's life), or -1. */
int sh__fnreg_get(uint32_t id, const char **bytes, size_t *len);

#endif
