/* test_status.c: the status model (host/sh_status.c) and what is rendered from it: the last
 * 1000 completed batches kept, delay histograms, /metrics text (sh_metrics.c), /api/v1 JSON
 * (sh_api.c) with escapes and 404s, checkpoint and reload setters, and setters racing a
 * renderer from two threads. */
#include "sh_api.h"
#include "sh_common.h"
#include "sh_metrics.h"
#include "sh_status.h"

#include <stdio.h>
#include <string.h>

#include "check.h"

#define T0 1796000000000.0  /* a batch time, epoch ms */

/* Runs batch t through its whole life: submitted at t, started after sched_s, done after proc_s. */
static void run_batch(sh_status_t *s, double t, double sched_s, double proc_s, const char *failure)
{
    double t_s = t / 1000;

    sh_status_batch_submitted(s, t, t_s, 5);
    sh_status_batch_input(s, t, 0, 2);
    sh_status_batch_input(s, t, 1, 3);
    sh_status_batch_started(s, t, t_s + sched_s);
    sh_status_op_started(s, t, 0, "foreachRDD", "job.lua:12", t_s + sched_s);
    sh_status_op_completed(s, t, 0, t_s + sched_s + proc_s, failure);
    sh_status_batch_completed(s, t, t_s + sched_s + proc_s);
}

static char *render_api(sh_status_t *s, const char *path, const char *query, int *status)
{
    sh_buf_t b;

    sh_buf_init(&b);
    *status = sh_api_render(s, path, query, &b);
    return sh_buf_take(&b, NULL);
}

static char *render_metrics(sh_status_t *s)
{
    sh_buf_t b;

    sh_buf_init(&b);
    sh_metrics_render(s, &b);
    return sh_buf_take(&b, NULL);
}

static sh_status_t *fresh(void)
{
    int err = 0;
    sh_status_t *s = sh_status_new(&err);

    sh_status_started(s, "App", 1000, T0 / 1000 - 1);
    sh_status_input(s, 0, "queueStream", NULL, 0);
    sh_status_input(s, 1, "SocketReceiver(127.0.0.1:9)", "127.0.0.1:9", 1);
    sh_status_receiver(s, 1, 1, NULL, 0);
    return s;
}

static void test_keeps_the_last_1000_completed_batches_and_every_active_one(void)
{
    sh_status_t *s = fresh();
    int i;

    for (i = 0; i < 1100; i++)
        run_batch(s, T0 + i * 1000.0, 0.001, 0.01, NULL);
    sh_status_batch_submitted(s, T0 + 1100 * 1000.0, T0 / 1000 + 1100, 1);  /* waiting */
    CHECK(s->ncompleted == SH_STATUS_KEEP, "%zu completed kept", s->ncompleted);
    CHECK(s->nbatches == SH_STATUS_KEEP + 1, "%zu kept", s->nbatches);
    CHECK(s->batches[0]->time_ms == (int64_t) (T0 + 100 * 1000.0), "the oldest kept is the 101st");
    CHECK(s->batches_completed == 1100 && s->records_processed == 5500, "the counters go on");
    CHECK(s->inputs[1].records == 3300, "%llu records of input 1", (unsigned long long) s->inputs[1].records);
    sh_status_free(s);
    OK();
}

static void test_metrics_have_counters_gauges_and_cumulative_histograms(void)
{
    sh_status_t *s = fresh();
    char *m;

    run_batch(s, T0, 0.002, 0.2, NULL);     /* processing 0.2 s: bucket le=0.25 */
    run_batch(s, T0 + 1000, 0.002, 3, "job.lua:12: boom");  /* 3 s: le=5 */
    sh_status_batch_submitted(s, T0 + 2000, T0 / 1000 + 2, 5);
    sh_status_batch_started(s, T0 + 2000, T0 / 1000 + 2);
    m = render_metrics(s);
    CHECK(m != NULL, "rendered");
    CHECK(strstr(m, "# TYPE streamhost_batches_completed_total counter\nstreamhost_batches_completed_total 2\n"), "%s", m);
    CHECK(strstr(m, "streamhost_batches_failed_total 1\n") && strstr(m, "streamhost_output_operations_failed_total 1\n"), "failures");
    CHECK(strstr(m, "streamhost_batches_running 1\n") && strstr(m, "streamhost_batches_waiting 0\n"), "active batches");
    CHECK(strstr(m, "streamhost_batch_processing_seconds_bucket{le=\"0.1\"} 0\n"), "le=0.1");
    CHECK(strstr(m, "streamhost_batch_processing_seconds_bucket{le=\"0.25\"} 1\n"), "le=0.25");
    CHECK(strstr(m, "streamhost_batch_processing_seconds_bucket{le=\"2.5\"} 1\n"), "le=2.5");
    CHECK(strstr(m, "streamhost_batch_processing_seconds_bucket{le=\"5\"} 2\n"), "le=5");
    CHECK(strstr(m, "streamhost_batch_processing_seconds_bucket{le=\"+Inf\"} 2\n"), "+Inf");
    CHECK(strstr(m, "streamhost_batch_processing_seconds_count 2\n"), "count");
    CHECK(strstr(m, "streamhost_input_records_total{stream_id=\"1\",stream=\"SocketReceiver(127.0.0.1:9)\"} 6\n"), "per input");
    CHECK(strstr(m, "streamhost_receivers_active 1\n"), "receivers");
    CHECK(strstr(m, "batch_time=") == NULL && strstr(m, "batch=") == NULL, "no per-batch labels");
    sh_free(m);
    sh_status_free(s);
    OK();
}

static void test_api_renders_batches_with_escaped_failures_and_404s(void)
{
    sh_status_t *s = fresh();
    char path[256], *j;
    int status;

    run_batch(s, T0, 0.5, 0.25, "job.lua:3: bad \"quote\"\n\tat <here>");
    snprintf(path, sizeof path, "/api/v1/applications/%s/streaming/batches", s->app_id);
    j = render_api(s, path, "", &status);
    CHECK(status == 200 && j, "batches");
    CHECK(strstr(j, "\"batchId\":1796000000000,\"batchTime\":\"2026-11-30T"), "%s", j);
    CHECK(strstr(j, "\"status\":\"COMPLETED\",\"batchDuration\":1000,\"inputSize\":5,\"schedulingDelay\":500,"
                    "\"processingTime\":250,\"totalDelay\":750"), "%s", j);
    CHECK(strstr(j, "\"firstFailureReason\":\"job.lua:3: bad \\\"quote\\\"\\n\\tat \\u003chere>\""), "%s", j);
    CHECK(strstr(j, "\"numFailedOutputOps\":1,\"numTotalOutputOps\":1"), "%s", j);
    sh_free(j);
    snprintf(path, sizeof path, "/api/v1/applications/%s/streaming/batches/1796000000000/operations/0", s->app_id);
    j = render_api(s, path, "", &status);
    CHECK(status == 200 && strstr(j, "\"outputOpId\":0,\"name\":\"foreachRDD\",\"description\":\"job.lua:12\"") &&
          strstr(j, "\"duration\":250"), "%s", j);
    sh_free(j);
    snprintf(path, sizeof path, "/api/v1/applications/%s/streaming/batches/1796000000000/operations/1", s->app_id);
    j = render_api(s, path, "", &status);
    CHECK(status == 404 && strstr(j, "unknown output operation id"), "%d %s", status, j);
    sh_free(j);
    j = render_api(s, "/api/v1/applications/other/streaming/batches", "", &status);
    CHECK(status == 404 && strstr(j, "unknown application id"), "%d %s", status, j);
    sh_free(j);
    snprintf(path, sizeof path, "/api/v1/applications/%s/streaming/receivers/0", s->app_id);
    j = render_api(s, path, "", &status);
    CHECK(status == 404, "input 0 is no receiver: %d", status);
    sh_free(j);
    snprintf(path, sizeof path, "/api/v1/applications/%s/streaming/batches/99999999999999999999999", s->app_id);
    j = render_api(s, path, "", &status);
    CHECK(status == 404, "an id too long: %d", status);
    sh_free(j);
    sh_status_free(s);
    OK();
}

static void test_checkpoint_and_reload_status_are_reported(void)
{
    sh_status_t *s = fresh();
    char path[256], *j, *m;
    int status;

    sh_status_checkpoint_dir(s, "/ck");
    snprintf(path, sizeof path, "/api/v1/applications/%s/streaming/host", s->app_id);
    j = render_api(s, path, "", &status);
    CHECK(strstr(j, "\"checkpoint\":{\"enabled\":true,\"directory\":\"/ck\",\"lastTime\":null") &&
          strstr(j, "\"numWritten\":0,\"numFailed\":0"), "on, nothing written yet: %s", j);
    sh_free(j);
    sh_status_checkpoint(s, "/ck", T0 / 1000 + 1, T0, 1, NULL);
    sh_status_checkpoint(s, "/ck", T0 / 1000 + 2, T0 + 1000, 0, "/ck/x.tmp: no space left on device");
    sh_status_reload(s, T0 / 1000 + 3, "job2.lua", "00000000000000aa", 0, "job2.lua:4: syntax error");
    sh_status_reload(s, T0 / 1000 + 4, "job3.lua", "00000000000000bb", 1, NULL);
    snprintf(path, sizeof path, "/api/v1/applications/%s/streaming/host", s->app_id);
    j = render_api(s, path, "", &status);
    CHECK(status == 200 && strstr(j, "\"checkpoint\":{\"enabled\":true,\"directory\":\"/ck\""), "%s", j);
    CHECK(strstr(j, "\"lastOk\":false,\"numWritten\":1,\"numFailed\":1,\"lastMessage\":\"/ck/x.tmp: no space"), "%s", j);
    CHECK(strstr(j, "\"numReloads\":2,\"numFailedReloads\":1"), "%s", j);
    CHECK(strstr(j, "\"accepted\":false,\"script\":\"job2.lua\"") && strstr(j, "syntax error"), "%s", j);
    CHECK(strstr(j, "\"script\":\"job3.lua\",\"scriptHash\":\"00000000000000bb\""), "the accepted script is current: %s", j);
    m = render_metrics(s);
    CHECK(strstr(m, "streamhost_checkpoints_total{result=\"failed\"} 1\n") &&
          strstr(m, "streamhost_reloads_total{result=\"rejected\"} 1\n"), "%s", m);
    sh_free(j);
    sh_free(m);
    sh_status_free(s);
    OK();
}

static void test_json_and_label_values_escape_what_they_must(void)
{
    sh_status_t *s = fresh();
    char *m;
    sh_buf_t b;

    sh_status_input(s, 1, "a\"b\\c\nd", NULL, 1);
    m = render_metrics(s);
    CHECK(strstr(m, "stream=\"a\\\"b\\\\c\\nd\"}"), "%s", m);
    sh_free(m);
    sh_buf_init(&b);
    sh_buf_json_str(&b, "\x01\x7f</script>");
    CHECK(strcmp(b.data, "\"\\u0001\\u007f\\u003c/script>\"") == 0, "%s", b.data);
    sh_buf_close(&b);
    sh_status_free(s);
    OK();
}

static void hammer(void *arg)
{
    sh_status_t *s = arg;
    int i;

    for (i = 0; i < 3000; i++) {
        run_batch(s, T0 + i * 10.0, 0.001, 0.001, i % 7 ? NULL : "x");
        sh_status_receiver(s, 1, i & 1, "lost", (double) i);
    }
}

static void test_setters_and_renderers_may_race_from_threads(void)
{
    sh_status_t *s = fresh();
    uv_thread_t t;
    int i, status;
    char path[256];

    snprintf(path, sizeof path, "/api/v1/applications/%s/streaming/batches", s->app_id);
    uv_thread_create(&t, hammer, s);
    for (i = 0; i < 200; i++) {
        sh_free(render_metrics(s));
        sh_free(render_api(s, path, "operations=true", &status));
    }
    uv_thread_join(&t);
    CHECK(s->batches_completed == 3000 && s->ncompleted == SH_STATUS_KEEP, "%llu", (unsigned long long) s->batches_completed);
    CHECK(s->inputs[1].errors == 2999, "%llu receiver errors", (unsigned long long) s->inputs[1].errors);
    sh_status_free(s);
    OK();
}

int main(void)
{
    test_keeps_the_last_1000_completed_batches_and_every_active_one();
    test_metrics_have_counters_gauges_and_cumulative_histograms();
    test_api_renders_batches_with_escaped_failures_and_404s();
    test_checkpoint_and_reload_status_are_reported();
    test_json_and_label_values_escape_what_they_must();
    test_setters_and_renderers_may_race_from_threads();
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
