/* sh_lua.c: LuaJIT state lifecycle and protected calls with tracebacks. */
#include "sh_lua.h"
#include "sh_common.h"

#include <lauxlib.h>
#include <lualib.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* -- Seeding math.random --------------------------------------------------- */

#define SEED_BITS 40  /* seeds stay exact, and apart, in the double math.randomseed takes */

static uint64_t seed_base;
static uint64_t seed_count;
static pthread_once_t seed_once = PTHREAD_ONCE_INIT;

/* The run's base seed: the kernel's randomness, else the clock and the process id. */
static void init_seed_base(void)
{
    uint64_t x = 0;

    if (getrandom(&x, sizeof x, GRND_NONBLOCK) != (ssize_t) sizeof x) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        x = (uint64_t) ts.tv_sec * 1000000007u ^ (uint64_t) ts.tv_nsec ^ (uint64_t) getpid() << 20;
    }
    seed_base = x;
}

/* Seeds a new state's math.random, as pyspark seeds each worker: every run starts from a new
 * base, and every state of the process (the driver, each worker) gets its own seed after it. */
static void seed_random(lua_State *L)
{
    uint64_t n;

    pthread_once(&seed_once, init_seed_base);
    n = __atomic_add_fetch(&seed_count, 1, __ATOMIC_RELAXED);
    lua_getglobal(L, "math");                            /* math */
    lua_getfield(L, -1, "randomseed");                   /* math randomseed */
    lua_pushnumber(L, (double) ((seed_base + n) & (((uint64_t) 1 << SEED_BITS) - 1)));
    lua_call(L, 1, 0);                                   /* math */
    lua_pop(L, 1);                                       /* - */
}

/* -- States ------------------------------------------------------------------ */

#define LIB_SOURCE_KEY "streamhost.lib_source"

lua_State *sh__lua_new(const char *lua_dir)
{
    lua_State *L = luaL_newstate();

    if (L == NULL)
        return NULL;
    luaL_openlibs(L);
    seed_random(L);
    /* Where streamhost's own modules come from: tracebacks leave their frames out. */
    lua_pushfstring(L, "@%s/streamhost/", lua_dir);      /* source-prefix */
    lua_setfield(L, LUA_REGISTRYINDEX, LIB_SOURCE_KEY);  /* - */
    /* Our modules come first, then whatever the system path already holds (lpeg, busted). */
    lua_getglobal(L, "package");                         /* package */
    lua_getfield(L, -1, "path");                         /* package path */
    lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;%s", lua_dir, lua_dir,
                    lua_tostring(L, -1));                /* package path newpath */
    lua_setfield(L, -3, "path");                         /* package path */
    lua_pop(L, 2);                                       /* - */
    return L;
}

/* Pushes msg followed by the traceback of the job's own frames: the Lua frames whose source
 * does not start with `lib` (streamhost's modules), innermost first; just msg when there are
 * none. */
static void push_user_traceback(lua_State *L, const char *msg, const char *lib)
{
    size_t liblen = strlen(lib);
    lua_Debug ar;
    int level, n = 1;

    lua_pushstring(L, msg);                              /* ... msg */
    for (level = 1; lua_getstack(L, level, &ar); level++) {
        if (!lua_getinfo(L, "Sl", &ar) || ar.what[0] == 'C' || ar.what[0] == 't' ||
            strncmp(ar.source, lib, liblen) == 0)
            continue;
        luaL_checkstack(L, 2, "traceback");
        if (n == 1) {
            lua_pushliteral(L, "\nstack traceback:");    /* ... msg head */
            n++;
        }
        if (ar.what[0] == 'm')
            lua_pushfstring(L, "\n\t%s:%d: in main chunk", ar.short_src, ar.currentline);
        else
            lua_pushfstring(L, "\n\t%s:%d: in function <%s:%d>", ar.short_src, ar.currentline,
                            ar.short_src, ar.linedefined);
        if (++n >= 32) {
            lua_concat(L, n);                            /* ... text */
            n = 1;
        }
    }
    lua_concat(L, n);                                    /* ... text */
}

/* Message handler: appends the traceback to string errors, leaves other values alone. The
 * traceback shows the job's frames only, unless the error comes from streamhost's own code
 * (its message starts with a module's path): then every frame, to find the fault. */
static int traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    const char *lib;

    if (msg == NULL) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            return 1;
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    lua_getfield(L, LUA_REGISTRYINDEX, LIB_SOURCE_KEY);  /* ... msg lib */
    lib = lua_tostring(L, -1);
    if (lib == NULL || strncmp(msg, lib + 1, strlen(lib + 1)) == 0)
        luaL_traceback(L, L, msg, 1);                    /* ... msg lib traceback */
    else
        push_user_traceback(L, msg, lib);                /* ... msg lib traceback */
    return 1;
}

int sh__lua_pcall(lua_State *L, int nargs, int nresults, char **errmsg)
{
    int base = lua_gettop(L) - nargs;                    /* index of the function */
    int rc;

    lua_pushcfunction(L, traceback);                     /* f args... handler */
    lua_insert(L, base);                                 /* handler f args... */
    rc = lua_pcall(L, nargs, nresults, base);
    lua_remove(L, base);                                 /* results or error */
    if (rc == 0)
        return 0;
    if (errmsg != NULL) {
        const char *m = lua_tostring(L, -1);
        *errmsg = sh__strdup(m ? m : "unknown Lua error");
    }
    lua_pop(L, 1);                                       /* - */
    return SH_ELUA;
}
