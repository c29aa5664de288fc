/* sh_in_kafka.h: Kafka through librdkafka: topic metadata, offsets, and reading an offset range
 * of one partition into a block (the direct stream's and createRDD's partitions). */
#ifndef SH_IN_KAFKA_H
#define SH_IN_KAFKA_H

#include <stdint.h>

#include "sh_blob.h"

/* A block of Kafka records (blob kind SH_BLOB_KAFKA): records back to back, each
 *   int64 offset, int64 timestamp (ms, -1 when none), int32 partition, int32 topic (an index
 *   into the topics of the stream that read it), int32 key length, int32 value length
 *   (-1: null), key bytes, value bytes
 * in the host's byte order; count is the number of records. Workers decode them lazily. */
#define SH_BLOB_KAFKA 4
#define SH_KAFKA_REC_HEADER 32

/* Appends one message (of topic index `topic`) to a block that its creator still owns;
 * 0 or SH_ENOMEM (the block may have moved: *bp is updated). Any thread. */
struct rd_kafka_message_s;
int sh__kafka_block_append(sh_blob_t **bp, const struct rd_kafka_message_s *m, int32_t topic);

/* A librdkafka consumer handle (assign mode: no group joined, nothing committed). */
typedef struct sh_kafka_s sh_kafka_t;

/* Creates a client from `n` configuration pairs keys[i] = vals[i], given to librdkafka as they
 * are (the Spark-era names metadata.broker.list, auto.offset.reset = smallest|largest and
 * group.id are librdkafka's too). Returns NULL with *errmsg set (free with sh_ffi_free) naming
 * the setting librdkafka refused. The caller owns the client (sh_ffi_kafka_free). One thread
 * at a time uses a client; any thread. */
sh_kafka_t *sh_ffi_kafka_new(const char **keys, const char **vals, int n, char **errmsg);
void sh_ffi_kafka_free(sh_kafka_t *k);

/* The partition ids of `topic`, at most `max` into out[]; returns how many the topic has, or
 * -1 with *errmsg set (unknown topic, brokers unreachable within timeout_ms). Blocks. */
int sh_ffi_kafka_partitions(sh_kafka_t *k, const char *topic, int timeout_ms, int32_t *out,
                            int max, char **errmsg);

/* The low and high watermarks (first offset kept, offset of the next message) of a
 * partition. 0, or -1 with *errmsg set. Blocks at most timeout_ms. */
int sh_ffi_kafka_watermarks(sh_kafka_t *k, const char *topic, int32_t partition, int timeout_ms,
                            int64_t *lo, int64_t *hi, char **errmsg);

/* Reads the messages at offsets [from, until) of a partition into a new SH_BLOB_KAFKA blob
 * that the caller owns (one reference). Waits for brokers that are down (writing one line to
 * stderr when it starts waiting) until timeout_ms passes without progress. Returns NULL with
 * *errmsg set when the range cannot be read: an offset out of range (the message names topic,
 * partition and offset), a timeout, out of memory. Blocks; any thread, the client's user. */
sh_blob_t *sh_ffi_kafka_read(sh_kafka_t *k, const char *topic, int32_t partition, int64_t from,
                             int64_t until, int timeout_ms, char **errmsg);

/* -- Latest offsets, kept fresh off the loop -------------------------------------------- */

/* A thread that asks the brokers for the watermarks of n partitions (topics[i], parts[i])
 * over and over (a round every ~50 ms), so the loop reads the latest offsets without waiting
 * on a broker that is down. */
typedef struct sh_kafka_offsets_s sh_kafka_offsets_t;

/* Starts the thread; it takes `k` (freed with the offsets, also on failure). The names are
 * copied. NULL with *errmsg on failure. The caller owns the result (sh_ffi_kafka_offsets_free). */
sh_kafka_offsets_t *sh_ffi_kafka_offsets_new(sh_kafka_t *k, const char **topics,
                                             const int32_t *parts, int n, char **errmsg);
/* The last complete round's watermarks into lo[0..n) and hi[0..n): 0; 1 when no round has
 * completed yet; -1 with *errmsg (free with sh_ffi_free) when the last round failed (the
 * brokers are down, a partition is gone). Any thread; does not block on the brokers. */
int sh_ffi_kafka_offsets_get(sh_kafka_offsets_t *o, int64_t *lo, int64_t *hi, char **errmsg);
/* Lets go: the thread ends after its current request (it does not wait for it) and frees
 * it all, the client included. The caller must not use `o` again. */
void sh_ffi_kafka_offsets_free(sh_kafka_offsets_t *o);

#endif
