-- spec/jobs/kafka_receiver_wal.lua: the job of the Kafka receiver's write-ahead log spec: a
-- receiver stream (KafkaUtils.createStream, group GROUP) of TOPIC counting its messages with
-- updateStateByKey; the totals go to DIR/state after every batch (written whole). DIR/running
-- names the batch whose output runs and its number of messages, before it sleeps $SLOW seconds
-- (read when the batch runs, so a recovered run is not slowed). Recovers from DIR/cp.
-- usage: WAL=true|false SLOW=s streamhost kafka_receiver_wal.lua DIR BOOTSTRAP TOPIC GROUP
local sh = require "streamhost"

local dir, bootstrap, topic, group = arg[1], arg[2], arg[3], arg[4]

local function write_whole(path, text)
    local f = assert(io.open(path .. ".tmp", "w"))
    f:write(text)
    f:close()
    assert(os.rename(path .. ".tmp", path))
end

local function setup()
    local conf = sh.SparkConf():set("spark.streaming.receiver.writeAheadLog.enable", os.getenv("WAL") or "false")
    local sc = sh.SparkContext(nil, "KafkaReceiverWAL", nil, nil, nil, nil, nil, conf)
    local ssc = sh.StreamingContext(sc, 0.3)
    ssc:checkpoint(dir .. "/cp")
    -- The mock cluster forgets a member that vanished only after its session timeout: short.
    local messages = sh.KafkaUtils.createStream(ssc, "unused:2181", group, { [topic] = 1 },
        { ["metadata.broker.list"] = bootstrap, ["auto.offset.reset"] = "smallest",
          ["session.timeout.ms"] = "6000", ["heartbeat.interval.ms"] = "500" })
    local totals = messages:map(function(kv) return { kv[2], 1 } end):updateStateByKey(function(values, total)
        total = total or 0
        for _, v in ipairs(values) do total = total + v end
        return total
    end)
    totals:foreachRDD(function(t, rdd)
        local all = rdd:collect()
        local n = 0
        for _, kv in ipairs(all) do n = n + kv[2] end
        write_whole(dir .. "/running", string.format("%d %d\n", math.floor(t * 1000 + 0.5), n))
        local slow = tonumber(os.getenv("SLOW") or "0") or 0
        if n > 0 and slow > 0 then sh.sleep(slow) end
        table.sort(all, function(a, b) return a[1] < b[1] end)
        local out = {}
        for i, kv in ipairs(all) do out[i] = kv[1] .. " " .. kv[2] end
        write_whole(dir .. "/state", table.concat(out, "\n") .. "\n")
    end)
    return ssc
end

local ssc = sh.StreamingContext.getOrCreate(dir .. "/cp", setup)
ssc:start()
ssc:awaitTermination()
