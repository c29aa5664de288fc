-- streamhost.checkpoint: what ssc:checkpoint(dir) writes and what getOrCreate recovers from.
--
-- In the directory (DESIGN.md "Checkpoints and recovery"):
--   metadata-<seq>          written when a batch is generated and when it completes: the graph
--                           (checkpoint_graph), the batch times generated and completed, the
--                           sources' recorded input (files read by batch), the script's path
--                           and hash. The newest KEEP_META are kept.
--   state-<t>               every checkpoint interval: the state of every stateful stream
--                           (updateStateByKey, incremental windows) as of batch t, written from
--                           the state's blobs as they are. The newest KEEP_STATE are kept.
--   receivedData/<id>/wal-<t>  with spark.streaming.receiver.writeAheadLog.enable: the blocks a
--                           receiver's batch t holds, written before the batch runs.
-- Files are written by the checkpoint writer thread (sh_ckpt_writer.c) in order: each to a
-- temporary name, fsynced, renamed, the directory fsynced; each has a format version and a
-- checksum (sh_ckpt_file.h). A failed write keeps the last good files; it is reported on stderr
-- and to listeners (onCheckpointError, an extension) and the next batch writes again.
--
-- Recovery (getOrCreate) takes the newest metadata that verifies, rebuilds the graph, and at
-- start: restores the newest state that verifies, re-applies the batches that completed after
-- it (state only, from their recorded input), reruns the batches that were pending, each with
-- its recorded input, then the batches of the time the host was down, then goes on.
local ffi = require "ffi"
local buffer = require "string.buffer"
local shffi = require "streamhost.ffi"
local files = require "streamhost.files"
local graph = require "streamhost.checkpoint_graph"

local C = shffi.C
local floor = math.floor

local M = {}

local META, STATE, WAL = "metadata-", "state-", "wal-"
local KEEP_META, KEEP_STATE = 4, 2
local FORMAT = 1
local WAL_SETTING = "spark.streaming.receiver.writeAheadLog.enable"
M.WAL_SETTING = WAL_SETTING

local err_out = ffi.new("char *[1]")
local data_out, len_out = ffi.new("char *[1]"), ffi.new("size_t[1]")
local id_out, rc_out = ffi.new("double[1]"), ffi.new("int[1]")

local function now_ms()
    return floor(C.sh_ffi_now() * 1000)
end

-- -- Payloads: a header (string.buffer-encoded table) and blobs after it ----------------------

local function u32(n)
    return string.char(n % 256, floor(n / 256) % 256, floor(n / 65536) % 256, floor(n / 16777216) % 256)
end

-- A writer job for dir/name (name nil: prune only) with payload header + blobs.
local function new_job(dir, name, header, blobs)
    local j = C.sh_ffi_ckpt_job_new(dir, name)
    if j == nil then error("out of memory writing a checkpoint", 0) end
    if header then
        local h = buffer.encode(header)
        local ok = C.sh_ffi_ckpt_job_add_bytes(j, u32(#h), 4) == 0
            and C.sh_ffi_ckpt_job_add_bytes(j, h, #h) == 0
        for _, b in ipairs(blobs or {}) do
            ok = ok and C.sh_ffi_ckpt_job_add_blob(j, b) == 0
        end
        if not ok then
            C.sh_ffi_ckpt_job_free(j)
            error("out of memory writing a checkpoint", 0)
        end
    end
    return j
end

-- The header of a payload read back, and a function making blob i's copy from its description.
local function open_payload(p, len)
    if len < 4 then error("payload too short", 0) end
    local hlen = p[0] + p[1] * 256 + p[2] * 65536 + p[3] * 16777216
    if 4 + hlen > len then error("header runs past the payload", 0) end
    local header = buffer.decode(ffi.string(p + 4, hlen))
    local off = 4 + hlen
    local function next_blob(desc)
        if off + desc.len > len then error("blob runs past the payload", 0) end
        local b = C.sh_ffi_blob_new(desc.kind, p + off, desc.len, desc.reclen or 0, desc.count)
        if b == nil then error("out of memory reading a checkpoint", 0) end
        off = off + desc.len
        return shffi.own_blob(b)
    end
    return header, next_blob
end

local function describe(b)
    return { kind = tonumber(b.kind), reclen = tonumber(b.reclen), count = tonumber(b.count),
             len = tonumber(b.len) }
end

-- Reads and verifies checkpoint file `path`; returns its payload's header and next_blob, or
-- nil and the reason (naming the file).
local function read_file(path)
    local rc = C.sh_ffi_ckpt_read(path, data_out, len_out, err_out)
    if rc ~= 0 then return nil, shffi.take_string(err_out[0]) or ("cannot read " .. path) end
    local p, len = data_out[0], tonumber(len_out[0])
    local ok, header, next_blob = pcall(open_payload, ffi.cast("const uint8_t *", p), len)
    if not ok then
        C.sh_ffi_free(p)
        return nil, path .. ": not a streamhost checkpoint payload (" .. tostring(header) .. ")"
    end
    -- The blobs copy what they need; the buffer goes when the caller is done with next_blob.
    return header, next_blob, function() C.sh_ffi_free(p) end
end

-- Names in dir of prefix<number>, newest first ({} when the directory is missing).
local function list(dir, prefix)
    local n = C.sh_ffi_ckpt_list(dir, prefix, data_out, len_out, err_out)
    if n < 0 then
        local msg = shffi.take_string(err_out[0])
        return {}, msg
    end
    return files.split_names(shffi.take_string(data_out[0], len_out[0]))
end

-- -- The script ---------------------------------------------------------------------------------

local function script_info(path)
    path = path or (type(arg) == "table" and arg[0] or nil)
    return { path = path, hash = files.content_hash(path) }
end

-- -- Writing ------------------------------------------------------------------------------------

local Checkpointer = {}
Checkpointer.__index = Checkpointer

-- Whether a setting or argument name names a credential: such values never go into a
-- checkpoint (a recovered job reads them again from where they came from: its environment).
local function is_credential(name)
    local n = tostring(name):lower()
    return n:find("secret") or n:find("password") or n:find("passwd") or n:find("token")
        or n:find("credential") or n:find("access.?key") or n:find("private.?key") or false
end
M.is_credential = is_credential

local function settings_without_credentials(conf)
    local out = {}
    for _, kv in ipairs(conf:getAll()) do
        if not is_credential(kv[1]) then out[#out + 1] = kv end
    end
    return out
end

-- The state checkpoint interval: Spark's default for a stateful stream is the smallest multiple
-- of its slide of at least 10 s (or DStream:checkpoint(interval)); one interval serves every
-- stateful stream, a multiple of all their slides, so that every state in a file is as of its
-- time.
local function state_interval(streams, batch_ms)
    local interval = nil
    for _, d in ipairs(streams) do
        local own = d._checkpoint_ms or (math.ceil(10000 / d._slide_ms) * d._slide_ms)
        own = math.max(d._slide_ms, math.ceil(own / d._slide_ms) * d._slide_ms)
        interval = interval and math.min(interval, own) or own
    end
    if interval == nil then return nil end
    interval = math.ceil(interval / batch_ms) * batch_ms
    for _ = 1, 1000 do  -- up to a multiple of every stateful slide
        local fits = true
        for _, d in ipairs(streams) do
            if interval % d._slide_ms ~= 0 then fits = false end
        end
        if fits then return interval end
        interval = interval + batch_ms
    end
    return interval
end

-- Opens checkpointing for ssc at start: packs the graph (raising what cannot be checkpointed),
-- makes the directory and writes the first metadata file there now, so a directory that
-- cannot be written is an error of start(). Then starts the writer thread.
function M.open(ssc)
    local dir = ssc._checkpoint_dir
    local ok, err = pcall(files.mkdirs, dir)
    if not ok then error("cannot use checkpoint directory " .. dir .. ": " .. tostring(err), 0) end
    local stateful, initial = {}, {}
    for _, d in ipairs(ssc._dstreams) do
        if d._sid then stateful[#stateful + 1] = d end
        if d._initial then initial[d] = d._initial:collect() end
    end
    local g = graph.pack(ssc, initial)
    local sc = ssc.sparkContext
    local recovery = ssc._recovery
    local wal = tostring(sc._conf:get(WAL_SETTING, "false")):lower() == "true"
        or (recovery and recovery.wal) or false
    local ck = setmetatable({
        ssc = ssc, dir = dir, graph_bytes = buffer.encode(g), initial = initial, script = script_info(),
        seq = recovery and recovery.seq or 0, jobs = {}, state_files = {},
        stateful = stateful, interval_ms = state_interval(stateful, ssc._batch_ms),
        wal = wal, last_generated = recovery and recovery.last_generated or nil,
        last_completed = recovery and recovery.last_completed or nil,
        conf = { master = sc.master, appName = sc.appName, all = settings_without_credentials(sc._conf) },
        reported = {},
        stats = { writes = 0, failures = 0 },  -- status(): what was written, how long it took
    }, Checkpointer)
    if recovery then
        for _, t in ipairs(recovery.state_files or {}) do ck.state_files[#ck.state_files + 1] = t end
    end
    if wal then
        for _, d in ipairs(ssc._inputs) do
            local s = d._source
            if s.receiver then
                local sub = string.format("%s/receivedData/%d", dir, s.stream_id)
                local mk, merr = pcall(files.mkdirs, sub)
                if not mk then error("cannot use checkpoint directory " .. dir .. ": " .. tostring(merr), 0) end
                s.wal = { dir = sub, read = function(_, t) return M.read_wal(sub, t) end }
            end
        end
    end
    -- Temporary files of writes a kill interrupted (their writer is gone) go.
    C.sh_ffi_ckpt_remove_stale_tmp(dir)
    for _, d in ipairs(ssc._inputs) do
        if d._source.wal then C.sh_ffi_ckpt_remove_stale_tmp(d._source.wal.dir) end
    end
    if recovery then M.restore_sources(ssc) end
    for _, d in ipairs(ssc._inputs) do  -- what the sources record from their start on
        local s = d._source
        if s.prepare then s:prepare() end
    end
    ck.seq = ck.seq + 1
    local h = buffer.encode(ck:metadata())
    local bytes = u32(#h) .. h
    if C.sh_ffi_ckpt_write(dir, META .. ck.seq, bytes, #bytes, err_out) ~= 0 then
        error("cannot write to checkpoint directory " .. dir .. ": " .. tostring(shffi.take_string(err_out[0])), 0)
    end
    local w = C.sh_ffi_ckpt_writer_new(sc._host, err_out)
    if w == nil then error(tostring(shffi.take_string(err_out[0])), 0) end
    ck.writer = w
    return ck
end

-- The earliest batch time whose recorded input recovery may need: the oldest state file kept
-- (re-applied from there), else the first batch when there are stateful streams; without
-- them, the windows' reach back from the last completed batch.
function Checkpointer:keep_from()
    local ssc = self.ssc
    if #self.stateful > 0 then
        return self.state_files[1] or ssc._zero_ms
    end
    local reach = 0
    for _, d in ipairs(ssc._dstreams) do reach = math.max(reach, d._remember_ms or 0) end
    return (self.last_completed or ssc._zero_ms) - reach
end

-- The graph as of now: driver functions are packed again at every write, so the values they
-- capture (a running total, a lookup table) come back as of the last checkpoint, as pyspark
-- pickles the graph at each one. One that cannot be packed any more (it came to capture an
-- RDD, say) is reported and the last good graph is written.
function Checkpointer:repack()
    local ok, g = pcall(graph.pack, self.ssc, self.initial)
    if ok then
        self.graph_bytes = buffer.encode(g)
        self.reported.graph = nil
    else
        self:report("graph", "cannot pack the graph: " .. tostring(g))
    end
end

function Checkpointer:metadata()
    local ssc = self.ssc
    local sources = {}
    for _, d in ipairs(ssc._inputs) do
        local s = d._source
        if s.checkpoint_data then sources[s.stream_id] = s:checkpoint_data() end
    end
    return { format = FORMAT, seq = self.seq, written = now_ms(), script = self.script,
             conf = self.conf, graph = self.graph_bytes, batch_ms = ssc._batch_ms,
             zero_ms = ssc._zero_ms, last_generated = self.last_generated,
             last_completed = self.last_completed, state_files = self.state_files,
             keep_from = self:keep_from(), sources = sources, wal = self.wal }
end

function Checkpointer:submit(j, what)
    what.submitted = C.sh_ffi_now()
    local id = C.sh_ffi_ckpt_submit(self.writer, j)
    self.jobs[id] = what
    return id
end

-- t: the batch time the metadata is written for (generated or completed); logged: the write-
-- ahead log entries of batch t whose sources hear when this is written (see generated).
function Checkpointer:write_metadata(t, logged)
    self:repack()
    self.seq = self.seq + 1
    local j = new_job(self.dir, META .. self.seq, self:metadata())
    C.sh_ffi_ckpt_job_keep_newest(j, META, KEEP_META)
    self:submit(j, { kind = "metadata", time = t, logged = logged })
end

-- The state of every stateful stream as of now (after batch t committed).
function Checkpointer:write_state(t)
    local state = require "streamhost.state"
    local header, blobs, bytes = { time = t, streams = {} }, {}, 0
    for _, d in ipairs(self.stateful) do
        local rdd, st = state.current(d)
        if rdd then
            local parts = {}
            for p, part in ipairs(rdd._parts) do
                local descs = {}
                for i, b in ipairs(part) do
                    descs[i] = describe(b)
                    blobs[#blobs + 1] = b
                    bytes = bytes + tonumber(b.len)
                end
                parts[p] = descs
            end
            header.streams[d._id] = { time = st, parts = parts }
        end
    end
    local j = new_job(self.dir, STATE .. t, header, blobs)
    C.sh_ffi_ckpt_job_keep_newest(j, STATE, KEEP_STATE)
    self:submit(j, { kind = "state", time = t, bytes = bytes })
    self.state_due = false
end

-- Batch generated: its receivers' blocks go to the write-ahead log first (the batch waits for
-- them: batch.hold), then the metadata. A receiver that answers its senders once their records
-- are logged (source.wal_written: Flume's OK, Kafka's group commit) hears of it when the
-- metadata naming the batch is written too (the writer keeps order), so a recovery knows to
-- run the batch again.
function Checkpointer:generated(batch)
    local t = batch.time
    local logged
    if self.wal and batch.rec ~= nil then
        local sources = require "streamhost.sources"
        for _, d in ipairs(self.ssc._inputs) do
            local s = d._source
            if s.wal and s.input then
                local blocks = sources.record_blocks(batch.rec, s.input)
                if #blocks > 0 then
                    local descs = {}
                    for i, b in ipairs(blocks) do descs[i] = describe(b) end
                    local j = new_job(s.wal.dir, WAL .. t, { time = t, blocks = descs }, blocks)
                    batch.hold = (batch.hold or 0) + 1
                    local entry = { source = s, ok = true }
                    if s.wal_written then logged = logged or {}; logged[#logged + 1] = entry end
                    self:submit(j, { kind = "wal", batch = batch, entry = entry })
                end
            end
        end
    end
    if self.last_generated == nil or t > self.last_generated then self.last_generated = t end
    self:write_metadata(t, logged)
end

function Checkpointer:due(t)
    return self.interval_ms and (self.state_due or (t - self.ssc._zero_ms) % self.interval_ms == 0)
end

-- Batch completed (ok or failed): state when due, then the metadata; the write-ahead log
-- drops what no recovery can need any more.
function Checkpointer:completed(batch)
    local t = batch.time
    if self.last_completed == nil or t > self.last_completed then self.last_completed = t end
    if self:due(t) then self:write_state(t) end
    self:write_metadata(t)
    if self.wal then
        local keep_from = self:keep_from()
        for _, d in ipairs(self.ssc._inputs) do
            local s = d._source
            if s.wal then
                local j = new_job(s.wal.dir, nil)
                C.sh_ffi_ckpt_job_remove_below(j, WAL, keep_from)
                self:submit(j, { kind = "prune" })
            end
        end
    end
end

-- Reports a failed write once per cause (stderr and the listeners' onCheckpointError), and
-- again when it comes back after a success.
function Checkpointer:report(what, msg)
    if self.reported[what] == msg then return end
    self.reported[what] = msg
    io.stderr:write("streamhost: checkpoint: ", msg, " (the last good checkpoint stays; retrying at the next batch)\n")
    self.ssc:_post("onCheckpointError", { kind = what, message = msg, time = C.sh_ffi_now(),
                                          directory = self.dir })
end

-- Takes the writer's finished jobs: releases batches waiting for their log, notes state files
-- written, reports failures.
function Checkpointer:poll()
    if self.writer == nil then return end
    while C.sh_ffi_ckpt_next_done(self.writer, id_out, rc_out, err_out) == 1 do
        local job = self.jobs[id_out[0]]
        self.jobs[id_out[0]] = nil
        local rc, msg = rc_out[0], shffi.take_string(err_out[0])
        local stats = self.stats
        if job then
            if job.kind == "metadata" or job.kind == "state" then  -- the status page's
                require("streamhost.status").checkpoint(self.dir, job.time and job.time / 1000, rc == 0, msg)
            end
            local took = C.sh_ffi_now() - job.submitted
            if rc ~= 0 then
                stats.failures = stats.failures + 1
                stats.last_error = msg
            elseif job.kind == "metadata" or job.kind == "state" then
                stats[job.kind] = { seconds = took, bytes = job.bytes, time = job.time,
                                    written = C.sh_ffi_now() }
                stats.writes = stats.writes + 1
            end
            if job.kind == "wal" then
                job.batch.hold = job.batch.hold - 1
                if rc ~= 0 then job.entry.ok = false end
            end
            for _, e in ipairs(job.logged or {}) do  -- receivers answering once logged
                pcall(e.source.wal_written, e.source, job.time, e.ok and rc == 0)
            end
            if rc ~= 0 then
                self:report(job.kind, msg or ("error " .. rc))
                if job.kind == "state" then self.state_due = true end
            else
                self.reported[job.kind] = nil
                if job.kind == "state" then
                    local list = self.state_files
                    list[#list + 1] = job.time
                    table.sort(list)
                    while #list > KEEP_STATE do table.remove(list, 1) end
                end
            end
        end
    end
end

-- The final checkpoint of a graceful stop: the state, the metadata, all on disk before it
-- returns.
function Checkpointer:final()
    if self.writer == nil then return end
    if self.interval_ms and self.last_completed then self:write_state(self.last_completed) end
    self:write_metadata(self.last_completed)
    C.sh_ffi_ckpt_drain(self.writer)
    self:poll()
end

-- What checkpointing did so far: { directory, writes, failures, last_error, metadata = {seconds,
-- written}, state = {seconds, bytes, time, written}, state_interval } (seconds: from submission
-- to the file being on disk; written: epoch seconds).
-- Hot reload: the checkpointer goes on for ssc, the new graph's context (same directory), and
-- the script at `path`: the files it writes from now on hold that graph and script; their
-- numbering, state files and recorded batches go on. Raises when the graph cannot be packed.
function Checkpointer:rebind(ssc, path)
    local stateful = {}
    for _, d in ipairs(ssc._dstreams) do
        if d._sid then stateful[#stateful + 1] = d end
        if d._initial then error("a reloaded stream with an initial RDD cannot be checkpointed", 0) end
    end
    self.graph_bytes = buffer.encode(graph.pack(ssc, {}))
    self.initial = {}
    self.ssc = ssc
    self.stateful = stateful
    self.interval_ms = state_interval(stateful, ssc._batch_ms)
    self.script = script_info(path)
end

function Checkpointer:status()
    local st = self.stats
    return { directory = self.dir, writes = st.writes, failures = st.failures,
             last_error = st.last_error, metadata = st.metadata, state = st.state,
             state_interval = self.interval_ms and self.interval_ms / 1000 or nil }
end

-- Writes what is queued, then stops the writer thread.
function Checkpointer:close()
    if self.writer == nil then return end
    C.sh_ffi_ckpt_drain(self.writer)
    self:poll()
    C.sh_ffi_ckpt_writer_free(self.writer)
    self.writer = nil
end

-- -- Reading ------------------------------------------------------------------------------------

-- The blocks of a receiver's batch t from its write-ahead log in dir, or nil when there are
-- none (a batch without data, or one older than what is kept).
function M.read_wal(dir, t)
    local path = string.format("%s/%s%d", dir, WAL, t)
    local f = io.open(path, "rb")
    if not f then return nil end
    f:close()
    local header, next_blob, done = read_file(path)
    if header == nil then error("write-ahead log " .. tostring(next_blob), 0) end
    local ok, blobs = pcall(function()
        local out = {}
        for i, desc in ipairs(header.blocks) do out[i] = next_blob(desc) end
        return out
    end)
    done()
    if not ok then error("write-ahead log " .. path .. ": " .. tostring(blobs), 0) end
    return blobs
end

-- The newest metadata of dir that verifies: its table and file name, or nil when dir has no
-- metadata file. Every file that does not verify is named on stderr and skipped; when none
-- does, raises.
local function newest_metadata(dir)
    local names = list(dir, META)
    local skipped = {}
    for _, name in ipairs(names) do
        local path = dir .. "/" .. name
        local meta, why, done = read_file(path)
        if meta then
            done()
            if type(meta) == "table" and meta.format == FORMAT then return meta, path end
            why = path .. ": not streamhost metadata of format " .. FORMAT
        end
        io.stderr:write("streamhost: skipping ", why, "\n")
        skipped[#skipped + 1] = name
    end
    if #skipped > 0 then
        error("no checkpoint in " .. dir .. " verifies (" .. table.concat(skipped, ", ") ..
            "); move the directory away to start afresh", 0)
    end
    return nil
end

-- getOrCreate's recovery: a new StreamingContext with the graph of the newest metadata
-- checkpoint in dir (the active SparkContext, or a new one with the checkpoint's master and
-- app name), to be started as usual; nil when dir holds no checkpoint.
function M.recover(dir)
    local meta, path = newest_metadata(dir)
    if meta == nil then return nil end
    local SparkContext = require "streamhost.context"
    local streaming = require "streamhost.streaming"
    local sc = SparkContext._active()
    if sc == nil then  -- the checkpoint's settings (credentials are never among them)
        local SparkConf = require "streamhost.conf"
        local conf = SparkConf():setAll(meta.conf.all or {})
        sc = SparkContext(meta.conf.master, meta.conf.appName, nil, nil, nil, nil, nil, conf)
    end
    local ssc = streaming.StreamingContext(sc, meta.batch_ms / 1000)
    graph.rebuild(ssc, buffer.decode(meta.graph))
    ssc._checkpoint_dir = dir
    sc._checkpoint_dir = sc._checkpoint_dir or dir
    ssc._recovery = meta
    meta.path = path
    local now = script_info()
    if meta.script and now.hash ~= meta.script.hash then
        -- With --recover-new-script the checkpointed job comes back, then the current script
        -- is hot-reloaded into it (its graph takes the state over by name and position).
        local take_over = os.getenv("STREAMHOST_RECOVER_NEW_SCRIPT") == "1" and now.path
        io.stderr:write(string.format("streamhost: %s differs from the script that wrote checkpoint %s (hash %s there, %s now); %s\n",
            tostring(now.path), path, tostring(meta.script.hash), tostring(now.hash),
            take_over and "recovering the checkpointed job, then reloading the script into it"
                or "running the checkpointed graph"))
        ssc._reload_after_start = take_over or nil
    end
    return ssc
end

-- Restores the state of the stateful streams from the newest state file that verifies, taken
-- at a time between keep_from and last_completed. Returns its time, or nil (state starts
-- empty).
local function restore_state(ssc, meta)
    local state = require "streamhost.state"
    local by_id = {}
    for _, d in ipairs(ssc._dstreams) do
        if d._sid then by_id[d._id] = d end
    end
    if next(by_id) == nil then return nil end
    for _, name in ipairs(list(ssc._checkpoint_dir, STATE)) do
        local t = tonumber(name:sub(#STATE + 1))
        local path = ssc._checkpoint_dir .. "/" .. name
        if t and meta.last_completed and t <= meta.last_completed and t >= (meta.keep_from or 0) then
            local header, next_blob, done = read_file(path)
            if header == nil then
                io.stderr:write("streamhost: skipping ", tostring(next_blob), "\n")
            else
                local ok, streams = pcall(function()
                    local out = {}
                    for id, st in pairs(header.streams) do
                        local parts = {}
                        for p, descs in ipairs(st.parts) do
                            local blobs = {}
                            for i, desc in ipairs(descs) do blobs[i] = next_blob(desc) end
                            parts[p] = blobs
                        end
                        out[id] = { time = st.time, parts = parts }
                    end
                    return out
                end)
                done()
                if ok then
                    for id, st in pairs(streams) do
                        if by_id[id] then state.install(by_id[id], st.time, st.parts) end
                    end
                    return t
                end
                io.stderr:write("streamhost: skipping checkpoint ", path, ": ", tostring(streams), "\n")
            end
        end
    end
    return nil
end

-- At start of a recovered context (after its sources' data came back, before its scheduler
-- runs): restores state, and returns the batch times to replay, oldest first, each
-- { time, kind }: "state" (completed after the state restored: its state is re-applied),
-- "pending" (generated, not completed: rerun from its recorded input), "down" (a batch time the
-- host was down for: generated now).
function M.replay_plan(ssc, first_ms)
    local meta = ssc._recovery
    local batch = ssc._batch_ms
    local restored = restore_state(ssc, meta)
    local plan = {}
    local last_completed = meta.last_completed
    local stateful = false
    for _, d in ipairs(ssc._dstreams) do
        if d._sid then stateful = true end
    end
    if stateful and last_completed then
        local from = restored or ssc._zero_ms
        if restored == nil and (meta.keep_from or ssc._zero_ms) > ssc._zero_ms then
            io.stderr:write("streamhost: checkpoint ", meta.path, ": no state checkpoint verifies; state restarts from the batches still recorded\n")
            from = meta.keep_from - batch
        end
        for t = from + batch, last_completed, batch do plan[#plan + 1] = { time = t, kind = "state" } end
    end
    local after = last_completed or ssc._zero_ms
    for t = after + batch, meta.last_generated or after, batch do
        plan[#plan + 1] = { time = t, kind = "pending" }
    end
    for t = math.max(after, meta.last_generated or after) + batch, first_ms - batch, batch do
        plan[#plan + 1] = { time = t, kind = "down" }
    end
    local n = { state = 0, pending = 0, down = 0 }
    for _, step in ipairs(plan) do n[step.kind] = n[step.kind] + 1 end
    io.stderr:write(string.format("streamhost: recovering from %s: %s; re-applying %d completed batches, rerunning %d pending, %d of the downtime\n",
        meta.path, restored and ("state as of " .. restored) or "no state checkpoint", n.state, n.pending, n.down))
    return plan
end

-- Gives the recovered sources back their recorded input (before they start).
function M.restore_sources(ssc)
    local meta = ssc._recovery
    for _, d in ipairs(ssc._inputs) do
        local s = d._source
        local data = meta.sources and meta.sources[s.stream_id]
        if data and s.restore then s:restore(data) end
    end
end

return M
