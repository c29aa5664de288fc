/* sh_in_kafka.c: Kafka through librdkafka for the direct stream and createRDD: metadata,
 * watermarks, and offset ranges read into SH_BLOB_KAFKA blocks (no Lua per message). */
#include "sh_in_kafka.h"
#include "sh_common.h"

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define SH_EXPORT __attribute__((visibility("default")))

#define READ_BATCH 1024         /* messages taken from the consumer queue at a time */

struct sh_kafka_s {
    rd_kafka_t *rk;
    rd_kafka_queue_t *queue;  /* the consumer queue: where an assigned partition's messages arrive */
};

/* A message for *errmsg, allocated (the caller frees it with sh_ffi_free). */
static char *errorf(const char *fmt, ...)
{
    char buf[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return sh__strdup(buf);
}

static int conf_set(rd_kafka_conf_t *conf, const char *key, const char *val, char **errmsg)
{
    char errstr[512];

    if (rd_kafka_conf_set(conf, key, val, errstr, sizeof errstr) == RD_KAFKA_CONF_OK)
        return 0;
    *errmsg = errorf("kafka parameter %s: %s", key, errstr);
    return -1;
}

SH_EXPORT sh_kafka_t *sh_ffi_kafka_new(const char **keys, const char **vals, int n, char **errmsg)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    sh_kafka_t *k;
    int i;

    *errmsg = NULL;
    /* assign() needs a group id (no group is joined): a default that kafkaParams may replace. */
    /* A range read ends at or near the log's end, where a fetch waits fetch.wait.max.ms
     * (500 ms by default) for more; the next range's assign waits behind that fetch. A short
     * wait (kafkaParams may set another) keeps a worker's reads back to back. */
    if (conf_set(conf, "group.id", "streamhost-direct", errmsg) ||
        conf_set(conf, "log.connection.close", "false", errmsg) ||
        conf_set(conf, "fetch.wait.max.ms", "10", errmsg))
        goto fail_conf;
    for (i = 0; i < n; i++)
        if (conf_set(conf, keys[i], vals[i], errmsg))
            goto fail_conf;
    /* Ranges are read exactly: no commits, the end of a partition is an event, and an offset
     * out of range is an error (auto.offset.reset is applied by the stream, to its first
     * offsets, as Spark's direct stream does). */
    if (conf_set(conf, "enable.auto.commit", "false", errmsg) ||
        conf_set(conf, "enable.auto.offset.store", "false", errmsg) ||
        conf_set(conf, "enable.partition.eof", "true", errmsg) ||
        conf_set(conf, "auto.offset.reset", "error", errmsg))
        goto fail_conf;
    k = sh_calloc(1, sizeof *k);
    if (k == NULL) {
        *errmsg = sh__strdup("kafka: out of memory");
        goto fail_conf;
    }
    /* rd_kafka_new takes the conf only on success. */
    k->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    if (k->rk == NULL) {
        *errmsg = errorf("kafka: %s", errstr);
        sh_free(k);
        goto fail_conf;
    }
    rd_kafka_poll_set_consumer(k->rk);
    k->queue = rd_kafka_queue_get_consumer(k->rk);
    return k;
fail_conf:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

SH_EXPORT void sh_ffi_kafka_free(sh_kafka_t *k)
{
    if (k == NULL)
        return;
    rd_kafka_queue_destroy(k->queue);
    rd_kafka_consumer_close(k->rk);
    rd_kafka_destroy(k->rk);
    sh_free(k);
}

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *) a, y = *(const int32_t *) b;
    return (x > y) - (x < y);
}

SH_EXPORT int sh_ffi_kafka_partitions(sh_kafka_t *k, const char *topic, int timeout_ms,
                                      int32_t *out, int max, char **errmsg)
{
    const struct rd_kafka_metadata *md = NULL;
    const struct rd_kafka_metadata_topic *t = NULL;
    rd_kafka_resp_err_t err;
    int i, n = -1;

    *errmsg = NULL;
    /* All topics are asked for: a request naming the topic could create it on a broker that
     * creates topics on demand, and an unknown topic must be an error. */
    err = rd_kafka_metadata(k->rk, 1, NULL, &md, timeout_ms);
    if (err) {
        *errmsg = errorf("topic %s: cannot read metadata from the brokers: %s", topic,
                         rd_kafka_err2str(err));
        return -1;
    }
    for (i = 0; i < md->topic_cnt; i++)
        if (strcmp(md->topics[i].topic, topic) == 0)
            t = &md->topics[i];
    if (t == NULL) {
        *errmsg = errorf("topic %s: unknown topic (the brokers have %d others)", topic, md->topic_cnt);
        goto out;
    }
    if (t->err) {
        *errmsg = errorf("topic %s: %s", topic, rd_kafka_err2str(t->err));
        goto out;
    }
    n = t->partition_cnt;
    for (i = 0; i < n && i < max; i++)
        out[i] = t->partitions[i].id;
    qsort(out, (size_t) (n < max ? n : max), sizeof *out, cmp_i32);
out:
    rd_kafka_metadata_destroy(md);
    return n;
}

SH_EXPORT int sh_ffi_kafka_watermarks(sh_kafka_t *k, const char *topic, int32_t partition,
                                      int timeout_ms, int64_t *lo, int64_t *hi, char **errmsg)
{
    rd_kafka_resp_err_t err;

    *errmsg = NULL;
    err = rd_kafka_query_watermark_offsets(k->rk, topic, partition, lo, hi, timeout_ms);
    if (err) {
        *errmsg = errorf("topic %s partition %d: cannot read its offsets: %s", topic,
                         (int) partition, rd_kafka_err2str(err));
        return -1;
    }
    return 0;
}

int sh__kafka_block_append(sh_blob_t **bp, const rd_kafka_message_t *m, int32_t topic)
{
    unsigned char head[SH_KAFKA_REC_HEADER];
    int64_t off = m->offset, ts = rd_kafka_message_timestamp(m, NULL);
    int32_t part = m->partition;
    int32_t klen = m->key ? (int32_t) m->key_len : -1;
    int32_t vlen = m->payload ? (int32_t) m->len : -1;

    memcpy(head, &off, 8);
    memcpy(head + 8, &ts, 8);
    memcpy(head + 16, &part, 4);
    memcpy(head + 20, &topic, 4);
    memcpy(head + 24, &klen, 4);
    memcpy(head + 28, &vlen, 4);
    if (sh_blob_append(bp, head, sizeof head) ||
        (klen > 0 && sh_blob_append(bp, m->key, (size_t) klen)) ||
        (vlen > 0 && sh_blob_append(bp, m->payload, (size_t) vlen)))
        return SH_ENOMEM;
    (*bp)->count++;
    return 0;
}

static int is_out_of_range(rd_kafka_resp_err_t err)
{
    return err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET ||
           err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE;
}

/* One message (or event) of a range read of topic/partition up to `until`: appended to *bp
 * when it is the next of the range; *next moves on; an error that ends the read sets *errmsg. */
static void take_message(const rd_kafka_message_t *m, const char *topic, int32_t partition,
                         int64_t until, int64_t *next, sh_blob_t **bp, int *waiting, char **errmsg)
{
    int mine = m->rkt && m->partition == partition && strcmp(rd_kafka_topic_name(m->rkt), topic) == 0;

    if (m->err) {
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            /* The end of the log past the range's last message: the rest of the range holds
             * no messages (compaction or transaction markers). */
            if (mine && m->offset >= until)
                *next = until;
        } else if (is_out_of_range(m->err)) {
            *errmsg = errorf("topic %s partition %d: offset %lld is out of range (%s)", topic,
                             (int) partition, (long long) *next, rd_kafka_message_errstr(m));
        } else if (m->err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION ||
                   m->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
                   m->err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC) {
            *errmsg = errorf("topic %s partition %d: %s", topic, (int) partition,
                             rd_kafka_message_errstr(m));
        } else if (!*waiting) {
            *waiting = 1;
            fprintf(stderr, "kafka: topic %s partition %d: waiting: %s\n", topic, (int) partition,
                    rd_kafka_message_errstr(m));
        }
        return;
    }
    if (mine && m->offset >= *next && m->offset < until) {
        if (sh__kafka_block_append(bp, m, 0))
            *errmsg = sh__strdup("kafka: out of memory reading a range");
        else
            *next = m->offset + 1;
    } else if (mine && m->offset >= until) {
        *next = until;
    }
}

SH_EXPORT sh_blob_t *sh_ffi_kafka_read(sh_kafka_t *k, const char *topic, int32_t partition,
                                       int64_t from, int64_t until, int timeout_ms, char **errmsg)
{
    rd_kafka_topic_partition_list_t *tp;
    rd_kafka_resp_err_t err;
    sh_blob_t *b;
    int64_t next = from, progress_ms = sh__now_ms();
    int waiting = 0;

    *errmsg = NULL;
    b = sh_blob_new(SH_BLOB_KAFKA, 64 * 1024);
    if (b == NULL) {
        *errmsg = sh__strdup("kafka: out of memory");
        return NULL;
    }
    if (until <= from)
        return b;
    tp = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(tp, topic, partition)->offset = from;
    err = rd_kafka_assign(k->rk, tp);
    rd_kafka_topic_partition_list_destroy(tp);
    if (err) {
        *errmsg = errorf("topic %s partition %d: cannot read: %s", topic, (int) partition,
                         rd_kafka_err2str(err));
        goto fail;
    }
    while (next < until) {
        rd_kafka_message_t *msgs[READ_BATCH];
        /* What is queued now, without waiting (a batch call with a timeout waits for a full
         * batch); when nothing is, one message with a wait. */
        ssize_t got = rd_kafka_consume_batch_queue(k->queue, 0, msgs, READ_BATCH);
        ssize_t i;

        if (got <= 0) {  /* nothing queued (or an error, which the wait below reports) */
            got = 0;
            if ((msgs[0] = rd_kafka_consume_queue(k->queue, 200)) != NULL)
                got = 1;
        }
        int64_t before = next;

        if (got <= 0) {
            if (sh__now_ms() - progress_ms > timeout_ms) {
                *errmsg = errorf("topic %s partition %d: no message at offset %lld after %d ms "
                                 "(brokers down or the offset is gone)", topic, (int) partition,
                                 (long long) next, timeout_ms);
                goto fail_assigned;
            }
            if (!waiting && sh__now_ms() - progress_ms > 2000) {
                waiting = 1;
                fprintf(stderr, "kafka: topic %s partition %d: waiting for offset %lld "
                        "(brokers unreachable?)\n", topic, (int) partition, (long long) next);
            }
            continue;
        }
        for (i = 0; i < got; i++) {
            if (*errmsg == NULL)
                take_message(msgs[i], topic, partition, until, &next, &b, &waiting, errmsg);
            rd_kafka_message_destroy(msgs[i]);
        }
        if (*errmsg)
            goto fail_assigned;
        if (next > before) {
            progress_ms = sh__now_ms();
            if (waiting) {
                waiting = 0;
                fprintf(stderr, "kafka: topic %s partition %d: reading again\n", topic,
                        (int) partition);
            }
        }
    }
    rd_kafka_assign(k->rk, NULL);
    return b;
fail_assigned:
    rd_kafka_assign(k->rk, NULL);
fail:
    sh_blob_unref(b);
    return NULL;
}

/* -- Latest offsets, kept fresh off the loop ------------------------------------------- */

#define OFFSETS_ROUND_MS 50
#define OFFSETS_QUERY_MS 2000

struct sh_kafka_offsets_s {
    sh_kafka_t *k;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n, stop, state;   /* state: 1 no round yet, 0 good, -1 failed (err) */
    char **topics;
    int32_t *parts;
    int64_t *lo, *hi;     /* the last good round (under mu) */
    int64_t *qlo, *qhi;   /* the round in progress (the thread's own) */
    char *err;
    int64_t round_ms;     /* when the round in progress began (under mu) */
};

#define OFFSETS_SILENT_MS 3000  /* a round this old with no answer: the brokers are down */

static void offsets_free_fields(sh_kafka_offsets_t *o);

static void *offsets_main(void *arg)
{
    sh_kafka_offsets_t *o = arg;
    struct timespec ts;

    pthread_mutex_lock(&o->mu);
    while (!o->stop) {
        char *err = NULL;
        int i;

        o->round_ms = sh__now_ms();
        pthread_mutex_unlock(&o->mu);
        for (i = 0; i < o->n && err == NULL; i++)
            sh_ffi_kafka_watermarks(o->k, o->topics[i], o->parts[i], OFFSETS_QUERY_MS,
                                    &o->qlo[i], &o->qhi[i], &err);
        pthread_mutex_lock(&o->mu);
        o->round_ms = 0;
        sh_free(o->err);
        o->err = err;
        if (err == NULL) {
            memcpy(o->lo, o->qlo, sizeof(int64_t) * (size_t) o->n);
            memcpy(o->hi, o->qhi, sizeof(int64_t) * (size_t) o->n);
            o->state = 0;
        } else {
            o->state = -1;
        }
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += OFFSETS_ROUND_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        if (!o->stop)
            pthread_cond_timedwait(&o->cv, &o->mu, &ts);
    }
    pthread_mutex_unlock(&o->mu);
    /* The owner let go (sh_ffi_kafka_offsets_free): the thread frees it all. */
    pthread_cond_destroy(&o->cv);
    pthread_mutex_destroy(&o->mu);
    offsets_free_fields(o);
    return NULL;
}

static void offsets_free_fields(sh_kafka_offsets_t *o)
{
    int i;

    for (i = 0; o->topics && i < o->n; i++)
        sh_free(o->topics[i]);
    sh_free(o->topics);
    sh_free(o->parts);
    sh_free(o->lo);
    sh_free(o->hi);
    sh_free(o->qlo);
    sh_free(o->qhi);
    sh_free(o->err);
    sh_ffi_kafka_free(o->k);
    sh_free(o);
}

SH_EXPORT sh_kafka_offsets_t *sh_ffi_kafka_offsets_new(sh_kafka_t *k, const char **topics,
                                                       const int32_t *parts, int n, char **errmsg)
{
    sh_kafka_offsets_t *o = sh_calloc(1, sizeof *o);
    size_t m = (size_t) (n > 0 ? n : 1);
    int i;

    *errmsg = NULL;
    if (o == NULL) {
        sh_ffi_kafka_free(k);
        *errmsg = sh__strdup("kafka: out of memory");
        return NULL;
    }
    o->k = k;
    o->n = n;
    o->state = 1;
    o->topics = sh_calloc(m, sizeof(char *));
    o->parts = sh_calloc(m, sizeof(int32_t));
    o->lo = sh_calloc(m, sizeof(int64_t));
    o->hi = sh_calloc(m, sizeof(int64_t));
    o->qlo = sh_calloc(m, sizeof(int64_t));
    o->qhi = sh_calloc(m, sizeof(int64_t));
    if (!o->topics || !o->parts || !o->lo || !o->hi || !o->qlo || !o->qhi)
        goto nomem;
    for (i = 0; i < n; i++) {
        if ((o->topics[i] = sh__strdup(topics[i])) == NULL)
            goto nomem;
        o->parts[i] = parts[i];
    }
    pthread_mutex_init(&o->mu, NULL);
    pthread_cond_init(&o->cv, NULL);
    if (pthread_create(&o->thread, NULL, offsets_main, o) != 0) {
        pthread_cond_destroy(&o->cv);
        pthread_mutex_destroy(&o->mu);
        offsets_free_fields(o);
        *errmsg = sh__strdup("kafka: cannot start the offsets thread");
        return NULL;
    }
    pthread_detach(o->thread);
    return o;
nomem:
    offsets_free_fields(o);
    *errmsg = sh__strdup("kafka: out of memory");
    return NULL;
}

SH_EXPORT int sh_ffi_kafka_offsets_get(sh_kafka_offsets_t *o, int64_t *lo, int64_t *hi, char **errmsg)
{
    int state;

    *errmsg = NULL;
    pthread_mutex_lock(&o->mu);
    state = o->state;
    /* A request to a broker that is down may wait much longer than its timeout. */
    if (o->round_ms && sh__now_ms() - o->round_ms > OFFSETS_SILENT_MS) {
        char buf[160];
        snprintf(buf, sizeof buf, "topic %s partition %d: no answer from the brokers for %lld ms",
                 o->topics[0], (int) o->parts[0], (long long) (sh__now_ms() - o->round_ms));
        pthread_mutex_unlock(&o->mu);
        *errmsg = sh__strdup(buf);
        return -1;
    }
    if (state == 0) {
        memcpy(lo, o->lo, sizeof(int64_t) * (size_t) o->n);
        memcpy(hi, o->hi, sizeof(int64_t) * (size_t) o->n);
    } else if (state < 0) {
        *errmsg = sh__strdup(o->err ? o->err : "kafka: offsets unknown");
    }
    pthread_mutex_unlock(&o->mu);
    return state;
}

SH_EXPORT void sh_ffi_kafka_offsets_free(sh_kafka_offsets_t *o)
{
    if (o == NULL)
        return;
    pthread_mutex_lock(&o->mu);
    o->stop = 1;
    pthread_cond_signal(&o->cv);
    pthread_mutex_unlock(&o->mu);
}
