/* sh_in_socket.c: TCP client behind socketTextStream(host, port): connects, frames UTF-8 '\n' lines, reconnects. */
#include "sh_in_socket.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define READ_SIZE ((size_t) 64 << 10)  /* initial read buffer */
#define READ_MIN ((size_t) 16 << 10)   /* least free space offered to one read */
#define HOST_MAX 255
#define MSG_MAX 512

enum {
    ST_IDLE,         /* created, not started */
    ST_WAITING,      /* the timer will begin the next attempt */
    ST_RESOLVING,    /* uv_getaddrinfo in flight */
    ST_CONNECTING,   /* connecting to one address; its failure moves on to the next */
    ST_CONNECTED,    /* reading */
    ST_DISCONNECTED  /* the connection is closing; its close callback schedules the retry */
};

struct sh_in_socket_s {
    uv_loop_t *loop;
    uv_timer_t timer;          /* backoff and the first attempt; open for the object's life */
    uv_tcp_t tcp;              /* initialized afresh for each address tried */
    uv_getaddrinfo_t gai;
    uv_connect_t connect;
    struct addrinfo *ai_list;  /* result of the current resolution, freed when it is used up */
    struct addrinfo *ai_next;  /* the next address to try */
    int last_err;              /* uv error of the last failed connect */

    char *host;
    char *name;                /* "host:port" for messages */
    char port_str[8];
    size_t max_line;

    uint64_t backoff_min, backoff_max, backoff_cur;

    sh_in_socket_lines_cb on_lines;
    sh_in_socket_event_cb on_event;
    void *ud;

    int state;                 /* ST_* */
    unsigned closing : 1;      /* sh_in_socket_close() was called */
    unsigned timer_open : 1;   /* the timer's close callback has not run */
    unsigned tcp_open : 1;     /* tcp is initialized and its close callback has not run */
    unsigned gai_active : 1;   /* the getaddrinfo callback has not run */
    unsigned skipping : 1;     /* discarding an over-long line up to its '\n' */
    unsigned carry_high : 1;   /* the carried partial line may hold bytes >= 0x80 */
    unsigned paused : 1;       /* the owner asked us to stop reading for now (backpressure) */

    /* rbuf[0..carry) is the partial line left by the last read; reads append after it. */
    char *rbuf;
    size_t rcap, carry;
    /* Output for reads whose lines need changes (CR, invalid UTF-8, skipped lines). */
    char *obuf;
    size_t ocap, olen;
};

/* -- Memory ---------------------------------------------------------------- */

static void *mem_alloc(size_t n)
{
    return malloc(n ? n : 1);
}

static void *mem_realloc(void *p, size_t n)
{
    return realloc(p, n ? n : 1);
}

static void mem_free(void *p)
{
    free(p);
}

static char *mem_strdup(const char *str)
{
    size_t n = strlen(str) + 1;
    char *d = mem_alloc(n);

    if (d != NULL)
        memcpy(d, str, n);
    return d;
}

/* Makes room for `need` bytes after rbuf[0..carry). 0 or UV_ENOMEM. */
static int reserve_rbuf(sh_in_socket_t *s, size_t need)
{
    size_t cap = s->rcap;
    char *p;

    if (cap - s->carry >= need)
        return 0;
    while (cap - s->carry < need)
        cap *= 2;
    p = mem_realloc(s->rbuf, cap);
    if (p == NULL)
        return UV_ENOMEM;
    s->rbuf = p;
    s->rcap = cap;
    return 0;
}

/* Makes obuf hold at least `need` bytes in total. 0 or UV_ENOMEM. */
static int reserve_obuf(sh_in_socket_t *s, size_t need)
{
    size_t cap = s->ocap ? s->ocap : READ_SIZE;
    char *p;

    if (s->ocap >= need)
        return 0;
    while (cap < need)
        cap *= 2;
    p = mem_realloc(s->obuf, cap);
    if (p == NULL)
        return UV_ENOMEM;
    s->obuf = p;
    s->ocap = cap;
    return 0;
}

/* -- UTF-8 ----------------------------------------------------------------- */

#define HIGH_BITS UINT64_C(0x8080808080808080)

static uint64_t load64(const char *p)
{
    uint64_t w;

    memcpy(&w, p, sizeof(w));
    return w;
}

/* Whether any of p[0..n) is >= 0x80. Tests 64 bytes per step so the compiler can vectorize. */
static int has_high(const char *p, size_t n)
{
    while (n >= 64) {
        uint64_t acc = load64(p) | load64(p + 8) | load64(p + 16) | load64(p + 24) |
                       load64(p + 32) | load64(p + 40) | load64(p + 48) | load64(p + 56);

        if (acc & HIGH_BITS)
            return 1;
        p += 64;
        n -= 64;
    }
    while (n >= 8) {
        if (load64(p) & HIGH_BITS)
            return 1;
        p += 8;
        n -= 8;
    }
    while (n > 0) {
        if ((unsigned char) *p & 0x80)
            return 1;
        p++;
        n--;
    }
    return 0;
}

/* Checks the sequence that starts with a byte >= 0x80 at s[0] (n >= 1 bytes available).
 * Returns 1 and its length in *used when it is well-formed UTF-8 (RFC 3629: no overlongs,
 * surrogates or code points above U+10FFFF). Otherwise returns 0 and in *used the length of
 * its maximal subpart, which the Unicode recommended practice (and Java's decoder) replaces
 * by one U+FFFD. */
static int utf8_seq(const unsigned char *s, size_t n, size_t *used)
{
    unsigned char b = s[0], lo = 0x80, hi = 0xBF;
    size_t need, i;

    if (b >= 0xC2 && b <= 0xDF) {
        need = 1;
    } else if (b >= 0xE0 && b <= 0xEF) {
        need = 2;
        if (b == 0xE0)
            lo = 0xA0;  /* overlong */
        else if (b == 0xED)
            hi = 0x9F;  /* surrogates */
    } else if (b >= 0xF0 && b <= 0xF4) {
        need = 3;
        if (b == 0xF0)
            lo = 0x90;  /* overlong */
        else if (b == 0xF4)
            hi = 0x8F;  /* above U+10FFFF */
    } else {
        *used = 1;
        return 0;
    }
    for (i = 1; i <= need; i++) {
        if (i >= n || s[i] < lo || s[i] > hi) {
            *used = i;
            return 0;
        }
        lo = 0x80;
        hi = 0xBF;
    }
    *used = need + 1;
    return 1;
}

/* Returns the offset of the first ill-formed sequence in p[0..n), or n when all is valid. */
static size_t utf8_valid_prefix(const char *p, size_t n)
{
    const unsigned char *u = (const unsigned char *) p;
    size_t i = 0, used;

    while (i < n) {
        if (u[i] < 0x80) {
            while (i + 8 <= n && !(load64(p + i) & HIGH_BITS))
                i += 8;
            while (i < n && u[i] < 0x80)
                i++;
            continue;
        }
        if (!utf8_seq(u + i, n - i, &used))
            return i;
        i += used;
    }
    return n;
}

/* Appends p[0..n) to obuf with every ill-formed sequence replaced by U+FFFD; p[0..valid) is
 * already known to be valid. obuf must have room for 3 * n bytes. */
static void append_utf8(sh_in_socket_t *s, const char *p, size_t n, size_t valid)
{
    const unsigned char *u = (const unsigned char *) p;
    char *o = s->obuf + s->olen;
    size_t i = valid, used, run;

    memcpy(o, p, valid);
    o += valid;
    while (i < n) {
        run = utf8_valid_prefix(p + i, n - i);
        memcpy(o, p + i, run);
        o += run;
        i += run;
        if (i >= n)
            break;
        utf8_seq(u + i, n - i, &used);
        memcpy(o, "\xEF\xBF\xBD", 3);
        o += 3;
        i += used;
    }
    s->olen = (size_t) (o - s->obuf);
}

/* -- Events ---------------------------------------------------------------- */

static void emit(sh_in_socket_t *s, int event, const char *fmt, ...)
{
    char msg[MSG_MAX];
    va_list ap;

    if (s->on_event == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    s->on_event(s->ud, event, msg);
}

/* Frees the object once sh_in_socket_close() was called and no callback is outstanding. */
static void maybe_finish(sh_in_socket_t *s)
{
    if (!s->closing || s->timer_open || s->tcp_open || s->gai_active)
        return;
    emit(s, SH_IN_SOCKET_STOPPED, "%s: stopped", s->name);
    uv_freeaddrinfo(s->ai_list);
    mem_free(s->obuf);
    mem_free(s->rbuf);
    mem_free(s->name);
    mem_free(s->host);
    mem_free(s);
}

/* -- Line framing ---------------------------------------------------------- */

static void reset_lines(sh_in_socket_t *s)
{
    s->carry = 0;
    s->skipping = 0;
    s->carry_high = 0;
}

/* Gives back what a long line grew, between connections. A failed shrink keeps the old buffer. */
static void trim_buffers(sh_in_socket_t *s)
{
    char *p;

    mem_free(s->obuf);
    s->obuf = NULL;
    s->ocap = 0;
    if (s->rcap > READ_SIZE && (p = mem_realloc(s->rbuf, READ_SIZE)) != NULL) {
        s->rbuf = p;
        s->rcap = READ_SIZE;
    }
}

/* Frames rbuf[0..carry + n), where the last n bytes are new, delivers the complete lines and
 * keeps the partial one at the front of rbuf. Clean lines go out straight from rbuf; once a
 * line needs a change, the rest of this read is assembled in obuf. Returns 0 or UV_ENOMEM. */
static int frame(sh_in_socket_t *s, size_t n)
{
    char *base = s->rbuf, *end = base + s->carry + n;
    char *line = base;            /* start of the current line */
    char *scan = base + s->carry; /* rbuf before this holds no '\n' */
    char *run, *nl;
    size_t count = 0, too_long = 0, len, clen, valid, part;
    int high, dirty = 0, carried = 1;

    if (s->skipping) {
        /* The carry is empty: the over-long line was dropped when it was reported. */
        nl = memchr(scan, '\n', n);
        if (nl == NULL)
            return 0;
        s->skipping = 0;
        s->carry_high = 0;
        line = scan = nl + 1;
    }
    high = s->carry_high || has_high(scan, (size_t) (end - scan));
    run = line;
    s->olen = 0;

    while (scan < end && (nl = memchr(scan, '\n', (size_t) (end - scan))) != NULL) {
        len = (size_t) (nl - line);
        clen = len > 0 && nl[-1] == '\r' ? len - 1 : len;
        valid = clen > s->max_line || !high ? clen : utf8_valid_prefix(line, clen);
        if (!dirty && (clen > s->max_line || clen != len || valid != clen)) {
            /* Worst case every remaining byte becomes a 3-byte U+FFFD. */
            if (reserve_obuf(s, (size_t) (line - run) + 3 * (size_t) (end - line)) != 0)
                return UV_ENOMEM;
            memcpy(s->obuf, run, (size_t) (line - run));
            s->olen = (size_t) (line - run);
            dirty = 1;
        }
        if (clen > s->max_line) {
            too_long++;
        } else if (!dirty) {
            count++;
        } else {
            append_utf8(s, line, clen, valid);
            s->obuf[s->olen++] = '\n';
            count++;
        }
        line = scan = nl + 1;
        carried = 0;
    }

    /* The partial line may end with the '\r' of a CRLF, which does not count. */
    part = (size_t) (end - line);
    if (part > s->max_line + 1 || (part == s->max_line + 1 && end[-1] != '\r')) {
        too_long++;
        s->skipping = 1;
        part = 0;
    }

    if (count > 0) {
        if (dirty)
            s->on_lines(s->ud, s->obuf, s->olen, count);
        else
            s->on_lines(s->ud, run, (size_t) (line - run), count);
        if (s->closing)
            return 0;
    }
    for (; too_long > 0; too_long--) {
        emit(s, SH_IN_SOCKET_LINE_TOO_LONG, "%s: skipped a line longer than %zu bytes",
             s->name, s->max_line);
        if (s->closing)
            return 0;
    }

    /* Bytes are scanned for >= 0x80 at most twice: once as new data, once as a fresh carry. */
    if (part == 0)
        s->carry_high = 0;
    else if (!carried)
        s->carry_high = has_high(line, part) ? 1 : 0;
    else
        s->carry_high = high ? 1 : 0;
    if (part > 0 && line != base)
        memmove(base, line, part);
    s->carry = part;
    return 0;
}

/* -- Connection ------------------------------------------------------------ */

static void on_timer(uv_timer_t *t);
static void on_tcp_closed(uv_handle_t *h);
static void on_connected(uv_connect_t *req, int status);

static void schedule_retry(sh_in_socket_t *s)
{
    uint64_t delay = s->backoff_cur;

    s->state = ST_WAITING;
    s->backoff_cur = delay > s->backoff_max / 2 ? s->backoff_max : delay * 2;
    if (s->backoff_cur < s->backoff_min)
        s->backoff_cur = s->backoff_min;
    uv_timer_start(&s->timer, on_timer, delay, 0);  /* cannot fail with a callback given */
}

static void connect_failed(sh_in_socket_t *s, const char *what, int err)
{
    uv_freeaddrinfo(s->ai_list);
    s->ai_list = s->ai_next = NULL;
    s->state = ST_WAITING;
    emit(s, SH_IN_SOCKET_CONNECT_FAILED, "%s: %s failed: %s (%s)", s->name, what,
         uv_strerror(err), uv_err_name(err));
    if (!s->closing)
        schedule_retry(s);
}

/* Ends the connection: tcp closes first, so the event callback may call sh_in_socket_close(). */
static void disconnect(sh_in_socket_t *s, const char *why, int err)
{
    s->state = ST_DISCONNECTED;
    reset_lines(s);
    trim_buffers(s);
    uv_close((uv_handle_t *) &s->tcp, on_tcp_closed);
    if (err)
        emit(s, SH_IN_SOCKET_DISCONNECTED, "%s: %s: %s (%s)", s->name, why, uv_strerror(err),
             uv_err_name(err));
    else
        emit(s, SH_IN_SOCKET_DISCONNECTED, "%s: %s", s->name, why);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    sh_in_socket_t *s = h->data;

    (void) hint;
    if (reserve_rbuf(s, READ_MIN) != 0) {
        *buf = uv_buf_init(NULL, 0);  /* on_read gets UV_ENOBUFS */
        return;
    }
    *buf = uv_buf_init(s->rbuf + s->carry, (unsigned int) (s->rcap - s->carry));
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    sh_in_socket_t *s = stream->data;

    (void) buf;
    if (s->closing || s->state != ST_CONNECTED)
        return;
    if (nread > 0) {
        if (frame(s, (size_t) nread) != 0 && !s->closing)
            disconnect(s, "read failed", UV_ENOMEM);
    } else if (nread == UV_EOF) {
        /* Like BufferedReader.readLine(), a final line without '\n' still counts. */
        if (s->carry > 0 && !s->skipping) {
            if (reserve_rbuf(s, 1) != 0) {
                disconnect(s, "read failed", UV_ENOMEM);
                return;
            }
            s->rbuf[s->carry] = '\n';
            if (frame(s, 1) != 0 && !s->closing) {
                disconnect(s, "read failed", UV_ENOMEM);
                return;
            }
            if (s->closing)
                return;
        }
        disconnect(s, "peer closed the connection", 0);
    } else if (nread < 0) {
        disconnect(s, "read failed", (int) nread);
    }
}

/* Tries the remaining resolved addresses in order; reports failure when none is left. */
static void try_next_address(sh_in_socket_t *s)
{
    struct addrinfo *ai;
    int err;

    while ((ai = s->ai_next) != NULL) {
        s->ai_next = ai->ai_next;
        err = uv_tcp_init(s->loop, &s->tcp);
        if (err) {
            s->last_err = err;
            continue;
        }
        s->tcp.data = s;
        s->tcp_open = 1;
        s->state = ST_CONNECTING;
        s->connect.data = s;
        err = uv_tcp_connect(&s->connect, &s->tcp, ai->ai_addr, on_connected);
        if (err == 0)
            return;
        /* on_tcp_closed() comes back here for the next address. */
        s->last_err = err;
        uv_close((uv_handle_t *) &s->tcp, on_tcp_closed);
        return;
    }
    connect_failed(s, "connect", s->last_err ? s->last_err : UV_EADDRNOTAVAIL);
}

static void on_connected(uv_connect_t *req, int status)
{
    sh_in_socket_t *s = req->data;
    int err;

    if (s->closing)
        return;  /* tcp is closing; its close callback finishes the object */
    if (status < 0) {
        s->last_err = status;
        uv_close((uv_handle_t *) &s->tcp, on_tcp_closed);
        return;
    }
    uv_freeaddrinfo(s->ai_list);
    s->ai_list = s->ai_next = NULL;
    reset_lines(s);
    err = s->paused ? 0 : uv_read_start((uv_stream_t *) &s->tcp, on_alloc, on_read);
    if (err) {
        s->last_err = err;
        s->state = ST_CONNECTING;
        uv_close((uv_handle_t *) &s->tcp, on_tcp_closed);  /* reported as a failed connect */
        return;
    }
    s->state = ST_CONNECTED;
    s->backoff_cur = s->backoff_min;
    emit(s, SH_IN_SOCKET_CONNECTED, "%s: connected", s->name);
}

static void on_tcp_closed(uv_handle_t *h)
{
    sh_in_socket_t *s = h->data;

    s->tcp_open = 0;
    if (s->closing)
        maybe_finish(s);
    else if (s->state == ST_CONNECTING)
        try_next_address(s);
    else
        schedule_retry(s);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    sh_in_socket_t *s = req->data;

    s->gai_active = 0;
    if (s->closing) {
        uv_freeaddrinfo(res);
        maybe_finish(s);
        return;
    }
    if (status < 0) {
        uv_freeaddrinfo(res);
        connect_failed(s, "resolve", status);
        return;
    }
    s->ai_list = s->ai_next = res;
    s->last_err = 0;
    try_next_address(s);
}

static void on_timer(uv_timer_t *t)
{
    sh_in_socket_t *s = t->data;
    struct addrinfo hints;
    int err;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    hints.ai_flags = AI_NUMERICSERV;
    s->state = ST_RESOLVING;
    s->gai.data = s;
    err = uv_getaddrinfo(s->loop, &s->gai, on_resolved, s->host, s->port_str, &hints);
    if (err) {
        connect_failed(s, "resolve", err);
        return;
    }
    s->gai_active = 1;
}

static void on_timer_closed(uv_handle_t *h)
{
    sh_in_socket_t *s = h->data;

    s->timer_open = 0;
    maybe_finish(s);
}

/* -- Public API ------------------------------------------------------------ */

sh_in_socket_t *sh_in_socket_new(uv_loop_t *loop, const char *host, int port, size_t max_line_bytes,
                                 sh_in_socket_lines_cb on_lines, sh_in_socket_event_cb on_event,
                                 void *ud, int *err)
{
    sh_in_socket_t *s;
    size_t host_len = host ? strlen(host) : 0;
    size_t name_len;
    int rc;

    if (loop == NULL || host_len == 0 || host_len > HOST_MAX || port < 1 || port > 65535 ||
        on_lines == NULL || max_line_bytes > SH_IN_SOCKET_MAX_LINE_LIMIT) {
        rc = UV_EINVAL;
        goto fail;
    }
    rc = UV_ENOMEM;
    s = mem_alloc(sizeof(*s));
    if (s == NULL)
        goto fail;
    memset(s, 0, sizeof(*s));
    s->loop = loop;
    s->max_line = max_line_bytes ? max_line_bytes : SH_IN_SOCKET_DEFAULT_MAX_LINE;
    s->backoff_min = s->backoff_cur = 100;
    s->backoff_max = 2000;
    s->on_lines = on_lines;
    s->on_event = on_event;
    s->ud = ud;
    s->state = ST_IDLE;
    snprintf(s->port_str, sizeof(s->port_str), "%d", port);

    s->host = mem_strdup(host);
    if (s->host == NULL)
        goto fail_free;
    /* An IPv6 literal gets brackets so that the port stays readable. */
    name_len = host_len + sizeof(s->port_str) + 4;
    s->name = mem_alloc(name_len);
    if (s->name == NULL)
        goto fail_free;
    snprintf(s->name, name_len, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
    s->rcap = READ_SIZE;
    s->rbuf = mem_alloc(s->rcap);
    if (s->rbuf == NULL)
        goto fail_free;

    rc = uv_timer_init(loop, &s->timer);
    if (rc)
        goto fail_free;
    s->timer.data = s;
    s->timer_open = 1;
    return s;

fail_free:
    mem_free(s->rbuf);
    mem_free(s->name);
    mem_free(s->host);
    mem_free(s);
fail:
    if (err)
        *err = rc;
    return NULL;
}

void sh_in_socket_set_backoff(sh_in_socket_t *s, uint64_t min_ms, uint64_t max_ms)
{
    if (max_ms < min_ms)
        max_ms = min_ms;
    s->backoff_min = s->backoff_cur = min_ms;
    s->backoff_max = max_ms;
}

int sh_in_socket_start(sh_in_socket_t *s)
{
    if (s->closing || s->state != ST_IDLE)
        return UV_EALREADY;
    s->state = ST_WAITING;
    uv_timer_start(&s->timer, on_timer, 0, 0);
    return 0;
}

void sh_in_socket_close(sh_in_socket_t *s)
{
    if (s == NULL || s->closing)
        return;
    s->closing = 1;
    uv_close((uv_handle_t *) &s->timer, on_timer_closed);
    if (s->gai_active)
        uv_cancel((uv_req_t *) &s->gai);  /* on_resolved still runs, with UV_EAI_CANCELED */
    if (s->tcp_open && !uv_is_closing((uv_handle_t *) &s->tcp))
        uv_close((uv_handle_t *) &s->tcp, on_tcp_closed);
}

void sh_in_socket_pause(sh_in_socket_t *s)
{
    if (s == NULL || s->paused)
        return;
    s->paused = 1;
    if (s->state == ST_CONNECTED && !s->closing)
        uv_read_stop((uv_stream_t *) &s->tcp);
}

void sh_in_socket_resume(sh_in_socket_t *s)
{
    if (s == NULL || !s->paused)
        return;
    s->paused = 0;
    if (s->state == ST_CONNECTED && !s->closing &&
        uv_read_start((uv_stream_t *) &s->tcp, on_alloc, on_read) != 0)
        disconnect(s, "cannot resume reading", UV_EIO);
}
