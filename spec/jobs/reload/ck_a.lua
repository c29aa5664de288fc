-- A reload spec's recoverable job (version "a"): getOrCreate(arg[2]) with a socket line count in
-- a stateful stream named "total", its state checkpointed every 0.5 s; every batch writes
-- "<version> <total>" to arg[3] (whole: a rename). arg[1]: the port.
local sh = require "streamhost"
local ssc = sh.StreamingContext.getOrCreate(arg[2], function()
    local ssc = sh.StreamingContext(sh.SparkContext(nil, "reload"), 0.1)
    local total = ssc:socketTextStream("127.0.0.1", tonumber(arg[1]))
        :map(function(_) return { "n", 1 } end)
        :updateStateByKey(function(vs, s)
            s = s or 0
            for _, v in ipairs(vs) do s = s + v end
            return s
        end)
        :setName("total")
    total:checkpoint(0.5)
    total:foreachRDD(function(rdd)
        local kv = rdd:collect()[1]
        local f = assert(io.open(arg[3] .. ".tmp", "w"))
        f:write("a ", kv and kv[2] or 0, " 0\n")
        f:close()
        os.rename(arg[3] .. ".tmp", arg[3])
    end)
    return ssc
end)
ssc:start()
ssc:awaitTermination()
