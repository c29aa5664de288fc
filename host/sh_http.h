/* sh_http.h: a small, strict HTTP/1.1 server for the status page and metrics. It runs on a
 * thread and a libuv loop of its own, so it answers while the driver state is busy. */
#ifndef SH_HTTP_H
#define SH_HTTP_H

#include <stddef.h>

typedef struct sh_http_s sh_http_t;

/* A parsed request head; the strings point into the connection's buffer and are valid during
 * the handler call only. */
typedef struct {
    const char *method;     /* "GET" or "HEAD" by the time a handler sees it */
    const char *path;       /* starts with '/', no query */
    const char *query;      /* after '?', or "" */
    int minor;              /* HTTP/1.<minor> */
} sh_http_request_t;

/* What a handler answers. The server sends it and then frees `body` with sh_free unless
 * `borrowed` is set (then the bytes must outlive the server, e.g. a preloaded asset). */
typedef struct {
    int status;
    const char *type;       /* Content-Type; NULL for text/plain */
    const char *headers;    /* extra header lines, each ending in CRLF; static; NULL for none */
    char *body;
    size_t len;
    int borrowed;
} sh_http_reply_t;

/* Called on the server's thread for every well-formed GET or HEAD request; fills `reply`
 * (status 0 counts as 500). Must not block for long: the server answers one request at a time. */
typedef void (*sh_http_handler_cb)(void *ud, const sh_http_request_t *req, sh_http_reply_t *reply);

typedef struct {
    size_t max_head;        /* request line plus headers, bytes (default 8192) */
    int max_headers;        /* header lines (default 64) */
    int max_conns;          /* open connections; more get 503 (default 64) */
    int timeout_ms;         /* to receive a whole request head, and again to send the reply
                               (default 10000) */
} sh_http_limits_t;

/* Binds addr:port (an IPv4 or IPv6 literal, or "localhost"; port 0 picks a free port) and
 * starts serving on a new thread. `limits` may be NULL for the defaults. Returns NULL with
 * *errmsg (free with sh_free) naming the address and the cause on failure. The caller owns
 * the server until sh_http_stop(); `ud` must outlive it. Any thread. */
sh_http_t *sh_http_start(const char *addr, int port, const sh_http_limits_t *limits,
                         sh_http_handler_cb cb, void *ud, char **errmsg);

/* The port the server listens on. Any thread. */
int sh_http_port(const sh_http_t *srv);

/* Closes the listener and every connection, joins the server's thread and frees the server.
 * Not from the server's own thread (not from a handler). NULL is ignored. */
void sh_http_stop(sh_http_t *srv);

/* Parses a request head in buf[0..len) (buf[len] must be NUL). Returns 0 when it is complete and valid (req filled;
 * buf is modified in place: NULs end the method, path and query), 1 when more bytes are
 * needed, or the HTTP status (4xx) to refuse it with. For the server and its tests. */
int sh__http_parse(char *buf, size_t len, const sh_http_limits_t *limits, sh_http_request_t *req);

/* The reason phrase of a status code ("Not Found"). */
const char *sh__http_reason(int status);

#endif
