-- examples/wordcount_demo.lua: the main job (`make run`): a word count over text that the host
-- itself serves on a local TCP port, printed every batch. Stops after a few seconds or on Ctrl-C.
--   host/streamhost --master 'local[2]' examples/wordcount_demo.lua [SECONDS]
local sh = require "streamhost"

local seconds = tonumber(arg[1]) or 5
local here = arg[0]:match("^(.*)/") or "."

-- The built-in source: the lines of a bundled text, 200 a second, on 127.0.0.1 (any free port).
local server = sh.TextServer { path = here .. "/data/river.txt", linesPerSecond = 200 }
print(string.format("wordcount_demo: serving data/river.txt on %s:%d, 200 lines a second",
    server.host, server.port))

local sc = sh.SparkContext(nil, "WordCountDemo")   -- the master comes from --master
local ssc = sh.StreamingContext(sc, 1)              -- one batch a second

local lines = ssc:socketTextStream(server.host, server.port)
local counts = lines
    :flatMap(function(line)                        -- runs in the worker states
        local words = {}
        for w in line:gmatch("%a+") do words[#words + 1] = w:lower() end
        return words
    end)
    :map(function(word) return { word, 1 } end)
    :reduceByKey(function(a, b) return a + b end)

-- The most frequent words of each batch first.
counts:transform(function(rdd) return rdd:sortBy(function(kv) return kv[2] end, false) end)
      :pprint(8)

-- Progress figures from the StreamingListener events (the status page shows the same, live,
-- with --ui PORT).
local done = { batches = 0, records = 0, processing = 0 }
ssc:addStreamingListener(sh.StreamingListener {
    onBatchCompleted = function(_, info)
        done.batches, done.records = done.batches + 1, done.records + info.numRecords
        done.processing = done.processing + info.processingDelay
    end,
})

print(string.format("wordcount_demo: counting words in batches of 1 s for %g s (Ctrl-C stops sooner)", seconds))
ssc:start()
ssc:awaitTerminationOrTimeout(seconds)
print("wordcount_demo: stopping: processing what was received ...")
ssc:stop(true, true)   -- stop the SparkContext too, after processing what was received
server:stop()
print(string.format("wordcount_demo: done: %d batches, %d lines, %.1f ms of processing a batch on average",
    done.batches, done.records, done.batches > 0 and done.processing * 1000 / done.batches or 0))
