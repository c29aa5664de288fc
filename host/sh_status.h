/* sh_status.h: the status model of a running job, held in C so that the status page, the
 * REST API and /metrics answer from it while the driver state is busy: batches (the last
 * SH_STATUS_KEEP completed ones, plus those waiting and running) with their output operations,
 * inputs and receivers, the script and its reloads, checkpoints, and cumulative counters.
 *
 * Thread contract: every function here may be called from any thread; each takes the model's
 * mutex for the length of the call (setters copy what they are given and never call out).
 * Renderers (sh_api.c, sh_metrics.c) read the fields between sh_status_lock and
 * sh_status_unlock. Times are epoch seconds (0: not known), batch times epoch milliseconds. */
#ifndef SH_STATUS_H
#define SH_STATUS_H

#include <stdint.h>
#include <uv.h>

#define SH_STATUS_KEEP 1000   /* completed batches kept, as Spark's UI retains */
#define SH_STATUS_RELOADS 50  /* reload history entries kept */
#define SH_STATUS_NBUCKETS 14 /* delay histogram buckets, +Inf included */

extern const double sh_status_buckets[SH_STATUS_NBUCKETS - 1]; /* upper bounds, seconds */

enum { SH_BATCH_WAITING = 0, SH_BATCH_RUNNING = 1, SH_BATCH_COMPLETED = 2 };

typedef struct {
    int id;
    char *name, *description;
    double start, end;
    char *failure;          /* NULL when the operation did not fail */
} sh_status_op_t;

typedef struct {
    int64_t time_ms;
    int state;              /* SH_BATCH_* */
    double submitted, started, ended;
    uint64_t records;
    uint64_t *input_records; /* by input stream id */
    int ninputs;
    sh_status_op_t *ops;    /* by output operation id */
    int nops;
} sh_status_batch_t;

typedef struct {
    char *name, *location;
    int defined;            /* sh_status_input was called for this id */
    int receiver;           /* a receiver (socket...), not a queue or a file stream */
    int active;
    char *last_error;
    double last_error_time;
    uint64_t errors;        /* receiver errors so far */
    uint64_t records;       /* records in batches completed so far */
} sh_status_input_t;

typedef struct {
    double time;
    int ok;
    char *script, *hash, *message;
} sh_status_reload_t;

typedef struct {
    uint64_t counts[SH_STATUS_NBUCKETS]; /* per bucket, not cumulative; the last is +Inf */
    uint64_t n;
    double sum;
} sh_status_hist_t;

typedef struct sh_status_s {
    uv_mutex_t lock;
    char app_id[32];
    char *app_name, *script, *script_hash;
    double host_start;      /* when the host was created */
    double start_time;      /* when the current StreamingContext started (0: none yet) */
    double stop_time;       /* when it stopped (0: running or never started) */
    int64_t batch_ms;
    sh_status_batch_t **batches; /* oldest first: completed, then running, then waiting */
    size_t nbatches, cap, ncompleted;
    sh_status_input_t *inputs;   /* by stream id */
    int ninputs;
    uint64_t batches_completed, batches_failed, records_processed, ops_completed, ops_failed;
    uint64_t receiver_errors, listener_errors;
    sh_status_hist_t sched_delay, proc_time, total_delay;
    sh_status_reload_t reloads[SH_STATUS_RELOADS]; /* a ring: the last nreloads_total */
    uint64_t nreloads_total, nreloads_failed;
    struct {
        char *dir;          /* NULL: checkpointing is off */
        double time;        /* the last write attempt */
        int64_t batch_ms;   /* the batch time it covers */
        int ok;
        char *message;
        uint64_t written, failed;
    } ckpt;
} sh_status_t;

/* A new, empty model. NULL and *err (SH_ENOMEM) on failure. The caller owns it until
 * sh_status_free(). */
sh_status_t *sh_status_new(int *err);
void sh_status_free(sh_status_t *s);

void sh_status_lock(sh_status_t *s);
void sh_status_unlock(sh_status_t *s);

/* -- Setters (any thread; strings are copied; NULL strings are allowed) ------------------- */

/* The job script's path and content hash (the host's load sets them). */
void sh_status_script(sh_status_t *s, const char *path, const char *hash);

/* A StreamingContext started: the previous context's batches and inputs are forgotten (the
 * counters go on). */
void sh_status_started(sh_status_t *s, const char *app_name, double batch_ms, double time);
void sh_status_stopped(sh_status_t *s, double time);

/* Input stream `id` (0, 1, ...) of the running context: its name, location (host:port or
 * ""), whether it is a receiver. */
void sh_status_input(sh_status_t *s, int id, const char *name, const char *location, int receiver);
/* A receiver's state: active or not, and its last error (NULL: none yet). */
void sh_status_receiver(sh_status_t *s, int id, int active, const char *last_error,
                        double last_error_time);

void sh_status_batch_submitted(sh_status_t *s, double time_ms, double submitted, double records);
void sh_status_batch_input(sh_status_t *s, double time_ms, int id, double records);
void sh_status_batch_started(sh_status_t *s, double time_ms, double started);
void sh_status_op_started(sh_status_t *s, double time_ms, int id, const char *name,
                          const char *description, double start);
void sh_status_op_completed(sh_status_t *s, double time_ms, int id, double end,
                            const char *failure);
void sh_status_batch_completed(sh_status_t *s, double time_ms, double ended);
/* A listener raised and was removed. */
void sh_status_listener_error(sh_status_t *s);

/* The result of a hot reload: the new script's path and hash, whether it was taken, and the
 * message (the error when it was rejected). For the reload code (the loop thread calls it in
 * practice; any thread may). */
void sh_status_reload(sh_status_t *s, double time, const char *script, const char *hash, int ok,
                      const char *message);

/* The result of one checkpoint write: the directory, the batch time it covers (epoch ms),
 * whether it was written, and a message (the error when it failed, else NULL). For the
 * checkpoint writer: any thread, including one that writes off the loop. dir NULL says
 * checkpointing is off. */
void sh_status_checkpoint(sh_status_t *s, const char *dir, double time, double batch_ms,
                          int ok, const char *message);

/* Checkpointing is on, into `dir` (NULL: off), before any write is reported. */
void sh_status_checkpoint_dir(sh_status_t *s, const char *dir);

/* -- Readers (with the lock held) --------------------------------------------------------- */

/* Index of batch time_ms in s->batches, or -1. */
int sh__status_find(const sh_status_t *s, int64_t time_ms);
/* Whether a completed batch failed (one of its output operations did). */
int sh__status_batch_failed(const sh_status_batch_t *b);

/* The content hash of `len` bytes as checkpoints and reloads name a script (files.lua's
 * content_hash): "crc32c:<8 hex digits>:<len>", into out[SH_STATUS_HASH_SIZE]. */
#define SH_STATUS_HASH_SIZE 40
void sh_status_hash(const void *data, size_t len, char out[SH_STATUS_HASH_SIZE]);

#endif
