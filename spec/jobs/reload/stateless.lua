-- A reload spec's job without the stateful streams of counter_a: a reload to it drops their
-- state. Writes "c <lines of the batch> 0" to arg[3] every batch.
local sh = require "streamhost"
local sc = sh.SparkContext(nil, "reload")
local ssc = sh.StreamingContext(sc, 0.1)
ssc:socketTextStream("127.0.0.1", tonumber(arg[1])):count():foreachRDD(function(rdd)
    local f = assert(io.open(arg[3] .. ".tmp", "w"))
    f:write("c ", rdd:collect()[1] or 0, " 0\n")
    f:close()
    os.rename(arg[3] .. ".tmp", arg[3])
end)
ssc:start()
ssc:awaitTermination()
