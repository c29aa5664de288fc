-- spec/integration/rdd_spec.lua: the RDD API on the worker states.
local helpers = require "spec.helpers"
local sorted = helpers.sorted

describe("RDD", function()
    local sc
    setup(function() sc = helpers.sc() end)

    it("parallelizes and collects in order", function()
        assert.are.same({ 1, 2, 3, 4, 5 }, sc:parallelize({ 1, 2, 3, 4, 5 }, 3):collect())
    end)

    it("honours numSlices", function()
        assert.are.equal(3, sc:parallelize({ 1, 2, 3, 4, 5 }, 3):getNumPartitions())
        assert.are.same({ { 1 }, { 2, 3 }, { 4, 5 } }, sc:parallelize({ 1, 2, 3, 4, 5 }, 3):glom():collect())
    end)

    it("maps, filters and flatMaps in one stage", function()
        local r = sc:parallelize({ "a b", "c", "d e f" }, 2)
            :flatMap(function(l) local t = {} for w in l:gmatch("%S+") do t[#t + 1] = w end return t end)
            :map(string.upper)
            :filter(function(w) return w ~= "C" end)
        assert.are.same({ "A", "B", "D", "E", "F" }, r:collect())
    end)

    it("reduces by key across partitions", function()
        local r = sc:parallelize({ { "a", 1 }, { "b", 2 }, { "a", 3 }, { "b", 4 }, { "c", 5 } }, 3)
            :reduceByKey(function(a, b) return a + b end, 2)
        assert.are.equal(2, r:getNumPartitions())
        assert.are.same({ { "a", 4 }, { "b", 6 }, { "c", 5 } }, sorted(r:collect()))
    end)

    it("joins two RDDs", function()
        local a = sc:parallelize({ { 1, "x" }, { 2, "y" }, { 3, "z" } })
        local b = sc:parallelize({ { 1, "p" }, { 1, "q" }, { 4, "r" } })
        assert.are.same({ { 1, { "x", "p" } }, { 1, { "x", "q" } } }, sorted(a:join(b):collect()))
    end)

    it("names the script file and line of an error in a user function", function()
        local ok, err = pcall(function()
            sc:parallelize({ 1, 2, 3 }):map(function(x) if x == 2 then error("boom") end return x end):collect()
        end)
        assert.is_false(ok)
        assert.matches("rdd_spec.lua:%d+: boom", tostring(err))
    end)

    it("sorts many records into balanced consecutive ranges", function()
        local data = {}
        for i = 1, 5000 do data[i] = (i * 7919) % 5003 end
        local parts = sc:parallelize(data, 7):sortBy(nil, true, 4):glom():collect()
        assert.are.equal(4, #parts)
        local all, prev = {}, -1
        for _, part in ipairs(parts) do
            assert.is_true(#part > 500, "an unbalanced range of " .. #part)
            for _, x in ipairs(part) do
                assert.is_true(x >= prev)
                prev = x
                all[#all + 1] = x
            end
        end
        assert.are.equal(5000, #all)
    end)

    it("takes the top and the first records in order without gathering the RDD", function()
        local r = sc:parallelize({ 5, 1, 9, 3, 7, 2, 8 }, 3)
        assert.are.same({ 9, 8, 7 }, r:top(3))
        assert.are.same({ 1, 2 }, r:takeOrdered(2))
        assert.are.same({ 1, 2, 3 }, r:top(3, function(x) return -x end))
    end)
end)
