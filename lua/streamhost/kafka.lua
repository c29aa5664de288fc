-- streamhost.kafka: KafkaUtils (driver side): kafkaParams, the direct stream (offset ranges per
-- batch, rate limit and backpressure, recorded for recovery) and createRDD.
local ffi = require "ffi"
local shffi = require "streamhost.ffi"
local rddmod = require "streamhost.rdd"
local types = require "streamhost.kafka_types"
local read = require "streamhost.kafka_read"
local receiver = require "streamhost.receiver"

local C = shffi.C
local M = {}
local KafkaUtils = {}
M.KafkaUtils = KafkaUtils

local METADATA_TIMEOUT_MS = 10000  -- topics' partitions and first offsets, where a stream is defined
local READ_TIMEOUT_MS = 120000     -- a task reading a range waits this long without progress

local err_out = ffi.new("char *[1]")
local ids_out = ffi.new("int32_t[4096]")
local lo_out, hi_out = ffi.new("int64_t[1]"), ffi.new("int64_t[1]")

-- -- kafkaParams -------------------------------------------------------------------------

-- Names of the Kafka 0.8 era that have no librdkafka meaning: accepted and left out.
local IGNORED = { ["zookeeper.connect"] = true, ["zookeeper.connection.timeout.ms"] = true,
                  ["zookeeper.session.timeout.ms"] = true, ["consumer.timeout.ms"] = true }

-- The client configuration pairs (sorted) of kafkaParams and its auto.offset.reset
-- (normalized to smallest | largest, or nil when not given). Raises at `level`.
local function conf_of(kafkaParams, what, level)
    if type(kafkaParams) ~= "table" then
        error(what .. " expects kafkaParams as a table of settings, got " .. type(kafkaParams), level + 1)
    end
    local conf, reset, brokers = {}, nil, false
    for k, v in pairs(kafkaParams) do
        if type(k) ~= "string" or (type(v) ~= "string" and type(v) ~= "number" and type(v) ~= "boolean") then
            error(what .. ": kafkaParams must map setting names to strings, got " .. tostring(k) .. " = " .. type(v), level + 1)
        end
        v = tostring(v)
        if k == "auto.offset.reset" then
            if v == "smallest" or v == "earliest" or v == "beginning" then reset = "smallest"
            elseif v == "largest" or v == "latest" or v == "end" then reset = "largest"
            else error(what .. ": auto.offset.reset must be smallest or largest, got " .. v, level + 1) end
        elseif not IGNORED[k] and not k:match("^spark%.") then
            if k == "metadata.broker.list" or k == "bootstrap.servers" then brokers = true end
            conf[#conf + 1] = { k, v }
        end
    end
    if not brokers then
        error(what .. ": kafkaParams must name the brokers (metadata.broker.list or bootstrap.servers)", level + 1)
    end
    table.sort(conf, function(a, b) return a[1] < b[1] end)
    return conf, reset
end

local function client_of(conf, what, level)
    local ok, k = pcall(read.client, conf)
    if not ok then error(what .. ": " .. tostring(k), level + 1) end
    return k
end

-- Lets go of client k at once (its connections close) rather than when it is collected.
local function free_client(k)
    C.sh_ffi_kafka_free(ffi.gc(k, nil))
end

-- The partition ids of a topic (sorted); raises naming the topic.
local function partitions_of(k, topic, what, level)
    local n = C.sh_ffi_kafka_partitions(k, topic, METADATA_TIMEOUT_MS, ids_out, 4096, err_out)
    if n < 0 then
        free_client(k)
        error(what .. ": " .. tostring(shffi.take_string(err_out[0])), level + 1)
    end
    local ids = {}
    for i = 0, math.min(n, 4096) - 1 do ids[i + 1] = ids_out[i] end
    return ids
end

-- The low and high watermarks of a partition, or nil and a message.
local function watermarks(k, topic, partition, timeout_ms)
    if C.sh_ffi_kafka_watermarks(k, topic, partition, timeout_ms, lo_out, hi_out, err_out) ~= 0 then
        return nil, shffi.take_string(err_out[0])
    end
    return tonumber(lo_out[0]), tonumber(hi_out[0])
end

-- Ships a decoder or handler; nil (and sh.utf8_decoder, the identity on strings) ship nothing.
local function ship_opt(f, what, level)
    if f == nil or rawequal(f, require("streamhost").utf8_decoder) then return nil end
    return rddmod.ship_fn(f, what, level + 1)
end

local function tp_key(topic, partition) return topic .. "\0" .. partition end

-- -- createRDD ---------------------------------------------------------------------------

-- leaders (TopicAndPartition -> Broker) is checked and then left to librdkafka, which finds
-- every partition's leader itself and follows it when it moves (Spark used it to skip a
-- metadata request).
function KafkaUtils.createRDD(sc, kafkaParams, offsetRanges, leaders, keyDecoder, valueDecoder, messageHandler)
    local what = "KafkaUtils.createRDD"
    local conf = conf_of(kafkaParams, what, 2)
    if type(offsetRanges) ~= "table" then error(what .. " expects an array of OffsetRange", 2) end
    if leaders ~= nil and type(leaders) ~= "table" then
        error(what .. " expects leaders as a table of TopicAndPartition -> Broker, or nil", 2)
    end
    local k = client_of(conf, what, 2)
    local ranges = {}
    for i, r in ipairs(offsetRanges) do
        if getmetatable(r) ~= types.OffsetRange then
            error(what .. ": offsetRanges[" .. i .. "] is not an OffsetRange", 2)
        end
        if r.untilOffset < r.fromOffset then
            error(string.format("%s: %s ends before it starts", what, tostring(r)), 2)
        end
        local lo, hi = watermarks(k, r.topic, r.partition, METADATA_TIMEOUT_MS)
        if lo == nil then free_client(k); error(what .. ": " .. tostring(hi), 2) end
        if r.untilOffset > r.fromOffset and (r.fromOffset < lo or r.untilOffset > hi) then
            free_client(k)
            error(string.format("%s: topic %s partition %d holds offsets %d to %d; %s is out of range",
                what, r.topic, r.partition, lo, hi, tostring(r)), 2)
        end
        ranges[i] = { topic = r.topic, partition = r.partition, fromOffset = r.fromOffset, untilOffset = r.untilOffset }
    end
    free_client(k)
    return rddmod.from_kafka(sc, ranges, {
        conf = conf, timeout_ms = READ_TIMEOUT_MS,
        keyDecoder = ship_opt(keyDecoder, what .. " keyDecoder", 2),
        valueDecoder = ship_opt(valueDecoder, what .. " valueDecoder", 2),
        messageHandler = ship_opt(messageHandler, what .. " messageHandler", 2) })
end

-- -- createDirectStream ------------------------------------------------------------------

-- ids: the shipped keyDecoder, valueDecoder and messageHandler ids (each may be absent) by
-- name; from: { {topic, partition, offset}, ... } or nil (every partition of the topics,
-- starting per auto.offset.reset, largest by default). Raises at `level`.
local function direct(ssc, topics, kafkaParams, from, ids, level)
    local sources = require "streamhost.sources"
    local checkpoint = require "streamhost.checkpoint"
    local what = "KafkaUtils.createDirectStream"
    local conf, reset = conf_of(kafkaParams, what, level + 1)
    local sc = ssc.sparkContext
    local k = client_of(conf, what, level + 1)
    local tps, pos = {}, {}
    if from and #from > 0 then
        for i, f in ipairs(from) do tps[i], pos[i] = { topic = f[1], partition = f[2] }, f[3] end
    else
        for _, topic in ipairs(topics) do
            for _, p in ipairs(partitions_of(k, topic, what, level + 1)) do
                tps[#tps + 1] = { topic = topic, partition = p }
            end
        end
        for i, tp in ipairs(tps) do
            local lo, hi = watermarks(k, tp.topic, tp.partition, METADATA_TIMEOUT_MS)
            if lo == nil then free_client(k); error(what .. ": " .. tostring(hi), level + 1) end
            pos[i] = reset == "smallest" and lo or hi
        end
    end
    local getconf = sc:getConf()
    local batch_s = ssc._batch_ms / 1000
    local max_rate = tonumber(getconf:get("spark.streaming.kafka.maxRatePerPartition", "0")) or 0
    local backpressure = getconf:get("spark.streaming.backpressure.enabled", "false") == "true"
    local initial_rate = tonumber(getconf:get("spark.streaming.backpressure.initialRate", "0")) or 0
    local plain = {}  -- what the checkpoint keeps: no credentials
    for key, v in pairs(kafkaParams) do
        if not checkpoint.is_credential(key) then plain[key] = v end
    end
    local from_args = {}
    for i, tp in ipairs(tps) do from_args[i] = { tp.topic, tp.partition, pos[i] } end
    local fns, slots = {}, {}
    for _, name in ipairs({ "keyDecoder", "valueDecoder", "messageHandler" }) do
        if ids[name] then fns[#fns + 1] = ids[name]; slots[#slots + 1] = name end
    end
    local kafka = { conf = conf, timeout_ms = READ_TIMEOUT_MS, keyDecoder = ids.keyDecoder,
                    valueDecoder = ids.valueDecoder, messageHandler = ids.messageHandler }
    local source = {
        name = "DirectKafkaInputDStream(" .. table.concat(topics, ",") .. ")",
        args = { kind = "kafkaDirectStream", topics = topics, kafkaParams = plain, fromOffsets = from_args,
                 fn_slots = slots },
        fns = fns,
        tps = tps, pos = pos,   -- pos[i]: where tps[i]'s next batch starts
        ranges = {},            -- batch time -> its ranges (recovery reruns them)
        rate = backpressure and initial_rate > 0 and initial_rate or nil, -- messages/s, all partitions
    }
    -- The most messages a partition gives one batch (nil: no limit).
    local function limit(self)
        local per = max_rate > 0 and max_rate or nil
        if self.rate then
            local share = self.rate / #self.tps
            per = per and math.min(per, share) or share
        end
        return per and math.max(1, math.floor(per * batch_s)) or nil
    end
    -- The latest offsets come from a thread of their own (the loop never waits on a broker).
    function source.start(self)
        local n = #self.tps
        local names, parts = ffi.new("const char *[?]", n + 1), ffi.new("int32_t[?]", n + 1)
        for i, tp in ipairs(self.tps) do names[i - 1], parts[i - 1] = tp.topic, tp.partition end
        if k == nil then k = client_of(conf, self.name, 1) end  -- stopped, started again
        local o = C.sh_ffi_kafka_offsets_new(ffi.gc(k, nil), names, parts, n, err_out)
        k = nil
        if o == nil then error(self.name .. ": " .. tostring(shffi.take_string(err_out[0])), 0) end
        self.offsets = o
        self.lo, self.hi = ffi.new("int64_t[?]", n + 1), ffi.new("int64_t[?]", n + 1)
    end
    function source.generate(self, t)
        local ranges, failure, total = {}, nil, 0
        local most = limit(self)
        local state = self.offsets and C.sh_ffi_kafka_offsets_get(self.offsets, self.lo, self.hi, err_out) or 1
        if state < 0 then failure = shffi.take_string(err_out[0]) end
        for i, tp in ipairs(self.tps) do
            local f = self.pos[i]
            local u = f
            if state == 0 then
                local lo, hi = tonumber(self.lo[i - 1]), tonumber(self.hi[i - 1])
                if f < lo or f > hi then
                    local msg = string.format("topic %s partition %d: offset %d is out of range (%d to %d)",
                        tp.topic, tp.partition, f, lo, hi)
                    if reset then
                        f = reset == "smallest" and lo or hi
                        self.report(msg .. "; auto.offset.reset=" .. reset .. ": going on from " .. f)
                        u = hi
                    else
                        self.report(msg .. " (set auto.offset.reset to smallest or largest to go on)")
                    end
                else
                    u = hi
                end
                if most and u > f + most then u = f + most end
            end
            ranges[i] = { topic = tp.topic, partition = tp.partition, fromOffset = f, untilOffset = u }
            self.pos[i] = u
            total = total + (u - f)
        end
        if failure then
            -- Said when the wait begins, then every 5 s while it lasts.
            local now = C.sh_ffi_now()
            if not self.waiting or now - self.waiting >= 5 then
                self.waiting = now
                self.report("waiting for the brokers: " .. failure)
            end
        elseif self.waiting then
            self.waiting = nil
            io.stderr:write("streamhost: ", self.name, ": the brokers answer again\n")
        end
        self.ranges[t] = ranges
        -- Forget the ranges recovery can no longer ask for.
        local horizon = t - math.max(60000, ssc._remember_ms or 0)
        if ssc._ckpt then horizon = math.min(horizon, ssc._ckpt:keep_from()) end
        for time in pairs(self.ranges) do
            if time < horizon then self.ranges[time] = nil end
        end
        return rddmod.from_kafka(sc, ranges, kafka),
            { offsets = ranges, description = string.format("%s: %d messages from %d partitions", self.name, total, #ranges) }
    end
    function source.regenerate(self, t)
        local ranges = self.ranges[t]
        if ranges == nil then return nil end
        return rddmod.from_kafka(sc, ranges, kafka),
            { offsets = ranges, description = string.format("%s: batch %d's recorded ranges", self.name, t) }
    end
    -- Backpressure: the next batches' rate follows what the last batch processed per second.
    function source.batch_completed(self, info, ok)
        if not ok or not backpressure or not info.processingStartTime or not info.processingEndTime then return end
        local n = info.streamIdToInputInfo[self.stream_id]
        n = n and n.numRecords or 0
        local secs = info.processingEndTime - info.processingStartTime
        if n > 0 and secs > 0 then self.rate = math.max(#self.tps, n / secs) end
    end
    function source.stop(self)
        if k ~= nil then C.sh_ffi_kafka_free(ffi.gc(k, nil)) end
        k = nil
        if self.offsets ~= nil then C.sh_ffi_kafka_offsets_free(self.offsets) end
        self.offsets = nil
    end
    function source.checkpoint_data(self)
        local ranges = {}
        for time, r in pairs(self.ranges) do ranges[time] = r end
        local at = {}
        for i, tp in ipairs(self.tps) do at[tp_key(tp.topic, tp.partition)] = self.pos[i] end
        return { pos = at, ranges = ranges }
    end
    function source.restore(self, data)
        for i, tp in ipairs(self.tps) do
            local p = data.pos[tp_key(tp.topic, tp.partition)]
            if p then self.pos[i] = p end
        end
        for time, r in pairs(data.ranges) do self.ranges[time] = r end
    end
    return sources.input(ssc, source)
end

function KafkaUtils.createDirectStream(ssc, topics, kafkaParams, fromOffsets, keyDecoder, valueDecoder, messageHandler)
    local what = "KafkaUtils.createDirectStream"
    if type(topics) ~= "table" or #topics == 0 then
        error(what .. " expects an array of topic names", 2)
    end
    for i, t in ipairs(topics) do
        if type(t) ~= "string" or t == "" then error(what .. ": topics[" .. i .. "] is not a topic name", 2) end
    end
    local from = nil
    if fromOffsets ~= nil then
        if type(fromOffsets) ~= "table" then error(what .. " expects fromOffsets as a table of TopicAndPartition -> offset", 2) end
        from = {}
        for tp, off in pairs(fromOffsets) do
            if getmetatable(tp) ~= types.TopicAndPartition then
                error(what .. ": fromOffsets keys must be TopicAndPartition values, got " .. tostring(tp), 2)
            end
            if type(off) ~= "number" or off < 0 or off % 1 ~= 0 then
                error(what .. ": fromOffsets[" .. tostring(tp) .. "] must be an offset, got " .. tostring(off), 2)
            end
            from[#from + 1] = { tp.topic, tp.partition, off }
        end
        table.sort(from, function(a, b) return a[1] < b[1] or a[1] == b[1] and a[2] < b[2] end)
    end
    local ids = {
        keyDecoder = ship_opt(keyDecoder, what .. " keyDecoder", 2),
        valueDecoder = ship_opt(valueDecoder, what .. " valueDecoder", 2),
        messageHandler = ship_opt(messageHandler, what .. " messageHandler", 2),
    }
    return direct(ssc, topics, kafkaParams, from, ids, 2)
end

-- -- createStream: a receiver in a consumer group -------------------------------------------

local BLOCK_BYTES = 4 * 1024 * 1024  -- a block (one partition of a batch) holds this much
local MAX_QUEUED = 64 * 1024 * 1024  -- receiving pauses while this much waits to be processed
local MAX_POSITIONS = 4096
local pos_topics, pos_parts = ffi.new("int32_t[?]", MAX_POSITIONS), ffi.new("int32_t[?]", MAX_POSITIONS)
local pos_next = ffi.new("int64_t[?]", MAX_POSITIONS)

-- The brokers registered in ZooKeeper at zkQuorum (/brokers/ids/*, as Kafka registers them),
-- as host:port,...; raises naming the quorum.
local out_str = ffi.new("char *[1]")
local function brokers_from_zookeeper(zkQuorum, what, level)
    if C.sh_ffi_zk_brokers(zkQuorum, METADATA_TIMEOUT_MS, out_str, err_out) ~= 0 then
        error(what .. ": " .. tostring(shffi.take_string(err_out[0])) ..
            " (or give the brokers in kafkaParams as metadata.broker.list)", level + 1)
    end
    return shffi.take_string(out_str[0])
end

-- ids: the shipped decode function's id (absent when both decoders are the default).
local function group_stream(ssc, zkQuorum, groupId, topics, kafkaParams, decode_id, level)
    local sources = require "streamhost.sources"
    local what = "KafkaUtils.createStream"
    local params = {}
    for k, v in pairs(kafkaParams or {}) do params[k] = v end
    params["group.id"] = groupId
    if not params["metadata.broker.list"] and not params["bootstrap.servers"] then
        params["metadata.broker.list"] = brokers_from_zookeeper(zkQuorum, what, level + 1)
    end
    local conf, reset = conf_of(params, what, level + 1)
    if reset then conf[#conf + 1] = { "auto.offset.reset", reset } end
    local names = {}
    for topic in pairs(topics) do names[#names + 1] = topic end
    table.sort(names)
    local sc = ssc.sparkContext
    local plain = {}
    for key, v in pairs(kafkaParams or {}) do
        if not require("streamhost.checkpoint").is_credential(key) then plain[key] = v end
    end
    local source = {
        name = string.format("KafkaReceiver(%s, group %s)", table.concat(names, ","), groupId),
        receiver = true, location = zkQuorum,
        args = { kind = "kafkaStream", zkQuorum = zkQuorum, groupId = groupId, topics = topics,
                 kafkaParams = plain },
        fns = { decode_id },
        commits = {},   -- batch time -> positions its blocks end at, committed when it completes
        frozen = {},    -- "topic index/partition" -> true where a batch failed (no commit past it)
    }
    function source.start(self, sched)
        self.input = C.sh_ffi_sched_input_new(sched, shffi.BLOB_KAFKA, BLOCK_BYTES, MAX_QUEUED)
        if self.input < 0 then error(self.name .. ": out of memory", 0) end
        local n = #conf
        local keys, vals = ffi.new("const char *[?]", n + 1), ffi.new("const char *[?]", n + 1)
        for i, kv in ipairs(conf) do keys[i - 1], vals[i - 1] = kv[1], kv[2] end
        local tnames = ffi.new("const char *[?]", #names + 1)
        for i, t in ipairs(names) do tnames[i - 1] = t end
        local r = C.sh_ffi_kafka_recv_open(sc._host, sched, self.input, keys, vals, n, tnames, #names, err_out)
        if r == nil then error(self.name .. ": " .. tostring(shffi.take_string(err_out[0])), 0) end
        self.recv = r
    end
    function source.poll_events(self) receiver.drain_reports(self, C.sh_ffi_kafka_recv_event, err_out) end
    function source.generate(self, t, rec)
        local blobs, n = receiver.batch_blocks(self, rec)
        local np = 0
        for _, b in ipairs(blobs) do np = C.sh_ffi_kafka_block_positions(b, pos_topics, pos_parts, pos_next, np, MAX_POSITIONS) end
        if np > 0 then
            local c = {}
            for i = 0, np - 1 do c[i + 1] = { pos_topics[i], pos_parts[i], tonumber(pos_next[i]) } end
            self.commits[t] = c
        end
        local rdd = receiver.blocks_rdd(sc, blobs, decode_id)
        rdd._known = n
        return rdd, { description = string.format("%s: %d messages", self.name, n) }
    end
    function source.regenerate(self, t) return receiver.from_log(self, sc, t, decode_id) end
    local function close(self)
        if self.recv ~= nil then
            self:poll_events()
            C.sh_ffi_kafka_recv_close(self.recv)
            self.recv = nil
        end
    end
    -- Commits where batch t's blocks end, except in partitions where a batch failed: the
    -- group's offset stays before that batch's messages, so the next consumer reads them again.
    local function commit(self, t)
        local c = self.commits[t]
        if c == nil then return end
        self.commits[t] = nil
        if self.recv == nil then return end
        local n = 0
        for _, p in ipairs(c) do
            if not self.frozen[p[1] .. "/" .. p[2]] then
                pos_topics[n], pos_parts[n], pos_next[n] = p[1], p[2], p[3]
                n = n + 1
            end
        end
        if n > 0 and C.sh_ffi_kafka_recv_commit(self.recv, pos_topics, pos_parts, pos_next, n, err_out) ~= 0 then
            self.report("cannot commit offsets: " .. tostring(shffi.take_string(err_out[0])))
        end
    end
    -- With the write-ahead log on, a batch's blocks on disk (and the metadata naming the batch)
    -- commit the offsets they end at: recovery reruns the batch from the log, and the group
    -- goes on after it (Spark's reliable receiver commits once a block is stored).
    function source.wal_written(self, t, ok) if ok then commit(self, t) end end
    -- Otherwise a batch that completed commits them (one that failed does not: its messages
    -- are read again by the group's next consumer).
    function source.batch_completed(self, _, ok, t)
        if ok then return commit(self, t) end
        local c = self.commits[t]
        self.commits[t] = nil
        local where = {}
        for _, p in ipairs(c or {}) do
            local key = p[1] .. "/" .. p[2]
            if not self.frozen[key] then
                self.frozen[key] = true
                where[#where + 1] = tostring(names[p[1] + 1]) .. " partition " .. p[2]
            end
        end
        if #where > 0 then
            self.report(string.format("batch %d failed: offsets of %s are not committed from it on in this run, "
                .. "so the group's next consumer reads its messages again", t, table.concat(where, ", ")))
        end
    end
    -- Receiving stops and the group is left now: what batches not completed yet hold is not
    -- committed, so the group's next consumer reads it again (at least once, as Spark's
    -- receiver). A member kept for them would hold its partitions from the next one.
    function source.stop(self)
        close(self)
        self.commits = {}
    end
    return sources.input(ssc, source)
end

-- topics maps topic names to numThreads; one librdkafka consumer reads them all (its own
-- threads fetch every partition at once), so the counts are checked and not used further.
function KafkaUtils.createStream(ssc, zkQuorum, groupId, topics, kafkaParams, storageLevel, keyDecoder, valueDecoder) -- luacheck: ignore storageLevel
    local what = "KafkaUtils.createStream"
    if type(zkQuorum) ~= "string" then error(what .. " expects zkQuorum as a string (host:port,...)", 2) end
    if type(groupId) ~= "string" or groupId == "" then error(what .. " expects a consumer group id", 2) end
    if type(topics) ~= "table" or next(topics) == nil then
        error(what .. " expects topics as a table {topic = numThreads}", 2)
    end
    for t, n in pairs(topics) do
        if type(t) ~= "string" or t == "" or type(n) ~= "number" or n < 1 then
            error(what .. ": topics must map topic names to thread counts, got " .. tostring(t) .. " = " .. tostring(n), 2)
        end
    end
    if kafkaParams ~= nil and type(kafkaParams) ~= "table" then error(what .. " expects kafkaParams as a table or nil", 2) end
    local kd = ship_opt(keyDecoder, what .. " keyDecoder", 2) and keyDecoder
    local vd = ship_opt(valueDecoder, what .. " valueDecoder", 2) and valueDecoder
    local decode_id
    if kd or vd then
        decode_id = rddmod.ship_fn(function(kv)
            local k, v = kv[1], kv[2]
            if kd and k ~= nil then k = kd(k) end
            if vd and v ~= nil then v = vd(v) end
            return { k, v }
        end, what .. " decoders", 2)
    end
    return group_stream(ssc, zkQuorum, groupId, topics, kafkaParams, decode_id, 2)
end

function M.rebuild_receiver(ssc, args, fns)
    return group_stream(ssc, args.zkQuorum, args.groupId, args.topics, args.kafkaParams, fns[1], 1)
end

-- A direct stream as a recovered graph makes it again (args as recorded, fns its shipped ids).
function M.rebuild_direct(ssc, args, fns)
    local ids = {}
    for i, name in ipairs(args.fn_slots or {}) do ids[name] = fns[i] end
    return direct(ssc, args.topics, args.kafkaParams, args.fromOffsets, ids, 1)
end

return M
