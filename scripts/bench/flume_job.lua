-- scripts/bench/flume_job.lua: the job of scripts/bench/flume: a word count over the Flume push
-- stream (an Avro source on HOST:PORT) or over the socket source (socketTextStream from
-- HOST:PORT), until N records are counted; prints one line
-- "records <n> seconds <s> words <w>" (from the first batch with records to the last).
-- usage: streamhost --master 'local[2]' flume_job.lua flume|socket HOST PORT N
local sh = require "streamhost"
local C = require("streamhost.ffi").C

local mode, host, port, n = arg[1], arg[2], tonumber(arg[3]), tonumber(arg[4])
local BATCH = 0.2
local ssc = sh.StreamingContext(sh.SparkContext(nil, "FlumeBench"), BATCH)
local lines
if mode == "flume" then
    lines = sh.FlumeUtils.createStream(ssc, host, port):map(function(ev) return ev[2] end)
else
    lines = ssc:socketTextStream(host, port)
end
local seen, words, first = 0, 0, nil
lines:foreachRDD(function(rdd)
    local counts = rdd:flatMap(function(line)
        local out = {}
        for w in line:gmatch("%S+") do out[#out + 1] = w end
        return out
    end):map(function(w) return { w, 1 } end):reduceByKey(function(a, b) return a + b end):collect()
    local k = rdd:count()
    if k == 0 then return end
    first = first or C.sh_ffi_now() - BATCH  -- the first batch's interval counts
    for _, c in ipairs(counts) do words = words + c[2] end
    seen = seen + k
    if seen >= n then
        print(string.format("records %d seconds %.3f words %d", seen, C.sh_ffi_now() - first, words))
        io.stdout:flush()
        os.exit(0)
    end
end)
ssc:start()
ssc:awaitTermination()
