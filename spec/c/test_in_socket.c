/* test_in_socket.c: tests sh_in_socket against real loopback servers (same loop or plain sockets). */
#include "sh_in_socket.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* -- Reporting ------------------------------------------------------------- */

static int g_passed, g_failed;
static char g_reason[512];

/* Records the first failure of the current test and jumps to its cleanup. */
#define ASSERT(cond)                                                        \
    do {                                                                    \
        if (!(cond)) {                                                      \
            fail_at(__LINE__, "%s", #cond);                                 \
            goto done;                                                      \
        }                                                                   \
    } while (0)

static void fail_at(int line, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (g_reason[0] != '\0')
        return;
    n = snprintf(g_reason, sizeof(g_reason), "line %d: ", line);
    va_start(ap, fmt);
    vsnprintf(g_reason + n, sizeof(g_reason) - (size_t) n, fmt, ap);
    va_end(ap);
}

static void report(const char *name)
{
    if (g_reason[0] == '\0') {
        printf("ok %s\n", name);
        g_passed++;
    } else {
        printf("not ok %s: %s\n", name, g_reason);
        g_failed++;
    }
    g_reason[0] = '\0';
    fflush(stdout);
}

static void sleep_ms(long ms)
{
    struct timespec ts;

    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;
    nanosleep(&ts, NULL);
}

/* -- Scripted loopback server ---------------------------------------------- */

enum { S_END, S_WRITE, S_SLEEP, S_CLOSE, S_RESET, S_REPEAT };

/* One action of a server connection. S_END keeps the connection open until the test ends. */
typedef struct {
    int op;
    const char *data;
    size_t len;
    unsigned long n;  /* ms for S_SLEEP, count for S_REPEAT */
} step_t;

#define W(str) { S_WRITE, str, sizeof(str) - 1, 0 }
#define SLEEP(ms) { S_SLEEP, NULL, 0, ms }
#define CLOSE { S_CLOSE, NULL, 0, 0 }
#define RESET { S_RESET, NULL, 0, 0 }
#define END { S_END, NULL, 0, 0 }

#define MAX_SCRIPTS 8
#define MAX_EVENTS 64

typedef struct harness_s harness_t;

typedef struct conn_s {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_shutdown_t shut;
    harness_t *h;
    const step_t *step;
    unsigned long repeat_left;
    int inflight;
    int handles;
    int closing;
    struct conn_s *next;
} conn_t;

typedef struct {
    uv_write_t req;
    conn_t *c;
    int repeat;
} wreq_t;

struct harness_s {
    uv_loop_t loop;
    int loop_rc;
    uv_tcp_t server;
    int server_open;
    int port;
    const step_t *scripts[MAX_SCRIPTS];
    size_t nscripts, nconns;
    conn_t *conns;
    uv_timer_t guard, closer;
    uv_idle_t idle;
    int idle_open;
    int close_at_iter, iter;      /* close the client after close_at_iter * 25 us (<0: never) */
    uint64_t t_start;
    unsigned long close_after_ms; /* close the client after this delay (0: never) */
    int close_on_event;           /* close the client from inside this event's callback */
    int close_on_lines;           /* close the client from inside the first lines callback */
    int listen_after_failures;    /* start listening after this many CONNECT_FAILED */

    sh_in_socket_t *in;
    int in_closed, stopped, late_calls, finishing, timed_out;

    /* What arrived. */
    int keep_text, check_chunks;
    char *text;
    size_t tlen, tcap, bytes, nlines, ncalls;
    char bad_chunk[160];
    int ev[MAX_EVENTS];
    uint64_t ev_ns[MAX_EVENTS];
    char ev_msg[MAX_EVENTS][200];
    size_t nev, nfailed;

    /* When to end: all the set conditions hold. */
    size_t want_bytes;
    int want_event, want_event_count, want_stopped;
};

static void finish(harness_t *h);

static void on_conn_closed(uv_handle_t *handle)
{
    conn_t *c = handle->data, **pp;

    if (--c->handles > 0)
        return;
    for (pp = &c->h->conns; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    free(c);
}

static void conn_close(conn_t *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    uv_close((uv_handle_t *) &c->tcp, on_conn_closed);
    uv_close((uv_handle_t *) &c->timer, on_conn_closed);
}

static void run_script(conn_t *c);

static void on_written(uv_write_t *req, int status)
{
    wreq_t *w = (wreq_t *) req;
    conn_t *c = w->c;
    int repeat = w->repeat;

    free(w);
    if (!repeat)
        return;
    c->inflight--;
    if (status < 0 || c->closing)
        return;
    if (c->repeat_left == 0 && c->inflight == 0) {
        c->step++;
        run_script(c);
    } else {
        run_script(c);
    }
}

static void conn_write(conn_t *c, const char *data, size_t len, int repeat)
{
    wreq_t *w = calloc(1, sizeof(*w));
    uv_buf_t buf = uv_buf_init((char *) data, (unsigned int) len);

    if (w == NULL)
        abort();
    w->c = c;
    w->repeat = repeat;
    if (uv_write(&w->req, (uv_stream_t *) &c->tcp, &buf, 1, on_written) != 0) {
        free(w);
        return;
    }
    if (repeat)
        c->inflight++;
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void) status;
    conn_close(req->data);
}

static void on_conn_timer(uv_timer_t *t)
{
    run_script(t->data);
}

/* Runs the connection's steps until one has to wait. */
static void run_script(conn_t *c)
{
    while (!c->closing && c->step != NULL) {
        const step_t *st = c->step;

        switch (st->op) {
        case S_END:
            return;
        case S_WRITE:
            conn_write(c, st->data, st->len, 0);
            c->step++;
            break;
        case S_SLEEP:
            c->step++;
            uv_timer_start(&c->timer, on_conn_timer, st->n, 0);
            return;
        case S_CLOSE:
            c->step = NULL;
            c->shut.data = c;
            if (uv_shutdown(&c->shut, (uv_stream_t *) &c->tcp, on_shutdown) != 0)
                conn_close(c);
            return;
        case S_RESET:
            c->step = NULL;
            c->closing = 1;
            if (uv_tcp_close_reset(&c->tcp, on_conn_closed) != 0)
                uv_close((uv_handle_t *) &c->tcp, on_conn_closed);
            uv_close((uv_handle_t *) &c->timer, on_conn_closed);
            return;
        case S_REPEAT:
            if (c->inflight == 0 && c->repeat_left == 0)
                c->repeat_left = st->n;
            while (c->inflight < 4 && c->repeat_left > 0) {
                c->repeat_left--;
                conn_write(c, st->data, st->len, 1);
            }
            return;
        }
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    harness_t *h = server->data;
    conn_t *c;

    if (status < 0)
        return;
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        abort();
    c->h = h;
    c->handles = 2;
    uv_tcp_init(&h->loop, &c->tcp);
    uv_timer_init(&h->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->next = h->conns;
    h->conns = c;
    if (uv_accept(server, (uv_stream_t *) &c->tcp) != 0 || h->finishing) {
        conn_close(c);
        return;
    }
    c->step = h->nconns < h->nscripts ? h->scripts[h->nconns] : NULL;
    h->nconns++;
    run_script(c);
}

/* -- Client callbacks ------------------------------------------------------- */

static int is_done(harness_t *h)
{
    if (h->want_bytes && h->bytes < h->want_bytes)
        return 0;
    if (h->want_event) {
        int n = 0;
        size_t i;

        for (i = 0; i < h->nev && i < MAX_EVENTS; i++)
            n += h->ev[i] == h->want_event;
        if (n < h->want_event_count)
            return 0;
    }
    if (h->want_stopped && !h->stopped)
        return 0;
    return h->want_bytes || h->want_event || h->want_stopped;
}

static void close_client(harness_t *h)
{
    if (h->in_closed)
        return;
    h->in_closed = 1;
    sh_in_socket_close(h->in);
}

/* An independent UTF-8 check for delivered chunks. */
static int valid_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        unsigned char b = s[i];
        uint32_t cp;
        size_t k, j;

        if (b < 0x80) {
            i++;
            continue;
        }
        if ((b & 0xE0) == 0xC0) {
            k = 1;
            cp = b & 0x1F;
        } else if ((b & 0xF0) == 0xE0) {
            k = 2;
            cp = b & 0x0F;
        } else if ((b & 0xF8) == 0xF0) {
            k = 3;
            cp = b & 0x07;
        } else {
            return 0;
        }
        for (j = 1; j <= k; j++) {
            if (i + j >= n || (s[i + j] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + j] & 0x3F);
        }
        if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) ||
            cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += k + 1;
    }
    return 1;
}

static void on_lines(void *ud, const char *lines, size_t len, size_t count)
{
    harness_t *h = ud;

    if (h->in_closed)
        h->late_calls++;
    h->ncalls++;
    h->nlines += count;
    h->bytes += len;
    if (h->check_chunks && h->bad_chunk[0] == '\0') {
        size_t nl = 0, i;

        for (i = 0; i < len; i++) {
            if (lines[i] == '\n') {
                nl++;
                if (i > 0 && lines[i - 1] == '\r')
                    snprintf(h->bad_chunk, sizeof(h->bad_chunk), "CR before LF at %zu", i);
            }
        }
        if (len == 0 || count == 0 || lines[len - 1] != '\n')
            snprintf(h->bad_chunk, sizeof(h->bad_chunk), "chunk of %zu bytes, %zu lines", len, count);
        else if (nl != count)
            snprintf(h->bad_chunk, sizeof(h->bad_chunk), "count %zu but %zu newlines", count, nl);
        else if (!valid_utf8((const unsigned char *) lines, len))
            snprintf(h->bad_chunk, sizeof(h->bad_chunk), "invalid UTF-8 delivered");
    }
    if (h->keep_text) {
        if (h->tlen + len > h->tcap) {
            size_t cap = h->tcap ? h->tcap : 4096;

            while (cap < h->tlen + len)
                cap *= 2;
            h->text = realloc(h->text, cap);
            if (h->text == NULL)
                abort();
            h->tcap = cap;
        }
        memcpy(h->text + h->tlen, lines, len);
        h->tlen += len;
    }
    if (h->close_on_lines)
        close_client(h);
    if (!h->finishing && is_done(h))
        finish(h);
}

static void on_event(void *ud, int event, const char *msg)
{
    harness_t *h = ud;

    if (event == SH_IN_SOCKET_STOPPED) {
        h->stopped++;
        h->in = NULL;
    } else if (h->in_closed) {
        h->late_calls++;
    }
    if (h->nev < MAX_EVENTS) {
        h->ev[h->nev] = event;
        h->ev_ns[h->nev] = uv_hrtime();
        snprintf(h->ev_msg[h->nev], sizeof(h->ev_msg[0]), "%s", msg);
    }
    h->nev++;
    if (event == SH_IN_SOCKET_CONNECT_FAILED) {
        h->nfailed++;
        if (h->listen_after_failures && h->nfailed == (size_t) h->listen_after_failures)
            uv_listen((uv_stream_t *) &h->server, 16, on_connection);
    }
    if (event == h->close_on_event && event != SH_IN_SOCKET_STOPPED)
        close_client(h);
    if (!h->finishing && is_done(h))
        finish(h);
}

/* -- Harness ---------------------------------------------------------------- */

static void on_guard(uv_timer_t *t)
{
    harness_t *h = t->data;

    h->timed_out = 1;
    finish(h);
}

static void on_closer(uv_timer_t *t)
{
    close_client(t->data);
}

static void on_idle(uv_idle_t *idle)
{
    harness_t *h = idle->data;

    if (h->iter++ == 0)
        h->t_start = uv_hrtime();
    if (uv_hrtime() - h->t_start >= (uint64_t) h->close_at_iter * 25000) {
        uv_idle_stop(idle);
        close_client(h);
    }
}

static void finish(harness_t *h)
{
    conn_t *c;

    if (h->finishing)
        return;
    h->finishing = 1;
    close_client(h);
    if (h->server_open) {
        h->server_open = 0;
        uv_close((uv_handle_t *) &h->server, NULL);
    }
    for (c = h->conns; c != NULL; c = c->next)
        conn_close(c);
    uv_close((uv_handle_t *) &h->guard, NULL);
    uv_close((uv_handle_t *) &h->closer, NULL);
    if (h->idle_open)
        uv_close((uv_handle_t *) &h->idle, NULL);
}

/* Sets up a loop with a server bound to an ephemeral loopback port, listening if asked. */
static void h_init(harness_t *h, int listen_now)
{
    struct sockaddr_in sa;
    struct sockaddr_storage ss;
    int len = sizeof(ss);

    memset(h, 0, sizeof(*h));
    h->close_at_iter = -1;
    h->keep_text = 1;
    h->check_chunks = 1;
    if (uv_loop_init(&h->loop) != 0)
        abort();
    uv_tcp_init(&h->loop, &h->server);
    h->server.data = h;
    h->server_open = 1;
    uv_ip4_addr("127.0.0.1", 0, &sa);
    if (uv_tcp_bind(&h->server, (const struct sockaddr *) &sa, 0) != 0 ||
        uv_tcp_getsockname(&h->server, (struct sockaddr *) &ss, &len) != 0)
        abort();
    h->port = ntohs(((struct sockaddr_in *) &ss)->sin_port);
    if (listen_now && uv_listen((uv_stream_t *) &h->server, 16, on_connection) != 0)
        abort();
    uv_timer_init(&h->loop, &h->guard);
    uv_timer_init(&h->loop, &h->closer);
    h->guard.data = h;
    h->closer.data = h;
}

static void walk_close(uv_handle_t *handle, void *arg)
{
    (void) arg;
    if (!uv_is_closing(handle))
        uv_close(handle, NULL);
}

/* Creates and starts the client, runs the loop until the test ends, and closes the loop. */
static void h_run(harness_t *h, size_t max_line, uint64_t bmin, uint64_t bmax)
{
    int err = 0;

    h->in = sh_in_socket_new(&h->loop, "127.0.0.1", h->port, max_line, on_lines, on_event, h, &err);
    if (h->in == NULL) {
        fail_at(__LINE__, "sh_in_socket_new: %s", uv_strerror(err));
        finish(h);
    } else {
        sh_in_socket_set_backoff(h->in, bmin, bmax);
        if (sh_in_socket_start(h->in) != 0)
            fail_at(__LINE__, "sh_in_socket_start failed");
    }
    uv_timer_start(&h->guard, on_guard, 10000, 0);
    if (h->close_after_ms)
        uv_timer_start(&h->closer, on_closer, h->close_after_ms, 0);
    if (h->close_at_iter >= 0) {
        uv_idle_init(&h->loop, &h->idle);
        h->idle.data = h;
        h->idle_open = 1;
        uv_idle_start(&h->idle, on_idle);
    }
    uv_run(&h->loop, UV_RUN_DEFAULT);
    h->loop_rc = uv_loop_close(&h->loop);
    if (h->loop_rc != 0) {
        /* Leave nothing behind for valgrind even when the test failed. */
        uv_walk(&h->loop, walk_close, NULL);
        uv_run(&h->loop, UV_RUN_DEFAULT);
        uv_loop_close(&h->loop);
    }
}

static void h_free(harness_t *h)
{
    free(h->text);
    h->text = NULL;
}

static int count_events(const harness_t *h, int event)
{
    size_t i;
    int n = 0;

    for (i = 0; i < h->nev && i < MAX_EVENTS; i++)
        n += h->ev[i] == event;
    return n;
}

/* Index of the n-th (from 0) occurrence of `event`, or -1. */
static int find_event(const harness_t *h, int event, int nth)
{
    size_t i;

    for (i = 0; i < h->nev && i < MAX_EVENTS; i++)
        if (h->ev[i] == event && nth-- == 0)
            return (int) i;
    return -1;
}

static int text_is(const harness_t *h, const char *want, size_t len)
{
    return h->tlen == len && memcmp(h->text, want, len) == 0;
}

/* The checks every loop-based test makes after the run. */
#define ASSERT_CLEAN_END(h)                                                 \
    do {                                                                    \
        ASSERT(!(h)->timed_out);                                            \
        ASSERT((h)->loop_rc == 0);                                          \
        ASSERT((h)->stopped == 1);                                          \
        ASSERT((h)->late_calls == 0);                                       \
        if ((h)->bad_chunk[0] != '\0') {                                    \
            fail_at(__LINE__, "bad chunk: %s", (h)->bad_chunk);             \
            goto done;                                                      \
        }                                                                   \
    } while (0)

/* -- Tests ------------------------------------------------------------------ */

static void no_lines(void *ud, const char *lines, size_t len, size_t count)
{
    (void) ud;
    (void) lines;
    (void) len;
    (void) count;
    abort();  /* these clients never connect */
}

static void test_api_errors(void)
{
    uv_loop_t loop;
    sh_in_socket_t *s;
    int err = 0, stopped = 0;

    uv_loop_init(&loop);
    s = sh_in_socket_new(&loop, "", 80, 0, no_lines, NULL, NULL, &err);
    ASSERT(s == NULL && err == UV_EINVAL);
    err = 0;
    s = sh_in_socket_new(&loop, "127.0.0.1", 0, 0, no_lines, NULL, NULL, &err);
    ASSERT(s == NULL && err == UV_EINVAL);
    err = 0;
    s = sh_in_socket_new(&loop, "127.0.0.1", 65536, 0, no_lines, NULL, NULL, &err);
    ASSERT(s == NULL && err == UV_EINVAL);
    err = 0;
    s = sh_in_socket_new(&loop, "127.0.0.1", 9, 0, NULL, NULL, NULL, &err);
    ASSERT(s == NULL && err == UV_EINVAL);
    err = 0;
    s = sh_in_socket_new(&loop, "127.0.0.1", 9, SH_IN_SOCKET_MAX_LINE_LIMIT + 1,
                         no_lines, NULL, NULL, &err);
    ASSERT(s == NULL && err == UV_EINVAL);

    /* Closed without ever starting: freed on the next loop run (on_event is NULL). */
    s = sh_in_socket_new(&loop, "127.0.0.1", 9, 0, no_lines, NULL, &stopped, &err);
    ASSERT(s != NULL);
    sh_in_socket_close(s);
    sh_in_socket_close(s);  /* ignored: already closing */
    sh_in_socket_close(NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
done:
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0)
        fail_at(__LINE__, "loop not closed");
    report("api_errors");
}

static void on_event_count_stopped(void *ud, int event, const char *msg)
{
    (void) msg;
    if (event == SH_IN_SOCKET_STOPPED)
        ++*(int *) ud;
}

static void test_start_twice_and_close_before_loop(void)
{
    uv_loop_t loop;
    sh_in_socket_t *s;
    int err = 0, stopped = 0;

    uv_loop_init(&loop);
    s = sh_in_socket_new(&loop, "127.0.0.1", 9, 0, no_lines,
                         on_event_count_stopped, &stopped, &err);
    ASSERT(s != NULL);
    ASSERT(sh_in_socket_start(s) == 0);
    ASSERT(sh_in_socket_start(s) == UV_EALREADY);
    sh_in_socket_close(s);  /* before the loop ever ran: no connect attempt happens */
    ASSERT(stopped == 0);   /* STOPPED comes from the loop, not from inside close() */
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT(stopped == 1);
done:
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0)
        fail_at(__LINE__, "loop not closed");
    report("start_twice_and_close_before_loop");
}

static void test_lf_crlf_in_order(void)
{
    static char many[200 * 16 + 1];
    static step_t script[] = {
        W("alpha\nbeta\r\n"),
        SLEEP(10),
        W("gamma\r\n\ndelta\n"),
        SLEEP(10),
        W("\r\nlone\rcr\n"),
        SLEEP(10),
        { S_WRITE, many, 0, 0 },
        END,
    };
    static const char head[] = "alpha\nbeta\ngamma\n\ndelta\n\nlone\rcr\n";
    harness_t h;
    char *want = NULL;
    size_t i, n = 0;

    for (i = 0; i < 200; i++)
        n += (size_t) sprintf(many + n, "line %05zu%s", i, i % 2 ? "\r\n" : "\n");
    script[6].len = n;
    want = malloc(sizeof(head) + n);
    memcpy(want, head, sizeof(head) - 1);
    for (i = 0; i < 200; i++)
        sprintf(want + sizeof(head) - 1 + i * 11, "line %05zu\n", i);

    h_init(&h, 1);
    h.scripts[0] = script;
    h.nscripts = 1;
    h.want_bytes = sizeof(head) - 1 + 200 * 11;
    h_run(&h, 0, 10, 50);
    ASSERT_CLEAN_END(&h);
    ASSERT(text_is(&h, want, sizeof(head) - 1 + 200 * 11));
    ASSERT(h.nlines == 7 + 200);
    /* The 200 lines came in one write: far fewer callbacks than lines. */
    ASSERT(h.ncalls <= 3 + 4);
    ASSERT(count_events(&h, SH_IN_SOCKET_CONNECTED) == 1);
done:
    free(want);
    h_free(&h);
    report("lf_and_crlf_lines_arrive_intact_in_order");
}

static void test_split_writes(void)
{
    /* A long line with multibyte characters, then a CRLF line split between '\r' and '\n'. */
    static const char text[] =
        "The quick brown fox \xC3\xA9t\xC3\xA9 \xE2\x82\xAC 100 \xF0\x9F\x98\x80 jumps over "
        "the lazy dog, again and again and again.\nsecond line\r\nthird\n";
    static const char want[] =
        "The quick brown fox \xC3\xA9t\xC3\xA9 \xE2\x82\xAC 100 \xF0\x9F\x98\x80 jumps over "
        "the lazy dog, again and again and again.\nsecond line\nthird\n";
    size_t len = sizeof(text) - 1, pos = 0, k = 0;
    step_t *steps = calloc(2 * len + 2, sizeof(*steps));
    harness_t h;

    /* Pieces of 1..3 bytes with a pause after each, so reads split inside characters. */
    while (pos < len) {
        size_t piece = 1 + (k / 2) % 3;

        if (piece > len - pos)
            piece = len - pos;
        steps[k].op = S_WRITE;
        steps[k].data = text + pos;
        steps[k].len = piece;
        k++;
        steps[k].op = S_SLEEP;
        steps[k].n = 1;
        k++;
        pos += piece;
    }
    steps[k].op = S_END;

    h_init(&h, 1);
    h.scripts[0] = steps;
    h.nscripts = 1;
    h.want_bytes = sizeof(want) - 1;
    h_run(&h, 0, 10, 50);
    ASSERT_CLEAN_END(&h);
    ASSERT(text_is(&h, want, sizeof(want) - 1));
    ASSERT(h.nlines == 3);
done:
    free(steps);
    h_free(&h);
    report("line_split_across_many_writes");
}

static void test_too_long(void)
{
    static const step_t script[] = {
        W("short1\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\nshort2\n"),
        SLEEP(10),
        W("yyyyyyyyyy"), SLEEP(10), W("yyyyyyyyyy"), SLEEP(10), W("yyyyyyyyyy"), SLEEP(10),
        W("yy\nshort3\n"),
        W("abcdefghijklmnop\nabcdefghijklmnop\r\nabcdefghijklmnopq\n"),
        SLEEP(10),
        W("ABCDEFGHIJKLMNOP\r"), SLEEP(10), W("\nend\n"),
        END,
    };
    static const char want[] = "short1\nshort2\nshort3\nabcdefghijklmnop\nabcdefghijklmnop\n"
                               "ABCDEFGHIJKLMNOP\nend\n";
    harness_t h;
    char port[32];
    int i;

    h_init(&h, 1);
    h.scripts[0] = script;
    h.nscripts = 1;
    h.want_bytes = sizeof(want) - 1;
    h_run(&h, 16, 10, 50);
    ASSERT_CLEAN_END(&h);
    ASSERT(text_is(&h, want, sizeof(want) - 1));
    ASSERT(count_events(&h, SH_IN_SOCKET_LINE_TOO_LONG) == 3);
    snprintf(port, sizeof(port), "127.0.0.1:%d", h.port);
    i = find_event(&h, SH_IN_SOCKET_LINE_TOO_LONG, 0);
    ASSERT(strstr(h.ev_msg[i], port) != NULL && strstr(h.ev_msg[i], "16") != NULL);
    ASSERT(count_events(&h, SH_IN_SOCKET_DISCONNECTED) == 0);
done:
    h_free(&h);
    report("over_long_line_reported_and_skipped");
}

static void test_long_line_grows_buffer(void)
{
    static step_t script[] = { W("before\n"), { S_WRITE, NULL, 0, 0 }, W("after\n"), END };
    size_t n = 300000, i;
    char *line = malloc(n + 1), *want = malloc(n + 14);
    harness_t h;

    /* A valid line of 300 KB (limit 1 MiB) with two-byte characters across read boundaries. */
    for (i = 0; i < n; i += 2) {
        line[i] = i % 10 == 0 ? '\xC3' : 'a';
        line[i + 1] = i % 10 == 0 ? '\xA9' : 'b';
    }
    line[n] = '\n';
    script[1].data = line;
    script[1].len = n + 1;
    memcpy(want, "before\n", 7);
    memcpy(want + 7, line, n + 1);
    memcpy(want + 8 + n, "after\n", 6);

    h_init(&h, 1);
    h.scripts[0] = script;
    h.nscripts = 1;
    h.want_bytes = n + 14;
    h_run(&h, 0, 10, 50);
    ASSERT_CLEAN_END(&h);
    ASSERT(text_is(&h, want, n + 14));
    ASSERT(h.nlines == 3);
    ASSERT(count_events(&h, SH_IN_SOCKET_LINE_TOO_LONG) == 0);
done:
    free(line);
    free(want);
    h_free(&h);
    report("long_valid_line_beyond_read_buffer");
}

static void test_invalid_utf8(void)
{
#define R "\xEF\xBF\xBD"
    static const step_t script[] = {
        W("h\xC3\xA9llo w\xC3\xB6rld \xE2\x82\xAC \xF0\x9F\x98\x80\n"),
        W("a\xFF" "b\n"),
        W("\xC3\n"),
        W("\xE2\x82\n"),
        W("\xC0\xAF\n"),
        W("\xED\xA0\x80\n"),
        W("\xF4\x90\x80\x80\n"),
        W("\xF0\x9F\x98\n"),
        W("\x80\x80\n"),
        W("\xE2\x28\xA1\n"),
        W("\xFF\r\n"),
        SLEEP(10),
        W("x\xE2\x82"), SLEEP(10), W("\xAC" "y\xE2"), SLEEP(10), W("\n"),
        W("clean\n"),
        END,
    };
    static const char want[] =
        "h\xC3\xA9llo w\xC3\xB6rld \xE2\x82\xAC \xF0\x9F\x98\x80\n"
        "a" R "b\n"
        R "\n"
        R "\n"
        R R "\n"
        R R R "\n"
        R R R R "\n"
        R "\n"
        R R "\n"
        R "(" R "\n"
        R "\n"
        "x\xE2\x82\xACy" R "\n"
        "clean\n";
#undef R
    harness_t h;

    h_init(&h, 1);
    h.scripts[0] = script;
    h.nscripts = 1;
    h.want_bytes = sizeof(want) - 1;
    h_run(&h, 0, 10, 50);
    ASSERT_CLEAN_END(&h);
    ASSERT(text_is(&h, want, sizeof(want) - 1));
    ASSERT(h.nlines == 13);
done:
    h_free(&h);
    report("invalid_utf8_replaced_valid_untouched");
}

static void test_trailing_partial(void)
{
    static const step_t c1[] = { W("one\ntwo"), CLOSE };
    static const step_t c2[] = { W("three\r"), CLOSE };
    static const char want[] = "one\ntwo\nthree\n";
    harness_t h;
    int i;

    h_init(&h, 1);
    h.scripts[0] = c1;
    h.scripts[1] = c2;
    h.nscripts = 2;
    h.want_event = SH_IN_SOCKET_DISCONNECTED;
    h.want_event_count = 2;
    h_run(&h, 0, 10, 50);
    ASSERT_CLEAN_END(&h);
    ASSERT(text_is(&h, want, sizeof(want) - 1));
    ASSERT(h.nlines == 3);
    i = find_event(&h, SH_IN_SOCKET_DISCONNECTED, 0);
    ASSERT(i >= 0 && strstr(h.ev_msg[i], "peer closed") != NULL);
done:
    h_free(&h);
    report("trailing_partial_line_delivered_on_close");
}

static void test_state_reset_on_reconnect(void)
{
    /* The first connection ends inside an over-long line; the second starts clean. */
    static const step_t c1[] = { W("ok1\nthis line is far too long"), CLOSE };
    static const step_t c2[] = { W("ok2\n"), END };
    static const char want[] = "ok1\nok2\n";
    harness_t h;

    h_init(&h, 1);
    h.scripts[0] = c1;
    h.scripts[1] = c2;
    h.nscripts = 2;
    h.want_bytes = sizeof(want) - 1;
    h_run(&h, 8, 10, 50);
    ASSERT_CLEAN_END(&h);
    ASSERT(text_is(&h, want, sizeof(want) - 1));
    ASSERT(count_events(&h, SH_IN_SOCKET_LINE_TOO_LONG) == 1);
    ASSERT(count_events(&h, SH_IN_SOCKET_CONNECTED) == 2);
done:
    h_free(&h);
    report("partial_line_state_reset_on_reconnect");
}

static void test_reconnect(void)
{
    static const step_t c1[] = { W("first\n"), CLOSE };
    static const step_t c2[] = { W("second\n"), END };
    static const char want[] = "first\nsecond\n";
    harness_t h;

    h_init(&h, 1);
    h.scripts[0] = c1;
    h.scripts[1] = c2;
    h.nscripts = 2;
    h.want_bytes = sizeof(want) - 1;
    h_run(&h, 0, 10, 50);
    ASSERT_CLEAN_END(&h);
    ASSERT(text_is(&h, want, sizeof(want) - 1));
    ASSERT(h.nev >= 3);
    ASSERT(h.ev[0] == SH_IN_SOCKET_CONNECTED);
    ASSERT(h.ev[1] == SH_IN_SOCKET_DISCONNECTED);
    ASSERT(h.ev[2] == SH_IN_SOCKET_CONNECTED);
    ASSERT(h.nconns == 2);
done:
    h_free(&h);
    report("peer_close_disconnects_then_reconnects");
}

static void test_read_error_reconnects(void)
{
    /* The server resets the connection: a read error, and the unfinished line is dropped. */
    static const step_t c1[] = { W("abc\npartial"), SLEEP(50), RESET };
    static const step_t c2[] = { W("def\n"), END };
    static const char want[] = "abc\ndef\n";
    harness_t h;
    int i;

    h_init(&h, 1);
    h.scripts[0] = c1;
    h.scripts[1] = c2;
    h.nscripts = 2;
    h.want_bytes = sizeof(want) - 1;
    h_run(&h, 0, 10, 50);
    ASSERT_CLEAN_END(&h);
    ASSERT(text_is(&h, want, sizeof(want) - 1));
    i = find_event(&h, SH_IN_SOCKET_DISCONNECTED, 0);
    ASSERT(i >= 0 && strstr(h.ev_msg[i], "ECONNRESET") != NULL);
    ASSERT(count_events(&h, SH_IN_SOCKET_CONNECTED) == 2);
done:
    h_free(&h);
    report("read_error_disconnects_then_reconnects");
}

static void test_connect_failed_backoff(void)
{
    /* Nothing listens (the port is bound, so no one else takes it) until the fifth failure. */
    static const step_t c1[] = { W("hello\n"), CLOSE };
    static const step_t c2[] = { W("again\n"), END };
    static const char want[] = "hello\nagain\n";
    static const uint64_t delays[] = { 20, 40, 80, 160, 320 };
    harness_t h;
    char port[32];
    int i, f, c;

    h_init(&h, 0);
    h.scripts[0] = c1;
    h.scripts[1] = c2;
    h.nscripts = 2;
    h.listen_after_failures = 5;
    h.want_bytes = sizeof(want) - 1;
    h_run(&h, 0, 20, 400);
    ASSERT_CLEAN_END(&h);
    ASSERT(text_is(&h, want, sizeof(want) - 1));
    ASSERT(count_events(&h, SH_IN_SOCKET_CONNECT_FAILED) == 5);
    snprintf(port, sizeof(port), "127.0.0.1:%d", h.port);
    ASSERT(strstr(h.ev_msg[0], port) != NULL && strstr(h.ev_msg[0], "ECONNREFUSED") != NULL);
    /* Each wait doubles: failure i+1 (or the connect) comes at least delays[i] after failure i. */
    for (i = 0; i < 5; i++) {
        uint64_t gap_ms = (h.ev_ns[i + 1] - h.ev_ns[i]) / 1000000;

        ASSERT(h.ev[i] == SH_IN_SOCKET_CONNECT_FAILED);
        if (gap_ms + 2 < delays[i] || gap_ms > delays[i] + 1000) {
            fail_at(__LINE__, "wait %d was %llu ms, expected about %llu", i,
                    (unsigned long long) gap_ms, (unsigned long long) delays[i]);
            goto done;
        }
    }
    ASSERT(h.ev[5] == SH_IN_SOCKET_CONNECTED);
    /* The connect reset the backoff: the reconnect after the peer closed waits 20 ms, not 400. */
    f = find_event(&h, SH_IN_SOCKET_DISCONNECTED, 0);
    c = find_event(&h, SH_IN_SOCKET_CONNECTED, 1);
    ASSERT(f > 0 && c > f);
    ASSERT((h.ev_ns[c] - h.ev_ns[f]) / 1000000 + 2 >= 20);
    ASSERT((h.ev_ns[c] - h.ev_ns[f]) / 1000000 < 300);
done:
    h_free(&h);
    report("connect_failed_with_backoff_then_success");
}

static void test_close_from_callbacks(void)
{
    static const step_t c1[] = { W("a\nthis is too long\nb\n"), SLEEP(20), CLOSE };
    static const int events[] = { SH_IN_SOCKET_CONNECTED, SH_IN_SOCKET_LINE_TOO_LONG,
                                  SH_IN_SOCKET_DISCONNECTED, SH_IN_SOCKET_CONNECT_FAILED, 0 };
    size_t v;

    for (v = 0; v < sizeof(events) / sizeof(events[0]); v++) {
        harness_t h;

        h_init(&h, events[v] != SH_IN_SOCKET_CONNECT_FAILED);
        h.scripts[0] = c1;
        h.nscripts = 1;
        h.close_on_event = events[v];
        h.close_on_lines = events[v] == 0;
        h.want_stopped = 1;
        h_run(&h, 8, 10, 50);
        ASSERT_CLEAN_END(&h);
        ASSERT(count_events(&h, events[v] ? events[v] : SH_IN_SOCKET_CONNECTED) == 1);
        if (events[v] == 0)
            ASSERT(h.ncalls == 1);
    done:
        h_free(&h);
        if (g_reason[0] != '\0')
            break;
    }
    report("close_from_inside_callbacks");
}

static void test_close_at_every_state(void)
{
    static const step_t c1[] = { W("x\n"), SLEEP(1), W("y\n"), SLEEP(1), W("z\n"), CLOSE };
    int iter, listening;

    /* Closing after 0, 25, 50, ... us lands in every state: waiting, resolving, connecting,
     * connected and reading, disconnected, failed. Each run must free all. */
    for (listening = 0; listening <= 1; listening++) {
        for (iter = 0; iter < 120; iter++) {
            harness_t h;

            h_init(&h, listening);
            h.scripts[0] = c1;
            h.scripts[1] = c1;
            h.nscripts = 2;
            h.close_at_iter = iter;
            h.want_stopped = 1;
            h_run(&h, 0, 1, 1);
            ASSERT_CLEAN_END(&h);
        done:
            h_free(&h);
            if (g_reason[0] != '\0')
                goto out;
        }
    }
out:
    report("close_in_any_state_frees_everything");
}

static void test_close_while_connecting(void)
{
    /* A loopback listener whose accept queue is full drops SYNs, so connect() hangs. */
    struct sockaddr_in sa;
    socklen_t slen = sizeof(sa);
    int lfd, fds[4], i, nfds = 0;
    harness_t h;

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    if (lfd < 0 || bind(lfd, (struct sockaddr *) &sa, sizeof(sa)) != 0 || listen(lfd, 0) != 0 ||
        getsockname(lfd, (struct sockaddr *) &sa, &slen) != 0)
        abort();
    for (i = 0; i < 4; i++) {
        fds[nfds] = socket(AF_INET, SOCK_STREAM, 0);
        if (fds[nfds] < 0)
            abort();
        fcntl(fds[nfds], F_SETFL, fcntl(fds[nfds], F_GETFL) | O_NONBLOCK);
        if (connect(fds[nfds], (struct sockaddr *) &sa, sizeof(sa)) != 0 && errno != EINPROGRESS)
            abort();
        nfds++;
    }
    sleep_ms(50);

    h_init(&h, 0);
    h.port = ntohs(sa.sin_port);
    h.close_after_ms = 300;
    h.want_stopped = 1;
    h_run(&h, 0, 10, 50);
    ASSERT_CLEAN_END(&h);
    ASSERT(count_events(&h, SH_IN_SOCKET_CONNECTED) == 0);
    ASSERT(count_events(&h, SH_IN_SOCKET_CONNECT_FAILED) == 0);
    ASSERT(h.nev == 1 && h.ev[0] == SH_IN_SOCKET_STOPPED);
done:
    for (i = 0; i < nfds; i++)
        close(fds[i]);
    close(lfd);
    h_free(&h);
    report("close_while_connecting");
}

static void test_close_while_connected(void)
{
    static const step_t c1[] = { W("one\ntwo\n"), END };
    harness_t h;

    h_init(&h, 1);
    h.scripts[0] = c1;
    h.nscripts = 1;
    h.close_after_ms = 200;
    h.want_stopped = 1;
    h_run(&h, 0, 10, 50);
    ASSERT_CLEAN_END(&h);
    ASSERT(h.nlines == 2);
    ASSERT(h.nev == 2 && h.ev[0] == SH_IN_SOCKET_CONNECTED && h.ev[1] == SH_IN_SOCKET_STOPPED);
done:
    h_free(&h);
    report("close_while_connected");
}

static void test_throughput(void)
{
    static step_t script[] = { { S_REPEAT, NULL, 0, 0 }, END };
    const char *env = getenv("SH_TEST_MB");
    unsigned long mb = env ? strtoul(env, NULL, 10) : 100;
    size_t block = (size_t) 1 << 20, i, lines_per_block = 0, n;
    char *data = malloc(block);
    uint64_t t0, ns;
    harness_t h;

    /* 1 MiB of ASCII lines of 64..127 bytes, the last one padded to end the block. */
    for (i = 0; i < block; i += n) {
        n = 64 + (i * 7 + 13) % 64;
        if (block - i < n + 64)
            n = block - i;
        memset(data + i, 'a' + (int) (i % 26), n - 1);
        data[i + n - 1] = '\n';
        lines_per_block++;
    }
    script[0].data = data;
    script[0].len = block;
    script[0].n = mb;

    h_init(&h, 1);
    h.scripts[0] = script;
    h.nscripts = 1;
    h.keep_text = 0;
    h.check_chunks = 0;
    h.want_bytes = mb * block;
    t0 = uv_hrtime();
    h_run(&h, 0, 10, 50);
    ns = uv_hrtime() - t0;
    ASSERT_CLEAN_END(&h);
    ASSERT(h.bytes == mb * block);
    ASSERT(h.nlines == mb * lines_per_block);
    ASSERT(h.ncalls < h.nlines / 50);
    printf("# %lu MiB in %.3f s: %.0f MiB/s (server and client on one loop), %zu chunks\n", mb,
           (double) ns / 1e9, (double) mb / ((double) ns / 1e9), h.ncalls);
done:
    free(data);
    h_free(&h);
    report("throughput_ascii_stream");
}

int main(void)
{
    test_api_errors();
    test_start_twice_and_close_before_loop();
    test_lf_crlf_in_order();
    test_split_writes();
    test_too_long();
    test_long_line_grows_buffer();
    test_invalid_utf8();
    test_trailing_partial();
    test_state_reset_on_reconnect();
    test_reconnect();
    test_read_error_reconnects();
    test_connect_failed_backoff();
    test_close_from_callbacks();
    test_close_at_every_state();
    test_close_while_connecting();
    test_close_while_connected();
    test_throughput();
    printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed != 0;
}
