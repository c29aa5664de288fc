/* sh_host.h: the host object's insides, shared by the host's C files (not public). */
#ifndef SH_HOST_H
#define SH_HOST_H

#include "streamhost.h"
#include "sh_status.h"
#include "sh_ui.h"

#include <lua.h>
#include <pthread.h>
#include <uv.h>

struct sh_host_s {
    uv_loop_t own_loop;     /* used unless the host is attached to an embedder's loop */
    uv_loop_t *loop;        /* NULL until load (or attach) */
    int attached;
    int handles_open;       /* wake and timer are initialized on `loop` */
    int handles_closing;    /* close callbacks still to come */
    uv_async_t wake;        /* task completions and sh_host_stop() wake the loop */
    uv_timer_t timer;       /* the driver's earliest deadline (awaitTermination, sleeps) */
    lua_State *L;           /* the driver state: the job script's own */
    int script_ref;         /* the compiled script, in L's registry */
    int dispatch_ref;       /* streamhost.driver.dispatch, in L's registry */
    char *lua_dir;
    char *master;
    char *last_error;
    int stop_requested;     /* atomic: set by sh_host_stop() from any thread */
    int started;
    int finished;           /* the job is over; `result` holds its outcome */
    int result;
    int dispatching;        /* the driver state is running a dispatch (no re-entry) */
    int in_run;             /* sh_host_run is turning the own loop */
    sh_status_t *status;    /* what the status page reports; Lua updates it (streamhost.status) */
    sh_ui_t *ui;            /* the status server, when sh_host_set_ui started one */
    pthread_mutex_t embed_mu; /* guards `embeds` and every embedded stream's queue */
    struct sh_embed_s *embeds; /* the embedded streams that run (sh_embed.c) */
    struct sh_outcb_s *outputs; /* output callbacks by name (sh_embed.c); loop thread */
};

typedef struct sh_embed_s sh_embed_t;

/* Closes every embedded stream still open; their handles close on the loop (counted in
 * handles_closing). Loop thread (sh_host_free). */
void sh__embed_close_all(sh_host_t *h);
/* Frees the output callbacks' registrations. sh_host_free only. */
void sh__outputs_free(sh_host_t *h);

/* Replaces the host's last error with a copy of `msg`. */
void sh__host_set_error(sh_host_t *h, const char *msg);

/* Runs the driver's dispatch (task completions, timers, sealed batches, stop requests) unless
 * the job is over; for the scheduler's sealed callback (`ud` is the host). Loop thread, from a
 * loop callback only: never from inside Lua. */
void sh__host_dispatch_cb(void *ud);

/* For the driver's reload code: a reload's outcome (a failure becomes the last error) and the
 * script the job now runs (the status page shows its path and hash). Loop thread. */
void sh__host_reload_result(sh_host_t *h, int failed, const char *msg);
void sh__host_script_changed(sh_host_t *h, const char *script);

/* Arms the driver timer: dispatch in `ms` milliseconds; a negative ms disarms it. Loop thread. */
void sh__host_arm_timer(sh_host_t *h, double ms);

#endif
