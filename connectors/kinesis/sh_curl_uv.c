/* sh_curl_uv.c: libcurl's multi interface on a libuv loop. libcurl says which sockets to watch
 * (socket callback: one uv_poll per socket) and when to call it back (timer callback: one
 * uv_timer); the loop tells it what happened with curl_multi_socket_action, and finished
 * transfers are handed to their callbacks. The loop never blocks on a transfer: libcurl's
 * resolver (Debian's is the threaded one) runs each name lookup that misses its DNS cache on a
 * thread of its own, and the loop never waits for that thread: every easy handle has
 * CURLOPT_QUICK_EXIT, so a transfer cancelled or timed out during a lookup leaves the thread
 * to finish alone instead of joining it. */
#include "sh_curl_uv.h"
#include "sh_common.h"

#include <curl/curl.h>
#include <pthread.h>
#include <string.h>

typedef struct req_s {
    struct req_s *prev, *next;
    sh_curl_uv_t *c;
    CURL *easy;
    struct curl_slist *headers;
    char *body;
    char *resp;
    size_t len, cap, max;
    int too_big;           /* the answer passed max: the transfer was stopped */
    sh_curl_done_cb done;
    void *ud;
    char error[CURL_ERROR_SIZE];
} req_t;

/* One socket libcurl asked to watch. */
typedef struct sock_s {
    uv_poll_t poll;
    curl_socket_t fd;
    sh_curl_uv_t *c;
    struct sock_s *prev, *next;
    int closing;
} sock_t;

struct sh_curl_uv_s {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    req_t *reqs;           /* in flight */
    sock_t *socks;         /* watched */
    int nreqs;
    int handles;           /* uv handles not closed yet (the timer and the polls) */
    int dispatching;       /* inside check_done: a close waits for it to end */
    int closing;
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static int global_rc;

static void global_init(void)
{
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

static void maybe_free(sh_curl_uv_t *c)
{
    if (c->closing && c->handles == 0)
        sh_free(c);
}

static void on_handle_closed(uv_handle_t *h)
{
    sh_curl_uv_t *c;

    if (h->type == UV_TIMER) {
        c = h->data;
    } else {
        sock_t *s = h->data;

        c = s->c;
        sh_free(s);
    }
    c->handles--;
    maybe_free(c);
}

static void close_sock(sh_curl_uv_t *c, sock_t *s)
{
    if (s->closing)
        return;
    s->closing = 1;
    if (s->prev)
        s->prev->next = s->next;
    else
        c->socks = s->next;
    if (s->next)
        s->next->prev = s->prev;
    uv_poll_stop(&s->poll);
    uv_close((uv_handle_t *) &s->poll, on_handle_closed);
}

static void free_req(req_t *r)
{
    curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->headers);
    sh_free(r->body);
    sh_free(r->resp);
    sh_free(r);
}

static void unlink_req(sh_curl_uv_t *c, req_t *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        c->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    c->nreqs--;
}

static void teardown(sh_curl_uv_t *c)
{
    /* The polls stop first, while libcurl's sockets are still open (removing an easy handle
     * in flight closes its socket: a poll still watching it would be removed from epoll after
     * the close, on a descriptor that may be another's by then). socket_cb ignores what
     * libcurl says from here on. */
    while (c->socks) {
        curl_multi_assign(c->multi, c->socks->fd, NULL);
        close_sock(c, c->socks);
    }
    while (c->reqs) {
        req_t *r = c->reqs;

        unlink_req(c, r);
        curl_multi_remove_handle(c->multi, r->easy);
        r->done(r->ud, SH_CURL_CANCELLED, 0, "", 0, "cancelled");
        free_req(r);
    }
    curl_multi_cleanup(c->multi);
    c->multi = NULL;
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *) &c->timer, on_handle_closed);
}

/* Hands every finished transfer to its callback. */
static void check_done(sh_curl_uv_t *c)
{
    CURLMsg *m;
    int left;

    c->dispatching = 1;
    while (!c->closing && (m = curl_multi_info_read(c->multi, &left)) != NULL) {
        req_t *r = NULL;
        long status = 0;
        int code;

        if (m->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **) &r);
        code = (int) m->data.result;
        if (code == CURLE_OK) {
            curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
        } else if (r->too_big) {
            char *url = NULL;

            curl_easy_getinfo(r->easy, CURLINFO_EFFECTIVE_URL, &url);
            snprintf(r->error, sizeof r->error, "answer over %zu MB from %s",
                     r->max >> 20, url ? url : "the endpoint");
        } else if (r->error[0] == '\0')
            snprintf(r->error, sizeof r->error, "%s", curl_easy_strerror(m->data.result));
        curl_multi_remove_handle(c->multi, r->easy);
        unlink_req(c, r);
        r->done(r->ud, code, status, r->resp ? r->resp : "", r->len, r->error);
        free_req(r);
    }
    c->dispatching = 0;
    if (c->closing && c->multi)
        teardown(c);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    sock_t *s = h->data;
    sh_curl_uv_t *c = s->c;
    int flags = 0, running;

    if (c->closing)
        return;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    else {
        if (events & UV_READABLE)
            flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE)
            flags |= CURL_CSELECT_OUT;
    }
    curl_multi_socket_action(c->multi, s->fd, flags, &running);
    check_done(c);
}

static void on_timeout(uv_timer_t *t)
{
    sh_curl_uv_t *c = t->data;
    int running;

    if (c->closing)
        return;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(c);
}

static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    sh_curl_uv_t *c = userp;
    sock_t *s = socketp;
    int events = 0;

    (void) easy;
    if (c->closing)
        return 0;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            curl_multi_assign(c->multi, fd, NULL);
            close_sock(c, s);
        }
        return 0;
    }
    if (s == NULL) {
        s = sh_calloc(1, sizeof *s);
        if (s == NULL)
            return -1;
        if (uv_poll_init_socket(c->loop, &s->poll, fd) != 0) {
            sh_free(s);
            return -1;
        }
        s->fd = fd;
        s->c = c;
        s->poll.data = s;
        s->next = c->socks;
        if (c->socks)
            c->socks->prev = s;
        c->socks = s;
        c->handles++;
        curl_multi_assign(c->multi, fd, s);
    }
    if (what & CURL_POLL_IN)
        events |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        events |= UV_WRITABLE;
    uv_poll_start(&s->poll, events, on_poll);
    return 0;
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    sh_curl_uv_t *c = userp;

    (void) multi;
    if (c->closing)
        return 0;
    if (timeout_ms < 0)
        uv_timer_stop(&c->timer);
    else  /* 0: as soon as possible, but not from inside this callback */
        uv_timer_start(&c->timer, on_timeout, (uint64_t) timeout_ms, 0);
    return 0;
}

sh_curl_uv_t *sh_curl_uv_new(uv_loop_t *loop)
{
    sh_curl_uv_t *c;

    pthread_once(&global_once, global_init);
    if (global_rc != 0)
        return NULL;
    c = sh_calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->loop = loop;
    c->multi = curl_multi_init();
    if (c->multi == NULL) {
        sh_free(c);
        return NULL;
    }
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    c->handles = 1;
    return c;
}

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
    req_t *r = ud;
    size_t len = size * n;

    if (r->len + len > r->max) {
        r->too_big = 1;
        return 0;  /* libcurl fails the transfer (CURLE_WRITE_ERROR) */
    }
    if (r->len + len + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 4096;
        char *q;

        while (cap < r->len + len + 1)
            cap *= 2;
        q = sh_realloc(r->resp, cap);
        if (q == NULL)
            return 0;
        r->resp = q;
        r->cap = cap;
    }
    memcpy(r->resp + r->len, p, len);
    r->len += len;
    r->resp[r->len] = '\0';
    return len;
}

int sh_curl_uv_post(sh_curl_uv_t *c, const char *url, struct curl_slist *headers, char *body,
                    size_t len, long timeout_ms, size_t max_bytes, sh_curl_done_cb done,
                    void *ud)
{
    req_t *r = sh_calloc(1, sizeof *r);
    const char *env_np = getenv("no_proxy");
    char noproxy[2048];

    if (env_np == NULL || *env_np == '\0')
        env_np = getenv("NO_PROXY");
    /* The user's no_proxy is kept (setting the option replaces it), the loopback added; a
     * list too long for the buffer is cut at its last whole entry. */
    if (env_np && *env_np) {
        size_t keep = strlen(env_np);

        if (keep > sizeof noproxy - 32) {
            keep = sizeof noproxy - 32;
            while (keep > 0 && env_np[keep] != ',')
                keep--;
        }
        snprintf(noproxy, sizeof noproxy, "%.*s,127.0.0.1,localhost,::1", (int) keep, env_np);
    } else {
        snprintf(noproxy, sizeof noproxy, "127.0.0.1,localhost,::1");
    }
    if (r == NULL || c->closing || (r->easy = curl_easy_init()) == NULL) {
        curl_slist_free_all(headers);
        sh_free(body);
        sh_free(r);
        return -1;
    }
    r->c = c;
    r->headers = headers;
    r->body = body;
    r->max = max_bytes;
    r->done = done;
    r->ud = ud;
    curl_easy_setopt(r->easy, CURLOPT_URL, url);
    curl_easy_setopt(r->easy, CURLOPT_POST, 1L);
    curl_easy_setopt(r->easy, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(r->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) len);
    curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(r->easy, CURLOPT_PRIVATE, r);
    curl_easy_setopt(r->easy, CURLOPT_ERRORBUFFER, r->error);
    curl_easy_setopt(r->easy, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(r->easy, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms < 10000 ? timeout_ms : 10000L);
    curl_easy_setopt(r->easy, CURLOPT_NOSIGNAL, 1L);
    /* Cancelling a transfer during a threaded name lookup does not wait for the lookup. */
    curl_easy_setopt(r->easy, CURLOPT_QUICK_EXIT, 1L);
    /* A proxy from the environment is used, but never for the loopback nor the hosts of the
     * user's no_proxy (libcurl copies the string). */
    curl_easy_setopt(r->easy, CURLOPT_NOPROXY, noproxy);
    r->next = c->reqs;
    if (c->reqs)
        c->reqs->prev = r;
    c->reqs = r;
    c->nreqs++;
    if (curl_multi_add_handle(c->multi, r->easy) != CURLM_OK) {
        unlink_req(c, r);
        free_req(r);
        return -1;
    }
    return 0;
}

int sh_curl_uv_active(const sh_curl_uv_t *c)
{
    return c->nreqs;
}

void sh_curl_uv_close(sh_curl_uv_t *c)
{
    if (c == NULL || c->closing)
        return;
    c->closing = 1;
    if (!c->dispatching)
        teardown(c);
}
