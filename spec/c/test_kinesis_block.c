/* test_kinesis_block.c: the Kinesis receiver's blocks (connectors/kinesis/sh_in_kinesis_block.c):
 * entries appended and the shard positions they reach (the last sequence number of each shard,
 * its end mark), positions set by hand, and blocks cut short or with bad lengths refused. */
#include "sh_common.h"
#include "../../connectors/kinesis/sh_in_kinesis.h"

#include <stdio.h>
#include <string.h>

#include "check.h"

static const char *seq_of(sh_kinesis_pos_t *p, const char *shard, int *ended)
{
    int i;

    for (i = 0; i < sh_ffi_kinesis_pos_count(p); i++)
        if (strcmp(sh_ffi_kinesis_pos_shard(p, i), shard) == 0) {
            *ended = sh_ffi_kinesis_pos_ended(p, i);
            return sh_ffi_kinesis_pos_seq(p, i) ? sh_ffi_kinesis_pos_seq(p, i) : "(none)";
        }
    return NULL;
}

static void test_positions_follow_the_entries_of_blocks(void)
{
    sh_blob_t *a = sh_blob_new(SH_BLOB_KINESIS, 16), *b = sh_blob_new(SH_BLOB_KINESIS, 16);
    sh_kinesis_pos_t *p = sh_ffi_kinesis_pos_new();
    int ended = -1;

    CHECK(a && b && p, "out of memory");
    CHECK(sh__kinesis_block_append(&a, 0, "shardId-0", "100", "k", "hello", 5, 1700000000000) == 0, "append");
    CHECK(sh__kinesis_block_append(&a, 0, "shardId-1", "200", "k", "", 0, 0) == 0, "append");
    CHECK(sh__kinesis_block_append(&a, 0, "shardId-0", "101", "k2", "x", 1, 0) == 0, "append");
    CHECK(sh__kinesis_block_append(&b, SH_KINESIS_SHARD_END, "shardId-0", NULL, NULL, NULL, 0, 0) == 0, "end");
    CHECK(sh__kinesis_block_append(&b, 0, "shardId-2", "300", "k", "y", 1, 0) == 0, "append");
    CHECK(sh_ffi_kinesis_pos_add_block(p, a) == 0, "block a");
    CHECK(sh_ffi_kinesis_pos_count(p) == 2, "%d shards", sh_ffi_kinesis_pos_count(p));
    CHECK(strcmp(seq_of(p, "shardId-0", &ended), "101") == 0 && !ended, "shard 0 at 101");
    CHECK(sh_ffi_kinesis_pos_add_block(p, b) == 0, "block b");
    /* The end mark keeps the last sequence number and marks the shard ended. */
    CHECK(strcmp(seq_of(p, "shardId-0", &ended), "101") == 0 && ended, "shard 0 ended at 101");
    CHECK(strcmp(seq_of(p, "shardId-1", &ended), "200") == 0 && !ended, "shard 1 at 200");
    CHECK(strcmp(seq_of(p, "shardId-2", &ended), "300") == 0, "shard 2 at 300");
    sh_ffi_kinesis_pos_free(p);
    sh_blob_unref(a);
    sh_blob_unref(b);
    OK();
}

static void test_positions_set_by_hand(void)
{
    sh_kinesis_pos_t *p = sh_ffi_kinesis_pos_new();
    int ended = -1;

    CHECK(sh_ffi_kinesis_pos_set(p, "s", "5", 0) == 0, "set");
    CHECK(sh_ffi_kinesis_pos_set(p, "s", NULL, 1) == 0, "set ended");
    CHECK(strcmp(seq_of(p, "s", &ended), "5") == 0 && ended, "keeps 5, ended");
    CHECK(sh_ffi_kinesis_pos_set(p, "t", "", 0) == 0, "set empty");
    CHECK(strcmp(seq_of(p, "t", &ended), "(none)") == 0, "no sequence number");
    CHECK(sh_ffi_kinesis_pos_shard(p, 7) == NULL && sh_ffi_kinesis_pos_seq(p, -1) == NULL, "out of range");
    sh_ffi_kinesis_pos_free(p);
    OK();
}

static void test_blocks_cut_short_or_with_bad_lengths_are_refused(void)
{
    sh_blob_t *a = sh_blob_new(SH_BLOB_KINESIS, 16);
    sh_kinesis_pos_t *p = sh_ffi_kinesis_pos_new();
    int32_t bad = -5;

    CHECK(sh__kinesis_block_append(&a, 0, "shardId-0", "100", "k", "hello", 5, 0) == 0, "append");
    a->len -= 3;  /* the data cut short */
    CHECK(sh_ffi_kinesis_pos_add_block(p, a) == -1, "a short entry");
    a->len = 10;  /* the header cut short */
    CHECK(sh_ffi_kinesis_pos_add_block(p, a) == -1, "a short header");
    a->len = SH_KINESIS_HEADER + 9 + 3 + 1 + 5;
    memcpy(a->data + 8, &bad, 4);  /* a negative sequence number length */
    CHECK(sh_ffi_kinesis_pos_add_block(p, a) == -1, "a negative length");
    sh_ffi_kinesis_pos_free(p);
    sh_blob_unref(a);
    OK();
}

int main(void)
{
    test_positions_follow_the_entries_of_blocks();
    test_positions_set_by_hand();
    test_blocks_cut_short_or_with_bad_lengths_are_refused();
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
