-- streamhost.shared: values a job shares with its tasks besides the functions themselves: lazy
-- values (sh.lazy, an extension beyond pyspark). Each travels inside shipped functions as a
-- reference (ship.travel) that the worker state turns into an object of its own.
local ship = require "streamhost.ship"

local type, error, rawget, rawset, setmetatable = type, error, rawget, rawset, setmetatable
local tostring, tonumber, pcall = tostring, tonumber, pcall

local M = {}

local stats = { lazy_builds = 0 }

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

-- -- Worker caches ---------------------------------------------------------------------------------

ship.on_drop(function(id)
    if id == nil then
        built = {}
    else
        built[id] = nil
    end
end)

-- What this state did (for tests and benchmarks): lazy_builds = values built.
function M.stats()
    return { lazy_builds = stats.lazy_builds }
end

return M
