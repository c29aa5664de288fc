/* sh_host.h: the host object's insides, shared by the host's C files (not public). */
#ifndef SH_HOST_H
#define SH_HOST_H

#include "streamhost.h"

#include <lua.h>
#include <uv.h>

struct sh_host_s {
    uv_loop_t loop;
    uv_async_t wake;        /* worker threads and sh_host_stop() wake the driver loop */
    uv_timer_t pump_timer;  /* bounds one turn of the loop in sh_ffi_pump() */
    lua_State *L;           /* the driver state: the job script's own */
    int script_ref;         /* the compiled script, in L's registry */
    char *lua_dir;
    char *master;
    char *last_error;
    int stop_requested;     /* atomic */
    int running;
};

/* Replaces the host's last error with a copy of `msg`. */
void sh__host_set_error(sh_host_t *h, const char *msg);

#endif
