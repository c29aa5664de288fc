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

-- Runs f(w) once on every worker w (pinned tasks); returns the results in worker order.
local function on_each_worker(sc, f)
    local id = ship.ship(f)
    local tasks = {}
    for w = 0, sc.defaultParallelism - 1 do
        tasks[w + 1] = { plan = { op = "map", fn = id, input = { op = "records", records = { w } } },
                         sink = { kind = "collect" }, part = w, affinity = w }
    end
    local out = {}
    for w, r in ipairs(scheduler.run_tasks(sc, tasks)) do out[w] = r[1] end
    return out
end

local function worker_stats(sc)
    return on_each_worker(sc, function() return require("streamhost.shared").stats() end)
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
        -- The functions that captured v keep it (their ids, then their guards, go first).
        for _ = 1, 6 do collectgarbage() end
        for _, c in ipairs(on_each_worker(sc, cached)) do assert.is_false(c) end
    end)
end)
