/* sh_text_server.c: a small TCP server on the driver loop that serves the lines of a text to
 * every client at a steady rate, round and round: the built-in source of the demo job and of
 * examples that need no outside server (an extension beyond pyspark, like `nc -lk`). */
#include "sh_common.h"
#include "sh_host.h"

#include <stdio.h>
#include <string.h>

#define SH_EXPORT __attribute__((visibility("default")))
#define MAX_BACKLOG (1u << 20)  /* a client this far behind is skipped until it catches up */
#define MIN_TICK_MS 10          /* the tick: one line's interval, within these bounds */
#define MAX_TICK_MS 100

typedef struct client_s {
    uv_tcp_t tcp;
    struct client_s *next;
    struct sh_text_server_s *server;
} client_t;

/* The bytes of one tick when its lines wrap around the text: shared by every client's write,
 * freed when the last write completes. */
typedef struct {
    int refs;
    char data[];
} chunk_t;

typedef struct {
    uv_write_t req;
    client_t *client;
    chunk_t *chunk;    /* NULL when the write points into the text itself */
} write_t;

typedef struct sh_text_server_s {
    uv_tcp_t listener;
    uv_timer_t tick;
    char *text;        /* the lines, each ending in '\n' */
    size_t len;
    size_t *starts;    /* starts[i]: offset of line i; starts[nlines] == len */
    size_t nlines;
    size_t next;       /* the next line to send */
    double rate;       /* lines per second */
    uint64_t start_ns; /* when the clock of the rate started (uv_hrtime) */
    uint64_t due;      /* lines sent (or skipped while nobody listened) since start_ns */
    client_t *clients;
    int open_handles;  /* freed when the last close callback has run */
    int closing;
} sh_text_server_t;

static void release(sh_text_server_t *s)
{
    if (--s->open_handles == 0) {
        sh_free(s->text);
        sh_free(s->starts);
        sh_free(s);
    }
}

static void on_handle_closed(uv_handle_t *h)
{
    release(h->data);
}

static void on_client_closed(uv_handle_t *h)
{
    client_t *c = h->data;
    sh_text_server_t *s = c->server;

    sh_free(c);
    release(s);
}

static void drop_client(sh_text_server_t *s, client_t *c)
{
    client_t **pp;

    for (pp = &s->clients; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    uv_close((uv_handle_t *) &c->tcp, on_client_closed);
}

static void chunk_release(chunk_t *chunk)
{
    if (chunk != NULL && --chunk->refs == 0)
        sh_free(chunk);
}

static void on_written(uv_write_t *req, int status)
{
    write_t *w = (write_t *) req;
    client_t *c = w->client;

    chunk_release(w->chunk);
    sh_free(w);
    if (status < 0 && status != UV_ECANCELED && !c->server->closing && !uv_is_closing((uv_handle_t *) &c->tcp))
        drop_client(c->server, c);  /* the client went away */
}

static void on_client_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    client_t *c = st->data;

    sh_free(buf->base);
    if (nread < 0 && !uv_is_closing((uv_handle_t *) st))
        drop_client(c->server, c);  /* EOF or error: whatever clients send is ignored */
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void) h;
    buf->base = sh_malloc(hint);
    buf->len = buf->base ? hint : 0;
}

static void on_connection(uv_stream_t *listener, int status)
{
    sh_text_server_t *s = listener->data;
    client_t *c;

    if (status < 0 || s->closing)
        return;
    c = sh_calloc(1, sizeof(*c));
    if (c == NULL)
        return;
    c->server = s;
    uv_tcp_init(listener->loop, &c->tcp);
    c->tcp.data = c;
    s->open_handles++;
    if (uv_accept(listener, (uv_stream_t *) &c->tcp) != 0) {
        uv_close((uv_handle_t *) &c->tcp, on_client_closed);
        return;
    }
    c->next = s->clients;
    s->clients = c;
    uv_read_start((uv_stream_t *) &c->tcp, on_alloc, on_client_read);
}

/* The bytes of n lines from line `first` on, wrapping around the text as often as needed:
 * a pointer into the text when they do not wrap (*chunk NULL), else a new chunk (one
 * reference, the caller's). NULL when out of memory. */
static const char *lines_bytes(sh_text_server_t *s, size_t first, uint64_t n, size_t *len,
                               chunk_t **chunk)
{
    size_t pos = 0, at = first;
    uint64_t left = n;
    chunk_t *c;

    *chunk = NULL;
    if (n <= s->nlines - first) {
        *len = s->starts[first + n] - s->starts[first];
        return s->text + s->starts[first];
    }
    *len = (size_t) (s->len - s->starts[first]);      /* to the end of the text */
    left -= s->nlines - first;
    *len += (size_t) (left / s->nlines) * s->len;     /* whole rounds */
    *len += s->starts[left % s->nlines];              /* the start of the text */
    c = sh_malloc(sizeof(*c) + *len);
    if (c == NULL)
        return NULL;
    c->refs = 1;
    left = n;
    while (left > 0) {
        size_t take = left < s->nlines - at ? (size_t) left : s->nlines - at;
        size_t bytes = s->starts[at + take] - s->starts[at];

        memcpy(c->data + pos, s->text + s->starts[at], bytes);
        pos += bytes;
        left -= take;
        at = (at + take) % s->nlines;
    }
    *chunk = c;
    return c->data;
}

/* Sends every client the lines that are due by now at the server's rate (wrapping around the
 * text). A loop that was held up catches up by at most one second of lines; the rest is
 * skipped, as it is when no client listens. */
static void on_tick(uv_timer_t *t)
{
    sh_text_server_t *s = t->data;
    double elapsed = (double) (uv_hrtime() - s->start_ns) / 1e9;
    uint64_t due = (uint64_t) (elapsed * s->rate), n, burst;
    const char *bytes;
    size_t len, first = s->next;
    chunk_t *chunk;
    client_t *c;

    if (due <= s->due)
        return;
    n = due - s->due;
    s->due = due;
    burst = s->rate < 1 ? 1 : (uint64_t) s->rate;
    if (n > burst) {
        first = (size_t) ((first + (n - burst)) % s->nlines);
        n = burst;
    }
    s->next = (size_t) ((first + n) % s->nlines);
    if (s->clients == NULL)
        return;
    bytes = lines_bytes(s, first, n, &len, &chunk);
    if (bytes == NULL)
        return;  /* out of memory: this tick's lines are skipped */
    for (c = s->clients; c; c = c->next) {
        write_t *w;
        uv_buf_t buf = uv_buf_init((char *) bytes, (unsigned) len);

        if (c->tcp.write_queue_size > MAX_BACKLOG)
            continue;
        w = sh_malloc(sizeof(*w));
        if (w == NULL)
            continue;
        w->client = c;
        w->chunk = chunk;
        if (uv_write(&w->req, (uv_stream_t *) &c->tcp, &buf, 1, on_written) != 0) {
            sh_free(w);
            continue;
        }
        if (chunk != NULL)
            chunk->refs++;
    }
    chunk_release(chunk);
}

/* Indexes the lines of s->text: starts[i] is where line i begins. 0 or SH_ENOMEM. */
static int index_lines(sh_text_server_t *s)
{
    size_t i, n = 0;

    for (i = 0; i < s->len; i++)
        n += s->text[i] == '\n';
    s->starts = sh_malloc((n + 1) * sizeof(*s->starts));
    if (s->starts == NULL)
        return SH_ENOMEM;
    s->nlines = n;
    s->starts[0] = 0;
    for (i = 0, n = 0; i < s->len; i++)
        if (s->text[i] == '\n')
            s->starts[++n] = i + 1;
    return 0;
}

/* Serves `text` (copied; a missing final '\n' is added) on 127.0.0.1:port (0 = any free port,
 * stored in *bound_port), lines_per_second lines a second (any rate above 0; fractions
 * allowed) to every client, from the first line on, round and round. NULL with *errmsg (free
 * with sh_ffi_free) on failure. Driver thread; stop with sh_ffi_text_server_stop(). */
SH_EXPORT sh_text_server_t *sh_ffi_text_server_start(sh_host_t *h, const char *text, size_t len,
                                                     double lines_per_second, int port,
                                                     int *bound_port, char **errmsg)
{
    sh_text_server_t *s;
    struct sockaddr_in addr;
    struct sockaddr_storage name;
    int namelen = sizeof(name), err;
    uint64_t tick_ms;
    char buf[256];

    *errmsg = NULL;
    if (len == 0 || !(lines_per_second > 0 && lines_per_second <= 1e9)) {
        *errmsg = sh__strdup("the text server needs some text and a rate above 0 lines a second");
        return NULL;
    }
    s = sh_calloc(1, sizeof(*s));
    if (s == NULL || (s->text = sh_malloc(len + 1)) == NULL) {
        sh_free(s);
        *errmsg = sh__strdup("out of memory");
        return NULL;
    }
    memcpy(s->text, text, len);
    if (text[len - 1] != '\n')
        s->text[len++] = '\n';
    s->len = len;
    if (index_lines(s) != 0) {
        sh_free(s->text);
        sh_free(s);
        *errmsg = sh__strdup("out of memory");
        return NULL;
    }
    s->rate = lines_per_second;
    uv_tcp_init(h->loop, &s->listener);
    uv_timer_init(h->loop, &s->tick);
    s->listener.data = s->tick.data = s;
    s->open_handles = 2;
    uv_ip4_addr("127.0.0.1", port, &addr);
    err = uv_tcp_bind(&s->listener, (const struct sockaddr *) &addr, 0);
    if (err == 0)
        err = uv_listen((uv_stream_t *) &s->listener, 16, on_connection);
    if (err == 0)
        err = uv_tcp_getsockname(&s->listener, (struct sockaddr *) &name, &namelen);
    if (err) {
        snprintf(buf, sizeof buf, "cannot listen on 127.0.0.1:%d: %s", port, uv_strerror(err));
        *errmsg = sh__strdup(buf);
        s->closing = 1;
        uv_close((uv_handle_t *) &s->listener, on_handle_closed);
        uv_close((uv_handle_t *) &s->tick, on_handle_closed);
        return NULL;
    }
    *bound_port = ntohs(((struct sockaddr_in *) &name)->sin_port);
    /* About one line a tick at low rates; at high rates a tick's lines go out in one write. */
    tick_ms = (uint64_t) (1000.0 / lines_per_second);
    if (tick_ms < MIN_TICK_MS)
        tick_ms = MIN_TICK_MS;
    if (tick_ms > MAX_TICK_MS)
        tick_ms = MAX_TICK_MS;
    s->start_ns = uv_hrtime();
    uv_timer_start(&s->tick, on_tick, tick_ms, tick_ms);
    return s;
}

/* Closes the listener and every client; the server is freed once the loop has closed them. */
SH_EXPORT void sh_ffi_text_server_stop(sh_text_server_t *s)
{
    client_t *c, *next;

    if (s == NULL || s->closing)
        return;
    s->closing = 1;
    for (c = s->clients; c; c = next) {
        next = c->next;
        uv_close((uv_handle_t *) &c->tcp, on_client_closed);
    }
    s->clients = NULL;
    uv_close((uv_handle_t *) &s->listener, on_handle_closed);
    uv_close((uv_handle_t *) &s->tick, on_handle_closed);
}
