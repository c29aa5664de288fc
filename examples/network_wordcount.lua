-- examples/network_wordcount.lua: port of Spark's examples/src/main/python/streaming/network_wordcount.py.
-- Counts the words of the text received each second from a TCP server.
--
-- Usage: host/streamhost examples/network_wordcount.lua <hostname> <port>
--   Run a server first, e.g. `nc -lk 9999`, then
--   host/streamhost examples/network_wordcount.lua localhost 9999
-- and type lines into nc. Ctrl-C stops the job.
local sh = require "streamhost"

if #arg ~= 2 then
    io.stderr:write("Usage: network_wordcount.lua <hostname> <port>\n")
    os.exit(1)
end

local sc = sh.SparkContext(nil, "PythonStreamingNetworkWordCount")
local ssc = sh.StreamingContext(sc, 1)

local lines = ssc:socketTextStream(arg[1], tonumber(arg[2]))
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
