/* sh_events.h: a receiver's reports for the driver (errors, "receiving again"): a bounded
 * first-in first-out queue of (kind, message) that the receiver fills and the driver drains. */
#ifndef SH_EVENTS_H
#define SH_EVENTS_H

#define SH_EVENTS_MAX 64  /* a peer that flaps keeps its oldest reports, not unbounded memory */

typedef struct sh_event_s sh_event_t;

/* Zero-initialized it is empty; one thread at a time (receivers use it on the loop thread). */
typedef struct sh_events_s {
    sh_event_t *head, *tail;
    int n;
} sh_events_t;

/* Appends a copy of msg (NULL: "") with `kind`; dropped when SH_EVENTS_MAX wait or memory is
 * short. */
void sh_events_push(sh_events_t *q, int kind, const char *msg);

/* sh_events_push of a printf-formatted message (cut at 511 bytes). */
void sh_events_pushf(sh_events_t *q, int kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Takes the oldest: 1 with *kind (may be NULL) and *msg (the caller frees it with sh_free, as
 * sh_ffi_free does), or 0 when empty. */
int sh_events_take(sh_events_t *q, int *kind, char **msg);

/* Drops every event; the queue is empty and reusable. */
void sh_events_clear(sh_events_t *q);

#endif
