-- streamhost.dstream: DStream, a stream of RDDs, one per slide interval, and its operations.
-- Every DStream is a plain record (DESIGN.md "The graph is data"): id, name, op, args (plain
-- values), fns (the shipped functions' registry ids, shipped once when the stream is defined),
-- parents. What an op computes for a batch lives in OPS, by op name, not in closures. Times are
-- integer milliseconds inside; users see epoch seconds.
local rddmod = require "streamhost.rdd"
local ship = require "streamhost.ship"
local format = require "streamhost.format"
local storage = require "streamhost.storage"

local type, error, ipairs, pairs, setmetatable = type, error, ipairs, pairs, setmetatable

local DStream = { __sh_context = "DStream" }  -- holds its StreamingContext: never travels
DStream.__index = DStream

-- op name -> compute(d, t_ms) -> the RDD of time t, or nil.
local OPS = {}

local M = { DStream = DStream, OPS = OPS }

-- Registers what a DStream op computes for a batch (modules that add ops call it).
function M.define(op, compute)
    OPS[op] = compute
end

-- A new DStream of ssc: op names its entry in OPS; opts.args (plain values), opts.fns (shipped
-- function ids), opts.driver (functions that run in the driver: transform, foreachRDD;
-- recorded by where they are defined), opts.slide_ms (default: the first parent's).
local function new(ssc, parents, op, opts)
    ssc:_check_can_add(3)
    opts = opts or {}
    if OPS[op] == nil then error("no DStream operation named " .. tostring(op), 2) end
    local d = setmetatable({
        _ssc = ssc,
        _parents = parents,
        op = op,
        args = opts.args or {},
        fns = opts.fns or {},
        _driver = opts.driver,
        _slide_ms = opts.slide_ms or (parents[1] and parents[1]._slide_ms) or ssc._batch_ms,
        _generated = {},
        _remember_ms = nil,
        _id = #ssc._dstreams + 1,
    }, DStream)
    ssc._dstreams[#ssc._dstreams + 1] = d
    return d
end
M.new = new

function DStream:_compute(t)
    return OPS[self.op](self, t)
end

-- Refuses, where the stream is defined, a function that cannot travel to the workers; returns
-- its registry id (shipped once, for every batch of the stream).
local function check_ship(f, what, level)
    if type(f) ~= "function" then
        error(what .. " expects a function, got " .. type(f), (level or 2) + 1)
    end
    local ok, id = pcall(ship.ship, f)
    if not ok then error(id, (level or 2) + 1) end
    return id
end
M.check_ship = check_ship

local function nparams(f)
    local info = debug.getinfo(f, "u")
    return info.nparams or 0
end

local function where(f)
    local info = debug.getinfo(f, "S")
    return string.format("%s:%d", info.short_src, info.linedefined or 0)
end

-- Names the stream (an extension beyond pyspark): checkpoints and hot reload match a stream's
-- state by name, else by position.
function DStream:setName(name)
    if type(name) ~= "string" or name == "" then error("setName expects a non-empty string", 2) end
    self.name = name
    return self
end

-- The stream as plain data: what the graph holds for it, comparable and serializable.
function DStream:_record()
    local fns, parents, driver = {}, {}, nil
    for i, id in ipairs(self.fns) do fns[i] = tonumber(id) end
    for i, p in ipairs(self._parents) do parents[i] = p._id end
    if self._driver then
        driver = {}
        for k, f in pairs(self._driver) do
            if type(f) == "function" then driver[k] = where(f) end
        end
    end
    return { id = self._id, name = self.name, op = self.op, args = self.args, fns = fns,
             parents = parents, slide_ms = self._slide_ms, driver = driver }
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

-- A stream whose RDD at t comes from its parent's RDD at t.
local function unary(self, op, opts)
    return new(self._ssc, { self }, op, opts)
end

-- op(parent_rdd, d, t) for ops of one parent: the parent's RDD of t through f.
local function define_unary(op, f)
    M.define(op, function(d, t)
        local rdd = d._parents[1]:_get(t)
        return rdd and f(rdd, d, t)
    end)
end

local function default_parallelism(self, numPartitions)
    return numPartitions or self._ssc.sparkContext.defaultParallelism
end

-- Refuses a numPartitions that is given and not a positive integer, at the caller's caller.
local function check_partitions(n, level)
    if n ~= nil and (type(n) ~= "number" or n < 1 or n % 1 ~= 0) then
        error("numPartitions must be a positive integer, got " .. tostring(n), level + 1)
    end
end
M.check_partitions = check_partitions

-- -- Transformations ---------------------------------------------------------------------

local NARROW = { "map", "flatMap", "filter", "mapPartitions", "mapPartitionsWithIndex",
                 "mapValues", "flatMapValues" }
for _, name in ipairs(NARROW) do
    define_unary(name, function(rdd, d) return rdd:_narrow(name, d.fns[1]) end)
    DStream[name] = function(self, f, preservesPartitioning) -- luacheck: ignore preservesPartitioning
        return unary(self, name, { fns = { check_ship(f, name) } })
    end
end

define_unary("glom", function(rdd) return rdd:glom() end)
function DStream:glom()
    return unary(self, "glom")
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

local COUNT_ID, SUM_ID  -- shipped once, on first use

-- One record per batch: the number of records (0 for an empty batch).
define_unary("count", function(rdd, d)
    return rdd:_narrow("mapPartitions", d.fns[1]):coalesce(1):_narrow("mapPartitions", d.fns[2])
end)
function DStream:count()
    COUNT_ID = COUNT_ID or ship.ship(count_partition)
    SUM_ID = SUM_ID or ship.ship(sum_partition)
    return unary(self, "count", { fns = { COUNT_ID, SUM_ID } })
end

-- One record per batch (none for an empty batch): all records reduced with f.
define_unary("reduce", function(rdd, d)
    return rdd:_narrow("mapPartitions", d.fns[2]):coalesce(1):_narrow("mapPartitions", d.fns[2])
end)
function DStream:reduce(f)
    local fid = check_ship(f, "reduce")
    local function reduce_partition(it)
        local acc, have = nil, false
        for x in it do
            if have then acc = f(acc, x) else acc, have = x, true end
        end
        if have then return { acc } end
        return {}
    end
    return unary(self, "reduce", { fns = { fid, ship.ship(reduce_partition) } })
end

-- Built-in operators (sh.ops), so that a stage over text lines counts in C.
local ops = require "streamhost.ops"
local pair_one, add = ops.pair(1), ops.add

function DStream:countByValue()
    return self:map(pair_one):reduceByKey(add)
end

define_unary("combineByKey", function(rdd, d)
    local f = d.fns
    return rdd:_combine(f[1], f[2], f[3], d.args.numPartitions or d._ssc.sparkContext.defaultParallelism)
end)

-- reduceByKey with its function shipped already (windows reuse the id they checked).
local function reduce_by_key_id(self, fid, numPartitions)
    return unary(self, "combineByKey", { fns = { rddmod.identity_id(), fid, fid },
                                         args = { numPartitions = numPartitions, reduce = true } })
end
M.reduce_by_key_id = reduce_by_key_id

function DStream:reduceByKey(func, numPartitions)
    local fid = check_ship(func, "reduceByKey")
    check_partitions(numPartitions, 2)
    return reduce_by_key_id(self, fid, numPartitions)
end

function DStream:combineByKey(createCombiner, mergeValue, mergeCombiners, numPartitions)
    local fns = { check_ship(createCombiner, "combineByKey (createCombiner)"),
                  check_ship(mergeValue, "combineByKey (mergeValue)"),
                  check_ship(mergeCombiners, "combineByKey (mergeCombiners)") }
    check_partitions(numPartitions, 2)
    return unary(self, "combineByKey", { fns = fns, args = { numPartitions = numPartitions } })
end

define_unary("groupByKey", function(rdd, d)
    return rdd:groupByKey(default_parallelism(d, d.args.numPartitions))
end)
function DStream:groupByKey(numPartitions)
    check_partitions(numPartitions, 2)
    return unary(self, "groupByKey", { args = { numPartitions = numPartitions } })
end

define_unary("partitionBy", function(rdd, d)
    return rdd:_partition(d.args.numPartitions, d.fns[1])
end)
function DStream:partitionBy(numPartitions, partitionFunc)
    local fns = {}
    if partitionFunc and partitionFunc ~= require("streamhost.keys").portable_hash then
        fns[1] = check_ship(partitionFunc, "partitionBy")
    end
    return unary(self, "partitionBy", { fns = fns, args = { numPartitions = numPartitions } })
end

define_unary("repartition", function(rdd, d) return rdd:repartition(d.args.numPartitions) end)
function DStream:repartition(numPartitions)
    return unary(self, "repartition", { args = { numPartitions = numPartitions } })
end

-- -- Streams of two or more parents ----------------------------------------------------------

local function check_same_slide(a, b, what)
    if a._ssc ~= b._ssc then error(what .. " of DStreams of two different StreamingContexts", 4) end
    if a._slide_ms ~= b._slide_ms then
        error(string.format("%s of DStreams with different slide durations (%gs and %gs)",
            what, a._slide_ms / 1000, b._slide_ms / 1000), 4)
    end
end

-- op over the parents' RDDs of the same time: f(rdds, d, t).
local function define_multi(op, f)
    M.define(op, function(d, t)
        local rdds = {}
        for i, p in ipairs(d._parents) do
            rdds[i] = p:_get(t)
            if rdds[i] == nil then return nil end
        end
        return f(rdds, d, t)
    end)
end
M.define_multi = define_multi

define_multi("union", function(r) return rddmod.union_all(r[1].ctx, r) end)
function DStream:union(other)
    check_same_slide(self, other, "union")
    return new(self._ssc, { self, other }, "union")
end

for _, name in ipairs({ "cogroup", "join", "leftOuterJoin", "rightOuterJoin", "fullOuterJoin" }) do
    define_multi(name, function(r, d)
        return r[1][name](r[1], r[2], default_parallelism(d, d.args.numPartitions))
    end)
    DStream[name] = function(self, other, numPartitions)
        check_same_slide(self, other, name)
        return new(self._ssc, { self, other }, name, { args = { numPartitions = numPartitions } })
    end
end

local function check_rdd(r, what)
    if getmetatable(r) ~= rddmod.RDD then
        error(what .. " must return an RDD, got " .. type(r), 0)
    end
    return r
end

-- transform(f): f(rdd) or, when f takes two parameters, f(time, rdd); runs in the driver.
define_unary("transform", function(rdd, d, t)
    local func = d._driver.func
    if d.args.with_time then return check_rdd(func(t / 1000, rdd), "the transform function") end
    return check_rdd(func(rdd), "the transform function")
end)
function DStream:transform(func)
    if type(func) ~= "function" then error("transform expects a function", 2) end
    return unary(self, "transform", { args = { with_time = nparams(func) >= 2 }, driver = { func = func } })
end

define_multi("transformWith", function(r, d, t)
    local func = d._driver.func
    if d.args.with_time then return check_rdd(func(t / 1000, r[1], r[2]), "the transformWith function") end
    return check_rdd(func(r[1], r[2]), "the transformWith function")
end)
function DStream:transformWith(func, other, keepSerializer) -- luacheck: ignore keepSerializer
    if type(func) ~= "function" then error("transformWith expects a function", 2) end
    check_same_slide(self, other, "transformWith")
    return new(self._ssc, { self, other }, "transformWith",
        { args = { with_time = nparams(func) >= 3 }, driver = { func = func } })
end

-- StreamingContext.transform(dstreams, func): func(rdds) or func(time, rdds).
define_multi("transformAll", function(r, d, t)
    local func = d._driver.func
    if d.args.with_time then return check_rdd(func(t / 1000, r), "the transform function") end
    return check_rdd(func(r), "the transform function")
end)
function M.transform_all(streams, func)
    return new(streams[1]._ssc, streams, "transformAll",
        { args = { with_time = nparams(func) >= 2 }, driver = { func = func } })
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

-- An extension beyond pyspark: hands every batch's records to the C callback registered with
-- sh_host_on_output(h, name, ...), strings as they are, other records in pprint's literal form.
function DStream:output(name)
    if type(name) ~= "string" or name == "" then error("output expects an output name", 2) end
    local warned = false
    self:foreachRDD(function(time, rdd)
        local ffi = require "ffi"
        local shffi = require "streamhost.ffi"
        local recs = rdd:collect()
        local n = #recs
        local arr = ffi.new("sh_record_t[?]", math.max(n, 1))
        local keep = {}
        for i = 1, n do
            local r = recs[i]
            local s = type(r) == "string" and r or format.literal(r)
            keep[i] = s
            arr[i - 1].data, arr[i - 1].len = s, #s
        end
        if shffi.C.sh_ffi_output_deliver(shffi.host(), name, time, arr, n) == 0 and not warned then
            warned = true
            io.stderr:write("streamhost: output '", name, "' has no callback (sh_host_on_output): its batches are dropped\n")
        end
        keep = nil -- luacheck: ignore keep (held until the callback returned)
    end)
    local last = self._ssc._outputs[#self._ssc._outputs]
    last.name, last.output = "output", name
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
