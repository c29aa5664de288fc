-- scripts/bench/reload_job.lua: the job of the reload benchmarks (scripts/bench/reload_bench.c).
-- arg[1] "pause": a running count of the pushed events in a named stateful stream, handed to C
-- every 0.1 s batch (the C side times the gaps between batches while it reloads this script
-- and a variant that sets VARIANT = 2 first); arg[1] "feed": a word count of the pushed lines at 0.2 s batches, each batch's
-- number of words handed to C. arg[2]: a checkpoint directory (pause). VARIANT (a global the
-- variant sets) changes the functions, not the graph.
local sh = require "streamhost"
local variant = VARIANT or 1  -- luacheck: ignore VARIANT
local function add(a, b) return a + b end

if arg[1] == "pause" then
    local sc = sh.SparkContext(nil, "ReloadBench")
    sc:setCheckpointDir(arg[2])
    local ssc = sh.StreamingContext(sc, 0.1)
    ssc:embeddedStream("events", 100000)
        :map(function(e) return { e, variant } end)
        :updateStateByKey(function(vs, s)
            s = s or 0
            for _ in ipairs(vs) do s = s + 1 end
            return s
        end)
        :setName("total")
        :output("tick")
    ssc:start()
    ssc:awaitTermination()
else
    local ssc = sh.StreamingContext(sh.SparkContext(nil, "EmbedFeedBench"), 0.2)
    local function split_words(line)  -- as wordcount_job.lua: gmatch("%S+")
        local out, n = {}, 0
        for w in line:gmatch("%S+") do n = n + 1; out[n] = w end
        return out
    end
    ssc:embeddedStream("lines", 200000)
        :flatMap(split_words)
        :map(function(w) return { w, 1 } end)
        :reduceByKey(add)
        :map(function(kv) return kv[2] end)
        :reduce(add)
        :output("words")
    ssc:start()
    ssc:awaitTermination()
end
