-- spec/integration/correctness_spec.lua: behaviour a new user found wrong: nil values and nil
-- records (pyspark's None), and the fixes that came with them.
local helpers = require "spec.helpers"
local sorted = helpers.sorted

local function show(x) return tostring(x) end
local function join2(x, y) return show(x) .. "+" .. show(y) end

describe("reduceByKey, combineByKey and foldByKey with nil values", function()
    local sc
    setup(function() sc = helpers.sc() end)

    it("give one record per key when a key's first value is nil", function()
        local r = sc:parallelize({ { "a", nil }, { "a", 1 }, { "a", 2 }, { "b", 7 } }, 1)
            :reduceByKey(function(x, y) return (x or 0) + (y or 0) end, 1)
        assert.are.same({ { "a", 3 }, { "b", 7 } }, sorted(r:collect()))
    end)

    it("give one record per key when the reducer returns nil part-way, and go on from nil", function()
        local function capped(x, y)
            if x == nil then return y end
            if x + y > 2 then return nil end
            return x + y
        end
        local r = sc:parallelize({ { "a", 1 }, { "a", 2 }, { "a", 3 } }, 1):reduceByKey(capped, 1)
        -- pyspark: capped(capped(1, 2), 3) = capped(None, 3) = 3
        assert.are.same({ { "a", 3 } }, r:collect())
    end)

    it("keep a key whose value stays nil, as {key, nil}", function()
        local r = sc:parallelize({ { "a", nil }, { "a", nil }, { "b", 1 } }, 2)
            :reduceByKey(function() return nil end, 1)
        local out = sorted(r:collect())
        assert.are.equal(2, r:count())
        assert.are.equal(2, #out)
        assert.are.equal("a", out[1][1])
        assert.is_nil(out[1][2])
        assert.are.same({ "b", 1 }, out[2])
    end)

    it("hand a nil value from the map side to the reduce side's merge", function()
        -- Two map tasks: the first holds only the nil value of "a", the second a 5.
        local r = sc:parallelize({ { "a", nil }, { "a", 5 } }, 2):reduceByKey(join2, 1)
        assert.are.same({ { "a", "nil+5" } }, r:collect())
    end)

    it("treat composite keys the same way", function()
        local r = sc:parallelize({ { { "k", 1 }, nil }, { { "k", 1 }, 1 }, { { "k", 1 }, 2 } }, 1)
            :reduceByKey(function(x, y) return (x or 0) + (y or 0) end, 1)
        assert.are.same({ { { "k", 1 }, 3 } }, r:collect())
        local nils = sc:parallelize({ { { "k", 1 }, nil }, { { "k", 1 }, 5 } }, 2):reduceByKey(join2, 1)
        assert.are.same({ { { "k", 1 }, "nil+5" } }, nils:collect())
    end)

    it("call combineByKey's functions once per key when createCombiner returns nil", function()
        local r = sc:parallelize({ { "a", 1 }, { "a", 2 }, { "b", 3 } }, 1):combineByKey(
            function() return nil end,
            function(c, v) return show(c) .. "," .. v end,
            join2, 1)
        assert.are.same({ { "a", "nil,2" }, { "b" } }, sorted(r:collect()))
    end)

    it("fold a nil zero value and nil values by key once per key", function()
        local r = sc:parallelize({ { "a", nil }, { "a", 1 }, { "a", 2 } }, 1)
            :foldByKey(nil, function(acc, v) if acc == nil then return v end return acc + v end, 1)
        assert.are.same({ { "a", 3 } }, r:collect())
    end)
end)
