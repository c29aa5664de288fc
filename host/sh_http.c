/* sh_http.c: the status server's HTTP/1.1: strict request-head parsing with limits, and a
 * libuv server on a thread of its own (one request per connection, then close). */
#include "sh_http.h"
#include "sh_buf.h"
#include "sh_common.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#define LINGER_MS 1000  /* after the reply: how long unread client bytes are drained */

/* -- Parsing -------------------------------------------------------------------------------- */

static int is_tchar(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int ieq(const char *a, size_t alen, const char *b)
{
    return alen == strlen(b) && strncasecmp(a, b, alen) == 0;
}

static void limits_or_defaults(const sh_http_limits_t *in, sh_http_limits_t *out)
{
    out->max_head = in && in->max_head ? in->max_head : 8192;
    out->max_headers = in && in->max_headers ? in->max_headers : 64;
    out->max_conns = in && in->max_conns ? in->max_conns : 64;
    out->timeout_ms = in && in->timeout_ms ? in->timeout_ms : 10000;
}

/* Checks one header line (name: value), counting Host and refusing bodies. */
static int parse_header(const char *p, size_t n, int *hosts)
{
    size_t i = 0, v;

    while (i < n && is_tchar((unsigned char) p[i]))
        i++;
    if (i == 0 || i == n || p[i] != ':')
        return 400;  /* no name, a space before the colon, or a folded line */
    for (v = i + 1; v < n; v++) {
        unsigned char c = (unsigned char) p[v];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return 400;
    }
    if (ieq(p, i, "Host"))
        (*hosts)++;
    if (ieq(p, i, "Transfer-Encoding"))
        return 413;  /* this server takes no request bodies */
    if (ieq(p, i, "Content-Length")) {
        size_t k = i + 1, digits = 0;
        int nonzero = 0;
        while (k < n && (p[k] == ' ' || p[k] == '\t'))
            k++;
        for (; k < n && p[k] >= '0' && p[k] <= '9'; k++, digits++)
            nonzero |= p[k] != '0';
        while (k < n && (p[k] == ' ' || p[k] == '\t'))
            k++;
        if (digits == 0 || k != n)
            return 400;
        if (nonzero)
            return 413;
    }
    return 0;
}

int sh__http_parse(char *buf, size_t len, const sh_http_limits_t *limits, sh_http_request_t *req)
{
    sh_http_limits_t lim;
    char *end = NULL, *line, *sp1, *sp2, *eol, *q;
    size_t i;
    int nheaders = 0, hosts = 0, rc;

    limits_or_defaults(limits, &lim);
    /* Bytes that can never be part of a good head are refused as soon as they arrive. */
    for (i = 0; i < len; i++) {
        if (buf[i] == '\0' || (buf[i] == '\n' && (i == 0 || buf[i - 1] != '\r')))
            return 400;
        if (buf[i] == '\r' && i + 1 < len && buf[i + 1] != '\n')
            return 400;
        if (end == NULL && i >= 3 && memcmp(buf + i - 3, "\r\n\r\n", 4) == 0)
            end = buf + i + 1;
    }
    if (end == NULL) {
        if (len < lim.max_head)
            return 1;
        return memchr(buf, '\n', len) == NULL ? 414 : 431;
    }
    if ((size_t) (end - buf) > lim.max_head)
        return memchr(buf, '\n', lim.max_head) == NULL ? 414 : 431;

    /* Request line: METHOD SP origin-form SP HTTP/1.x CRLF */
    eol = strstr(buf, "\r\n");
    for (line = buf; line < eol && is_tchar((unsigned char) *line); line++)
        ;
    sp1 = line;
    if (sp1 == buf || sp1 >= eol || *sp1 != ' ' || sp1 - buf > 15)
        return 400;
    sp2 = sp1 + 1;
    if (*sp2 != '/')
        return 400;  /* only origin-form targets: "/path?query" */
    while (sp2 < eol && (unsigned char) *sp2 > 0x20 && (unsigned char) *sp2 < 0x7f)
        sp2++;
    if (sp2 >= eol || *sp2 != ' ' || eol - sp2 != 9 || memcmp(sp2 + 1, "HTTP/1.", 7) != 0 ||
        (sp2[8] != '0' && sp2[8] != '1'))
        return 400;
    req->minor = sp2[8] - '0';

    /* Header lines up to the empty one. */
    for (line = eol + 2; line < end - 2; line = eol + 2) {
        eol = strstr(line, "\r\n");
        if (++nheaders > lim.max_headers)
            return 431;
        if ((rc = parse_header(line, (size_t) (eol - line), &hosts)) != 0)
            return rc;
    }
    if (hosts > 1 || (req->minor == 1 && hosts == 0))
        return 400;  /* RFC 9112 3.2: exactly one Host in HTTP/1.1 */

    *sp1 = '\0';
    *sp2 = '\0';
    req->method = buf;
    req->path = sp1 + 1;
    q = strchr(sp1 + 1, '?');
    if (q != NULL) {
        *q = '\0';
        req->query = q + 1;
    } else {
        req->query = "";
    }
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0)
        return 405;
    return 0;
}

const char *sh__http_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
    default: return status < 500 ? "Bad Request" : "Internal Server Error";
    }
}

/* -- Server ------------------------------------------------------------------------------------ */

typedef struct conn_s {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t write;
    uv_shutdown_t shutdown;
    struct sh_http_s *srv;
    struct conn_s *prev, *next;
    int handles;            /* open handles (tcp, timer); freed when both are closed */
    int replied;
    char *out;              /* the reply being written */
    size_t len;
    char buf[];             /* max_head bytes plus a NUL */
} conn_t;

struct sh_http_s {
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_async_t stop;
    uv_thread_t thread;
    sh_http_limits_t lim;
    sh_http_handler_cb cb;
    void *ud;
    int port;
    int nconns;
    conn_t *conns;
};

static void on_conn_handle_closed(uv_handle_t *h)
{
    conn_t *c = h->data;

    if (--c->handles > 0)
        return;
    sh_free(c->out);
    sh_free(c);
}

static void conn_close(conn_t *c)
{
    if (uv_is_closing((uv_handle_t *) &c->tcp))
        return;
    if (c->prev)
        c->prev->next = c->next;
    else
        c->srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->srv->nconns--;
    uv_close((uv_handle_t *) &c->tcp, on_conn_handle_closed);
    uv_close((uv_handle_t *) &c->timer, on_conn_handle_closed);
}

static void on_linger_timeout(uv_timer_t *t)
{
    conn_close(t->data);
}

static void on_discard_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    conn_t *c = h->data;

    (void) hint;
    *b = uv_buf_init(c->buf, (unsigned) c->srv->lim.max_head);
}

/* After the reply: bytes the client still sends are read and dropped until it closes (or the
 * linger timer fires), so the kernel does not reset the connection under the reply. */
static void on_discard_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    (void) b;
    if (n < 0)
        conn_close(s->data);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    conn_t *c = req->data;

    if (status < 0 || uv_read_start((uv_stream_t *) &c->tcp, on_discard_alloc, on_discard_read))
        conn_close(c);
}

static void on_written(uv_write_t *req, int status)
{
    conn_t *c = req->data;

    if (uv_is_closing((uv_handle_t *) &c->tcp))
        return;
    if (status < 0 || uv_shutdown(&c->shutdown, (uv_stream_t *) &c->tcp, on_shutdown) != 0) {
        conn_close(c);
        return;
    }
    uv_timer_start(&c->timer, on_linger_timeout, LINGER_MS, 0);
}

static void on_reply_timeout(uv_timer_t *t)
{
    conn_close(t->data);  /* a client that does not read its reply */
}

/* Sends the reply and frees its body (unless borrowed); the connection closes after it. */
static void send_reply(conn_t *c, sh_http_reply_t *r, int head_only)
{
    sh_buf_t b;
    uv_buf_t out;

    c->replied = 1;
    uv_read_stop((uv_stream_t *) &c->tcp);
    if (r->status == 0)
        r->status = 500;
    sh_buf_init(&b);
    sh_buf_printf(&b,
                  "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                  "Connection: close\r\nCache-Control: no-store\r\n"
                  "X-Content-Type-Options: nosniff\r\n%s\r\n",
                  r->status, sh__http_reason(r->status),
                  r->type ? r->type : "text/plain; charset=utf-8", r->len,
                  r->headers ? r->headers : "");
    if (!head_only && r->len > 0)
        sh_buf_add(&b, r->body, r->len);
    if (!r->borrowed)
        sh_free(r->body);
    r->body = NULL;
    c->out = sh_buf_take(&b, &c->len);
    if (c->out == NULL) {
        conn_close(c);
        return;
    }
    out = uv_buf_init(c->out, (unsigned) c->len);
    uv_timer_start(&c->timer, on_reply_timeout, (uint64_t) c->srv->lim.timeout_ms, 0);
    if (uv_write(&c->write, (uv_stream_t *) &c->tcp, &out, 1, on_written) != 0)
        conn_close(c);
}

/* A refusal: the status and its reason phrase as the body. */
static void send_error(conn_t *c, int status)
{
    sh_http_reply_t r;
    char *body = NULL;

    memset(&r, 0, sizeof r);
    r.status = status;
    r.headers = status == 405 ? "Allow: GET, HEAD\r\n" : NULL;
    sh_buf_t b;
    sh_buf_init(&b);
    sh_buf_printf(&b, "%d %s\n", status, sh__http_reason(status));
    body = sh_buf_take(&b, &r.len);
    r.body = body;
    send_reply(c, &r, 0);
}

static void on_head_timeout(uv_timer_t *t)
{
    send_error(t->data, 408);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    conn_t *c = h->data;

    (void) hint;
    /* Room for the rest of the head; reads stop once a head is parsed or refused. */
    *b = uv_buf_init(c->buf + c->len, (unsigned) (c->srv->lim.max_head - c->len));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    conn_t *c = s->data;
    sh_http_request_t req;
    sh_http_reply_t reply;
    int rc;

    (void) b;
    if (n == 0 || c->replied)
        return;
    if (n < 0) {
        conn_close(c);  /* EOF or an error before a whole head: nobody to answer */
        return;
    }
    c->len += (size_t) n;
    c->buf[c->len] = '\0';
    rc = sh__http_parse(c->buf, c->len, &c->srv->lim, &req);
    if (rc == 1)
        return;
    if (rc != 0) {
        send_error(c, rc);
        return;
    }
    uv_timer_stop(&c->timer);
    memset(&reply, 0, sizeof reply);
    c->srv->cb(c->srv->ud, &req, &reply);
    send_reply(c, &reply, strcmp(req.method, "HEAD") == 0);
}

static void on_connection(uv_stream_t *l, int status)
{
    struct sh_http_s *srv = l->data;
    conn_t *c;

    if (status < 0)
        return;
    c = sh_calloc(1, sizeof(*c) + srv->lim.max_head + 1);
    if (c == NULL)
        return;  /* the pending connection stays in the backlog until memory allows */
    c->srv = srv;
    uv_tcp_init(&srv->loop, &c->tcp);
    uv_timer_init(&srv->loop, &c->timer);
    c->tcp.data = c->timer.data = c->write.data = c->shutdown.data = c;
    c->handles = 2;
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->nconns++;
    if (uv_accept(l, (uv_stream_t *) &c->tcp) != 0) {
        conn_close(c);
        return;
    }
    if (srv->nconns > srv->lim.max_conns) {
        send_error(c, 503);
        return;
    }
    uv_timer_start(&c->timer, on_head_timeout, (uint64_t) srv->lim.timeout_ms, 0);
    if (uv_read_start((uv_stream_t *) &c->tcp, on_alloc, on_read) != 0)
        conn_close(c);
}

static void on_stop(uv_async_t *a)
{
    struct sh_http_s *srv = a->data;

    while (srv->conns)
        conn_close(srv->conns);
    uv_close((uv_handle_t *) &srv->listener, NULL);
    uv_close((uv_handle_t *) &srv->stop, NULL);
}

static void serve(void *arg)
{
    struct sh_http_s *srv = arg;
    sigset_t pipe;

    /* A client that goes away mid-reply must fail the write (EPIPE), not kill an embedder
     * that never ignored SIGPIPE. */
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, NULL);
    uv_run(&srv->loop, UV_RUN_DEFAULT);
}

static char *bind_error(const char *addr, int port, const char *what, int rc)
{
    char msg[512];

    snprintf(msg, sizeof msg, "status server %s:%d: %s%s%s", addr, port, what,
             rc ? ": " : "", rc ? uv_strerror(rc) : "");
    return sh__strdup(msg);
}

sh_http_t *sh_http_start(const char *addr, int port, const sh_http_limits_t *limits,
                         sh_http_handler_cb cb, void *ud, char **errmsg)
{
    struct sh_http_s *srv;
    struct sockaddr_storage sa;
    int namelen = sizeof sa, rc;

    *errmsg = NULL;
    if (addr == NULL || strcmp(addr, "localhost") == 0 || addr[0] == '\0')
        addr = "127.0.0.1";
    if (port < 0 || port > 65535) {
        *errmsg = bind_error(addr, port, "the port must be 0 to 65535", 0);
        return NULL;
    }
    if (uv_ip4_addr(addr, port, (struct sockaddr_in *) &sa) != 0 &&
        uv_ip6_addr(addr, port, (struct sockaddr_in6 *) &sa) != 0) {
        *errmsg = bind_error(addr, port, "not an IP address (give one such as 127.0.0.1)", 0);
        return NULL;
    }
    if ((srv = sh_calloc(1, sizeof(*srv))) == NULL) {
        *errmsg = bind_error(addr, port, "out of memory", 0);
        return NULL;
    }
    limits_or_defaults(limits, &srv->lim);
    srv->cb = cb;
    srv->ud = ud;
    if ((rc = uv_loop_init(&srv->loop)) != 0) {
        *errmsg = bind_error(addr, port, "cannot make its loop", rc);
        sh_free(srv);
        return NULL;
    }
    uv_tcp_init(&srv->loop, &srv->listener);
    srv->listener.data = srv;
    if ((rc = uv_tcp_bind(&srv->listener, (struct sockaddr *) &sa, 0)) != 0 ||
        (rc = uv_listen((uv_stream_t *) &srv->listener, 128, on_connection)) != 0) {
        *errmsg = bind_error(addr, port, "cannot listen", rc);
        goto fail_close;
    }
    uv_tcp_getsockname(&srv->listener, (struct sockaddr *) &sa, &namelen);
    srv->port = ntohs(sa.ss_family == AF_INET6 ? ((struct sockaddr_in6 *) &sa)->sin6_port
                                               : ((struct sockaddr_in *) &sa)->sin_port);
    if ((rc = uv_async_init(&srv->loop, &srv->stop, on_stop)) != 0) {
        *errmsg = bind_error(addr, port, "cannot make its stop handle", rc);
        goto fail_close;
    }
    srv->stop.data = srv;
    if ((rc = uv_thread_create(&srv->thread, serve, srv)) != 0) {
        *errmsg = bind_error(addr, port, "cannot start its thread", rc);
        uv_close((uv_handle_t *) &srv->stop, NULL);
        goto fail_close;
    }
    return srv;

fail_close:
    uv_close((uv_handle_t *) &srv->listener, NULL);
    uv_run(&srv->loop, UV_RUN_DEFAULT);
    uv_loop_close(&srv->loop);
    sh_free(srv);
    return NULL;
}

int sh_http_port(const sh_http_t *srv)
{
    return srv->port;
}

void sh_http_stop(sh_http_t *srv)
{
    if (srv == NULL)
        return;
    uv_async_send(&srv->stop);
    uv_thread_join(&srv->thread);
    uv_loop_close(&srv->loop);
    sh_free(srv);
}
