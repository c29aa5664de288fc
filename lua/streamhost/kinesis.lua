-- streamhost.kinesis: KinesisUtils.createStream (driver side): a receiver of every shard of a
-- Kinesis stream (connectors/kinesis: libcurl on the loop, SigV4), its blocks of records in the
-- batches, and the shard positions its completed batches reached, kept in the checkpoint.
--
-- Positions: the receiver's blocks carry each record's shard and sequence number (and a mark
-- where a shard was read to its end); a batch's positions are read from its blocks in C. When
-- a batch completes, its positions become the stream's "completed" positions. They are kept
-- under the application name in the checkpoint's metadata (source.checkpoint_data), which the
-- checkpoint writes whenever a batch is generated or completes: so at least every
-- checkpointInterval, and in fact at every batch, since a coarser record would make a
-- recovered stream read the records of completed batches again. After getOrCreate the
-- receiver resumes after the completed positions; with the write-ahead log on, the pending
-- batches are replayed from the log and it resumes after the positions they reach: the
-- completed positions merged, in batch-time order, with those of each pending batch whose log
-- is written (source.wal_written), up to the first pending batch whose log is not (yet, or
-- could not be) written: nothing that is in no log is skipped.
-- A shard that starts at LATEST and has read no record yet keeps, as its position, the time
-- its first iterator was asked for (latest, epoch ms): a recovery resumes there
-- (AT_TIMESTAMP), so what was put while the host was down is read. Credentials are never in a checkpoint: a recovered stream takes them from the
-- environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN).
local ffi = require "ffi"
local shffi = require "streamhost.ffi"
local rddmod = require "streamhost.rdd"
local receiver = require "streamhost.receiver"

local C = shffi.C

ffi.cdef [[
typedef struct sh_kinesis_pos_s sh_kinesis_pos_t;
sh_kinesis_pos_t *sh_ffi_kinesis_pos_new(void);
void sh_ffi_kinesis_pos_free(sh_kinesis_pos_t *p);
int sh_ffi_kinesis_pos_set(sh_kinesis_pos_t *p, const char *shard, const char *seq, int ended);
int sh_ffi_kinesis_pos_add_block(sh_kinesis_pos_t *p, const sh_blob_t *b);
int sh_ffi_kinesis_pos_count(const sh_kinesis_pos_t *p);
const char *sh_ffi_kinesis_pos_shard(const sh_kinesis_pos_t *p, int i);
const char *sh_ffi_kinesis_pos_seq(const sh_kinesis_pos_t *p, int i);
int sh_ffi_kinesis_pos_ended(const sh_kinesis_pos_t *p, int i);
int sh_ffi_kinesis_pos_set_latest(sh_kinesis_pos_t *p, const char *shard, double latest_ms);
double sh_ffi_kinesis_pos_latest(const sh_kinesis_pos_t *p, int i);
typedef struct sh_kinesis_opts_s {
    const char *stream, *endpoint, *region;
    const char *access_key, *secret_key;
    int latest, idle_ms, list_ms, timeout_ms;
} sh_kinesis_opts_t;
typedef struct sh_kinesis_recv_s sh_kinesis_recv_t;
sh_kinesis_recv_t *sh_ffi_kinesis_recv_open(sh_host_t *h, sh_sched_t *sched, int input,
                                            const sh_kinesis_opts_t *o,
                                            const sh_kinesis_pos_t *saved, char **errmsg);
int sh_ffi_kinesis_recv_event(sh_kinesis_recv_t *r, char **msg);
int sh_ffi_kinesis_recv_reading(const sh_kinesis_recv_t *r, int *ended, int *pauses);
void sh_ffi_kinesis_recv_close(sh_kinesis_recv_t *r);
int sh_ffi_sigv4_authorization(const char *method, const char *host, const char *path,
                               const char *query, const char **hnames, const char **hvals,
                               int nh, const char *body, size_t body_len, const char *region,
                               const char *service, const char *amz_date,
                               const char *access_key, const char *secret_key,
                               const char *session_token, char *out, size_t cap);
]]

local M = {}
local KinesisUtils = {}
M.KinesisUtils = KinesisUtils
-- pyspark's values.
M.InitialPositionInStream = { LATEST = 0, TRIM_HORIZON = 1 }

local BLOCK_BYTES = 4 * 1024 * 1024  -- a block (one partition of a batch) holds this much
-- GetRecords pauses while this much waits to be processed (streamhost.kinesis.maxQueuedBytes).
local MAX_QUEUED, MAX_QUEUED_LIMIT = 64 * 1024 * 1024, 1024 * 1024 * 1024

local err_out = ffi.new("char *[1]")
local ended_out, pauses_out = ffi.new("int[1]"), ffi.new("int[1]")

-- Sequence numbers are decimal strings of up to 128 bits: the longer is the larger, else the
-- string order is the number order.
local function seq_after(a, b)
    if #a ~= #b then return #a > #b end
    return a > b
end

-- Positions: shard id -> { seq = last sequence number read (or nil), ended = true|nil,
-- latest = when a LATEST shard's first iterator was asked for (epoch ms, or nil) }.
-- Merges `from` into `into`, keeping the later position of each shard (and the first LATEST
-- time, which only counts while no record was read).
local function merge(into, from)
    for shard, p in pairs(from) do
        local q = into[shard]
        if q == nil then
            into[shard] = { seq = p.seq, ended = p.ended, latest = p.latest }
        else
            if p.seq and (q.seq == nil or seq_after(p.seq, q.seq)) then q.seq = p.seq end
            if p.ended then q.ended = true end
            if p.latest and (q.latest == nil or p.latest < q.latest) then q.latest = p.latest end
        end
    end
    return into
end

-- The positions the entries of some blocks reach (read in C, one call a block).
local function positions_of(blobs)
    if #blobs == 0 then return {} end
    local p = ffi.gc(C.sh_ffi_kinesis_pos_new(), C.sh_ffi_kinesis_pos_free)
    if p == nil then error("out of memory", 0) end
    for _, b in ipairs(blobs) do
        if C.sh_ffi_kinesis_pos_add_block(p, b) ~= 0 then error("a Kinesis block is cut short", 0) end
    end
    local out = {}
    for i = 0, C.sh_ffi_kinesis_pos_count(p) - 1 do
        local seq = C.sh_ffi_kinesis_pos_seq(p, i)
        local latest = C.sh_ffi_kinesis_pos_latest(p, i)
        out[ffi.string(C.sh_ffi_kinesis_pos_shard(p, i))] = {
            seq = seq ~= nil and ffi.string(seq) or nil,
            ended = C.sh_ffi_kinesis_pos_ended(p, i) ~= 0 or nil,
            latest = latest > 0 and latest or nil }
    end
    C.sh_ffi_kinesis_pos_free(ffi.gc(p, nil))
    return out
end

local function copy(pos)
    return merge({}, pos or {})
end

-- Settings (SparkConf) of the receiver, in milliseconds: how long a shard with nothing new
-- waits before it is asked again (the service allows 5 GetRecords a second per shard), how
-- often the shards are listed again (new shards of a resharding are also looked for as soon
-- as a shard ends), and one call's limit.
local function settings(sc)
    local conf = sc:getConf()
    local function ms(key, default)
        local v = tonumber(conf:get(key, tostring(default)))
        if v == nil or v <= 0 then error(key .. " must be a positive number of milliseconds", 0) end
        return math.floor(v)
    end
    return ms("streamhost.kinesis.idleMs", 200), ms("streamhost.kinesis.listShardsMs", 10000),
        ms("streamhost.kinesis.requestTimeoutMs", 30000)
end

local function kinesis_stream(ssc, a, decode_id, creds)
    local sources = require "streamhost.sources"
    local sc = ssc.sparkContext
    local idle_ms, list_ms, timeout_ms = settings(sc)
    local max_queued = sc:_conf_bytes("streamhost.kinesis.maxQueuedBytes", MAX_QUEUED, MAX_QUEUED_LIMIT, 3)
    local source = {
        name = string.format("KinesisReceiver(%s, stream %s)", a.kinesisAppName, a.streamName),
        receiver = true, location = a.endpointUrl,
        args = a, fns = { decode_id },
        batch_pos = {},      -- batch time -> positions its blocks reach (until it completes)
        logged = {},         -- batch time -> true once the batch's write-ahead log is written
        generated = {},      -- positions after every batch generated
        completed = {},      -- positions after every batch completed
    }
    function source.start(self, sched)
        self.input = C.sh_ffi_sched_input_new(sched, shffi.BLOB_KINESIS, math.min(BLOCK_BYTES, max_queued), max_queued)
        if self.input < 0 then error(self.name .. ": out of memory", 0) end
        local saved = ffi.gc(C.sh_ffi_kinesis_pos_new(), C.sh_ffi_kinesis_pos_free)
        -- Where reading resumes: after what completed, or with the write-ahead log after what
        -- was generated (the pending batches come back from the log).
        local from = self.resume or {}
        for shard, p in pairs(from) do
            if C.sh_ffi_kinesis_pos_set(saved, shard, p.seq, p.ended and 1 or 0) ~= 0
                or C.sh_ffi_kinesis_pos_set_latest(saved, shard, tonumber(p.latest) or 0) ~= 0 then
                error(self.name .. ": out of memory", 0)
            end
        end
        local o = ffi.new("sh_kinesis_opts_t")
        o.stream, o.endpoint, o.region = a.streamName, a.endpointUrl, a.regionName
        o.access_key = creds and creds[1] or nil
        o.secret_key = creds and creds[2] or nil
        o.latest = a.initialPositionInStream == M.InitialPositionInStream.LATEST and 1 or 0
        o.idle_ms, o.list_ms, o.timeout_ms = idle_ms, list_ms, timeout_ms
        local r = C.sh_ffi_kinesis_recv_open(sc._host, sched, self.input, o, saved, err_out)
        C.sh_ffi_kinesis_pos_free(ffi.gc(saved, nil))
        if r == nil then error(self.name .. ": " .. tostring(shffi.take_string(err_out[0])), 0) end
        self.recv = r
    end
    function source.poll_events(self) receiver.drain_reports(self, C.sh_ffi_kinesis_recv_event, err_out) end
    -- Shards being read now, shards read to their end, and the times backpressure paused
    -- reading (an extension, for tests and status).
    function source.shards(self)
        if self.recv == nil then return 0, 0, 0 end
        local n = C.sh_ffi_kinesis_recv_reading(self.recv, ended_out, pauses_out)
        return n, ended_out[0], pauses_out[0]
    end
    local function note(self, t, blobs, logged)
        local pos = positions_of(blobs)
        if next(pos) then
            self.batch_pos[t] = pos
            self.logged[t] = logged or nil
            merge(self.generated, pos)
        end
    end
    -- With the write-ahead log: what a recovery resumes after (see the top of the file).
    local function logged_positions(self)
        local out, times = copy(self.completed), {}
        for t in pairs(self.batch_pos) do times[#times + 1] = t end
        table.sort(times)
        for _, t in ipairs(times) do
            if not self.logged[t] then break end
            merge(out, self.batch_pos[t])
        end
        return out
    end
    function source.generate(self, t, rec)
        local blobs, n = receiver.batch_blocks(self, rec)
        note(self, t, blobs)
        local rdd = receiver.blocks_rdd(sc, blobs, decode_id)
        rdd._known = n
        return rdd, { description = string.format("%s: %d records", self.name, n) }
    end
    function source.regenerate(self, t)
        local rdd, info, blobs = receiver.from_log(self, sc, t, decode_id)
        if rdd then note(self, t, blobs, true) end  -- it came from the log
        return rdd, info
    end
    -- The checkpoint wrote batch t's log and the metadata naming it (ok), or could not.
    function source.wal_written(self, t, ok)
        if ok and self.batch_pos[t] then self.logged[t] = true end
    end
    function source.batch_completed(self, _, ok, t)
        local pos = self.batch_pos[t]
        self.batch_pos[t] = nil
        self.logged[t] = nil
        if pos and ok then merge(self.completed, pos) end
    end
    function source.checkpoint_data(self)
        return { app = a.kinesisAppName, completed = copy(self.completed),
                 generated = self.wal and logged_positions(self) or copy(self.generated) }
    end
    function source.restore(self, data)
        if data.app ~= a.kinesisAppName then return end
        self.completed = copy(data.completed)
        self.generated = copy(self.wal and data.generated or data.completed)
        self.resume = copy(self.generated)
    end
    function source.stop(self)
        if self.recv ~= nil then
            self:poll_events()
            C.sh_ffi_kinesis_recv_close(self.recv)
            self.recv = nil
        end
        -- A stopped stream that starts again resumes after what it generated.
        self.resume = copy(self.generated)
    end
    return sources.input(ssc, source)
end

local function check_string(v, what, name, level)
    if type(v) ~= "string" or v == "" then
        error(string.format("%s expects %s as a non-empty string, got %s", what, name, type(v)), level + 1)
    end
end

function KinesisUtils.createStream(ssc, kinesisAppName, streamName, endpointUrl, regionName,
                                   initialPositionInStream, checkpointInterval, storageLevel, -- luacheck: ignore storageLevel
                                   awsAccessKeyId, awsSecretKey, decoder)
    local what = "KinesisUtils.createStream"
    if type(ssc) ~= "table" or ssc.sparkContext == nil then error(what .. " expects a StreamingContext first", 2) end
    check_string(kinesisAppName, what, "kinesisAppName", 2)
    check_string(streamName, what, "streamName", 2)
    check_string(endpointUrl, what, "endpointUrl", 2)
    if not endpointUrl:match("^https?://[^/]") then
        error(what .. ": endpointUrl must be an http:// or https:// URL, got " .. endpointUrl, 2)
    end
    check_string(regionName, what, "regionName", 2)
    if initialPositionInStream ~= M.InitialPositionInStream.LATEST
        and initialPositionInStream ~= M.InitialPositionInStream.TRIM_HORIZON then
        error(what .. " expects initialPositionInStream as InitialPositionInStream.LATEST or TRIM_HORIZON, got "
            .. tostring(initialPositionInStream), 2)
    end
    if type(checkpointInterval) ~= "number" or checkpointInterval <= 0 then
        error(what .. " expects checkpointInterval as a positive number of seconds, got " .. tostring(checkpointInterval), 2)
    end
    if (awsAccessKeyId == nil) ~= (awsSecretKey == nil) then
        error(what .. ": give both awsAccessKeyId and awsSecretKey, or neither (then the environment's)", 2)
    end
    if awsAccessKeyId ~= nil then
        check_string(awsAccessKeyId, what, "awsAccessKeyId", 2)
        check_string(awsSecretKey, what, "awsSecretKey", 2)
    elseif not os.getenv("AWS_ACCESS_KEY_ID") or not os.getenv("AWS_SECRET_ACCESS_KEY") then
        error(what .. ": no AWS credentials: pass awsAccessKeyId and awsSecretKey, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", 2)
    end
    local decode_id
    if decoder ~= nil and not rawequal(decoder, require("streamhost").utf8_decoder) then
        decode_id = rddmod.ship_fn(decoder, what .. " decoder", 2)
    end
    -- What the checkpoint keeps: no credentials.
    local a = { kind = "kinesisStream", kinesisAppName = kinesisAppName, streamName = streamName,
                endpointUrl = endpointUrl, regionName = regionName,
                initialPositionInStream = initialPositionInStream, checkpointInterval = checkpointInterval }
    return kinesis_stream(ssc, a, decode_id, awsAccessKeyId and { awsAccessKeyId, awsSecretKey } or nil)
end

-- A stream as a recovered graph makes it again: credentials from the environment.
function M.rebuild(ssc, args, fns)
    return kinesis_stream(ssc, args, fns[1], nil)
end

return M
