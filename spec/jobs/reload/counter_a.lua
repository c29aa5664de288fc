-- A reload spec's job (version "a"): counts the lines of a socket in a stateful stream named
-- "total" and counts them per word in an unnamed one; every batch writes "<version> <total>
-- <words>" to arg[3] (whole: a rename). arg[1]: the port, arg[2]: a checkpoint directory.
local sh = require "streamhost"
RELOAD_SPEC_OLD_GLOBAL = "a"  -- a new script loaded by a reload must not see it
local sc = sh.SparkContext(nil, "reload")
sc:setCheckpointDir(arg[2])
local ssc = sh.StreamingContext(sc, 0.1)
local lines = ssc:socketTextStream("127.0.0.1", tonumber(arg[1]))
local function add(vs, s)
    s = s or 0
    for _, v in ipairs(vs) do s = s + v end
    return s
end
local total = lines:map(function(_) return { "n", 1 } end):updateStateByKey(add):setName("total")
local words = lines:map(function(l) return { l:match("^(%a+)"), 1 } end):updateStateByKey(add)
total:transformWith(function(a, b) return a:union(b) end, words):foreachRDD(function(rdd)
    local n, w = 0, 0
    for _, kv in ipairs(rdd:collect()) do
        if kv[1] == "n" then n = kv[2] else w = w + kv[2] end
    end
    local f = assert(io.open(arg[3] .. ".tmp", "w"))
    f:write("a ", n, " ", w, "\n")
    f:close()
    os.rename(arg[3] .. ".tmp", arg[3])
end)
ssc:start()
ssc:awaitTermination()
