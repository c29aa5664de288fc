/* sh_events.c: the bounded report queue of receivers (sh_events.h). */
#include "sh_events.h"
#include "sh_common.h"

#include <stdarg.h>
#include <stdio.h>

struct sh_event_s {
    sh_event_t *next;
    int kind;
    char *msg;
};

void sh_events_push(sh_events_t *q, int kind, const char *msg)
{
    sh_event_t *e;

    if (q->n >= SH_EVENTS_MAX)
        return;
    e = sh_malloc(sizeof *e);
    if (e == NULL)
        return;
    e->msg = sh__strdup(msg ? msg : "");
    if (e->msg == NULL) {
        sh_free(e);
        return;
    }
    e->next = NULL;
    e->kind = kind;
    if (q->tail)
        q->tail->next = e;
    else
        q->head = e;
    q->tail = e;
    q->n++;
}

void sh_events_pushf(sh_events_t *q, int kind, const char *fmt, ...)
{
    char buf[512];
    va_list ap;

    if (q->n >= SH_EVENTS_MAX)
        return;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    sh_events_push(q, kind, buf);
}

int sh_events_take(sh_events_t *q, int *kind, char **msg)
{
    sh_event_t *e = q->head;

    if (e == NULL)
        return 0;
    q->head = e->next;
    if (q->head == NULL)
        q->tail = NULL;
    q->n--;
    if (kind)
        *kind = e->kind;
    *msg = e->msg;
    sh_free(e);
    return 1;
}

void sh_events_clear(sh_events_t *q)
{
    char *msg;

    while (sh_events_take(q, NULL, &msg))
        sh_free(msg);
}
