/* sh_recv.c: the socket receiver: connects connectors/socket's TCP client to one input of the
 * batch scheduler (lines become blocks there, backpressure pauses the socket) and keeps the
 * client's events for the driver. */
#include "sh_common.h"
#include "sh_host.h"
#include "sh_sched.h"
#include "../connectors/socket/sh_in_socket.h"

#include <stdio.h>
#include <string.h>

#define SH_EXPORT __attribute__((visibility("default")))
#define MAX_EVENTS 64

typedef struct event_s {
    struct event_s *next;
    int kind;
    char *msg;
} event_t;

typedef struct sh_recv_s {
    sh_in_socket_t *sock;
    sh_sched_t *sched;
    int input;
    event_t *ev_head, *ev_tail;
    int nevents;
    int closed;                 /* the driver let go; freed on STOPPED */
    int dropping;               /* out of memory was reported; said once until it recovers */
} sh_recv_t;

static void drop_events(sh_recv_t *r)
{
    event_t *e;

    while ((e = r->ev_head) != NULL) {
        r->ev_head = e->next;
        sh_free(e->msg);
        sh_free(e);
    }
    r->ev_tail = NULL;
    r->nevents = 0;
}

static void push_event(sh_recv_t *r, int kind, const char *msg)
{
    event_t *e;

    if (r->nevents >= MAX_EVENTS)
        return;  /* a peer that flaps keeps the newest reports from crowding out memory */
    e = sh_malloc(sizeof(*e));
    if (e == NULL)
        return;
    e->next = NULL;
    e->kind = kind;
    e->msg = sh__strdup(msg ? msg : "");
    if (r->ev_tail)
        r->ev_tail->next = e;
    else
        r->ev_head = e;
    r->ev_tail = e;
    r->nevents++;
}

static void on_lines(void *ud, const char *lines, size_t len, size_t count)
{
    sh_recv_t *r = ud;

    if (r->sched == NULL)
        return;
    if (sh_sched_input_append(r->sched, r->input, lines, len, (uint32_t) count)) {
        if (!r->dropping)
            push_event(r, SH_IN_SOCKET_LINE_TOO_LONG, "out of memory: received lines dropped");
        r->dropping = 1;
    } else {
        r->dropping = 0;
    }
}

static void on_pause(void *ud, int pause)
{
    sh_recv_t *r = ud;

    if (pause < 0) {  /* the scheduler is gone: what arrives from now on goes nowhere */
        r->sched = NULL;
        return;
    }
    if (pause)
        sh_in_socket_pause(r->sock);
    else
        sh_in_socket_resume(r->sock);
}

static void on_event(void *ud, int event, const char *msg)
{
    sh_recv_t *r = ud;

    if (event == SH_IN_SOCKET_STOPPED) {
        if (r->closed) {
            drop_events(r);
            sh_free(r);
        }
        return;
    }
    if (!r->closed)
        push_event(r, event, msg);
}

/* Connects to host:port and feeds input `input` of `sched` with the lines received. NULL with
 * *errmsg (free with sh_ffi_free) on failure. The driver owns the receiver until
 * sh_ffi_recv_close(), which must come before sh_sched_free(sched). Loop thread. */
SH_EXPORT sh_recv_t *sh_ffi_socket_open(sh_host_t *h, sh_sched_t *sched, int input,
                                        const char *host, int port, size_t max_line, char **errmsg)
{
    sh_recv_t *r = sh_calloc(1, sizeof(*r));
    int err = 0;
    char buf[512];

    *errmsg = NULL;
    if (r == NULL) {
        *errmsg = sh__strdup("out of memory");
        return NULL;
    }
    r->sched = sched;
    r->input = input;
    r->sock = sh_in_socket_new(h->loop, host, port, max_line, on_lines, on_event, r, &err);
    if (r->sock == NULL) {
        snprintf(buf, sizeof buf, "cannot create the receiver: %s", uv_strerror(err));
        *errmsg = sh__strdup(buf);
        sh_free(r);
        return NULL;
    }
    sh_sched_input_set_pause(sched, input, on_pause, r);
    err = sh_in_socket_start(r->sock);
    if (err) {
        sh_sched_input_set_pause(sched, input, NULL, NULL);
        r->closed = 1;
        sh_in_socket_close(r->sock);  /* frees r on STOPPED */
        snprintf(buf, sizeof buf, "cannot start receiving: %s", uv_strerror(err));
        *errmsg = sh__strdup(buf);
        return NULL;
    }
    return r;
}

/* Takes the oldest event: 1 with *kind and *msg (free with sh_ffi_free), or 0. */
SH_EXPORT int sh_ffi_recv_event(sh_recv_t *r, int *kind, char **msg)
{
    event_t *e = r->ev_head;

    if (e == NULL)
        return 0;
    r->ev_head = e->next;
    if (r->ev_head == NULL)
        r->ev_tail = NULL;
    r->nevents--;
    *kind = e->kind;
    *msg = e->msg;
    sh_free(e);
    return 1;
}

/* Stops reading. What was received stays in the scheduler's input and is processed; the
 * receiver is freed once the socket has closed. Loop thread. */
SH_EXPORT void sh_ffi_recv_close(sh_recv_t *r)
{
    if (r == NULL || r->closed)
        return;
    r->closed = 1;
    if (r->sched)
        sh_sched_input_set_pause(r->sched, r->input, NULL, NULL);
    r->sched = NULL;
    sh_in_socket_close(r->sock);
}
