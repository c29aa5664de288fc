/* sh_in_flume_push.c: the receiver behind FlumeUtils.createStream: an Avro source (Flume's
 * AvroSourceProtocol over Avro's Netty framing, optionally zlib) listening on the loop; every
 * append/appendBatch is stored whole as SH_BLOB_FLUME records in one scheduler input and only
 * then answered OK (with the write-ahead log, once the driver says its batch is logged). */
#include "sh_flume.h"
#include "sh_events.h"
#include "sh_common.h"
#include "sh_host.h"
#include "sh_sched.h"

#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#define SH_EXPORT __attribute__((visibility("default")))

enum { STATUS_OK = 0, STATUS_FAILED = 1 };

typedef struct reply_s {
    struct reply_s *next;
    uint64_t mark;        /* answered once the records up to this count are logged */
    uint32_t serial;
    char *head;           /* the handshake response and what precedes the status */
    size_t headlen;
    int status;           /* STATUS_OK until the log says otherwise */
} reply_t;

typedef struct conn_s conn_t;
typedef struct sh_flume_push_s sh_flume_push_t;

struct conn_s {
    uv_tcp_t tcp;
    sh_flume_push_t *srv;
    conn_t *prev, *next;
    char peer[64];
    sh_flume_stream_t stream;
    sh_buf_t msg, block, out;
    reply_t *replies, *replies_tail;  /* answers waiting for the log, in order */
    int handshaken;
    int closing;
    int reading;
};

struct sh_flume_push_s {
    uv_tcp_t listener;
    sh_sched_t *sched;
    int input;
    int compress;
    int deferred;             /* answer OK once the write-ahead log holds the records */
    int paused;
    int closing;
    int open_handles;         /* the listener and the connections not closed yet */
    uint64_t appended;        /* records appended to the input so far */
    char where[80];           /* host:port */
    conn_t *conns;
    sh_flume_known_t known;
    sh_events_t events;
};

static void maybe_free(sh_flume_push_t *s)
{
    if (s->closing && s->open_handles == 0) {
        sh_events_clear(&s->events);
        sh_free(s);
    }
}

static void free_replies(conn_t *c)
{
    while (c->replies) {
        reply_t *r = c->replies;
        c->replies = r->next;
        sh_free(r->head);
        sh_free(r);
    }
    c->replies_tail = NULL;
}

static void on_conn_closed(uv_handle_t *h)
{
    conn_t *c = h->data;
    sh_flume_push_t *s = c->srv;

    sh_flume_stream_free(&c->stream);
    sh_buf_close(&c->msg);
    sh_buf_close(&c->block);
    sh_buf_close(&c->out);
    free_replies(c);
    sh_free(c);
    s->open_handles--;
    maybe_free(s);
}

static void close_conn(conn_t *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    if (c->prev)
        c->prev->next = c->next;
    else
        c->srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    uv_close((uv_handle_t *) &c->tcp, on_conn_closed);
}

static void on_written(uv_write_t *w, int status)
{
    (void) status;  /* a failed write shows as a failed read too; the connection closes there */
    sh_free(w->data);
    sh_free(w);
}

/* Writes one response frame: head bytes then, when status >= 0, the Status enum. */
static void send_reply(conn_t *c, uint32_t serial, const char *head, size_t headlen, int status)
{
    char *frame;
    size_t flen;
    uv_write_t *w;
    uv_buf_t buf;

    c->out.len = 0;
    sh_buf_add(&c->out, head, headlen);
    if (status >= 0)
        sh_avro_put_long(&c->out, status);
    if (c->out.oom || sh_flume_stream_encode(&c->stream, serial, c->out.data, c->out.len, &frame, &flen)) {
        sh_events_pushf(&c->srv->events, 0, "out of memory answering %s", c->peer);
        close_conn(c);
        return;
    }
    w = sh_malloc(sizeof *w);
    if (w == NULL) {
        sh_free(frame);
        sh_events_pushf(&c->srv->events, 0, "out of memory answering %s", c->peer);
        close_conn(c);
        return;
    }
    w->data = frame;
    buf = uv_buf_init(frame, (unsigned) flen);
    if (uv_write(w, (uv_stream_t *) &c->tcp, &buf, 1, on_written)) {
        sh_free(frame);
        sh_free(w);
        close_conn(c);
    }
}

/* Answers, in order, the replies whose records the log holds (ok) or failed to hold. */
static void release_conn(conn_t *c, uint64_t upto, int ok)
{
    while (c->replies && c->replies->mark <= upto && !c->closing) {
        reply_t *r = c->replies;

        c->replies = r->next;
        if (c->replies == NULL)
            c->replies_tail = NULL;
        send_reply(c, r->serial, r->head, r->headlen, ok ? r->status : STATUS_FAILED);
        sh_free(r->head);
        sh_free(r);
    }
}

/* Queues (or, with nothing logged to wait for, sends) the answer to one request. */
static void answer(conn_t *c, uint32_t serial, const sh_buf_t *head, int status, uint64_t mark)
{
    reply_t *r;

    if (!c->srv->deferred || (mark == 0 && c->replies == NULL) || status < 0) {
        send_reply(c, serial, head->data, head->len, status);
        return;
    }
    r = sh_calloc(1, sizeof *r);
    if (r == NULL || (r->head = sh_malloc(head->len)) == NULL) {
        sh_free(r);
        send_reply(c, serial, head->data, head->len, STATUS_FAILED);
        return;
    }
    memcpy(r->head, head->data, head->len);
    r->headlen = head->len;
    r->serial = serial;
    r->mark = mark;
    r->status = status;
    if (c->replies_tail)
        c->replies_tail->next = r;
    else
        c->replies = r;
    c->replies_tail = r;
}

/* One request (a whole frame's bytes). Returns 0, or -1 after reporting a malformed request
 * (the connection is then closed; nothing of it was stored). */
static int handle_request(conn_t *c, uint32_t serial)
{
    sh_flume_push_t *s = c->srv;
    sh_avro_in_t in = { (const uint8_t *) c->msg.data, (const uint8_t *) c->msg.data + c->msg.len, NULL };
    sh_buf_t head;
    const uint8_t *name;
    size_t namelen;
    long count;
    int status = STATUS_OK;
    uint64_t mark = 0;

    sh_buf_init(&head);
    if (!c->handshaken) {
        const char *err = NULL;
        int match = sh_flume_handshake_serve(&in, sh_flume_source_protocol(), &s->known, &head, &err);

        if (match < 0) {
            sh_events_pushf(&s->events, 0, "%s from %s", err, c->peer);
            sh_buf_close(&head);
            return -1;
        }
        if (match == SH_MATCH_NONE) {  /* the client sends its protocol and asks again */
            answer(c, serial, &head, -1, 0);
            sh_buf_close(&head);
            return 0;
        }
        c->handshaken = 1;
    }
    sh_avro_skip_map(&in);  /* call metadata */
    name = sh_avro_get_bytes(&in, &namelen);
    if (in.err == NULL && namelen == 0) {  /* a handshake ping */
        answer(c, serial, &head, -1, 0);
        sh_buf_close(&head);
        return 0;
    }
    c->block.len = 0;
    c->block.oom = 0;
    if (in.err == NULL && namelen == 6 && memcmp(name, "append", 6) == 0)
        count = sh_flume_get_events(&in, 0, &c->block);
    else if (in.err == NULL && namelen == 11 && memcmp(name, "appendBatch", 11) == 0)
        count = sh_flume_get_events(&in, 1, &c->block);
    else {
        if (in.err == NULL)
            sh_events_pushf(&s->events, 0, "unknown message \"%.*s\" from %s",
                                 (int) (namelen > 64 ? 64 : namelen), (const char *) name, c->peer);
        else
            sh_events_pushf(&s->events, 0, "malformed request from %s: %s", c->peer, in.err);
        sh_buf_close(&head);
        return -1;
    }
    if (count < 0) {
        sh_events_pushf(&s->events, 0, "malformed %.*s request from %s: %s (nothing of it stored)",
                             (int) namelen, (const char *) name, c->peer, in.err);
        sh_buf_close(&head);
        return -1;
    }
    if (count > 0) {
        if (s->sched && sh_sched_input_append(s->sched, s->input, c->block.data, c->block.len,
                                              (uint32_t) count) == 0) {
            s->appended += (uint64_t) count;
            mark = s->appended;
        } else {
            status = STATUS_FAILED;
            sh_events_pushf(&s->events, 0, "%s: %ld events from %s refused (the sender retries)",
                                 s->sched ? "out of memory" : "stopped", count, c->peer);
        }
    }
    sh_avro_put_long(&head, 0);  /* response metadata: an empty map */
    sh_avro_put_long(&head, 0);  /* not an error */
    if (head.oom)
        status = STATUS_FAILED;
    answer(c, serial, &head, status, status == STATUS_OK ? mark : 0);
    sh_buf_close(&head);
    return 0;
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    conn_t *c = st->data;
    sh_flume_push_t *s = c->srv;
    const char *zerr = NULL;
    char err[160];
    uint32_t serial;
    int rc;

    if (nread < 0) {
        if (sh_flume_stream_pending(&c->stream) > 0)
            sh_events_pushf(&s->events, 0, "%s disconnected in the middle of a request (%zu bytes "
                            "of it dropped, nothing of it stored)", c->peer,
                            sh_flume_stream_pending(&c->stream));
        close_conn(c);
    } else if (nread > 0) {
        rc = sh_flume_stream_feed(&c->stream, buf->base, (size_t) nread, &zerr);
        if (rc) {
            sh_events_pushf(&s->events, 0, "%s from %s", rc == SH_ENOMEM ? "out of memory" : zerr, c->peer);
            close_conn(c);
        }
        while (!c->closing && (rc = sh_flume_stream_frame(&c->stream, &serial, &c->msg, err, sizeof err)) != 0) {
            if (rc < 0 || handle_request(c, serial) < 0) {
                if (rc < 0)
                    sh_events_pushf(&s->events, 0, "%s from %s", err, c->peer);
                close_conn(c);
            }
            sh_flume_buf_trim(&c->msg);
            sh_flume_buf_trim(&c->block);
        }
    }
    sh_free(buf->base);
}

static void set_reading(conn_t *c, int on)
{
    if (c->closing || c->reading == on)
        return;
    c->reading = on;
    if (on)
        uv_read_start((uv_stream_t *) &c->tcp, sh_flume_alloc_read, on_read);
    else
        uv_read_stop((uv_stream_t *) &c->tcp);
}

static void on_connection(uv_stream_t *l, int status)
{
    sh_flume_push_t *s = l->data;
    struct sockaddr_storage ss;
    int sslen = sizeof ss;
    conn_t *c;

    if (s->closing)
        return;
    if (status < 0) {
        sh_events_pushf(&s->events, 0, "cannot accept a client: %s", uv_strerror(status));
        return;
    }
    c = sh_calloc(1, sizeof *c);
    if (c == NULL) {
        sh_events_pushf(&s->events, 0, "out of memory accepting a client");
        return;
    }
    uv_tcp_init(l->loop, &c->tcp);
    c->tcp.data = c;
    c->srv = s;
    s->open_handles++;
    sh_buf_init(&c->msg);
    sh_buf_init(&c->block);
    sh_buf_init(&c->out);
    if (uv_accept(l, (uv_stream_t *) &c->tcp) || sh_flume_stream_init(&c->stream, s->compress)) {
        sh_events_pushf(&s->events, 0, "cannot accept a client (out of memory or descriptors)");
        c->closing = 1;
        uv_close((uv_handle_t *) &c->tcp, on_conn_closed);
        return;
    }
    snprintf(c->peer, sizeof c->peer, "a client");
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *) &ss, &sslen) == 0) {
        char ip[48] = "?";
        int port;

        if (ss.ss_family == AF_INET6) {
            uv_ip6_name((struct sockaddr_in6 *) &ss, ip, sizeof ip);
            port = ntohs(((struct sockaddr_in6 *) &ss)->sin6_port);
        } else {
            uv_ip4_name((struct sockaddr_in *) &ss, ip, sizeof ip);
            port = ntohs(((struct sockaddr_in *) &ss)->sin_port);
        }
        snprintf(c->peer, sizeof c->peer, "client %s:%d", ip, port);
    }
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    uv_tcp_nodelay(&c->tcp, 1);
    set_reading(c, !s->paused);
}

static void on_pause(void *ud, int pause)
{
    sh_flume_push_t *s = ud;
    conn_t *c;

    if (pause < 0) {
        s->sched = NULL;
        return;
    }
    s->paused = pause;
    for (c = s->conns; c; c = c->next)
        set_reading(c, !pause);
}

static void on_listener_closed(uv_handle_t *h)
{
    sh_flume_push_t *s = h->data;

    s->open_handles--;
    maybe_free(s);
}

/* Listens on host:port (an IP address, or a name resolved to its first address; port 0: one
 * the system picks, see sh_ffi_flume_push_port) and feeds
 * input `input` of `sched` with the events clients send, from the loop of h. compress: the
 * connections are zlib streams. deferred: a request is answered OK only once
 * sh_ffi_flume_push_release says its records are in the write-ahead log; otherwise once they
 * are appended to the input. Returns NULL with *errmsg (free with sh_ffi_free) when the address
 * cannot be bound. The driver owns the receiver until sh_ffi_flume_push_close(), which must
 * come before sh_sched_free(sched). Loop thread, every function of the receiver. */
SH_EXPORT sh_flume_push_t *sh_ffi_flume_push_open(sh_host_t *h, sh_sched_t *sched, int input,
                                                  const char *host, int port, int compress,
                                                  int deferred, char **errmsg)
{
    struct sockaddr_storage addr;
    sh_flume_push_t *s;
    char buf[256];
    int rc;

    *errmsg = NULL;
    if (uv_ip4_addr(host, port, (struct sockaddr_in *) &addr) &&
        uv_ip6_addr(host, port, (struct sockaddr_in6 *) &addr)) {
        /* A host name: resolved here, once (blocking), to its first address. */
        struct addrinfo hints, *ai = NULL;
        char portstr[16];

        memset(&hints, 0, sizeof hints);
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_PASSIVE;
        snprintf(portstr, sizeof portstr, "%d", port);
        if ((rc = getaddrinfo(host, portstr, &hints, &ai)) != 0 || ai == NULL) {
            snprintf(buf, sizeof buf, "cannot listen on %s:%d: %s", host, port, gai_strerror(rc));
            *errmsg = sh__strdup(buf);
            return NULL;
        }
        memcpy(&addr, ai->ai_addr, ai->ai_addrlen);
        freeaddrinfo(ai);
    }
    s = sh_calloc(1, sizeof *s);
    if (s == NULL) {
        *errmsg = sh__strdup("out of memory");
        return NULL;
    }
    uv_tcp_init(h->loop, &s->listener);
    s->listener.data = s;
    s->open_handles = 1;
    if ((rc = uv_tcp_bind(&s->listener, (struct sockaddr *) &addr, 0)) ||
        (rc = uv_listen((uv_stream_t *) &s->listener, 64, on_connection))) {
        snprintf(buf, sizeof buf, "cannot listen on %s:%d: %s", host, port, uv_strerror(rc));
        *errmsg = sh__strdup(buf);
        s->closing = 1;
        uv_close((uv_handle_t *) &s->listener, on_listener_closed);
        return NULL;
    }
    sh_flume_source_protocol();  /* computes the hashes now, not in the first handshake */
    s->sched = sched;
    s->input = input;
    s->compress = compress;
    s->deferred = deferred;
    snprintf(s->where, sizeof s->where, "%s:%d", host, port);
    sh_sched_input_set_pause(sched, input, on_pause, s);
    return s;
}

/* The port the receiver listens on (the one picked when opened with port 0). */
SH_EXPORT int sh_ffi_flume_push_port(sh_flume_push_t *s)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;

    if (uv_tcp_getsockname(&s->listener, (struct sockaddr *) &ss, &len))
        return -1;
    return ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *) &ss)->sin6_port
                                          : ((struct sockaddr_in *) &ss)->sin_port);
}

/* The records appended up to count `upto` (the receiver's running total) are in the
 * write-ahead log (ok) or could not be logged: their requests are answered OK or FAILED. */
SH_EXPORT void sh_ffi_flume_push_release(sh_flume_push_t *s, double upto, int ok)
{
    conn_t *c, *next;

    for (c = s->conns; c; c = next) {
        next = c->next;
        release_conn(c, (uint64_t) upto, ok);
    }
}

/* Takes the oldest event (a malformed request, a peer gone mid-request): 1 with *msg (free
 * with sh_ffi_free), or 0. */
SH_EXPORT int sh_ffi_flume_push_event(sh_flume_push_t *s, char **msg)
{
    return sh_events_take(&s->events, NULL, msg);
}

/* Stops listening and closes every connection (requests not answered yet are retried by
 * their senders); what was stored stays in the input. Freed once the handles have closed. */
SH_EXPORT void sh_ffi_flume_push_close(sh_flume_push_t *s)
{
    if (s == NULL)
        return;
    if (s->sched)
        sh_sched_input_set_pause(s->sched, s->input, NULL, NULL);
    s->sched = NULL;
    s->closing = 1;
    while (s->conns)
        close_conn(s->conns);
    uv_close((uv_handle_t *) &s->listener, on_listener_closed);
}
