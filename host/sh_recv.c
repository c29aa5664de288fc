/* sh_recv.c: the socket receiver: frames what connectors/socket reads into blocks (blobs of
 * lines) that wait for the next batch, keeps its events for the driver, and pauses reading
 * when too much waits (backpressure). */
#include "sh_blob.h"
#include "sh_common.h"
#include "sh_host.h"
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
    sh_host_t *host;
    sh_in_socket_t *sock;
    sh_blob_t *open;            /* the block being filled */
    sh_blob_t **sealed;         /* blocks waiting for a batch, oldest first */
    size_t nsealed, cap;
    size_t queued_bytes, block_bytes, max_queued;
    event_t *ev_head, *ev_tail;
    int nevents;
    int paused;
    int closed;                 /* the driver let go; freed on STOPPED */
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

static void recv_free(sh_recv_t *r)
{
    size_t i;

    for (i = 0; i < r->nsealed; i++)
        sh_blob_unref(r->sealed[i]);
    sh_free(r->sealed);
    sh_blob_unref(r->open);
    drop_events(r);
    sh_free(r);
}

/* Moves the open block to the sealed queue. 0 or SH_ENOMEM. */
static int seal(sh_recv_t *r)
{
    if (r->open == NULL || r->open->len == 0)
        return 0;
    if (r->nsealed == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        sh_blob_t **s = sh_realloc(r->sealed, cap * sizeof(*s));
        if (s == NULL)
            return SH_ENOMEM;
        r->sealed = s;
        r->cap = cap;
    }
    r->sealed[r->nsealed++] = r->open;
    r->open = NULL;
    return 0;
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

    if (r->open != NULL && r->open->len + len > r->open->cap && r->open->len >= r->block_bytes / 2)
        seal(r);
    if (r->open == NULL) {
        r->open = sh_blob_new(SH_BLOB_LINES, len > r->block_bytes ? len : r->block_bytes);
        if (r->open == NULL) {
            push_event(r, SH_IN_SOCKET_LINE_TOO_LONG, "out of memory: lines dropped");
            return;
        }
    }
    if (sh_blob_append(&r->open, lines, len)) {
        push_event(r, SH_IN_SOCKET_LINE_TOO_LONG, "out of memory: lines dropped");
        return;
    }
    r->open->count += (uint32_t) count;
    r->queued_bytes += len;
    if (r->open->len >= r->block_bytes)
        seal(r);
    if (!r->paused && r->queued_bytes >= r->max_queued) {
        r->paused = 1;
        sh_in_socket_pause(r->sock);
    }
}

static void on_event(void *ud, int event, const char *msg)
{
    sh_recv_t *r = ud;

    if (event == SH_IN_SOCKET_STOPPED) {
        if (r->closed)
            recv_free(r);
        return;
    }
    if (!r->closed)
        push_event(r, event, msg);
}

/* Connects to host:port and starts receiving. NULL with *errmsg (free with sh_ffi_free) on
 * failure. The driver owns the receiver until sh_ffi_recv_close(). Driver thread. */
SH_EXPORT sh_recv_t *sh_ffi_socket_open(sh_host_t *h, const char *host, int port, size_t max_line,
                                        size_t block_bytes, size_t max_queued, char **errmsg)
{
    sh_recv_t *r = sh_calloc(1, sizeof(*r));
    int err = 0;
    char buf[512];

    *errmsg = NULL;
    if (r == NULL) {
        *errmsg = sh__strdup("out of memory");
        return NULL;
    }
    r->host = h;
    r->block_bytes = block_bytes ? block_bytes : (1u << 20);
    r->max_queued = max_queued ? max_queued : ((size_t) 256 << 20);
    r->sock = sh_in_socket_new(&h->loop, host, port, max_line, on_lines, on_event, r, &err);
    if (r->sock == NULL)
        goto fail;
    err = sh_in_socket_start(r->sock);
    if (err) {
        r->closed = 1;
        sh_in_socket_close(r->sock);  /* frees r on STOPPED */
        snprintf(buf, sizeof buf, "cannot start receiving: %s", uv_strerror(err));
        *errmsg = sh__strdup(buf);
        return NULL;
    }
    return r;
fail:
    snprintf(buf, sizeof buf, "cannot create the receiver: %s", uv_strerror(err));
    *errmsg = sh__strdup(buf);
    sh_free(r);
    return NULL;
}

/* Hands over up to `max` blocks received so far (the open one sealed first), oldest first;
 * the caller owns one reference to each. Returns how many. Resumes a paused socket. */
SH_EXPORT int sh_ffi_recv_take(sh_recv_t *r, sh_blob_t **out, int max)
{
    size_t n, i;

    seal(r);
    n = r->nsealed < (size_t) max ? r->nsealed : (size_t) max;
    for (i = 0; i < n; i++) {
        out[i] = r->sealed[i];
        r->queued_bytes -= out[i]->len;
    }
    if (r->nsealed > n)  /* sealed is NULL until the first block: memmove must not see it */
        memmove(r->sealed, r->sealed + n, (r->nsealed - n) * sizeof(*r->sealed));
    r->nsealed -= n;
    if (r->paused && r->queued_bytes < r->max_queued / 2) {
        r->paused = 0;
        sh_in_socket_resume(r->sock);
    }
    return (int) n;
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

/* Stops receiving; data not taken is dropped. The receiver is freed once the socket closes. */
SH_EXPORT void sh_ffi_recv_close(sh_recv_t *r)
{
    if (r == NULL || r->closed)
        return;
    r->closed = 1;
    sh_in_socket_close(r->sock);
}
