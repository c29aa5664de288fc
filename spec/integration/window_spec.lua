-- spec/integration/window_spec.lua: windowed DStreams (pyspark's window test shapes), slice and
-- remember, on the real batch loop with a 0.05 s batch.
local helpers = require "spec.helpers"
local state = require "streamhost.state"
local run_stream = helpers.run_stream

local function add(a, b) return a + b end
local function sub(a, b) return a - b end

-- range(0, n) per batch, as pyspark's tests feed them.
local function ranges(...)
    local out = {}
    for i, n in ipairs({ ... }) do
        local b = {}
        for j = 0, n - 1 do b[#b + 1] = j end
        out[i] = b
    end
    return out
end

-- Batches of {key, value} pairs, varied but deterministic.
local function pair_batches(nbatches)
    local out = {}
    for i = 1, nbatches do
        local b = {}
        for j = 1, i % 4 + 3 do b[#b + 1] = { "k" .. (i * 7 + j * 3) % 5, j % 4 + 1 } end
        out[i] = b
    end
    return out
end

-- The expected output of reduceByKey(add) over windows of wb batches sliding by sb batches.
local function reference(input, wb, sb, nout)
    local out = {}
    for j = 1, nout do
        local last, sums = j * sb, {}
        for b = math.max(1, last - wb + 1), last do
            for _, kv in ipairs(input[b] or {}) do sums[kv[1]] = (sums[kv[1]] or 0) + kv[2] end
        end
        local recs = {}
        for k, v in pairs(sums) do recs[#recs + 1] = { k, v } end
        out[j] = helpers.sorted(recs)
    end
    return out
end

local function error_of(f)
    local ok, err = pcall(f)
    assert.is_false(ok)
    return tostring(err)
end

describe("DStream windows", function()
    before_each(helpers.stop_active)  -- in case a failed spec left its context running

    local sc
    setup(function()
        sc = helpers.sc()
        sc:setCheckpointDir(helpers.tmpdir())
    end)

    it("window gives the records of the last batches, filling up and draining", function()
        local out = run_stream({ { 1 }, { 2 }, { 3 }, { 4 } }, function(s) return s:window(0.15, 0.05) end, 7)
        assert.are.same({ { 1 }, { 1, 2 }, { 1, 2, 3 }, { 2, 3, 4 }, { 3, 4 }, { 4 }, {} }, out)
    end)

    it("window with a longer slide outputs every slide", function()
        local out = run_stream({ { 1 }, { 2 }, { 3 }, { 4 }, { 5 } }, function(s) return s:window(0.15, 0.1) end, 4)
        assert.are.same({ { 1, 2 }, { 2, 3, 4 }, { 4, 5 }, {} }, out)
    end)

    it("countByWindow counts the records of each window", function()
        local out = run_stream(ranges(1, 2, 3, 4, 5, 6), function(s) return s:countByWindow(0.15, 0.05) end, 9)
        assert.are.same({ { 1 }, { 3 }, { 6 }, { 9 }, { 12 }, { 15 }, { 11 }, { 6 }, { 0 } }, out)
    end)

    it("countByValueAndWindow counts each value of the window and drops values that left", function()
        local out = run_stream(ranges(1, 2, 3, 4), function(s) return s:countByValueAndWindow(0.1, 0.05) end, 6)
        assert.are.same({
            { { 0, 1 } },
            { { 0, 2 }, { 1, 1 } },
            { { 0, 2 }, { 1, 2 }, { 2, 1 } },
            { { 0, 2 }, { 1, 2 }, { 2, 2 }, { 3, 1 } },
            { { 0, 1 }, { 1, 1 }, { 2, 1 }, { 3, 1 } },
            {},
        }, out)
    end)

    it("groupByKeyAndWindow groups the window's values by key, oldest first", function()
        local input = {}
        for i = 0, 4 do input[i + 1] = { { "a", i } } end
        local out = run_stream(input, function(s) return s:groupByKeyAndWindow(0.15, 0.05) end, 8)
        assert.are.same({
            { { "a", { 0 } } }, { { "a", { 0, 1 } } }, { { "a", { 0, 1, 2 } } }, { { "a", { 1, 2, 3 } } },
            { { "a", { 2, 3, 4 } } }, { { "a", { 3, 4 } } }, { { "a", { 4 } } }, {},
        }, out)
    end)

    it("reduceByWindow reduces each window to one record, with or without invReduceFunc", function()
        local input = ranges(1, 2, 3, 4)
        local inc = run_stream(input, function(s) return s:reduceByWindow(add, sub, 0.1, 0.05) end, 5)
        local full = run_stream(input, function(s) return s:reduceByWindow(add, nil, 0.1, 0.05) end, 5)
        assert.are.same({ { 0 }, { 1 }, { 4 }, { 9 }, { 6 } }, inc)
        assert.are.same({ { 0 }, { 1 }, { 4 }, { 9 }, { 6 } }, full)
    end)

    it("reduceByKeyAndWindow with invFunc gives the same windows as without", function()
        local input = pair_batches(8)
        local function keep(kv) return kv[2] > 0 end
        local inc = run_stream(input, function(s)
            return s:reduceByKeyAndWindow(add, sub, 0.2, 0.05, 3, keep)
        end, 11)
        local full = run_stream(input, function(s)
            return s:reduceByKeyAndWindow(add, nil, 0.2, 0.05, 3)
        end, 11)
        assert.are.same(reference(input, 4, 1, 11), full)
        assert.are.same(full, inc)
    end)

    it("reduceByKeyAndWindow slides by more than one batch, incrementally", function()
        local input = pair_batches(9)
        local function keep(kv) return kv[2] > 0 end
        local inc = run_stream(input, function(s)
            return s:reduceByKeyAndWindow(add, sub, 0.3, 0.1, 2, keep)
        end, 6)
        assert.are.same(reference(input, 6, 2, 6), inc)
    end)

    it("reduceByKeyAndWindow keeps expired keys at their inverse value without filterFunc", function()
        local input = { { { "a", 1 }, { "b", 2 } }, { { "a", 3 } }, {} }
        local out = run_stream(input, function(s) return s:reduceByKeyAndWindow(add, sub, 0.1, 0.05) end, 4)
        assert.are.same({
            { { "a", 1 }, { "b", 2 } }, { { "a", 4 }, { "b", 2 } }, { { "a", 3 }, { "b", 0 } }, { { "a", 0 }, { "b", 0 } },
        }, out)
    end)

    it("reduceByKeyAndWindow drops the keys filterFunc rejects", function()
        local input = { { { "a", 1 }, { "b", 2 } }, { { "a", 3 } }, {} }
        local out = run_stream(input, function(s)
            return s:reduceByKeyAndWindow(add, sub, 0.1, 0.05, nil, function(kv) return kv[2] ~= 0 end)
        end, 4)
        assert.are.same({ { { "a", 1 }, { "b", 2 } }, { { "a", 4 }, { "b", 2 } }, { { "a", 3 } }, {} }, out)
    end)

    it("gives windowed RDDs numPartitions partitions", function()
        local ssc = helpers.ssc()
        local s = ssc:queueStream(pair_batches(3))
        local counts = {}
        local function record(name)
            return function(rdd) counts[name] = rdd:getNumPartitions() end
        end
        s:reduceByKeyAndWindow(add, sub, 0.1, 0.05, 3):foreachRDD(record("inc"))
        s:reduceByKeyAndWindow(add, nil, 0.1, 0.05, 5):foreachRDD(record("full"))
        s:countByValueAndWindow(0.1, 0.05, 4):foreachRDD(record("cbv"))
        s:groupByKeyAndWindow(0.1, 0.05, 2):foreachRDD(record("group"))
        s:map(function(kv) return kv[2] end):reduceByWindow(add, sub, 0.1, 0.05):foreachRDD(record("rbw"))
        helpers.collect_batches(ssc, s, 2)
        assert.are.same({ inc = 3, full = 5, cbv = 4, group = 2, rbw = 1 }, counts)
    end)

    it("keeps the window of partition p in worker p % nworkers and drops it at stop", function()
        local ssc = helpers.ssc()
        local w = ssc:queueStream(pair_batches(4)):reduceByKeyAndWindow(add, sub, 0.1, 0.05, 4)
        local info
        w:foreachRDD(function() info = state.worker_info(sc) end)
        helpers.collect_batches(ssc, w, 3)
        local nworkers = sc.defaultParallelism
        for _, wi in ipairs(info) do
            local parts = wi.parts[w._sid]
            assert.is_truthy(parts)
            for _, p in ipairs(parts) do assert.are.equal(wi.index, p % nworkers) end
        end
        for _, wi in ipairs(state.worker_info(sc)) do assert.is_nil(wi.parts[w._sid]) end
    end)

    describe("refuses", function()
        it("a window duration that is not a multiple of the parent's slide", function()
            local s = helpers.ssc():queueStream({})
            assert.matches("The window duration of windowed DStream (0.125s) must be a multiple of the slide duration of parent DStream (0.05s)",
                error_of(function() s:window(0.125, 0.05) end), 1, true)
            assert.matches("window_spec.lua:%d+:", error_of(function() s:window(0.125, 0.05) end))
        end)

        it("a slide duration that is not a multiple of the parent's slide", function()
            local s = helpers.ssc():queueStream({})
            assert.matches("The slide duration of windowed DStream (0.075s) must be a multiple of the slide duration of parent DStream (0.05s)",
                error_of(function() s:reduceByKeyAndWindow(add, sub, 0.1, 0.075) end), 1, true)
        end)

        it("durations that are not multiples of a windowed parent's slide", function()
            local s = helpers.ssc():queueStream({}):window(0.2, 0.1)
            assert.matches("The window duration of windowed DStream (0.15s) must be a multiple of the slide duration of parent DStream (0.1s)",
                error_of(function() s:countByWindow(0.15, 0.1) end), 1, true)
            assert.matches("slide duration of windowed DStream (0.05s)",
                error_of(function() s:groupByKeyAndWindow(0.2, 0.05) end), 1, true)
            assert.matches("window duration of windowed DStream (0.25s)",
                error_of(function() s:countByValueAndWindow(0.25) end), 1, true)
            assert.matches("window duration of windowed DStream (0.35s)",
                error_of(function() s:reduceByWindow(add, nil, 0.35, 0.1) end), 1, true)
        end)

        it("bad durations before bad functions or numPartitions, as pyspark checks them first", function()
            local s = helpers.ssc():queueStream({})
            local not_multiple = "must be a multiple of the slide duration of parent DStream"
            local not_positive = "windowDuration must be a positive number of seconds"
            for _, case in ipairs({
                { not_multiple, function() s:reduceByKeyAndWindow(nil, nil, 0.07, 0.05) end },
                { not_positive, function() s:reduceByKeyAndWindow(nil, nil, -1, 0.05) end },
                { not_positive, function() s:reduceByKeyAndWindow(42, "inv", "long") end },
                { not_multiple, function() s:reduceByKeyAndWindow(add, sub, 0.1, 0.075, 0, 7) end },
                { not_multiple, function() s:reduceByWindow(nil, nil, 0.07, 0.05) end },
                { not_positive, function() s:reduceByWindow(nil, 1, 0) end },
                { not_multiple, function() s:countByValueAndWindow(0.07, 0.05, -3) end },
                { not_multiple, function() s:groupByKeyAndWindow(0.07, 0.05, "many") end },
                { not_positive, function() s:countByWindow(nil, 0.05) end },
                { not_positive, function() s:window(nil) end },
            }) do
                local err = error_of(case[2])
                assert.matches(case[1], err, 1, true)
                assert.matches("window_spec.lua:%d+:", err)
            end
        end)

        local function without_checkpoint(f)
            local saved = sc._checkpoint_dir
            sc._checkpoint_dir = nil
            local ok, err = pcall(f)
            sc._checkpoint_dir = saved
            assert.is_true(ok, err)
        end

        it("to start an incremental window without a checkpoint directory", function()
            without_checkpoint(function()
                for _, make in ipairs({
                    function(s) return s:map(function(x) return { x, 1 } end):reduceByKeyAndWindow(add, sub, 0.1, 0.05) end,
                    function(s) return s:countByWindow(0.1, 0.05) end,
                    function(s) return s:countByValueAndWindow(0.1, 0.05) end,
                    function(s) return s:reduceByWindow(add, sub, 0.1, 0.05) end,
                }) do
                    local ssc = helpers.ssc()
                    make(ssc:queueStream({})):foreachRDD(function() end)
                    assert.matches(state.NO_CHECKPOINT, error_of(function() ssc:start() end), 1, true)
                    ssc:stop(false)
                end
            end)
        end)

        it("nothing without a checkpoint directory when no window is incremental", function()
            without_checkpoint(function()
                local out = run_stream({ { 1 }, { 2 } }, function(s) return s:window(0.1, 0.05):reduce(add) end, 2)
                assert.are.same({ { 1 }, { 3 } }, out)
            end)
        end)
    end)
end)

describe("DStream:slice and StreamingContext:remember", function()
    setup(function() helpers.sc() end)

    it("slice returns the remembered RDDs between two times, both included", function()
        local ssc = helpers.ssc()
        ssc:remember(1)
        local s = ssc:queueStream({ { 1 }, { 2 }, { 3 }, { 4 } })
        local times = {}
        s:foreachRDD(function(t, _) if #times < 4 then times[#times + 1] = t end end)
        helpers.collect_batches(ssc, s, 6)
        local b = times[1]
        local function sliced(from, to)
            local out = {}
            for _, rdd in ipairs(s:slice(b + from, b + to)) do
                for _, x in ipairs(rdd:collect()) do out[#out + 1] = x end
            end
            return helpers.sorted(out)
        end
        assert.are.same({ 1 }, sliced(0, 0))
        assert.are.same({ 2, 3 }, sliced(0.05, 0.1))
        assert.are.same({ 2, 3, 4 }, sliced(0.05, 0.15))
        assert.are.same({ 1, 2, 3, 4 }, sliced(0, 0.15))
        assert.are.same({ 1, 2, 3, 4 }, sliced(-1, 0.17))
    end)

    it("without remember a stream keeps only its last RDD", function()
        local ssc = helpers.ssc()
        local s = ssc:queueStream({ { 1 }, { 2 }, { 3 } })
        local times = {}
        s:foreachRDD(function(t, _) times[#times + 1] = t end)
        helpers.collect_batches(ssc, s, 3)
        assert.are.equal(0, #s:slice(times[1], times[2]))
        assert.are.equal(1, #s:slice(times[1], times[#times]))
    end)

    it("slice refuses a context that has not started", function()
        local s = helpers.ssc():queueStream({})
        assert.matches("not been started", error_of(function() s:slice(0, 1) end))
    end)
end)
