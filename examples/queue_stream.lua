-- examples/queue_stream.lua: port of Spark's examples/src/main/python/streaming/queue_stream.py.
-- Creates a queue of RDDs, makes a stream of it and counts numbers by their last digit.
--
-- Usage: host/streamhost examples/queue_stream.lua
local sh = require "streamhost"

local sc = sh.SparkContext(nil, "PythonStreamingQueueStream")
local ssc = sh.StreamingContext(sc, 1)

-- Five RDDs of the numbers 1..1000, ten partitions each.
local rddQueue = {}
for _ = 1, 5 do
    local numbers = {}
    for j = 1, 1000 do numbers[j] = j end
    rddQueue[#rddQueue + 1] = ssc.sparkContext:parallelize(numbers, 10)
end

local inputStream = ssc:queueStream(rddQueue)
local mappedStream = inputStream:map(function(x) return { x % 10, 1 } end)
local reducedStream = mappedStream:reduceByKey(function(a, b) return a + b end)
reducedStream:pprint()

ssc:start()
-- pyspark sleeps here while its batches run on other threads; the driver loop runs the
-- batches while the script waits in awaitTerminationOrTimeout.
ssc:awaitTerminationOrTimeout(6)
ssc:stop(true, true)
