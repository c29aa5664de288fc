/* sh_lua.h: LuaJIT state lifecycle and protected calls with tracebacks. */
#ifndef SH_LUA_H
#define SH_LUA_H

#include <lua.h>

/* A new state with the standard libraries and package.path/cpath set so that `require
 * "streamhost"` finds the modules under `lua_dir`, and math.random seeded anew: differently in
 * every run and for every state of the process. NULL on allocation failure. Any thread. */
lua_State *sh__lua_new(const char *lua_dir);

/* lua_pcall with a traceback handler. On error pops the message and, when `errmsg` is not NULL,
 * stores a heap copy of "message\ntraceback" there (the caller frees it). Returns 0 or SH_ELUA. */
int sh__lua_pcall(lua_State *L, int nargs, int nresults, char **errmsg);

#endif
