-- spec/integration/ops_spec.lua: the built-in operators (sh.ops): plain Lua functions anywhere,
-- and stages of them over text lines run in C (streamhost.kernel) with the same results, in
-- the same order, as the same stage written with Lua functions.
local sh = require "streamhost"
local helpers = require "spec.helpers"
local ops = sh.ops

-- The job's own Lua versions of the built-ins (what a ported pyspark job writes).
local function lua_words(line)
    local out = {}
    for w in line:gmatch("%S+") do out[#out + 1] = w end
    return out
end
local function lua_pair(v) return function(x) return { x, v } end end
local function lua_add(a, b) return a + b end

-- Stages run in C so far, summed over the workers: shuffles, countByValues.
local function kernel_runs(sc)
    local s, c = 0, 0
    for _, r in ipairs(helpers.on_each_worker(sc, function()
        local st = require("streamhost.kernel").stats
        return { st.shuffles, st.counts }
    end)) do
        s, c = s + r[1], c + r[2]
    end
    return s, c
end

-- Text with what splitting can get wrong: runs of spaces, tabs, \r, \v, \f, empty and
-- blank lines, UTF-8 (a no-break space is not whitespace for %s), number-like words, a long
-- line, and a last line without its newline.
local function edge_text()
    local long = {}
    for i = 1, 40000 do long[i] = (i % 7 == 0) and "w" .. (i % 13) or tostring(i % 101) end
    return table.concat({
        "a b  c", "", "   ", "\ta\tb\r", "x\vy\fz", "\194\160x y\194\160", "héllo wörld héllo",
        "1 01 1.0 1e0 -0 0", "a", table.concat(long, " "), string.rep("k", 70000), "last a",
    }, "\n")
end

describe("sh.ops", function()
    local sc, dir, path
    setup(function()
        sc = helpers.sc()
        dir = helpers.tmpdir()
        path = dir .. "/edge.txt"
        helpers.write_file(path, edge_text())
    end)
    teardown(function() os.execute("rm -rf " .. dir) end)

    it("are plain Lua functions", function()
        assert.are.same({ "a", "b", "c" }, ops.words("  a b\t\tc\r\n"))
        assert.are.same({}, ops.words(" \t "))
        assert.are.same({ "x", 3 }, ops.pair(3)("x"))
        assert.are.same({ 1, "v" }, ops.pair("v")(1))
        assert.are.equal(5, ops.add(2, 3))
        assert.are.equal(6, ops.add({ 1, 2, 3 }, nil))  -- updateStateByKey(add)
        assert.are.equal(16, ops.add({ 1, 2, 3 }, 10))
        assert.is_true(ops.pair_value(ops.pair(7)))
        assert.is_false(ops.pair_value(lua_pair(7)))
    end)

    it("count words in C with the Lua functions' results and order, for 1 to 3 partitions", function()
        -- two map tasks (a union of two files' partitions): the reduce side merges their counts
        local lines = sc:textFile(path):union(sc:textFile(path))
        assert.are.equal(2, lines:getNumPartitions())
        local s0 = kernel_runs(sc)
        for n = 1, 3 do
            local c = lines:flatMap(ops.words):map(ops.pair(1)):reduceByKey(ops.add, n):collect()
            local l = lines:flatMap(lua_words):map(lua_pair(1)):reduceByKey(lua_add, n):collect()
            assert.are.same(l, c)
            assert.is_true(#c > 100)
        end
        local s1 = kernel_runs(sc)
        assert.are.equal(6, s1 - s0)
    end)

    it("count whole lines in C, empty and blank lines included, with a non-integer value", function()
        local lines = sc:textFile(path)
        local s0 = kernel_runs(sc)
        local c = lines:map(ops.pair(2.5)):reduceByKey(ops.add, 2):collect()
        local l = lines:map(lua_pair(2.5)):reduceByKey(lua_add, 2):collect()
        assert.are.same(l, c)
        assert.are.equal(1, kernel_runs(sc) - s0)
        local got = {}
        for _, kv in ipairs(c) do got[kv[1]] = kv[2] end
        assert.are.equal(2.5, got[""])
        assert.are.equal(2.5, got["   "])
        assert.are.equal(2.5, got["last a"])
    end)

    it("keep number-like words as string keys", function()
        local got = {}
        for _, kv in ipairs(sc:textFile(path):flatMap(ops.words):map(ops.pair(1))
                              :reduceByKey(ops.add, 2):collect()) do
            assert.are.equal("string", type(kv[1]))
            got[kv[1]] = kv[2]
        end
        assert.are.equal(1, got["01"])
        assert.are.equal(1, got["1.0"])
        assert.are.equal(1, got["-0"])
        assert.are.equal(2, got["héllo"])
        assert.are.equal(1, got["\194\160x"])
        assert.are.equal(1, got[string.rep("k", 70000)])
    end)

    it("run countByValue over lines and words in C", function()
        local lines = sc:textFile(path)
        local _, c0 = kernel_runs(sc)
        assert.are.same(lines:flatMap(lua_words):countByValue(), lines:flatMap(ops.words):countByValue())
        assert.are.same(lines:map(function(x) return x end):countByValue(), lines:countByValue())
        local _, c1 = kernel_runs(sc)
        assert.are.equal(2, c1 - c0)
    end)

    it("mix with Lua functions: the rest of the chain runs in Lua", function()
        local lines = sc:textFile(path)
        local s0 = kernel_runs(sc)
        local function long(w) return #w > 1 end
        local mixed = lines:flatMap(ops.words):filter(long):map(ops.pair(1)):reduceByKey(ops.add, 2)
        local lua = lines:flatMap(lua_words):filter(long):map(lua_pair(1)):reduceByKey(lua_add, 2)
        assert.are.same(lua:collect(), mixed:collect())
        local r1 = lines:flatMap(ops.words):map(ops.pair(1)):reduceByKey(lua_add, 2):collect()
        local r2 = lines:flatMap(ops.words):map(lua_pair(1)):reduceByKey(ops.add, 2):collect()
        local r3 = lines:flatMap(lua_words):map(lua_pair(1)):reduceByKey(lua_add, 2):collect()
        assert.are.same(r3, r1)
        assert.are.same(r3, r2)
        -- a value that is not a number: Lua's + (which converts "2") decides, as without C
        local r4 = lines:flatMap(ops.words):map(ops.pair("2")):reduceByKey(ops.add, 2):collect()
        local r5 = lines:flatMap(lua_words):map(lua_pair("2")):reduceByKey(lua_add, 2):collect()
        assert.are.same(r5, r4)
        assert.are.equal(0, kernel_runs(sc) - s0)
    end)

    it("work as Lua functions over records that are not text lines", function()
        local s0 = kernel_runs(sc)
        local r = sc:parallelize({ "a b", "b c", "c" }, 2):flatMap(ops.words):map(ops.pair(1))
            :reduceByKey(ops.add, 1):collect()
        assert.are.same({ { "a", 1 }, { "b", 2 }, { "c", 2 } }, helpers.sorted(r))
        assert.are.equal(0, kernel_runs(sc) - s0)
    end)

    it("count a DStream's text in C (countByValue and reduceByKey)", function()
        local rdd = sc:textFile(path)
        local s0 = kernel_runs(sc)
        local out = helpers.run_stream({ rdd }, function(s)
            return s:flatMap(ops.words):countByValue()
        end, 1)
        local want = rdd:flatMap(lua_words):map(lua_pair(1)):reduceByKey(lua_add):collect()
        assert.are.same(helpers.sorted(want), out[1])
        assert.are.equal(1, kernel_runs(sc) - s0)
    end)

    it("sum updateStateByKey's values with sh.ops.add", function()
        local out = helpers.run_stream({ { { "a", 1 }, { "a", 2 } }, { { "a", 3 }, { "b", 1 } } },
            function(s, ssc)
                ssc.sparkContext:setCheckpointDir(helpers.tmpdir())
                return s:updateStateByKey(ops.add)
            end, 2)
        assert.are.same({ { { "a", 3 } }, { { "a", 6 }, { "b", 1 } } }, out)
    end)
end)
