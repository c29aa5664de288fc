/* sh_recv.c: the socket receiver: connects connectors/socket's TCP client to one input of the
 * batch scheduler (lines become blocks there, backpressure pauses the socket) and keeps the
 * client's events for the driver. */
#include "sh_common.h"
#include "sh_events.h"
#include "sh_host.h"
#include "sh_sched.h"
#include "../connectors/socket/sh_in_socket.h"

#include <stdio.h>
#include <string.h>

#define SH_EXPORT __attribute__((visibility("default")))

typedef struct sh_recv_s {
    sh_in_socket_t *sock;
    sh_sched_t *sched;
    int input;
    sh_events_t events;         /* for the driver (sh_ffi_recv_event) */
    int closed;                 /* the driver let go; freed on STOPPED */
    int dropping;               /* out of memory was reported; said once until it recovers */
} sh_recv_t;

static void on_lines(void *ud, const char *lines, size_t len, size_t count)
{
    sh_recv_t *r = ud;

    if (r->sched == NULL)
        return;
    if (sh_sched_input_append(r->sched, r->input, lines, len, (uint32_t) count)) {
        if (!r->dropping)
            sh_events_push(&r->events, SH_IN_SOCKET_LINE_TOO_LONG,
                           "out of memory: received lines dropped");
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
            sh_events_clear(&r->events);
            sh_free(r);
        }
        return;
    }
    if (!r->closed)
        sh_events_push(&r->events, event, msg);
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
    return sh_events_take(&r->events, kind, msg);
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
