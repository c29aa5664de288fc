-- spec/jobs/kafka_recoverable_wordcount.lua: the job of the Kafka recovery spec: a word count over
-- a direct stream of TOPIC (from the smallest offsets, at most RATE messages a second per
-- partition), each batch's counts saved to DIR/out/counts-<ms> (replaced whole, so a rerun
-- batch leaves one copy) and its offset ranges to DIR/ranges/<ms>; recovers with getOrCreate
-- from DIR/cp.
-- usage: streamhost kafka_recoverable_wordcount.lua DIR BOOTSTRAP TOPIC RATE
local sh = require "streamhost"

local dir, bootstrap, topic, rate = arg[1], arg[2], arg[3], arg[4] or "0"

local function setup()
    local conf = sh.SparkConf():set("spark.streaming.kafka.maxRatePerPartition", rate)
    local sc = sh.SparkContext(nil, "KafkaRecoverableWordCount", nil, nil, nil, nil, nil, conf)
    local ssc = sh.StreamingContext(sc, 0.5)
    local stream = sh.KafkaUtils.createDirectStream(ssc, { topic },
        { ["metadata.broker.list"] = bootstrap, ["auto.offset.reset"] = "smallest" })
    stream:foreachRDD(function(t, rdd)
        local out = {}
        for i, r in ipairs(rdd:offsetRanges()) do
            out[i] = string.format("%s %d %d %d", r.topic, r.partition, r.fromOffset, r.untilOffset)
        end
        local ms = math.floor(t * 1000 + 0.5)
        local f = assert(io.open(string.format("%s/ranges/%d.tmp", dir, ms), "w"))
        f:write(table.concat(out, "\n"), "\n")
        f:close()
        assert(os.rename(string.format("%s/ranges/%d.tmp", dir, ms), string.format("%s/ranges/%d", dir, ms)))
    end)
    stream:flatMap(function(kv)
        local out = {}
        for w in kv[2]:gmatch("%S+") do out[#out + 1] = w end
        return out
    end):map(function(w) return { w, 1 } end)
        :reduceByKey(function(a, b) return a + b end)
        :saveAsTextFiles(dir .. "/out/counts")
    return ssc
end

local ssc = sh.StreamingContext.getOrCreate(dir .. "/cp", setup)
ssc:start()
ssc:awaitTermination()
