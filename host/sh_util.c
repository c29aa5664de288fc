/* sh_util.c: string helpers used across the host. */
#include "sh_common.h"

#include <string.h>

char *sh__strndup(const char *s, size_t len)
{
    char *d = sh_malloc(len + 1);

    if (d == NULL)
        return NULL;
    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

char *sh__strdup(const char *s)
{
    return sh__strndup(s, strlen(s));
}
