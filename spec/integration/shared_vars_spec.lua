-- spec/integration/shared_vars_spec.lua: what a job shares with its tasks besides closures:
-- lazy values (sh.lazy, an extension), broadcast variables and accumulators (shared/API.md).
local helpers = require "spec.helpers"
local sh = require "streamhost"
local ship = require "streamhost.ship"
local scheduler = require "streamhost.scheduler"

-- The line of the statement after the call (where a test defines the function it ships).
local function next_line()
    return debug.getinfo(2, "l").currentline + 1
end

local on_each_worker = helpers.on_each_worker

local function worker_stats(sc)
    return on_each_worker(sc, function() return require("streamhost.shared").stats() end)
end

-- Collects until the registry stops shrinking (an entry goes a few collections after the last
-- object that referred to it); returns its live count.
local function settle()
    local live = -1
    for _ = 1, 20 do
        collectgarbage()
        collectgarbage()
        local now = ship.registry_stats().live
        if now == live then break end
        live = now
    end
    return live
end

local function range(n)
    local t = {}
    for i = 1, n do t[i] = i end
    return t
end

describe("sh.lazy", function()
    local sc
    setup(function() sc = helpers.sc() end)

    it("builds an lpeg pattern once per worker and reads it as .value in tasks", function()
        local lpeg = require "lpeg"
        local word = sh.lazy(function() return lpeg.C(lpeg.R("az") ^ 1) end)
        local rdd = sc:parallelize({ "abc123", "xy-z", "k", "q9" }, 4)
            :map(function(s) return lpeg.match(word.value, s) end)
        local before = worker_stats(sc)
        for _ = 1, 5 do assert.are.same({ "abc", "xy", "k", "q" }, rdd:collect()) end
        local after, builds = worker_stats(sc), 0
        for w = 1, #after do
            local n = after[w].lazy_builds - before[w].lazy_builds
            assert.is_true(n <= 1, "worker " .. w .. " built the value " .. n .. " times")
            builds = builds + n
        end
        assert.is_true(builds >= 1)
    end)

    it("ships the builder with its upvalues", function()
        local lpeg = require "lpeg"
        local from, to = "0", "9"
        local digits = sh.lazy(function() return lpeg.C(lpeg.R(from .. to) ^ 1) end)
        local out = helpers.run_stream({ { "a12", "7b" } }, function(d)
            return d:map(function(s) return lpeg.match((lpeg.P(1) - lpeg.R("09")) ^ 0 * digits.value, s) end)
        end, 1)
        assert.are.same({ { "12", "7" } }, out)
    end)

    it("builds the value in the driver too, once", function()
        local n = 0
        local v = sh.lazy(function() n = n + 1; return { n } end)
        assert.are.same({ 1 }, v.value)
        assert.are.equal(v.value, v.value)
        assert.are.equal(1, n)
    end)

    it("refuses assignment to .value", function()
        local v = sh.lazy(function() return 1 end)
        local ok, err = pcall(function() v.value = 2 end)
        assert.is_false(ok)
        assert.matches("a lazy value is read-only", err, 1, true)
    end)

    it("refuses a builder that is not a function", function()
        local ok, err = pcall(sh.lazy, 42)
        assert.is_false(ok)
        assert.matches("sh.lazy expects a function that builds the value, got number", err, 1, true)
    end)

    it("is refused where a function captures an lpeg pattern, with sh.lazy as the way out", function()
        local lpeg = require "lpeg"
        local pattern = lpeg.C(lpeg.R("az") ^ 1)
        local line = next_line()
        local f = function(s) return lpeg.match(pattern, s) end
        local ok, err = pcall(function() return sc:parallelize({ "a" }):map(f) end)
        assert.is_false(ok)
        assert.matches("cannot ship the function at spec/integration/shared_vars_spec.lua:" .. line ..
            ": upvalue 'pattern' is an lpeg pattern", err, 1, true)
        assert.matches("sh.lazy(function() return pattern end)", err, 1, true)
    end)

    it("lets workers forget a lazy value whose builder was released", function()
        local v = sh.lazy(function() return { "built" } end)
        local id = tonumber(v._id)
        local function cached() return require("streamhost.ship").is_cached(id) end
        assert.are.same({ { "built" }, { "built" } }, on_each_worker(sc, function() return v.value end))
        for _, c in ipairs(on_each_worker(sc, cached)) do assert.is_true(c) end
        v = nil -- luacheck: ignore
        settle()  -- the functions that captured v keep it: their ids and guards go first
        for _, c in ipairs(on_each_worker(sc, cached)) do assert.is_false(c) end
    end)
end)

describe("sc:broadcast", function()
    local sc
    setup(function() sc = helpers.sc() end)

    it("gives tasks the value as b.value", function()
        local b = sc:broadcast({ a = 1, b = 2, c = 3 })
        local out = sc:parallelize({ "a", "b", "c", "d" }, 2):map(function(k) return b.value[k] or 0 end):collect()
        assert.are.same({ 1, 2, 3, 0 }, out)
    end)

    it("works in stream functions", function()
        local stop = sc:broadcast({ the = true, a = true })
        local out = helpers.run_stream({ { "the", "cat", "a", "dog" }, { "a", "bird" } }, function(d)
            return d:filter(function(w) return not stop.value[w] end)
        end, 2)
        assert.are.same({ { "cat", "dog" }, { "bird" } }, out)
    end)

    it("sends a table with nested tables, shared parts and metatables", function()
        local shared = { 10, 20 }
        local Unit = {}
        Unit.__index = Unit
        function Unit.scale(u, x) return u.factor * x end
        local b = sc:broadcast({ cfg = { depth = { n = 3 } }, lists = { shared, shared, { 7 } },
                                 unit = setmetatable({ factor = 2 }, Unit) })
        local out = sc:parallelize({ 1, 2 }, 2):map(function(x)
            local v = b.value
            return { v.cfg.depth.n * x, v.lists[1][x] + v.lists[3][1], v.lists[1] == v.lists[2],
                     v.unit:scale(x) }
        end):collect()
        assert.are.same({ { 3, 17, true, 2 }, { 6, 27, true, 4 } }, out)
    end)

    it("is the value itself in the driver", function()
        local t = { 1, 2, 3 }
        local b = sc:broadcast(t)
        assert.are.equal(t, b.value)
    end)

    it("decodes a 5 MB value once per worker for 50 tasks", function()
        local big = {}
        for i = 1, 50000 do big[i] = string.format("%099d", i) end  -- 100 bytes each
        local b = sc:broadcast(big)
        local rdd = sc:parallelize(range(50), 50):map(function(i) return tonumber(b.value[i * 1000]) end)
        local before = worker_stats(sc)
        local out = rdd:collect()
        for i = 1, 50 do assert.are.equal(i * 1000, out[i]) end
        local after, decodes = worker_stats(sc), 0
        for w = 1, #after do
            local n = after[w].broadcast_decodes - before[w].broadcast_decodes
            assert.is_true(n <= 1, "worker " .. w .. " decoded the value " .. n .. " times")
            decodes = decodes + n
        end
        assert.is_true(decodes >= 1)
    end)

    it("sends the value again after unpersist", function()
        local b = sc:broadcast({ "v" })
        local function read() return b.value[1] end
        assert.are.same({ "v", "v" }, on_each_worker(sc, read))
        local before = worker_stats(sc)
        assert.are.same({ "v", "v" }, on_each_worker(sc, read))
        local again = worker_stats(sc)
        b:unpersist()
        assert.are.same({ "v", "v" }, on_each_worker(sc, read))
        local after = worker_stats(sc)
        for w = 1, #after do
            assert.are.equal(before[w].broadcast_decodes, again[w].broadcast_decodes)
            assert.are.equal(again[w].broadcast_decodes + 1, after[w].broadcast_decodes)
        end
        assert.are.same({ "v" }, b.value)
    end)

    it("is an error naming it after destroy, in the driver and in tasks", function()
        local b = sc:broadcast(5)
        local name = "Attempted to use Broadcast(" .. b.id .. ") after it was destroyed"
        local rdd = sc:parallelize({ 1, 2 }, 2):map(function(x) return b.value + x end)
        assert.are.same({ 6, 7 }, rdd:collect())
        b:destroy()
        local ok, err = pcall(function() return b.value end)
        assert.is_false(ok)
        assert.matches(name, err, 1, true)
        ok, err = pcall(rdd.collect, rdd)
        assert.is_false(ok)
        assert.matches(name, err, 1, true)
        assert.matches("shared_vars_spec.lua:%d+: Attempted", err)
        ok, err = pcall(function() return sc:parallelize({ 1 }):map(function(x) return b.value + x end) end)
        assert.is_false(ok)
        assert.matches("upvalue 'b' is Broadcast(" .. b.id .. "), which was destroyed", err, 1, true)
        ok, err = pcall(b.destroy, b)
        assert.is_false(ok)
        assert.matches(name, err, 1, true)
    end)

    it("can be unpersisted and destroyed in the driver only", function()
        local b = sc:broadcast(1)
        local ok, err = pcall(function()
            return sc:parallelize({ 1 }, 1):map(function() b:unpersist(); return 1 end):collect()
        end)
        assert.is_false(ok)
        assert.matches("Broadcast can only be unpersisted in driver", err, 1, true)
    end)

    it("leaves the registry and the workers when nothing refers to it", function()
        local live = settle()
        local b = sc:broadcast({ "gone" })
        local rid = tonumber(b._rid)
        assert.are.same({ "gone", "gone" }, on_each_worker(sc, function() return b.value[1] end))
        b = nil -- luacheck: ignore
        assert.are.equal(live, settle())
        local cached = on_each_worker(sc, function()
            return require("streamhost.ship").is_cached(rid)
        end)
        assert.are.same({ false, false }, cached)
    end)
end)

describe("sc:accumulator", function()
    local sc
    setup(function() sc = helpers.sc() end)

    it("counts records in a map, read in foreachRDD batch after batch", function()
        local acc = sc:accumulator(0)
        local out = helpers.run_actions({ { "a", "b", "c" }, { "d", "e" } }, function(d)
            return d:map(function(x) acc:add(1); return x end)
        end, function(rdd) return { rdd:count(), acc.value } end, 2)
        assert.are.same({ { 3, 3 }, { 2, 5 } }, out)
    end)

    it("adds exactly over many records and tasks", function()
        local acc = sc:accumulator(0)
        sc:parallelize(range(100000), 8):foreach(function(x) acc:add(x) end)
        assert.are.equal(100000 * 100001 / 2, acc.value)
        sc:parallelize(range(10), 2):foreach(function(x) acc:add(-x) end)
        assert.are.equal(100000 * 100001 / 2 - 55, acc.value)
    end)

    it("drops what a failed task added; the job fails", function()
        local acc = sc:accumulator(0)
        local rdd = sc:parallelize({ 1, 2, 3, 4 }, 2):map(function(x)  -- {1, 2} and {3, 4}
            acc:add(x)
            if x == 4 then error("bad record 4") end
            return x
        end)
        local ok, err = pcall(rdd.collect, rdd)
        assert.is_false(ok)
        assert.matches("bad record 4", err, 1, true)
        assert.are.equal(3, acc.value)
    end)

    it("drops what a failed task of a batch added, and later batches count", function()
        local acc = sc:accumulator(0)
        local seen = {}
        helpers.run_actions({ sc:parallelize({ 1, 2 }, 1), sc:parallelize({ 3, 99 }, 2), sc:parallelize({ 5 }, 1) },
            function(d)
                return d:map(function(x)
                    acc:add(1)
                    if x == 99 then error("bad record 99") end
                    return x
                end)
            end,
            function(rdd)
                local ok = pcall(rdd.count, rdd)
                seen[#seen + 1] = { ok, acc.value }
            end, 3)
        assert.are.same({ { true, 2 }, { false, 3 }, { true, 4 } }, seen)
    end)

    it("cannot be read inside a task", function()
        local acc = sc:accumulator(0)
        local ok, err = pcall(function()
            return sc:parallelize({ 1 }, 1):map(function() return acc.value end):collect()
        end)
        assert.is_false(ok)
        assert.matches("Accumulator.value cannot be accessed inside tasks", err, 1, true)
        assert.matches("shared_vars_spec.lua:%d+: Accumulator", err)
    end)

    it("adds and sets in the driver too", function()
        local acc = sc:accumulator(1.5)
        acc:add(2)
        assert.are.equal(3.5, acc.value)
        acc.value = 10
        sc:parallelize({ 1, 2 }, 2):foreach(function(x) acc:add(x) end)
        assert.are.equal(13, acc.value)
        assert.are.equal("13", tostring(acc))
    end)

    it("adds with a custom accum_param (zero and addInPlace, as pyspark's AccumulatorParam)", function()
        local VectorParam = {
            zero = function(_, v)
                local z = {}
                for i = 1, #v do z[i] = 0 end
                return z
            end,
            addInPlace = function(_, a, b)
                for i = 1, #a do a[i] = a[i] + b[i] end
                return a
            end,
        }
        local acc = sc:accumulator({ 100, 0 }, VectorParam)
        sc:parallelize({ 1, 2, 3, 4 }, 2):foreach(function(x) acc:add({ x, 1 }) end)
        sc:parallelize({ 5 }, 1):foreach(function(x) acc:add({ x, 1 }) end)
        assert.are.same({ 115, 5 }, acc.value)
    end)

    it("needs an accum_param for values other than numbers", function()
        local ok, err = pcall(function() return sc:accumulator({}) end)
        assert.is_false(ok)
        assert.matches("No default accumulator param for type table", err, 1, true)
    end)
end)
