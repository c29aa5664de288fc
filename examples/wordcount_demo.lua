-- examples/wordcount_demo.lua: the main job (`make run`): a word count over text that the host
-- itself serves on a local TCP port, printed every batch. Stops after a few seconds or on Ctrl-C.
--   host/streamhost --master 'local[2]' examples/wordcount_demo.lua [SECONDS]
local sh = require "streamhost"

local seconds = tonumber(arg[1]) or 5
local here = arg[0]:match("^(.*)/") or "."

-- The built-in source: the lines of a bundled text, 200 a second, on 127.0.0.1 (any free port).
local server = sh.TextServer { path = here .. "/data/river.txt", linesPerSecond = 200 }

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

ssc:start()
ssc:awaitTerminationOrTimeout(seconds)
ssc:stop(true, true)   -- stop the SparkContext too, after processing what was received
server:stop()
