/* sh_host.c: the embedding API: host lifecycle, loading and running a job script. */
#include "sh_host.h"
#include "sh_common.h"
#include "sh_lua.h"

#include <lauxlib.h>
#include <stdio.h>
#include <string.h>

#ifndef SH_LUA_DIR
#define SH_LUA_DIR "lua"
#endif

static void on_wake(uv_async_t *a)
{
    (void) a;  /* waking the loop is all it is for; the pump reads the queues */
}

sh_host_t *sh_host_new(int *err)
{
    sh_host_t *h = sh_calloc(1, sizeof(*h));
    int rc;

    if (h == NULL) {
        *err = SH_ENOMEM;
        return NULL;
    }
    h->script_ref = LUA_NOREF;
    rc = uv_loop_init(&h->loop);
    if (rc)
        goto fail_free;
    rc = uv_async_init(&h->loop, &h->wake, on_wake);
    if (rc)
        goto fail_loop;
    uv_timer_init(&h->loop, &h->pump_timer);
    h->lua_dir = sh__strdup(SH_LUA_DIR);
    h->master = sh__strdup("local[*]");
    if (h->lua_dir == NULL || h->master == NULL) {
        rc = SH_ENOMEM;
        goto fail_strings;
    }
    return h;

fail_strings:
    sh_free(h->lua_dir);
    sh_free(h->master);
    uv_close((uv_handle_t *) &h->wake, NULL);
    uv_close((uv_handle_t *) &h->pump_timer, NULL);
    uv_run(&h->loop, UV_RUN_DEFAULT);
fail_loop:
    uv_loop_close(&h->loop);
fail_free:
    sh_free(h);
    *err = rc;
    return NULL;
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

    if (h->running)
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

int sh_host_load(sh_host_t *h, const char *script, int argc, const char *const *argv)
{
    lua_State *L;
    int i;

    if (h->running || h->L != NULL) {
        sh__host_set_error(h, "a script is already loaded on this host");
        return SH_ESTATE;
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
    h->L = L;
    return 0;
}

/* Calls streamhost.driver.<name>() in the driver state; 0 or SH_ELUA with the host's error set. */
static int call_driver(sh_host_t *h, const char *name)
{
    lua_State *L = h->L;
    char *err = NULL;

    lua_getglobal(L, "require");                         /* require */
    lua_pushliteral(L, "streamhost.driver");             /* require name */
    if (sh__lua_pcall(L, 1, 1, &err))
        goto fail;                                       /* driver */
    lua_getfield(L, -1, name);                           /* driver f */
    lua_remove(L, -2);                                   /* f */
    if (sh__lua_pcall(L, 0, 0, &err))
        goto fail;                                       /* - */
    return 0;
fail:
    sh__host_set_error(h, err ? err : "out of memory");
    sh_free(err);
    return SH_ELUA;
}

int sh_host_run(sh_host_t *h)
{
    char *err = NULL;
    int rc;

    if (h->L == NULL) {
        sh__host_set_error(h, "no job script is loaded");
        return SH_ESTATE;
    }
    if (h->running)
        return SH_ESTATE;
    h->running = 1;
    lua_rawgeti(h->L, LUA_REGISTRYINDEX, h->script_ref); /* chunk */
    rc = sh__lua_pcall(h->L, 0, 0, &err);                /* - */
    if (rc) {
        call_driver(h, "shutdown");  /* the script's error is the one to report */
        sh__host_set_error(h, err ? err : "out of memory");
        sh_free(err);
    } else {
        /* A script that started a context without awaiting it keeps running until stopped. */
        rc = call_driver(h, "run_until_stopped");
        if (call_driver(h, "shutdown") && rc == 0)
            rc = SH_ELUA;
    }
    h->running = 0;
    return rc;
}

void sh_host_stop(sh_host_t *h)
{
    __atomic_store_n(&h->stop_requested, 1, __ATOMIC_RELEASE);
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
        /* Closing the state runs the finalizers of pools, receivers and blobs. */
        lua_close(h->L);
        h->L = NULL;
    }
    uv_walk(&h->loop, on_close_walk, NULL);
    uv_run(&h->loop, UV_RUN_DEFAULT);
    uv_loop_close(&h->loop);
    sh_free(h->lua_dir);
    sh_free(h->master);
    sh_free(h->last_error);
    sh_free(h);
}
