/* sh_in_kafka_recv.c: the receiver behind KafkaUtils.createStream: a consumer in a group,
 * polled from the loop, appending messages to one input of the batch scheduler as
 * SH_BLOB_KAFKA blocks; commits what the driver says its completed batches held. */
#include "sh_in_kafka.h"
#include "sh_common.h"
#include "sh_events.h"
#include "sh_host.h"
#include "sh_sched.h"

#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <string.h>

#define SH_EXPORT __attribute__((visibility("default")))
#define POLL_MS 10              /* the loop polls the consumer this often */
#define POLL_MAX 20000          /* messages taken per poll at most */
#define CHUNK_BYTES (1 << 20)   /* messages are handed to the scheduler in chunks of this size */

typedef struct sh_kafka_recv_s {
    rd_kafka_t *rk;
    uv_timer_t timer;
    sh_sched_t *sched;
    int input;
    int paused;               /* backpressure: the scheduler holds enough; polling waits */
    char **topics;            /* subscribed topic names; a block's topic index points here */
    int ntopics;
    int erring;               /* an error was reported and no message arrived since */
    sh_events_t events;       /* for the driver (sh_ffi_kafka_recv_event) */
    uv_work_t leave;          /* leaving the group, after close */
} sh_kafka_recv_t;

static int32_t topic_index(sh_kafka_recv_t *r, const rd_kafka_message_t *m)
{
    const char *name = m->rkt ? rd_kafka_topic_name(m->rkt) : "";
    int i;

    for (i = 0; i < r->ntopics; i++)
        if (strcmp(r->topics[i], name) == 0)
            return i;
    return -1;
}

/* Hands the chunk to the scheduler and starts a new one. */
static void flush_chunk(sh_kafka_recv_t *r, sh_blob_t **chunk)
{
    if ((*chunk)->count == 0)
        return;
    if (r->sched && sh_sched_input_append(r->sched, r->input, (*chunk)->data, (*chunk)->len,
                                          (*chunk)->count))
        sh_events_push(&r->events, 0, "out of memory: received messages dropped");
    (*chunk)->len = 0;
    (*chunk)->count = 0;
}

static void on_poll(uv_timer_t *t)
{
    sh_kafka_recv_t *r = t->data;
    sh_blob_t *chunk;
    int n;

    if (r->paused || r->sched == NULL)
        return;
    chunk = sh_blob_new(SH_BLOB_KAFKA, CHUNK_BYTES);
    if (chunk == NULL)
        return;
    for (n = 0; n < POLL_MAX && !r->paused; n++) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(r->rk, 0);
        char buf[512];
        int32_t ti;

        if (m == NULL)
            break;
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF && !r->erring) {
                snprintf(buf, sizeof buf, "%s%s%s", m->rkt ? rd_kafka_topic_name(m->rkt) : "",
                         m->rkt ? ": " : "", rd_kafka_message_errstr(m));
                sh_events_push(&r->events, 0, buf);
                r->erring = 1;
            }
        } else if ((ti = topic_index(r, m)) >= 0) {
            if (r->erring) {
                r->erring = 0;
                sh_events_push(&r->events, 0, "receiving again");
            }
            if (sh__kafka_block_append(&chunk, m, ti))
                sh_events_push(&r->events, 0, "out of memory: received messages dropped");
            if (chunk->len >= CHUNK_BYTES)
                flush_chunk(r, &chunk);
        }
        rd_kafka_message_destroy(m);
    }
    flush_chunk(r, &chunk);
    sh_blob_unref(chunk);
}

static void on_pause(void *ud, int pause)
{
    sh_kafka_recv_t *r = ud;

    if (pause < 0)
        r->sched = NULL;  /* the scheduler is gone */
    else
        r->paused = pause;
}

static void free_recv(sh_kafka_recv_t *r)
{
    int i;

    sh_events_clear(&r->events);
    for (i = 0; i < r->ntopics; i++)
        sh_free(r->topics[i]);
    sh_free(r->topics);
    sh_free(r);
}

/* Leaves the group (its partitions go to the other members) and closes the connections.
 * Leaving waits for the group coordinator's answer (up to the session timeout when it is
 * down), so it runs on libuv's thread pool, not on the loop; as a request of the loop, it
 * keeps the loop running (and the process from exiting) until it is done. */
static void leave_group(uv_work_t *w)
{
    sh_kafka_recv_t *r = w->data;

    rd_kafka_consumer_close(r->rk);
    rd_kafka_destroy(r->rk);
    r->rk = NULL;
}

static void left_group(uv_work_t *w, int status)
{
    (void) status;
    free_recv(w->data);
}

static void on_closed(uv_handle_t *h)
{
    sh_kafka_recv_t *r = h->data;

    r->leave.data = r;
    if (uv_queue_work(h->loop, &r->leave, leave_group, left_group) != 0) {
        leave_group(&r->leave);
        free_recv(r);
    }
}

/* Joins consumer group `group` (given in the configuration pairs, as group.id) subscribed to
 * `ntopics` topics and feeds input `input` of `sched` with their messages from the loop of h.
 * The pairs go to librdkafka as they are (auto.offset.reset = smallest | largest says where a
 * group with no committed offsets starts; the default is largest); offsets are committed only
 * by sh_ffi_kafka_recv_commit. Returns NULL with *errmsg (free with sh_ffi_free) on failure.
 * The driver owns the receiver until sh_ffi_kafka_recv_close(), which must come before
 * sh_sched_free(sched). Loop thread, every function of the receiver. */
SH_EXPORT sh_kafka_recv_t *sh_ffi_kafka_recv_open(sh_host_t *h, sh_sched_t *sched, int input,
                                                  const char **keys, const char **vals, int n,
                                                  const char **topics, int ntopics, char **errmsg)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_topic_partition_list_t *sub = NULL;
    rd_kafka_resp_err_t err;
    sh_kafka_recv_t *r;
    int i;

    *errmsg = NULL;
    r = sh_calloc(1, sizeof *r);
    if (r == NULL || (r->topics = sh_calloc((size_t) ntopics, sizeof(char *))) == NULL)
        goto nomem;
    for (i = 0; i < ntopics; i++, r->ntopics++)
        if ((r->topics[i] = sh__strdup(topics[i])) == NULL)
            goto nomem;
    for (i = 0; i < n; i++)
        if (rd_kafka_conf_set(conf, keys[i], vals[i], errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
            snprintf(errstr + strlen(errstr), sizeof errstr - strlen(errstr), " (kafka parameter %s)", keys[i]);
            goto fail;
        }
    if (rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof errstr) ||
        rd_kafka_conf_set(conf, "log.connection.close", "false", errstr, sizeof errstr))
        goto fail;
    /* rd_kafka_new takes the conf only on success. */
    r->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    if (r->rk == NULL)
        goto fail;
    conf = NULL;
    rd_kafka_poll_set_consumer(r->rk);
    sub = rd_kafka_topic_partition_list_new(ntopics);
    for (i = 0; i < ntopics; i++)
        rd_kafka_topic_partition_list_add(sub, topics[i], RD_KAFKA_PARTITION_UA);
    err = rd_kafka_subscribe(r->rk, sub);
    rd_kafka_topic_partition_list_destroy(sub);
    if (err) {
        snprintf(errstr, sizeof errstr, "cannot subscribe: %s", rd_kafka_err2str(err));
        goto fail;
    }
    uv_timer_init(h->loop, &r->timer);
    r->timer.data = r;
    r->sched = sched;
    r->input = input;
    sh_sched_input_set_pause(sched, input, on_pause, r);
    uv_timer_start(&r->timer, on_poll, POLL_MS, POLL_MS);
    return r;
nomem:
    snprintf(errstr, sizeof errstr, "out of memory");
fail:
    *errmsg = sh__strdup(errstr);
    if (conf)
        rd_kafka_conf_destroy(conf);
    if (r && r->rk)
        rd_kafka_destroy(r->rk);
    if (r)
        free_recv(r);
    return NULL;
}

/* Takes the oldest event (a consumer error, or "receiving again"): 1 with *msg (free with
 * sh_ffi_free), or 0. */
SH_EXPORT int sh_ffi_kafka_recv_event(sh_kafka_recv_t *r, char **msg)
{
    return sh_events_take(&r->events, NULL, msg);
}

/* The next offsets of the messages of a block: for every (topic index, partition) in it, one
 * past its highest offset, merged into the n entries of topics/parts/next (kept at most max;
 * returns the new n). Any thread. */
SH_EXPORT int sh_ffi_kafka_block_positions(const sh_blob_t *b, int32_t *topics, int32_t *parts,
                                           int64_t *next, int n, int max)
{
    size_t pos = 0;

    while (pos + SH_KAFKA_REC_HEADER <= b->len) {
        int64_t off;
        int32_t part, topic, klen, vlen;
        int i;

        memcpy(&off, b->data + pos, 8);
        memcpy(&part, b->data + pos + 16, 4);
        memcpy(&topic, b->data + pos + 20, 4);
        memcpy(&klen, b->data + pos + 24, 4);
        memcpy(&vlen, b->data + pos + 28, 4);
        pos += SH_KAFKA_REC_HEADER + (size_t) (klen > 0 ? klen : 0) + (size_t) (vlen > 0 ? vlen : 0);
        for (i = 0; i < n; i++)
            if (topics[i] == topic && parts[i] == part)
                break;
        if (i == n) {
            if (n == max)
                continue;
            topics[n] = topic;
            parts[n] = part;
            next[n++] = off + 1;
        } else if (off + 1 > next[i]) {
            next[i] = off + 1;
        }
    }
    return n;
}

/* Commits the group's offsets: next[i] for partition parts[i] of topic index topics[i].
 * Asynchronous (librdkafka sends it); 0, or -1 with *errmsg. */
SH_EXPORT int sh_ffi_kafka_recv_commit(sh_kafka_recv_t *r, const int32_t *topics,
                                       const int32_t *parts, const int64_t *next, int n,
                                       char **errmsg)
{
    rd_kafka_topic_partition_list_t *l;
    rd_kafka_resp_err_t err;
    int i;

    *errmsg = NULL;
    if (n == 0)
        return 0;
    l = rd_kafka_topic_partition_list_new(n);
    for (i = 0; i < n; i++)
        if (topics[i] >= 0 && topics[i] < r->ntopics)
            rd_kafka_topic_partition_list_add(l, r->topics[topics[i]], parts[i])->offset = next[i];
    err = rd_kafka_commit(r->rk, l, 1);
    rd_kafka_topic_partition_list_destroy(l);
    if (err) {
        *errmsg = sh__strdup(rd_kafka_err2str(err));
        return -1;
    }
    return 0;
}

/* Stops receiving: what was received stays in the scheduler's input and is processed. The
 * receiver leaves its group and is freed once its timer has closed (the loop must turn). */
SH_EXPORT void sh_ffi_kafka_recv_close(sh_kafka_recv_t *r)
{
    if (r == NULL)
        return;
    if (r->sched)
        sh_sched_input_set_pause(r->sched, r->input, NULL, NULL);
    r->sched = NULL;
    uv_timer_stop(&r->timer);
    uv_close((uv_handle_t *) &r->timer, on_closed);
}
