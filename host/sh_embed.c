/* sh_embed.c: the embedder's side of the data: streams the embedding program pushes records into
 * from any thread (ssc:embeddedStream: a bounded queue per stream, drained on the loop into a
 * scheduler input), and the output callbacks that dstream:output(name) delivers batches to. */
#include "sh_common.h"
#include "sh_host.h"
#include "sh_sched.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define SH_EXPORT __attribute__((visibility("default")))

struct sh_embed_s {
    struct sh_embed_s *next;    /* in h->embeds, under h->embed_mu */
    sh_host_t *host;
    char *name;
    uv_async_t async;           /* a push wakes the loop to drain the queue */
    /* Under h->embed_mu: the queue (records framed as lines), its bounds, the drain's target. */
    char *buf;
    size_t len, cap, max_bytes;
    uint32_t count, max_records;
    sh_sched_t *sched;          /* NULL once the scheduler is gone */
    int input;
    int paused;                 /* the scheduler's input holds max_held: stop draining */
    int closed;                 /* off the list; the async handle is closing */
};

struct sh_outcb_s {
    struct sh_outcb_s *next;
    char *name;
    sh_output_cb cb;
    void *ud;
};

/* -- Pushing (any thread) --------------------------------------------------------------------- */

static sh_embed_t *find_locked(sh_host_t *h, const char *name)
{
    sh_embed_t *e;

    for (e = h->embeds; e != NULL; e = e->next)
        if (strcmp(e->name, name) == 0)
            return e;
    return NULL;
}

int sh_host_push(sh_host_t *h, const char *stream, const void *rec, size_t len)
{
    sh_embed_t *e;
    int rc = 0;

    if (h == NULL || stream == NULL || (rec == NULL && len > 0))
        return SH_EINVAL;
    if (len > 0 && memchr(rec, '\n', len) != NULL)
        return SH_EINVAL;  /* records travel as lines: a newline would split one into two */
    pthread_mutex_lock(&h->embed_mu);
    e = find_locked(h, stream);
    if (e == NULL) {
        rc = SH_EINVAL;
    } else if (e->count >= e->max_records || e->len + len + 1 > e->max_bytes) {
        rc = e->count == 0 ? SH_EINVAL : SH_EAGAIN;  /* a record bigger than the whole queue */
    } else {
        if (e->len + len + 1 > e->cap) {
            size_t cap = e->cap ? e->cap : 4096;
            char *p;
            while (cap < e->len + len + 1)
                cap *= 2;
            p = sh_realloc(e->buf, cap);
            if (p == NULL) {
                pthread_mutex_unlock(&h->embed_mu);
                return SH_ENOMEM;
            }
            e->buf = p;
            e->cap = cap;
        }
        if (len > 0)
            memcpy(e->buf + e->len, rec, len);
        e->buf[e->len + len] = '\n';
        e->len += len + 1;
        e->count++;
        uv_async_send(&e->async);  /* under the lock: the handle is not closed while listed */
    }
    pthread_mutex_unlock(&h->embed_mu);
    return rc;
}

/* -- Draining (loop thread) ------------------------------------------------------------------- */

/* Moves what the queue holds into the scheduler's input unless it pushes back. Taking the
 * queue's buffer under the lock and appending outside it keeps pushers from waiting on the
 * copy into blocks. */
static void drain(sh_embed_t *e)
{
    sh_host_t *h = e->host;
    char *buf;
    size_t len;
    uint32_t count;

    pthread_mutex_lock(&h->embed_mu);
    if (e->paused || e->sched == NULL || e->count == 0) {
        pthread_mutex_unlock(&h->embed_mu);
        return;
    }
    buf = e->buf;
    len = e->len;
    count = e->count;
    e->buf = NULL;
    e->len = e->cap = 0;
    e->count = 0;
    pthread_mutex_unlock(&h->embed_mu);
    if (sh_sched_input_append(e->sched, e->input, buf, len, count))
        fprintf(stderr, "streamhost: embedded stream '%s': out of memory: %u records dropped\n",
                e->name, (unsigned) count);
    sh_free(buf);
}

static void on_async(uv_async_t *a)
{
    drain(a->data);
}

static void on_pause(void *ud, int pause)
{
    sh_embed_t *e = ud;

    pthread_mutex_lock(&e->host->embed_mu);
    if (pause < 0)
        e->sched = NULL;
    else
        e->paused = pause;
    pthread_mutex_unlock(&e->host->embed_mu);
    if (pause == 0)
        drain(e);
}

static void on_closed(uv_handle_t *handle)
{
    sh_embed_t *e = handle->data;

    e->host->handles_closing--;
    sh_free(e->buf);
    sh_free(e->name);
    sh_free(e);
}

/* Opens the embedded stream `name`, fed into input `input` of `sched`, its queue bounded by
 * max_records and max_bytes. NULL with *errmsg (free with sh_ffi_free) when the name is taken
 * or memory is short. The driver owns the stream until sh_ffi_embed_close, which must come
 * before sh_sched_free(sched). Loop thread. */
SH_EXPORT sh_embed_t *sh_ffi_embed_open(sh_host_t *h, sh_sched_t *sched, int input,
                                        const char *name, double max_records, double max_bytes,
                                        char **errmsg)
{
    sh_embed_t *e;
    char buf[512];

    *errmsg = NULL;
    pthread_mutex_lock(&h->embed_mu);
    e = find_locked(h, name);
    pthread_mutex_unlock(&h->embed_mu);
    if (e != NULL) {
        snprintf(buf, sizeof buf, "an embedded stream named '%s' already runs", name);
        *errmsg = sh__strdup(buf);
        return NULL;
    }
    e = sh_calloc(1, sizeof(*e));
    if (e == NULL || (e->name = sh__strdup(name)) == NULL || !h->handles_open
        || uv_async_init(h->loop, &e->async, on_async) != 0) {
        if (e != NULL)
            sh_free(e->name);
        sh_free(e);
        *errmsg = sh__strdup(h->handles_open ? "out of memory" : "the host has no loop");
        return NULL;
    }
    e->async.data = e;
    e->host = h;
    e->sched = sched;
    e->input = input;
    e->max_records = max_records >= 1 ? (uint32_t) max_records : 1;
    e->max_bytes = max_bytes >= 2 ? (size_t) max_bytes : 2;
    sh_sched_input_set_pause(sched, input, on_pause, e);
    pthread_mutex_lock(&h->embed_mu);
    e->next = h->embeds;
    h->embeds = e;
    pthread_mutex_unlock(&h->embed_mu);
    return e;
}

/* Moves what is queued into the scheduler now, unless it pushes back (a graceful stop, before
 * the scheduler seals its last batches). Loop thread. */
SH_EXPORT void sh_ffi_embed_drain(sh_embed_t *e)
{
    drain(e);
}

/* Records waiting in the stream's queue (for tests and status). Loop thread. */
SH_EXPORT double sh_ffi_embed_queued(sh_embed_t *e)
{
    double n;

    pthread_mutex_lock(&e->host->embed_mu);
    n = e->count;
    pthread_mutex_unlock(&e->host->embed_mu);
    return n;
}

/* Closes the stream: pushes to its name fail from now on. What is still queued (pushed after
 * the graceful stop's sh_ffi_embed_drain, or held back by backpressure) is dropped and counted
 * in the return value, for the driver to report. Loop thread. */
SH_EXPORT double sh_ffi_embed_close(sh_embed_t *e)
{
    sh_host_t *h;
    sh_embed_t **p;
    double dropped;

    if (e == NULL || e->closed)
        return 0;
    h = e->host;
    pthread_mutex_lock(&h->embed_mu);
    for (p = &h->embeds; *p != NULL; p = &(*p)->next) {
        if (*p == e) {
            *p = e->next;
            break;
        }
    }
    e->closed = 1;
    dropped = e->count;
    if (e->sched != NULL)
        sh_sched_input_set_pause(e->sched, e->input, NULL, NULL);
    e->sched = NULL;
    pthread_mutex_unlock(&h->embed_mu);
    h->handles_closing++;
    uv_close((uv_handle_t *) &e->async, on_closed);
    return dropped;
}

/* Closes every stream still open (the host is being freed). Loop thread. */
void sh__embed_close_all(sh_host_t *h)
{
    while (h->embeds != NULL)
        sh_ffi_embed_close(h->embeds);
}

/* -- Outputs (loop thread) -------------------------------------------------------------------- */

int sh_host_on_output(sh_host_t *h, const char *name, sh_output_cb cb, void *ud)
{
    struct sh_outcb_s *o;

    if (name == NULL || name[0] == '\0') {
        sh__host_set_error(h, "sh_host_on_output needs an output name");
        return SH_EINVAL;
    }
    for (o = h->outputs; o != NULL; o = o->next) {
        if (strcmp(o->name, name) == 0) {  /* a new callback replaces the old; NULL removes it */
            o->cb = cb;
            o->ud = ud;
            return 0;
        }
    }
    o = sh_calloc(1, sizeof(*o));
    if (o == NULL || (o->name = sh__strdup(name)) == NULL) {
        sh_free(o);
        return SH_ENOMEM;
    }
    o->cb = cb;
    o->ud = ud;
    o->next = h->outputs;
    h->outputs = o;
    return 0;
}

/* Hands one batch of the output `name` to its callback: 1 when one is registered, else 0.
 * The record pointers are the caller's, valid during the call. Loop thread, from the driver. */
SH_EXPORT int sh_ffi_output_deliver(sh_host_t *h, const char *name, double batch_time,
                                    const sh_record_t *recs, size_t n)
{
    struct sh_outcb_s *o;

    for (o = h->outputs; o != NULL; o = o->next) {
        if (strcmp(o->name, name) == 0 && o->cb != NULL) {
            o->cb(o->ud, name, batch_time, recs, n);
            return 1;
        }
    }
    return 0;
}

/* Frees the output registrations (sh_host_free). */
void sh__outputs_free(sh_host_t *h)
{
    struct sh_outcb_s *o;

    while ((o = h->outputs) != NULL) {
        h->outputs = o->next;
        sh_free(o->name);
        sh_free(o);
    }
}
