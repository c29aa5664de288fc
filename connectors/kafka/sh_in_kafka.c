/* sh_in_kafka.c: Kafka through librdkafka for the direct stream and createRDD: metadata,
 * watermarks, and offset ranges read into SH_BLOB_KAFKA blocks (no Lua per message). */
#include "sh_in_kafka.h"
#include "sh_common.h"

#include <librdkafka/rdkafka.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define SH_EXPORT __attribute__((visibility("default")))

struct sh_kafka_s {
    rd_kafka_t *rk;
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
    if (conf_set(conf, "group.id", "streamhost-direct", errmsg) ||
        conf_set(conf, "log.connection.close", "false", errmsg))
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
    return k;
fail_conf:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

SH_EXPORT void sh_ffi_kafka_free(sh_kafka_t *k)
{
    if (k == NULL)
        return;
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
        rd_kafka_message_t *m = rd_kafka_consumer_poll(k->rk, 200);
        int mine;

        if (m == NULL) {
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
        mine = m->rkt && m->partition == partition && strcmp(rd_kafka_topic_name(m->rkt), topic) == 0;
        if (m->err) {
            if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                /* The end of the log past the range's last message: the rest of the range
                 * holds no messages (compaction or transaction markers). */
                if (mine && m->offset >= until)
                    next = until;
            } else if (is_out_of_range(m->err) || m->err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION ||
                       m->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
                       m->err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC) {
                if (is_out_of_range(m->err))
                    *errmsg = errorf("topic %s partition %d: offset %lld is out of range (%s)",
                                     topic, (int) partition, (long long) next,
                                     rd_kafka_message_errstr(m));
                else
                    *errmsg = errorf("topic %s partition %d: %s", topic, (int) partition,
                                     rd_kafka_message_errstr(m));
                rd_kafka_message_destroy(m);
                goto fail_assigned;
            } else if (!waiting) {
                waiting = 1;
                fprintf(stderr, "kafka: topic %s partition %d: waiting: %s\n", topic,
                        (int) partition, rd_kafka_message_errstr(m));
            }
            rd_kafka_message_destroy(m);
            continue;
        }
        if (mine && m->offset >= next && m->offset < until) {
            if (sh__kafka_block_append(&b, m, 0)) {
                rd_kafka_message_destroy(m);
                *errmsg = sh__strdup("kafka: out of memory reading a range");
                goto fail_assigned;
            }
            next = m->offset + 1;
            progress_ms = sh__now_ms();
            if (waiting) {
                waiting = 0;
                fprintf(stderr, "kafka: topic %s partition %d: reading again\n", topic,
                        (int) partition);
            }
        } else if (mine && m->offset >= until) {
            next = until;
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_assign(k->rk, NULL);
    return b;
fail_assigned:
    rd_kafka_assign(k->rk, NULL);
fail:
    sh_blob_unref(b);
    return NULL;
}
