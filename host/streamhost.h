/* streamhost.h: the host as a library: create a host, put it on a libuv loop (its own or the
 * embedder's), load a job script, start it, stop it. The contract is shared/API.md "Embedding". */
#ifndef STREAMHOST_H
#define STREAMHOST_H

#include <errno.h>
#include <uv.h>

#define STREAMHOST_VERSION "0.2.0"

/* Every call returns 0 or one of these negative codes (negative errno values, as libuv's), with
 * the reason in sh_host_last_error(), unless its comment says otherwise. */
#define SH_EAGAIN (-EAGAIN)   /* try again later: nothing was taken */
#define SH_EINVAL (-EINVAL)   /* a bad argument */
#define SH_ENOMEM (-ENOMEM)   /* out of memory */
#define SH_ESTATE (-EALREADY) /* the host is in the wrong state for the call */
#define SH_ELUA   (-EPROTO)   /* a Lua error (the job script's): file, line and message */

typedef struct sh_host_s sh_host_t;

/* Creates a host. Nothing runs until sh_host_start() or sh_host_run(). Returns NULL and sets
 * *err (negative errno) on failure. The caller owns the host until sh_host_free(). */
sh_host_t *sh_host_new(int *err);

/* The master a job gets when its script passes none to sh.SparkContext: "local", "local[N]" or
 * "local[*]" (the default). SH_EINVAL for another form. Before sh_host_load() only. */
int sh_host_set_master(sh_host_t *h, const char *master);
/* Shorthand for sh_host_set_master(h, "local[n]"). */
int sh_host_set_workers(sh_host_t *h, int n);

/* Where the `streamhost` Lua modules live (the repository's lua/ folder by default). */
int sh_host_set_lua_dir(sh_host_t *h, const char *dir);

/* Puts the host on the embedder's loop instead of a loop of its own. Before sh_host_load().
 * The embedder turns the loop (on the thread that calls every other sh_host_* function except
 * sh_host_stop); the host never runs it itself. The loop must outlive the host. */
int sh_host_attach(sh_host_t *h, uv_loop_t *loop);

/* Loads (compiles) the job script; `argv` (argc strings) reach it as the global table `arg`,
 * with arg[0] the script path, as spark-submit passes them. Returns 0, or a negative code with
 * the reason (file, line) in sh_host_last_error(). The strings are copied. */
int sh_host_load(sh_host_t *h, const char *script, int argc, const char *const *argv);

/* Runs the script's main chunk as a coroutine on the loop's thread; returns when the chunk has
 * returned or waits (awaitTermination, collect, ...); the loop resumes it. SH_ELUA when the
 * chunk raised before its first wait (the job is then over). Once, after sh_host_load(). */
int sh_host_start(sh_host_t *h);

/* Own loop only: starts the job if sh_host_start() was not called, then turns the loop until
 * the job is over (the script returned and no StreamingContext runs, or it was stopped).
 * Returns 0 on a clean end; otherwise a negative code with the job's error (script file and
 * line) in sh_host_last_error(). SH_ESTATE on an attached host. */
int sh_host_run(sh_host_t *h);

/* 1 when the job is over (its result in *rc when rc is not NULL: 0, or a negative code with
 * the error in sh_host_last_error()), else 0. An embedder turning its own loop asks this to
 * know when to stop. */
int sh_host_finished(const sh_host_t *h, int *rc);

/* Asks the running job to stop gracefully: receivers stop, the data they received is
 * processed, then the job ends. Safe from any thread and from a signal handler. */
void sh_host_stop(sh_host_t *h);

/* Serves the status page (Spark's Streaming tab: live plots, batches, receivers), /metrics
 * (Prometheus text format) and /api/v1 (Spark's REST API for streaming) on addr:port, from a
 * thread and loop of its own, so it answers while the job's functions run. addr NULL means
 * 127.0.0.1 (give "0.0.0.0" or "::" to serve beyond this machine); port 0 picks a free port
 * (sh_host_ui_port tells which). Any time after sh_host_new, once; the server stops in
 * sh_host_free. The page's files come from STREAMHOST_UI_DIR (default: the repository's ui/),
 * the plot library from there or Debian's libjs-dygraphs. Errors (address in use, a missing
 * file) name the address or the file. */
int sh_host_set_ui(sh_host_t *h, const char *addr, int port);
/* The port the status server listens on, or 0 when it does not run. */
int sh_host_ui_port(const sh_host_t *h);

/* -- Feeding records in, taking outputs out ------------------------------------------------ */

/* Pushes one record (`len` bytes, copied) into the stream the script made with
 * ssc:embeddedStream(name). Any thread, at any rate: each stream has a bounded queue (the
 * script's capacity, 10000 records or 16 MiB by default) that the loop drains into the
 * stream's batches, and the queue stops draining while the stream's unprocessed data is at its
 * limit (backpressure). Returns 0 (the record is taken: it reaches exactly one batch), SH_EAGAIN
 * when the queue is full (nothing was taken: push again later), SH_ENOMEM, or SH_EINVAL for a
 * stream that does not run (not defined, not started yet, or stopped), a record holding '\n'
 * (records travel as lines) or one larger than the queue's byte bound. Sets no last error: it
 * may run on any thread, and the code says it all. A graceful stop processes what was pushed
 * before it; a push racing the stop may be refused (SH_EINVAL) or, at worst, counted on stderr
 * as dropped at stop. */
int sh_host_push(sh_host_t *h, const char *stream, const void *rec, size_t len);

/* One record of an output batch: a string as the job made it, or another value in pprint's
 * literal form. Not NUL-terminated. */
typedef struct { const char *data; size_t len; } sh_record_t;

/* Called on the loop thread with every batch of the output dstream:output(name), in batch
 * order, empty batches too; batch_time in epoch seconds. The records are valid during the call
 * only. The callback may call sh_host_push and sh_host_stop, no other sh_host_* function. */
typedef void (*sh_output_cb)(void *ud, const char *name, double batch_time,
                             const sh_record_t *recs, size_t n);

/* Registers (or, with cb NULL, removes) the callback of the output `name`, before or after
 * sh_host_load; a second registration replaces the first. The name is copied; `ud` stays the
 * caller's. An output with no callback drops its batches and says so once on stderr. Loop
 * thread (or before the loop turns). */
int sh_host_on_output(sh_host_t *h, const char *name, sh_output_cb cb, void *ud);

/* -- Hot reload --------------------------------------------------------------------------- */

/* Reload flags. */
#define SH_RELOAD_DROP_STATE 1  /* take a reload even when it drops state nothing takes over */

/* Swaps the running job's script for `script` (the same arguments reach it), in two stages.
 * First the new script runs in a fresh environment of the driver on the running SparkContext
 * until its ssc:start(), while the old job runs: a syntax error, an error before the start or a
 * graph that cannot start rejects it (SH_ELUA, the old job goes on, the reason with file and
 * line in sh_host_last_error()). Then, at the next batch boundary, the job switches: inputs with
 * the same source and arguments keep running (nothing they received is lost or doubled),
 * stateful streams hand their state over by name (setName), else by position among the
 * streams of their operation; a reload that would drop state is refused (SH_ELUA, naming the
 * streams) unless flags has SH_RELOAD_DROP_STATE. If the new job's first batch fails, the old
 * one comes back. Every outcome is printed on stderr, posted to listeners (onJobReloaded)
 * and the status page, and a rejection after this call returned is left in
 * sh_host_last_error(). Returns 0 when the first stage passed. The batch interval stays as it
 * is (a different one is refused). Loop thread, not from inside a host callback (SH_ESTATE). */
int sh_host_reload_ex(sh_host_t *h, const char *script, int flags);
/* sh_host_reload_ex(h, script, 0). */
int sh_host_reload(sh_host_t *h, const char *script);

/* The last error, or "" when there was none. Valid until the next call on the host. */
const char *sh_host_last_error(const sh_host_t *h);

/* Stops whatever still runs, closes the host's handles and frees the host. Not from inside a
 * callback of the host's loop; on an attached loop this turns the loop (UV_RUN_NOWAIT) until
 * the host's own handles are closed. */
void sh_host_free(sh_host_t *h);

#endif
