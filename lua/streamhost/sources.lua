-- streamhost.sources: the input DStreams of the StreamingContext: queueStream, socketTextStream,
-- textFileStream and binaryRecordsStream.
local ffi = require "ffi"
local shffi = require "streamhost.ffi"
local dstream = require "streamhost.dstream"
local rddmod = require "streamhost.rdd"
local files = require "streamhost.files"

local C = shffi.C
local codec = require "streamhost.codec"

local M = {}

-- Partitions for a batch's blocks: n partitions of about equal size (blocks cut at record
-- boundaries), so that every worker gets its share of a batch whatever the blocks' sizes.
-- Small batches (under 64 KiB a partition) keep one partition per block.
local MIN_SLICE = 64 * 1024
local function spread(blobs, n)
    local total = 0
    for _, b in ipairs(blobs) do total = total + tonumber(b.len) end
    local parts = {}
    if total < n * MIN_SLICE then
        for i, b in ipairs(blobs) do parts[i] = { b } end
        return parts
    end
    local target = math.ceil(total / n)
    local part, room = {}, target
    for _, b in ipairs(blobs) do
        local len, from = tonumber(b.len), 0
        while from < len do
            local to = len
            if len - from > room then
                to = math.max(codec.cut(b, from + room), from + 1)
                if b.kind == shffi.BLOB_FIXED then to = math.max(to, from + tonumber(b.reclen)) end
            end
            local count = b.kind == shffi.BLOB_FIXED and (to - from) / tonumber(b.reclen)
                or codec.count_lines(b, from, to)
            part[#part + 1] = { b, from, to, count = count }
            room = room - (to - from)
            from = to
            if room <= 0 then
                parts[#parts + 1] = part
                part = {}
                room = #parts < n - 1 and target or math.huge  -- the last part takes the rest
            end
        end
    end
    if #part > 0 then parts[#parts + 1] = part end
    return parts
end
M.spread = spread

-- An input stream: `source` has generate(t_ms, record) -> RDD, metadata (called when the
-- scheduler seals batch t; `record` is its C batch record), and optionally start(sched),
-- stop(), poll_events(), receiver (true for listener receiver events).
-- An input's RDDs are made when their batch is sealed (StreamingContext:_generate); a time
-- with none has no data.
-- A time whose batch was not generated in this process (recovery: the batches a window or a
-- replayed batch looks back on) comes from the source's recorded input, when it has one.
dstream.define("input", function(d, t)
    local s = d._source
    if s.regenerate then
        local ok, rdd = pcall(s.regenerate, s, t)
        if ok and rdd then return rdd end
        if not ok then s.report(tostring(rdd)) end
    end
    return d._ssc.sparkContext:emptyRDD()
end)

local function input(ssc, source)
    local d = dstream.new(ssc, {}, "input", { args = source.args, fns = source.fns, slide_ms = ssc._batch_ms })
    d._source = source
    source.stream_id = #ssc._inputs
    ssc._inputs[#ssc._inputs + 1] = d
    return d
end
M.input = input

-- -- queueStream -------------------------------------------------------------------------------

local function as_rdd(sc, x)
    if getmetatable(x) == rddmod.RDD then return x end
    if type(x) == "table" then return sc:parallelize(x) end
    error("queueStream takes RDDs or arrays of records, got a " .. type(x), 4)
end

function M.queue(ssc, rdds, oneAtATime, default)
    if type(rdds) ~= "table" then error("queueStream expects an array of RDDs or arrays", 3) end
    if oneAtATime == nil then oneAtATime = true end
    local sc = ssc.sparkContext
    local queue = {}
    for i, x in ipairs(rdds) do queue[i] = as_rdd(sc, x) end
    local default_rdd = default ~= nil and as_rdd(sc, default) or nil
    local source = { name = "queueStream", args = { kind = "queueStream", oneAtATime = oneAtATime } }
    function source.generate(_, _)
        if #queue == 0 then return default_rdd or sc:emptyRDD(), { description = "queueStream: empty" } end
        if oneAtATime then return table.remove(queue, 1), { description = "queueStream: 1 RDD" } end
        local all = queue
        queue = {}
        return rddmod.union_all(sc, all), { description = string.format("queueStream: %d RDDs", #all) }
    end
    return input(ssc, source)
end

-- -- socketTextStream ------------------------------------------------------------------------

local EVENT_NAMES = { [1] = "connected", [2] = "disconnected", [3] = "connect failed",
                      [4] = "line too long", [5] = "stopped" }
M.EVENT_NAMES = EVENT_NAMES

-- Longer lines are reported and skipped: the setting streamhost.socket.maxLineBytes (SparkConf),
-- by default 1 MiB, at most 1 GiB (the socket connector's limit).
local MAX_LINE, MAX_LINE_LIMIT = 1024 * 1024, 1024 * 1024 * 1024
local BLOCK_BYTES = 8 * 1024 * 1024 -- a block (one partition, or cut into several) holds this much text
-- Reading pauses (TCP flow control holds the peer) while this much received data waits to be
-- processed (in the receiver or in batches not yet run), so memory stays bounded when
-- processing is slower than input.
local MAX_QUEUED = 8 * 1024 * 1024

local blocks_out = ffi.new("sh_blob_t *[256]")
local kind_out, msg_out = ffi.new("int[1]"), ffi.new("char *[1]")

-- The blocks of input `input` in a batch record, each with a reference of its own.
local function record_blocks(rec, input)
    local blobs = {}
    repeat
        local n = C.sh_ffi_batch_blocks(rec, input, #blobs, blocks_out, 256)
        for i = 0, n - 1 do blobs[#blobs + 1] = shffi.adopt_blob(blocks_out[i]) end
    until n < 256
    return blobs
end
M.record_blocks = record_blocks

function M.socket(ssc, host, port, storageLevel) -- luacheck: ignore storageLevel
    if type(host) ~= "string" or host == "" then error("socketTextStream expects a host name", 3) end
    port = tonumber(port)
    if not port or port < 1 or port > 65535 or port % 1 ~= 0 then
        error("socketTextStream expects a port from 1 to 65535", 3)
    end
    local sc = ssc.sparkContext
    local max_line = sc:_conf_bytes("streamhost.socket.maxLineBytes", MAX_LINE, MAX_LINE_LIMIT, 3)
    local source = { name = string.format("SocketReceiver(%s:%d)", host, port), receiver = true,
                     location = string.format("%s:%d", host, port),
                     args = { kind = "socketTextStream", host = host, port = port } }
    function source.start(self, sched)
        self.input = C.sh_ffi_sched_input_new(sched, shffi.BLOB_LINES, BLOCK_BYTES, MAX_QUEUED)
        if self.input < 0 then error("socketTextStream " .. self.location .. ": out of memory", 0) end
        local err = ffi.new("char *[1]")
        local r = C.sh_ffi_socket_open(sc._host, sched, self.input, host, port, max_line, err)
        if r == nil then error("socketTextStream " .. self.location .. ": " .. tostring(shffi.take_string(err[0])), 0) end
        self.recv = r
    end
    -- Reports what went wrong at the receiver since the last call (stderr and listeners'
    -- onReceiverError): a failed connect, a lost connection, an over-long line skipped.
    function source.poll_events(self)
        while self.recv ~= nil and C.sh_ffi_recv_event(self.recv, kind_out, msg_out) == 1 do
            local msg = shffi.take_string(msg_out[0])
            local kind = kind_out[0]
            if kind == 2 or kind == 3 or kind == 4 then self.report(msg) end
        end
    end
    function source.generate(self, _, rec)
        local blobs, n, bytes = {}, 0, 0
        if rec ~= nil and self.input then
            blobs = record_blocks(rec, self.input)
            n, bytes = C.sh_ffi_batch_records(rec, self.input), C.sh_ffi_batch_bytes(rec, self.input)
        end
        return rddmod.from_blobs(sc, spread(blobs, sc.defaultParallelism)),
            { description = string.format("%s: %d lines, %d bytes", self.name, n, bytes),
              lines = n, bytes = bytes }
    end
    -- A batch's blocks from the write-ahead log (recovery), or nil when it has none.
    function source.regenerate(self, t)
        local wal = self.wal
        local blobs = wal and wal.read(self.stream_id, t)
        if blobs == nil then return nil end
        local n = 0
        for _, b in ipairs(blobs) do n = n + tonumber(b.count) end
        return rddmod.from_blobs(sc, spread(blobs, sc.defaultParallelism)),
            { description = string.format("%s: %d lines from the write-ahead log", self.name, n), lines = n }
    end
    function source.stop(self)
        if self.recv ~= nil then
            self:poll_events()
            C.sh_ffi_recv_close(self.recv)
            self.recv = nil
        end
    end
    return input(ssc, source)
end

-- -- embeddedStream (an extension: records the embedding program pushes from C) --------------

local EMBED_RECORDS, EMBED_BYTES = 10000, 16 * 1024 * 1024

-- A stream of the strings that C pushes with sh_host_push(h, name, ...): from any thread into
-- a bounded queue (capacity records, by default 10000, or 16 MiB) that the loop drains into
-- this stream's batches. The stream exists from start() to stop(); a push outside that is
-- refused.
function M.embedded(ssc, name, capacity)
    if type(name) ~= "string" or name == "" then error("embeddedStream expects a stream name", 3) end
    if capacity ~= nil and (type(capacity) ~= "number" or capacity < 1 or capacity % 1 ~= 0) then
        error("embeddedStream expects a queue capacity of at least one record, got " .. tostring(capacity), 3)
    end
    local sc = ssc.sparkContext
    local source = { name = string.format("EmbeddedStream(%s)", name), receiver = true,
                     location = "embedded:" .. name,
                     args = { kind = "embeddedStream", name = name, capacity = capacity } }
    function source.start(self, sched)
        self.input = C.sh_ffi_sched_input_new(sched, shffi.BLOB_LINES, BLOCK_BYTES, MAX_QUEUED)
        if self.input < 0 then error("embeddedStream " .. name .. ": out of memory", 0) end
        local err = ffi.new("char *[1]")
        local e = C.sh_ffi_embed_open(sc._host, sched, self.input, name, capacity or EMBED_RECORDS,
                                      EMBED_BYTES, err)
        if e == nil then error("embeddedStream " .. name .. ": " .. tostring(shffi.take_string(err[0])), 0) end
        self.embed = e
    end
    function source.generate(self, _, rec)
        local blobs, n = {}, 0
        if rec ~= nil and self.input then
            blobs = record_blocks(rec, self.input)
            n = C.sh_ffi_batch_records(rec, self.input)
        end
        return rddmod.from_blobs(sc, spread(blobs, sc.defaultParallelism)),
            { description = string.format("%s: %d records", self.name, n), records = n }
    end
    -- A graceful stop: what was pushed before it goes into the last batches.
    function source.drain(self)
        if self.embed ~= nil then C.sh_ffi_embed_drain(self.embed) end
    end
    function source.stop(self)
        if self.embed ~= nil then
            local dropped = C.sh_ffi_embed_close(self.embed)
            self.embed = nil
            if dropped > 0 then self.report(string.format("%d pushed records dropped at stop", dropped)) end
        end
    end
    return input(ssc, source)
end

-- -- textFileStream and binaryRecordsStream ---------------------------------------------------

-- New files of a directory, each read once, as Spark's FileInputDStream selects them: a file is
-- new for batch t when it was modified after the ignore threshold (the start, or t minus the
-- remember duration, whichever is later) and at or before t, and no batch remembered selected
-- it. Files there at start are not read (Spark's newFilesOnly), dotfiles never. Memory is
-- bounded: the files selected by the batches of the last remember duration (60 s at least,
-- Spark's minRememberDuration), which is also the recorded input that recovery reads again.
local MIN_REMEMBER_MS = 60000

local function directory_source(ssc, dir, read, name, args)
    local sc = ssc.sparkContext
    local batch_ms = ssc._batch_ms
    local remember_ms = math.ceil(MIN_REMEMBER_MS / batch_ms) * batch_ms
    local source = { name = name, dir = dir, location = dir, args = args,
                     selected = {},   -- batch time -> { {path, mtime}, ... }
                     recent = {},     -- path -> the batch time that selected it
                     at_start = {},   -- name -> mtime: files there at start
                     threshold = nil } -- epoch ms: files modified at or before it are old
    -- What is there at start is old: listed once, by the first start (a checkpoint records it,
    -- so a recovered stream keeps the original start's).
    function source.prepare(self)
        if self.threshold then return end
        local names, mtimes = files.list_mtimes(dir)
        if names == nil then error(name .. ": " .. tostring(mtimes), 0) end
        self.threshold = math.floor(C.sh_ffi_now() * 1000) - remember_ms
        for _, n in ipairs(names) do self.at_start[n] = mtimes[n] end
    end
    source.start = source.prepare
    local function read_all(self, list)
        local parts, read_paths = {}, {}
        for _, f in ipairs(list) do
            local ok, blob, note = pcall(read, f[1])
            if not ok then
                self.report(blob)
            else
                if note then self.report(note) end
                parts[#parts + 1] = { blob }
                read_paths[#read_paths + 1] = f[1]
            end
        end
        local desc = #read_paths == 0 and name .. ": no new files"
            or name .. ": " .. table.concat(read_paths, ", ")
        return rddmod.from_blobs(sc, parts), { files = read_paths, description = desc }
    end
    -- Forgets the selections older than the remember duration as of t (and the files there at
    -- start that can no longer be new).
    local function forget(self, t)
        local horizon = t - remember_ms
        for time, list in pairs(self.selected) do
            if time < horizon then
                for _, f in ipairs(list) do
                    if self.recent[f[1]] == time then self.recent[f[1]] = nil end
                end
                self.selected[time] = nil
            end
        end
        for n, mtime in pairs(self.at_start) do
            if mtime <= math.max(self.threshold, horizon) then self.at_start[n] = nil end
        end
    end
    function source.generate(self, t)
        local names, mtimes = files.list_mtimes(dir)
        if names == nil then
            self.report(mtimes)
            return rddmod.from_blobs(sc, {}), { files = {}, description = name .. ": " .. tostring(mtimes) }
        end
        local threshold = math.max(self.threshold, t - remember_ms)
        local list = {}
        for _, n in ipairs(names) do
            local path, mtime = dir .. "/" .. n, mtimes[n]
            if mtime > threshold and mtime <= t and not self.recent[path]
                and self.at_start[n] ~= mtime then
                list[#list + 1] = { path, mtime }
                self.recent[path] = t
            end
        end
        self.selected[t] = list
        forget(self, t)
        return read_all(self, list)
    end
    -- Batch t's files again (recovery), or nil when t is not remembered.
    function source.regenerate(self, t)
        local list = self.selected[t]
        if list == nil then return nil end
        return read_all(self, list)
    end
    function source.checkpoint_data(self)
        local at_start = {}
        for n, m in pairs(self.at_start) do at_start[n] = m end
        local selected = {}
        for time, list in pairs(self.selected) do selected[time] = list end
        return { threshold = self.threshold, at_start = at_start, selected = selected }
    end
    function source.restore(self, data)
        self.threshold, self.at_start, self.selected, self.recent = data.threshold, data.at_start, {}, {}
        for time, list in pairs(data.selected) do
            self.selected[time] = list
            for _, f in ipairs(list) do self.recent[f[1]] = time end
        end
    end
    return input(ssc, source)
end

-- Input streams as a recovered graph makes them again, by the kind their args record.
local REBUILD = {
    socketTextStream = function(ssc, a) return M.socket(ssc, a.host, a.port) end,
    textFileStream = function(ssc, a) return M.text_files(ssc, a.directory) end,
    binaryRecordsStream = function(ssc, a) return M.binary_records(ssc, a.directory, a.recordLength) end,
    kafkaDirectStream = function(ssc, a, fns) return require("streamhost.kafka").rebuild_direct(ssc, a, fns) end,
    kafkaStream = function(ssc, a, fns) return require("streamhost.kafka").rebuild_receiver(ssc, a, fns) end,
    flumeStream = function(ssc, a, fns) return require("streamhost.flume").rebuild(ssc, a, fns) end,
    flumePollingStream = function(ssc, a, fns) return require("streamhost.flume").rebuild(ssc, a, fns) end,
    kinesisStream = function(ssc, a, fns) return require("streamhost.kinesis").rebuild(ssc, a, fns) end,
}

-- The input stream that args (an input's recorded args) and fns (its shipped functions' new
-- ids) describe, in ssc.
function M.rebuild(ssc, args, fns)
    local f = REBUILD[args.kind]
    if f == nil then error("checkpoint: cannot recover an input stream of kind " .. tostring(args.kind), 0) end
    return f(ssc, args, fns)
end

function M.text_files(ssc, dir)
    if type(dir) ~= "string" then error("textFileStream expects a directory path", 3) end
    return directory_source(ssc, dir, files.read_lines, "textFileStream(" .. dir .. ")",
        { kind = "textFileStream", directory = dir })
end

function M.binary_records(ssc, dir, recordLength)
    if type(dir) ~= "string" then error("binaryRecordsStream expects a directory path", 3) end
    if type(recordLength) ~= "number" or recordLength < 1 or recordLength % 1 ~= 0 then
        error("binaryRecordsStream expects a positive whole recordLength, got " .. tostring(recordLength), 3)
    end
    local function read(path)
        local blob, leftover = files.read_fixed(path, recordLength)
        local note
        if leftover > 0 then
            note = string.format("%s: size is not a multiple of the record length %d; kept %d whole records, dropped the last %d bytes",
                path, recordLength, tonumber(blob.count), leftover)
        end
        return blob, note
    end
    return directory_source(ssc, dir, read, "binaryRecordsStream(" .. dir .. ")",
        { kind = "binaryRecordsStream", directory = dir, recordLength = recordLength })
end

return M
