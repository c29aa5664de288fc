/* sh_buf.h: a growable byte buffer for building text (HTTP replies, JSON, Prometheus text). */
#ifndef SH_BUF_H
#define SH_BUF_H

#include <stddef.h>

/* Caller-allocated: sh_buf_init, appends, then sh_buf_take or sh_buf_close. An allocation
 * failure is sticky: later appends do nothing and `oom` stays set, so a writer checks once at
 * the end. Not thread-safe; one owner at a time. */
typedef struct {
    char *data;   /* NUL-terminated while not NULL */
    size_t len, cap;
    int oom;
} sh_buf_t;

void sh_buf_init(sh_buf_t *b);
/* Frees the bytes; the buffer may be initialized again. */
void sh_buf_close(sh_buf_t *b);
void sh_buf_add(sh_buf_t *b, const char *s, size_t len);
void sh_buf_puts(sh_buf_t *b, const char *s);
void sh_buf_printf(sh_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends `s` as a JSON string literal (quotes and escapes); NULL appends null. */
void sh_buf_json_str(sh_buf_t *b, const char *s);
/* Appends a number as JSON: finite numbers as %.17g trimmed to what round-trips, else null. */
void sh_buf_json_num(sh_buf_t *b, double x);
/* Hands the bytes over (the caller frees them with sh_free) and leaves the buffer empty;
 * NULL after an allocation failure (the buffer is then emptied too). */
char *sh_buf_take(sh_buf_t *b, size_t *len);

#endif
