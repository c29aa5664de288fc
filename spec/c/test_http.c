/* test_http.c: the status server's HTTP (host/sh_http.c): the strict request-head parser case
 * by case, then a real server on 127.0.0.1: a reply, a slow client's 408, the connection cap's
 * 503, bind errors that name the address, and a stop with connections still open. */
#include "sh_common.h"
#include "sh_http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"

/* Parses a copy of `head` (the parser writes NULs into its buffer). */
static int parse(const char *head, sh_http_request_t *req)
{
    static char buf[20000];
    size_t len = strlen(head);

    memcpy(buf, head, len + 1);
    return sh__http_parse(buf, len, NULL, req);
}

static void test_parser_takes_a_good_head_and_splits_path_and_query(void)
{
    sh_http_request_t req;

    CHECK(parse("GET /api/v1/x?status=COMPLETED HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n", &req) == 0,
          "a good head");
    CHECK(strcmp(req.method, "GET") == 0 && strcmp(req.path, "/api/v1/x") == 0, "%s %s", req.method, req.path);
    CHECK(strcmp(req.query, "status=COMPLETED") == 0 && req.minor == 1, "%s", req.query);
    CHECK(parse("HEAD / HTTP/1.0\r\n\r\n", &req) == 0 && req.minor == 0 && strcmp(req.query, "") == 0,
          "HTTP/1.0 needs no Host");
    CHECK(parse("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", &req) == 0, "an empty body");
    OK();
}

static void test_parser_asks_for_more_until_the_head_ends(void)
{
    sh_http_request_t req;

    CHECK(parse("", &req) == 1, "nothing yet");
    CHECK(parse("GET / HTTP/1.1\r\nHost: h\r\n", &req) == 1, "no empty line yet");
    CHECK(parse("GET / HTTP/1.1\r", &req) == 1, "a CR at the end may be followed by its LF");
    OK();
}

static void test_parser_refuses_bad_heads_with_their_status(void)
{
    static const struct { const char *head; int status; } cases[] = {
        { "GET / HTTP/1.1\r\n\r\n", 400 },                         /* HTTP/1.1 without Host */
        { "GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", 400 },
        { "GET / HTTP/1.2\r\nHost: a\r\n\r\n", 400 },
        { "GET / HTTP/2\r\nHost: a\r\n\r\n", 400 },
        { "GET /  HTTP/1.1\r\nHost: a\r\n\r\n", 400 },
        { "GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400 },
        { "GET http://x/ HTTP/1.1\r\nHost: a\r\n\r\n", 400 },
        { "GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n", 400 },
        { " GET / HTTP/1.1\r\nHost: a\r\n\r\n", 400 },
        { "GET / HTTP/1.1\nHost: a\n\n", 400 },                    /* bare LF, refused at once */
        { "GET / HTTP/1.1\rX", 400 },                              /* bare CR */
        { "GET / HTTP/1.1\r\nHost: a\r\n continued\r\n\r\n", 400 },
        { "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400 },
        { "GET / HTTP/1.1\r\n: a\r\nHost: a\r\n\r\n", 400 },
        { "GET / HTTP/1.1\r\nHost: a\x01\r\n\r\n", 400 },
        { "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1x\r\n\r\n", 400 },
        { "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\n\r\n", 413 },
        { "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", 413 },
        { "POST / HTTP/1.1\r\nHost: a\r\n\r\n", 405 },
        { "OPTIONS / HTTP/1.1\r\nHost: a\r\n\r\n", 405 },
        { "VERYLONGMETHODNAME / HTTP/1.1\r\nHost: a\r\n\r\n", 400 },
    };
    sh_http_request_t req;
    size_t i;

    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = parse(cases[i].head, &req);
        CHECK(rc == cases[i].status, "case %zu (%.40s): %d, expected %d", i, cases[i].head, rc,
              cases[i].status);
    }
    OK();
}

static void test_parser_limits_the_head_line_and_header_count(void)
{
    static char head[20000];
    sh_http_request_t req;
    int i;

    memset(head, 'a', 9000);
    memcpy(head, "GET /", 5);
    head[9000] = '\0';
    CHECK(parse(head, &req) == 414, "a request line longer than the head limit");
    snprintf(head, sizeof head, "GET / HTTP/1.1\r\nHost: a\r\nX: %09000d\r\n\r\n", 0);
    CHECK(parse(head, &req) == 431, "a header past the head limit");
    strcpy(head, "GET / HTTP/1.1\r\nHost: a\r\n");
    for (i = 0; i < 64; i++)
        strcat(head, "X: y\r\n");
    strcat(head, "\r\n");
    CHECK(parse(head, &req) == 431, "65 headers");
    OK();
}

/* -- A real server -------------------------------------------------------------------------- */

static void hello(void *ud, const sh_http_request_t *req, sh_http_reply_t *r)
{
    (void) ud;
    r->status = strcmp(req->path, "/hello") == 0 ? 200 : 404;
    r->body = sh__strdup(r->status == 200 ? "hello\n" : "no\n");
    r->len = strlen(r->body);
}

static int connect_to(int port)
{
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t) port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *) &sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Reads until the server closes or timeout_ms passes; returns the bytes read (NUL-ended). */
static const char *read_reply(int fd, int timeout_ms)
{
    static char buf[8192];
    size_t len = 0;
    struct pollfd p = { fd, POLLIN, 0 };

    while (len < sizeof buf - 1 && poll(&p, 1, timeout_ms) == 1) {
        ssize_t n = read(fd, buf + len, sizeof buf - 1 - len);
        if (n <= 0)
            break;
        len += (size_t) n;
    }
    buf[len] = '\0';
    return buf;
}

static const char *request(int port, const char *req)
{
    int fd = connect_to(port);
    const char *reply;

    if (fd < 0)
        return "(no connection)";
    if (write(fd, req, strlen(req)) < 0)
        return "(write failed)";
    reply = read_reply(fd, 5000);
    close(fd);
    return reply;
}

static void test_server_answers_and_refuses_on_real_sockets(void)
{
    sh_http_limits_t lim = { 0, 0, 0, 10000 };
    char *err = NULL;
    sh_http_t *srv = sh_http_start(NULL, 0, &lim, hello, NULL, &err);
    const char *r;

    CHECK(srv != NULL, "start: %s", err);
    r = request(sh_http_port(srv), "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK(strncmp(r, "HTTP/1.1 200 OK\r\n", 17) == 0 && strstr(r, "\r\n\r\nhello\n") != NULL, "%s", r);
    CHECK(strstr(r, "Content-Length: 6\r\n") != NULL && strstr(r, "Connection: close\r\n") != NULL, "%s", r);
    r = request(sh_http_port(srv), "HEAD /hello HTTP/1.0\r\n\r\n");
    CHECK(strstr(r, "Content-Length: 6\r\n") != NULL && strstr(r, "hello") == NULL, "HEAD: %s", r);
    r = request(sh_http_port(srv), "GET /other HTTP/1.0\r\n\r\n");
    CHECK(strncmp(r, "HTTP/1.1 404 ", 13) == 0, "%s", r);
    r = request(sh_http_port(srv), "PUT /hello HTTP/1.0\r\n\r\n");
    CHECK(strncmp(r, "HTTP/1.1 405 ", 13) == 0 && strstr(r, "Allow: GET, HEAD\r\n") != NULL, "%s", r);
    sh_http_stop(srv);
    OK();
}

static void test_a_slow_client_gets_408_and_the_cap_gives_503(void)
{
    sh_http_limits_t lim = { 0, 0, 2, 300 };
    char *err = NULL;
    sh_http_t *srv = sh_http_start("127.0.0.1", 0, &lim, hello, NULL, &err);
    int a, b, c;
    const char *r;

    CHECK(srv != NULL, "start: %s", err);
    a = connect_to(sh_http_port(srv));
    b = connect_to(sh_http_port(srv));
    CHECK(a >= 0 && b >= 0, "two connections");
    CHECK(write(a, "GET /hel", 8) == 8, "a partial head");
    usleep(50 * 1000);  /* the server accepts a and b before c */
    c = connect_to(sh_http_port(srv));
    r = read_reply(c, 5000);
    CHECK(strncmp(r, "HTTP/1.1 503 ", 13) == 0, "a third connection over the cap of 2: %s", r);
    close(c);
    r = read_reply(a, 5000);
    CHECK(strncmp(r, "HTTP/1.1 408 ", 13) == 0, "a head not finished in 300 ms: %s", r);
    close(a);
    r = read_reply(b, 5000);
    CHECK(strncmp(r, "HTTP/1.1 408 ", 13) == 0, "a client that sends nothing: %s", r);
    close(b);
    r = request(sh_http_port(srv), "GET /hello HTTP/1.0\r\n\r\n");
    CHECK(strncmp(r, "HTTP/1.1 200 ", 13) == 0, "room again after they left: %s", r);
    sh_http_stop(srv);
    OK();
}

static void test_bind_errors_name_the_address(void)
{
    char *err = NULL;
    sh_http_t *srv = sh_http_start("127.0.0.1", 0, NULL, hello, NULL, &err), *again;

    CHECK(srv != NULL, "start: %s", err);
    again = sh_http_start("127.0.0.1", sh_http_port(srv), NULL, hello, NULL, &err);
    CHECK(again == NULL && err != NULL && strstr(err, "127.0.0.1:") && strstr(err, "address already in use"),
          "%s", err ? err : "(none)");
    sh_free(err);
    err = NULL;
    again = sh_http_start("status.example", 80, NULL, hello, NULL, &err);
    CHECK(again == NULL && err != NULL && strstr(err, "status.example:80: not an IP address"), "%s",
          err ? err : "(none)");
    sh_free(err);
    sh_http_stop(srv);
    OK();
}

static void test_stop_closes_open_connections(void)
{
    char *err = NULL;
    sh_http_t *srv = sh_http_start(NULL, 0, NULL, hello, NULL, &err);
    int a, b;

    CHECK(srv != NULL, "start: %s", err);
    a = connect_to(sh_http_port(srv));
    b = connect_to(sh_http_port(srv));
    CHECK(write(b, "GET /", 5) == 5, "a partial head");
    usleep(50 * 1000);
    sh_http_stop(srv);  /* must return, and free what the connections held (ASan checks) */
    CHECK(strcmp(read_reply(a, 2000), "") == 0, "a closed connection");
    close(a);
    close(b);
    OK();
}

int main(void)
{
    test_parser_takes_a_good_head_and_splits_path_and_query();
    test_parser_asks_for_more_until_the_head_ends();
    test_parser_refuses_bad_heads_with_their_status();
    test_parser_limits_the_head_line_and_header_count();
    test_server_answers_and_refuses_on_real_sockets();
    test_a_slow_client_gets_408_and_the_cap_gives_503();
    test_bind_errors_name_the_address();
    test_stop_closes_open_connections();
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
