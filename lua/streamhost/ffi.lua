-- streamhost.ffi: the C declarations of the host's sh_ffi_* functions, shared by driver and workers.
local ffi = require "ffi"

ffi.cdef [[
typedef struct sh_host_s sh_host_t;
typedef struct sh_pool_s sh_pool_t;
typedef struct sh_recv_s sh_recv_t;
typedef struct sh_sched_s sh_sched_t;
typedef struct sh_batch_s sh_batch_t;
typedef struct sh_bloblist_s sh_bloblist_t;
typedef struct sh_blob_s {
    int32_t refs;
    int32_t kind;
    uint32_t reclen;
    uint32_t count;
    size_t len;
    size_t cap;
    char data[?];
} sh_blob_t;

double sh_ffi_now(void);
int sh_ffi_take_stop(sh_host_t *h);
void sh_ffi_timer_arm(sh_host_t *h, double ms);
void sh_ffi_sleep_ms(double ms);
const char *sh_ffi_master(sh_host_t *h);
void sh_ffi_reload_result(sh_host_t *h, int failed, const char *msg);
void sh_ffi_script_changed(sh_host_t *h, const char *script);
const char *sh_ffi_lua_dir(sh_host_t *h);
int sh_ffi_cpu_count(void);
void sh_ffi_free(void *p);

sh_pool_t *sh_ffi_pool_new(sh_host_t *h, int n, char **errmsg);
void sh_ffi_pool_free(sh_pool_t *p);
double sh_ffi_pool_submit(sh_pool_t *p, int affinity, const char *payload, size_t len);
int sh_ffi_pool_next_done(sh_pool_t *p, double *id, int *ok, char **result, size_t *len,
                          sh_bloblist_t **made);
int sh_ffi_pool_wait(sh_pool_t *p, int timeout_ms);
void sh_ffi_bloblist_free(sh_bloblist_t *l);

sh_sched_t *sh_ffi_sched_new(sh_host_t *h, double batch_ms, double first_ms);
void sh_ffi_sched_free(sh_sched_t *s);
int sh_ffi_sched_input_new(sh_sched_t *s, int kind, double block_bytes, double max_held);
double sh_ffi_sched_input_received(sh_sched_t *s, int input);
int sh_ffi_sched_flush(sh_sched_t *s);
void sh_ffi_sched_stop(sh_sched_t *s);
sh_batch_t *sh_ffi_sched_take(sh_sched_t *s);
double sh_ffi_sched_next_time(sh_sched_t *s);
double sh_ffi_batch_time(sh_batch_t *b);
int sh_ffi_batch_blocks(sh_batch_t *b, int input, int from, sh_blob_t **out, int max);
double sh_ffi_batch_records(sh_batch_t *b, int input);
double sh_ffi_batch_bytes(sh_batch_t *b, int input);
void sh_ffi_batch_hold(sh_batch_t *b, sh_bloblist_t *l);
void sh_ffi_batch_start(sh_batch_t *b);
void sh_ffi_batch_release(sh_batch_t *b);

sh_blob_t *sh_ffi_blob_new(int kind, const char *data, size_t len, uint32_t reclen, uint32_t count);
void sh_ffi_blob_ref(sh_blob_t *b);
void sh_ffi_blob_unref(sh_blob_t *b);

uint64_t sh_ffi_fn_put(const char *bytes, size_t len);
int sh_ffi_fn_unref(uint64_t id);
int sh_ffi_fn_evict(uint64_t id);
sh_blob_t *sh_ffi_fn_get(uint64_t id);
int sh_ffi_fn_dropped_since(uint64_t *pos, uint64_t *ids, int max);
void sh_ffi_fn_stats(size_t *live, size_t *bytes);

typedef struct sh_ops_count_s sh_ops_count_t;
sh_ops_count_t *sh_ffi_count_new(void);
void sh_ffi_count_free(sh_ops_count_t *c);
int sh_ffi_count_blob(sh_ops_count_t *c, const sh_blob_t *b, double from, double to, int split,
                      double v);
double sh_ffi_count_size(const sh_ops_count_t *c);
int sh_ffi_count_buckets(const sh_ops_count_t *c, int n, sh_blob_t **out, int hand_over);

uint32_t sh_ffi_hash_bytes(const char *s, size_t len, uint32_t seed);
uint32_t sh_ffi_hash_number(double x, uint32_t seed);

int sh_ffi_dir_list(const char *dir, int with_mtime, char **names, size_t *len, char **errmsg);
int sh_ffi_mkdirs(const char *path, char **errmsg);
int sh_ffi_fsync_path(const char *path, char **errmsg);
int sh_ffi_replace_dir(const char *tmp, const char *path, char **errmsg);
int sh_ffi_path_kind(const char *path);
int sh_ffi_glob(const char *pattern, char **names, size_t *len, char **errmsg);
sh_blob_t *sh_ffi_file_read_lines(const char *path, char **errmsg);
sh_blob_t *sh_ffi_file_read_fixed(const char *path, uint32_t reclen, size_t *leftover, char **errmsg);

sh_recv_t *sh_ffi_socket_open(sh_host_t *h, sh_sched_t *sched, int input, const char *host,
                              int port, size_t max_line, char **errmsg);
int sh_ffi_recv_event(sh_recv_t *r, int *kind, char **msg);
void sh_ffi_recv_close(sh_recv_t *r);

typedef struct sh_embed_s sh_embed_t;
typedef struct { const char *data; size_t len; } sh_record_t;
sh_embed_t *sh_ffi_embed_open(sh_host_t *h, sh_sched_t *sched, int input, const char *name,
                              double max_records, double max_bytes, char **errmsg);
double sh_ffi_embed_queued(sh_embed_t *e);
void sh_ffi_embed_drain(sh_embed_t *e);
double sh_ffi_embed_close(sh_embed_t *e);
int sh_ffi_output_deliver(sh_host_t *h, const char *name, double batch_time,
                          const sh_record_t *recs, size_t n);

typedef struct sh_text_server_s sh_text_server_t;
sh_text_server_t *sh_ffi_text_server_start(sh_host_t *h, const char *text, size_t len,
                                           double lines_per_second, int port,
                                           int *bound_port, char **errmsg);
void sh_ffi_text_server_stop(sh_text_server_t *s);

typedef struct sh_ckpt_writer_s sh_ckpt_writer_t;
typedef struct sh_ckpt_job_s sh_ckpt_job_t;
sh_ckpt_writer_t *sh_ffi_ckpt_writer_new(sh_host_t *h, char **errmsg);
void sh_ffi_ckpt_writer_free(sh_ckpt_writer_t *w);
sh_ckpt_job_t *sh_ffi_ckpt_job_new(const char *dir, const char *name);
int sh_ffi_ckpt_job_add_bytes(sh_ckpt_job_t *j, const char *bytes, size_t len);
int sh_ffi_ckpt_job_add_blob(sh_ckpt_job_t *j, sh_blob_t *b);
int sh_ffi_ckpt_job_keep_newest(sh_ckpt_job_t *j, const char *prefix, double keep);
int sh_ffi_ckpt_job_remove_below(sh_ckpt_job_t *j, const char *prefix, double below);
void sh_ffi_ckpt_job_free(sh_ckpt_job_t *j);
double sh_ffi_ckpt_submit(sh_ckpt_writer_t *w, sh_ckpt_job_t *j);
int sh_ffi_ckpt_next_done(sh_ckpt_writer_t *w, double *id, int *rc, char **errmsg);
void sh_ffi_ckpt_drain(sh_ckpt_writer_t *w);
int sh_ffi_ckpt_write(const char *dir, const char *name, const char *data, size_t len, char **errmsg);
int sh_ffi_ckpt_remove_stale_tmp(const char *dir);
int sh_ffi_ckpt_read(const char *path, char **data, size_t *len, char **errmsg);
int sh_ffi_ckpt_list(const char *dir, const char *prefix, char **names, size_t *len, char **errmsg);
uint32_t sh_ffi_crc32c(uint32_t crc, const char *data, size_t len);

typedef struct sh_kafka_s sh_kafka_t;
sh_kafka_t *sh_ffi_kafka_new(const char **keys, const char **vals, int n, char **errmsg);
void sh_ffi_kafka_free(sh_kafka_t *k);
int sh_ffi_kafka_partitions(sh_kafka_t *k, const char *topic, int timeout_ms, int32_t *out,
                            int max, char **errmsg);
int sh_ffi_kafka_watermarks(sh_kafka_t *k, const char *topic, int32_t partition, int timeout_ms,
                            int64_t *lo, int64_t *hi, char **errmsg);
int sh_ffi_zk_brokers(const char *quorum, int timeout_ms, char **out, char **errmsg);
typedef struct sh_kafka_offsets_s sh_kafka_offsets_t;
sh_kafka_offsets_t *sh_ffi_kafka_offsets_new(sh_kafka_t *k, const char **topics,
                                             const int32_t *parts, int n, char **errmsg);
int sh_ffi_kafka_offsets_get(sh_kafka_offsets_t *o, int64_t *lo, int64_t *hi, char **errmsg);
void sh_ffi_kafka_offsets_free(sh_kafka_offsets_t *o);
typedef struct sh_kafka_recv_s sh_kafka_recv_t;
sh_kafka_recv_t *sh_ffi_kafka_recv_open(sh_host_t *h, sh_sched_t *sched, int input,
                                        const char **keys, const char **vals, int n,
                                        const char **topics, int ntopics, char **errmsg);
int sh_ffi_kafka_recv_event(sh_kafka_recv_t *r, char **msg);
int sh_ffi_kafka_block_positions(const sh_blob_t *b, int32_t *topics, int32_t *parts,
                                 int64_t *next, int n, int max);
int sh_ffi_kafka_recv_commit(sh_kafka_recv_t *r, const int32_t *topics, const int32_t *parts,
                             const int64_t *next, int n, char **errmsg);
void sh_ffi_kafka_recv_close(sh_kafka_recv_t *r);
sh_blob_t *sh_ffi_kafka_read(sh_kafka_t *k, const char *topic, int32_t partition, int64_t from,
                             int64_t until, int timeout_ms, char **errmsg);

typedef struct sh_flume_push_s sh_flume_push_t;
sh_flume_push_t *sh_ffi_flume_push_open(sh_host_t *h, sh_sched_t *sched, int input,
                                        const char *host, int port, int compress, int deferred,
                                        char **errmsg);
int sh_ffi_flume_push_port(sh_flume_push_t *s);
void sh_ffi_flume_push_release(sh_flume_push_t *s, double upto, int ok);
int sh_ffi_flume_push_event(sh_flume_push_t *s, char **msg);
void sh_ffi_flume_push_close(sh_flume_push_t *s);
typedef struct sh_flume_poll_s sh_flume_poll_t;
sh_flume_poll_t *sh_ffi_flume_poll_open(sh_host_t *h, sh_sched_t *sched, int input,
                                        const char **hosts, const int *ports, int n,
                                        int max_batch, int parallelism, int deferred,
                                        char **errmsg);
void sh_ffi_flume_poll_release(sh_flume_poll_t *p, double upto, int ok);
int sh_ffi_flume_poll_event(sh_flume_poll_t *p, char **msg);
void sh_ffi_flume_poll_close(sh_flume_poll_t *p);
]]

local M = {
    C = ffi.C,
    BLOB_ENCODED = 1,
    BLOB_LINES = 2,
    BLOB_FIXED = 3,
    BLOB_KAFKA = 4,  -- connectors/kafka/sh_in_kafka.h: offset, timestamp, key, value per record
    BLOB_KINESIS = 5,  -- connectors/kinesis/sh_in_kinesis.h: shard, sequence number, key, data per record
    BLOB_FLUME = 6,  -- connectors/flume/sh_flume.h: headers and body per event
    FN_LOST = -1,  -- sh_ffi_fn_dropped_since: the caller fell behind the log (SH_FNREG_LOST)
}

-- Takes a C string that the host allocated, returns it as a Lua string and frees the C copy.
function M.take_string(p, len)
    if p == nil then return nil end
    local s = len and ffi.string(p, len) or ffi.string(p)
    ffi.C.sh_ffi_free(p)
    return s
end

-- The host this state belongs to (driver only; nil in worker states).
function M.host()
    local p = package.loaded["streamhost.host_pointer"]
    if type(p) ~= "userdata" then return nil end
    return ffi.cast("sh_host_t *", p)
end

-- Blob pointers travel inside task descriptions as plain numbers: user-space addresses on
-- x86-64 and arm64 fit in 48 bits, well inside a double's exact range.
function M.blob_to_number(b)
    return tonumber(ffi.cast("uintptr_t", b))
end

function M.number_to_blob(n)
    return ffi.cast("sh_blob_t *", n)
end

-- Owns one reference to a blob: the reference is dropped when the Lua object is collected.
function M.own_blob(b)
    return ffi.gc(b, ffi.C.sh_ffi_blob_unref)
end

-- Takes a reference of its own to a blob that someone else holds (a task's result, a batch
-- record's block) and owns it as own_blob does.
function M.adopt_blob(b)
    if type(b) == "number" then b = ffi.cast("sh_blob_t *", b) end
    ffi.C.sh_ffi_blob_ref(b)
    return ffi.gc(b, ffi.C.sh_ffi_blob_unref)
end

return M
