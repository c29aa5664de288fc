-- streamhost.dstream: DStream, a stream of RDDs, one per slide interval, and its operations.
-- Times are integer milliseconds inside; users see epoch seconds.
local rddmod = require "streamhost.rdd"
local ship = require "streamhost.ship"
local format = require "streamhost.format"
local storage = require "streamhost.storage"

local type, error, ipairs, setmetatable = type, error, ipairs, setmetatable

local DStream = { __sh_context = "DStream" }  -- holds its StreamingContext: never travels
DStream.__index = DStream

local M = { DStream = DStream }

-- A new DStream of ssc computed by compute(self, t_ms) -> RDD or nil.
local function new(ssc, parents, compute, slide_ms)
    ssc:_check_can_add(3)
    local d = setmetatable({
        _ssc = ssc,
        _parents = parents,
        _compute = compute,
        _slide_ms = slide_ms or (parents[1] and parents[1]._slide_ms) or ssc._batch_ms,
        _generated = {},
        _remember_ms = nil,
        _id = #ssc._dstreams + 1,
    }, DStream)
    ssc._dstreams[#ssc._dstreams + 1] = d
    return d
end
M.new = new

-- Refuses, where the stream is defined, a function that cannot travel to the workers.
local function check_ship(f, what, level)
    if type(f) ~= "function" then
        error(what .. " expects a function, got " .. type(f), (level or 2) + 1)
    end
    local ok, err = pcall(ship.ship, f)
    if not ok then error(err, (level or 2) + 1) end
end
M.check_ship = check_ship

local function nparams(f)
    local info = debug.getinfo(f, "u")
    return info.nparams or 0
end

-- The RDD of time t (ms), computed once and remembered; nil when t is not a slide boundary.
function DStream:_get(t)
    local g = self._generated[t]
    if g ~= nil then return g or nil end
    if (t - self._ssc._zero_ms) % self._slide_ms ~= 0 then return nil end
    local rdd = self:_compute(t)
    if rdd and self._storage then rdd:persist(self._storage) end
    self._generated[t] = rdd or false
    return rdd
end

-- Forgets RDDs older than the remember duration, as of time t.
function DStream:_forget(t)
    local keep = self._remember_ms or self._slide_ms
    for time in pairs(self._generated) do
        if time <= t - keep then self._generated[time] = nil end
    end
end

-- How long parents must remember for this stream (windows ask for more).
function DStream:_parent_remember(own)
    return own
end

-- Sets remember durations from the outputs up, as Spark's DStream.initialize does.
function DStream:_init_remember(ms)
    local own = math.max(ms or 0, self._slide_ms, self._remember_ms or 0)
    self._remember_ms = own
    for _, p in ipairs(self._parents) do p:_init_remember(self:_parent_remember(own)) end
end

local function derived(self, compute, slide_ms)
    return new(self._ssc, { self }, compute, slide_ms)
end

-- A stream whose RDD at t is f(parent's RDD at t).
local function per_rdd(self, f)
    return derived(self, function(d, t)
        local rdd = d._parents[1]:_get(t)
        return rdd and f(rdd, t)
    end)
end
M.per_rdd = per_rdd

local function default_parallelism(self, numPartitions)
    return numPartitions or self._ssc.sparkContext.defaultParallelism
end

-- -- Transformations ---------------------------------------------------------------------

local function narrow_op(name)
    DStream[name] = function(self, f, preservesPartitioning) -- luacheck: ignore preservesPartitioning
        check_ship(f, name)
        return per_rdd(self, function(rdd) return rdd[name](rdd, f) end)
    end
end
for _, name in ipairs({ "map", "flatMap", "filter", "mapPartitions", "mapPartitionsWithIndex",
                        "mapValues", "flatMapValues" }) do
    narrow_op(name)
end

function DStream:glom()
    return per_rdd(self, function(rdd) return rdd:glom() end)
end

local function count_partition(it)
    local n = 0
    for _ in it do n = n + 1 end
    return { n }
end

local function sum_partition(it)
    local n = 0
    for x in it do n = n + x end
    return { n }
end

-- One record per batch: the number of records (0 for an empty batch).
function DStream:count()
    return per_rdd(self, function(rdd)
        return rdd:mapPartitions(count_partition):coalesce(1):mapPartitions(sum_partition)
    end)
end

-- One record per batch (none for an empty batch): all records reduced with f.
function DStream:reduce(f)
    check_ship(f, "reduce")
    local function reduce_partition(it)
        local acc, have = nil, false
        for x in it do
            if have then acc = f(acc, x) else acc, have = x, true end
        end
        if have then return { acc } end
        return {}
    end
    return per_rdd(self, function(rdd)
        return rdd:mapPartitions(reduce_partition):coalesce(1):mapPartitions(reduce_partition)
    end)
end

local function pair_one(x) return { x, 1 } end
local function add(a, b) return a + b end

function DStream:countByValue()
    return self:map(pair_one):reduceByKey(add)
end

function DStream:reduceByKey(func, numPartitions)
    check_ship(func, "reduceByKey")
    return per_rdd(self, function(rdd)
        return rdd:reduceByKey(func, default_parallelism(self, numPartitions))
    end)
end

function DStream:combineByKey(createCombiner, mergeValue, mergeCombiners, numPartitions)
    check_ship(createCombiner, "combineByKey (createCombiner)")
    check_ship(mergeValue, "combineByKey (mergeValue)")
    check_ship(mergeCombiners, "combineByKey (mergeCombiners)")
    return per_rdd(self, function(rdd)
        return rdd:combineByKey(createCombiner, mergeValue, mergeCombiners,
            default_parallelism(self, numPartitions))
    end)
end

function DStream:groupByKey(numPartitions)
    return per_rdd(self, function(rdd)
        return rdd:groupByKey(default_parallelism(self, numPartitions))
    end)
end

function DStream:partitionBy(numPartitions, partitionFunc)
    if partitionFunc then check_ship(partitionFunc, "partitionBy") end
    return per_rdd(self, function(rdd) return rdd:partitionBy(numPartitions, partitionFunc) end)
end

function DStream:repartition(numPartitions)
    return per_rdd(self, function(rdd) return rdd:repartition(numPartitions) end)
end

-- -- Streams of two or more parents ----------------------------------------------------------

local function check_same_slide(a, b, what)
    if a._ssc ~= b._ssc then error(what .. " of DStreams of two different StreamingContexts", 4) end
    if a._slide_ms ~= b._slide_ms then
        error(string.format("%s of DStreams with different slide durations (%gs and %gs)",
            what, a._slide_ms / 1000, b._slide_ms / 1000), 4)
    end
end

-- f(time, rdds...) over the RDDs of several streams at the same time.
local function multi(streams, f)
    return new(streams[1]._ssc, streams, function(d, t)
        local rdds = {}
        for i, p in ipairs(d._parents) do
            rdds[i] = p:_get(t)
            if rdds[i] == nil then return nil end
        end
        return f(t, rdds)
    end)
end
M.multi = multi

function DStream:union(other)
    check_same_slide(self, other, "union")
    return multi({ self, other }, function(_, r) return r[1]:union(r[2]) end)
end

local function binary_op(name)
    DStream[name] = function(self, other, numPartitions)
        check_same_slide(self, other, name)
        return multi({ self, other }, function(_, r)
            return r[1][name](r[1], r[2], default_parallelism(self, numPartitions))
        end)
    end
end
for _, name in ipairs({ "cogroup", "join", "leftOuterJoin", "rightOuterJoin", "fullOuterJoin" }) do
    binary_op(name)
end

local function check_rdd(r, what)
    if getmetatable(r) ~= rddmod.RDD then
        error(what .. " must return an RDD, got " .. type(r), 0)
    end
    return r
end

-- transform(f): f(rdd) or, when f takes two parameters, f(time, rdd); runs in the driver.
function DStream:transform(func)
    if type(func) ~= "function" then error("transform expects a function", 2) end
    local with_time = nparams(func) >= 2
    return per_rdd(self, function(rdd, t)
        if with_time then return check_rdd(func(t / 1000, rdd), "the transform function") end
        return check_rdd(func(rdd), "the transform function")
    end)
end

function DStream:transformWith(func, other, keepSerializer) -- luacheck: ignore keepSerializer
    if type(func) ~= "function" then error("transformWith expects a function", 2) end
    check_same_slide(self, other, "transformWith")
    local with_time = nparams(func) >= 3
    return multi({ self, other }, function(t, r)
        if with_time then return check_rdd(func(t / 1000, r[1], r[2]), "the transformWith function") end
        return check_rdd(func(r[1], r[2]), "the transformWith function")
    end)
end

-- -- Persistence -------------------------------------------------------------------------------

function DStream:persist(storageLevel)
    self._storage = storageLevel or storage.MEMORY_ONLY
    return self
end

function DStream:cache()
    return self:persist(storage.MEMORY_ONLY)
end

-- Marks the stream's RDDs for periodic checkpointing every `interval` seconds.
function DStream:checkpoint(interval)
    self._checkpoint_ms = math.floor(interval * 1000 + 0.5)
    return self
end

function DStream:context()
    return self._ssc
end

-- The RDDs between begin and end (epoch seconds, both included) that the stream still
-- remembers, oldest first.
function DStream:slice(begin, finish)
    local ssc = self._ssc
    if ssc._state == "initialized" then error("slice: the StreamingContext has not been started yet", 2) end
    local b, e = math.floor(begin * 1000 + 0.5), math.floor(finish * 1000 + 0.5)
    local times = {}
    for t, rdd in pairs(self._generated) do
        if rdd and t >= b and t <= e then times[#times + 1] = t end
    end
    table.sort(times)
    local out = {}
    for i, t in ipairs(times) do out[i] = self._generated[t] end
    return out
end

-- -- Output operations -----------------------------------------------------------------------

-- Registers an output: func(rdd) or, when it takes two parameters, func(time, rdd), every batch.
function DStream:foreachRDD(func)
    if type(func) ~= "function" then error("foreachRDD expects a function, got " .. type(func), 2) end
    local with_time = nparams(func) >= 2
    local info = debug.getinfo(2, "Sl")
    self._ssc:_add_output(self, function(rdd, t)
        if with_time then func(t / 1000, rdd) else func(rdd) end
    end, "foreachRDD", string.format("foreachRDD at %s:%d", info.short_src, info.currentline or 0))
end

-- Prints the first num records of every batch (pyspark's format, records as Lua literals).
function DStream:pprint(num)
    num = num or 10
    self:foreachRDD(function(time, rdd)
        local taken = rdd:take(num + 1)
        local out = { "-------------------------------------------",
                      "Time: " .. format.time(time),
                      "-------------------------------------------" }
        for i = 1, math.min(num, #taken) do out[#out + 1] = format.literal(taken[i]) end
        if #taken > num then out[#out + 1] = "..." end
        out[#out + 1] = ""
        io.stdout:write(table.concat(out, "\n"), "\n")
        io.stdout:flush()
    end)
    local last = self._ssc._outputs[#self._ssc._outputs]
    last.name = "pprint"
end

-- Writes every batch to prefix-<time in ms>[.suffix], whole or not at all; a replayed batch
-- replaces its directory.
function DStream:saveAsTextFiles(prefix, suffix)
    if type(prefix) ~= "string" then error("saveAsTextFiles expects a path prefix", 2) end
    self:foreachRDD(function(time, rdd)
        local path = string.format("%s-%d", prefix, math.floor(time * 1000 + 0.5))
        if suffix and suffix ~= "" then path = path .. "." .. suffix end
        require("streamhost.output").save_dir(path, function(tmp)
            require("streamhost.scheduler").run_job(rdd, { kind = "save", dir = tmp })
        end, true)
    end)
    local last = self._ssc._outputs[#self._ssc._outputs]
    last.name = "saveAsTextFiles"
end

function DStream:__tostring()
    return string.format("DStream[%d] (slide %gs)", self._id, self._slide_ms / 1000)
end

return M
