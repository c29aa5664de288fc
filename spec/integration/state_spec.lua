-- spec/integration/state_spec.lua: updateStateByKey (pyspark's test shapes) and where the state
-- of stateful streams lives, on the real batch loop with a 0.05 s batch.
local helpers = require "spec.helpers"
local state = require "streamhost.state"
local run_stream = helpers.run_stream

local function error_of(f)
    local ok, err = pcall(f)
    assert.is_false(ok)
    return tostring(err)
end

local function sum_update(values, last)
    local n = last or 0
    for _, v in ipairs(values) do n = n + v end
    return n
end

describe("DStream:updateStateByKey", function()
    before_each(helpers.stop_active)  -- in case a failed spec left its context running

    local sc
    setup(function()
        sc = helpers.sc()
        sc:setCheckpointDir(helpers.tmpdir())
    end)

    it("keeps a running state per key across batches", function()
        local input = { { { "a", 1 } }, { { "a", 2 }, { "b", 5 } }, {}, { { "b", 1 }, { "c", 3 } } }
        local out = run_stream(input, function(s) return s:updateStateByKey(sum_update) end, 5)
        assert.are.same({
            { { "a", 1 } },
            { { "a", 3 }, { "b", 5 } },
            { { "a", 3 }, { "b", 5 } },
            { { "a", 3 }, { "b", 6 }, { "c", 3 } },
            { { "a", 3 }, { "b", 6 }, { "c", 3 } },
        }, out)
    end)

    it("collects values as pyspark's test does (lists appended per batch)", function()
        local input = {}
        for i = 1, 4 do input[i] = { { "k", i } } end
        local out = run_stream(input, function(s)
            return s:updateStateByKey(function(vs, last)
                local l = last or {}
                for _, v in ipairs(vs) do l[#l + 1] = v end
                return l
            end)
        end, 4)
        assert.are.same({ { { "k", { 1 } } }, { { "k", { 1, 2 } } }, { { "k", { 1, 2, 3 } } },
                          { { "k", { 1, 2, 3, 4 } } } }, out)
    end)

    it("calls updateFunc with an empty array for keys without new values and nil for new keys", function()
        local input = { { { "a", 1 } }, { { "b", 1 } } }
        local out = run_stream(input, function(s)
            return s:updateStateByKey(function(vs, last)
                return string.format("%d%s", #vs, last == nil and "new" or ("|" .. last))
            end)
        end, 3)
        assert.are.same({
            { { "a", "1new" } },
            { { "a", "0|1new" }, { "b", "1new" } },
            { { "a", "0|0|1new" }, { "b", "0|1new" } },
        }, out)
    end)

    it("removes a key when updateFunc returns nil", function()
        local input = { { { "a", 1 }, { "b", 1 } }, { { "a", 1 } }, { { "a", 1 } }, {} }
        -- A key lives while it gets values; its state counts them.
        local out = run_stream(input, function(s)
            return s:updateStateByKey(function(vs, last)
                if #vs == 0 then return nil end
                return (last or 0) + #vs
            end)
        end, 5)
        assert.are.same({ { { "a", 1 }, { "b", 1 } }, { { "a", 2 } }, { { "a", 3 } }, {}, {} }, out)
    end)

    it("starts from initialRDD", function()
        local input = { { { "a", 1 } }, { { "c", 2 } } }
        local out = run_stream(input, function(s)
            return s:updateStateByKey(sum_update, nil, sc:parallelize({ { "a", 10 }, { "b", 20 } }))
        end, 3)
        assert.are.same({
            { { "a", 11 }, { "b", 20 } },
            { { "a", 11 }, { "b", 20 }, { "c", 2 } },
            { { "a", 11 }, { "b", 20 }, { "c", 2 } },
        }, out)
    end)

    it("takes an array as initialRDD, as pyspark parallelizes a list", function()
        local out = run_stream({ {} }, function(s)
            return s:updateStateByKey(sum_update, 3, { { "x", 1 }, { { "composite", 2 }, 5 } })
        end, 1)
        assert.are.same({ { { "x", 1 }, { { "composite", 2 }, 5 } } }, out)
    end)

    it("handles composite keys by content", function()
        local input = { { { { "a", 1 }, 1 }, { { "a", 2 }, 1 } }, { { { "a", 1 }, 5 } } }
        local out = run_stream(input, function(s) return s:updateStateByKey(sum_update, 2) end, 2)
        assert.are.same({ { { { "a", 1 }, 1 }, { { "a", 2 }, 1 } }, { { { "a", 1 }, 6 }, { { "a", 2 }, 1 } } }, out)
    end)

    it("gives the state RDDs numPartitions partitions", function()
        local n = {}
        run_stream({ { { "a", 1 } } }, function(s)
            local st = s:updateStateByKey(sum_update, 3)
            st:foreachRDD(function(rdd) n[#n + 1] = rdd:getNumPartitions() end)
            return st
        end, 2)
        assert.are.equal(3, n[1])
        local d = {}
        run_stream({ { { "a", 1 } } }, function(s)
            local st = s:updateStateByKey(sum_update)
            st:foreachRDD(function(rdd) d[#d + 1] = rdd:getNumPartitions() end)
            return st
        end, 1)
        assert.are.equal(sc.defaultParallelism, d[1])
    end)

    it("holds many keys over many partitions", function()
        local input = {}
        for b = 1, 3 do
            local recs = {}
            for i = 1, 20000 do recs[i] = { "key" .. i, b } end
            input[b] = recs
        end
        local counts = {}
        run_stream(input, function(s)
            local st = s:updateStateByKey(sum_update, 5)
            st:filter(function(kv) return kv[2] == 6 end):count():foreachRDD(function(rdd)
                counts[#counts + 1] = rdd:collect()[1]
            end)
            return st:count()
        end, 3)
        assert.are.same({ 0, 0, 20000 }, counts)
    end)

    it("keeps partition p's state in worker p % nworkers and drops it when the context stops", function()
        local ssc = helpers.ssc()
        local input = {}
        for b = 1, 3 do input[b] = { { "a", 1 }, { "b", 2 }, { "c", 3 }, { "d", 4 }, { "e", 5 } } end
        local st = ssc:queueStream(input):updateStateByKey(sum_update, 5)
        local info
        st:foreachRDD(function() info = state.worker_info(sc) end)
        local out = helpers.collect_batches(ssc, st, 3)
        assert.are.same({ { "a", 3 }, { "b", 6 }, { "c", 9 }, { "d", 12 }, { "e", 15 } }, out[3])
        local seen, nworkers = 0, sc.defaultParallelism
        for _, wi in ipairs(info) do
            for _, p in ipairs(wi.parts[st._sid] or {}) do
                assert.are.equal(wi.index, p % nworkers)
                seen = seen + 1
            end
        end
        assert.are.equal(5, seen)
        for _, wi in ipairs(state.worker_info(sc)) do assert.is_nil(wi.parts[st._sid]) end
    end)

    it("reports an error of updateFunc with its file and line", function()
        local ssc = helpers.ssc()
        local st = ssc:queueStream({ { { "a", 1 } }, { { "a", "boom" } }, { { "a", 1 } } })
            :updateStateByKey(function(vs, last)
                if vs[1] == "boom" then error("bad value") end
                return sum_update(vs, last)
            end)
        local ok, err = pcall(helpers.collect_batches, ssc, st, 3)
        if ssc._state ~= "stopped" then ssc:stop(false) end
        assert.is_false(ok)
        assert.matches("state_spec.lua:%d+: bad value", tostring(err))
    end)

    describe("refuses", function()
        it("to start without a checkpoint directory", function()
            local saved = sc._checkpoint_dir
            sc._checkpoint_dir = nil
            local ssc = helpers.ssc()
            ssc:queueStream({}):updateStateByKey(sum_update):foreachRDD(function() end)
            local err = error_of(function() ssc:start() end)
            sc._checkpoint_dir = saved
            ssc:stop(false)
            assert.matches(state.NO_CHECKPOINT, err, 1, true)
            assert.matches("state_spec.lua:%d+:", err)
        end)

        it("a checkpoint directory set with ssc:checkpoint counts", function()
            local saved = sc._checkpoint_dir
            sc._checkpoint_dir = nil
            local ssc = helpers.ssc()
            local dir = helpers.tmpdir()
            os.execute("mkdir -p '" .. dir .. "/in'")
            ssc:checkpoint(dir .. "/cp")
            ssc:textFileStream(dir .. "/in"):map(function(l) return { l, 1 } end)
                :updateStateByKey(sum_update):foreachRDD(function(rdd) rdd:count() end)
            local ok, err = pcall(ssc.start, ssc)
            ssc:stop(false)
            sc._checkpoint_dir = saved
            os.execute("rm -rf '" .. dir .. "'")
            assert.is_true(ok, tostring(err))
        end)

        it("queueStream with ssc:checkpoint, as Spark", function()
            local ssc = helpers.ssc()
            local dir = helpers.tmpdir()
            ssc:checkpoint(dir)
            ssc:queueStream({}):updateStateByKey(sum_update):foreachRDD(function() end)
            local err = error_of(function() ssc:start() end)
            ssc:stop(false)
            os.execute("rm -rf '" .. dir .. "'")
            assert.matches("queueStream doesn't support checkpointing", err, 1, true)
            assert.matches("state_spec.lua:%d+:", err)
        end)

        it("an updateFunc that is not a function", function()
            local s = helpers.ssc():queueStream({})
            assert.matches("updateStateByKey expects a function", error_of(function() s:updateStateByKey(42) end))
        end)
    end)
end)
