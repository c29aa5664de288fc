-- scripts/bench/kafka_job.lua: the job of scripts/bench/kafka: a word count over a direct stream
-- of TOPIC from its first offsets, until N messages are counted; prints one line
-- "messages <n> seconds <s> words <w>" (from the first batch with messages to the last).
-- usage: streamhost --master 'local[2]' kafka_job.lua BOOTSTRAP TOPIC N
local sh = require "streamhost"
local C = require("streamhost.ffi").C

local bootstrap, topic, n = arg[1], arg[2], tonumber(arg[3])
local ssc = sh.StreamingContext(sh.SparkContext(nil, "KafkaBench"), 1)
local stream = sh.KafkaUtils.createDirectStream(ssc, { topic },
    { ["metadata.broker.list"] = bootstrap, ["auto.offset.reset"] = "smallest" })
local seen, words, first = 0, 0, nil
stream:foreachRDD(function(rdd)
    local k = 0
    for _, r in ipairs(rdd:offsetRanges()) do k = k + r.untilOffset - r.fromOffset end
    if k == 0 then return end
    first = first or C.sh_ffi_now()
    local counts = rdd:flatMap(function(kv)
        local out = {}
        for w in kv[2]:gmatch("%S+") do out[#out + 1] = w end
        return out
    end):map(function(w) return { w, 1 } end):reduceByKey(function(a, b) return a + b end):collect()
    for _, c in ipairs(counts) do words = words + c[2] end
    seen = seen + k
    if seen >= n then
        print(string.format("messages %d seconds %.3f words %d", seen, C.sh_ffi_now() - first, words))
        io.stdout:flush()
        os.exit(0)
    end
end)
ssc:start()
ssc:awaitTermination()
