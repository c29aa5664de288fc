/* test_host.c: the embedding API (host/streamhost.h) used as a library: load, run, stop from
 * another thread, errors with file and line, arguments, workers. */
#include "streamhost.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <poll.h>
#include <stdio.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

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
    OK();
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
    OK();
}

typedef struct {
    sh_host_t *host;
    int ticks;
} embedder_t;

/* The embedder's own work on its loop: a tick every 10 ms; after 30 ticks it stops the job. */
static void on_embedder_tick(uv_timer_t *t)
{
    embedder_t *e = t->data;

    if (++e->ticks == 30)
        sh_host_stop(e->host);
}

static void test_attached_host_runs_on_the_embedders_loop(void)
{
    int err = 0, rc = -1, turns = 0;
    uv_loop_t loop;
    uv_timer_t tick;
    embedder_t e = { NULL, 0 };
    char out[300];
    const char *argv[1];
    sh_host_t *h = sh_host_new(&err);
    const char *script = write_script("attached.lua",
        "local sh = require 'streamhost'\n"
        "local ssc = sh.StreamingContext(sh.SparkContext('local[2]', 'attached'), 0.05)\n"
        "local batches, total = 0, 0\n"
        "ssc:queueStream({}, true, {1, 2, 3, 4}):map(function(x) return x * 2 end):foreachRDD(function(rdd)\n"
        "  batches = batches + 1\n"
        "  total = total + rdd:reduce(function(a, b) return a + b end)\n"
        "end)\n"
        "ssc:start()\n"
        "ssc:awaitTermination()\n"
        "local f = assert(io.open(arg[1], 'w')); f:write(batches, ' ', total); f:close()\n");

    CHECK(h != NULL, "sh_host_new failed: %d", err);
    CHECK(uv_loop_init(&loop) == 0, "uv_loop_init");
    e.host = h;
    uv_timer_init(&loop, &tick);
    tick.data = &e;
    uv_timer_start(&tick, on_embedder_tick, 10, 10);
    CHECK(sh_host_attach(h, &loop) == 0, "attach: %s", sh_host_last_error(h));
    snprintf(out, sizeof out, "%s/attached.txt", tmpdir);
    argv[0] = out;
    CHECK(sh_host_load(h, script, 1, argv) == 0, "load: %s", sh_host_last_error(h));
    CHECK(sh_host_attach(h, &loop) == SH_ESTATE, "attach after load was accepted");
    CHECK(sh_host_run(h) == SH_ESTATE, "sh_host_run ran an attached host");
    CHECK(sh_host_start(h) == 0, "start: %s", sh_host_last_error(h));
    CHECK(!sh_host_finished(h, NULL), "finished before the loop turned");
    /* The embedder turns its own loop, one turn at a time, until the job is over. */
    while (!sh_host_finished(h, &rc) && turns < 100000) {
        uv_run(&loop, UV_RUN_ONCE);
        turns++;
    }
    CHECK(sh_host_finished(h, &rc) && rc == 0, "rc %d: %s", rc, sh_host_last_error(h));
    CHECK(e.ticks >= 30, "the embedder's timer ticked %d times", e.ticks);
    {
        int batches = 0, total = 0;
        const char *text = read_text("attached.txt");
        CHECK(text && sscanf(text, "%d %d", &batches, &total) == 2, "no output");
        /* 30 ticks of 10 ms at 50 ms batches: several batches, each summing 2+4+6+8. */
        CHECK(batches >= 3 && total == batches * 20, "batches %d total %d", batches, total);
    }
    sh_host_free(h);
    uv_close((uv_handle_t *) &tick, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    /* Nothing of the host's is left on the embedder's loop. */
    CHECK(uv_loop_close(&loop) == 0, "the host left handles on the embedder's loop");
    OK();
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
    OK();
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
    OK();
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
    OK();
}

/* GET path from 127.0.0.1:port; the reply (NUL-ended, cut at 64 KiB) in a static buffer. */
static const char *http_get(int port, const char *path)
{
    static char buf[65536];
    struct sockaddr_in sa;
    struct pollfd p;
    char req[256];
    size_t len = 0;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t) port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    buf[0] = '\0';
    snprintf(req, sizeof req, "GET %s HTTP/1.0\r\n\r\n", path);
    if (connect(fd, (struct sockaddr *) &sa, sizeof sa) == 0 && write(fd, req, strlen(req)) > 0) {
        p.fd = fd;
        p.events = POLLIN;
        while (len < sizeof buf - 1 && poll(&p, 1, 5000) == 1) {
            ssize_t n = read(fd, buf + len, sizeof buf - 1 - len);
            if (n <= 0)
                break;
            len += (size_t) n;
        }
        buf[len] = '\0';
    }
    close(fd);
    return buf;
}

static void *run_host(void *h)
{
    sh_host_run(h);
    return NULL;
}

/* The same status server the executable's --ui starts, from the embedding API: it answers
 * while the job's driver is busy in Lua (no loop turn), and stops with the host. */
static void test_status_server_from_c_answers_while_the_driver_is_busy(void)
{
    int err = 0, port;
    sh_host_t *h = sh_host_new(&err);
    const char *script = write_script("busy.lua",
        "local sh = require 'streamhost'\n"
        "local ssc = sh.StreamingContext(sh.SparkContext('local[1]', 'EmbeddedUi'), 0.05)\n"
        "local n = 0\n"
        "ssc:queueStream({}, true, {1}):foreachRDD(function(rdd)\n"
        "  n = n + 1\n"
        "  if n == 3 then\n"
        "    local f = assert(io.open(arg[1], 'w')); f:close()\n"
        "    local t0 = os.clock(); while os.clock() - t0 < 1.5 do end\n"
        "    ssc:stop(true, false)\n"
        "  end\n"
        "end)\n"
        "ssc:start()\n"
        "ssc:awaitTermination()\n");
    char flag[300];
    const char *argv[1];
    const char *r;
    pthread_t t;

    CHECK(h != NULL, "sh_host_new failed: %d", err);
    CHECK(sh_host_set_ui(h, "256.0.0.1", 0) == SH_EINVAL, "a bad address was taken");
    CHECK(strstr(sh_host_last_error(h), "256.0.0.1:0: not an IP address"), "%s", sh_host_last_error(h));
    CHECK(sh_host_ui_port(h) == 0, "no server yet");
    CHECK(sh_host_set_ui(h, NULL, 0) == 0, "set_ui: %s", sh_host_last_error(h));
    CHECK(sh_host_set_ui(h, NULL, 0) == SH_ESTATE, "a second server");
    port = sh_host_ui_port(h);
    CHECK(port > 0, "port %d", port);
    r = http_get(port, "/api/v1/applications");
    CHECK(strstr(r, "HTTP/1.1 200 OK") && strstr(r, "\"id\":\"local-"), "%s", r);
    snprintf(flag, sizeof flag, "%s/busy.flag", tmpdir);
    argv[0] = flag;
    CHECK(sh_host_load(h, script, 1, argv) == 0, "load: %s", sh_host_last_error(h));
    /* The job runs on a thread of its own while this one asks the status server during the
     * busy batch. */
    CHECK(pthread_create(&t, NULL, run_host, h) == 0, "thread");
    while (access(flag, F_OK) != 0)
        usleep(10 * 1000);
    r = http_get(port, "/metrics");
    CHECK(strstr(r, "HTTP/1.1 200 OK") && strstr(r, "streamhost_batches_running 1\n") &&
          strstr(r, "streamhost_batches_completed_total 2\n") && strstr(r, "app=\"EmbeddedUi\""),
          "during the busy batch: %.2000s", r);
    pthread_join(t, NULL);
    sh_host_free(h);
    OK();
}

int main(void)
{
    if (mkdtemp(tmpdir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    test_runs_a_job_and_passes_arguments();
    test_stop_from_another_thread_ends_a_streaming_job_gracefully();
    test_attached_host_runs_on_the_embedders_loop();
    test_syntax_error_names_file_and_line();
    test_runtime_error_names_file_and_line();
    test_invalid_master_is_refused();
    test_status_server_from_c_answers_while_the_driver_is_busy();
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
