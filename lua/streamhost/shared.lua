-- streamhost.shared: values a job shares with its tasks besides the functions themselves: lazy
-- values (sh.lazy, an extension beyond pyspark), broadcast variables and accumulators. Each
-- travels inside shipped functions as a reference (ship.travel) that the worker state turns
-- into an object of its own. The engine calls task_begin/task_end around every task in a
-- worker and merge(deltas) in the driver for every task that succeeded.
local ship = require "streamhost.ship"

local type, error, rawget, rawset, setmetatable = type, error, rawget, rawset, setmetatable
local tostring, tonumber, pcall, next, pairs = tostring, tonumber, pcall, next, pairs
local getmetatable = getmetatable

local M = {}

local stats = { lazy_builds = 0, broadcast_decodes = 0 }

-- -- Lazy values (sh.lazy, an extension beyond pyspark) -----------------------------------------

-- A value that every worker state builds for itself, once, by calling the shipped builder:
-- for what cannot travel, such as an lpeg pattern or a compiled parser. Read it as v.value.
-- Driver side: { _builder = function, _id = the builder's registry id, _built = {value} }.
local Lazy = {}

Lazy.__index = function(self, key)
    if key ~= "value" then return nil end
    local built = rawget(self, "_built")
    if built == nil then
        built = { self._builder() }
        rawset(self, "_built", built)
    end
    return built[1]
end

Lazy.__newindex = function()
    error("a lazy value is read-only: it is what its function returns", 2)
end

Lazy.__tostring = function(self)
    return "lazy value " .. tostring(tonumber(rawget(self, "_id")))
end

-- sh.lazy(builder): see Lazy. The builder is shipped now (it travels as any function does),
-- so a builder that captures what cannot travel is refused here.
function M.lazy(builder)
    if type(builder) ~= "function" then
        error("sh.lazy expects a function that builds the value, got " .. type(builder), 2)
    end
    local ok, id = pcall(ship.ship, builder)
    if not ok then error(id, 2) end
    return setmetatable({ _builder = builder, _id = id }, Lazy)
end

ship.travel(Lazy, {
    kind = "lazy",
    module = "streamhost.shared",
    pack = function(v) return { id = tonumber(rawget(v, "_id")) } end,
})

-- Worker side: values by the registry id of their builder, built on first use in this state
-- and forgotten when the builder's entry goes.
local built = {}

local function lazy_value(id)
    local b = built[id]
    if b == nil then
        b = { ship.load(id)() }
        built[id] = b
        stats.lazy_builds = stats.lazy_builds + 1
    end
    return b[1]
end

local WorkerLazy = {
    __index = function(self, key)
        if key == "value" then return lazy_value(rawget(self, "_id")) end
        return nil
    end,
    __newindex = Lazy.__newindex,
}

ship.receive("lazy", function(mark)
    return setmetatable({ _id = mark.id }, WorkerLazy)
end)

-- -- Broadcast variables (sc:broadcast) --------------------------------------------------------

-- A read-only value sent to each worker state once, as pyspark's Broadcast. Driver side:
-- { id = n, _value = the value, _rid = its registry id, _destroyed = true once destroyed }.
-- The value is packed into the registry when the broadcast is made (each broadcast its own
-- entry); a shipped function that captures the broadcast carries only its registry id and
-- keeps the broadcast alive.
local Broadcast = {}
local broadcast_methods = {}
local next_bid = 0
local salt = tostring(broadcast_methods)  -- tells this state's broadcasts from another's

local function destroyed_error(bid)
    return "Attempted to use Broadcast(" .. tostring(bid) .. ") after it was destroyed"
end

Broadcast.__index = function(self, key)
    if key == "value" then
        if rawget(self, "_destroyed") then error(destroyed_error(self.id), 2) end
        return rawget(self, "_value")
    end
    return broadcast_methods[key]
end

Broadcast.__tostring = function(self)
    return "Broadcast(" .. tostring(self.id) .. ")"
end

-- sc:broadcast(value); see Broadcast.
function M.broadcast(value)
    next_bid = next_bid + 1
    local rid = ship.put_value(value, "cannot broadcast the value", salt .. next_bid)
    return setmetatable({ id = next_bid, _value = value, _rid = rid }, Broadcast)
end

-- Drops the workers' copies; a later use sends the value again (pyspark's unpersist).
function broadcast_methods.unpersist(self, blocking) -- luacheck: ignore blocking
    if rawget(self, "_destroyed") then error(destroyed_error(self.id), 2) end
    ship.evict(self._rid)
end

-- Drops the value everywhere, for good: using the broadcast afterwards, in the driver or in a
-- task, is an error that names it.
function broadcast_methods.destroy(self, blocking) -- luacheck: ignore blocking
    if rawget(self, "_destroyed") then error(destroyed_error(self.id), 2) end
    rawset(self, "_destroyed", true)
    rawset(self, "_value", nil)
    ship.release(self._rid)
end

ship.travel(Broadcast, {
    kind = "broadcast",
    module = "streamhost.shared",
    pack = function(b)
        if rawget(b, "_destroyed") then
            return nil, "is Broadcast(" .. b.id .. "), which was destroyed: " .. destroyed_error(b.id)
        end
        return { rid = tonumber(b._rid), bid = b.id }
    end,
})

-- Worker side: values by registry id, decoded on first use in this state and forgotten when
-- the entry goes (destroyed, unpersisted, or no longer referenced).
local decoded = {}

local function broadcast_value(rid, bid)
    local d = decoded[rid]
    if d == nil then
        local found, v = ship.load_value(rid)
        if not found then error(destroyed_error(bid), 3) end
        d = { v }
        decoded[rid] = d
        stats.broadcast_decodes = stats.broadcast_decodes + 1
    end
    return d[1]
end

local worker_broadcast_methods = {
    unpersist = function() error("Broadcast can only be unpersisted in driver", 2) end,
    destroy = function() error("Broadcast can only be destroyed in driver", 2) end,
}

local WorkerBroadcast = {
    __index = function(self, key)
        if key == "value" then
            local v = broadcast_value(rawget(self, "_rid"), rawget(self, "id"))
            return v  -- not a tail call: an error names the task function's line (level 3)
        end
        return worker_broadcast_methods[key]
    end,
    __tostring = Broadcast.__tostring,
}

ship.receive("broadcast", function(mark)
    return setmetatable({ id = mark.bid, _rid = mark.rid }, WorkerBroadcast)
end)

-- -- Accumulators (sc:accumulator) -------------------------------------------------------------

-- A value that tasks only add to, as pyspark's Accumulator: acc:add(x) in tasks and in the
-- driver, acc.value in the driver only. In a task it starts at the zero value; what the task
-- added is merged into the driver's value when the task succeeds (a failed task's additions
-- are dropped). Numbers add with +; accum_param, as pyspark's AccumulatorParam, is a table
-- with zero(self, value) and addInPlace(self, value1, value2) (it travels with the functions
-- that use the accumulator). Driver side: { aid = n, _value = v, _param = accum_param }.
local Accumulator = {}
local accumulator_methods = {}
local next_aid = 0
local accumulators = setmetatable({}, { __mode = "v" })  -- aid -> the driver's accumulator

local function add_to(param, value, term)
    if param then return param:addInPlace(value, term) end
    return value + term
end

Accumulator.__index = function(self, key)
    if key == "value" then return rawget(self, "_value") end
    return accumulator_methods[key]
end

Accumulator.__newindex = function(self, key, v)
    if key ~= "value" then error("an accumulator has no field '" .. tostring(key) .. "' to set", 2) end
    rawset(self, "_value", v)
end

Accumulator.__tostring = function(self)
    return tostring(rawget(self, "_value"))
end

function accumulator_methods.add(self, term)
    rawset(self, "_value", add_to(rawget(self, "_param"), rawget(self, "_value"), term))
end

-- sc:accumulator(value, accum_param); see Accumulator.
function M.accumulator(value, accum_param)
    if accum_param == nil then
        if type(value) ~= "number" then
            error("No default accumulator param for type " .. type(value) ..
                  " (pass an accum_param with zero and addInPlace)", 3)
        end
    elseif type(accum_param) ~= "table" or type(accum_param.zero) ~= "function"
            or type(accum_param.addInPlace) ~= "function" then
        error("accum_param must be a table with the methods zero and addInPlace", 3)
    end
    next_aid = next_aid + 1
    local acc = setmetatable({ aid = next_aid, _value = value, _param = accum_param }, Accumulator)
    accumulators[next_aid] = acc
    return acc
end

ship.travel(Accumulator, {
    kind = "accumulator",
    module = "streamhost.shared",
    pack = function(acc, pack)
        local param = rawget(acc, "_param")
        -- The zero of the value at the time the function is shipped, as pyspark's __reduce__.
        local zero = param and param:zero(rawget(acc, "_value")) or 0
        return { aid = acc.aid, zero = pack(zero), param = param and pack(param) }
    end,
})

-- Worker side. The running task's values by accumulator id (each starts at its zero).
local task_values, task_added = {}, false

local function copy(v, seen)
    if type(v) ~= "table" then return v end
    seen = seen or {}
    if seen[v] then return seen[v] end
    local t = {}
    seen[v] = t
    for k, x in next, v do rawset(t, copy(k, seen), copy(x, seen)) end
    return setmetatable(t, getmetatable(v))
end

local function inside_task()
    error("Accumulator.value cannot be accessed inside tasks", 3)
end

local worker_accumulator_methods = {}

function worker_accumulator_methods.add(self, term)
    local aid = rawget(self, "aid")
    local cur = task_values[aid]
    if cur == nil then cur = copy(rawget(self, "_zero")) end
    task_values[aid] = add_to(rawget(self, "_param"), cur, term)
    task_added = true
end

local WorkerAccumulator = {
    __index = function(_, key)
        if key == "value" then inside_task() end
        return worker_accumulator_methods[key]
    end,
    __newindex = function(_, key)
        if key == "value" then inside_task() end
        error("an accumulator has no field '" .. tostring(key) .. "' to set", 2)
    end,
    __tostring = function(self) return "Accumulator<id=" .. tostring(rawget(self, "aid")) .. ">" end,
}

ship.receive("accumulator", function(mark, unpack)
    return setmetatable({ aid = mark.aid, _zero = unpack(mark.zero), _param = unpack(mark.param) },
        WorkerAccumulator)
end)

-- -- The engine's calls ----------------------------------------------------------------------------

-- Worker, before a task runs: every accumulator starts at its zero value.
function M.task_begin()
    if task_added then task_values, task_added = {}, false end
end

-- Worker, after a task ran (whether it failed or not): the task's accumulator values by
-- accumulator id, for the driver to merge (nil when the task added nothing). The task's
-- values are forgotten.
function M.task_end()
    if not task_added then return nil end
    local deltas = task_values
    task_values, task_added = {}, false
    return deltas
end

-- Driver, for each task that succeeded: merges its deltas (task_end) into the accumulators.
-- Deltas of an accumulator the driver no longer holds are dropped.
function M.merge(deltas)
    for aid, v in pairs(deltas) do
        local acc = accumulators[aid]
        if acc then acc:add(v) end
    end
end

-- -- Worker caches ---------------------------------------------------------------------------------

ship.on_drop(function(id)
    if id == nil then
        built, decoded = {}, {}
    else
        built[id], decoded[id] = nil, nil
    end
end)

-- What this state did (for tests and benchmarks): lazy_builds = lazy values built,
-- broadcast_decodes = broadcast values decoded.
function M.stats()
    return { lazy_builds = stats.lazy_builds, broadcast_decodes = stats.broadcast_decodes }
end

return M
