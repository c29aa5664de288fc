-- spec/jobs/kinesis_recoverable_wordcount.lua: the job of the Kinesis recovery spec: a word count
-- over a Kinesis stream (TRIM_HORIZON, or LATEST when POSITION is "LATEST"; credentials from
-- the environment, the write-ahead log on when WAL is "true"), each batch's counts saved to DIR/out/counts-<ms> (replaced whole, so a
-- rerun batch leaves one copy); recovers with getOrCreate from DIR/cp.
-- usage: streamhost kinesis_recoverable_wordcount.lua DIR ENDPOINT STREAM WAL [POSITION]
local sh = require "streamhost"

local dir, endpoint, stream, wal, position = arg[1], arg[2], arg[3], arg[4] or "false", arg[5]

local function setup()
    local conf = sh.SparkConf():set("spark.streaming.receiver.writeAheadLog.enable", wal)
    local sc = sh.SparkContext(nil, "KinesisRecoverableWordCount", nil, nil, nil, nil, nil, conf)
    local ssc = sh.StreamingContext(sc, 0.5)
    ssc:checkpoint(dir .. "/cp")
    local lines = sh.KinesisUtils.createStream(ssc, "recoverable-wc", stream, endpoint, "us-east-1",
        position == "LATEST" and sh.InitialPositionInStream.LATEST or sh.InitialPositionInStream.TRIM_HORIZON, 1)
    lines:flatMap(function(line)
        local out = {}
        for w in line:gmatch("%S+") do out[#out + 1] = w end
        return out
    end):map(function(w) return { w, 1 } end)
        :reduceByKey(function(a, b) return a + b end)
        :saveAsTextFiles(dir .. "/out/counts")
    return ssc
end

local ssc = sh.StreamingContext.getOrCreate(dir .. "/cp", setup)
ssc:start()
ssc:awaitTermination()
