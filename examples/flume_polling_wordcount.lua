-- examples/flume_polling_wordcount.lua: the word count of flume_wordcount.lua, pulling the events
-- from Spark's sink on Flume agents (FlumeUtils.createPollingStream) instead of being pushed to;
-- as Spark's FlumePollingEventCount example, with the word count of flume_wordcount.py.
--
-- Usage: host/streamhost examples/flume_polling_wordcount.lua <host:port> [<host:port> ...]
--   e.g. with the local test sink (Debian's python3-avro), which prints the port it listens on:
--   /usr/bin/python3 scripts/peers/flume_sink.py --events 1000      # prints PORT <p>
--   host/streamhost examples/flume_polling_wordcount.lua 127.0.0.1:<p>
-- Ctrl-C stops the job.
local sh = require "streamhost"

if #arg < 1 then
    io.stderr:write("Usage: flume_polling_wordcount.lua <host:port> [<host:port> ...]\n")
    os.exit(1)
end

local sc = sh.SparkContext(nil, "FlumePollingWordCount")
local ssc = sh.StreamingContext(sc, 1)

local addresses = {}
for i = 1, #arg do addresses[i] = arg[i] end
-- At most 1000 events a request, 5 requests in flight per sink (pyspark's defaults).
local events = sh.FlumeUtils.createPollingStream(ssc, addresses)
events:count():map(function(n) return "Received " .. n .. " flume events." end):pprint()
local counts = events:flatMap(function(ev)
                         local words = {}
                         for w in ev[2]:gmatch("[^ ]+") do words[#words + 1] = w end
                         return words
                     end)
                     :map(function(word) return { word, 1 } end)
                     :reduceByKey(function(a, b) return a + b end)
counts:pprint()

ssc:start()
ssc:awaitTermination()
