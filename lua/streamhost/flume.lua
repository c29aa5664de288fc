-- streamhost.flume: FlumeUtils (driver side): createStream (an Avro source Flume agents push
-- to) and createPollingStream (a client of Spark's sink on Flume agents). Records are
-- {headers, body}: headers a table string -> string, body through bodyDecoder (by default the
-- bytes as they are, i.e. UTF-8 text as a string). The receivers are C on the loop
-- (connectors/flume); blocks are decoded by the tasks that read them (flume_read.lua).
local ffi = require "ffi"
local shffi = require "streamhost.ffi"
local rddmod = require "streamhost.rdd"
local receiver = require "streamhost.receiver"

local C = shffi.C
local M = {}
local FlumeUtils = {}
M.FlumeUtils = FlumeUtils

local BLOCK_BYTES = 1024 * 1024      -- a block (one partition of a batch) holds about this much
local MAX_QUEUED = 64 * 1024 * 1024  -- receiving pauses while this much waits to be processed
local err_out = ffi.new("char *[1]")

-- Ships bodyDecoder as a map over {headers, body}; nil for the default (nil or sh.utf8_decoder).
local function decoder_id(bodyDecoder, what, level)
    if bodyDecoder == nil or rawequal(bodyDecoder, require("streamhost").utf8_decoder) then return nil end
    if type(bodyDecoder) ~= "function" then
        error(what .. " expects bodyDecoder as a function or nil, got " .. type(bodyDecoder), level + 1)
    end
    local decode = bodyDecoder
    return rddmod.ship_fn(function(ev) return { ev[1], decode(ev[2]) } end, what .. " bodyDecoder", level + 1)
end

local function check_port(port, what, level)
    local p = tonumber(port)
    if not p or p < 0 or p > 65535 or p % 1 ~= 0 then
        error(what .. ": port must be from 0 to 65535, got " .. tostring(port), level + 1)
    end
    return p
end

-- The input stream of a receiver: spec.kind says which (flumeStream, flumePollingStream).
local function flume_stream(ssc, spec, decode_id)
    local sources = require "streamhost.sources"
    local sc = ssc.sparkContext
    local push = spec.kind == "flumeStream"
    local where
    if push then
        where = string.format("%s:%d", spec.hostname, spec.port)
    else
        local l = {}
        for i, a in ipairs(spec.addresses) do l[i] = a[1] .. ":" .. a[2] end
        where = table.concat(l, ",")
    end
    local source = {
        name = string.format("%s(%s)", push and "FlumeReceiver" or "FlumePollingReceiver", where),
        receiver = true, location = where, args = spec, fns = { decode_id },
        marks = {},  -- batch time -> the receiver's record total at its end (answered once logged)
        sealed = 0,
    }
    function source.start(self, sched)
        self.input = C.sh_ffi_sched_input_new(sched, shffi.BLOB_FLUME, BLOCK_BYTES, MAX_QUEUED)
        if self.input < 0 then error(self.name .. ": out of memory", 0) end
        -- With the write-ahead log, senders are answered once the batch holding their events is
        -- logged (wal_written); else once the events are appended to the input.
        self.deferred = self.wal ~= nil
        self.sealed, self.marks = 0, {}
        local r
        if push then
            r = C.sh_ffi_flume_push_open(sc._host, sched, self.input, spec.hostname, spec.port,
                                         spec.enableDecompression and 1 or 0, self.deferred and 1 or 0, err_out)
        else
            local n = #spec.addresses
            local hosts, ports = ffi.new("const char *[?]", n), ffi.new("int[?]", n)
            for i, a in ipairs(spec.addresses) do hosts[i - 1], ports[i - 1] = a[1], a[2] end
            r = C.sh_ffi_flume_poll_open(sc._host, sched, self.input, hosts, ports, n, spec.maxBatchSize,
                                         spec.parallelism, self.deferred and 1 or 0, err_out)
        end
        if r == nil then error(self.name .. ": " .. tostring(shffi.take_string(err_out[0])), 0) end
        self.recv = r
        if push and spec.port == 0 then  -- named by the port the system picked
            self.location = string.format("%s:%d", spec.hostname, C.sh_ffi_flume_push_port(r))
            self.name = string.format("FlumeReceiver(%s)", self.location)
        end
    end
    -- The port a push receiver listens on (the one the system picked for port 0); an extension.
    function source.port(self)
        return self.recv ~= nil and push and C.sh_ffi_flume_push_port(self.recv) or nil
    end
    function source.poll_events(self)
        receiver.drain_reports(self, push and C.sh_ffi_flume_push_event or C.sh_ffi_flume_poll_event, err_out)
    end
    function source.generate(self, t, rec)
        local blobs, n = receiver.batch_blocks(self, rec)
        if self.deferred and n > 0 then
            self.sealed = self.sealed + n
            self.marks[t] = self.sealed
        end
        local rdd = receiver.blocks_rdd(sc, blobs, decode_id)
        rdd._known = n
        return rdd, { description = string.format("%s: %d events", self.name, n) }
    end
    -- The batch's blocks are on disk (ok) or could not be written: its senders are answered
    -- (push: OK or FAILED; polling: ack or nack).
    function source.wal_written(self, t, ok)
        local m = self.marks[t]
        self.marks[t] = nil
        if m == nil or self.recv == nil then return end
        if not ok then self.report("write-ahead log failed: the senders are asked to send the events again") end
        if push then C.sh_ffi_flume_push_release(self.recv, m, ok and 1 or 0)
        else C.sh_ffi_flume_poll_release(self.recv, m, ok and 1 or 0) end
    end
    function source.regenerate(self, t) return receiver.from_log(self, sc, t, decode_id) end
    function source.stop(self)
        if self.recv ~= nil then
            self:poll_events()
            if push then C.sh_ffi_flume_push_close(self.recv) else C.sh_ffi_flume_poll_close(self.recv) end
            self.recv = nil
        end
        self.marks = {}
    end
    return sources.input(ssc, source)
end

-- storageLevel is accepted and ignored: blocks live in the host's memory (and the write-ahead
-- log when it is on), as every receiver's.
function FlumeUtils.createStream(ssc, hostname, port, storageLevel, enableDecompression, bodyDecoder) -- luacheck: ignore storageLevel
    local what = "FlumeUtils.createStream"
    if type(hostname) ~= "string" or hostname == "" then error(what .. " expects a hostname (the address to listen on)", 2) end
    port = check_port(port, what, 2)
    if enableDecompression ~= nil and type(enableDecompression) ~= "boolean" then
        error(what .. " expects enableDecompression as a boolean, got " .. type(enableDecompression), 2)
    end
    local id = decoder_id(bodyDecoder, what, 2)
    return flume_stream(ssc, { kind = "flumeStream", hostname = hostname, port = port,
                           enableDecompression = enableDecompression or false }, id)
end

-- addresses: a list of {host, port} or "host:port" strings.
local function addresses_of(addresses, what, level)
    if type(addresses) ~= "table" or #addresses == 0 then
        error(what .. " expects addresses as a list of {host, port} or \"host:port\"", level + 1)
    end
    local out = {}
    for i, a in ipairs(addresses) do
        local host, port
        if type(a) == "string" then
            host, port = a:match("^%[?(.-)%]?:(%d+)$")
        elseif type(a) == "table" then
            host, port = a[1] or a.host, a[2] or a.port
        end
        if type(host) ~= "string" or host == "" or tonumber(port) == nil then
            error(string.format("%s: address %d must be {host, port} or \"host:port\", got %s", what, i, tostring(a)), level + 1)
        end
        local p = check_port(port, what, level + 1)
        if p == 0 then error(what .. ": address " .. i .. " needs a port", level + 1) end
        out[i] = { host, p }
    end
    return out
end

function FlumeUtils.createPollingStream(ssc, addresses, storageLevel, maxBatchSize, parallelism, bodyDecoder) -- luacheck: ignore storageLevel
    local what = "FlumeUtils.createPollingStream"
    local addrs = addresses_of(addresses, what, 2)
    maxBatchSize = maxBatchSize == nil and 1000 or maxBatchSize
    parallelism = parallelism == nil and 5 or parallelism
    if type(maxBatchSize) ~= "number" or maxBatchSize < 1 or maxBatchSize % 1 ~= 0 or maxBatchSize > 1000000 then
        error(what .. " expects maxBatchSize as an integer from 1 to 1000000 (events a request), got " .. tostring(maxBatchSize), 2)
    end
    if type(parallelism) ~= "number" or parallelism < 1 or parallelism % 1 ~= 0 or parallelism > 64 then
        error(what .. " expects parallelism as an integer from 1 to 64, got " .. tostring(parallelism), 2)
    end
    local id = decoder_id(bodyDecoder, what, 2)
    return flume_stream(ssc, { kind = "flumePollingStream", addresses = addrs, maxBatchSize = maxBatchSize,
                           parallelism = parallelism }, id)
end

-- A stream as a recovered graph makes it again (args as recorded, fns its shipped ids).
function M.rebuild(ssc, args, fns)
    return flume_stream(ssc, args, fns[1])
end

return M
