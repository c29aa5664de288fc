-- spec/jobs/recoverable_wordcount.lua: the job of the recovery specs: words of the files that
-- arrive in DIR/in (or of the lines of a socket), counted per batch into saveAsTextFiles
-- (DIR/out/counts-<ms>) and in total with updateStateByKey; the totals go to DIR/state after
-- every batch (written whole: temporary file, rename). DIR/running names the batch whose output
-- runs and its number of distinct words, before it sleeps SLOW seconds (so a test can kill the
-- host mid-batch).
-- usage: streamhost recoverable_wordcount.lua DIR SLOW [PORT]
--   PORT: read lines from 127.0.0.1:PORT instead of files; the setting
--   spark.streaming.receiver.writeAheadLog.enable comes from the environment variable WAL.
local sh = require "streamhost"

local dir, slow, port = arg[1], tonumber(arg[2]) or 0, tonumber(arg[3])

local function words(line)
    local out = {}
    for w in line:gmatch("%S+") do out[#out + 1] = w end
    return out
end

local function write_whole(path, text)
    local tmp = path .. ".tmp"
    local f = assert(io.open(tmp, "w"))
    f:write(text)
    f:close()
    assert(os.rename(tmp, path))
end

local function setup()
    local conf = sh.SparkConf():set("spark.streaming.receiver.writeAheadLog.enable", os.getenv("WAL") or "false")
    local sc = sh.SparkContext(nil, "RecoverableWordCount", nil, nil, nil, nil, nil, conf)
    local ssc = sh.StreamingContext(sc, 0.2)
    local lines = port and ssc:socketTextStream("127.0.0.1", port) or ssc:textFileStream(dir .. "/in")
    local pairs_ = lines:flatMap(words):map(function(w) return { w, 1 } end)
    pairs_:reduceByKey(function(a, b) return a + b end):saveAsTextFiles(dir .. "/out/counts")
    local totals = pairs_:updateStateByKey(function(values, total)
        total = total or 0
        for _, v in ipairs(values) do total = total + v end
        return total
    end)
    totals:checkpoint(0.6)
    totals:foreachRDD(function(t, rdd)
        local ms = math.floor(t * 1000 + 0.5)
        local all = rdd:collect()
        write_whole(dir .. "/running", ms .. " " .. #all .. "\n")
        if slow > 0 then sh.sleep(slow) end
        table.sort(all, function(a, b) return a[1] < b[1] end)
        local out = { "time " .. ms }
        for _, kv in ipairs(all) do out[#out + 1] = kv[1] .. " " .. kv[2] end
        write_whole(dir .. "/state", table.concat(out, "\n") .. "\n")
    end)
    return ssc
end

local ssc = sh.StreamingContext.getOrCreate(dir .. "/cp", setup)
ssc:start()
ssc:awaitTermination()
