-- spec/integration/shipping_spec.lua: functions crossing into the worker states (shared/API.md
-- "Functions cross into worker states"): what travels, by value or by name, and what is refused
-- where the job is defined.
local helpers = require "spec.helpers"

local run = helpers.run_stream

-- The line of the statement after the call (where a test defines the function it ships).
local function next_line()
    return debug.getinfo(2, "l").currentline + 1
end

-- A global helper, as a job script defines one.
function shipping_spec_double(x) -- luacheck: ignore
    return x * 2
end

describe("function shipping", function()
    local sc
    setup(function() sc = helpers.sc() end)

    it("sends upvalues by value", function()
        local factor, prefix = 3, "n="
        local out = run({ { 1, 2 }, { 3 } },
            function(d) return d:map(function(x) return prefix .. (x * factor) end) end, 2, { sort = false })
        assert.are.same({ { "n=3", "n=6" }, { "n=9" } }, out)
    end)

    it("leaves the driver's copy of an upvalue unchanged when a worker changes its own", function()
        local state = { calls = 0 }
        local out = run({ { 1, 2, 3 } }, function(d)
            return d:map(function(x) state.calls = state.calls + 1; return x end)
        end, 1)
        assert.are.same({ { 1, 2, 3 } }, out)
        assert.are.equal(0, state.calls)
    end)

    it("gives every task its own copy of the upvalues, batch after batch", function()
        local n = 0
        local ones = { 1, 1, 1, 1, 1, 1, 1, 1 }
        local input = { sc:parallelize(ones, 8), sc:parallelize(ones, 8) }
        local out = run(input, function(d) return d:map(function() n = n + 1; return n end) end, 2)
        assert.are.same({ ones, ones }, out)
    end)

    it("sends nested tables", function()
        local cfg = { scale = { by = { factor = 10 } }, names = { "zero", "one", "two" } }
        local out = run({ { 1, 2 } }, function(d)
            return d:map(function(x) return { cfg.names[x + 1], x * cfg.scale.by.factor } end)
        end, 1)
        assert.are.same({ { { "one", 10 }, { "two", 20 } } }, out)
    end)

    it("keeps a table shared by two upvalues one table", function()
        local shared = { 1 }
        local a, b = { t = shared }, { t = shared }
        local out = run({ { 5 } }, function(d)
            return d:map(function(x) a.t[1] = x; return b.t[1] end)
        end, 1)
        assert.are.same({ { 5 } }, out)
    end)

    it("sends an object whose metatable is its own __index", function()
        local Point = {}
        Point.__index = Point
        function Point.norm2(p) return p.x * p.x + p.y * p.y end
        local p = setmetatable({ x = 3, y = 4 }, Point)
        local out = run({ { 1, 2 } }, function(d) return d:map(function(s) return p:norm2() * s end) end, 1)
        assert.are.same({ { 25, 50 } }, out)
    end)

    it("sends recursive local functions", function()
        local function fib(n)
            if n < 2 then return n end
            return fib(n - 1) + fib(n - 2)
        end
        local out = run({ { 10, 1 }, { 15 } }, function(d) return d:map(fib) end, 2, { sort = false })
        assert.are.same({ { 55, 1 }, { 610 } }, out)
    end)

    it("sends mutually recursive local functions", function()
        local is_odd
        local function is_even(n) if n == 0 then return true end return is_odd(n - 1) end
        is_odd = function(n) if n == 0 then return false end return is_even(n - 1) end
        local out = run({ { 1, 2, 3, 4 } }, function(d) return d:filter(is_even) end, 1)
        assert.are.same({ { 2, 4 } }, out)
    end)

    it("sends a module upvalue as the module, required in the worker", function()
        local lpeg = require "lpeg"
        local out = run({ { "abc123", "xy-z" } }, function(d)
            return d:map(function(s) return lpeg.match(lpeg.C(lpeg.R("az") ^ 1), s) end)
        end, 1)
        assert.are.same({ { "abc", "xy" } }, out)
    end)

    it("sends functions of the standard libraries by name", function()
        local out = run({ { 1, 22 } }, function(d) return d:map(tostring):map(string.upper) end, 1, { sort = false })
        assert.are.same({ { "1", "22" } }, out)
        local maxes = run({ { 3, 9, 4 } }, function(d) return d:reduce(math.max) end, 1)
        assert.are.same({ { 9 } }, maxes)
    end)

    it("sends functions of loaded modules by name", function()
        local keys = require "streamhost.keys"
        local out = run({ { "a", 7 } }, function(d) return d:map(keys.portable_hash) end, 1, { sort = false })
        assert.are.same({ { keys.portable_hash("a"), keys.portable_hash(7) } }, out)
    end)

    it("sends global helper functions defined in the script", function()
        local out = run({ { 1, 2 } }, function(d)
            return d:map(function(x) return shipping_spec_double(x) + 1 end) -- luacheck: ignore
        end, 1)
        assert.are.same({ { 3, 5 } }, out)
    end)

    it("sends global helper functions of a job script run by the host", function()
        local out, err, ok = helpers.run_job([[
local sh = require "streamhost"
function triple(x) return x * 3 end
function describe_it(x) return "v" .. triple(x) end
local sc = sh.SparkContext("local[2]", "globals")
local r = sc:parallelize({ 1, 2, 3 }, 2):map(function(x) return describe_it(x) end):collect()
print(table.concat(r, ","))
sc:stop()
]])
        assert.is_true(ok, err)
        assert.are.equal("v3,v6,v9\n", out)
    end)

    it("refuses, where the stream is defined, a function capturing a file", function()
        local out = io.stdout
        local d = helpers.ssc():queueStream({ { 1 } })
        local line = next_line()
        local f = function(x) out:write(x) return x end
        local ok, err = pcall(d.map, d, f)
        assert.is_false(ok)
        assert.matches("cannot ship the function at spec/integration/shipping_spec.lua:" .. line ..
            ": upvalue 'out' is a userdata", err, 1, true)
    end)

    it("refuses, where the RDD is defined, a function capturing a userdata", function()
        local handle = newproxy(false)
        local line = next_line()
        local f = function(x) return handle, x end
        local ok, err = pcall(function() return sc:parallelize({ 1 }):map(f) end)
        assert.is_false(ok)
        assert.matches("shipping_spec.lua:" .. line .. ": upvalue 'handle' is a userdata", err, 1, true)
    end)

    it("refuses a function capturing a coroutine", function()
        local co = coroutine.create(function() end)
        local line = next_line()
        local f = function(x) return coroutine.status(co), x end
        local ok, err = pcall(function() return sc:parallelize({ 1 }):filter(f) end)
        assert.is_false(ok)
        assert.matches("shipping_spec.lua:" .. line .. ": upvalue 'co' is a thread", err, 1, true)
    end)

    it("names the error's own call site before the refused function", function()
        local out = io.stdout
        local call = next_line() + 1
        local ok, err = pcall(function()
            local r = sc:parallelize({ 1 }):map(function(x) out:write(x) end)  -- not a tail call
            return r
        end)
        assert.is_false(ok)
        assert.matches("^spec/integration/shipping_spec.lua:" .. call .. ": cannot ship", err)
    end)

    it("refuses a userdata deep in a nested table upvalue", function()
        local cfg = { sinks = { out = io.stderr } }
        local ok, err = pcall(function()
            return sc:parallelize({ 1 }):map(function(x) return cfg.sinks, x end)
        end)
        assert.is_false(ok)
        assert.matches("upvalue 'cfg' is a userdata", err, 1, true)
    end)

    it("refuses a function capturing the SparkContext", function()
        local ok, err = pcall(function()
            return sc:parallelize({ 1 }):map(function(x) return sc.defaultParallelism + x end)
        end)
        assert.is_false(ok)
        assert.matches("upvalue 'sc' references the SparkContext", err, 1, true)
    end)

    it("refuses a stream function capturing the StreamingContext as referencing the SparkContext", function()
        local ssc = helpers.ssc()
        local d = ssc:queueStream({ { 1 } })
        local ok, err = pcall(d.map, d, function(x) return ssc, x end)
        assert.is_false(ok)
        assert.matches("upvalue 'ssc' references the SparkContext", err, 1, true)
    end)

    it("refuses a function capturing an RDD, which holds the SparkContext", function()
        local other = sc:parallelize({ 1 })
        local ok, err = pcall(function()
            return sc:parallelize({ 1 }):map(function(x) return other:count() + x end)
        end)
        assert.is_false(ok)
        assert.matches("upvalue 'other' references the SparkContext (through an RDD)", err, 1, true)
    end)

    it("refuses a function capturing a DStream, which holds the StreamingContext", function()
        local ssc = helpers.ssc()
        local d = ssc:queueStream({ { 1 } })
        local ok, err = pcall(d.map, d, function(x) return d, x end)
        assert.is_false(ok)
        assert.matches("upvalue 'd' references the SparkContext (through a DStream)", err, 1, true)
    end)

    it("lets foreachRDD and transform functions use the contexts in the driver", function()
        local ssc = helpers.ssc()
        local d = ssc:queueStream({ { 1, 2 } })
        local t = d:transform(function(rdd) return rdd:union(sc:parallelize({ 100 })) end)
        local seen
        t:foreachRDD(function(rdd) seen = { ssc.sparkContext == sc, rdd:count() } end)
        local out = helpers.collect_batches(ssc, t, 1)
        assert.are.same({ { 1, 2, 100 } }, out)
        assert.are.same({ true, 3 }, seen)
    end)
end)

-- A shipped global table, as a job script defines one.
shipping_spec_config = { scale = 2, names = { "a" } } -- luacheck: ignore

describe("functions loaded once per worker state", function()
    local sc
    local ship = require "streamhost.ship"
    local scheduler = require "streamhost.scheduler"
    setup(function() sc = helpers.sc() end)

    -- Runs the shipped function `id` over `records` once on every worker (pinned tasks);
    -- returns each worker's output records.
    local function on_each_worker(id, records)
        local tasks = {}
        for w = 0, sc.defaultParallelism - 1 do
            tasks[w + 1] = { plan = { op = "map", fn = id, input = { op = "records", records = records } },
                             sink = { kind = "collect" }, part = w, affinity = w }
        end
        return helpers.run_collect_tasks(sc, tasks)
    end

    local stats_id = ship.ship(function() return require("streamhost.ship").cache_stats() end)
    local function worker_stats()
        local out = {}
        for w, r in ipairs(on_each_worker(stats_id, { 0 })) do out[w] = r[1] end
        return out
    end

    it("loads a function once per worker and keeps it for later tasks and jobs", function()
        local k = 5
        local rdd = sc:parallelize({ 1, 2, 3, 4 }, 2):map(function(x) return x + k end)
        local before = worker_stats()
        for _ = 1, 5 do assert.are.same({ 6, 7, 8, 9 }, rdd:collect()) end
        local after, loaded = worker_stats(), 0
        for w = 1, #after do
            local n = after[w].loads - before[w].loads
            assert.is_true(n <= 1, "worker " .. w .. " loaded the function " .. n .. " times")
            loaded = loaded + n
        end
        assert.is_true(loaded >= 1)
    end)

    it("starts every task from the shipped upvalues also once the JIT compiled the function", function()
        -- 100k records a task: the worker's loop and the function become traces, which
        -- constify immutable upvalues such as `bump` (a function with its own counter).
        local n = 100000
        local seen = { n = 0, log = {} }
        local calls = 0
        local count = 0
        local function bump() count = count + 1; return count end
        local f = function(x)
            seen.n = seen.n + 1
            calls = calls + 1
            local log = seen.log
            log[#log + 1] = x
            return seen.n + calls + bump() + #log
        end
        local data = {}
        for i = 1, 2 * n do data[i] = i end
        local rdd = sc:parallelize(data, 2):map(f)
        for _ = 1, 4 do
            assert.are.equal(4 * n, rdd:reduce(math.max))
        end
        assert.are.same({ 0, 0, 0, 0 }, { seen.n, #seen.log, calls, count })
        local jit_on = on_each_worker(ship.ship(function() return (jit.status()) end), { 0 })
        for _, r in ipairs(jit_on) do assert.is_true(r[1]) end
    end)

    it("keeps shared tables shared, cycles and metatables whole, from task to task", function()
        local shared = { v = 0 }
        local a, b = { t = shared }, { t = shared }
        local node = { name = "n" }
        node.self = node
        local Point = {}
        Point.__index = Point
        function Point.norm2(p) return p.x * p.x + p.y * p.y end
        local p = setmetatable({ x = 3, y = 4 }, Point)
        local f = function(x)
            a.t.v = a.t.v + x
            local r = { b.t.v, node.self.self.name, a.t == b.t, p:norm2() }
            a.t = { v = 100 }
            node.self = nil
            p.x, Point.norm2 = 0, nil
            setmetatable(p, nil)
            return r
        end
        local rdd = sc:parallelize({ 1, 2, 3, 4 }, 4):map(f)  -- one record a task
        for _ = 1, 3 do
            assert.are.same({ { 1, "n", true, 25 }, { 2, "n", true, 25 }, { 3, "n", true, 25 },
                              { 4, "n", true, 25 } }, rdd:collect())
        end
    end)

    it("starts every task from the shipped globals", function()
        local rdd = sc:parallelize({ 1, 2, 3, 4 }, 4):map(function(x)
            local r = x * shipping_spec_config.scale .. shipping_spec_config.names[1] -- luacheck: ignore
            shipping_spec_config.scale = 100 -- luacheck: ignore
            shipping_spec_config.names = nil -- luacheck: ignore
            return r
        end)
        for _ = 1, 3 do assert.are.same({ "2a", "4a", "6a", "8a" }, rdd:collect()) end
    end)

    it("keeps nothing a finished task added to a captured table", function()
        local cache = {} -- luacheck: ignore
        local f = function(x)
            local big = {}
            for i = 1, 1000 do big[i] = i end
            cache[x] = big
            local probe = rawget(_G, "shipping_spec_probe")
            if probe == nil then
                probe = setmetatable({}, { __mode = "k" })
                rawset(_G, "shipping_spec_probe", probe)
            end
            probe[big] = true
            return x
        end
        on_each_worker(ship.ship(f), { 1, 2, 3 })
        local alive = on_each_worker(ship.ship(function()
            collectgarbage()
            collectgarbage()
            local probe = rawget(_G, "shipping_spec_probe")
            if probe == nil then return -1 end
            local n = 0
            for _ in pairs(probe) do n = n + 1 end
            return n
        end), { 0 })
        for w, r in ipairs(alive) do assert.are.equal(0, r[1], "worker " .. w) end
    end)

    it("does not rebuild a large captured table that tasks only read", function()
        local words = {}
        for i = 1, 200000 do words["w" .. i] = string.rep("x", 30) .. i end  -- about 10 MB
        local f = function(x) return #words["w" .. x] end
        local rdd = sc:parallelize({ 1, 10, 100, 1000 }, 4):map(f)
        local before = worker_stats()
        for _ = 1, 3 do assert.are.same({ 31, 32, 33, 34 }, rdd:collect()) end
        local after = worker_stats()
        for w = 1, #after do
            assert.are.equal(before[w].put_backs, after[w].put_backs)
            assert.is_true(after[w].loads - before[w].loads <= 1)
        end
    end)
end)
