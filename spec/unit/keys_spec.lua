-- spec/unit/keys_spec.lua: key hashing and ordering, the same in every state.
local keys = require "streamhost.keys"

describe("keys.portable_hash", function()
    it("hashes equal keys equally, composite keys by content", function()
        assert.are.equal(keys.portable_hash("word"), keys.portable_hash("wo" .. "rd"))
        assert.are.equal(keys.portable_hash({ "a", 1 }), keys.portable_hash({ "a", 1 }))
        assert.are.equal(keys.portable_hash(0), keys.portable_hash(-0))
    end)

    it("tells keys of different types and contents apart", function()
        assert.are_not.equal(keys.portable_hash(1), keys.portable_hash("1"))
        assert.are_not.equal(keys.portable_hash({ "a", 1 }), keys.portable_hash({ 1, "a" }))
        assert.are_not.equal(keys.portable_hash(true), keys.portable_hash(false))
    end)

    it("spreads many keys over the partitions", function()
        local counts = { 0, 0, 0, 0 }
        for i = 1, 4000 do
            local p = keys.partition("key" .. i, 4) + 1
            counts[p] = counts[p] + 1
        end
        for p = 1, 4 do assert.is_true(counts[p] > 800, "partition " .. p .. " got " .. counts[p]) end
    end)

    it("refuses keys it cannot hash, naming the type", function()
        assert.has_error(function() keys.portable_hash(function() end) end,
            "cannot hash a key of type function (keys are strings, numbers, booleans or arrays of those)")
    end)
end)

describe("keys.less", function()
    it("orders numbers before strings before booleans before arrays", function()
        local t = { { 1 }, true, "b", 2, "a", 1, false }
        table.sort(t, keys.less)
        assert.are.same({ 1, 2, "a", "b", false, true, { 1 } }, t)
    end)

    it("orders arrays element by element, shorter first on a tie", function()
        assert.is_true(keys.less({ "a", 1 }, { "a", 2 }))
        assert.is_true(keys.less({ "a" }, { "a", 1 }))
        assert.is_false(keys.less({ "b" }, { "a", 1 }))
    end)
end)
