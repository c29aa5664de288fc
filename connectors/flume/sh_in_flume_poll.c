/* sh_in_flume_poll.c: the receiver behind FlumeUtils.createPollingStream: a client of Spark's
 * sink protocol (SparkFlumeProtocol over Avro's Netty framing) with `parallelism` connections
 * per sink address, each asking getEventBatch, storing the batch whole as SH_BLOB_FLUME records
 * in one scheduler input and then acking it (nacking what it could not store); reconnects
 * with backoff when a sink goes away. */
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
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000
#define EMPTY_WAIT_MS 50      /* a sink with nothing to give is asked again after this */

enum {
    ST_WAITING,      /* the timer starts the next connect */
    ST_CONNECTING,
    ST_IDLE,         /* connected; the next getEventBatch waits (backpressure, or its timer) */
    ST_BATCH,        /* getEventBatch sent */
    ST_STORED,       /* a batch is stored; its ack waits for the write-ahead log */
    ST_ACK,          /* ack or nack sent */
    ST_CLOSING       /* the tcp handle is closing */
};

typedef struct sh_flume_poll_s sh_flume_poll_t;

typedef struct pconn_s {
    sh_flume_poll_t *owner;
    int addr;                 /* index into the owner's addresses */
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_timer_t timer;
    int state;
    int tcp_open;
    int handshaken, send_protocol;
    int empty_ack;            /* the ack sent is for an empty batch */
    uint64_t backoff;
    uint32_t serial;
    const char *pending;      /* the message awaiting its response */
    sh_buf_t req_args;        /* the pending request's parameters (resent after a NONE) */
    char seq[256];            /* the sequence number of the batch being acked or nacked */
    uint64_t mark;            /* ST_STORED: acked once the log holds records up to here */
    sh_flume_stream_t stream;
    sh_buf_t msg, block, out;
} pconn_t;

struct sh_flume_poll_s {
    uv_loop_t *loop;
    sh_sched_t *sched;
    int input;
    int max_batch;
    int deferred;
    int paused;
    int closing;
    int open_handles;
    uint64_t appended;
    int naddrs;
    struct sockaddr_storage *addrs;
    char (*names)[80];
    char *down;               /* per address: a connection problem was reported, not yet over */
    char *erring;             /* per address: an error batch was reported, no good batch since */
    int nconns;
    pconn_t *conns;
    sh_events_t events;
};

static void start_connect(pconn_t *c);
static void send_request(pconn_t *c, const char *name);
static void next_batch(pconn_t *c);

static void on_retry(uv_timer_t *t)
{
    start_connect(t->data);
}

/* Frees the receiver's arrays and itself (any of them may be NULL: a failed open). */
static void free_poll(sh_flume_poll_t *p)
{
    sh_free(p->conns);
    sh_free(p->addrs);
    sh_free(p->names);
    sh_free(p->down);
    sh_free(p->erring);
    sh_free(p);
}

static void maybe_free(sh_flume_poll_t *p)
{
    int i;

    if (!p->closing || p->open_handles > 0)
        return;
    for (i = 0; i < p->nconns; i++) {
        pconn_t *c = &p->conns[i];
        sh_flume_stream_free(&c->stream);
        sh_buf_close(&c->msg);
        sh_buf_close(&c->block);
        sh_buf_close(&c->out);
        sh_buf_close(&c->req_args);
    }
    sh_events_clear(&p->events);
    free_poll(p);
}

static void on_handle_closed(uv_handle_t *h)
{
    pconn_t *c = h->data;
    sh_flume_poll_t *p = c->owner;

    if (h == (uv_handle_t *) &c->tcp) {
        c->tcp_open = 0;
        if (!p->closing) {  /* the retry waits for the handle */
            c->state = ST_WAITING;
            uv_timer_start(&c->timer, on_retry, c->backoff, 0);
            c->backoff = c->backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff * 2;
        }
    }
    p->open_handles--;
    maybe_free(p);
}

static const char *name_of(pconn_t *c)
{
    return c->owner->names[c->addr];
}

/* Reports (once for the address until a connection to it succeeds) and drops the
 * connection; it is made again after the backoff. */
static void fail(pconn_t *c, const char *fmt, const char *detail)
{
    char buf[400];

    if (!c->owner->down[c->addr]) {
        snprintf(buf, sizeof buf, fmt, detail);
        sh_events_pushf(&c->owner->events, 0, "sink %s: %s", name_of(c), buf);
        c->owner->down[c->addr] = 1;
    }
    if (c->tcp_open && c->state != ST_CLOSING) {
        c->state = ST_CLOSING;
        uv_close((uv_handle_t *) &c->tcp, on_handle_closed);
    }
}

static void on_written(uv_write_t *w, int status)
{
    (void) status;  /* a failed write fails the read too */
    sh_free(w->data);
    sh_free(w);
}

/* Sends message `name` with the parameters in c->req_args (and a handshake while none
 * succeeded on this connection). */
static void send_request(pconn_t *c, const char *name)
{
    const sh_flume_proto_t *proto = sh_flume_sink_protocol();
    uv_write_t *w;
    uv_buf_t buf;
    char *frame;
    size_t flen;

    c->out.len = 0;
    c->out.oom = 0;
    if (!c->handshaken)
        sh_flume_handshake_request(proto, c->send_protocol, &c->out);
    sh_avro_put_long(&c->out, 0);  /* call metadata: an empty map */
    sh_avro_put_bytes(&c->out, name, strlen(name));
    sh_buf_add(&c->out, c->req_args.data ? c->req_args.data : "", c->req_args.len);
    c->pending = name;
    c->serial++;
    if (c->out.oom || sh_flume_stream_encode(&c->stream, c->serial, c->out.data, c->out.len, &frame, &flen)) {
        fail(c, "%s", "out of memory");
        return;
    }
    w = sh_malloc(sizeof *w);
    if (w == NULL) {
        sh_free(frame);
        fail(c, "%s", "out of memory");
        return;
    }
    w->data = frame;
    buf = uv_buf_init(frame, (unsigned) flen);
    if (uv_write(w, (uv_stream_t *) &c->tcp, &buf, 1, on_written)) {
        sh_free(frame);
        sh_free(w);
        fail(c, "%s", "cannot write");
    }
}

static void send_seq(pconn_t *c, const char *name)
{
    c->req_args.len = 0;
    sh_avro_put_bytes(&c->req_args, c->seq, strlen(c->seq));
    c->state = ST_ACK;
    send_request(c, name);
}

/* Asks for the next batch, unless the input is paused (resumed by on_pause). */
static void next_batch(pconn_t *c)
{
    if (c->owner->closing || c->state == ST_CLOSING || !c->tcp_open)
        return;
    c->state = ST_IDLE;
    if (c->owner->paused || c->owner->sched == NULL)
        return;
    c->req_args.len = 0;
    sh_avro_put_long(&c->req_args, c->owner->max_batch);
    c->state = ST_BATCH;
    send_request(c, "getEventBatch");
}

static void on_wait_done(uv_timer_t *t)
{
    next_batch(t->data);
}

/* A getEventBatch response body (after metadata and the error flag). */
static void got_batch(pconn_t *c, sh_avro_in_t *in)
{
    sh_flume_poll_t *p = c->owner;
    size_t elen, slen;
    const uint8_t *emsg = sh_avro_get_bytes(in, &elen);
    const uint8_t *seq = sh_avro_get_bytes(in, &slen);
    long count;
    char detail[300];

    if (in->err == NULL && elen > 0) {
        /* The sink had nothing or failed: reported once, asked again after a pause. */
        snprintf(detail, sizeof detail, "%.*s", (int) (elen > 250 ? 250 : elen), (const char *) emsg);
        if (!p->erring[c->addr])
            sh_events_pushf(&p->events, 0, "sink %s: error batch: %s", name_of(c), detail);
        p->erring[c->addr] = 1;
        c->state = ST_IDLE;
        uv_timer_start(&c->timer, on_wait_done, BACKOFF_MIN_MS, 0);
        return;
    }
    c->block.len = 0;
    c->block.oom = 0;
    count = in->err ? -1 : sh_flume_get_events(in, 1, &c->block);
    if (count < 0 || slen >= sizeof c->seq) {
        fail(c, "malformed event batch: %s", in->err ? in->err : "sequence number too long");
        return;
    }
    memcpy(c->seq, seq, slen);
    c->seq[slen] = '\0';
    if (count > 0)
        p->erring[c->addr] = 0;
    if (count > 0 && (p->sched == NULL || sh_sched_input_append(p->sched, p->input, c->block.data,
                                                                c->block.len, (uint32_t) count))) {
        sh_events_pushf(&p->events, 0, "sink %s: %s: batch %s nacked", name_of(c),
                             p->sched ? "out of memory" : "stopped", c->seq);
        send_seq(c, "nack");
        return;
    }
    if (count > 0 && p->deferred) {
        p->appended += (uint64_t) count;
        c->mark = p->appended;
        c->state = ST_STORED;
        return;
    }
    p->appended += (uint64_t) count;
    if (count == 0) {  /* acked at once; the sink is asked again after a pause */
        c->empty_ack = 1;
        send_seq(c, "ack");
        return;
    }
    send_seq(c, "ack");
}

/* One response frame. */
static void got_response(pconn_t *c)
{
    sh_avro_in_t in = { (const uint8_t *) c->msg.data, (const uint8_t *) c->msg.data + c->msg.len, NULL };
    const char *err = NULL;

    if (!c->handshaken) {
        int match = sh_flume_handshake_response(&in, &err);

        if (match < 0) {
            fail(c, "%s", err);
            return;
        }
        if (match == SH_MATCH_NONE) {  /* the sink does not know our hash: send the protocol */
            if (c->send_protocol) {
                fail(c, "%s", "the sink refused our protocol (handshake NONE)");
                return;
            }
            c->send_protocol = 1;
            send_request(c, c->pending);
            return;
        }
        c->handshaken = 1;
    }
    sh_avro_skip_map(&in);
    if (in.err == NULL && in.p < in.end && *in.p) {  /* an error response: union ["string", ...] */
        size_t len;
        const uint8_t *m;
        char detail[300];

        in.p++;
        (void) sh_avro_get_long(&in);
        m = sh_avro_get_bytes(&in, &len);
        snprintf(detail, sizeof detail, "%.*s", (int) (len > 250 ? 250 : len), m ? (const char *) m : "?");
        fail(c, "error response: %s", detail);
        return;
    }
    if (in.err == NULL)
        in.p++;
    if (in.err) {
        fail(c, "malformed response: %s", in.err);
        return;
    }
    if (c->state == ST_BATCH) {
        got_batch(c, &in);
    } else if (c->state == ST_ACK) {
        if (c->empty_ack || strcmp(c->pending, "nack") == 0) {
            c->empty_ack = 0;
            c->state = ST_IDLE;
            uv_timer_start(&c->timer, on_wait_done, EMPTY_WAIT_MS, 0);
        } else {
            next_batch(c);
        }
    }
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    pconn_t *c = st->data;
    const char *zerr = NULL;
    char err[160];
    uint32_t serial;
    int rc;

    if (nread < 0) {
        fail(c, "connection lost: %s", nread == UV_EOF ? "closed by the sink" : uv_strerror((int) nread));
    } else if (nread > 0) {
        if ((rc = sh_flume_stream_feed(&c->stream, buf->base, (size_t) nread, &zerr)) != 0)
            fail(c, "%s", rc == SH_ENOMEM ? "out of memory" : zerr);
        while (c->state != ST_CLOSING && (rc = sh_flume_stream_frame(&c->stream, &serial, &c->msg, err, sizeof err)) != 0) {
            if (rc < 0)
                fail(c, "%s", err);
            else if (serial != c->serial || c->state == ST_IDLE || c->state == ST_STORED)
                fail(c, "%s", "a response to no request");
            else
                got_response(c);
            sh_flume_buf_trim(&c->msg);
            sh_flume_buf_trim(&c->block);
        }
    }
    sh_free(buf->base);
}

static void on_connect(uv_connect_t *req, int status)
{
    pconn_t *c = req->data;

    if (c->state == ST_CLOSING)
        return;
    if (status < 0) {
        fail(c, "cannot connect: %s", uv_strerror(status));
        return;
    }
    if (c->owner->down[c->addr]) {
        sh_events_pushf(&c->owner->events, 0, "sink %s: receiving again", name_of(c));
        c->owner->down[c->addr] = 0;
    }
    c->backoff = BACKOFF_MIN_MS;
    sh_flume_stream_free(&c->stream);
    sh_flume_stream_init(&c->stream, 0);
    c->handshaken = 0;
    c->send_protocol = 0;
    uv_tcp_nodelay(&c->tcp, 1);
    uv_read_start((uv_stream_t *) &c->tcp, sh_flume_alloc_read, on_read);
    next_batch(c);
}

static void start_connect(pconn_t *c)
{
    sh_flume_poll_t *p = c->owner;
    int rc;

    if (p->closing)
        return;
    uv_tcp_init(p->loop, &c->tcp);
    c->tcp.data = c;
    c->tcp_open = 1;
    p->open_handles++;
    c->state = ST_CONNECTING;
    c->creq.data = c;
    rc = uv_tcp_connect(&c->creq, &c->tcp, (struct sockaddr *) &p->addrs[c->addr], on_connect);
    if (rc)
        fail(c, "cannot connect: %s", uv_strerror(rc));
}

static void on_pause(void *ud, int pause)
{
    sh_flume_poll_t *p = ud;
    int i;

    if (pause < 0) {
        p->sched = NULL;
        return;
    }
    p->paused = pause;
    if (!pause)
        for (i = 0; i < p->nconns; i++)
            if (p->conns[i].state == ST_IDLE && !uv_is_active((uv_handle_t *) &p->conns[i].timer))
                next_batch(&p->conns[i]);
}

/* Polls the n sinks hosts[i]:ports[i] (names resolved here, once; blocking) with `parallelism`
 * connections each, asking for at most max_batch events a request, and feeds input `input` of
 * `sched` from the loop of h. deferred: a batch is acked only once sh_ffi_flume_poll_release
 * says its records are in the write-ahead log; otherwise once they are appended. Returns NULL
 * with *errmsg (free with sh_ffi_free) naming an address that does not resolve. The driver owns
 * the receiver until sh_ffi_flume_poll_close(), which must come before sh_sched_free(sched).
 * Loop thread, every function of the receiver. */
SH_EXPORT sh_flume_poll_t *sh_ffi_flume_poll_open(sh_host_t *h, sh_sched_t *sched, int input,
                                                  const char **hosts, const int *ports, int n,
                                                  int max_batch, int parallelism, int deferred,
                                                  char **errmsg)
{
    sh_flume_poll_t *p = sh_calloc(1, sizeof *p);
    char buf[300];
    int i, j;

    *errmsg = NULL;
    if (p == NULL || (p->addrs = sh_calloc((size_t) n, sizeof *p->addrs)) == NULL ||
        (p->names = sh_calloc((size_t) n, sizeof *p->names)) == NULL ||
        (p->down = sh_calloc((size_t) n, 1)) == NULL || (p->erring = sh_calloc((size_t) n, 1)) == NULL ||
        (p->conns = sh_calloc((size_t) n * (size_t) parallelism, sizeof *p->conns)) == NULL) {
        if (p)
            free_poll(p);
        *errmsg = sh__strdup("out of memory");
        return NULL;
    }
    for (i = 0; i < n; i++) {
        struct addrinfo hints, *ai = NULL;
        char port[16];
        int rc;

        memset(&hints, 0, sizeof hints);
        hints.ai_socktype = SOCK_STREAM;
        snprintf(port, sizeof port, "%d", ports[i]);
        snprintf(p->names[i], sizeof p->names[i], "%s:%d", hosts[i], ports[i]);
        if ((rc = getaddrinfo(hosts[i], port, &hints, &ai)) != 0 || ai == NULL) {
            snprintf(buf, sizeof buf, "cannot resolve sink %s: %s", p->names[i], gai_strerror(rc));
            *errmsg = sh__strdup(buf);
            free_poll(p);
            return NULL;
        }
        memcpy(&p->addrs[i], ai->ai_addr, ai->ai_addrlen);
        freeaddrinfo(ai);
    }
    sh_flume_sink_protocol();
    p->loop = h->loop;
    p->sched = sched;
    p->input = input;
    p->max_batch = max_batch;
    p->deferred = deferred;
    p->naddrs = n;
    p->nconns = n * parallelism;
    for (i = 0; i < n; i++)
        for (j = 0; j < parallelism; j++) {
            pconn_t *c = &p->conns[i * parallelism + j];

            c->owner = p;
            c->addr = i;
            c->backoff = BACKOFF_MIN_MS;
            sh_buf_init(&c->msg);
            sh_buf_init(&c->block);
            sh_buf_init(&c->out);
            sh_buf_init(&c->req_args);
            uv_timer_init(p->loop, &c->timer);
            c->timer.data = c;
            p->open_handles++;
            c->state = ST_WAITING;
            uv_timer_start(&c->timer, on_retry, 0, 0);
        }
    sh_sched_input_set_pause(sched, input, on_pause, p);
    return p;
}

/* The records appended up to count `upto` are in the write-ahead log (ok: their batches are
 * acked) or could not be logged (their batches are nacked, so the sink sends them again). */
SH_EXPORT void sh_ffi_flume_poll_release(sh_flume_poll_t *p, double upto, int ok)
{
    int i;

    for (i = 0; i < p->nconns; i++) {
        pconn_t *c = &p->conns[i];

        if (c->state == ST_STORED && c->mark <= (uint64_t) upto)
            send_seq(c, ok ? "ack" : "nack");
    }
}

/* Takes the oldest event (a sink unreachable or gone, an error batch, "receiving again"):
 * 1 with *msg (free with sh_ffi_free), or 0. */
SH_EXPORT int sh_ffi_flume_poll_event(sh_flume_poll_t *p, char **msg)
{
    return sh_events_take(&p->events, NULL, msg);
}

/* Stops polling and closes the connections (batches not acked yet are sent again by the
 * sinks after their own timeout); what was stored stays in the input. Freed once the
 * handles have closed. */
SH_EXPORT void sh_ffi_flume_poll_close(sh_flume_poll_t *p)
{
    int i;

    if (p == NULL)
        return;
    if (p->sched)
        sh_sched_input_set_pause(p->sched, p->input, NULL, NULL);
    p->sched = NULL;
    p->closing = 1;
    for (i = 0; i < p->nconns; i++) {
        pconn_t *c = &p->conns[i];

        uv_close((uv_handle_t *) &c->timer, on_handle_closed);
        if (c->tcp_open && c->state != ST_CLOSING) {
            c->state = ST_CLOSING;
            uv_close((uv_handle_t *) &c->tcp, on_handle_closed);
        }
    }
    maybe_free(p);
}
