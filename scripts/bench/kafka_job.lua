-- scripts/bench/kafka_job.lua: the job of scripts/bench/kafka: a direct stream of TOPIC from its
-- first offsets counting messages and bytes (one pass per partition) until N messages are
-- counted; prints one line "messages <n> bytes <b> seconds <s>", timed from the start of the
-- first batch with messages to the end of the last.
-- usage: streamhost --master 'local[2]' kafka_job.lua BOOTSTRAP TOPIC N
local sh = require "streamhost"
local C = require("streamhost.ffi").C

local bootstrap, topic, n = arg[1], arg[2], tonumber(arg[3])
local ssc = sh.StreamingContext(sh.SparkContext(nil, "KafkaBench"), 1)
local stream = sh.KafkaUtils.createDirectStream(ssc, { topic },
    { ["metadata.broker.list"] = bootstrap, ["auto.offset.reset"] = "smallest" })
local seen, bytes, first = 0, 0, nil
stream:foreachRDD(function(rdd)
    local k = 0
    for _, r in ipairs(rdd:offsetRanges()) do k = k + r.untilOffset - r.fromOffset end
    if k == 0 then return end
    first = first or C.sh_ffi_now()
    local totals = rdd:mapPartitions(function(it)
        local m, b = 0, 0
        for kv in it do m, b = m + 1, b + #kv[2] end
        return { { m, b } }
    end):collect()
    for _, t in ipairs(totals) do seen, bytes = seen + t[1], bytes + t[2] end
    if seen >= n then
        print(string.format("messages %d bytes %d seconds %.3f", seen, bytes, C.sh_ffi_now() - first))
        io.stdout:flush()
        os.exit(0)
    end
end)
ssc:start()
ssc:awaitTermination()
