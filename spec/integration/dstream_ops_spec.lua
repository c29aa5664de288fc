-- spec/integration/dstream_ops_spec.lua: the non-windowed, non-stateful DStream operations,
-- checked batch by batch against expected output (queueStream in, foreachRDD out), as
-- pyspark's streaming tests (BasicOperationTests) check theirs.
local helpers = require "spec.helpers"
local sh = require "streamhost"
local sorted = helpers.sorted

local function add(a, b) return a + b end

local run = helpers.run_stream

-- Runs input and input2 as two queue streams through f(d1, d2, ssc); the output batches.
local function run2(input, input2, f, nbatches, opts)
    local ssc = helpers.ssc()
    local d1, d2 = ssc:queueStream(input), ssc:queueStream(input2)
    return helpers.collect_batches(ssc, f(d1, d2, ssc), nbatches or #input, opts)
end

-- Batch times are epoch seconds with millisecond precision.
local function ms(t) return math.floor(t * 1000 + 0.5) end

local function close_to_multiple(t, interval)
    return ms(t) % ms(interval) == 0
end

local function apart_by(t1, t2, interval)
    return ms(t2) - ms(t1) == ms(interval)
end

local function rm(dir) os.execute("rm -rf '" .. dir .. "'") end

describe("DStream narrow operations", function()
    local sc
    setup(function() sc = helpers.sc() end)

    it("maps every record of every batch", function()
        local out = run({ { 1, 2 }, { 3, 4, 5 }, {} },
            function(d) return d:map(function(x) return x * x end) end, 3, { sort = false })
        assert.are.same({ { 1, 4 }, { 9, 16, 25 }, {} }, out)
    end)

    it("flatMaps records into arrays of records", function()
        local out = run({ { "a b", "c" }, { "d" } }, function(d)
            return d:flatMap(function(l)
                local t = {}
                for w in l:gmatch("%S+") do t[#t + 1] = w end
                return t
            end)
        end, 2, { sort = false })
        assert.are.same({ { "a", "b", "c" }, { "d" } }, out)
    end)

    it("filters records", function()
        local out = run({ { 1, 2, 3, 4 }, { 5, 6 } },
            function(d) return d:filter(function(x) return x % 2 == 1 end) end, 2, { sort = false })
        assert.are.same({ { 1, 3 }, { 5 } }, out)
    end)

    it("maps partitions with an iterator", function()
        local input = { sc:parallelize({ 1, 2, 3, 4 }, 2), sc:parallelize({ 5, 6 }, 1) }
        local out = run(input, function(d)
            return d:mapPartitions(function(it)
                local s = 0
                for x in it do s = s + x end
                return { s }
            end)
        end, 2, { sort = false })
        assert.are.same({ { 3, 7 }, { 11 } }, out)
    end)

    it("maps partitions with their index", function()
        local input = { sc:parallelize({ "a", "b", "c" }, 3) }
        local out = run(input, function(d)
            return d:mapPartitionsWithIndex(function(i, it)
                local t = {}
                for x in it do t[#t + 1] = x .. i end
                return t
            end)
        end, 1, { sort = false })
        assert.are.same({ { "a0", "b1", "c2" } }, out)
    end)

    it("maps values of pairs", function()
        local out = run({ { { "a", 2 }, { "b", 1 } }, { { "c", 3 } } },
            function(d) return d:mapValues(function(v) return v * 10 end) end)
        assert.are.same({ { { "a", 20 }, { "b", 10 } }, { { "c", 30 } } }, out)
    end)

    it("flatMaps values of pairs", function()
        local out = run({ { { "a", 2 }, { "b", 1 } } }, function(d)
            return d:flatMapValues(function(v)
                local t = {}
                for i = 1, v do t[i] = i end
                return t
            end)
        end)
        assert.are.same({ { { "a", 1 }, { "a", 2 }, { "b", 1 } } }, out)
    end)

    it("gloms the partitions of every batch", function()
        local input = { sc:parallelize({ 1, 2, 3, 4 }, 2), sc:parallelize({ 5, 6, 7 }, 3) }
        local out = run(input, function(d) return d:glom() end, 2, { sort = false })
        assert.are.same({ { { 1, 2 }, { 3, 4 } }, { { 5 }, { 6 }, { 7 } } }, out)
    end)
end)

describe("DStream aggregations", function()
    it("counts each batch as one record, 0 for empty batches", function()
        local out = run({ { 1, 2, 3 }, {}, { "x" } }, function(d) return d:count() end, 4)
        assert.are.same({ { 3 }, { 0 }, { 1 }, { 0 } }, out)
    end)

    it("counts each value of a batch", function()
        local out = run({ { "a", "b", "a" }, { 1, "1", 1 } }, function(d) return d:countByValue() end)
        assert.are.same({ { { "a", 2 }, { "b", 1 } }, { { 1, 2 }, { "1", 1 } } }, out)
    end)

    it("reduces each batch to one record, none for an empty batch", function()
        local out = run({ { 1, 2, 3 }, {}, { 4, 5 } }, function(d) return d:reduce(add) end)
        assert.are.same({ { 6 }, {}, { 9 } }, out)
    end)

    it("refuses, where the stream is defined, a reduceByKey without a function", function()
        local d = helpers.ssc():queueStream({ { 1 } })
        local ok, err = pcall(d.reduceByKey, d, 42)
        assert.is_false(ok)
        assert.matches("reduceByKey expects a function, got number", err, 1, true)
    end)

    it("reduces by key within each batch", function()
        local out = run({ { { "a", 1 }, { "b", 1 }, { "a", 1 } }, { { "b", 5 } } },
            function(d) return d:reduceByKey(add) end)
        assert.are.same({ { { "a", 2 }, { "b", 1 } }, { { "b", 5 } } }, out)
    end)

    it("groups by key within each batch", function()
        local out = run({ { { "a", 1 }, { "b", 1 }, { "a", 2 } }, { { "b", 5 } } }, function(d)
            return d:groupByKey():mapValues(function(vs) table.sort(vs); return vs end)
        end)
        assert.are.same({ { { "a", { 1, 2 } }, { "b", { 1 } } }, { { "b", { 5 } } } }, out)
    end)

    it("combines by key within each batch", function()
        local out = run({ { { "a", 1 }, { "b", 1 }, { "a", 2 } }, { { "b", 5 } } }, function(d)
            return d:combineByKey(function(v) return { v } end,
                function(c, v) c[#c + 1] = v; return c end,
                function(a, b) for _, v in ipairs(b) do a[#a + 1] = v end; return a end)
                :mapValues(function(vs) table.sort(vs); return vs end)
        end)
        assert.are.same({ { { "a", { 1, 2 } }, { "b", { 1 } } }, { { "b", { 5 } } } }, out)
    end)

    it("gives reduceByKey and groupByKey sc.defaultParallelism partitions by default", function()
        local sc = helpers.sc()
        local input = { sc:parallelize({ { "a", 1 }, { "b", 2 }, { "c", 3 } }, 5) }
        local function nparts(rdd) return rdd:getNumPartitions() end
        local r = helpers.run_actions(input, function(d) return d:reduceByKey(add) end, nparts)
        local g = helpers.run_actions(input, function(d) return d:groupByKey() end, nparts)
        assert.are.same({ sc.defaultParallelism }, r)
        assert.are.same({ sc.defaultParallelism }, g)
    end)

    it("honours numPartitions of reduceByKey and groupByKey", function()
        local function nparts(rdd) return rdd:getNumPartitions() end
        local r = helpers.run_actions({ { { "a", 1 } } }, function(d) return d:reduceByKey(add, 3) end, nparts)
        local g = helpers.run_actions({ { { "a", 1 } } }, function(d) return d:groupByKey(4) end, nparts)
        assert.are.same({ 3 }, r)
        assert.are.same({ 4 }, g)
    end)
end)

describe("DStream partitioning", function()
    it("partitions by key into numPartitions, equal keys together", function()
        local recs = {}
        for i = 1, 40 do recs[i] = { "k" .. (i % 6), i } end
        local out = helpers.run_actions({ recs, recs }, function(d) return d:partitionBy(3) end,
            function(rdd) return rdd:glom():collect() end)
        for _, batch in ipairs(out) do
            assert.are.equal(3, #batch)
            local where, total = {}, 0
            for p, part in ipairs(batch) do
                for _, kv in ipairs(part) do
                    assert.are.equal(where[kv[1]] or p, p)
                    where[kv[1]] = p
                    total = total + 1
                end
            end
            assert.are.equal(40, total)
        end
    end)

    it("partitions with a custom partitionFunc", function()
        local out = run({ { { 0, "a" }, { 1, "b" }, { 2, "c" }, { 3, "d" } } }, function(d)
            return d:partitionBy(2, function(k) return k end):glom()
        end, 1)
        assert.are.same({ { { { 0, "a" }, { 2, "c" } }, { { 1, "b" }, { 3, "d" } } } }, out)
    end)

    it("partitions with pyspark's default partitionFunc passed explicitly", function()
        local out = helpers.run_actions({ { { "a", 1 }, { "b", 2 }, { "a", 3 } } },
            function(d) return d:partitionBy(2, sh.portable_hash) end,
            function(rdd) return { rdd:getNumPartitions(), sorted(rdd:collect()) } end)
        assert.are.same({ { 2, { { "a", 1 }, { "a", 3 }, { "b", 2 } } } }, out)
    end)

    it("repartitions every batch into numPartitions", function()
        local out = helpers.run_actions({ { 1, 2, 3, 4, 5, 6 }, { 7 } }, function(d) return d:repartition(3) end,
            function(rdd) return { rdd:getNumPartitions(), sorted(rdd:collect()) } end)
        assert.are.same({ { 3, { 1, 2, 3, 4, 5, 6 } }, { 3, { 7 } } }, out)
    end)
end)

describe("DStream of two streams", function()
    local input = { { { "a", 1 }, { "b", 2 } }, { { "c", 3 } }, {} }
    local input2 = { { { "b", "x" }, { "c", "y" } }, { { "c", "z" }, { "c", "w" } }, { { "d", "v" } } }

    it("unions two streams batch by batch", function()
        local out = run2({ { 1, 2 }, { 3 } }, { { 10 }, { 20, 30 } }, function(a, b) return a:union(b) end)
        assert.are.same({ { 1, 2, 10 }, { 3, 20, 30 } }, out)
    end)

    it("unions any number of streams with StreamingContext:union", function()
        local ssc = helpers.ssc()
        local a, b, c = ssc:queueStream({ { 1 }, { 2 } }), ssc:queueStream({ { 10 }, {} }), ssc:queueStream({ { 100 }, { 200 } })
        local out = helpers.collect_batches(ssc, ssc:union(a, b, c), 2)
        assert.are.same({ { 1, 10, 100 }, { 2, 200 } }, out)
    end)

    it("cogroups two streams batch by batch", function()
        local out = run2(input, input2, function(a, b)
            return a:cogroup(b):mapValues(function(g) table.sort(g[2]); return g end)
        end)
        assert.are.same({
            { { "a", { { 1 }, {} } }, { "b", { { 2 }, { "x" } } }, { "c", { {}, { "y" } } } },
            { { "c", { { 3 }, { "w", "z" } } } },
            { { "d", { {}, { "v" } } } },
        }, out)
    end)

    it("joins two streams batch by batch", function()
        local out = run2(input, input2, function(a, b) return a:join(b) end)
        assert.are.same({ { { "b", { 2, "x" } } }, { { "c", { 3, "w" } }, { "c", { 3, "z" } } }, {} }, out)
    end)

    it("left-outer-joins two streams batch by batch", function()
        local out = run2(input, input2, function(a, b) return a:leftOuterJoin(b) end)
        assert.are.same({ { { "a", { 1, nil } }, { "b", { 2, "x" } } },
                          { { "c", { 3, "w" } }, { "c", { 3, "z" } } }, {} }, out)
    end)

    it("right-outer-joins two streams batch by batch", function()
        local out = run2(input, input2, function(a, b) return a:rightOuterJoin(b) end)
        assert.are.same({ { { "b", { 2, "x" } }, { "c", { nil, "y" } } },
                          { { "c", { 3, "w" } }, { "c", { 3, "z" } } }, { { "d", { nil, "v" } } } }, out)
    end)

    it("full-outer-joins two streams batch by batch", function()
        local out = run2(input, input2, function(a, b) return a:fullOuterJoin(b) end)
        assert.are.same({ { { "a", { 1, nil } }, { "b", { 2, "x" } }, { "c", { nil, "y" } } },
                          { { "c", { 3, "w" } }, { "c", { 3, "z" } } }, { { "d", { nil, "v" } } } }, out)
    end)

    it("gives joins sc.defaultParallelism partitions by default and numPartitions when given", function()
        local ssc = helpers.ssc()
        local a, b = ssc:queueStream({ helpers.sc():parallelize({ { 1, 1 } }, 5) }), ssc:queueStream({ { { 1, 2 } } })
        local parts = {}
        a:join(b):foreachRDD(function(rdd) parts[#parts + 1] = rdd:getNumPartitions() end)
        local out = helpers.collect_batches(ssc, a:join(b, 3):glom():map(function(p) return #p end), 1)
        assert.are.equal(helpers.sc().defaultParallelism, parts[1])
        assert.are.equal(3, #out[1])
    end)
end)

describe("DStream transform", function()
    it("transforms every RDD with f(rdd)", function()
        local out = run({ { 3, 1, 2 }, { 5, 4 } }, function(d)
            return d:transform(function(rdd) return rdd:sortBy(function(x) return x end) end)
        end, 2, { sort = false })
        assert.are.same({ { 1, 2, 3 }, { 4, 5 } }, out)
    end)

    it("passes the batch time in seconds to f(time, rdd)", function()
        local times = {}
        local out = run({ { 1 }, { 2 }, { 3 } }, function(d)
            return d:transform(function(time, rdd)
                times[#times + 1] = time
                return rdd:map(function(x) return x * 10 end)
            end)
        end, 3, { sort = false })
        assert.are.same({ { 10 }, { 20 }, { 30 } }, out)
        for i, t in ipairs(times) do
            assert.is_number(t)
            assert.is_true(close_to_multiple(t, 0.05), "batch time " .. t .. " is not a multiple of 0.05")
            assert.is_true(math.abs(t - os.time()) < 60)
            if i > 1 then assert.is_true(apart_by(times[i - 1], t, 0.05)) end
        end
    end)

    it("raises when the transform function does not return an RDD", function()
        local ssc = helpers.ssc()
        local d = ssc:queueStream({ { 1 } }):transform(function() return 42 end)
        d:foreachRDD(function() end)
        ssc:start()
        local ok, err = pcall(function()
            for _ = 1, 40 do ssc:awaitTerminationOrTimeout(0.05) end
        end)
        ssc:stop(false, false)
        assert.is_false(ok)
        assert.matches("must return an RDD", tostring(err))
    end)

    it("transforms two streams with transformWith(f(a, b))", function()
        local out = run2({ { 1, 2 }, { 3 } }, { { 10 }, { 30, 40 } }, function(a, b)
            return a:transformWith(function(r1, r2) return r1:union(r2:map(function(x) return -x end)) end, b)
        end)
        assert.are.same({ { -10, 1, 2 }, { -40, -30, 3 } }, out)
    end)

    it("passes the batch time to transformWith(f(time, a, b))", function()
        local times = {}
        local out = run2({ { 1 }, { 2 } }, { { "x" }, { "y" } }, function(a, b)
            return a:transformWith(function(time, r1, r2)
                times[#times + 1] = time
                return r1:union(r2)
            end, b)
        end)
        assert.are.same({ { 1, "x" }, { 2, "y" } }, out)
        assert.are.equal(2, #times)
        assert.is_true(close_to_multiple(times[1], 0.05))
        assert.is_true(apart_by(times[1], times[2], 0.05))
    end)

    it("transforms a list of streams with StreamingContext:transform(dstreams, f(rdds))", function()
        local ssc = helpers.ssc()
        local a, b, c = ssc:queueStream({ { 1 }, { 2 } }), ssc:queueStream({ { 10 } , { 20 } }), ssc:queueStream({ { 100 }, {} })
        local t = ssc:transform({ a, b, c }, function(rdds)
            return rdds[1]:union(rdds[2]):union(rdds[3]:map(function(x) return -x end))
        end)
        assert.are.same({ { -100, 1, 10 }, { 2, 20 } }, helpers.collect_batches(ssc, t, 2))
    end)

    it("passes the batch time to StreamingContext:transform(dstreams, f(time, rdds))", function()
        local ssc = helpers.ssc()
        local a, b = ssc:queueStream({ { 1 } }), ssc:queueStream({ { 2 } })
        local times = {}
        local t = ssc:transform({ a, b }, function(time, rdds)
            times[#times + 1] = time
            return rdds[2]:union(rdds[1])
        end)
        assert.are.same({ { 1, 2 } }, helpers.collect_batches(ssc, t, 1))
        assert.is_number(times[1])
        assert.is_true(close_to_multiple(times[1], 0.05))
    end)
end)

describe("DStream outputs", function()
    it("calls foreachRDD with the batch time and the RDD", function()
        local ssc = helpers.ssc()
        local d = ssc:queueStream({ { 1, 2 }, { 3 } })
        local seen = {}
        d:foreachRDD(function(time, rdd) seen[#seen + 1] = { time, rdd:collect() } end)
        helpers.collect_batches(ssc, d, 2)
        assert.are.same({ 1, 2 }, seen[1][2])
        assert.are.same({ 3 }, seen[2][2])
        assert.is_true(close_to_multiple(seen[1][1], 0.05))
        assert.is_true(apart_by(seen[1][1], seen[2][1], 0.05))
    end)

    it("pprints a header with the batch time and records as Lua literals", function()
        local text = helpers.capture_stdout(function()
            run({ { { "hello", 1 }, "x", 2.5, { k = "v" } } }, function(d)
                d:pprint()
                return d
            end, 1)
        end)
        local dash = string.rep("-", 43)
        local lines = {}
        for l in text:gmatch("([^\n]*)\n") do lines[#lines + 1] = l end
        assert.are.equal(dash, lines[1])
        assert.matches("^Time: %d%d%d%d%-%d%d%-%d%d %d%d:%d%d:%d%d", lines[2])
        assert.are.equal(dash, lines[3])
        assert.are.same({ '{"hello", 1}', '"x"', "2.5", '{k = "v"}', "" }, { lines[4], lines[5], lines[6], lines[7], lines[8] })
    end)

    it("pprints at most num records and then ...", function()
        local text = helpers.capture_stdout(function()
            run({ { 1, 2, 3, 4 } }, function(d)
                d:pprint(2)
                return d
            end, 1)
        end)
        local body = text:match("^%-+\nTime: [^\n]*\n%-+\n(.*)$")
        assert.are.equal("1\n2\n...\n\n", body)
    end)

    it("pprints only the header and an empty line for an empty batch", function()
        local text = helpers.capture_stdout(function()
            run({ {} }, function(d)
                d:pprint()
                return d
            end, 1)
        end)
        assert.matches("^%-+\nTime: [^\n]*\n%-+\n\n", text)
    end)

    it("pprints the time of the batch", function()
        local times = {}
        local text = helpers.capture_stdout(function()
            run({ { 1 } }, function(d)
                d:pprint()
                d:foreachRDD(function(time, _) times[#times + 1] = time end)
                return d
            end, 1)
        end)
        local stamp = text:match("Time: ([^\n]*)")
        assert.are.equal(require("streamhost.format").time(times[1]), stamp)
        assert.are.equal(os.date("%Y-%m-%d %H:%M:%S", math.floor(times[1])), stamp:sub(1, 19))
    end)

    it("pprints to the job's standard output", function()
        local out, err, ok = helpers.run_job([[
local sh = require "streamhost"
local sc = sh.SparkContext("local[2]", "pprint")
local ssc = sh.StreamingContext(sc, 0.05)
local d = ssc:queueStream({ { { "hello", 1 }, { "world", 2 } } })
d:pprint(1)
local n = 0
d:foreachRDD(function() n = n + 1; if n == 2 then ssc:stop(true, false) end end)
ssc:start()
ssc:awaitTermination(10)
]])
        assert.is_true(ok, err)
        assert.matches('^%-+\nTime: %d%d%d%d%-%d%d%-%d%d %d%d:%d%d:%d%d[.%d]*\n%-+\n{"hello", 1}\n%.%.%.\n\n%-+\nTime: [^\n]*\n%-+\n\n',
            out)
    end)

    it("saves every batch, empty or not, to prefix-<ms>.suffix with _SUCCESS", function()
        local dir = helpers.tmpdir()
        local times = {}
        run({ { "a", { "b", 1 } }, {} }, function(d)
            d:saveAsTextFiles(dir .. "/out", "txt")
            d:foreachRDD(function(time, _) times[#times + 1] = time end)
            return d
        end, 3)  -- the third batch: the drained queue's RDD without partitions
        local names = helpers.glob(dir, "^out%-%d+%.txt$")
        assert.is_true(#names >= 3)
        for i = 1, 3 do
            local expected = string.format("out-%d.txt", math.floor(times[i] * 1000 + 0.5))
            assert.are.equal(expected, names[i])
            local files = helpers.list_dir(dir .. "/" .. names[i])
            assert.are.equal("_SUCCESS", files[1])
            local all = {}
            for j = 2, #files do
                assert.matches("^part%-%d%d%d%d%d$", files[j])
                for _, l in ipairs(helpers.read_lines(dir .. "/" .. names[i] .. "/" .. files[j])) do all[#all + 1] = l end
            end
            if i == 1 then assert.are.same({ "a", '{"b", 1}' }, all) else assert.are.same({}, all) end
        end
        rm(dir)
    end)

    it("saves without a suffix to prefix-<ms>", function()
        local dir = helpers.tmpdir()
        local times = {}
        run({ { 1 } }, function(d)
            d:saveAsTextFiles(dir .. "/p")
            d:foreachRDD(function(time, _) times[#times + 1] = time end)
            return d
        end, 1)
        local name = string.format("p-%d", math.floor(times[1] * 1000 + 0.5))
        assert.are.same(name, helpers.glob(dir, "^p%-")[1])
        assert.is_not_nil(helpers.read_file(dir .. "/" .. name .. "/_SUCCESS"))
        rm(dir)
    end)
end)

describe("DStream persistence and context", function()
    it("caches each batch's RDD so that two outputs compute it once", function()
        local dir = helpers.tmpdir()
        local log = dir .. "/log"
        local cached = {}
        local out = run({ { 1, 2, 3 } }, function(d)
            local m = d:map(function(x)
                local f = io.open(log, "a"); f:write(x, "\n"); f:close()
                return x
            end):cache()
            m:foreachRDD(function(rdd) cached[#cached + 1] = rdd:isCached(); rdd:count() end)
            return m
        end, 1)
        assert.are.same({ { 1, 2, 3 } }, out)
        assert.are.same({ true }, { cached[1] })
        assert.are.equal(3, #helpers.read_lines(log))
        rm(dir)
    end)

    it("computes a stream that is not cached once per output", function()
        local dir = helpers.tmpdir()
        local log = dir .. "/log"
        run({ { 1, 2, 3 } }, function(d)
            local m = d:map(function(x)
                local f = io.open(log, "a"); f:write(x, "\n"); f:close()
                return x
            end)
            m:foreachRDD(function(rdd) rdd:count() end)
            return m
        end, 1)
        assert.are.equal(6, #helpers.read_lines(log))
        rm(dir)
    end)

    it("persists the RDDs of a stream at the given storage level", function()
        local levels = helpers.run_actions({ { 1 } }, function(d)
            local p = d:map(function(x) return x end)
            assert.are.equal(p, p:persist(sh.StorageLevel.MEMORY_AND_DISK))
            return p
        end, function(rdd) return { rdd:isCached(), rdd.storageLevel == sh.StorageLevel.MEMORY_AND_DISK } end)
        assert.are.same({ { true, true } }, levels)
    end)

    it("returns its StreamingContext from context", function()
        local ssc = helpers.ssc()
        local d = ssc:queueStream({ { 1 } }):map(tostring)
        assert.are.equal(ssc, d:context())
        ssc:stop(false)
    end)
end)
