/* sh_util.c: string and clock helpers used across the host. */
#include "sh_common.h"

#include <string.h>
#include <time.h>

char *sh__strndup(const char *s, size_t len)
{
    char *d = sh_malloc(len + 1);

    if (d == NULL)
        return NULL;
    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

int sh__pack_names(char *const *list, size_t n, char **out, size_t *len)
{
    size_t total = 0, off = 0;
    char *p;

    for (size_t i = 0; i < n; i++)
        total += strlen(list[i]) + 1;
    if ((p = sh_malloc(total)) == NULL)
        return SH_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(list[i]) + 1;

        memcpy(p + off, list[i], l);
        off += l;
    }
    *out = p;
    *len = total;
    return 0;
}

char *sh__strdup(const char *s)
{
    return sh__strndup(s, strlen(s));
}

double sh__now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

int64_t sh__now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
