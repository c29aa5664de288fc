-- A reload spec's job that cannot make its graph: map takes a function (line 7).
local sh = require "streamhost"
local sc = sh.SparkContext(nil, "reload")
sc:setCheckpointDir(arg[2])
local ssc = sh.StreamingContext(sc, 0.1)
local lines = ssc:socketTextStream("127.0.0.1", tonumber(arg[1]))
lines:map(42):pprint()
ssc:start()
ssc:awaitTermination()
