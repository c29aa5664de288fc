/* streamhost.h: the host as a library: create a host, load a job script, run it, stop it. */
#ifndef STREAMHOST_H
#define STREAMHOST_H

#define STREAMHOST_VERSION "0.1.0"

typedef struct sh_host_s sh_host_t;

/* Creates a host with its own libuv loop. Nothing runs until sh_host_run(). Returns NULL and
 * sets *err (negative errno) on failure. The caller owns the host until sh_host_free(). */
sh_host_t *sh_host_new(int *err);

/* The master a job gets when its script passes none to sh.SparkContext: "local", "local[N]" or
 * "local[*]" (the default). Returns 0, or SH_EINVAL (see sh_host_last_error) for another form.
 * Before sh_host_run() only. */
int sh_host_set_master(sh_host_t *h, const char *master);
/* Shorthand for sh_host_set_master(h, "local[n]"). */
int sh_host_set_workers(sh_host_t *h, int n);

/* Where the `streamhost` Lua modules live (the repository's lua/ folder by default). */
int sh_host_set_lua_dir(sh_host_t *h, const char *dir);

/* Loads (compiles) the job script; `argv` (argc strings) reach it as the global table `arg`,
 * with arg[0] the script path, as spark-submit passes them. Returns 0, or a negative code with
 * the reason (file, line) in sh_host_last_error(). The strings are copied. */
int sh_host_load(sh_host_t *h, const char *script, int argc, const char *const *argv);

/* Runs the loaded script on the calling thread (the driver thread) and then, while a
 * StreamingContext is active, its batches, until the job stops itself or sh_host_stop() is
 * called. Returns 0 on a clean stop; otherwise a negative code with the job's error (script
 * file and line) in sh_host_last_error(). */
int sh_host_run(sh_host_t *h);

/* Asks the running job to stop (gracefully: received data is processed first). Safe from any
 * thread and from a signal handler. */
void sh_host_stop(sh_host_t *h);

/* The last error, or "" when there was none. Valid until the next call on the host. */
const char *sh_host_last_error(const sh_host_t *h);

/* Stops whatever still runs, closes the loop and frees the host. Not while sh_host_run() runs. */
void sh_host_free(sh_host_t *h);

#endif
