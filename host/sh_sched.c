/* sh_sched.c: the batch scheduler: the batch timer, the inputs' block queues and the batch
 * records. Every received chunk is tagged with the batch of its arrival time, so a batch that
 * is sealed (or run) late still holds exactly its interval's data (Spark's
 * ReceivedBlockTracker.allocateBlocksToBatch). */
#include "sh_sched.h"
#include "sh_common.h"

#include <string.h>

#define FIRST_BLOCK_BYTES (64 * 1024)

typedef struct {
    sh_blob_t *blob;
    int64_t tag;            /* the batch time the block belongs to */
} tagged_t;

/* An input's queue and accounting. Referenced by the scheduler and by every record that holds
 * some of its blocks, so a record released after the scheduler still finds it. */
typedef struct input_s {
    int refs;
    int kind;
    size_t block_bytes, max_held;
    size_t held;            /* bytes received and in no batch that has started */
    size_t running;         /* bytes of started batches not yet released */
    int paused;
    sh_sched_pause_cb pause;
    void *pause_ud;
    sh_blob_t *open;        /* the block being filled, tagged open_tag */
    int64_t open_tag;
    tagged_t *sealed;       /* full blocks waiting for their batch, oldest first */
    size_t nsealed, cap;
    uint64_t received;
} input_t;

typedef struct {
    input_t *in;
    sh_blob_t **blocks;
    size_t n;
    uint64_t records, bytes;
    uint64_t waiting;       /* bytes that still count as waiting for the input's backpressure */
    uint64_t running;       /* bytes that count as running (the batch started, not released) */
} batch_input_t;

struct sh_batch_s {
    int64_t time;
    int ninputs;
    batch_input_t *in;
    sh_bloblist_t held;     /* what the batch's tasks produced */
    sh_batch_t *next;
};

struct sh_sched_s {
    uv_timer_t timer;
    int64_t batch_ms, next_ms;
    int stopped;
    input_t **inputs;
    int ninputs;
    sh_batch_t *head, *tail; /* sealed, not taken */
    sh_sched_sealed_cb on_sealed;
    void *ud;
};

/* -- Inputs ---------------------------------------------------------------------------------- */

static void input_unref(input_t *in)
{
    size_t i;

    if (--in->refs > 0)
        return;
    for (i = 0; i < in->nsealed; i++)
        sh_blob_unref(in->sealed[i].blob);
    sh_free(in->sealed);
    sh_blob_unref(in->open);
    sh_free(in);
}

/* Moves the open block to the sealed queue. 0 or SH_ENOMEM. */
static int seal_open(input_t *in)
{
    if (in->open == NULL)
        return 0;
    if (in->open->len == 0) {
        sh_blob_unref(in->open);
        in->open = NULL;
        return 0;
    }
    if (in->nsealed == in->cap) {
        size_t cap = in->cap ? in->cap * 2 : 16;
        tagged_t *s = sh_realloc(in->sealed, cap * sizeof(*s));
        if (s == NULL)
            return SH_ENOMEM;
        in->sealed = s;
        in->cap = cap;
    }
    in->sealed[in->nsealed].blob = in->open;
    in->sealed[in->nsealed].tag = in->open_tag;
    in->nsealed++;
    in->open = NULL;
    return 0;
}

/* Backpressure. While a batch of the input runs, reading pauses when max_held bytes wait (and
 * resumes under half of that), so the next batch's data arrives while this one is processed.
 * While none runs (batches are processed faster than they come), up to twice max_held may
 * wait, so a batch can take more than max_held when its interval brought more: otherwise
 * the receiver would idle until the next batch starts, and input would be capped at max_held
 * per interval. Either way the bytes waiting plus those running stay under 2 * max_held. */
static int over_budget(const input_t *in)
{
    return in->held + in->running >= 2 * in->max_held || (in->running > 0 && in->held >= in->max_held);
}

static int under_budget(const input_t *in)
{
    return in->held + in->running < 2 * in->max_held - in->max_held / 4 &&
           (in->running == 0 || in->held < in->max_held / 2);
}

static void set_paused(input_t *in, int paused)
{
    if (in->paused == paused)
        return;
    in->paused = paused;
    if (in->pause)
        in->pause(in->pause_ud, paused);
}

/* The batch a record arriving at `now` belongs to: the first batch time at or after it, and
 * never one already sealed. */
static int64_t batch_of(const sh_sched_t *s, int64_t now)
{
    int64_t zero = s->next_ms - s->batch_ms, k;

    if (now <= s->next_ms)
        return s->next_ms;
    k = (now - zero + s->batch_ms - 1) / s->batch_ms;
    return zero + k * s->batch_ms;
}

int sh_sched_input_new(sh_sched_t *s, int kind, size_t block_bytes, size_t max_held)
{
    input_t *in, **ins;

    ins = sh_realloc(s->inputs, (size_t) (s->ninputs + 1) * sizeof(*ins));
    if (ins == NULL)
        return SH_ENOMEM;
    s->inputs = ins;
    in = sh_calloc(1, sizeof(*in));
    if (in == NULL)
        return SH_ENOMEM;
    in->refs = 1;
    in->kind = kind;
    in->block_bytes = block_bytes ? block_bytes : ((size_t) 1 << 20);
    in->max_held = max_held ? max_held : ((size_t) 256 << 20);
    s->inputs[s->ninputs] = in;
    return s->ninputs++;
}

void sh_sched_input_set_pause(sh_sched_t *s, int input, sh_sched_pause_cb pause, void *ud)
{
    input_t *in = s->inputs[input];

    in->pause = pause;
    in->pause_ud = ud;
}

int sh_sched_input_append(sh_sched_t *s, int input, const char *data, size_t len, uint32_t count)
{
    input_t *in = s->inputs[input];
    int64_t tag = batch_of(s, sh__now_ms());

    if (in->open != NULL && (in->open_tag != tag ||
                             (in->open->len + len > in->open->cap && in->open->len >= in->block_bytes / 2)))
        seal_open(in);
    if (in->open == NULL) {
        size_t cap = in->block_bytes < FIRST_BLOCK_BYTES ? in->block_bytes : FIRST_BLOCK_BYTES;
        in->open = sh_blob_new(in->kind, len > cap ? len : cap);
        if (in->open == NULL)
            return SH_ENOMEM;
        in->open_tag = tag;
    }
    if (sh_blob_append(&in->open, data, len))
        return SH_ENOMEM;
    in->open->count += count;
    in->held += len;
    in->received += count;
    if (in->open->len >= in->block_bytes)
        seal_open(in);
    if (over_budget(in))
        set_paused(in, 1);
    return 0;
}

uint64_t sh_sched_input_received(const sh_sched_t *s, int input)
{
    return s->inputs[input]->received;
}

/* -- Records ---------------------------------------------------------------------------------- */

/* Takes the input's blocks of batches up to t into `bi`. 0 or SH_ENOMEM (nothing taken). */
static int take_blocks(input_t *in, int64_t t, batch_input_t *bi)
{
    size_t n = 0, i, j;

    if (in->open != NULL && in->open_tag <= t && seal_open(in))
        return SH_ENOMEM;
    for (i = 0; i < in->nsealed; i++)
        if (in->sealed[i].tag <= t)
            n++;
    bi->in = in;
    in->refs++;
    if (n == 0)
        return 0;
    bi->blocks = sh_malloc(n * sizeof(*bi->blocks));
    if (bi->blocks == NULL) {
        in->refs--;
        return SH_ENOMEM;
    }
    for (i = 0, j = 0; i < in->nsealed; i++) {
        sh_blob_t *b = in->sealed[i].blob;
        if (in->sealed[i].tag <= t) {
            bi->blocks[bi->n++] = b;
            bi->records += b->count;
            bi->bytes += b->len;
            bi->waiting += b->len;
        } else {
            in->sealed[j++] = in->sealed[i];
        }
    }
    in->nsealed = j;
    return 0;
}

/* Seals batch t from what every input holds for it and queues the record. */
static int seal(sh_sched_t *s, int64_t t)
{
    sh_batch_t *b = sh_calloc(1, sizeof(*b));
    int i;

    if (b == NULL)
        return SH_ENOMEM;
    b->time = t;
    b->in = sh_calloc((size_t) s->ninputs, sizeof(*b->in));
    if (b->in == NULL && s->ninputs > 0) {
        sh_free(b);
        return SH_ENOMEM;
    }
    for (i = 0; i < s->ninputs; i++) {
        if (take_blocks(s->inputs[i], t, &b->in[i])) {
            b->ninputs = i;
            sh_batch_release(b);
            return SH_ENOMEM;
        }
    }
    b->ninputs = s->ninputs;
    if (s->tail)
        s->tail->next = b;
    else
        s->head = b;
    s->tail = b;
    return 0;
}

static void on_timer(uv_timer_t *t);

/* Sets the timer for the next batch time (the wall clock decides, the loop's clock only
 * measures the wait). */
static void arm(sh_sched_t *s)
{
    int64_t wait;

    if (s->stopped)
        return;
    wait = s->next_ms - sh__now_ms();
    uv_update_time(s->timer.loop);  /* Lua may have run long since the loop last looked */
    uv_timer_start(&s->timer, on_timer, (uint64_t) (wait > 0 ? wait : 0), 0);
}

static void on_timer(uv_timer_t *t)
{
    sh_sched_t *s = t->data;
    int64_t now = sh__now_ms();
    int sealed = 0;

    while (!s->stopped && s->next_ms <= now) {
        if (seal(s, s->next_ms) == 0)
            sealed++;
        s->next_ms += s->batch_ms;
    }
    arm(s);
    if (sealed)
        s->on_sealed(s->ud);
}

sh_sched_t *sh_sched_new(uv_loop_t *loop, int64_t batch_ms, int64_t first_ms,
                         sh_sched_sealed_cb on_sealed, void *ud, int *err)
{
    sh_sched_t *s;

    if (batch_ms < 1 || on_sealed == NULL) {
        *err = SH_EINVAL;
        return NULL;
    }
    s = sh_calloc(1, sizeof(*s));
    if (s == NULL) {
        *err = SH_ENOMEM;
        return NULL;
    }
    s->batch_ms = batch_ms;
    s->next_ms = first_ms;
    s->on_sealed = on_sealed;
    s->ud = ud;
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    arm(s);
    return s;
}

int sh_sched_flush(sh_sched_t *s)
{
    int sealed = 0, i, more;

    if (s->stopped)
        return 0;
    do {
        if (seal(s, s->next_ms) != 0)
            break;  /* out of memory: what is left is dropped with the scheduler */
        sealed++;
        s->next_ms += s->batch_ms;
        more = 0;
        for (i = 0; i < s->ninputs; i++)
            if (s->inputs[i]->open != NULL || s->inputs[i]->nsealed > 0)
                more = 1;
    } while (more);
    sh_sched_stop(s);
    return sealed;
}

void sh_sched_stop(sh_sched_t *s)
{
    s->stopped = 1;
    uv_timer_stop(&s->timer);
}

int64_t sh_sched_next_time(const sh_sched_t *s)
{
    return s->stopped ? -1 : s->next_ms;
}

sh_batch_t *sh_sched_take(sh_sched_t *s)
{
    sh_batch_t *b = s->head;

    if (b) {
        s->head = b->next;
        if (s->head == NULL)
            s->tail = NULL;
        b->next = NULL;
    }
    return b;
}

static void on_timer_closed(uv_handle_t *h)
{
    sh_free(h->data);
}

void sh_sched_free(sh_sched_t *s)
{
    sh_batch_t *b;
    int i;

    if (s == NULL)
        return;
    sh_sched_stop(s);
    while ((b = sh_sched_take(s)) != NULL)
        sh_batch_release(b);
    for (i = 0; i < s->ninputs; i++) {
        input_t *in = s->inputs[i];
        if (in->pause)  /* a receiver still attached lets go of the scheduler */
            in->pause(in->pause_ud, -1);
        in->pause = NULL;
        input_unref(in);
    }
    sh_free(s->inputs);
    s->inputs = NULL;
    s->ninputs = 0;
    uv_close((uv_handle_t *) &s->timer, on_timer_closed);
}

int64_t sh_batch_time(const sh_batch_t *b)
{
    return b->time;
}

int sh_batch_ninputs(const sh_batch_t *b)
{
    return b->ninputs;
}

sh_blob_t *const *sh_batch_blocks(const sh_batch_t *b, int input, size_t *n)
{
    if (input < 0 || input >= b->ninputs) {
        *n = 0;
        return NULL;
    }
    *n = b->in[input].n;
    return b->in[input].blocks;
}

uint64_t sh_batch_records(const sh_batch_t *b, int input)
{
    return input >= 0 && input < b->ninputs ? b->in[input].records : 0;
}

uint64_t sh_batch_bytes(const sh_batch_t *b, int input)
{
    return input >= 0 && input < b->ninputs ? b->in[input].bytes : 0;
}

/* The record's bytes no longer count as waiting for input i (they count as running when the
 * batch starts): a paused receiver may resume. */
static void stop_waiting(batch_input_t *bi, int running)
{
    input_t *in = bi->in;

    if (in == NULL || bi->waiting == 0)
        return;
    in->held -= bi->waiting;
    if (running) {
        in->running += bi->waiting;
        bi->running += bi->waiting;
    }
    bi->waiting = 0;
    if (in->paused && under_budget(in))
        set_paused(in, 0);
}

/* The record's running bytes are done (it is released). */
static void stop_running(batch_input_t *bi)
{
    input_t *in = bi->in;

    if (in == NULL || bi->running == 0)
        return;
    in->running -= bi->running;
    bi->running = 0;
    if (in->paused && under_budget(in))
        set_paused(in, 0);
}

void sh_batch_start(sh_batch_t *b)
{
    int i;

    for (i = 0; i < b->ninputs; i++)
        stop_waiting(&b->in[i], 1);
}

int sh_batch_hold(sh_batch_t *b, sh_bloblist_t *made)
{
    return sh_bloblist_move(&b->held, made);
}

void sh_batch_release(sh_batch_t *b)
{
    int i;
    size_t j;

    if (b == NULL)
        return;
    for (i = 0; i < b->ninputs; i++) {
        batch_input_t *bi = &b->in[i];
        input_t *in = bi->in;
        for (j = 0; j < bi->n; j++)
            sh_blob_unref(bi->blocks[j]);
        sh_free(bi->blocks);
        if (in == NULL)
            continue;
        stop_waiting(bi, 0);
        stop_running(bi);
        input_unref(in);
    }
    sh_free(b->in);
    sh_bloblist_clear(&b->held);
    sh_free(b);
}
