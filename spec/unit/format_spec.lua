-- spec/unit/format_spec.lua: records as Lua literals (pprint, saveAsTextFiles) and batch times.
local format = require "streamhost.format"

describe("format.literal", function()
    it("quotes strings and escapes what needs it", function()
        assert.are.equal('"hello"', format.literal("hello"))
        assert.are.equal('"a\\"b\\nc"', format.literal('a"b\nc'))
    end)

    it("prints whole numbers without a fraction and others in full precision", function()
        assert.are.equal("1", format.literal(1))
        assert.are.equal("-42", format.literal(-42.0))
        assert.are.equal("0.5", format.literal(0.5))
        assert.are.equal("0.1", format.literal(0.1))
        assert.are.equal("0.30000000000000004", format.literal(0.1 + 0.2))
        assert.are.equal("math.huge", format.literal(math.huge))
    end)

    it("prints arrays as {a, b} and nested records", function()
        assert.are.equal('{"hello", 1}', format.literal({ "hello", 1 }))
        assert.are.equal('{{"a", 1}, {true, false}}', format.literal({ { "a", 1 }, { true, false } }))
    end)

    it("prints map keys sorted, identifiers bare and others bracketed", function()
        assert.are.equal('{b = 2, c = 3, ["not id"] = 1}', format.literal({ ["not id"] = 1, c = 3, b = 2 }))
        assert.are.equal('{1, 2, x = "y"}', format.literal({ 1, 2, x = "y" }))
    end)

    it("does not loop on a table that contains itself", function()
        local t = { 1 }
        t[2] = t
        assert.are.equal("{1, {...}}", format.literal(t))
    end)
end)

describe("format.text", function()
    it("writes strings as they are and other records as literals", function()
        assert.are.equal("plain text", format.text("plain text"))
        assert.are.equal('{"k", 2}', format.text({ "k", 2 }))
    end)
end)

describe("format.time", function()
    it("prints whole seconds without a fraction and milliseconds as microseconds", function()
        local t = os.time({ year = 2026, month = 11, day = 25, hour = 10, min = 15, sec = 1 })
        assert.are.equal("2026-11-25 10:15:01", format.time(t))
        assert.are.equal("2026-11-25 10:15:01.500000", format.time(t + 0.5))
    end)
end)
