-- streamhost: the job API, pyspark.streaming carried over to Lua (see shared/API.md).
-- Loadable in worker states too (shipped functions may capture it); the driver-only parts
-- load on first use.
local keys = require "streamhost.keys"

local sh = {
    _VERSION = "0.1.0",
    portable_hash = keys.portable_hash,
    StorageLevel = require "streamhost.storage",
    -- The placeholder of a nil record in arrays of records (collect, parallelize, ...).
    null = require "streamhost.null",
}

function sh.utf8_decoder(s)
    return s
end

-- An extension beyond pyspark: waits `seconds` while the host keeps running (receivers read,
-- batches run), where a pyspark job calls time.sleep. Driver only.
function sh.sleep(seconds)
    return require("streamhost.loop").sleep(seconds)
end

local lazy = {
    SparkContext = function() return require "streamhost.context" end,
    SparkConf = function() return require "streamhost.conf" end,
    StreamingContext = function() return require("streamhost.streaming").StreamingContext end,
    StreamingListener = function() return require("streamhost.listener").StreamingListener end,
    RDD = function() return require("streamhost.rdd").RDD end,
    DStream = function() return require("streamhost.dstream").DStream end,
    TextServer = function() return require "streamhost.text_server" end,
    ops = function() return require "streamhost.ops" end,  -- built-in operators (API.md)
    lazy = function() return require("streamhost.shared").lazy end,  -- an extension (README)
    KafkaUtils = function() return require("streamhost.kafka").KafkaUtils end,
    OffsetRange = function() return require("streamhost.kafka_types").OffsetRange end,
    TopicAndPartition = function() return require("streamhost.kafka_types").TopicAndPartition end,
    Broker = function() return require("streamhost.kafka_types").Broker end,
    KafkaMessageAndMetadata = function() return require("streamhost.kafka_types").KafkaMessageAndMetadata end,
    FlumeUtils = function() return require("streamhost.flume").FlumeUtils end,
    KinesisUtils = function() return require("streamhost.kinesis").KinesisUtils end,
    InitialPositionInStream = function() return require("streamhost.kinesis").InitialPositionInStream end,
}

return setmetatable(sh, {
    __index = function(t, k)
        local f = lazy[k]
        if f == nil then return nil end
        local v = f()
        rawset(t, k, v)
        return v
    end,
})
