-- examples/flume_wordcount.lua: port of Spark's examples/src/main/python/streaming/flume_wordcount.py.
-- Counts the words of the events Flume agents push to an Avro source (FlumeUtils.createStream)
-- every second.
--
-- Usage: host/streamhost examples/flume_wordcount.lua <hostname> <port>
--   e.g. host/streamhost examples/flume_wordcount.lua 127.0.0.1 41414
-- then point a Flume agent's Avro sink at 127.0.0.1:41414, or send the lines of a file as
-- events with the local test client (Debian's python3-avro):
--   /usr/bin/python3 scripts/peers/flume_client.py --port 41414 --mode text --text README.md
-- Ctrl-C stops the job.
local sh = require "streamhost"

if #arg ~= 2 then
    io.stderr:write("Usage: flume_wordcount.lua <hostname> <port>\n")
    os.exit(1)
end

local sc = sh.SparkContext(nil, "PythonStreamingFlumeWordCount")
local ssc = sh.StreamingContext(sc, 1)

local hostname, port = arg[1], tonumber(arg[2])
local kvs = sh.FlumeUtils.createStream(ssc, hostname, port)
local lines = kvs:map(function(x) return x[2] end)  -- {headers, body}: the body
local counts = lines:flatMap(function(line)
                        local words = {}
                        for w in line:gmatch("[^ ]+") do words[#words + 1] = w end
                        return words
                    end)
                    :map(function(word) return { word, 1 } end)
                    :reduceByKey(function(a, b) return a + b end)
counts:pprint()

ssc:start()
ssc:awaitTermination()
