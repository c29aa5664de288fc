-- spec/integration/rdd_api_spec.lua: every operation of the RDD API (shared/API.md), checked
-- batch by batch on the RDDs a queueStream hands to transform and foreachRDD, as pyspark's
-- streaming tests check theirs.
local helpers = require "spec.helpers"
local sorted = helpers.sorted

local function add(a, b) return a + b end

-- The records of each batch of input after rdd -> f(rdd) (a transform), sorted unless
-- opts.sort is false.
local function per_batch(input, f, opts)
    return helpers.run_stream(input, function(d) return d:transform(f) end, #input, opts)
end

-- action(rdd) of each batch of input, called in foreachRDD.
local function actions(input, action, nbatches)
    return helpers.run_actions(input, function(d) return d end, action, nbatches)
end

-- {ok, value or error text} of f(rdd), so that an error of an action is a result of its batch.
local function try(f)
    return function(rdd)
        local ok, v = pcall(f, rdd)
        return { ok, ok and v or tostring(v) }
    end
end

local function count_lines(path)
    local lines = helpers.read_lines(path)
    return lines and #lines or 0
end

describe("RDD narrow transformations", function()
    local sc
    setup(function() sc = helpers.sc() end)

    it("maps every record in order, batch by batch", function()
        local out = per_batch({ { 1, 2, 3 }, { 4, 5 } },
            function(rdd) return rdd:map(function(x) return x * 10 end) end, { sort = false })
        assert.are.same({ { 10, 20, 30 }, { 40, 50 } }, out)
    end)

    it("flatMaps a function that returns an array", function()
        local out = per_batch({ { "a b", "c" }, { "d e" } }, function(rdd)
            return rdd:flatMap(function(l)
                local t = {}
                for w in l:gmatch("%S+") do t[#t + 1] = w end
                return t
            end)
        end, { sort = false })
        assert.are.same({ { "a", "b", "c" }, { "d", "e" } }, out)
    end)

    it("flatMaps a function that returns an iterator", function()
        local out = per_batch({ { 1, 2 }, { 3 } }, function(rdd)
            return rdd:flatMap(function(x)
                local i = 0
                return function()
                    i = i + 1
                    if i <= x then return x end
                end
            end)
        end, { sort = false })
        assert.are.same({ { 1, 2, 2 }, { 3, 3, 3 } }, out)
    end)

    it("filters records with a predicate", function()
        local out = per_batch({ { 1, 2, 3, 4 }, { 5, 7 } },
            function(rdd) return rdd:filter(function(x) return x % 2 == 0 end) end, { sort = false })
        assert.are.same({ { 2, 4 }, {} }, out)
    end)

    it("maps partitions through an iterator and an array result", function()
        local input = { sc:parallelize({ 1, 2, 3, 4 }, 2), sc:parallelize({ 5, 6, 7 }, 2) }
        local out = per_batch(input, function(rdd)
            return rdd:mapPartitions(function(it)
                local s = 0
                for x in it do s = s + x end
                return { s }
            end)
        end, { sort = false })
        assert.are.same({ { 3, 7 }, { 5, 13 } }, out)
    end)

    it("maps partitions to an iterator result", function()
        local input = { sc:parallelize({ 1, 2, 3, 4 }, 2) }
        local out = per_batch(input, function(rdd)
            return rdd:mapPartitions(function(it)
                return function()
                    local x = it()
                    return x and x * x
                end
            end)
        end, { sort = false })
        assert.are.same({ { 1, 4, 9, 16 } }, out)
    end)

    it("maps partitions with their 0-based index", function()
        local input = { sc:parallelize({ 1, 2, 3, 4 }, 2), sc:parallelize({ 5, 6, 7 }, 3) }
        local out = per_batch(input, function(rdd)
            return rdd:mapPartitionsWithIndex(function(i, it)
                local t = {}
                for x in it do t[#t + 1] = { i, x } end
                return t
            end)
        end, { sort = false })
        assert.are.same({ { { 0, 1 }, { 0, 2 }, { 1, 3 }, { 1, 4 } },
                          { { 0, 5 }, { 1, 6 }, { 2, 7 } } }, out)
    end)

    it("maps values and keeps keys", function()
        local out = per_batch({ { { "a", 1 }, { "b", 2 } }, { { "a", 5 } } },
            function(rdd) return rdd:mapValues(function(v) return v + 1 end) end)
        assert.are.same({ { { "a", 2 }, { "b", 3 } }, { { "a", 6 } } }, out)
    end)

    it("flatMaps values into one record per value", function()
        local out = per_batch({ { { "a", { 1, 2 } }, { "b", {} } }, { { "c", { 3 } } } },
            function(rdd) return rdd:flatMapValues(function(v) return v end) end)
        assert.are.same({ { { "a", 1 }, { "a", 2 } }, { { "c", 3 } } }, out)
    end)

    it("flatMaps values returned as an iterator", function()
        local out = per_batch({ { { "a", 2 } } }, function(rdd)
            return rdd:flatMapValues(function(n)
                local i = 0
                return function() i = i + 1; if i <= n then return i end end
            end)
        end)
        assert.are.same({ { { "a", 1 }, { "a", 2 } } }, out)
    end)

    it("takes the keys of pairs", function()
        local out = per_batch({ { { "a", 1 }, { "b", 2 } }, { { "c", 3 } } },
            function(rdd) return rdd:keys() end, { sort = false })
        assert.are.same({ { "a", "b" }, { "c" } }, out)
    end)

    it("takes the values of pairs", function()
        local out = per_batch({ { { "a", 1 }, { "b", 2 } }, { { "c", 3 } } },
            function(rdd) return rdd:values() end, { sort = false })
        assert.are.same({ { 1, 2 }, { 3 } }, out)
    end)

    it("gloms each partition into an array", function()
        local input = { sc:parallelize({ 1, 2, 3, 4 }, 2), sc:parallelize({ 5 }, 2) }
        local out = per_batch(input, function(rdd) return rdd:glom() end, { sort = false })
        assert.are.same({ { { 1, 2 }, { 3, 4 } }, { {}, { 5 } } }, out)
    end)

    it("unions two RDDs with all their partitions", function()
        local out = actions({ { 1, 2 }, { 3 } }, function(rdd)
            local u = rdd:union(rdd:map(function(x) return -x end))
            return { u:getNumPartitions(), sorted(u:collect()) }
        end)
        assert.are.same({ { 4, { -2, -1, 1, 2 } }, { 4, { -3, 3 } } }, out)
    end)

    it("coalesces neighbouring partitions without a shuffle", function()
        local input = { sc:parallelize({ 1, 2, 3, 4, 5, 6, 7, 8 }, 4) }
        local out = per_batch(input, function(rdd) return rdd:coalesce(2):glom() end, { sort = false })
        assert.are.same({ { { 1, 2, 3, 4 }, { 5, 6, 7, 8 } } }, out)
    end)

    it("does not raise the number of partitions when coalescing without a shuffle", function()
        local out = actions({ sc:parallelize({ 1, 2, 3 }, 3) },
            function(rdd) return rdd:coalesce(10):getNumPartitions() end)
        assert.are.same({ 3 }, out)
    end)

    it("coalesces with a shuffle into the requested number of partitions", function()
        local out = actions({ sc:parallelize({ 1, 2, 3, 4 }, 2) }, function(rdd)
            local c = rdd:coalesce(3, true)
            return { c:getNumPartitions(), sorted(c:collect()) }
        end)
        assert.are.same({ { 3, { 1, 2, 3, 4 } } }, out)
    end)
end)

describe("RDD shuffles", function()
    local sc
    setup(function() sc = helpers.sc() end)

    it("removes duplicates with distinct", function()
        local out = per_batch({ { 1, 2, 1, 3, 2 }, { "a", "a", "b" } },
            function(rdd) return rdd:distinct() end)
        assert.are.same({ { 1, 2, 3 }, { "a", "b" } }, out)
    end)

    it("reduces values by key within each batch", function()
        local out = per_batch({ { { "a", 1 }, { "b", 2 }, { "a", 3 } }, { { "a", 10 } } },
            function(rdd) return rdd:reduceByKey(add) end)
        assert.are.same({ { { "a", 4 }, { "b", 2 } }, { { "a", 10 } } }, out)
    end)

    it("honours numPartitions of reduceByKey", function()
        local out = actions({ { { "a", 1 }, { "b", 2 } } },
            function(rdd) return rdd:reduceByKey(add, 5):getNumPartitions() end)
        assert.are.same({ 5 }, out)
    end)

    it("groups values by key", function()
        local out = per_batch({ { { "a", 1 }, { "b", 2 }, { "a", 3 } }, { { "c", 1 } } }, function(rdd)
            return rdd:groupByKey():mapValues(function(vs) table.sort(vs); return vs end)
        end)
        assert.are.same({ { { "a", { 1, 3 } }, { "b", { 2 } } }, { { "c", { 1 } } } }, out)
    end)

    it("combines values by key with three functions", function()
        local out = per_batch({ { { "a", 1 }, { "b", 2 }, { "a", 3 }, { "a", 5 } } }, function(rdd)
            return rdd:combineByKey(
                function(v) return { v, 1 } end,
                function(c, v) return { c[1] + v, c[2] + 1 } end,
                function(c1, c2) return { c1[1] + c2[1], c1[2] + c2[2] } end)
        end)
        assert.are.same({ { { "a", { 9, 3 } }, { "b", { 2, 1 } } } }, out)
    end)

    it("folds values by key from a zero value", function()
        local out = per_batch({ { { "a", 1 }, { "b", 2 }, { "a", 3 } } },
            function(rdd) return rdd:foldByKey(0, add) end)
        assert.are.same({ { { "a", 4 }, { "b", 2 } } }, out)
    end)

    it("starts every key of foldByKey from its own copy of a table zero value", function()
        local input = { sc:parallelize({ { "a", 1 }, { "b", 2 }, { "a", 3 } }, 1) }
        local out = per_batch(input, function(rdd)
            return rdd:foldByKey({}, function(acc, v)
                if type(v) == "table" then
                    for _, x in ipairs(v) do acc[#acc + 1] = x end
                else
                    acc[#acc + 1] = v
                end
                return acc
            end)
        end)
        assert.are.same({ { { "a", { 1, 3 } }, { "b", { 2 } } } }, out)
    end)

    it("counts values into a table with countByValue", function()
        local out = actions({ { "a", "b", "a" }, { 1, "1", 1 }, {} },
            function(rdd) return rdd:countByValue() end)
        assert.are.same({ { a = 2, b = 1 }, { [1] = 2, ["1"] = 1 }, {} }, out)
    end)

    it("joins two RDDs on their keys", function()
        local out = per_batch({ { { "a", 1 }, { "b", 2 }, { "b", 3 } } }, function(rdd)
            return rdd:join(sc:parallelize({ { "b", "x" }, { "c", "y" }, { "b", "z" } }))
        end)
        assert.are.same({ { { "b", { 2, "x" } }, { "b", { 2, "z" } }, { "b", { 3, "x" } }, { "b", { 3, "z" } } } }, out)
    end)

    it("left-outer-joins with nil for a missing right value", function()
        local out = per_batch({ { { "a", 1 }, { "b", 2 } } }, function(rdd)
            return rdd:leftOuterJoin(sc:parallelize({ { "b", "x" }, { "c", "y" } }))
        end)
        assert.are.same({ { { "a", { 1, nil } }, { "b", { 2, "x" } } } }, out)
    end)

    it("right-outer-joins with nil for a missing left value", function()
        local out = per_batch({ { { "a", 1 }, { "b", 2 } } }, function(rdd)
            return rdd:rightOuterJoin(sc:parallelize({ { "b", "x" }, { "c", "y" } }))
        end)
        assert.are.same({ { { "b", { 2, "x" } }, { "c", { nil, "y" } } } }, out)
    end)

    it("full-outer-joins keeping keys of both sides", function()
        local out = per_batch({ { { "a", 1 }, { "b", 2 } } }, function(rdd)
            return rdd:fullOuterJoin(sc:parallelize({ { "b", "x" }, { "c", "y" } }))
        end)
        assert.are.same({ { { "a", { 1, nil } }, { "b", { 2, "x" } }, { "c", { nil, "y" } } } }, out)
    end)

    it("cogroups two RDDs into arrays of values per side", function()
        local out = per_batch({ { { "a", 1 }, { "b", 2 }, { "a", 3 } } }, function(rdd)
            return rdd:cogroup(sc:parallelize({ { "b", "x" }, { "c", "y" } }))
                :mapValues(function(g) table.sort(g[1]); return g end)
        end)
        assert.are.same({ { { "a", { { 1, 3 }, {} } }, { "b", { { 2 }, { "x" } } }, { "c", { {}, { "y" } } } } }, out)
    end)

    it("honours numPartitions of partitionBy", function()
        local out = actions({ { { "a", 1 }, { "b", 2 }, { "c", 3 } } },
            function(rdd) return rdd:partitionBy(3):getNumPartitions() end)
        assert.are.same({ 3 }, out)
    end)

    it("puts equal keys in one partition whichever partition they came from", function()
        local recs = {}
        for i = 1, 60 do recs[i] = { "k" .. (i % 7), i } end
        local out = actions({ sc:parallelize(recs, 4) }, function(rdd)
            return rdd:partitionBy(3):glom():collect()
        end)
        local where, total = {}, 0
        for p, part in ipairs(out[1]) do
            for _, kv in ipairs(part) do
                assert.are.equal(where[kv[1]] or p, p)
                where[kv[1]] = p
                total = total + 1
            end
        end
        assert.are.equal(60, total)
    end)

    it("places keys with a custom partitionFunc", function()
        local input = { sc:parallelize({ { 1, "a" }, { 2, "b" }, { 3, "c" }, { 4, "d" }, { 5, "e" } }, 2) }
        local out = per_batch(input, function(rdd)
            return rdd:partitionBy(3, function(k) return k * 2 end):glom()
                :map(function(p) table.sort(p, function(x, y) return x[1] < y[1] end); return p end)
        end, { sort = false })
        -- k*2 % 3: 1 -> 2, 2 -> 1, 3 -> 0, 4 -> 2, 5 -> 1
        assert.are.same({ { { { 3, "c" } }, { { 2, "b" }, { 5, "e" } }, { { 1, "a" }, { 4, "d" } } } }, out)
    end)

    it("repartitions into numPartitions keeping every record", function()
        local out = actions({ sc:parallelize({ 1, 2, 3, 4, 5, 6, 7, 8 }, 2) }, function(rdd)
            local r = rdd:repartition(4)
            local sizes = {}
            for i, p in ipairs(r:glom():collect()) do sizes[i] = #p end
            return { r:getNumPartitions(), sorted(r:collect()), sizes }
        end)
        assert.are.same({ { 4, { 1, 2, 3, 4, 5, 6, 7, 8 }, { 2, 2, 2, 2 } } }, out)
    end)

    it("sorts by a key function, ascending by default", function()
        local out = per_batch({ { "ccc", "a", "bb" }, { "zz", "y" } },
            function(rdd) return rdd:sortBy(function(s) return #s end) end, { sort = false })
        assert.are.same({ { "a", "bb", "ccc" }, { "y", "zz" } }, out)
    end)

    it("sorts descending into numPartitions consecutive ranges", function()
        local out = per_batch({ { 5, 3, 9, 1, 7, 2 } },
            function(rdd) return rdd:sortBy(function(x) return x end, false, 3):glom() end, { sort = false })
        assert.are.same({ { { 9, 7 }, { 5, 3 }, { 2, 1 } } }, out)
    end)

    it("sorts pairs by key ascending", function()
        local out = per_batch({ { { "b", 1 }, { "c", 2 }, { "a", 3 } } },
            function(rdd) return rdd:sortByKey() end, { sort = false })
        assert.are.same({ { { "a", 3 }, { "b", 1 }, { "c", 2 } } }, out)
    end)

    it("sorts pairs by key descending", function()
        local out = per_batch({ { { "b", 1 }, { "c", 2 }, { "a", 3 } } },
            function(rdd) return rdd:sortByKey(false) end, { sort = false })
        assert.are.same({ { { "c", 2 }, { "b", 1 }, { "a", 3 } } }, out)
    end)
end)

describe("RDD keys", function()
    local sc
    setup(function() sc = helpers.sc() end)

    it("reduces composite array keys by their contents", function()
        local input = { sc:parallelize({ { { "a", 1 }, 5 }, { { "a", 2 }, 1 }, { { "a", 1 }, 6 }, { { "a", 1 }, 1 } }, 4) }
        local out = per_batch(input, function(rdd) return rdd:reduceByKey(add, 3) end)
        assert.are.same({ { { { "a", 1 }, 12 }, { { "a", 2 }, 1 } } }, out)
    end)

    it("joins on composite keys", function()
        local out = per_batch({ { { { "x", 1 }, "l" }, { { "x", 2 }, "m" } } }, function(rdd)
            return rdd:join(sc:parallelize({ { { "x", 1 }, "r" } }))
        end)
        assert.are.same({ { { { "x", 1 }, { "l", "r" } } } }, out)
    end)

    it("treats equal composite keys as one key however their arrays were built", function()
        local input = { sc:parallelize({ 1, 2, 3, 4 }, 1) }
        local out = per_batch(input, function(rdd)
            return rdd:map(function(x)
                if x % 2 == 0 then return { { [1] = "a", [2] = 1 }, x } end
                return { { "a", 1 }, x }
            end):reduceByKey(add, 2)
        end)
        assert.are.same({ { { { "a", 1 }, 10 } } }, out)
    end)

    it("treats 0 and -0 as one key, alone or inside a composite key", function()
        local negz = -1 * 0
        local input = { sc:parallelize({ { 0, 1 }, { negz, 1 }, { { "z", 0 }, 1 }, { { "z", negz }, 1 } }, 1) }
        local out = per_batch(input, function(rdd) return rdd:reduceByKey(add, 3) end)
        assert.are.same({ { { 0, 2 }, { { "z", 0 }, 2 } } }, out)
    end)

    it("groups boolean keys", function()
        local out = per_batch({ { { true, 1 }, { false, 2 }, { true, 3 } } },
            function(rdd) return rdd:reduceByKey(add) end)
        assert.are.same({ { { false, 2 }, { true, 4 } } }, out)
    end)

    it("keeps the number 1 and the string \"1\" apart as keys", function()
        local input = { sc:parallelize({ { 1, 1 }, { "1", 10 }, { 1, 2 }, { "1", 20 } }, 3) }
        local out = per_batch(input, function(rdd) return rdd:reduceByKey(add) end)
        assert.are.same({ { { 1, 3 }, { "1", 30 } } }, out)
    end)

    it("keeps distinct number and string values apart", function()
        local out = per_batch({ { 1, "1", 1, "1", 2 } }, function(rdd) return rdd:distinct() end)
        assert.are.same({ { 1, 2, "1" } }, out)
    end)

    it("combines on the map side correctly over many partitions", function()
        local recs, expected = {}, {}
        for i = 1, 2000 do
            local k = "k" .. (i % 13)
            recs[i] = { k, i }
            expected[k] = (expected[k] or 0) + i
        end
        local want = {}
        for k, v in pairs(expected) do want[#want + 1] = { k, v } end
        local out = per_batch({ sc:parallelize(recs, 16) }, function(rdd) return rdd:reduceByKey(add, 3) end)
        assert.are.same({ sorted(want) }, out)
    end)

    it("merges combiners of a key from every map partition", function()
        local recs = {}
        for i = 1, 300 do recs[i] = { i % 5, i } end
        local out = per_batch({ sc:parallelize(recs, 12) }, function(rdd)
            return rdd:combineByKey(
                function(v) return { v } end,
                function(c, v) c[#c + 1] = v; return c end,
                function(a, b) for _, v in ipairs(b) do a[#a + 1] = v end; return a end, 4)
                :mapValues(function(c) return #c end)
        end)
        assert.are.same({ { { 0, 60 }, { 1, 60 }, { 2, 60 }, { 3, 60 }, { 4, 60 } } }, out)
    end)
end)

describe("RDD caching", function()
    local sc
    setup(function() sc = helpers.sc() end)

    it("computes a cached RDD once for several actions", function()
        local dir = helpers.tmpdir()
        local log = dir .. "/log"
        local out = actions({ { 1, 2, 3 } }, function(rdd)
            local m = rdd:map(function(x)
                local f = io.open(log, "a"); f:write(x, "\n"); f:close()
                return x * 2
            end):cache()
            return { m:isCached(), sorted(m:collect()), m:count(), sorted(m:collect()) }
        end)
        assert.are.same({ { true, { 2, 4, 6 }, 3, { 2, 4, 6 } } }, out)
        assert.are.equal(3, count_lines(log))
        os.execute("rm -rf '" .. dir .. "'")
    end)

    it("recomputes an RDD that is not cached for every action", function()
        local dir = helpers.tmpdir()
        local log = dir .. "/log"
        actions({ { 1, 2, 3 } }, function(rdd)
            local m = rdd:map(function(x)
                local f = io.open(log, "a"); f:write(x, "\n"); f:close()
                return x
            end)
            m:collect(); m:count()
        end)
        assert.are.equal(6, count_lines(log))
        os.execute("rm -rf '" .. dir .. "'")
    end)

    it("persists with a storage level and gives equal results", function()
        local sh = require "streamhost"
        local out = actions({ { 3, 1, 2 } }, function(rdd)
            local p = rdd:map(function(x) return x + 1 end):persist(sh.StorageLevel.MEMORY_AND_DISK)
            return { p:isCached(), p:collect(), p:collect() }
        end)
        assert.are.same({ { true, { 4, 2, 3 }, { 4, 2, 3 } } }, out)
    end)

    it("recomputes after unpersist", function()
        local dir = helpers.tmpdir()
        local log = dir .. "/log"
        local out = actions({ { 1, 2 } }, function(rdd)
            local m = rdd:map(function(x)
                local f = io.open(log, "a"); f:write(x, "\n"); f:close()
                return x
            end):cache()
            m:count()
            m:unpersist()
            local cached = m:isCached()
            m:count()
            return cached
        end)
        assert.are.same({ false }, out)
        assert.are.equal(4, count_lines(log))
        os.execute("rm -rf '" .. dir .. "'")
    end)
end)

describe("RDD actions", function()
    local sc
    setup(function() sc = helpers.sc() end)

    it("collects every batch in partition order", function()
        local out = actions({ { 3, 1, 2 }, {} }, function(rdd) return rdd:collect() end)
        assert.are.same({ { 3, 1, 2 }, {} }, out)
    end)

    it("counts the records of every batch, empty ones included", function()
        local out = actions({ { 1, 2, 3 }, {} }, function(rdd) return rdd:count() end, 3)
        assert.are.same({ 3, 0, 0 }, out)
    end)

    it("returns the first record", function()
        local out = actions({ sc:parallelize({ 7, 8, 9 }, 3), { 1 } }, function(rdd) return rdd:first() end)
        assert.are.same({ 7, 1 }, out)
    end)

    it("raises on first of an empty RDD", function()
        local out = actions({ {} }, try(function(rdd) return rdd:first() end))
        assert.is_false(out[1][1])
        assert.matches("RDD is empty", out[1][2])
    end)

    it("takes records across partitions", function()
        local out = actions({ sc:parallelize({ 1, 2, 3, 4, 5 }, 5), { 1 }, {} },
            function(rdd) return rdd:take(3) end)
        assert.are.same({ { 1, 2, 3 }, { 1 }, {} }, out)
    end)

    it("returns the largest records with top, largest first", function()
        local out = actions({ { 4, 9, 1, 7, 3 } }, function(rdd) return rdd:top(3) end)
        assert.are.same({ { 9, 7, 4 } }, out)
    end)

    it("orders top by a key function", function()
        local out = actions({ { { "a", 3 }, { "b", 1 }, { "c", 2 } } },
            function(rdd) return rdd:top(2, function(kv) return -kv[2] end) end)
        assert.are.same({ { { "b", 1 }, { "c", 2 } } }, out)
    end)

    it("reduces all records of a batch", function()
        local out = actions({ { 1, 2, 3, 4 }, { 5 } }, function(rdd) return rdd:reduce(add) end)
        assert.are.same({ 10, 5 }, out)
    end)

    it("raises \"Can not reduce() empty RDD\" on an empty RDD", function()
        local out = actions({ {} }, try(function(rdd) return rdd:reduce(add) end), 2)
        assert.is_false(out[1][1])
        assert.matches("Can not reduce() empty RDD", out[1][2], 1, true)
        assert.is_false(out[2][1])  -- the queue's empty default RDD, no partitions at all
        assert.matches("Can not reduce() empty RDD", out[2][2], 1, true)
    end)

    it("folds with the zero value once per partition and once more", function()
        local out = actions({ sc:parallelize({ 1, 2, 3 }, 2), {} },
            function(rdd) return rdd:fold(10, add) end)
        assert.are.same({ 10 + 11 + 15, 30 }, out)
    end)

    it("runs foreach on every record in the workers", function()
        local dir = helpers.tmpdir()
        actions({ { "a", "b", "c" } }, function(rdd)
            rdd:foreach(function(x)
                local f = io.open(dir .. "/" .. x, "w"); f:write(x); f:close()
            end)
        end)
        assert.are.same({ "a", "b", "c" }, helpers.list_dir(dir))
        os.execute("rm -rf '" .. dir .. "'")
    end)

    it("runs foreachPartition with an iterator over each partition", function()
        local dir = helpers.tmpdir()
        actions({ sc:parallelize({ 1, 2, 3, 4, 5 }, 2) }, function(rdd)
            rdd:foreachPartition(function(it)
                local t = {}
                for x in it do t[#t + 1] = x end
                local f = io.open(dir .. "/p" .. t[1], "w"); f:write(table.concat(t, ",")); f:close()
            end)
        end)
        assert.are.same({ "p1", "p3" }, helpers.list_dir(dir))
        assert.are.equal("1,2", helpers.read_file(dir .. "/p1"))
        assert.are.equal("3,4,5", helpers.read_file(dir .. "/p3"))
        os.execute("rm -rf '" .. dir .. "'")
    end)

    it("tells whether an RDD is empty", function()
        local out = actions({ { 1 }, {}, sc:parallelize({ 1 }, 4) }, function(rdd) return rdd:isEmpty() end, 4)
        assert.are.same({ false, true, false, true }, out)
    end)

    it("reports the number of partitions", function()
        local out = actions({ sc:parallelize({ 1, 2, 3 }, 3), { 1, 2 } },
            function(rdd) return rdd:getNumPartitions() end)
        assert.are.same({ 3, sc.defaultParallelism }, out)
    end)

    it("saves each partition as a text file with a _SUCCESS marker", function()
        local dir = helpers.tmpdir()
        actions({ sc:parallelize({ "x", { "a", 1 }, 2 }, 2) }, function(rdd)
            rdd:saveAsTextFile(dir .. "/out")
        end)
        assert.are.same({ "_SUCCESS", "part-00000", "part-00001" }, helpers.list_dir(dir .. "/out"))
        assert.are.equal("x\n", helpers.read_file(dir .. "/out/part-00000"))
        assert.are.equal('{"a", 1}\n2\n', helpers.read_file(dir .. "/out/part-00001"))
        os.execute("rm -rf '" .. dir .. "'")
    end)

    it("refuses to save into an existing directory", function()
        local dir = helpers.tmpdir()
        local out = actions({ { 1 } }, try(function(rdd) return rdd:saveAsTextFile(dir) end))
        assert.is_false(out[1][1])
        assert.matches("Output directory " .. dir .. " already exists", out[1][2], 1, true)
        os.execute("rm -rf '" .. dir .. "'")
    end)
end)

describe("RDD empty", function()
    local sc
    setup(function() sc = helpers.sc() end)

    it("gives empty results for transformations of an empty batch", function()
        local out = actions({ {} }, function(rdd)
            local kv = rdd:map(function(x) return { x, 1 } end)
            return { kv:reduceByKey(add):collect(), kv:groupByKey():collect(), kv:join(kv):collect(),
                     rdd:distinct():collect(), rdd:sortBy(function(x) return x end):collect(),
                     rdd:count(), rdd:take(2), rdd:countByValue() }
        end, 2)
        assert.are.same({ { {}, {}, {}, {}, {}, 0, {}, {} }, { {}, {}, {}, {}, {}, 0, {}, {} } }, out)
    end)

    it("collects nothing from sc:emptyRDD", function()
        local e = sc:emptyRDD()
        assert.are.same({}, e:collect())
        assert.are.equal(0, e:count())
        assert.is_true(e:isEmpty())
    end)
end)

describe("RDD errors", function()
    local sc
    setup(function() sc = helpers.sc() end)

    it("raises when a flatMap function returns neither an array nor an iterator", function()
        local ok, err = pcall(function()
            return sc:parallelize({ 1 }):flatMap(function(x) return x end):collect()
        end)
        assert.is_false(ok)
        assert.matches("the flatMap function must return an array or an iterator function, got number",
            tostring(err), 1, true)
    end)

    it("raises when reduceByKey gets records that are not pairs", function()
        local ok, err = pcall(function()
            return sc:parallelize({ "a", "b" }):reduceByKey(add):collect()
        end)
        assert.is_false(ok)
        assert.matches('reduceByKey needs {key, value} records; its input held a string ("', tostring(err), 1, true)
    end)

    it("refuses a transformation that is not given a function", function()
        local ok, err = pcall(function()
            local r = sc:parallelize({ 1 }):map(42)
            return r
        end)
        assert.is_false(ok)
        assert.matches("map expects a function, got number", err, 1, true)
    end)

    it("refuses a numPartitions that is not a positive integer", function()
        local ok, err = pcall(function()
            local r = sc:parallelize({ { 1, 1 } }):reduceByKey(add, 0)
            return r
        end)
        assert.is_false(ok)
        assert.matches("numPartitions must be a positive integer, got 0", err, 1, true)
    end)
end)
