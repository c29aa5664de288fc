/* sh_pool.c: worker threads, each with its own LuaJIT state, and the task queues between them
 * and the driver. */
#include "sh_pool.h"
#include "sh_blob.h"
#include "sh_common.h"
#include "sh_lua.h"

#include <lauxlib.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

typedef struct sh_task_s {
    struct sh_task_s *next;
    uint64_t id;
    char *payload;        /* the task, then the result */
    size_t len;
    int ok;
    sh_bloblist_t made;   /* blobs the task created, one reference each */
    int made_lost;        /* out of memory recording one: the task cannot hand them over */
} sh_task_t;

/* The task the calling worker thread runs, so that blobs it creates are recorded. */
static _Thread_local sh_task_t *current_task;

typedef struct {
    sh_task_t *head, *tail;
} task_queue_t;

typedef struct {
    sh_pool_t *pool;
    int index;
    pthread_t thread;
    task_queue_t own;     /* tasks bound to this worker (partition affinity) */
    int started;
} worker_t;

struct sh_pool_s {
    pthread_mutex_t mu;
    pthread_cond_t work;  /* a task was queued, or the pool is stopping */
    pthread_cond_t ready; /* a worker finished starting */
    pthread_cond_t done_cv; /* a task finished */
    task_queue_t shared;
    task_queue_t done;
    uint64_t next_id;
    int stopping;
    int nready, nfailed;
    char *start_error;
    sh_pool_wake_cb wake;
    void *wake_ud;
    const char *lua_dir;
    int nworkers;
    worker_t workers[];
};

static void queue_push(task_queue_t *q, sh_task_t *t)
{
    t->next = NULL;
    if (q->tail)
        q->tail->next = t;
    else
        q->head = t;
    q->tail = t;
}

static sh_task_t *queue_pop(task_queue_t *q)
{
    sh_task_t *t = q->head;

    if (t) {
        q->head = t->next;
        if (q->head == NULL)
            q->tail = NULL;
    }
    return t;
}

static void queue_free(task_queue_t *q)
{
    sh_task_t *t;

    while ((t = queue_pop(q)) != NULL) {
        sh_free(t->payload);
        sh_bloblist_clear(&t->made);
        sh_free(t);
    }
}

/* Loads the worker runtime and leaves its `run` function on the stack. */
static int open_runtime(lua_State *L, int index, char **errmsg)
{
    lua_getglobal(L, "require");                         /* require */
    lua_pushliteral(L, "streamhost.worker");             /* require name */
    if (sh__lua_pcall(L, 1, 1, errmsg))
        return SH_ELUA;                                  /* runtime */
    lua_getfield(L, -1, "init");                         /* runtime init */
    lua_pushinteger(L, index);                           /* runtime init index */
    if (sh__lua_pcall(L, 1, 0, errmsg))
        return SH_ELUA;                                  /* runtime */
    lua_getfield(L, -1, "run");                          /* runtime run */
    lua_remove(L, -2);                                   /* run */
    return 0;
}

/* Runs one task through the runtime's run(payload) -> ok, result; fills in t's result. */
/* After a task: a full collection when the task grew the heap markedly since the last one
 * (its records are garbage now, and collecting while little is live keeps the worker's peak
 * near one task's working set); after a task that allocated little (an empty batch's, a
 * state commit) none, since a full collection costs as much as the live heap, which compiled
 * traces keep large, and would make small tasks cost tens of milliseconds. */
static void collect_after_task(lua_State *L, int *kb_after_gc)
{
    int kb = lua_gc(L, LUA_GCCOUNT, 0), grew = kb - *kb_after_gc;

    if (grew > 4096 || grew > *kb_after_gc / 4) {
        lua_gc(L, LUA_GCCOLLECT, 0);
        *kb_after_gc = lua_gc(L, LUA_GCCOUNT, 0);
    }
}

static void run_task(lua_State *L, sh_task_t *t)
{
    char *err = NULL;
    const char *res;
    size_t len = 0;
    int rc;

    lua_pushvalue(L, 1);                                 /* run run */
    lua_pushlstring(L, t->payload, t->len);              /* run run payload */
    sh_free(t->payload);
    t->payload = NULL;
    current_task = t;
    rc = sh__lua_pcall(L, 1, 2, &err);                   /* run [ok result] */
    current_task = NULL;
    if (rc) {                                            /* run */
        t->ok = 0;
        t->payload = err;
        t->len = err ? strlen(err) : 0;
        sh_bloblist_clear(&t->made);
        return;
    }
    t->ok = lua_toboolean(L, -2);                        /* run ok result */
    res = lua_tolstring(L, -1, &len);
    if (res == NULL)
        res = "", len = 0;
    t->payload = sh__strndup(res, len);
    t->len = t->payload ? len : 0;
    if (t->payload == NULL)
        t->ok = 0;
    if (t->made_lost && t->ok) {
        sh_free(t->payload);
        t->payload = sh__strdup("out of memory recording the blobs a task made");
        t->len = t->payload ? strlen(t->payload) : 0;
        t->ok = 0;
    }
    if (!t->ok)
        sh_bloblist_clear(&t->made);  /* a failed task's blobs go nowhere */
    lua_pop(L, 2);                                       /* run */
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    sh_pool_t *p = w->pool;
    lua_State *L = sh__lua_new(p->lua_dir);
    char *err = NULL;
    int rc = L ? open_runtime(L, w->index, &err) : SH_ENOMEM, kb_after_gc = 0;

    pthread_mutex_lock(&p->mu);
    if (rc) {
        p->nfailed++;
        if (p->start_error == NULL)
            p->start_error = err ? err : sh__strdup("out of memory starting a worker state");
        else
            sh_free(err);
    }
    p->nready++;
    pthread_cond_broadcast(&p->ready);
    while (rc == 0) {
        sh_task_t *t;

        while (!p->stopping && w->own.head == NULL && p->shared.head == NULL)
            pthread_cond_wait(&p->work, &p->mu);
        if (p->stopping)
            break;
        t = queue_pop(&w->own);
        if (t == NULL)
            t = queue_pop(&p->shared);
        pthread_mutex_unlock(&p->mu);
        run_task(L, t);
        pthread_mutex_lock(&p->mu);
        queue_push(&p->done, t);
        pthread_cond_broadcast(&p->done_cv);
        pthread_mutex_unlock(&p->mu);
        p->wake(p->wake_ud);
        collect_after_task(L, &kb_after_gc);  /* the driver already has the result */
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    if (L)
        lua_close(L);
    return NULL;
}

sh_pool_t *sh_pool_new(int nworkers, const char *lua_dir, sh_pool_wake_cb wake, void *ud,
                       char **errmsg)
{
    sh_pool_t *p;
    int i;

    *errmsg = NULL;
    if (nworkers < 1)
        nworkers = 1;
    p = sh_calloc(1, sizeof(*p) + (size_t) nworkers * sizeof(worker_t));
    if (p == NULL)
        goto fail_nomem;
    p->lua_dir = sh__strdup(lua_dir);
    if (p->lua_dir == NULL)
        goto fail_free;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->ready, NULL);
    pthread_cond_init(&p->done_cv, NULL);
    p->wake = wake;
    p->wake_ud = ud;
    p->nworkers = nworkers;
    p->next_id = 1;
    for (i = 0; i < nworkers; i++) {
        p->workers[i].pool = p;
        p->workers[i].index = i;
        if (pthread_create(&p->workers[i].thread, NULL, worker_main, &p->workers[i]) != 0) {
            pthread_mutex_lock(&p->mu);
            p->nfailed++;
            p->nready++;
            if (p->start_error == NULL)
                p->start_error = sh__strdup("cannot start a worker thread");
            pthread_mutex_unlock(&p->mu);
            continue;
        }
        p->workers[i].started = 1;
    }
    pthread_mutex_lock(&p->mu);
    while (p->nready < nworkers)
        pthread_cond_wait(&p->ready, &p->mu);
    pthread_mutex_unlock(&p->mu);
    if (p->nfailed) {
        *errmsg = p->start_error;
        p->start_error = NULL;
        sh_pool_free(p);
        return NULL;
    }
    return p;

fail_free:
    sh_free(p);
fail_nomem:
    *errmsg = sh__strdup("out of memory creating the worker pool");
    return NULL;
}

uint64_t sh_pool_submit(sh_pool_t *p, int affinity, char *payload, size_t len)
{
    sh_task_t *t = sh_malloc(sizeof(*t));
    uint64_t id;

    if (t == NULL) {
        sh_free(payload);
        return 0;
    }
    t->payload = payload;
    t->len = len;
    t->ok = 0;
    t->made.blobs = NULL;
    t->made.n = t->made.cap = 0;
    t->made_lost = 0;
    pthread_mutex_lock(&p->mu);
    id = t->id = p->next_id++;
    if (affinity >= 0)
        queue_push(&p->workers[affinity % p->nworkers].own, t);
    else
        queue_push(&p->shared, t);
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    return id;
}

int sh_pool_next_done(sh_pool_t *p, uint64_t *id, int *ok, char **result, size_t *len,
                      sh_bloblist_t *made)
{
    sh_task_t *t;

    pthread_mutex_lock(&p->mu);
    t = queue_pop(&p->done);
    pthread_mutex_unlock(&p->mu);
    if (t == NULL)
        return 0;
    *id = t->id;
    *ok = t->ok;
    *result = t->payload;
    *len = t->len;
    *made = t->made;
    sh_free(t);
    return 1;
}

int sh_pool_wait(sh_pool_t *p, int timeout_ms)
{
    struct timespec until;
    int any;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long) (timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&p->mu);
    while (p->done.head == NULL) {
        if (pthread_cond_timedwait(&p->done_cv, &p->mu, &until) != 0)
            break;
    }
    any = p->done.head != NULL;
    pthread_mutex_unlock(&p->mu);
    return any;
}

void sh__pool_task_made(sh_blob_t *b)
{
    sh_task_t *t = current_task;

    if (t != NULL && sh_bloblist_add(&t->made, b) != 0)
        t->made_lost = 1;
}

int sh_pool_size(const sh_pool_t *p)
{
    return p->nworkers;
}

void sh_pool_free(sh_pool_t *p)
{
    int i;

    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    for (i = 0; i < p->nworkers; i++)
        if (p->workers[i].started)
            pthread_join(p->workers[i].thread, NULL);
    for (i = 0; i < p->nworkers; i++)
        queue_free(&p->workers[i].own);
    queue_free(&p->shared);
    queue_free(&p->done);
    sh_free(p->start_error);
    pthread_cond_destroy(&p->ready);
    pthread_cond_destroy(&p->done_cv);
    pthread_cond_destroy(&p->work);
    pthread_mutex_destroy(&p->mu);
    sh_free((char *) p->lua_dir);
    sh_free(p);
}
