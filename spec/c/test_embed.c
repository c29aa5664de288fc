/* test_embed.c: feeding a job from C and taking its outputs: sh_host_push from several threads
 * into ssc:embeddedStream (bounded queues, SH_EAGAIN when full, nothing lost or doubled),
 * dstream:output callbacks, sh_host_stop from another thread; on the host's own loop and on
 * the embedder's. */
#include "streamhost.h"
#include "sh_host.h"  /* the status model, to see the reload history the status page shows */

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

#define NTHREADS 4
#define PER_THREAD 5000

static char tmpdir[] = "/tmp/reload-test-embed-XXXXXX";

static const char *write_script(const char *name, const char *text)
{
    static char path[256];
    FILE *f;

    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    return path;
}

/* A word count of what the threads push: "t0".."t3", each PER_THREAD times. */
static const char *COUNT_SCRIPT =
    "local sh = require 'streamhost'\n"
    "local ssc = sh.StreamingContext(sh.SparkContext('local[2]', 'embed'), 0.05)\n"
    "ssc:embeddedStream('events', tonumber(arg[1]))\n"
    "  :map(function(s) return {s, 1} end)\n"
    "  :reduceByKey(function(a, b) return a + b end)\n"
    "  :output('counts')\n"
    "ssc:start()\n"
    "ssc:awaitTermination()\n";

typedef struct {
    sh_host_t *h;
    int id;
    int per_thread;     /* records to push, retrying on SH_EAGAIN */
    long eagain;        /* pushes refused because the queue was full */
    int other_errors;
} pusher_t;

/* Totals of the output callback, keyed t0..t3; written on the loop thread, read elsewhere
 * after an acquire load of `batches`. */
typedef struct {
    long per_key[NTHREADS];
    long bad;           /* records the callback could not parse */
    int batches;
} totals_t;

/* The record as a C string in buf (cut to fit): records are not NUL-terminated. */
static const char *record_text(char *buf, size_t size, const sh_record_t *r)
{
    size_t len = r->len < size - 1 ? r->len : size - 1;

    memcpy(buf, r->data, len);
    buf[len] = '\0';
    return buf;
}

static void on_counts(void *ud, const char *name, double batch_time, const sh_record_t *recs,
                      size_t n)
{
    totals_t *t = ud;
    size_t i;

    (void) batch_time;
    if (strcmp(name, "counts") != 0)
        t->bad++;
    for (i = 0; i < n; i++) {
        char buf[64];
        int k, c;
        if (sscanf(record_text(buf, sizeof buf, &recs[i]), "{\"t%d\", %d}", &k, &c) == 2 && k >= 0 && k < NTHREADS)
            __atomic_add_fetch(&t->per_key[k], c, __ATOMIC_RELAXED);
        else
            t->bad++;
    }
    __atomic_add_fetch(&t->batches, 1, __ATOMIC_RELEASE);
}

static long total_of(totals_t *t)
{
    long s = 0;
    int k;

    for (k = 0; k < NTHREADS; k++)
        s += __atomic_load_n(&t->per_key[k], __ATOMIC_ACQUIRE);
    return s;
}

/* Pushes until every record is taken; an unknown stream (not started yet) is waited for. */
static void *push_all(void *arg)
{
    pusher_t *p = arg;
    char rec[16];
    int i = 0, len, rc, waits = 0;

    len = snprintf(rec, sizeof rec, "t%d", p->id);
    while (i < p->per_thread) {
        rc = sh_host_push(p->h, "events", rec, (size_t) len);
        if (rc == 0) {
            i++;
        } else if (rc == SH_EAGAIN) {
            p->eagain++;
            usleep(200);
        } else if (rc == SH_EINVAL && i == 0 && waits++ < 60000) {
            usleep(1000);  /* the job has not started its streams yet */
        } else {
            p->other_errors++;
            return NULL;
        }
    }
    return NULL;
}

typedef struct {
    sh_host_t *h;
    totals_t *totals;
    pthread_t pushers[NTHREADS];
    pusher_t p[NTHREADS];
    long expected;
} controller_t;

/* Waits for the pushers, then for the outputs to add up (or 120 s), then stops the job: from a
 * thread that is not the loop's. */
static void *control(void *arg)
{
    controller_t *c = arg;
    int i;

    for (i = 0; i < NTHREADS; i++)
        pthread_join(c->pushers[i], NULL);
    for (i = 0; i < 120000 && total_of(c->totals) < c->expected; i++)
        usleep(1000);
    sh_host_stop(c->h);
    return NULL;
}

static void test_four_threads_push_on_the_hosts_own_loop_nothing_lost_or_doubled(void)
{
    int err = 0, rc, i;
    pthread_t ctl;
    totals_t totals;
    controller_t c;
    const char *argv[1] = { "16" };  /* a queue of 16 records: the pushers meet a full one */
    sh_host_t *h = sh_host_new(&err);
    const char *script = write_script("count.lua", COUNT_SCRIPT);

    memset(&totals, 0, sizeof totals);
    memset(&c, 0, sizeof c);
    CHECK(h != NULL, "sh_host_new failed: %d", err);
    CHECK(sh_host_on_output(h, "counts", on_counts, &totals) == 0, "on_output before load");
    CHECK(sh_host_load(h, script, 1, argv) == 0, "load: %s", sh_host_last_error(h));
    c.h = h;
    c.totals = &totals;
    c.expected = (long) NTHREADS * PER_THREAD;
    for (i = 0; i < NTHREADS; i++) {
        c.p[i].h = h;
        c.p[i].id = i;
        c.p[i].per_thread = PER_THREAD;
        pthread_create(&c.pushers[i], NULL, push_all, &c.p[i]);
    }
    pthread_create(&ctl, NULL, control, &c);
    rc = sh_host_run(h);
    pthread_join(ctl, NULL);
    CHECK(rc == 0, "run: %s", sh_host_last_error(h));
    for (i = 0; i < NTHREADS; i++) {
        CHECK(c.p[i].other_errors == 0, "pusher %d failed", i);
        CHECK(totals.per_key[i] == PER_THREAD, "t%d counted %ld times, pushed %d", i,
              totals.per_key[i], PER_THREAD);
    }
    CHECK(totals.bad == 0, "%ld records the callback could not read", totals.bad);
    CHECK(totals.batches >= 2, "%d batches", totals.batches);
    /* After the stop the stream is gone: a push is refused, not queued. */
    CHECK(sh_host_push(h, "events", "x", 1) == SH_EINVAL, "push after stop was taken");
    sh_host_free(h);
    OK();
}

typedef struct {
    sh_host_t *h;
    int id;
    int taken, eagain, other;
} filler_t;

/* Pushes until the queue refuses 100 times in a row; the loop does not turn meanwhile. */
static void *fill(void *arg)
{
    filler_t *f = arg;
    int refused = 0;
    char rec[16];
    int len = snprintf(rec, sizeof rec, "t%d", f->id);

    while (refused < 100) {
        int rc = sh_host_push(f->h, "events", rec, (size_t) len);
        if (rc == 0) {
            f->taken++;
            refused = 0;
        } else if (rc == SH_EAGAIN) {
            f->eagain++;
            refused++;
        } else {
            f->other++;
            return NULL;
        }
    }
    return NULL;
}

static void test_a_full_queue_pushes_back_on_the_embedders_loop(void)
{
    int err = 0, rc = -1, i, turns = 0;
    long taken = 0;
    uv_loop_t loop;
    pthread_t t[NTHREADS];
    filler_t f[NTHREADS];
    totals_t totals;
    const char *argv[1] = { "64" };
    sh_host_t *h = sh_host_new(&err);
    const char *script = write_script("count_attached.lua", COUNT_SCRIPT);

    memset(&totals, 0, sizeof totals);
    memset(f, 0, sizeof f);
    CHECK(h != NULL, "sh_host_new failed: %d", err);
    CHECK(uv_loop_init(&loop) == 0, "uv_loop_init");
    CHECK(sh_host_attach(h, &loop) == 0, "attach: %s", sh_host_last_error(h));
    CHECK(sh_host_load(h, script, 1, argv) == 0, "load: %s", sh_host_last_error(h));
    /* Registered after the load: as good as before. */
    CHECK(sh_host_on_output(h, "counts", on_counts, &totals) == 0, "on_output after load");
    CHECK(sh_host_push(h, "events", "early", 5) == SH_EINVAL, "a push before start was taken");
    CHECK(sh_host_start(h) == 0, "start: %s", sh_host_last_error(h));
    CHECK(sh_host_push(h, "nosuch", "x", 1) == SH_EINVAL, "a push to an unknown stream was taken");
    CHECK(sh_host_push(h, "events", "a\nb", 3) == SH_EINVAL, "a record with a newline was taken");
    /* The loop does not turn while four threads push: the queue of 64 fills and refuses. */
    for (i = 0; i < NTHREADS; i++) {
        f[i].h = h;
        f[i].id = i;
        pthread_create(&t[i], NULL, fill, &f[i]);
    }
    for (i = 0; i < NTHREADS; i++) {
        pthread_join(t[i], NULL);
        CHECK(f[i].other == 0, "filler %d got an error", i);
        CHECK(f[i].eagain >= 100, "filler %d refused %d times", i, f[i].eagain);
        taken += f[i].taken;
    }
    CHECK(taken == 64, "the queue of 64 took %ld records", taken);
    /* The loop turns: what was taken arrives, exactly once. */
    while (total_of(&totals) < 64 && turns++ < 200000)
        uv_run(&loop, UV_RUN_ONCE);
    for (i = 0; i < NTHREADS; i++)
        CHECK(totals.per_key[i] == f[i].taken, "t%d counted %ld, taken %d", i, totals.per_key[i],
              f[i].taken);
    /* Room again after the drain. */
    CHECK(sh_host_push(h, "events", "t0", 2) == 0, "push after the drain refused");
    sh_host_stop(h);
    while (!sh_host_finished(h, &rc) && turns++ < 400000)
        uv_run(&loop, UV_RUN_ONCE);
    CHECK(sh_host_finished(h, &rc) && rc == 0, "rc %d: %s", rc, sh_host_last_error(h));
    /* The graceful stop processed the last record too. */
    CHECK(totals.per_key[0] == f[0].taken + 1, "t0 counted %ld, taken %d", totals.per_key[0],
          f[0].taken + 1);
    sh_host_free(h);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(uv_loop_close(&loop) == 0, "the host left handles on the embedder's loop");
    OK();
}

static void test_output_without_callback_and_bad_names(void)
{
    int err = 0, rc;
    sh_host_t *h = sh_host_new(&err);
    const char *script = write_script("badname.lua",
        "local sh = require 'streamhost'\n"
        "local ssc = sh.StreamingContext(sh.SparkContext('local[1]', 'embed'), 0.05)\n"
        "ssc:embeddedStream('')\n");

    CHECK(h != NULL, "sh_host_new failed: %d", err);
    CHECK(sh_host_on_output(h, "", on_counts, NULL) == SH_EINVAL, "an empty output name was taken");
    CHECK(sh_host_load(h, script, 0, NULL) == 0, "load: %s", sh_host_last_error(h));
    rc = sh_host_run(h);
    CHECK(rc < 0, "a nameless embedded stream ran");
    CHECK(strstr(sh_host_last_error(h), "badname.lua:3") != NULL
          && strstr(sh_host_last_error(h), "embeddedStream expects a stream name") != NULL,
          "error: %s", sh_host_last_error(h));
    sh_host_free(h);
    OK();
}

/* -- Reload from C ------------------------------------------------------------------------- */

static const char *STATE_SCRIPT =
    "local sh = require 'streamhost'\n"
    "local sc = sh.SparkContext('local[2]', 'embed')\n"
    "sc:setCheckpointDir(arg[2])\n"
    "local ssc = sh.StreamingContext(sc, 0.05)\n"
    "ssc:addStreamingListener(sh.StreamingListener{ onJobReloaded = function(_, e)\n"
    "  local f = assert(io.open(arg[1], 'a'))\n"
    "  f:write(VERSION, ' ', e.version, ' ', table.concat(e.keptStreams, ','), ' ', tostring(e.error), '\\n')\n"
    "  f:close()\n"
    "end })\n"
    "ssc:embeddedStream('events'):map(function(s) return {s, 1} end)\n"
    "  :updateStateByKey(function(vs, s) s = s or 0; for _, v in ipairs(vs) do s = s + v end; return s end)\n"
    "  :setName('totals'):map(function(kv) return {VERSION .. ':' .. kv[1], kv[2]} end):output('latest')\n"
    "ssc:start()\n"
    "ssc:awaitTermination()\n";

typedef struct {
    char version[8];
    long total;
    int calls;
} latest_t;

static void on_latest(void *ud, const char *name, double batch_time, const sh_record_t *recs,
                      size_t n)
{
    latest_t *l = ud;
    size_t i;

    (void) name;
    (void) batch_time;
    l->calls++;
    for (i = 0; i < n; i++) {
        char buf[64], v[8];
        long c;
        if (sscanf(record_text(buf, sizeof buf, &recs[i]), "{\"%7[a-z]:t0\", %ld}", v, &c) == 2) {
            snprintf(l->version, sizeof l->version, "%s", v);
            l->total = c;
        }
    }
}

static const char *versioned(const char *name, const char *version)
{
    static char text[4096];

    snprintf(text, sizeof text, "local VERSION = '%s'\n%s", version, STATE_SCRIPT);
    return write_script(name, text);
}

/* Turns the loop until the latest output says `version` and `total` (or many turns). */
static int turn_until(uv_loop_t *loop, latest_t *l, const char *version, long total)
{
    uint64_t deadline = uv_hrtime() + (uint64_t) 60 * 1000000000;

    while (!(strcmp(l->version, version) == 0 && l->total == total) && uv_hrtime() < deadline)
        uv_run(loop, UV_RUN_ONCE);
    return strcmp(l->version, version) == 0 && l->total == total;
}

static void push_n(sh_host_t *h, int n)
{
    int i;

    for (i = 0; i < n; i++)
        if (sh_host_push(h, "events", "t0", 2) != 0)
            break;
}

static void test_reload_from_c_keeps_the_embedded_stream_and_its_state(void)
{
    int err = 0, rc = -1, turns = 0;
    uv_loop_t loop;
    latest_t l;
    char events[256], ck[256], a_path[256], b_path[256];
    const char *argv[2];
    sh_host_t *h = sh_host_new(&err);

    memset(&l, 0, sizeof l);
    snprintf(events, sizeof events, "%s/reloaded.txt", tmpdir);
    snprintf(ck, sizeof ck, "%s/ck", tmpdir);
    argv[0] = events;
    argv[1] = ck;
    snprintf(a_path, sizeof a_path, "%s", versioned("state_a.lua", "a"));
    snprintf(b_path, sizeof b_path, "%s", versioned("state_b.lua", "b"));
    CHECK(h != NULL, "sh_host_new failed: %d", err);
    CHECK(uv_loop_init(&loop) == 0, "uv_loop_init");
    CHECK(sh_host_attach(h, &loop) == 0, "attach");
    CHECK(sh_host_on_output(h, "latest", on_latest, &l) == 0, "on_output");
    CHECK(sh_host_reload(h, b_path) == SH_ESTATE, "a reload before the job runs was taken");
    CHECK(sh_host_load(h, a_path, 2, argv) == 0, "load: %s", sh_host_last_error(h));
    CHECK(sh_host_start(h) == 0, "start: %s", sh_host_last_error(h));
    push_n(h, 100);
    CHECK(turn_until(&loop, &l, "a", 100), "job a: %s %ld", l.version, l.total);
    /* The switch: records pushed while it is under way reach the new job, once. */
    CHECK(sh_host_reload(h, b_path) == 0, "reload: %s", sh_host_last_error(h));
    push_n(h, 100);
    CHECK(turn_until(&loop, &l, "b", 200), "job b: %s %ld", l.version, l.total);
    {
        char *text = NULL;
        FILE *f = fopen(events, "r");
        char line[512] = "";
        uint64_t deadline = uv_hrtime() + (uint64_t) 30 * 1000000000;
        while (f == NULL && uv_hrtime() < deadline) {  /* listeners run on a later turn */
            uv_run(&loop, UV_RUN_ONCE);
            f = fopen(events, "r");
        }
        CHECK(f != NULL, "no onJobReloaded event");
        text = fgets(line, sizeof line, f);
        fclose(f);
        CHECK(text && strcmp(line, "b 1 EmbeddedStream(events),state 'totals' nil\n") == 0,
              "event: %s", line);
    }
    /* A script that does not compile: rejected, named with its line; the job goes on. */
    CHECK(sh_host_reload(h, write_script("bad.lua", "local x = 1\nlocal = 2\n")) == SH_ELUA,
          "a syntax error was taken");
    CHECK(strstr(sh_host_last_error(h), "bad.lua:2:") != NULL, "error: %s", sh_host_last_error(h));
    push_n(h, 50);
    CHECK(turn_until(&loop, &l, "b", 250), "job b after the rejection: %s %ld", l.version, l.total);
    /* A script without the state: refused, then taken with SH_RELOAD_DROP_STATE. */
    {
        const char *c_path = write_script("state_c.lua",
            "local sh = require 'streamhost'\n"
            "local ssc = sh.StreamingContext(sh.SparkContext(), 0.05)\n"
            "ssc:embeddedStream('events'):count():map(function(n) return {'c:t0', n} end):output('latest')\n"
            "ssc:start()\n"
            "ssc:awaitTermination()\n");
        CHECK(sh_host_reload(h, c_path) == SH_ELUA, "a reload dropping state was taken");
        CHECK(strstr(sh_host_last_error(h), "would drop the state of 'totals'") != NULL, "error: %s",
              sh_host_last_error(h));
        CHECK(sh_host_reload_ex(h, c_path, SH_RELOAD_DROP_STATE) == 0, "reload: %s",
              sh_host_last_error(h));
        push_n(h, 7);
        CHECK(turn_until(&loop, &l, "c", 7), "job c: %s %ld", l.version, l.total);
    }
    /* The status page's history: four reloads, two of them failed; the script is c's now. */
    sh_status_lock(h->status);
    rc = h->status->nreloads_total == 4 && h->status->nreloads_failed == 2
         && h->status->script && strstr(h->status->script, "state_c.lua") != NULL;
    sh_status_unlock(h->status);
    CHECK(rc, "status: %llu reloads, %llu failed, script %s",
          (unsigned long long) h->status->nreloads_total,
          (unsigned long long) h->status->nreloads_failed, h->status->script);
    rc = -1;
    sh_host_stop(h);
    while (!sh_host_finished(h, &rc) && turns++ < 400000)
        uv_run(&loop, UV_RUN_ONCE);
    CHECK(sh_host_finished(h, &rc) && rc == 0, "rc %d: %s", rc, sh_host_last_error(h));
    sh_host_free(h);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(uv_loop_close(&loop) == 0, "the host left handles on the embedder's loop");
    OK();
}

int main(void)
{
    if (mkdtemp(tmpdir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    test_four_threads_push_on_the_hosts_own_loop_nothing_lost_or_doubled();
    test_a_full_queue_pushes_back_on_the_embedders_loop();
    test_output_without_callback_and_bad_names();
    test_reload_from_c_keeps_the_embedded_stream_and_its_state();
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
