/* sh_status.c: the status model of a running job (sh_status.h): batch records kept for the
 * status page, inputs and receivers, reload and checkpoint history, counters and histograms. */
#include "sh_status.h"
#include "sh_ckpt_file.h"
#include "sh_common.h"

#include <stdio.h>
#include <string.h>

const double sh_status_buckets[SH_STATUS_NBUCKETS - 1] = {
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
};

/* -- Lifecycle ------------------------------------------------------------------------------- */

sh_status_t *sh_status_new(int *err)
{
    sh_status_t *s = sh_calloc(1, sizeof(*s));

    if (s == NULL || uv_mutex_init(&s->lock) != 0) {
        sh_free(s);
        *err = SH_ENOMEM;
        return NULL;
    }
    s->host_start = sh__now();
    /* Spark names a local application "local-<start ms>". */
    snprintf(s->app_id, sizeof s->app_id, "local-%lld", (long long) sh__now_ms());
    return s;
}

static void batch_free(sh_status_batch_t *b)
{
    int i;

    for (i = 0; i < b->nops; i++) {
        sh_free(b->ops[i].name);
        sh_free(b->ops[i].description);
        sh_free(b->ops[i].failure);
    }
    sh_free(b->ops);
    sh_free(b->input_records);
    sh_free(b);
}

static void inputs_clear(sh_status_t *s)
{
    int i;

    for (i = 0; i < s->ninputs; i++) {
        sh_free(s->inputs[i].name);
        sh_free(s->inputs[i].location);
        sh_free(s->inputs[i].last_error);
    }
    sh_free(s->inputs);
    s->inputs = NULL;
    s->ninputs = 0;
}

static void batches_clear(sh_status_t *s)
{
    size_t i;

    for (i = 0; i < s->nbatches; i++)
        batch_free(s->batches[i]);
    s->nbatches = s->ncompleted = 0;
}

static void reload_clear(sh_status_reload_t *r)
{
    sh_free(r->script);
    sh_free(r->hash);
    sh_free(r->message);
    memset(r, 0, sizeof(*r));
}

void sh_status_free(sh_status_t *s)
{
    int i;

    if (s == NULL)
        return;
    batches_clear(s);
    sh_free(s->batches);
    inputs_clear(s);
    for (i = 0; i < SH_STATUS_RELOADS; i++)
        reload_clear(&s->reloads[i]);
    sh_free(s->app_name);
    sh_free(s->script);
    sh_free(s->script_hash);
    sh_free(s->ckpt.dir);
    sh_free(s->ckpt.message);
    uv_mutex_destroy(&s->lock);
    sh_free(s);
}

void sh_status_lock(sh_status_t *s)
{
    uv_mutex_lock(&s->lock);
}

void sh_status_unlock(sh_status_t *s)
{
    uv_mutex_unlock(&s->lock);
}

/* Replaces *dst with a copy of src (NULL stays NULL). On allocation failure *dst keeps its
 * old value: the model is a report, a lost string is not worth failing a batch for. */
static void set_str(char **dst, const char *src)
{
    char *copy = NULL;

    if (src != NULL && (copy = sh__strdup(src)) == NULL)
        return;
    sh_free(*dst);
    *dst = copy;
}

/* -- Script, context, inputs ------------------------------------------------------------------ */

void sh_status_script(sh_status_t *s, const char *path, const char *hash)
{
    uv_mutex_lock(&s->lock);
    set_str(&s->script, path);
    set_str(&s->script_hash, hash);
    uv_mutex_unlock(&s->lock);
}

void sh_status_started(sh_status_t *s, const char *app_name, double batch_ms, double time)
{
    uv_mutex_lock(&s->lock);
    batches_clear(s);
    inputs_clear(s);
    set_str(&s->app_name, app_name);
    s->batch_ms = (int64_t) batch_ms;
    s->start_time = time;
    s->stop_time = 0;
    uv_mutex_unlock(&s->lock);
}

void sh_status_stopped(sh_status_t *s, double time)
{
    uv_mutex_lock(&s->lock);
    if (s->start_time > 0 && s->stop_time == 0)
        s->stop_time = time;
    uv_mutex_unlock(&s->lock);
}

/* Grows the array *arr of *n elements of `size` bytes to hold index id (new elements zeroed).
 * Ids are stream and output operation ids: small; one past 4095 is refused. 0, or -1 for a bad
 * id or no memory (the array is then as it was). */
static int grow_to(void **arr, int *n, int id, size_t size)
{
    char *p;

    if (id < 0 || id > 4095)
        return -1;
    if (id < *n)
        return 0;
    p = sh_realloc(*arr, (size_t) (id + 1) * size);
    if (p == NULL)
        return -1;
    memset(p + (size_t) *n * size, 0, (size_t) (id + 1 - *n) * size);
    *arr = p;
    *n = id + 1;
    return 0;
}

/* The input record of stream id, grown into existence; NULL for a bad id or no memory. */
static sh_status_input_t *input_at(sh_status_t *s, int id)
{
    return grow_to((void **) &s->inputs, &s->ninputs, id, sizeof(*s->inputs)) ? NULL : &s->inputs[id];
}

void sh_status_input(sh_status_t *s, int id, const char *name, const char *location, int receiver)
{
    sh_status_input_t *in;

    uv_mutex_lock(&s->lock);
    if ((in = input_at(s, id)) != NULL) {
        set_str(&in->name, name);
        set_str(&in->location, location);
        in->receiver = receiver != 0;
        in->defined = 1;
    }
    uv_mutex_unlock(&s->lock);
}

void sh_status_receiver(sh_status_t *s, int id, int active, const char *last_error,
                        double last_error_time)
{
    sh_status_input_t *in;

    uv_mutex_lock(&s->lock);
    if ((in = input_at(s, id)) != NULL) {
        in->active = active != 0;
        if (last_error != NULL && last_error[0] != '\0' && last_error_time != in->last_error_time) {
            in->errors++;
            s->receiver_errors++;
            set_str(&in->last_error, last_error);
            in->last_error_time = last_error_time;
        }
    }
    uv_mutex_unlock(&s->lock);
}

/* -- Batches ----------------------------------------------------------------------------------- */

int sh__status_find(const sh_status_t *s, int64_t time_ms)
{
    size_t i = s->nbatches;

    while (i-- > 0)
        if (s->batches[i]->time_ms == time_ms)
            return (int) i;
    return -1;
}

int sh__status_batch_failed(const sh_status_batch_t *b)
{
    int i;

    for (i = 0; i < b->nops; i++)
        if (b->ops[i].failure != NULL)
            return 1;
    return 0;
}

static sh_status_batch_t *find(sh_status_t *s, double time_ms)
{
    int i = sh__status_find(s, (int64_t) time_ms);

    return i < 0 ? NULL : s->batches[i];
}

/* Drops the oldest completed batches beyond SH_STATUS_KEEP (they are at the front). */
static void trim(sh_status_t *s)
{
    size_t drop = 0;

    while (s->ncompleted > SH_STATUS_KEEP && drop < s->nbatches &&
           s->batches[drop]->state == SH_BATCH_COMPLETED) {
        batch_free(s->batches[drop]);
        drop++;
        s->ncompleted--;
    }
    if (drop > 0) {
        memmove(s->batches, s->batches + drop, (s->nbatches - drop) * sizeof(*s->batches));
        s->nbatches -= drop;
    }
}

void sh_status_batch_submitted(sh_status_t *s, double time_ms, double submitted, double records)
{
    sh_status_batch_t *b;

    uv_mutex_lock(&s->lock);
    if (find(s, time_ms) != NULL)
        goto out;
    if (s->nbatches == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        sh_status_batch_t **bs = sh_realloc(s->batches, cap * sizeof(*bs));
        if (bs == NULL)
            goto out;
        s->batches = bs;
        s->cap = cap;
    }
    if ((b = sh_calloc(1, sizeof(*b))) == NULL)
        goto out;
    b->time_ms = (int64_t) time_ms;
    b->state = SH_BATCH_WAITING;
    b->submitted = submitted;
    b->records = records > 0 ? (uint64_t) records : 0;
    s->batches[s->nbatches++] = b;
out:
    uv_mutex_unlock(&s->lock);
}

void sh_status_batch_input(sh_status_t *s, double time_ms, int id, double records)
{
    sh_status_batch_t *b;

    uv_mutex_lock(&s->lock);
    b = find(s, time_ms);
    if (b != NULL && grow_to((void **) &b->input_records, &b->ninputs, id, sizeof(uint64_t)) == 0)
        b->input_records[id] = records > 0 ? (uint64_t) records : 0;
    uv_mutex_unlock(&s->lock);
}

void sh_status_batch_started(sh_status_t *s, double time_ms, double started)
{
    sh_status_batch_t *b;

    uv_mutex_lock(&s->lock);
    if ((b = find(s, time_ms)) != NULL && b->state == SH_BATCH_WAITING) {
        b->state = SH_BATCH_RUNNING;
        b->started = started;
    }
    uv_mutex_unlock(&s->lock);
}

/* The record of output operation id in b, grown into existence; NULL on a bad id. */
static sh_status_op_t *op_at(sh_status_batch_t *b, int id)
{
    int i = b->nops;

    if (grow_to((void **) &b->ops, &b->nops, id, sizeof(*b->ops)))
        return NULL;
    for (; i < b->nops; i++)
        b->ops[i].id = i;
    return &b->ops[id];
}

void sh_status_op_started(sh_status_t *s, double time_ms, int id, const char *name,
                          const char *description, double start)
{
    sh_status_batch_t *b;
    sh_status_op_t *op;

    uv_mutex_lock(&s->lock);
    if ((b = find(s, time_ms)) != NULL && (op = op_at(b, id)) != NULL) {
        set_str(&op->name, name);
        set_str(&op->description, description);
        op->start = start;
    }
    uv_mutex_unlock(&s->lock);
}

void sh_status_op_completed(sh_status_t *s, double time_ms, int id, double end,
                            const char *failure)
{
    sh_status_batch_t *b;
    sh_status_op_t *op;

    uv_mutex_lock(&s->lock);
    if ((b = find(s, time_ms)) != NULL && (op = op_at(b, id)) != NULL && op->end == 0) {
        op->end = end;
        set_str(&op->failure, failure);
        s->ops_completed++;
        if (failure != NULL)
            s->ops_failed++;
    }
    uv_mutex_unlock(&s->lock);
}

static void observe(sh_status_hist_t *h, double x)
{
    int i = 0;

    if (!(x >= 0))
        x = 0;
    while (i < SH_STATUS_NBUCKETS - 1 && x > sh_status_buckets[i])
        i++;
    h->counts[i]++;
    h->n++;
    h->sum += x;
}

void sh_status_batch_completed(sh_status_t *s, double time_ms, double ended)
{
    sh_status_batch_t *b;
    int i;

    uv_mutex_lock(&s->lock);
    if ((b = find(s, time_ms)) == NULL || b->state == SH_BATCH_COMPLETED)
        goto out;
    if (b->started == 0)
        b->started = ended;
    b->state = SH_BATCH_COMPLETED;
    b->ended = ended;
    s->ncompleted++;
    s->batches_completed++;
    if (sh__status_batch_failed(b))
        s->batches_failed++;
    s->records_processed += b->records;
    for (i = 0; i < b->ninputs && i < s->ninputs; i++)
        s->inputs[i].records += b->input_records[i];
    observe(&s->sched_delay, b->started - b->submitted);
    observe(&s->proc_time, b->ended - b->started);
    observe(&s->total_delay, b->ended - b->submitted);
    trim(s);
out:
    uv_mutex_unlock(&s->lock);
}

void sh_status_listener_error(sh_status_t *s)
{
    uv_mutex_lock(&s->lock);
    s->listener_errors++;
    uv_mutex_unlock(&s->lock);
}

/* -- Reloads and checkpoints ---------------------------------------------------------------- */

void sh_status_reload(sh_status_t *s, double time, const char *script, const char *hash, int ok,
                      const char *message)
{
    sh_status_reload_t *r;

    uv_mutex_lock(&s->lock);
    r = &s->reloads[s->nreloads_total % SH_STATUS_RELOADS];
    reload_clear(r);
    r->time = time;
    r->ok = ok != 0;
    set_str(&r->script, script);
    set_str(&r->hash, hash);
    set_str(&r->message, message);
    s->nreloads_total++;
    if (!ok)
        s->nreloads_failed++;
    else {
        set_str(&s->script, script);
        set_str(&s->script_hash, hash);
    }
    uv_mutex_unlock(&s->lock);
}

void sh_status_checkpoint(sh_status_t *s, const char *dir, double time, double batch_ms,
                          int ok, const char *message)
{
    uv_mutex_lock(&s->lock);
    set_str(&s->ckpt.dir, dir);
    if (dir != NULL) {
        s->ckpt.time = time;
        s->ckpt.batch_ms = (int64_t) batch_ms;
        s->ckpt.ok = ok != 0;
        set_str(&s->ckpt.message, message);
        if (ok)
            s->ckpt.written++;
        else
            s->ckpt.failed++;
    }
    uv_mutex_unlock(&s->lock);
}

void sh_status_checkpoint_dir(sh_status_t *s, const char *dir)
{
    uv_mutex_lock(&s->lock);
    set_str(&s->ckpt.dir, dir);
    uv_mutex_unlock(&s->lock);
}

void sh_status_hash(const void *data, size_t len, char out[SH_STATUS_HASH_SIZE])
{
    snprintf(out, SH_STATUS_HASH_SIZE, "crc32c:%08x:%zu", (unsigned) sh__ckpt_crc32c(0, data, len), len);
}
