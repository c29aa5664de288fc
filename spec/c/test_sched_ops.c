/* test_sched_ops.c: the batch scheduler's backpressure (host/sh_sched.c: the budget of bytes
 * waiting and running) and the built-in operators' C kernel (host/sh_ops.c: counting lines and
 * words, the buckets' string.buffer encoding). */
#include "sh_common.h"
#include "sh_ops.h"
#include "sh_sched.h"

#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "check.h"

static int paused;

static void on_pause(void *ud, int p)
{
    (void) ud;
    paused = p;
}

static void on_sealed(void *ud)
{
    (void) ud;
}

/* Appends n lines of 1 KiB - 1 bytes plus '\n'. */
static void append_kib(sh_sched_t *s, int in, int n)
{
    char line[1024];

    memset(line, 'x', sizeof line);
    line[1023] = '\n';
    while (n-- > 0)
        sh_sched_input_append(s, in, line, sizeof line, 1);
}

/* A scheduler whose timer never comes due (batches are sealed by sh_sched_flush) and one
 * input of max_held 4 KiB in blocks of 1 KiB, reporting to on_pause. */
static sh_sched_t *new_sched(uv_loop_t *loop, int *in)
{
    int err = 0;
    sh_sched_t *s = sh_sched_new(loop, 1000000, sh__now_ms() + 1000000, on_sealed, NULL, &err);

    if (s == NULL)
        return NULL;
    *in = sh_sched_input_new(s, SH_BLOB_LINES, 1024, 4096);
    paused = 0;
    sh_sched_input_set_pause(s, *in, on_pause, NULL);
    return s;
}

static void free_sched(uv_loop_t *loop, sh_sched_t *s, int in)
{
    sh_sched_input_set_pause(s, in, NULL, NULL);
    sh_sched_free(s);
    uv_run(loop, UV_RUN_DEFAULT);
}

static void test_backpressure_when_no_batch_runs(void)
{
    uv_loop_t loop;
    int in;
    sh_sched_t *s;
    sh_batch_t *b;

    uv_loop_init(&loop);
    s = new_sched(&loop, &in);
    CHECK(s != NULL, "sched_new");
    append_kib(s, in, 7);  /* nothing runs: up to twice max_held may wait */
    CHECK(paused == 0, "paused with 7 KiB waiting and nothing running");
    append_kib(s, in, 1);
    CHECK(paused == 1, "not paused at 2 * max_held waiting");
    sh_sched_flush(s);
    b = sh_sched_take(s);
    CHECK(b != NULL && sh_batch_bytes(b, in) == 8192, "the batch holds the 8 KiB");
    sh_batch_start(b);  /* the whole budget runs: still paused */
    CHECK(paused == 1, "resumed while the running batch holds the whole budget");
    sh_batch_release(b);
    CHECK(paused == 0, "still paused after the batch was released");
    free_sched(&loop, s, in);
    uv_loop_close(&loop);
    OK();
}

static void test_backpressure_while_a_batch_runs(void)
{
    uv_loop_t loop;
    int in;
    sh_sched_t *s;
    sh_batch_t *b;

    uv_loop_init(&loop);
    s = new_sched(&loop, &in);
    CHECK(s != NULL, "sched_new");
    append_kib(s, in, 2);
    sh_sched_flush(s);
    b = sh_sched_take(s);
    CHECK(b != NULL && sh_batch_bytes(b, in) == 2048, "the batch holds 2 KiB");
    sh_batch_start(b);
    append_kib(s, in, 3);  /* a batch runs: max_held waiting pauses */
    CHECK(paused == 0, "paused with 3 KiB waiting while 2 KiB run");
    append_kib(s, in, 1);
    CHECK(paused == 1, "not paused at max_held waiting while a batch runs");
    sh_batch_release(b);
    CHECK(paused == 0, "still paused when no batch runs and 4 KiB wait");
    free_sched(&loop, s, in);
    uv_loop_close(&loop);
    OK();
}

/* Decodes what sh_ops_count_buckets writes (the subset of string.buffer's format it uses). */
static size_t get_wu124(const unsigned char **p)
{
    const unsigned char *q = *p;
    size_t v;

    if (q[0] < 0xe0) {
        v = q[0];
        *p = q + 1;
    } else if (q[0] != 0xff) {
        v = (((size_t) (q[0] & 0x1f) << 8) | q[1]) + 0xe0;
        *p = q + 2;
    } else {
        v = (size_t) q[1] | (size_t) q[2] << 8 | (size_t) q[3] << 16 | (size_t) q[4] << 24;
        *p = q + 5;
    }
    return v;
}

static double get_num(const unsigned char **p)
{
    double x;

    memcpy(&x, *p + 1, 8);  /* little-endian hosts, as the tests run */
    *p += 9;
    return x;
}

static void test_count_words_and_lines(void)
{
    sh_ops_count_t *c = sh_ops_count_new();
    const char *text = "a b  a\n\n\t b\r\xc2\xa0z\nlast";
    sh_blob_t *out[1];
    const unsigned char *p;
    char key[16];
    size_t n, len;

    CHECK(c != NULL, "count_new");
    CHECK(sh_ops_count_lines(c, text, strlen(text), 1, 1) == 0, "count words");
    CHECK(sh_ops_count_size(c) == 4, "4 distinct words (a, b, \\xc2\\xa0z, last), got %zu",
          sh_ops_count_size(c));
    CHECK(sh_ops_count_buckets(c, 1, out) == 0 && out[0] != NULL, "buckets");
    CHECK(out[0]->kind == SH_BLOB_ENCODED && out[0]->count == 9, "9 slots, got %u", out[0]->count);
    p = (const unsigned char *) out[0]->data;
    CHECK(*p++ == 0x0c, "an array from index 1");
    CHECK(get_wu124(&p) == 10, "its size, slot 0 included");
    CHECK(get_num(&p) == 4, "4 pairs");
    n = get_wu124(&p) - 0x20;
    memcpy(key, p, n);
    p += n;
    CHECK(n == 1 && key[0] == 'a' && get_num(&p) == 2, "first seen: a = 2");
    n = get_wu124(&p) - 0x20;
    CHECK(n == 1 && p[0] == 'b', "then b");
    p += n;
    CHECK(get_num(&p) == 2, "b = 2");
    len = get_wu124(&p) - 0x20;
    CHECK(len == 3 && memcmp(p, "\xc2\xa0z", 3) == 0, "a no-break space is not whitespace");
    sh_blob_unref(out[0]);
    sh_ops_count_free(c);
    c = sh_ops_count_new();
    CHECK(sh_ops_count_lines(c, text, strlen(text), 0, 0.5) == 0, "count lines");
    CHECK(sh_ops_count_size(c) == 4, "4 distinct lines (one empty), got %zu", sh_ops_count_size(c));
    CHECK(sh_ops_count_buckets(c, 0, out) == SH_EINVAL, "no partitions");
    sh_ops_count_free(c);
    OK();
}

static void test_buckets_partition_by_portable_hash(void)
{
    sh_ops_count_t *c = sh_ops_count_new();
    sh_blob_t *out[3];
    char text[8000];
    size_t i, len = 0, total = 0;
    int p;

    for (i = 0; i < 1000; i++)
        len += (size_t) snprintf(text + len, sizeof text - len, "w%zu ", i % 500);
    CHECK(sh_ops_count_lines(c, text, len, 1, 1) == 0, "count");
    CHECK(sh_ops_count_buckets(c, 3, out) == 0, "buckets");
    for (p = 0; p < 3; p++) {
        const unsigned char *q;
        size_t pairs, k;

        CHECK(out[p] != NULL, "bucket %d empty", p);
        q = (const unsigned char *) out[p]->data + 1;
        get_wu124(&q);
        pairs = (size_t) get_num(&q);
        total += pairs;
        for (k = 0; k < pairs; k++) {
            size_t n = get_wu124(&q) - 0x20;
            CHECK(sh_ffi_hash_bytes((const char *) q, n, 1) % 3 == (uint32_t) p, "key in bucket %d", p);
            q += n;
            CHECK(get_num(&q) == 2, "each word twice");
        }
        CHECK(q == (const unsigned char *) out[p]->data + out[p]->len, "bucket %d length", p);
        sh_blob_unref(out[p]);
    }
    CHECK(total == 500, "500 keys in all, got %zu", total);
    sh_ops_count_free(c);
    OK();
}

int main(void)
{
    test_backpressure_when_no_batch_runs();
    test_backpressure_while_a_batch_runs();
    test_count_words_and_lines();
    test_buckets_partition_by_portable_hash();
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
