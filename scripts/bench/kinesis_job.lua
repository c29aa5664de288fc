-- scripts/bench/kinesis_job.lua: the job of scripts/bench/kinesis: a word count (Lua functions,
-- as Spark's example writes it) over a Kinesis stream read from TRIM_HORIZON, or over a socket
-- text stream, until N records (lines of WORDS words each) are counted; prints one line
-- "records <n> seconds <s> words <w>" (from the first batch with records to the last).
-- usage: streamhost --master 'local[2]' kinesis_job.lua kinesis ENDPOINT STREAM N WORDS
--        streamhost --master 'local[2]' kinesis_job.lua socket PORT - N WORDS
local sh = require "streamhost"
local C = require("streamhost.ffi").C

local mode, where, stream, n, per = arg[1], arg[2], arg[3], tonumber(arg[4]), tonumber(arg[5])
local BATCH = 0.05  -- short: the socket run takes few batches, and times are counted in batches
local ssc = sh.StreamingContext(sh.SparkContext(nil, "KinesisBench"), BATCH)
local lines
if mode == "kinesis" then
    lines = sh.KinesisUtils.createStream(ssc, "bench", stream, where, "us-east-1",
        sh.InitialPositionInStream.TRIM_HORIZON, 10, nil, "bench", "bench")
else
    lines = ssc:socketTextStream("127.0.0.1", tonumber(where))
end
local words, first = 0, nil
lines:flatMap(function(line)
    local out = {}
    for w in line:gmatch("%S+") do out[#out + 1] = w end
    return out
end):map(function(w) return { w, 1 } end):reduceByKey(function(a, b) return a + b end)
    :foreachRDD(function(t, rdd)
        local counts = rdd:collect()
        if #counts == 0 then return end
        first = first or t - BATCH  -- from the start of the first interval that received records
        for _, c in ipairs(counts) do words = words + c[2] end
        if words >= n * per then
            print(string.format("records %d seconds %.3f words %d", words / per, C.sh_ffi_now() - first, words))
            io.stdout:flush()
            os.exit(0)
        end
    end)
ssc:start()
ssc:awaitTermination()
