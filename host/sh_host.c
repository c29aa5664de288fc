/* sh_host.c: the embedding API: host lifecycle, its loop (own or attached), loading and starting a
 * job script, and the calls into the driver state's dispatch when the loop has news for it. */
#include "sh_host.h"
#include "sh_common.h"
#include "sh_lua.h"

#include <dlfcn.h>
#include <lauxlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#ifndef SH_LUA_DIR
#define SH_LUA_DIR "lua"
#endif
#ifndef SH_UI_DIR
#define SH_UI_DIR "ui"
#endif

/* -- Calls into the driver state ------------------------------------------------------------ */

/* Leaves streamhost.driver.<name> on the stack; 0 or SH_ELUA with *err set. */
static int push_driver_fn(lua_State *L, const char *name, char **err)
{
    lua_getglobal(L, "require");                         /* require */
    lua_pushliteral(L, "streamhost.driver");             /* require name */
    if (sh__lua_pcall(L, 1, 1, err))
        return SH_ELUA;                                  /* driver */
    lua_getfield(L, -1, name);                           /* driver f */
    lua_remove(L, -2);                                   /* f */
    return 0;
}

/* The job is over: record its outcome, stop what still runs (driver.shutdown) and let the
 * loop go (an own loop stops; on an attached one the host's handles no longer hold it). */
static void finish(sh_host_t *h, const char *err)
{
    char *serr = NULL;

    if (h->finished)
        return;
    h->finished = 1;
    h->result = err ? SH_ELUA : 0;
    if (err)
        sh__host_set_error(h, err);
    if (h->L != NULL) {
        h->dispatching = 1;
        if (push_driver_fn(h->L, "shutdown", &serr) == 0)
            sh__lua_pcall(h->L, 0, 0, &serr);            /* - */
        h->dispatching = 0;
        if (serr != NULL && h->result == 0) {
            sh__host_set_error(h, serr);
            h->result = SH_ELUA;
        }
        sh_free(serr);
    }
    if (h->handles_open) {
        uv_timer_stop(&h->timer);
        uv_unref((uv_handle_t *) &h->wake);
    }
    if (h->in_run)
        uv_stop(h->loop);  /* only inside uv_run: a stop flag left set would skip the next run */
}

/* Calls a driver function (pushed, then its nargs arguments) in the driver state; it answers
 * (over, err). Finishes the job when it is over or raised. */
static void call_and_check(sh_host_t *h, int nargs)
{
    lua_State *L = h->L;
    char *err = NULL, *msg = NULL;
    int over;

    h->dispatching = 1;
    if (sh__lua_pcall(L, nargs, 2, &err)) {              /* - */
        h->dispatching = 0;
        finish(h, err ? err : "out of memory in the driver");
        sh_free(err);
        return;
    }                                                    /* over msg */
    h->dispatching = 0;
    over = lua_toboolean(L, -2);
    if (lua_isstring(L, -1))
        msg = sh__strdup(lua_tostring(L, -1));
    lua_pop(L, 2);                                       /* - */
    if (over)
        finish(h, msg);
    sh_free(msg);
}

static void dispatch(sh_host_t *h)
{
    if (h->finished || h->L == NULL || h->dispatching || !h->started)
        return;
    lua_rawgeti(h->L, LUA_REGISTRYINDEX, h->dispatch_ref); /* dispatch */
    call_and_check(h, 0);
}

void sh__host_dispatch_cb(void *ud)
{
    dispatch(ud);
}

static void on_wake(uv_async_t *a)
{
    dispatch(a->data);
}

static void on_timer(uv_timer_t *t)
{
    dispatch(t->data);
}

void sh__host_arm_timer(sh_host_t *h, double ms)
{
    if (!h->handles_open)
        return;
    /* Negative, NaN, infinite or beyond any real wait (a year): no timer at all. */
    if (!(ms >= 0) || ms > 365.0 * 24 * 3600 * 1000) {
        uv_timer_stop(&h->timer);
        return;
    }
    uv_update_time(h->loop);
    uv_timer_start(&h->timer, on_timer, (uint64_t) (ms + 0.999), 0);
}

static void on_handle_closed(uv_handle_t *handle)
{
    sh_host_t *h = handle->data;

    h->handles_closing--;
}

/* -- Lifecycle ---------------------------------------------------------------------------- */

/* Where the host's files (`what`: "lua" or "ui") are: beside the binary that holds this code
 * when it was installed (<prefix>/bin or <prefix>/lib, then <prefix>/share/streamhost/<what>),
 * so an installed tree can move; else the directory compiled in (the source tree's for a build
 * in place, the install prefix's for an installed one). A new string, or NULL. */
static char *find_dir(const char *what, const char *compiled)
{
    Dl_info info;
    char buf[4096];
    struct stat st;
    char *slash;

    if (dladdr((void *) find_dir, &info) && info.dli_fname != NULL
        && snprintf(buf, sizeof buf, "%s", info.dli_fname) < (int) sizeof buf
        && (slash = strrchr(buf, '/')) != NULL) {
        *slash = '\0';
        if (strlen(buf) + 32 < sizeof buf) {
            strcat(buf, "/../share/streamhost/");
            strcat(buf, what);
            if (stat(buf, &st) == 0 && S_ISDIR(st.st_mode))
                return sh__strdup(buf);
        }
    }
    return sh__strdup(compiled);
}

sh_host_t *sh_host_new(int *err)
{
    sh_host_t *h = sh_calloc(1, sizeof(*h));

    if (h == NULL) {
        *err = SH_ENOMEM;
        return NULL;
    }
    h->script_ref = LUA_NOREF;
    h->dispatch_ref = LUA_NOREF;
    h->lua_dir = find_dir("lua", SH_LUA_DIR);
    h->master = sh__strdup("local[*]");
    h->status = sh_status_new(err);
    pthread_mutex_init(&h->embed_mu, NULL);
    if (h->lua_dir == NULL || h->master == NULL || h->status == NULL) {
        sh_free(h->lua_dir);
        sh_free(h->master);
        sh_status_free(h->status);
        pthread_mutex_destroy(&h->embed_mu);
        sh_free(h);
        *err = SH_ENOMEM;
        return NULL;
    }
    return h;
}

int sh_host_attach(sh_host_t *h, uv_loop_t *loop)
{
    if (h->L != NULL || h->loop != NULL || loop == NULL) {
        sh__host_set_error(h, loop == NULL ? "sh_host_attach needs a loop"
                                           : "sh_host_attach must come before sh_host_load");
        return loop == NULL ? SH_EINVAL : SH_ESTATE;
    }
    h->loop = loop;
    h->attached = 1;
    return 0;
}

/* Puts the host's own handles on its loop (its own loop first when not attached). */
static int open_handles(sh_host_t *h)
{
    int rc;

    if (h->loop == NULL) {
        rc = uv_loop_init(&h->own_loop);
        if (rc)
            return rc;
        h->loop = &h->own_loop;
    }
    rc = uv_async_init(h->loop, &h->wake, on_wake);
    if (rc)
        return rc;
    uv_timer_init(h->loop, &h->timer);
    h->wake.data = h->timer.data = h;
    h->handles_open = 1;
    return 0;
}

void sh__host_set_error(sh_host_t *h, const char *msg)
{
    char *copy = sh__strdup(msg ? msg : "");

    if (copy == NULL)
        return;
    sh_free(h->last_error);
    h->last_error = copy;
}

const char *sh_host_last_error(const sh_host_t *h)
{
    return h->last_error ? h->last_error : "";
}

/* Accepts local, local[N] and local[*]; anything else is not a master this host can be. */
static int valid_master(const char *m)
{
    const char *p;

    if (strcmp(m, "local") == 0 || strcmp(m, "local[*]") == 0)
        return 1;
    if (strncmp(m, "local[", 6) != 0)
        return 0;
    for (p = m + 6; *p >= '0' && *p <= '9'; p++)
        ;
    return p > m + 6 && p[0] == ']' && p[1] == '\0' && atoi(m + 6) > 0;
}

int sh_host_set_master(sh_host_t *h, const char *master)
{
    char *copy;

    if (h->L != NULL)
        return SH_ESTATE;
    if (master == NULL || !valid_master(master)) {
        char msg[256];
        snprintf(msg, sizeof msg, "invalid master '%s': expected local, local[N] or local[*]",
                 master ? master : "(null)");
        sh__host_set_error(h, msg);
        return SH_EINVAL;
    }
    copy = sh__strdup(master);
    if (copy == NULL)
        return SH_ENOMEM;
    sh_free(h->master);
    h->master = copy;
    return 0;
}

int sh_host_set_workers(sh_host_t *h, int n)
{
    char buf[32];

    if (n < 1)
        return SH_EINVAL;
    snprintf(buf, sizeof buf, "local[%d]", n);
    return sh_host_set_master(h, buf);
}

int sh_host_set_lua_dir(sh_host_t *h, const char *dir)
{
    char *copy = sh__strdup(dir);

    if (copy == NULL)
        return SH_ENOMEM;
    sh_free(h->lua_dir);
    h->lua_dir = copy;
    return 0;
}

int sh_host_set_ui(sh_host_t *h, const char *addr, int port)
{
    const char *dir = getenv("STREAMHOST_UI_DIR");
    char *err = NULL, *found = NULL;

    if (h->ui != NULL) {
        sh__host_set_error(h, "the status server already runs");
        return SH_ESTATE;
    }
    if (!(dir && dir[0]))
        dir = found = find_dir("ui", SH_UI_DIR);
    h->ui = sh_ui_start(h->status, addr, port, dir ? dir : SH_UI_DIR, &err);
    sh_free(found);
    if (h->ui == NULL) {
        sh__host_set_error(h, err ? err : "status server: out of memory");
        sh_free(err);
        return SH_EINVAL;
    }
    return 0;
}

int sh_host_ui_port(const sh_host_t *h)
{
    return h->ui ? sh_ui_port(h->ui) : 0;
}

/* Tells the status model the script's path and content hash (empty when unreadable: the
 * load reports that). */
static void status_script(sh_host_t *h, const char *script)
{
    char hash[SH_STATUS_HASH_SIZE] = "", *data = NULL;
    FILE *f = fopen(script, "rb");
    size_t cap = 0, len = 0, n;

    while (f != NULL) {
        if (len == cap) {
            char *p = sh_realloc(data, cap = cap ? cap * 2 : 65536);
            if (p == NULL)
                break;
            data = p;
        }
        n = fread(data + len, 1, cap - len, f);
        len += n;
        if (n == 0) {
            sh_status_hash(data, len, hash);
            break;
        }
    }
    if (f != NULL)
        fclose(f);
    sh_free(data);
    sh_status_script(h->status, script, hash);
}

int sh_host_load(sh_host_t *h, const char *script, int argc, const char *const *argv)
{
    lua_State *L;
    int i;

    if (h->L != NULL) {
        sh__host_set_error(h, "a script is already loaded on this host");
        return SH_ESTATE;
    }
    if (!h->handles_open) {
        int rc = open_handles(h);
        if (rc) {
            sh__host_set_error(h, uv_strerror(rc));
            return rc;
        }
    }
    L = sh__lua_new(h->lua_dir);
    if (L == NULL)
        return SH_ENOMEM;
    /* The FFI side finds its host through this light userdata. */
    lua_getglobal(L, "package");                         /* package */
    lua_getfield(L, -1, "loaded");                       /* package loaded */
    lua_pushlightuserdata(L, h);                         /* package loaded host */
    lua_setfield(L, -2, "streamhost.host_pointer");      /* package loaded */
    lua_pop(L, 2);                                       /* - */
    lua_createtable(L, argc, 1);                         /* arg */
    lua_pushstring(L, script);                           /* arg script */
    lua_rawseti(L, -2, 0);                               /* arg */
    for (i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);                      /* arg a */
        lua_rawseti(L, -2, i + 1);                       /* arg */
    }
    lua_setglobal(L, "arg");                             /* - */
    if (luaL_loadfile(L, script) != 0) {                 /* err */
        const char *m = lua_tostring(L, -1);
        char msg[4096];
        snprintf(msg, sizeof msg, "cannot load job script: %s", m ? m : script);
        sh__host_set_error(h, msg);
        lua_close(L);
        return SH_ELUA;
    }
    h->script_ref = luaL_ref(L, LUA_REGISTRYINDEX);      /* - */
    status_script(h, script);
    {
        char *err = NULL;
        if (push_driver_fn(L, "dispatch", &err)) {
            sh__host_set_error(h, err ? err : "out of memory loading the driver");
            sh_free(err);
            lua_close(L);
            return SH_ELUA;
        }                                                /* dispatch */
        h->dispatch_ref = luaL_ref(L, LUA_REGISTRYINDEX); /* - */
    }
    h->L = L;
    return 0;
}

int sh_host_start(sh_host_t *h)
{
    char *err = NULL;

    if (h->L == NULL) {
        sh__host_set_error(h, "no job script is loaded");
        return SH_ESTATE;
    }
    if (h->started)
        return SH_ESTATE;
    h->started = 1;
    if (push_driver_fn(h->L, "start", &err)) {
        finish(h, err ? err : "out of memory starting the driver");
        sh_free(err);
        return h->result;
    }                                                    /* start */
    lua_rawgeti(h->L, LUA_REGISTRYINDEX, h->script_ref); /* start chunk */
    call_and_check(h, 1);                                /* - */
    return h->finished ? h->result : 0;
}

int sh_host_reload_ex(sh_host_t *h, const char *script, int flags)
{
    lua_State *L = h->L;
    char *err = NULL;
    int ok;

    if (script == NULL) {
        sh__host_set_error(h, "sh_host_reload needs a script path");
        return SH_EINVAL;
    }
    if (L == NULL || !h->started || h->finished || h->dispatching) {
        sh__host_set_error(h, h->dispatching ? "sh_host_reload called from inside a host callback"
                                             : "no job runs: nothing to reload");
        return SH_ESTATE;
    }
    if (push_driver_fn(L, "reload", &err)) {
        sh__host_set_error(h, err ? err : "out of memory");
        sh_free(err);
        return SH_ELUA;
    }                                                    /* reload */
    if (luaL_loadfile(L, script) != 0) {                 /* reload err */
        const char *m = lua_tostring(L, -1);
        char msg[4096];
        lua_pop(L, 1);                                   /* reload */
        snprintf(msg, sizeof msg, "cannot load job script: %s", m ? m : script);
        lua_pushnil(L);                                  /* reload nil */
        lua_pushstring(L, script);                       /* reload nil path */
        lua_pushstring(L, msg);                          /* reload nil path msg */
    } else {                                             /* reload chunk */
        lua_pushstring(L, script);                       /* reload chunk path */
        lua_pushboolean(L, flags & SH_RELOAD_DROP_STATE); /* reload chunk path drop */
    }
    h->dispatching = 1;
    if (sh__lua_pcall(L, 3, 2, &err)) {                  /* - */
        h->dispatching = 0;
        sh__host_set_error(h, err ? err : "out of memory in the driver");
        sh_free(err);
        return SH_ELUA;
    }                                                    /* ok msg */
    h->dispatching = 0;
    ok = lua_toboolean(L, -2);
    if (!ok)
        sh__host_set_error(h, lua_isstring(L, -1) ? lua_tostring(L, -1) : "reload rejected");
    lua_pop(L, 2);                                       /* - */
    return ok ? 0 : SH_ELUA;
}

int sh_host_reload(sh_host_t *h, const char *script)
{
    return sh_host_reload_ex(h, script, 0);
}

/* A reload's outcome (sh_ffi_reload_result) and the running script (sh_ffi_script_changed),
 * from the driver's reload code. Loop thread. */
void sh__host_reload_result(sh_host_t *h, int failed, const char *msg)
{
    if (failed)
        sh__host_set_error(h, msg);
}

void sh__host_script_changed(sh_host_t *h, const char *script)
{
    status_script(h, script);
}

int sh_host_run(sh_host_t *h)
{
    int rc;

    if (h->attached) {
        sh__host_set_error(h, "an attached host runs on its embedder's loop: turn that loop");
        return SH_ESTATE;
    }
    if (!h->started) {
        rc = sh_host_start(h);
        if (rc || h->finished)
            return rc;
    }
    if (!h->finished) {
        h->in_run = 1;
        uv_run(h->loop, UV_RUN_DEFAULT);
        h->in_run = 0;
    }
    if (!h->finished) {
        sh__host_set_error(h, "the loop ended before the job");
        return SH_ESTATE;
    }
    return h->result;
}

int sh_host_finished(const sh_host_t *h, int *rc)
{
    if (h->finished && rc != NULL)
        *rc = h->result;
    return h->finished;
}

void sh_host_stop(sh_host_t *h)
{
    __atomic_store_n(&h->stop_requested, 1, __ATOMIC_RELEASE);
    if (__atomic_load_n(&h->handles_open, __ATOMIC_ACQUIRE))
        uv_async_send(&h->wake);
}

static void on_close_walk(uv_handle_t *handle, void *arg)
{
    (void) arg;
    if (!uv_is_closing(handle))
        uv_close(handle, NULL);
}

void sh_host_free(sh_host_t *h)
{
    if (h == NULL)
        return;
    if (h->L != NULL) {
        if (h->started && !h->finished)
            finish(h, NULL);
        /* Closing the state runs the finalizers of pools, receivers and blobs. */
        lua_close(h->L);
        h->L = NULL;
    }
    sh__embed_close_all(h);  /* those the driver did not close (a job that never stopped) */
    if (h->handles_open) {
        h->handles_closing += 2;
        uv_close((uv_handle_t *) &h->wake, on_handle_closed);
        uv_close((uv_handle_t *) &h->timer, on_handle_closed);
        h->handles_open = 0;
        if (h->attached) {
            while (h->handles_closing > 0)
                uv_run(h->loop, UV_RUN_NOWAIT);
        }
    }
    if (!h->attached && h->loop != NULL) {
        uv_walk(h->loop, on_close_walk, NULL);
        uv_run(h->loop, UV_RUN_DEFAULT);
        uv_loop_close(h->loop);
    }
    sh_ui_stop(h->ui);  /* after the loop: the model outlives every reader */
    sh_status_free(h->status);
    sh__outputs_free(h);
    pthread_mutex_destroy(&h->embed_mu);
    sh_free(h->lua_dir);
    sh_free(h->master);
    sh_free(h->last_error);
    sh_free(h);
}
