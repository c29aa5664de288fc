/* sh_metrics.c: /metrics: the status model's counters, gauges and delay histograms in
 * Prometheus text format 0.0.4 (base units, counters named *_total, no per-batch labels). */
#include "sh_metrics.h"
#include "streamhost.h"

#include <math.h>
#include <string.h>

/* Appends a label value with the format's escapes (backslash, quote, newline). */
static void label_value(sh_buf_t *out, const char *v)
{
    for (; v && *v; v++) {
        if (*v == '\\')
            sh_buf_puts(out, "\\\\");
        else if (*v == '"')
            sh_buf_puts(out, "\\\"");
        else if (*v == '\n')
            sh_buf_puts(out, "\\n");
        else
            sh_buf_add(out, v, 1);
    }
}

static void family(sh_buf_t *out, const char *name, const char *type, const char *help)
{
    sh_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void value(sh_buf_t *out, double v)
{
    if (isnan(v))
        sh_buf_puts(out, " NaN\n");
    else if (v == floor(v) && fabs(v) < 1e15)
        sh_buf_printf(out, " %.0f\n", v);
    else
        sh_buf_printf(out, " %.17g\n", v);
}

static void single(sh_buf_t *out, const char *name, const char *type, const char *help, double v)
{
    family(out, name, type, help);
    sh_buf_puts(out, name);
    value(out, v);
}

static void histogram(sh_buf_t *out, const char *name, const char *help, const sh_status_hist_t *h)
{
    uint64_t cum = 0;
    int i;

    family(out, name, "histogram", help);
    for (i = 0; i < SH_STATUS_NBUCKETS; i++) {
        cum += h->counts[i];
        if (i < SH_STATUS_NBUCKETS - 1)
            sh_buf_printf(out, "%s_bucket{le=\"%g\"} %llu\n", name, sh_status_buckets[i],
                          (unsigned long long) cum);
        else
            sh_buf_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long) cum);
    }
    sh_buf_printf(out, "%s_sum", name);
    value(out, h->sum);
    sh_buf_printf(out, "%s_count %llu\n", name, (unsigned long long) h->n);
}

/* One sample per input stream: name{stream_id="0",stream="..."} v. */
static void per_input(sh_buf_t *out, const sh_status_t *s, const char *name, int receivers_only,
                      int errors)
{
    int i;

    for (i = 0; i < s->ninputs; i++) {
        const sh_status_input_t *in = &s->inputs[i];
        if (!in->defined || (receivers_only && !in->receiver))
            continue;
        sh_buf_printf(out, "%s{stream_id=\"%d\",stream=\"", name, i);
        label_value(out, in->name);
        sh_buf_puts(out, "\"}");
        value(out, (double) (errors ? in->errors : in->records));
    }
}

static void render(sh_status_t *s, sh_buf_t *out)
{
    size_t i, running = 0, waiting = 0;
    int k, receivers = 0, active = 0;
    int64_t last = 0;

    for (i = 0; i < s->nbatches; i++) {
        const sh_status_batch_t *b = s->batches[i];
        if (b->state == SH_BATCH_RUNNING)
            running++;
        else if (b->state == SH_BATCH_WAITING)
            waiting++;
        else
            last = b->time_ms;
    }
    for (k = 0; k < s->ninputs; k++) {
        receivers += s->inputs[k].receiver;
        active += s->inputs[k].receiver && s->inputs[k].active;
    }

    family(out, "streamhost_info", "gauge", "The host and its job script (value 1).");
    sh_buf_puts(out, "streamhost_info{version=\"" STREAMHOST_VERSION "\",app=\"");
    label_value(out, s->app_name);
    sh_buf_puts(out, "\",script=\"");
    label_value(out, s->script);
    sh_buf_puts(out, "\",script_hash=\"");
    label_value(out, s->script_hash);
    sh_buf_puts(out, "\"} 1\n");
    single(out, "streamhost_start_time_seconds", "gauge",
           "When the running StreamingContext started, epoch seconds (0: none yet).", s->start_time);
    single(out, "streamhost_streaming_active", "gauge",
           "1 while a StreamingContext runs.", s->start_time > 0 && s->stop_time == 0);
    single(out, "streamhost_batch_interval_seconds", "gauge",
           "The batch interval.", (double) s->batch_ms / 1000);
    single(out, "streamhost_batches_completed_total", "counter",
           "Batches completed, failed ones included.", (double) s->batches_completed);
    single(out, "streamhost_batches_failed_total", "counter",
           "Batches with a failed output operation.", (double) s->batches_failed);
    single(out, "streamhost_batches_running", "gauge", "Batches processing now.", (double) running);
    single(out, "streamhost_batches_waiting", "gauge",
           "Batches generated and waiting for the running one.", (double) waiting);
    single(out, "streamhost_last_completed_batch_time_seconds", "gauge",
           "Batch time of the newest completed batch, epoch seconds (0: none).", (double) last / 1000);
    single(out, "streamhost_records_processed_total", "counter",
           "Input records of completed batches.", (double) s->records_processed);
    family(out, "streamhost_input_records_total", "counter",
           "Input records of completed batches, per input stream of the running context.");
    per_input(out, s, "streamhost_input_records_total", 0, 0);
    single(out, "streamhost_output_operations_completed_total", "counter",
           "Output operations completed, failed ones included.", (double) s->ops_completed);
    single(out, "streamhost_output_operations_failed_total", "counter",
           "Output operations that raised.", (double) s->ops_failed);
    single(out, "streamhost_receivers", "gauge", "Receivers of the running context.", receivers);
    single(out, "streamhost_receivers_active", "gauge", "Receivers that are active.", active);
    family(out, "streamhost_receiver_errors_total", "counter",
           "Errors reported by each receiver of the running context.");
    per_input(out, s, "streamhost_receiver_errors_total", 1, 1);
    single(out, "streamhost_listener_errors_total", "counter",
           "StreamingListeners that raised and were removed.", (double) s->listener_errors);
    histogram(out, "streamhost_batch_scheduling_delay_seconds",
              "From a batch's submission to the start of its processing.", &s->sched_delay);
    histogram(out, "streamhost_batch_processing_seconds",
              "From the start to the end of a batch's processing.", &s->proc_time);
    histogram(out, "streamhost_batch_total_delay_seconds",
              "From a batch's submission to the end of its processing.", &s->total_delay);
    family(out, "streamhost_reloads_total", "counter", "Hot reloads of the job script, by result.");
    sh_buf_printf(out, "streamhost_reloads_total{result=\"accepted\"} %llu\n",
                  (unsigned long long) (s->nreloads_total - s->nreloads_failed));
    sh_buf_printf(out, "streamhost_reloads_total{result=\"rejected\"} %llu\n",
                  (unsigned long long) s->nreloads_failed);
    family(out, "streamhost_checkpoints_total", "counter", "Checkpoint writes, by result.");
    sh_buf_printf(out, "streamhost_checkpoints_total{result=\"written\"} %llu\n",
                  (unsigned long long) s->ckpt.written);
    sh_buf_printf(out, "streamhost_checkpoints_total{result=\"failed\"} %llu\n",
                  (unsigned long long) s->ckpt.failed);
    single(out, "streamhost_checkpoint_last_time_seconds", "gauge",
           "When the last checkpoint write was attempted, epoch seconds (0: none).", s->ckpt.time);
}

void sh_metrics_render(sh_status_t *s, sh_buf_t *out)
{
    sh_status_lock(s);
    render(s, out);
    sh_status_unlock(s);
}
