-- scripts/bench/sortby_job.lua: the transform(sortBy) job of the batch-loop benchmark: every
-- batch's transform ships new closures (a sort, and a map capturing a fresh ~20 KB lookup
-- table), so the function registry and the workers' caches see a new function each batch.
-- Prints the registry's live entries and the process's RSS at batch 100 and at the last batch
-- (spec/integration/batch_loop_spec.lua runs it too).
-- usage: streamhost sortby_job.lua [BATCH_SECONDS=0.05] [BATCHES=2000]
local sh = require "streamhost"
local ship = require "streamhost.ship"

local function rss_kb()
    local f = io.open("/proc/self/status", "r")
    local s = f and f:read("*a") or ""
    if f then f:close() end
    return tonumber(s:match("VmRSS:%s*(%d+)")) or 0
end

local interval, last = tonumber(arg[1] or "0.05"), tonumber(arg[2] or "2000")
local sc = sh.SparkContext(nil, "sortby-bench")
local ssc = sh.StreamingContext(sc, interval)
local words = {}
for i = 1, 400 do words[i] = "w" .. (i * 7919 % 97) end
local batches, at100, n_transforms = 0, nil, 0
ssc:queueStream({}, true, sc:parallelize(words, 2))
    :map(function(w) return { w, 1 } end)
    :reduceByKey(function(a, b) return a + b end)
    :transform(function(rdd)
        n_transforms = n_transforms + 1  -- a different table every batch: a new closure to ship
        local lookup = {}
        for i = 1, 1000 do lookup[i] = string.format("%019d", i + n_transforms) end
        return rdd:map(function(kv) return { kv[1], kv[2] + #lookup[1] } end)
                  :sortBy(function(kv) return kv[2] end, false)
    end)
    :foreachRDD(function(rdd)
        assert(#rdd:take(3) == 3)
        batches = batches + 1
        if batches == 100 or batches == last then
            collectgarbage()
            collectgarbage()
            -- (-1: a host from before the registry counted its entries)
            local now = { live = ship.registry_stats and ship.registry_stats().live or -1, rss = rss_kb() }
            if batches == 100 then at100 = now end
            if batches == last then
                io.write(string.format("batches=%d registry_live_at_100=%d registry_live_at_%d=%d rss_at_100_kb=%d rss_at_%d_kb=%d\n",
                    batches, at100.live, last, now.live, at100.rss, last, now.rss))
                io.stdout:flush()
                ssc:stop(true, false)
            end
        end
    end)
ssc:start()
ssc:awaitTermination()
