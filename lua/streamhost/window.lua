-- streamhost.window: windowed DStreams: window, reduceByKeyAndWindow (incremental with an
-- inverse function, as Spark's ReducedWindowedDStream), reduceByWindow, countByWindow,
-- countByValueAndWindow and groupByKeyAndWindow, installed as DStream methods.
local dstream = require "streamhost.dstream"
local rddmod = require "streamhost.rdd"
local scheduler = require "streamhost.scheduler"
local state = require "streamhost.state"
local NULL = require "streamhost.null"

local DStream = dstream.DStream
local check_ship, check_partitions = dstream.check_ship, dstream.check_partitions
local type, ipairs, error, floor = type, ipairs, error, math.floor

local M = {}

local function seconds(ms)
    return string.format("%gs", ms / 1000)
end

local function to_ms(d, what, level)
    if type(d) ~= "number" or d <= 0 then
        error(what .. " must be a positive number of seconds, got " .. tostring(d), level + 1)
    end
    return floor(d * 1000 + 0.5)
end

-- The window and slide of a windowed stream over parent, in ms; Spark's checks, raised at the
-- caller's caller (the job line that defines the stream).
local function window_params(parent, windowDuration, slideDuration, level)
    level = (level or 2) + 1
    local ps = parent._slide_ms
    local w = to_ms(windowDuration, "windowDuration", level)
    local s = slideDuration == nil and ps or to_ms(slideDuration, "slideDuration", level)
    if w % ps ~= 0 then
        error(string.format("The window duration of windowed DStream (%s) must be a multiple of the slide duration of parent DStream (%s)",
            seconds(w), seconds(ps)), level)
    end
    if s % ps ~= 0 then
        error(string.format("The slide duration of windowed DStream (%s) must be a multiple of the slide duration of parent DStream (%s)",
            seconds(s), seconds(ps)), level)
    end
    return w, s
end
M.window_params = window_params

-- The parent's RDDs of the times in (from, to], oldest first; times up to the context's zero
-- time (before the first batch) have none.
local function rdds_between(d, from, to)
    local parent = d._parents[1]
    local ps, zero = parent._slide_ms, d._ssc._zero_ms
    local out = {}
    for time = from + ps, to, ps do
        if time > zero then
            local r = parent:_get(time)
            if r then out[#out + 1] = r end
        end
    end
    return out
end

local function remember_window(w)
    return function(_, own) return own + w end
end
M.remember_window = remember_window

-- -- window ------------------------------------------------------------------------------------

dstream.define("window", function(d, t)
    return rddmod.union_all(d._ssc.sparkContext, rdds_between(d, t - d.args.window_ms, t))
end)

local function windowed(parent, w, s)
    local d = dstream.new(parent._ssc, { parent }, "window", { args = { window_ms = w }, slide_ms = s })
    d._parent_remember = remember_window(w)
    return d
end

-- Every record of the batches in the last windowDuration seconds, every slideDuration seconds.
function DStream:window(windowDuration, slideDuration)
    local w, s = window_params(self, windowDuration, slideDuration)
    return windowed(self, w, s)
end

-- -- reduceByKeyAndWindow ------------------------------------------------------------------------

-- The incremental window over `reduced` (the parent reduced by key into n partitions): the
-- previous window's value lives in the workers (partition p on worker p % nworkers); each slide
-- subtracts the batches that left and adds those that entered. Falls back to reducing the
-- whole window when there is no previous value (the first window, or a failed batch).
state.define("reducedWindow", function(d, t)
    local sc = d._ssc.sparkContext
    local w, s, n = d.args.window_ms, d._slide_ms, d.args.numPartitions
    local fn, inv, filter = d.fns[1], d.fns[2], d.fns[3]
    local reset = d._state_time ~= t - s or s >= w
    local added, removed
    if reset then
        added, removed = rdds_between(d, t - w, t), {}
    else
        added, removed = rdds_between(d, t - s, t), rdds_between(d, t - s - w, t - w)
    end
    for _, r in ipairs(added) do scheduler.prepare(sc, r) end
    for _, r in ipairs(removed) do scheduler.prepare(sc, r) end
    return state.update(d, n, t, function(p)
        local a, r = {}, {}
        for i, x in ipairs(added) do a[i] = x:_plan(p) end
        for i, x in ipairs(removed) do r[i] = x:_plan(p) end
        return { kind = "sh_window", fn = fn, inv = inv, filter = filter, added = a,
                 removed = r, reset = reset, time = t }
    end)
end)

local function incremental(reduced, fn, inv, filter, w, s, n)
    local d = state.new(reduced._ssc, { reduced }, "reducedWindow",
        { args = { window_ms = w, numPartitions = n }, fns = { fn, inv, filter }, slide_ms = s })
    d._parent_remember = remember_window(w)
    return d
end

-- fids: the shipped ids of func, invFunc and filterFunc (the last two may be nil).
local function reduce_by_key_and_window(self, fids, w, s, numPartitions)
    local n = numPartitions or self._ssc.sparkContext.defaultParallelism
    local reduced = dstream.reduce_by_key_id(self, fids[1], n)
    if fids[2] == nil then
        return dstream.reduce_by_key_id(windowed(reduced, w, s), fids[1], n)
    end
    return incremental(reduced, fids[1], fids[2], fids[3], w, s, n)
end

-- Ships reduceByKeyAndWindow's functions once, naming each in its refusal.
local function ship_window_fns(func, invFunc, filterFunc, what, level)
    level = level + 1
    return { check_ship(func, what, level),
             invFunc ~= nil and check_ship(invFunc, what .. " (invFunc)", level) or nil,
             filterFunc ~= nil and check_ship(filterFunc, what .. " (filterFunc)", level) or nil }
end

-- reduceByKey over a sliding window; with invFunc incremental (new = old + entered - left),
-- filterFunc({k, v}) keeping the pairs of the window worth keeping. As in pyspark, the
-- durations are checked first, then the functions.
function DStream:reduceByKeyAndWindow(func, invFunc, windowDuration, slideDuration, numPartitions, filterFunc)
    local w, s = window_params(self, windowDuration, slideDuration)
    local fids = ship_window_fns(func, invFunc, filterFunc, "reduceByKeyAndWindow", 2)
    check_partitions(numPartitions, 2)
    return reduce_by_key_and_window(self, fids, w, s, numPartitions)
end

-- -- Built on reduceByKeyAndWindow (as pyspark builds them) --------------------------------------

local function key_one(x) return { 1, x } end
local function second(kv) return kv[2] end
local function one(_) return 1 end
local function add(a, b) return a + b end
local function sub(a, b) return a - b end
local function pair_one(x) return { x, 1 } end
local function positive(kv) return kv[2] > 0 end
local function list_of(v)  -- a nil value is sh.null in the list, as groupByKey's lists hold it
    if v == nil then v = NULL end
    return { v }
end
local function extend(a, b)
    for i = 1, #b do a[#a + 1] = b[i] end
    return a
end
local function drop_prefix(a, b)  -- the values that left are the oldest ones, at the front
    local out = {}
    for i = #b + 1, #a do out[#out + 1] = a[i] end
    return out
end
local function non_empty(kv) return #kv[2] > 0 end

-- fids: the shipped ids of the reduce function and, for an incremental window, its inverse.
local function reduce_by_window(self, reduceFunc, fids, w, s)
    if fids[2] == nil then
        return windowed(self:reduce(reduceFunc), w, s):reduce(reduceFunc)
    end
    return reduce_by_key_and_window(self:map(key_one), fids, w, s, 1):map(second)
end

-- One record per window: its records reduced with reduceFunc (incremental with invReduceFunc).
function DStream:reduceByWindow(reduceFunc, invReduceFunc, windowDuration, slideDuration)
    local w, s = window_params(self, windowDuration, slideDuration)
    local fids = { check_ship(reduceFunc, "reduceByWindow"),
                   invReduceFunc ~= nil and check_ship(invReduceFunc, "reduceByWindow (invReduceFunc)") or nil }
    return reduce_by_window(self, reduceFunc, fids, w, s)
end

-- One record per window: the number of its records (incremental).
function DStream:countByWindow(windowDuration, slideDuration)
    local w, s = window_params(self, windowDuration, slideDuration)
    return reduce_by_window(self:map(one), add, ship_window_fns(add, sub, nil, "countByWindow", 2), w, s)
end

-- {value, count} for every distinct value of the window (incremental; values whose count fell
-- to 0 leave the window's state).
function DStream:countByValueAndWindow(windowDuration, slideDuration, numPartitions)
    local w, s = window_params(self, windowDuration, slideDuration)
    check_partitions(numPartitions, 2)
    return reduce_by_key_and_window(self:map(pair_one),
        ship_window_fns(add, sub, positive, "countByValueAndWindow", 2), w, s, numPartitions)
end

-- {k, {values}} for every key of the window, values oldest first (incremental, as pyspark;
-- keys whose values all left the window are dropped, as in Spark's Scala API).
function DStream:groupByKeyAndWindow(windowDuration, slideDuration, numPartitions)
    local w, s = window_params(self, windowDuration, slideDuration)
    check_partitions(numPartitions, 2)
    return reduce_by_key_and_window(self:mapValues(list_of),
        ship_window_fns(extend, drop_prefix, non_empty, "groupByKeyAndWindow", 2), w, s, numPartitions)
end

return M
