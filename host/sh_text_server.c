/* sh_text_server.c: a small TCP server on the driver loop that serves the lines of a text to
 * every client at a steady rate, round and round: the built-in source of the demo job and of
 * examples that need no outside server (an extension beyond pyspark, like `nc -lk`). */
#include "sh_common.h"
#include "sh_host.h"

#include <stdio.h>
#include <string.h>

#define SH_EXPORT __attribute__((visibility("default")))
#define MAX_BACKLOG (1u << 20)  /* a client this far behind is skipped until it catches up */

typedef struct client_s {
    uv_tcp_t tcp;
    struct client_s *next;
    struct sh_text_server_s *server;
} client_t;

typedef struct sh_text_server_s {
    uv_tcp_t listener;
    uv_timer_t tick;
    char *text;        /* the lines, each ending in '\n' */
    size_t len, pos;   /* pos: where the next tick's lines start */
    int lines_per_tick;
    client_t *clients;
    int open_handles;  /* freed when the last close callback has run */
    int closing;
} sh_text_server_t;

static void release(sh_text_server_t *s)
{
    if (--s->open_handles == 0) {
        sh_free(s->text);
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

static void on_written(uv_write_t *req, int status)
{
    client_t *c = req->data;

    sh_free(req);
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

/* Sends the next lines_per_tick lines (wrapping around) to every client. */
static void on_tick(uv_timer_t *t)
{
    sh_text_server_t *s = t->data;
    size_t start = s->pos, end = s->pos;
    int i;
    client_t *c;

    for (i = 0; i < s->lines_per_tick; i++) {
        const char *nl = memchr(s->text + end, '\n', s->len - end);
        end = (size_t) (nl - s->text) + 1;
        if (end >= s->len)
            break;
    }
    s->pos = end >= s->len ? 0 : end;
    for (c = s->clients; c; c = c->next) {
        uv_write_t *req;
        uv_buf_t buf = uv_buf_init(s->text + start, (unsigned) (end - start));

        if (c->tcp.write_queue_size > MAX_BACKLOG)
            continue;
        req = sh_malloc(sizeof(*req));
        if (req == NULL)
            continue;
        req->data = c;
        if (uv_write(req, (uv_stream_t *) &c->tcp, &buf, 1, on_written) != 0)
            sh_free(req);
    }
}

/* Serves `text` (copied; a missing final '\n' is added) on 127.0.0.1:port (0 = any free port,
 * stored in *bound_port), lines_per_tick lines every tick_ms. NULL with *errmsg (free with
 * sh_ffi_free) on failure. Driver thread; stop with sh_ffi_text_server_stop(). */
SH_EXPORT sh_text_server_t *sh_ffi_text_server_start(sh_host_t *h, const char *text, size_t len,
                                                     int lines_per_tick, int tick_ms, int port,
                                                     int *bound_port, char **errmsg)
{
    sh_text_server_t *s;
    struct sockaddr_in addr;
    struct sockaddr_storage name;
    int namelen = sizeof(name), err;
    char buf[256];

    *errmsg = NULL;
    if (len == 0 || lines_per_tick < 1 || tick_ms < 1) {
        *errmsg = sh__strdup("the text server needs some text, lines per tick >= 1 and a tick >= 1 ms");
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
    s->lines_per_tick = lines_per_tick;
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
    uv_timer_start(&s->tick, on_tick, (uint64_t) tick_ms, (uint64_t) tick_ms);
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
