-- spec/integration/registry_spec.lua: the registry of shipped functions seen from Lua: ids are
-- owned uint64_t cdata that plans carry, an entry lives as long as something holds its id,
-- and the workers forget what the registry dropped, so neither grows with the number of
-- closures a job ships over its life.
local ffi = require "ffi"
local buffer = require "string.buffer"
local helpers = require "spec.helpers"
local ship = require "streamhost.ship"
local scheduler = require "streamhost.scheduler"

local on_each_worker = helpers.on_each_worker

local function live()
    collectgarbage()
    collectgarbage()
    return ship.registry_stats().live
end

describe("the function registry", function()
    local sc
    setup(function() sc = helpers.sc() end)

    it("hands out ids as uint64_t cdata that encode by value in plans", function()
        local id = ship.ship(function(x) return x + 1 end)
        assert.is_true(ffi.istype("uint64_t", id))
        local plan = buffer.decode(buffer.encode({ op = "map", fn = id }))
        assert.is_true(plan.fn == id)
        assert.are.equal(tonumber(id), tonumber(plan.fn))
    end)

    it("shares one entry between equal closures and frees it with the last id", function()
        local before = live()
        local f = function(x) return x * 7 end
        local a, b = ship.ship(f), ship.ship(f)
        assert.is_true(a == b)
        assert.are.equal(before + 1, live())
        a = nil -- luacheck: ignore
        assert.are.equal(before + 1, live())
        b = nil -- luacheck: ignore
        assert.are.equal(before, live())
    end)

    it("never hands out a freed id again", function()
        local f = function(x) return x .. "!" end
        local first = tonumber(ship.ship(f))
        live()
        assert.is_true(tonumber(ship.ship(f)) > first)
    end)

    it("lets workers take the id as a plain number too", function()
        local id = ship.ship(function(x) return x * 3 end)
        local res = helpers.run_collect_tasks(sc, { {
            plan = { op = "map", fn = tonumber(id), input = { op = "records", records = { 1, 2 } } },
            sink = { kind = "collect" }, part = 0,
        } })
        assert.are.same({ { 3, 6 } }, res)
    end)

    it("keeps a function alive while the RDD that holds its id lives", function()
        local before = live()
        local k = 11
        local rdd = sc:parallelize({ 1, 2, 3 }, 2):map(function(x) return x * k end)
        assert.are.equal(before + 1, live())
        assert.are.same({ 11, 22, 33 }, rdd:collect())
        rdd = nil -- luacheck: ignore
        assert.are.equal(before, live())
    end)

    it("makes the workers forget a function whose entry was freed", function()
        local id = ship.ship(function(x) return -x end)
        local n = tonumber(id)
        local function cached() return require("streamhost.ship").is_cached(n) end
        local tasks = {}
        for w = 0, sc.defaultParallelism - 1 do
            tasks[w + 1] = { plan = { op = "map", fn = id, input = { op = "records", records = { w } } },
                             sink = { kind = "collect" }, part = w, affinity = w }
        end
        helpers.run_collect_tasks(sc, tasks)
        for _, c in ipairs(on_each_worker(sc, cached)) do assert.is_true(c) end
        id, tasks = nil, nil -- luacheck: ignore
        live()
        for _, c in ipairs(on_each_worker(sc, cached)) do assert.is_false(c) end
    end)

    it("stays bounded, in the registry and in the workers, over 20,000 shipped closures", function()
        local base = live()
        local most = 0
        for i = 1, 20000 do
            local rdd = sc:parallelize({ i }, 1):map(function(x) return x + i end)
            if i % 10 == 0 then assert.are.same({ 2 * i }, rdd:collect()) end
            if i % 10 == 0 then  -- an entry goes one collection after its id (with its guard)
                collectgarbage()
                most = math.max(most, ship.registry_stats().live - base)
            end
        end
        assert.is_true(most < 100, "registry grew by " .. most)
        local caches = on_each_worker(sc, function() return require("streamhost.ship").cache_stats() end)
        for w, c in ipairs(caches) do
            assert.is_true(c.entries < 100, "worker " .. w .. " caches " .. c.entries .. " entries")
        end
    end)
end)
