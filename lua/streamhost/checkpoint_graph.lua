-- streamhost.checkpoint_graph: a StreamingContext's stream graph as checkpoint data, and back:
-- every stream's record (op, args, parents, slide), its shipped functions as the registry's
-- bytes, the driver functions (transform, foreachRDD, outputs) packed by value as ship packs
-- them. What cannot be recovered is refused when the graph is packed (at start), with Spark's
-- meaning: queueStream, functions that reference the SparkContext, broadcast variables and
-- accumulators. Lazy values (sh.lazy) travel with their builders.
local ship = require "streamhost.ship"
local buffer = require "string.buffer"
local storage = require "streamhost.storage"

local MARK = ship.MARK
local type, pairs, ipairs, tonumber, error = type, pairs, ipairs, tonumber, error

local M = {}

local QUEUE_REFUSED = "queueStream doesn't support checkpointing. Please don't use queueStream when checkpointing is enabled."
M.QUEUE_REFUSED = QUEUE_REFUSED

-- Calls f(mark) for every extension mark ({[MARK] = "ext", ...}) in a decoded pack.
local function each_ext(v, f, seen)
    if type(v) ~= "table" or seen[v] then return end
    seen[v] = true
    if rawget(v, MARK) == "ext" then f(v) end
    for k, x in pairs(v) do
        each_ext(k, f, seen)
        each_ext(x, f, seen)
    end
end

local EXT_REFUSED = {
    broadcast = "a broadcast variable",
    accumulator = "an accumulator",
}

local add_entry

-- Refuses what a decoded pack captures that Spark cannot recover from a checkpoint either
-- (broadcasts, accumulators); adds the builders of its lazy values to `entries`.
local function check_captures(pack, entries, what)
    each_ext(pack, function(mark)
        if EXT_REFUSED[mark.kind] then
            error(string.format("cannot checkpoint %s: it captures %s, which cannot be recovered from a checkpoint (as in Spark); create it lazily in the driver (in foreachRDD, once) or use sh.lazy",
                what, EXT_REFUSED[mark.kind]), 0)
        elseif mark.kind == "lazy" then
            add_entry(entries, mark.id, what)
        end
    end, {})
end

-- Adds the registry entry `id` (and the lazy builders it refers to) to `entries` (id -> bytes).
add_entry = function(entries, id, what)
    id = tonumber(id)
    if entries[id] then return end
    local bytes = ship.entry_bytes(id)
    if bytes == nil then error("checkpoint: " .. what .. " is no longer in the function registry", 0) end
    entries[id] = bytes
    check_captures(buffer.decode(bytes), entries, what)
end

-- Packs a driver function into bytes; its lazy builders join `entries`.
local function pack_driver(entries, f, what)
    local ok, bytes = pcall(ship.pack_bytes, f, "cannot checkpoint " .. what)
    if not ok then error("checkpoint: " .. tostring(bytes), 0) end
    check_captures(buffer.decode(bytes), entries, what)
    return bytes
end

-- The graph of ssc as plain data (string.buffer-encodable). `initial` maps a stateful
-- stream to the records of its initial RDD (collected by the caller). Raises, with a message
-- naming what cannot be checkpointed, when something cannot.
function M.pack(ssc, initial)
    local entries, streams, outputs = {}, {}, {}
    for i, d in ipairs(ssc._dstreams) do
        local src = d._source
        if src and src.args and src.args.kind == "queueStream" then error(QUEUE_REFUSED, 0) end
        local rec = d:_record()
        rec.driver = nil
        if src and src.args then  -- an input's credentials stay out (connectors read them again)
            local args = {}
            for k, v in pairs(src.args) do
                if not require("streamhost.checkpoint").is_credential(k) then args[k] = v end
            end
            rec.args = args
        end
        local what = string.format("%s (%s)", tostring(d), d.op)
        for _, id in ipairs(rec.fns) do add_entry(entries, id, "a function of " .. what) end
        if d._driver then
            rec.driver = {}
            for k, f in pairs(d._driver) do
                rec.driver[k] = pack_driver(entries, f, "the " .. d.op .. " function of " .. what)
            end
        end
        rec.storage = d._storage and d._storage.name or nil
        rec.checkpoint_ms = d._checkpoint_ms
        rec.stateful = d._sid ~= nil
        rec.initial = initial and initial[d] or nil
        streams[i] = rec
    end
    for i, out in ipairs(ssc._outputs) do
        outputs[i] = { stream = out.dstream._id, name = out.name, description = out.description,
                       id = out.id,
                       func = pack_driver(entries, out.func, "the output operation " .. out.description) }
    end
    return { batch_ms = ssc._batch_ms, remember_ms = ssc._remember_ms, streams = streams,
             outputs = outputs, entries = entries }
end

-- Registers the packed entries again (their ids in a new process differ) and returns
-- old id -> new id (boxed ids, owned by whatever keeps them). Entries that refer to lazy
-- builders are rewritten with the builders' new ids.
local function register_entries(entries)
    local new = {}
    local function remap(bytes, visiting)
        local pack = buffer.decode(bytes)
        local has = false
        each_ext(pack, function(mark)
            if mark.kind == "lazy" then has = true end
        end, {})
        if not has then return bytes end
        each_ext(pack, function(mark)
            if mark.kind == "lazy" then
                local old = mark.id
                if new[old] == nil then
                    if visiting[old] then error("checkpoint: a lazy value refers to itself", 0) end
                    visiting[old] = true
                    new[old] = ship.register_bytes(remap(entries[old], visiting))
                end
                mark.id = tonumber(new[old])
            end
        end, {})
        return buffer.encode(pack)
    end
    for old, bytes in pairs(entries) do
        if new[old] == nil then new[old] = ship.register_bytes(remap(bytes, { [old] = true })) end
    end
    return new
end

-- Unpacks a driver function, its lazy values pointing at the new ids.
local function unpack_driver(bytes, ids)
    local pack = buffer.decode(bytes)
    each_ext(pack, function(mark)
        if mark.kind == "lazy" then mark.id = tonumber(ids[mark.id]) end
    end, {})
    return ship.unpack_bytes(buffer.encode(pack))
end

-- Builds the graph of data g in StreamingContext ssc (new, not started): its streams in the
-- recorded order (so their ids are the recorded ones) and its output operations.
function M.rebuild(ssc, g)
    local dstream = require "streamhost.dstream"
    local state = require "streamhost.state"
    local sources = require "streamhost.sources"
    local window = require "streamhost.window"
    local ids = register_entries(g.entries)
    ssc._remember_ms = g.remember_ms
    local built = {}
    for i, rec in ipairs(g.streams) do
        local d
        local fns = {}
        for j, id in ipairs(rec.fns) do fns[j] = ids[id] end
        if rec.op == "input" then
            d = sources.rebuild(ssc, rec.args, fns)
        else
            local parents, driver = {}, nil
            for j, p in ipairs(rec.parents) do parents[j] = built[p] end
            if rec.driver then
                driver = {}
                for k, bytes in pairs(rec.driver) do driver[k] = unpack_driver(bytes, ids) end
            end
            local opts = { args = rec.args, fns = fns, driver = driver, slide_ms = rec.slide_ms }
            d = rec.stateful and state.new(ssc, parents, rec.op, opts) or dstream.new(ssc, parents, rec.op, opts)
            if rec.args.window_ms then d._parent_remember = window.remember_window(rec.args.window_ms) end
            if rec.initial then d._initial = ssc.sparkContext:parallelize(rec.initial) end
        end
        if d._id ~= rec.id then error("checkpoint: stream " .. rec.id .. " came back as " .. d._id, 0) end
        d.name = rec.name
        d._storage = rec.storage and storage[rec.storage] or nil
        d._checkpoint_ms = rec.checkpoint_ms
        built[i] = d
    end
    for i, out in ipairs(g.outputs) do
        ssc._outputs[i] = { dstream = built[out.stream], func = unpack_driver(out.func, ids),
                            name = out.name, description = out.description, id = out.id }
    end
end

return M
