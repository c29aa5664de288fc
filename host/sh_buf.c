/* sh_buf.c: a growable byte buffer with text, JSON string and number appends. */
#include "sh_buf.h"
#include "sh_common.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void sh_buf_init(sh_buf_t *b)
{
    memset(b, 0, sizeof(*b));
}

void sh_buf_close(sh_buf_t *b)
{
    sh_free(b->data);
    sh_buf_init(b);
}

/* Makes room for `more` bytes plus a NUL; 0, or -1 after setting oom. */
static int reserve(sh_buf_t *b, size_t more)
{
    size_t cap;
    char *p;

    if (b->oom)
        return -1;
    if (b->len + more + 1 <= b->cap)
        return 0;
    cap = b->cap ? b->cap : 256;
    while (cap < b->len + more + 1)
        cap *= 2;
    p = sh_realloc(b->data, cap);
    if (p == NULL) {
        b->oom = 1;
        return -1;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

void sh_buf_add(sh_buf_t *b, const char *s, size_t len)
{
    if (reserve(b, len))
        return;
    memcpy(b->data + b->len, s, len);
    b->len += len;
    b->data[b->len] = '\0';
}

void sh_buf_puts(sh_buf_t *b, const char *s)
{
    sh_buf_add(b, s, strlen(s));
}

void sh_buf_printf(sh_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || reserve(b, (size_t) n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t) n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t) n;
}

void sh_buf_json_str(sh_buf_t *b, const char *s)
{
    const unsigned char *p;

    if (s == NULL) {
        sh_buf_puts(b, "null");
        return;
    }
    sh_buf_add(b, "\"", 1);
    for (p = (const unsigned char *) s; *p; p++) {
        switch (*p) {
        case '"': sh_buf_add(b, "\\\"", 2); break;
        case '\\': sh_buf_add(b, "\\\\", 2); break;
        case '\n': sh_buf_add(b, "\\n", 2); break;
        case '\r': sh_buf_add(b, "\\r", 2); break;
        case '\t': sh_buf_add(b, "\\t", 2); break;
        default:
            /* Control bytes and '<' (so JSON never closes a script element) are escaped;
             * other bytes, UTF-8 included, pass as they are. */
            if (*p < 0x20 || *p == '<' || *p == 0x7f)
                sh_buf_printf(b, "\\u%04x", *p);
            else
                sh_buf_add(b, (const char *) p, 1);
        }
    }
    sh_buf_add(b, "\"", 1);
}

void sh_buf_json_num(sh_buf_t *b, double x)
{
    if (!isfinite(x))
        sh_buf_puts(b, "null");
    else if (x == floor(x) && fabs(x) < 9007199254740992.0)
        sh_buf_printf(b, "%.0f", x);
    else
        sh_buf_printf(b, "%.15g", x);
}

char *sh_buf_take(sh_buf_t *b, size_t *len)
{
    char *p = b->oom ? NULL : b->data;

    if (b->oom)
        sh_free(b->data);
    else if (p == NULL)
        p = sh__strdup("");
    if (len)
        *len = p ? b->len : 0;
    sh_buf_init(b);
    return p;
}
