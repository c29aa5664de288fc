-- spec/integration/task_memory_spec.lua: what a task made is garbage once the task ended, even
-- though compiled traces keep the closures the task ran through (worker.lua's at_task_end).
local helpers = require "spec.helpers"

-- Each worker's Lua heap (KB) after a full collection.
local function heaps(sc)
    return helpers.on_each_worker(sc, function()
        collectgarbage()
        collectgarbage()
        return collectgarbage("count")
    end)
end

describe("a worker's heap after tasks", function()
    it("keeps nothing of the tasks' key maps, buckets and gathered records", function()
        local sc = helpers.sc()
        local words = {}
        for i = 1, 60000 do words[i] = "key-number-" .. i end
        local rdd = sc:parallelize(words, sc.defaultParallelism)
        local function pair(w) return { w, 1 } end
        local function add(a, b) return a + b end
        local function long(kv) return #kv[1] > 3 end
        local before = heaps(sc)
        -- The same job several times: its loops get compiled traces, which keep the closures
        -- of the task they were recorded in.
        for _ = 1, 4 do
            assert.are.equal(60000, #rdd:map(pair):reduceByKey(add):filter(long):collect())
        end
        local after = heaps(sc)
        for w = 1, #before do
            -- A task's 60k keys (key map, buckets, records) are over 10 MB of heap (13 MB stayed
            -- before tasks released them); a worker may keep a few MB of its own (the encoding
            -- buffers' capacity, the shipped functions and their packs).
            assert.is_true(after[w] - before[w] < 6 * 1024,
                string.format("worker %d heap %d KB -> %d KB", w, before[w], after[w]))
        end
    end)
end)
