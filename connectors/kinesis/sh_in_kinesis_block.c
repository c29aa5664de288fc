/* sh_in_kinesis_block.c: the SH_BLOB_KINESIS block layout: appending entries, and the shard
 * positions (last sequence number per shard, shard ended, a LATEST shard's start time) a run
 * of blocks reaches. */
#include "sh_in_kinesis.h"
#include "sh_common.h"

#include <string.h>

#define SH_EXPORT __attribute__((visibility("default")))

int sh__kinesis_block_append(sh_blob_t **bp, int32_t flags, const char *shard, const char *seq,
                             const char *key, const char *data, size_t data_len,
                             int64_t arrival_ms)
{
    char head[SH_KINESIS_HEADER];
    int32_t lens[6];

    if (data_len > INT32_MAX)
        return SH_ENOMEM;
    lens[0] = flags;
    lens[1] = (int32_t) strlen(shard);
    lens[2] = seq ? (int32_t) strlen(seq) : 0;
    lens[3] = key ? (int32_t) strlen(key) : 0;
    lens[4] = (int32_t) data_len;
    lens[5] = 0;
    memcpy(head, lens, sizeof lens);
    memcpy(head + 24, &arrival_ms, 8);
    /* Absent parts (an end mark's) are empty: nothing to copy. */
    if (sh_blob_append(bp, head, sizeof head) || sh_blob_append(bp, shard, (size_t) lens[1]) ||
        (lens[2] && sh_blob_append(bp, seq, (size_t) lens[2])) ||
        (lens[3] && sh_blob_append(bp, key, (size_t) lens[3])) ||
        (data_len && sh_blob_append(bp, data, data_len)))
        return SH_ENOMEM;
    return 0;
}

typedef struct {
    char *shard, *seq;
    int ended;
    int64_t latest_ms;
} pos_t;

struct sh_kinesis_pos_s {
    pos_t *v;
    int n, cap;
};

SH_EXPORT sh_kinesis_pos_t *sh_ffi_kinesis_pos_new(void)
{
    return sh_calloc(1, sizeof(sh_kinesis_pos_t));
}

SH_EXPORT void sh_ffi_kinesis_pos_free(sh_kinesis_pos_t *p)
{
    int i;

    if (p == NULL)
        return;
    for (i = 0; i < p->n; i++) {
        sh_free(p->v[i].shard);
        sh_free(p->v[i].seq);
    }
    sh_free(p->v);
    sh_free(p);
}

/* Entry `shard` (shard_len bytes), added when missing: its index, or -1 (memory). */
static int find_or_add(sh_kinesis_pos_t *p, const char *shard, size_t shard_len)
{
    int i;

    for (i = 0; i < p->n; i++)
        if (strlen(p->v[i].shard) == shard_len && memcmp(p->v[i].shard, shard, shard_len) == 0)
            break;
    if (i == p->n) {
        if (p->n == p->cap) {
            int cap = p->cap ? 2 * p->cap : 16;
            pos_t *v = sh_realloc(p->v, (size_t) cap * sizeof *v);

            if (v == NULL)
                return -1;
            p->v = v;
            p->cap = cap;
        }
        p->v[i].shard = sh__strndup(shard, shard_len);
        if (p->v[i].shard == NULL)
            return -1;
        p->v[i].seq = NULL;
        p->v[i].ended = 0;
        p->v[i].latest_ms = 0;
        p->n++;
    }
    return i;
}

/* Sets entry `shard` (shard_len bytes) to seq (seq_len bytes; seq NULL keeps the one it has). */
static int set(sh_kinesis_pos_t *p, const char *shard, size_t shard_len, const char *seq,
               size_t seq_len, int ended)
{
    int i = find_or_add(p, shard, shard_len);
    char *s = NULL;

    if (i < 0)
        return -1;
    if (seq != NULL) {
        if ((s = sh__strndup(seq, seq_len)) == NULL)
            return -1;
        sh_free(p->v[i].seq);
        p->v[i].seq = s;
    }
    p->v[i].ended = ended;
    return 0;
}

SH_EXPORT int sh_ffi_kinesis_pos_set(sh_kinesis_pos_t *p, const char *shard, const char *seq,
                                     int ended)
{
    return set(p, shard, strlen(shard), seq && *seq ? seq : NULL, seq ? strlen(seq) : 0, ended);
}

SH_EXPORT int sh_ffi_kinesis_pos_add_block(sh_kinesis_pos_t *p, const sh_blob_t *b)
{
    size_t pos = 0;

    while (pos < b->len) {
        int32_t lens[6];
        size_t body;

        if (b->len - pos < SH_KINESIS_HEADER)
            return -1;
        memcpy(lens, b->data + pos, sizeof lens);
        if (lens[1] < 0 || lens[2] < 0 || lens[3] < 0 || lens[4] < 0)
            return -1;
        body = (size_t) lens[1] + (size_t) lens[2] + (size_t) lens[3] + (size_t) lens[4];
        if (b->len - pos - SH_KINESIS_HEADER < body)
            return -1;
        {
            const char *shard = b->data + pos + SH_KINESIS_HEADER;
            const char *seq = shard + lens[1];

            if (lens[0] & SH_KINESIS_SHARD_LATEST) {
                int64_t ms;
                int k = find_or_add(p, shard, (size_t) lens[1]);

                if (k < 0)
                    return -1;
                memcpy(&ms, b->data + pos + 24, 8);
                if (p->v[k].latest_ms == 0 || (ms > 0 && ms < p->v[k].latest_ms))
                    p->v[k].latest_ms = ms;
            } else if (set(p, shard, (size_t) lens[1], lens[2] ? seq : NULL, (size_t) lens[2],
                           (lens[0] & SH_KINESIS_SHARD_END) != 0)) {
                return -1;
            }
        }
        pos += SH_KINESIS_HEADER + body;
    }
    return 0;
}

SH_EXPORT int sh_ffi_kinesis_pos_count(const sh_kinesis_pos_t *p)
{
    return p->n;
}

SH_EXPORT const char *sh_ffi_kinesis_pos_shard(const sh_kinesis_pos_t *p, int i)
{
    return i >= 0 && i < p->n ? p->v[i].shard : NULL;
}

SH_EXPORT const char *sh_ffi_kinesis_pos_seq(const sh_kinesis_pos_t *p, int i)
{
    return i >= 0 && i < p->n ? p->v[i].seq : NULL;
}

SH_EXPORT int sh_ffi_kinesis_pos_ended(const sh_kinesis_pos_t *p, int i)
{
    return i >= 0 && i < p->n ? p->v[i].ended : 0;
}

SH_EXPORT int sh_ffi_kinesis_pos_set_latest(sh_kinesis_pos_t *p, const char *shard,
                                            double latest_ms)
{
    int i = find_or_add(p, shard, strlen(shard));

    if (i < 0)
        return -1;
    p->v[i].latest_ms = latest_ms > 0 && latest_ms < 1e15 ? (int64_t) latest_ms : 0;
    return 0;
}

SH_EXPORT double sh_ffi_kinesis_pos_latest(const sh_kinesis_pos_t *p, int i)
{
    return i >= 0 && i < p->n ? (double) p->v[i].latest_ms : 0;
}
