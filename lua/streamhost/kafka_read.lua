-- streamhost.kafka_read: the worker side of Kafka partitions: librdkafka clients (one per
-- worker state and configuration, kept), reading an offset range into a block in C, and
-- decoding a block's messages into records.
local ffi = require "ffi"
local shffi = require "streamhost.ffi"
local ship = require "streamhost.ship"
local types = require "streamhost.kafka_types"

local C = shffi.C
local ffi_string, ffi_cast = ffi.string, ffi.cast

local M = {}

local err_out = ffi.new("char *[1]")

-- A client for the configuration pairs conf ({ {key, value}, ... }): made with the pairs as
-- they are; raises with librdkafka's word on a setting it refuses. Owned by the returned cdata.
function M.client(conf)
    local n = #conf
    local keys, vals = ffi.new("const char *[?]", n + 1), ffi.new("const char *[?]", n + 1)
    local anchor = {}
    for i, kv in ipairs(conf) do
        keys[i - 1], vals[i - 1] = kv[1], kv[2]
        anchor[#anchor + 1] = kv
    end
    local k = C.sh_ffi_kafka_new(keys, vals, n, err_out)
    if k == nil then error(shffi.take_string(err_out[0]), 0) end
    return ffi.gc(k, C.sh_ffi_kafka_free)
end

-- The clients of this state by configuration (a worker reads many ranges with one client),
-- each with the time it was last used; one idle for IDLE_S is let go at the next task.
local IDLE_S = 30
local clients = {}
local function conf_key(conf)
    local parts = {}
    for i, kv in ipairs(conf) do parts[i] = kv[1] .. "=" .. kv[2] end
    return table.concat(parts, "\n")
end

local function cached_client(conf)
    local now = C.sh_ffi_now()
    for key, c in pairs(clients) do
        if now - c.used > IDLE_S then
            clients[key] = nil
            C.sh_ffi_kafka_free(ffi.gc(c.k, nil))
        end
    end
    local key = conf_key(conf)
    local c = clients[key]
    if c == nil then
        c = { k = M.client(conf) }
        clients[key] = c
    end
    c.used = now
    return c.k
end

-- Lets go of this state's clients (their connections close).
function M.release()
    for key, c in pairs(clients) do
        clients[key] = nil
        C.sh_ffi_kafka_free(ffi.gc(c.k, nil))
    end
end

-- Reads [from, till) of topic/partition into a new owned block; raises naming the range.
function M.read(k, topic, partition, from, till, timeout_ms)
    local b = C.sh_ffi_kafka_read(k, topic, partition, from, till, timeout_ms, err_out)
    if b == nil then error(shffi.take_string(err_out[0]), 0) end
    return shffi.own_blob(b)
end

-- Calls f(offset, key, value, partition, topic_index) for every message of a block (key and
-- value nil when null); the layout is connectors/kafka/sh_in_kafka.h's.
local HEADER = 32
local hdr_t = ffi.typeof("const int64_t *")
local len_t = ffi.typeof("const int32_t *")
function M.each_message(b, f)
    local base = ffi_cast("const char *", b.data)
    local pos, len = 0, tonumber(b.len)
    while pos < len do
        local h = ffi_cast(hdr_t, base + pos)
        local l = ffi_cast(len_t, base + pos + 16)
        local offset, klen, vlen = tonumber(h[0]), l[2], l[3]
        local partition, topic = l[0], l[1]
        pos = pos + HEADER
        local key, value
        if klen >= 0 then key = ffi_string(base + pos, klen); pos = pos + klen end
        if vlen >= 0 then value = ffi_string(base + pos, vlen); pos = pos + vlen end
        f(offset, key, value, partition, topic)
    end
end

-- Pushes a block's messages as records: {key, message} decoded by the node's decoders
-- (absent: the bytes as strings, sh.utf8_decoder's result), or messageHandler's result for a
-- KafkaMessageAndMetadata.
function M.emit_block(node, b, emit)
    local kd = node.keyDecoder and ship.load(node.keyDecoder)
    local vd = node.valueDecoder and ship.load(node.valueDecoder)
    local mh = node.messageHandler and ship.load(node.messageHandler)
    local topic, partition = node.topic, node.partition
    M.each_message(b, function(offset, key, value)
        if kd and key ~= nil then key = kd(key) end
        if vd and value ~= nil then value = vd(value) end
        if mh then
            emit((mh(types.KafkaMessageAndMetadata(topic, partition, offset, key, value))))
        else
            emit({ key, value })
        end
    end)
end

-- The plan operation of a Kafka partition: reads its offset range with this state's client.
function M.run(node, emit)
    local k = cached_client(node.conf)
    local b = M.read(k, node.topic, node.partition, node.fromOffset, node.untilOffset, node.timeout_ms)
    M.emit_block(node, b, emit)
end

return M
