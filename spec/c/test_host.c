/* test_host.c: the embedding API (host/streamhost.h) used as a library: load, run, stop from
 * another thread, errors with file and line, arguments, workers. */
#include "streamhost.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int passed, failed;

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (!(cond)) {                                                     \
            printf("not ok %s: line %d: %s: ", __func__, __LINE__, #cond); \
            printf(__VA_ARGS__);                                           \
            printf("\n");                                                  \
            failed++;                                                      \
            return;                                                        \
        }                                                                  \
    } while (0)

static char tmpdir[] = "/tmp/sh_test_host_XXXXXX";

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

static char *read_text(const char *name)
{
    static char buf[4096];
    char path[256];
    FILE *f;
    size_t n;

    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void test_runs_a_job_and_passes_arguments(void)
{
    int err = 0, rc;
    char out[300];
    const char *argv[2];
    sh_host_t *h = sh_host_new(&err);
    const char *script = write_script("args.lua",
        "local sh = require 'streamhost'\n"
        "local sc = sh.SparkContext(nil, 'embedded')\n"
        "local n = sc:parallelize({1, 2, 3, 4}, 2):map(function(x) return x * 10 end):reduce(function(a, b) return a + b end)\n"
        "local f = assert(io.open(arg[1], 'w'))\n"
        "f:write(arg[2], ' ', n, ' ', sc.defaultParallelism)\n"
        "f:close()\n");

    CHECK(h != NULL, "sh_host_new failed: %d", err);
    CHECK(sh_host_set_workers(h, 3) == 0, "set_workers");
    snprintf(out, sizeof out, "%s/out.txt", tmpdir);
    argv[0] = out;
    argv[1] = "hello";
    CHECK(sh_host_load(h, script, 2, argv) == 0, "load: %s", sh_host_last_error(h));
    rc = sh_host_run(h);
    CHECK(rc == 0, "run: %s", sh_host_last_error(h));
    CHECK(read_text("out.txt") && strcmp(read_text("out.txt"), "hello 100 3") == 0, "got '%s'",
          read_text("out.txt") ? read_text("out.txt") : "(none)");
    sh_host_free(h);
    printf("ok %s\n", __func__);
    passed++;
}

static void *stop_later(void *arg)
{
    usleep(400 * 1000);
    sh_host_stop(arg);
    return NULL;
}

static void test_stop_from_another_thread_ends_a_streaming_job_gracefully(void)
{
    int err = 0, rc;
    pthread_t t;
    char out[300];
    const char *argv[1];
    sh_host_t *h = sh_host_new(&err);
    /* The script starts a context and returns: the host keeps running it until stopped. */
    const char *script = write_script("stream.lua",
        "local sh = require 'streamhost'\n"
        "local ssc = sh.StreamingContext(sh.SparkContext('local[2]', 'embedded'), 0.05)\n"
        "local seen = 0\n"
        "ssc:queueStream({}, true, {1, 2, 3}):count():foreachRDD(function(rdd)\n"
        "  seen = seen + rdd:collect()[1]\n"
        "  local f = assert(io.open(arg[1], 'w')); f:write(seen); f:close()\n"
        "end)\n"
        "ssc:start()\n");

    CHECK(h != NULL, "sh_host_new failed: %d", err);
    snprintf(out, sizeof out, "%s/seen.txt", tmpdir);
    argv[0] = out;
    CHECK(sh_host_load(h, script, 1, argv) == 0, "load: %s", sh_host_last_error(h));
    pthread_create(&t, NULL, stop_later, h);
    rc = sh_host_run(h);
    pthread_join(t, NULL);
    CHECK(rc == 0, "run: %s", sh_host_last_error(h));
    CHECK(read_text("seen.txt") && atoi(read_text("seen.txt")) >= 6, "seen %s",
          read_text("seen.txt") ? read_text("seen.txt") : "(none)");
    sh_host_free(h);
    printf("ok %s\n", __func__);
    passed++;
}

static void test_syntax_error_names_file_and_line(void)
{
    int err = 0;
    sh_host_t *h = sh_host_new(&err);
    const char *script = write_script("syntax.lua", "local x = 1\nlocal y = = 2\n");

    CHECK(h != NULL, "sh_host_new failed: %d", err);
    CHECK(sh_host_load(h, script, 0, NULL) < 0, "load accepted a syntax error");
    CHECK(strstr(sh_host_last_error(h), "syntax.lua:2:") != NULL, "error: %s", sh_host_last_error(h));
    sh_host_free(h);
    printf("ok %s\n", __func__);
    passed++;
}

static void test_runtime_error_names_file_and_line(void)
{
    int err = 0;
    sh_host_t *h = sh_host_new(&err);
    const char *script = write_script("boom.lua",
        "local sh = require 'streamhost'\n"
        "local sc = sh.SparkContext('local[1]', 'x')\n"
        "sc:parallelize({1}):map(function(x) return x.field end):collect()\n");

    CHECK(h != NULL, "sh_host_new failed: %d", err);
    CHECK(sh_host_load(h, script, 0, NULL) == 0, "load: %s", sh_host_last_error(h));
    CHECK(sh_host_run(h) < 0, "run succeeded");
    CHECK(strstr(sh_host_last_error(h), "boom.lua:3:") != NULL, "error: %s", sh_host_last_error(h));
    sh_host_free(h);
    printf("ok %s\n", __func__);
    passed++;
}

static void test_invalid_master_is_refused(void)
{
    int err = 0;
    sh_host_t *h = sh_host_new(&err);

    CHECK(h != NULL, "sh_host_new failed: %d", err);
    CHECK(sh_host_set_master(h, "yarn") < 0, "accepted yarn");
    CHECK(strstr(sh_host_last_error(h), "invalid master 'yarn'") != NULL, "error: %s", sh_host_last_error(h));
    CHECK(sh_host_set_master(h, "local[0]") < 0, "accepted local[0]");
    CHECK(sh_host_set_master(h, "local[4]") == 0, "refused local[4]");
    CHECK(sh_host_run(h) < 0, "ran with no script");
    sh_host_free(h);
    printf("ok %s\n", __func__);
    passed++;
}

int main(void)
{
    if (mkdtemp(tmpdir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    test_runs_a_job_and_passes_arguments();
    test_stop_from_another_thread_ends_a_streaming_job_gracefully();
    test_syntax_error_names_file_and_line();
    test_runtime_error_names_file_and_line();
    test_invalid_master_is_refused();
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
