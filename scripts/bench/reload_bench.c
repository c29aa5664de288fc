/* reload_bench.c: the embedding benchmarks (scripts/bench/reload runs them), through
 * host/streamhost.h on an attached loop.
 *   reload_bench pause JOB.lua TMPDIR [RELOADS]: a steady push of events into a 0.1 s job; every
 *     second a hot reload alternates JOB.lua and a variant; prints the longest gap between two
 *     batches' outputs around the reloads and away from them, and checks the count.
 *   reload_bench feed JOB.lua CORPUS EXPECTED_WORDS: pushes the corpus's lines from one thread
 *     as fast as the job takes them (SH_EAGAIN: retry) through a word count at local[2]; prints
 *     lines/s and words/s from the first push to the batch that completed the count. */
#include "streamhost.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static double now_s(void)
{
    return (double) uv_hrtime() / 1e9;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;

    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0) {
        if (f)
            fclose(f);
        return NULL;
    }
    rewind(f);
    buf = malloc((size_t) n + 1);
    if (buf == NULL || fread(buf, 1, (size_t) n, f) != (size_t) n) {
        free(buf);
        fclose(f);
        return NULL;
    }
    buf[n] = '\0';
    fclose(f);
    *len = (size_t) n;
    return buf;
}

static sh_host_t *start_host(uv_loop_t *loop, const char *job, int argc, const char **argv,
                             const char *out, sh_output_cb cb, void *ud)
{
    int err = 0;
    sh_host_t *h = sh_host_new(&err);

    if (h == NULL || sh_host_set_master(h, "local[2]") || sh_host_attach(h, loop)
        || sh_host_on_output(h, out, cb, ud) || sh_host_load(h, job, argc, argv)
        || sh_host_start(h)) {
        fprintf(stderr, "reload_bench: %s\n", h ? sh_host_last_error(h) : "no host");
        exit(1);
    }
    return h;
}

static void finish(sh_host_t *h, uv_loop_t *loop)
{
    int rc = 0;

    sh_host_stop(h);
    while (!sh_host_finished(h, &rc))
        uv_run(loop, UV_RUN_ONCE);
    if (rc != 0)
        fprintf(stderr, "reload_bench: the job failed: %s\n", sh_host_last_error(h));
    sh_host_free(h);
}

/* -- pause ------------------------------------------------------------------------------------ */

#define MAX_TICKS 100000

typedef struct {
    sh_host_t *h;
    int pushing;                 /* atomic */
    long pushed;                 /* atomic */
    double ticks[MAX_TICKS];     /* when each batch's output arrived (loop thread) */
    int nticks;
    long count;                  /* the job's running count, last seen */
    double reloads[64];          /* when each reload was asked for */
    int nreloads, want;
    const char *scripts[2];
} pause_t;

static void on_tick(void *ud, const char *name, double t, const sh_record_t *recs, size_t n)
{
    pause_t *p = ud;
    size_t i;

    (void) name;
    (void) t;
    if (p->nticks < MAX_TICKS)
        p->ticks[p->nticks++] = now_s();
    for (i = 0; i < n; i++) {
        long c;
        if (sscanf(recs[i].data, "{\"e\", %ld}", &c) == 1)
            p->count = c;
    }
}

static void *push_events(void *arg)
{
    pause_t *p = arg;

    while (__atomic_load_n(&p->pushing, __ATOMIC_ACQUIRE)) {
        if (sh_host_push(p->h, "events", "e", 1) == 0)
            __atomic_add_fetch(&p->pushed, 1, __ATOMIC_RELAXED);
        usleep(250);  /* about 4000 events a second */
    }
    return NULL;
}

static void on_reload_timer(uv_timer_t *t)
{
    pause_t *p = t->data;

    if (p->nreloads >= p->want) {
        uv_timer_stop(t);
        return;
    }
    p->reloads[p->nreloads] = now_s();
    if (sh_host_reload(p->h, p->scripts[(p->nreloads + 1) % 2]) != 0)
        fprintf(stderr, "reload_bench: reload refused: %s\n", sh_host_last_error(p->h));
    p->nreloads++;
}

static int bench_pause(const char *job, const char *tmp, int reloads)
{
    static pause_t p;
    uv_loop_t loop;
    uv_timer_t timer;
    pthread_t pusher;
    char variant[4096], ck[4096];
    const char *argv[2] = { "pause", ck };
    double worst_reload = 0, worst_quiet = 0, t_end;
    int i, r;
    size_t len;
    char *text = slurp(job, &len);
    FILE *f;

    if (text == NULL || reloads < 1 || reloads > 64)
        return fprintf(stderr, "reload_bench: cannot read %s\n", job), 1;
    snprintf(variant, sizeof variant, "%s/reload_job_variant.lua", tmp);
    snprintf(ck, sizeof ck, "%s/ck", tmp);
    f = fopen(variant, "w");
    fprintf(f, "VARIANT = 2\n%s", text);
    fclose(f);
    free(text);
    p.scripts[0] = job;
    p.scripts[1] = variant;
    p.want = reloads;
    uv_loop_init(&loop);
    p.h = start_host(&loop, job, 2, argv, "tick", on_tick, &p);
    p.pushing = 1;
    pthread_create(&pusher, NULL, push_events, &p);
    uv_timer_init(&loop, &timer);
    timer.data = &p;
    uv_timer_start(&timer, on_reload_timer, 2000, 1000);
    while (p.nreloads < p.want || now_s() < p.reloads[p.want - 1] + 2.0)
        uv_run(&loop, UV_RUN_ONCE);
    __atomic_store_n(&p.pushing, 0, __ATOMIC_RELEASE);
    pthread_join(pusher, NULL);
    t_end = now_s() + 30;
    while (p.count < __atomic_load_n(&p.pushed, __ATOMIC_ACQUIRE) && now_s() < t_end)
        uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *) &timer, NULL);
    finish(p.h, &loop);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    /* A gap belongs to a reload when it ends within 1 s after the reload was asked for. */
    for (i = 1; i < p.nticks; i++) {
        double gap = p.ticks[i] - p.ticks[i - 1];
        int near = 0;
        for (r = 0; r < p.nreloads; r++)
            if (p.ticks[i] >= p.reloads[r] && p.ticks[i] <= p.reloads[r] + 1.0)
                near = 1;
        if (p.ticks[i] < p.reloads[0] - 1.0 && i < 10)
            continue;  /* the job's first batches (workers warming up) */
        if (near && gap > worst_reload)
            worst_reload = gap;
        if (!near && gap > worst_quiet)
            worst_quiet = gap;
    }
    printf("RELOAD_PAUSE reloads=%d batches=%d longest_gap_ms=%.1f longest_gap_without_reload_ms=%.1f interval_ms=100 pushed=%ld counted=%ld status=%s\n",
           p.nreloads, p.nticks, worst_reload * 1000, worst_quiet * 1000, p.pushed, p.count,
           p.pushed == p.count ? "ok" : "MISMATCH");
    return p.pushed == p.count ? 0 : 1;
}

/* -- feed ------------------------------------------------------------------------------------- */

typedef struct {
    sh_host_t *h;
    char *text;
    size_t len;
    long words;                  /* counted by the job (loop thread) */
    double t_first, t_done;
    long lines;
    long eagain;
} feed_t;

static void on_words(void *ud, const char *name, double t, const sh_record_t *recs, size_t n)
{
    feed_t *f = ud;

    (void) name;
    (void) t;
    if (n > 0)
        f->words += atol(recs[0].data);
}

static void *push_lines(void *arg)
{
    feed_t *f = arg;
    char *p = f->text, *end = f->text + f->len;

    f->t_first = now_s();
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t) (end - p));
        size_t n = nl ? (size_t) (nl - p) : (size_t) (end - p);
        int rc;
        while ((rc = sh_host_push(f->h, "lines", p, n)) == SH_EAGAIN) {
            f->eagain++;
            usleep(100);
        }
        if (rc != 0) {
            fprintf(stderr, "reload_bench: push failed: %d\n", rc);
            break;
        }
        f->lines++;
        p += n + 1;
    }
    return NULL;
}

static int bench_feed(const char *job, const char *corpus, long expected)
{
    static feed_t f;
    uv_loop_t loop;
    pthread_t pusher;
    const char *argv[1] = { "feed" };
    double t_end;

    f.text = slurp(corpus, &f.len);
    if (f.text == NULL)
        return fprintf(stderr, "reload_bench: cannot read %s\n", corpus), 1;
    uv_loop_init(&loop);
    f.h = start_host(&loop, job, 1, argv, "words", on_words, &f);
    pthread_create(&pusher, NULL, push_lines, &f);
    t_end = now_s() + 900;
    while (f.words < expected && now_s() < t_end)
        uv_run(&loop, UV_RUN_ONCE);
    f.t_done = now_s();
    pthread_join(pusher, NULL);
    finish(f.h, &loop);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    free(f.text);
    printf("EMBED_FEED lines=%ld words=%ld expected=%ld seconds=%.3f lines_per_s=%.0f words_per_s=%.0f full_queue_retries=%ld status=%s\n",
           f.lines, f.words, expected, f.t_done - f.t_first, f.lines / (f.t_done - f.t_first),
           f.words / (f.t_done - f.t_first), f.eagain, f.words == expected ? "ok" : "MISMATCH");
    return f.words == expected ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "pause") == 0)
        return bench_pause(argv[2], argv[3], argc > 4 ? atoi(argv[4]) : 10);
    if (argc >= 5 && strcmp(argv[1], "feed") == 0)
        return bench_feed(argv[2], argv[3], atol(argv[4]));
    fprintf(stderr, "usage: reload_bench pause JOB.lua TMPDIR [RELOADS]\n"
                    "       reload_bench feed JOB.lua CORPUS EXPECTED_WORDS\n");
    return 2;
}
