/* sh_api.c: /api/v1 JSON from the status model, after Spark's REST API for streaming
 * (org.apache.spark.status.api.v1.streaming): durations in milliseconds, dates as
 * "yyyy-MM-dd'T'HH:mm:ss.SSS'GMT'", batch ids as batch times in epoch milliseconds. */
#include "sh_api.h"
#include "streamhost.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void sh_api_date(sh_buf_t *out, double t)
{
    time_t secs;
    struct tm tm;
    char date[32];
    long ms;

    if (!(t > 0)) {
        sh_buf_puts(out, "null");
        return;
    }
    secs = (time_t) floor(t);
    ms = (long) ((t - floor(t)) * 1000);
    gmtime_r(&secs, &tm);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
    sh_buf_printf(out, "\"%s.%03ldGMT\"", date, ms);
}

/* Milliseconds between two epoch-second times, or null when either is unknown. */
static void ms_between(sh_buf_t *out, double from, double to)
{
    if (from > 0 && to > 0)
        sh_buf_printf(out, "%lld", (long long) llround((to - from) * 1000));
    else
        sh_buf_puts(out, "null");
}

static const char *batch_status(const sh_status_batch_t *b)
{
    return b->state == SH_BATCH_COMPLETED ? "COMPLETED"
           : b->state == SH_BATCH_RUNNING ? "PROCESSING" : "QUEUED";
}

static void op_json(sh_buf_t *out, const sh_status_op_t *op)
{
    sh_buf_printf(out, "{\"outputOpId\":%d,\"name\":", op->id);
    sh_buf_json_str(out, op->name ? op->name : "");
    sh_buf_puts(out, ",\"description\":");
    sh_buf_json_str(out, op->description ? op->description : "");
    sh_buf_puts(out, ",\"startTime\":");
    sh_api_date(out, op->start);
    sh_buf_puts(out, ",\"endTime\":");
    sh_api_date(out, op->end);
    sh_buf_puts(out, ",\"duration\":");
    ms_between(out, op->start, op->end);
    sh_buf_puts(out, ",\"failureReason\":");
    sh_buf_json_str(out, op->failure);
    sh_buf_puts(out, ",\"jobIds\":[]}");
}

/* The batch's output operations as a JSON array. */
static void ops_json(sh_buf_t *out, const sh_status_batch_t *b)
{
    int i;

    sh_buf_puts(out, "[");
    for (i = 0; i < b->nops; i++) {
        if (i)
            sh_buf_puts(out, ",");
        op_json(out, &b->ops[i]);
    }
    sh_buf_puts(out, "]");
}

static void batch_json(sh_buf_t *out, const sh_status_t *s, const sh_status_batch_t *b, int ops)
{
    int i, active = 0, done = 0, failed = 0;
    const char *first_failure = NULL;

    for (i = 0; i < b->nops; i++) {
        const sh_status_op_t *op = &b->ops[i];
        if (op->end > 0) {
            done++;
            if (op->failure) {
                failed++;
                if (first_failure == NULL)
                    first_failure = op->failure;
            }
        } else if (op->start > 0) {
            active++;
        }
    }
    sh_buf_printf(out, "{\"batchId\":%lld,\"batchTime\":", (long long) b->time_ms);
    sh_api_date(out, (double) b->time_ms / 1000);
    sh_buf_printf(out, ",\"status\":\"%s\",\"batchDuration\":%lld,\"inputSize\":%llu",
                  batch_status(b), (long long) s->batch_ms, (unsigned long long) b->records);
    sh_buf_puts(out, ",\"schedulingDelay\":");
    ms_between(out, b->submitted, b->started);
    sh_buf_puts(out, ",\"processingTime\":");
    ms_between(out, b->started, b->state == SH_BATCH_COMPLETED ? b->ended : 0);
    /* Spark's totalDelay is schedulingDelay + processingDelay, each in whole milliseconds:
     * the sum of the two figures above, not the span rounded on its own. */
    sh_buf_puts(out, ",\"totalDelay\":");
    if (b->submitted > 0 && b->started > 0 && b->state == SH_BATCH_COMPLETED && b->ended > 0)
        sh_buf_printf(out, "%lld", (long long) (llround((b->started - b->submitted) * 1000)
                                                + llround((b->ended - b->started) * 1000)));
    else
        sh_buf_puts(out, "null");
    sh_buf_printf(out, ",\"numActiveOutputOps\":%d,\"numCompletedOutputOps\":%d,"
                       "\"numFailedOutputOps\":%d,\"numTotalOutputOps\":%d,\"firstFailureReason\":",
                  active, done - failed, failed, b->nops);
    sh_buf_json_str(out, first_failure);
    sh_buf_puts(out, ",\"submissionTime\":");
    sh_api_date(out, b->submitted);
    sh_buf_puts(out, ",\"inputs\":{");
    for (i = 0; i < b->ninputs; i++)
        sh_buf_printf(out, "%s\"%d\":%llu", i ? "," : "", i, (unsigned long long) b->input_records[i]);
    sh_buf_puts(out, "}");
    if (ops) {
        sh_buf_puts(out, ",\"outputOperations\":");
        ops_json(out, b);
    }
    sh_buf_puts(out, "}");
}

/* Records a second of input stream id over the retained completed batches (all inputs when
 * id < 0), and how many batches that covers. */
static double avg_rate(const sh_status_t *s, int id, size_t *nbatches)
{
    double records = 0;
    size_t i, n = 0;

    for (i = 0; i < s->nbatches; i++) {
        const sh_status_batch_t *b = s->batches[i];
        if (b->state != SH_BATCH_COMPLETED)
            continue;
        n++;
        if (id < 0)
            records += (double) b->records;
        else if (id < b->ninputs)
            records += (double) b->input_records[id];
    }
    if (nbatches)
        *nbatches = n;
    return n && s->batch_ms > 0 ? records / ((double) n * (double) s->batch_ms / 1000) : 0;
}

static void receiver_json(sh_buf_t *out, const sh_status_t *s, int id)
{
    const sh_status_input_t *in = &s->inputs[id];
    size_t i;
    int first = 1;

    sh_buf_printf(out, "{\"streamId\":%d,\"streamName\":", id);
    sh_buf_json_str(out, in->name ? in->name : "");
    sh_buf_printf(out, ",\"isActive\":%s,\"executorId\":\"driver\",\"executorHost\":",
                  in->active ? "true" : "false");
    sh_buf_json_str(out, in->location ? in->location : "");
    sh_buf_puts(out, ",\"lastErrorTime\":");
    sh_api_date(out, in->last_error_time);
    sh_buf_puts(out, ",\"lastErrorMessage\":");
    sh_buf_json_str(out, in->last_error);
    sh_buf_puts(out, ",\"lastError\":");
    sh_buf_json_str(out, in->last_error);
    sh_buf_printf(out, ",\"numErrors\":%llu,\"avgEventRate\":", (unsigned long long) in->errors);
    sh_buf_json_num(out, avg_rate(s, id, NULL));
    sh_buf_puts(out, ",\"eventRates\":[");
    for (i = 0; i < s->nbatches; i++) {
        const sh_status_batch_t *b = s->batches[i];
        uint64_t n = id < b->ninputs ? b->input_records[id] : 0;
        if (b->state != SH_BATCH_COMPLETED || s->batch_ms <= 0)
            continue;
        sh_buf_printf(out, "%s[%lld,", first ? "" : ",", (long long) b->time_ms);
        sh_buf_json_num(out, (double) n * 1000 / (double) s->batch_ms);
        sh_buf_puts(out, "]");
        first = 0;
    }
    sh_buf_puts(out, "]}");
}

static void statistics_json(sh_buf_t *out, const sh_status_t *s)
{
    int i, receivers = 0, active = 0;
    size_t j, n = 0, running = 0;
    double sched = 0, proc = 0, total = 0;
    uint64_t received = 0;

    for (i = 0; i < s->ninputs; i++) {
        received += s->inputs[i].records;
        if (s->inputs[i].receiver) {
            receivers++;
            active += s->inputs[i].active;
        }
    }
    for (j = 0; j < s->nbatches; j++) {
        const sh_status_batch_t *b = s->batches[j];
        if (b->state != SH_BATCH_COMPLETED) {
            running++;
            continue;
        }
        n++;
        sched += b->started - b->submitted;
        proc += b->ended - b->started;
        total += b->ended - b->submitted;
    }
    sh_buf_puts(out, "{\"startTime\":");
    sh_api_date(out, s->start_time);
    sh_buf_printf(out, ",\"batchDuration\":%lld,\"numReceivers\":%d,\"numActiveReceivers\":%d,"
                       "\"numInactiveReceivers\":%d,\"numTotalCompletedBatches\":%llu,"
                       "\"numRetainedCompletedBatches\":%zu,\"numActiveBatches\":%zu,"
                       "\"numProcessedRecords\":%llu,\"numReceivedRecords\":%llu,\"avgInputRate\":",
                  (long long) s->batch_ms, receivers, active, receivers - active,
                  (unsigned long long) s->batches_completed, n, running,
                  (unsigned long long) s->records_processed, (unsigned long long) received);
    sh_buf_json_num(out, avg_rate(s, -1, NULL));
    sh_buf_puts(out, ",\"avgSchedulingDelay\":");
    sh_buf_json_num(out, n ? llround(sched * 1000 / (double) n) : NAN);
    sh_buf_puts(out, ",\"avgProcessingTime\":");
    sh_buf_json_num(out, n ? llround(proc * 1000 / (double) n) : NAN);
    sh_buf_puts(out, ",\"avgTotalDelay\":");
    sh_buf_json_num(out, n ? llround(total * 1000 / (double) n) : NAN);
    sh_buf_puts(out, "}");
}

/* The extension endpoint: what Spark's API has no place for (script, reloads, checkpoints,
 * inputs that are not receivers). */
static void host_json(sh_buf_t *out, const sh_status_t *s)
{
    uint64_t k, first;
    int i;

    sh_buf_puts(out, "{\"appName\":");
    sh_buf_json_str(out, s->app_name);
    sh_buf_puts(out, ",\"version\":\"" STREAMHOST_VERSION "\",\"script\":");
    sh_buf_json_str(out, s->script);
    sh_buf_puts(out, ",\"scriptHash\":");
    sh_buf_json_str(out, s->script_hash);
    sh_buf_puts(out, ",\"hashAlgorithm\":\"crc32c\",\"hostStartTime\":");
    sh_api_date(out, s->host_start);
    sh_buf_puts(out, ",\"startTime\":");
    sh_api_date(out, s->start_time);
    sh_buf_puts(out, ",\"stopTime\":");
    sh_api_date(out, s->stop_time);
    sh_buf_printf(out, ",\"state\":\"%s\",\"batchDuration\":%lld,\"numFailedBatches\":%llu,"
                       "\"numListenerErrors\":%llu,\"inputs\":[",
                  s->start_time == 0 ? "NOT_STARTED" : s->stop_time > 0 ? "STOPPED" : "ACTIVE",
                  (long long) s->batch_ms, (unsigned long long) s->batches_failed,
                  (unsigned long long) s->listener_errors);
    for (i = 0; i < s->ninputs; i++) {
        sh_buf_printf(out, "%s{\"streamId\":%d,\"name\":", i ? "," : "", i);
        sh_buf_json_str(out, s->inputs[i].name ? s->inputs[i].name : "");
        sh_buf_printf(out, ",\"receiver\":%s,\"numRecords\":%llu,\"avgEventRate\":",
                      s->inputs[i].receiver ? "true" : "false",
                      (unsigned long long) s->inputs[i].records);
        sh_buf_json_num(out, avg_rate(s, i, NULL));
        sh_buf_puts(out, "}");
    }
    sh_buf_printf(out, "],\"numReloads\":%llu,\"numFailedReloads\":%llu,\"reloads\":[",
                  (unsigned long long) s->nreloads_total, (unsigned long long) s->nreloads_failed);
    first = s->nreloads_total > SH_STATUS_RELOADS ? s->nreloads_total - SH_STATUS_RELOADS : 0;
    for (k = first; k < s->nreloads_total; k++) {
        const sh_status_reload_t *r = &s->reloads[k % SH_STATUS_RELOADS];
        sh_buf_puts(out, k > first ? ",{\"time\":" : "{\"time\":");
        sh_api_date(out, r->time);
        sh_buf_printf(out, ",\"accepted\":%s,\"script\":", r->ok ? "true" : "false");
        sh_buf_json_str(out, r->script);
        sh_buf_puts(out, ",\"scriptHash\":");
        sh_buf_json_str(out, r->hash);
        sh_buf_puts(out, ",\"message\":");
        sh_buf_json_str(out, r->message);
        sh_buf_puts(out, "}");
    }
    sh_buf_puts(out, "],\"checkpoint\":{\"enabled\":");
    sh_buf_puts(out, s->ckpt.dir ? "true" : "false");
    sh_buf_puts(out, ",\"directory\":");
    sh_buf_json_str(out, s->ckpt.dir);
    sh_buf_puts(out, ",\"lastTime\":");
    sh_api_date(out, s->ckpt.time);
    sh_buf_puts(out, ",\"lastBatchTime\":");
    sh_api_date(out, (double) s->ckpt.batch_ms / 1000);
    sh_buf_printf(out, ",\"lastOk\":%s,\"numWritten\":%llu,\"numFailed\":%llu,\"lastMessage\":",
                  s->ckpt.time > 0 && s->ckpt.ok ? "true" : "false",
                  (unsigned long long) s->ckpt.written, (unsigned long long) s->ckpt.failed);
    sh_buf_json_str(out, s->ckpt.message);
    sh_buf_puts(out, "}}");
}

static void app_json(sh_buf_t *out, const sh_status_t *s)
{
    sh_buf_puts(out, "{\"id\":");
    sh_buf_json_str(out, s->app_id);
    sh_buf_puts(out, ",\"name\":");
    sh_buf_json_str(out, s->app_name ? s->app_name : "");
    sh_buf_puts(out, ",\"attempts\":[{\"startTime\":");
    sh_api_date(out, s->host_start);
    sh_buf_puts(out, ",\"endTime\":null,\"completed\":false,\"sparkUser\":\"\",\"appSparkVersion\":\"streamhost "
                     STREAMHOST_VERSION "\"}]}");
}

static int not_found(sh_buf_t *out, const char *what)
{
    sh_buf_puts(out, "{\"error\":");
    sh_buf_json_str(out, what);
    sh_buf_puts(out, "}");
    return 404;
}

/* Parses a whole decimal segment [p, end) into *v; 0 on success. */
static int parse_id(const char *p, size_t len, long long *v)
{
    char tmp[24], *e;

    if (len == 0 || len >= sizeof tmp)
        return -1;
    memcpy(tmp, p, len);
    tmp[len] = '\0';
    if (tmp[0] < '0' || tmp[0] > '9')
        return -1;
    *v = strtoll(tmp, &e, 10);
    return *e == '\0' ? 0 : -1;
}

/* The next path segment after *p (which points at '/' or the end): [*seg, *seg + *len). */
static int next_seg(const char **p, const char **seg, size_t *len)
{
    if (**p != '/')
        return 0;
    *seg = *p + 1;
    *len = strcspn(*seg, "/");
    *p = *seg + *len;
    return *len > 0;
}

static int seg_is(const char *seg, size_t len, const char *word)
{
    return len == strlen(word) && memcmp(seg, word, len) == 0;
}

/* /batches[/<id>[/operations[/<op>]]] */
static int batches(sh_buf_t *out, sh_status_t *s, const char *p, const char *query)
{
    const char *seg;
    size_t len, i;
    long long id, op;
    int ops = strstr(query, "operations=true") != NULL, idx, first = 1;
    const char *want = strstr(query, "status=");
    const sh_status_batch_t *b;

    if (!next_seg(&p, &seg, &len)) {
        if (*p != '\0' && strcmp(p, "/") != 0)
            return not_found(out, "no such resource");
        sh_buf_puts(out, "[");
        for (i = s->nbatches; i-- > 0;) {  /* newest first, as Spark lists them */
            b = s->batches[i];
            if (want && strncmp(want + 7, batch_status(b), strlen(batch_status(b))) != 0)
                continue;
            if (!first)
                sh_buf_puts(out, ",");
            batch_json(out, s, b, ops);
            first = 0;
        }
        sh_buf_puts(out, "]");
        return 200;
    }
    if (parse_id(seg, len, &id) != 0 || (idx = sh__status_find(s, id)) < 0)
        return not_found(out, "unknown batch id");
    b = s->batches[idx];
    if (!next_seg(&p, &seg, &len)) {
        if (*p != '\0')
            return not_found(out, "no such resource");
        batch_json(out, s, b, 1);
        return 200;
    }
    if (!seg_is(seg, len, "operations"))
        return not_found(out, "no such resource");
    if (!next_seg(&p, &seg, &len)) {
        if (*p != '\0')
            return not_found(out, "no such resource");
        ops_json(out, b);
        return 200;
    }
    if (parse_id(seg, len, &op) != 0 || op >= b->nops || *p != '\0')
        return not_found(out, "unknown output operation id");
    op_json(out, &b->ops[op]);
    return 200;
}

static int receivers(sh_buf_t *out, sh_status_t *s, const char *p)
{
    const char *seg;
    size_t len;
    long long id;
    int i, first = 1;

    if (!next_seg(&p, &seg, &len)) {
        if (*p != '\0')
            return not_found(out, "no such resource");
        sh_buf_puts(out, "[");
        for (i = 0; i < s->ninputs; i++) {
            if (!s->inputs[i].receiver)
                continue;
            if (!first)
                sh_buf_puts(out, ",");
            receiver_json(out, s, i);
            first = 0;
        }
        sh_buf_puts(out, "]");
        return 200;
    }
    if (parse_id(seg, len, &id) != 0 || id >= s->ninputs || !s->inputs[id].receiver || *p != '\0')
        return not_found(out, "unknown receiver stream id");
    receiver_json(out, s, (int) id);
    return 200;
}

static int render(sh_status_t *s, const char *p, const char *query, sh_buf_t *out)
{
    const char *seg;
    size_t len;

    if (strncmp(p, "/api/v1", 7) != 0)
        return not_found(out, "no such resource");
    p += 7;
    if (!next_seg(&p, &seg, &len) || !seg_is(seg, len, "applications"))
        return not_found(out, "no such resource");
    if (!next_seg(&p, &seg, &len)) {
        if (*p != '\0')
            return not_found(out, "no such resource");
        sh_buf_puts(out, "[");
        app_json(out, s);
        sh_buf_puts(out, "]");
        return 200;
    }
    if (!seg_is(seg, len, s->app_id))
        return not_found(out, "unknown application id");
    if (!next_seg(&p, &seg, &len)) {
        if (*p != '\0')
            return not_found(out, "no such resource");
        app_json(out, s);
        return 200;
    }
    if (!seg_is(seg, len, "streaming") || !next_seg(&p, &seg, &len))
        return not_found(out, "no such resource");
    if (seg_is(seg, len, "statistics") && *p == '\0') {
        statistics_json(out, s);
        return 200;
    }
    if (seg_is(seg, len, "host") && *p == '\0') {
        host_json(out, s);
        return 200;
    }
    if (seg_is(seg, len, "receivers"))
        return receivers(out, s, p);
    if (seg_is(seg, len, "batches"))
        return batches(out, s, p, query);
    return not_found(out, "no such resource");
}

int sh_api_render(sh_status_t *s, const char *path, const char *query, sh_buf_t *out)
{
    int rc;

    sh_status_lock(s);
    rc = render(s, path, query ? query : "", out);
    sh_status_unlock(s);
    return rc;
}
