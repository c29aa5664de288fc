-- spec/jobs/flume_recoverable.lua: the job of the Flume recovery spec: an Avro source on
-- 127.0.0.1:PORT with the write-ahead log on, every batch's event bodies saved to
-- DIR/out/events-<ms> (replaced whole, so a rerun batch leaves one copy); recovers with
-- getOrCreate from DIR/cp.
-- usage: streamhost flume_recoverable.lua DIR PORT
local sh = require "streamhost"

local dir, port = arg[1], tonumber(arg[2])

local function setup()
    local conf = sh.SparkConf():set("spark.streaming.receiver.writeAheadLog.enable", "true")
    local sc = sh.SparkContext(nil, "FlumeRecoverable", nil, nil, nil, nil, nil, conf)
    local ssc = sh.StreamingContext(sc, 0.1)
    sh.FlumeUtils.createStream(ssc, "127.0.0.1", port)
        :map(function(ev) return ev[2] end)
        :saveAsTextFiles(dir .. "/out/events")
    return ssc
end

local ssc = sh.StreamingContext.getOrCreate(dir .. "/cp", setup)
ssc:start()
ssc:awaitTermination()
