-- streamhost.rdd: the RDD API: lineage (narrow operations fused per partition, shuffles
-- between stages) and the actions that run it on the workers.
local ship = require "streamhost.ship"
local keys = require "streamhost.keys"
local scheduler = require "streamhost.scheduler"
local shffi = require "streamhost.ffi"
local codec = require "streamhost.codec"
local NULL = require "streamhost.null"

local type, error, ipairs, setmetatable = type, error, ipairs, setmetatable

local RDD = { __sh_context = "RDD" }  -- holds its SparkContext: refused where functions travel
RDD.__index = RDD

local M = { RDD = RDD }

local function new(sc, kind, n, fields)
    local rdd = fields or {}
    rdd.ctx, rdd._kind, rdd._n, rdd.id = sc, kind, n, sc:_new_rdd_id()
    return setmetatable(rdd, RDD)
end

local function check_fn(f, what, level)
    if type(f) ~= "function" then
        error(what .. " expects a function, got " .. type(f), (level or 2) + 1)
    end
end

-- Ships f, turning a refusal into an error at the caller's line.
local function ship_fn(f, what, level)
    check_fn(f, what, (level or 2) + 1)
    local ok, id = pcall(ship.ship, f)
    if not ok then error(id, (level or 2) + 1) end
    return id
end
M.ship_fn = ship_fn

-- parts: an array (one entry per partition) of arrays of owned blobs.
function M.from_blobs(sc, parts)
    return new(sc, "blobs", #parts, { _parts = parts })
end

-- A Kafka RDD: one partition per offset range (plain {topic, partition, fromOffset,
-- untilOffset}), read by the task that runs it; `kafka` holds the client configuration pairs
-- (conf), the shipped decoder and handler ids and the read timeout (timeout_ms).
function M.from_kafka(sc, ranges, kafka)
    return new(sc, "kafka", #ranges, { _ranges = ranges, _kafka = kafka })
end

-- The offset ranges of a Kafka RDD (createRDD, a direct stream's batch), as OffsetRange values.
function RDD:offsetRanges()
    if self._kind ~= "kafka" then
        error("offsetRanges: this RDD is not a Kafka RDD (only a direct stream's or createRDD's RDDs have offset ranges)", 2)
    end
    local OffsetRange = require("streamhost.kafka_types").OffsetRange
    local out = {}
    for i, r in ipairs(self._ranges) do
        out[i] = OffsetRange(r.topic, r.partition, r.fromOffset, r.untilOffset)
    end
    return out
end

function RDD:_parents()
    return self._deps or {}
end

-- The number of input records when the blobs know it (input streams), else 0.
function RDD:_known_count()
    if self._known then return self._known end  -- set by the input that made it
    local n = 0
    if self._kind == "kafka" then
        for _, r in ipairs(self._ranges) do n = n + (r.untilOffset - r.fromOffset) end
        return n
    end
    if self._kind ~= "blobs" then return 0 end
    for _, part in ipairs(self._parts) do
        for _, b in ipairs(part) do
            if type(b) == "table" then n = n + b.count else n = n + tonumber(b.count) end
        end
    end
    return n
end

function RDD:getNumPartitions()
    return self._n
end

-- The plan of partition p (0-based): the tree of operations a task runs for it.
function RDD:_plan(p)
    if self._cached_parts then
        return { op = "blobs", blobs = { shffi.blob_to_number(self._cached_parts[p + 1]) } }
    end
    local kind = self._kind
    if kind == "blobs" then
        local nums = {}
        for i, b in ipairs(self._parts[p + 1]) do
            if type(b) == "table" then  -- a slice {blob, from, to}
                nums[i] = { shffi.blob_to_number(b[1]), b[2], b[3] }
            else
                nums[i] = shffi.blob_to_number(b)
            end
        end
        return { op = "blobs", blobs = nums }
    elseif kind == "kafka" then
        local r, k = self._ranges[p + 1], self._kafka
        return { op = "kafka", conf = k.conf, timeout_ms = k.timeout_ms, topic = r.topic,
                 partition = r.partition, fromOffset = r.fromOffset, untilOffset = r.untilOffset,
                 keyDecoder = k.keyDecoder, valueDecoder = k.valueDecoder,
                 messageHandler = k.messageHandler }
    elseif kind == "narrow" then
        return { op = self._op, fn = self._fn, index = p, input = self._deps[1]:_plan(p) }
    elseif kind == "union" then
        for _, d in ipairs(self._deps) do
            local n = d:getNumPartitions()
            if p < n then return d:_plan(p) end
            p = p - n
        end
    elseif kind == "coalesce" then
        local inputs = {}
        for i, q in ipairs(self._groups[p + 1]) do inputs[i] = self._deps[1]:_plan(q) end
        return { op = "concat", inputs = inputs }
    elseif kind == "shuffled" then
        local inputs = {}
        for i, per_reduce in ipairs(self._outputs) do inputs[i] = per_reduce[p + 1] end
        return { op = "shuffled", agg = self._reduce_agg, mergeCombiners = self._mergeCombiners,
                 inputs = inputs }
    end
    error("cannot plan partition " .. p .. " of a " .. tostring(kind) .. " RDD")
end

local function narrow(parent, op, fn)
    return new(parent.ctx, "narrow", parent._n, { _deps = { parent }, _op = op, _fn = fn })
end

-- A narrow operation with a function shipped already (a DStream ships its functions once,
-- when it is defined, and uses the ids for every batch).
function RDD:_narrow(op, fn_id)
    return narrow(self, op, fn_id)
end

-- -- Narrow transformations ------------------------------------------------------------

function RDD:map(f)
    return narrow(self, "map", ship_fn(f, "map"))
end

function RDD:flatMap(f)
    return narrow(self, "flatMap", ship_fn(f, "flatMap"))
end

function RDD:filter(f)
    return narrow(self, "filter", ship_fn(f, "filter"))
end

function RDD:mapPartitions(f)
    return narrow(self, "mapPartitions", ship_fn(f, "mapPartitions"))
end

function RDD:mapPartitionsWithIndex(f)
    return narrow(self, "mapPartitionsWithIndex", ship_fn(f, "mapPartitionsWithIndex"))
end

function RDD:mapValues(f)
    return narrow(self, "mapValues", ship_fn(f, "mapValues"))
end

function RDD:flatMapValues(f)
    return narrow(self, "flatMapValues", ship_fn(f, "flatMapValues"))
end

function RDD:keys()
    return narrow(self, "keys")
end

function RDD:values()
    return narrow(self, "values")
end

function RDD:glom()
    return narrow(self, "glom")
end

function RDD:union(other)
    if other.ctx ~= self.ctx then error("union of RDDs of two different SparkContexts", 2) end
    return new(self.ctx, "union", self._n + other._n, { _deps = { self, other } })
end

function M.union_all(sc, rdds)
    if #rdds == 0 then return sc:emptyRDD() end
    local n = 0
    for _, r in ipairs(rdds) do n = n + r:getNumPartitions() end
    return new(sc, "union", n, { _deps = rdds })
end

-- Fewer partitions without a shuffle (neighbouring partitions joined), or with one.
function RDD:coalesce(numPartitions, shuffle)
    if type(numPartitions) ~= "number" or numPartitions < 1 then
        error("coalesce expects a positive number of partitions", 2)
    end
    if shuffle then return self:repartition(numPartitions) end
    local n = self._n
    local m = math.min(numPartitions, math.max(n, 1))
    local groups = {}
    for i = 0, m - 1 do
        local g = {}
        for q = math.floor(i * n / m), math.floor((i + 1) * n / m) - 1 do g[#g + 1] = q end
        groups[i + 1] = g
    end
    return new(self.ctx, "coalesce", m, { _deps = { self }, _groups = groups })
end

-- -- Shuffles ----------------------------------------------------------------------------

local function default_partitions(rdd, numPartitions)
    if numPartitions == nil then return math.max(rdd._n, 1) end
    if type(numPartitions) ~= "number" or numPartitions < 1 or numPartitions % 1 ~= 0 then
        error("numPartitions must be a positive integer, got " .. tostring(numPartitions), 3)
    end
    return numPartitions
end

-- A shuffled RDD over deps: map_sink says how map tasks bucket (and combine) their records,
-- reduce_agg how a reduce task aggregates its buckets.
local function shuffled(deps, n, map_sink, reduce_agg, mergeCombiners)
    map_sink.kind, map_sink.n = "shuffle", n
    return new(deps[1].ctx, "shuffled", n, {
        _deps = deps, _map_sink = map_sink, _reduce_agg = reduce_agg,
        _mergeCombiners = mergeCombiners,
    })
end

local function partition_fn(partitionFunc)
    if partitionFunc == nil or partitionFunc == keys.portable_hash then return nil end
    return ship_fn(partitionFunc, "partitionFunc", 3)
end

-- combineByKey, named `what` in the errors of bad records (reduceByKey, foldByKey...).
local function combine_by_key(self, what, createCombiner, mergeValue, mergeCombiners, numPartitions,
                              partitionFunc)
    local n = default_partitions(self, numPartitions)
    local merge_id = ship_fn(mergeCombiners, "combineByKey (mergeCombiners)")
    return shuffled({ self }, n, {
        agg = "combine", what = what,
        createCombiner = ship_fn(createCombiner, "combineByKey (createCombiner)"),
        mergeValue = ship_fn(mergeValue, "combineByKey (mergeValue)"),
        partitionFunc = partition_fn(partitionFunc),
    }, "combine", merge_id)
end

function RDD:combineByKey(createCombiner, mergeValue, mergeCombiners, numPartitions, partitionFunc)
    return combine_by_key(self, "combineByKey", createCombiner, mergeValue, mergeCombiners,
        numPartitions, partitionFunc)
end

-- The identity combiner travels by name (sh.ops.identity), so workers know reduceByKey by it.
local identity = require("streamhost.ops").identity
local IDENTITY_ID

-- The registry id of the identity function (createCombiner of reduceByKey), shipped once.
function M.identity_id()
    IDENTITY_ID = IDENTITY_ID or ship.ship(identity)
    return IDENTITY_ID
end

-- combineByKey with its functions shipped already (ids), into n partitions.
function RDD:_combine(create_id, merge_id, merge_combiners_id, numPartitions, partition_id)
    local n = default_partitions(self, numPartitions)
    return shuffled({ self }, n, { agg = "combine", createCombiner = create_id, mergeValue = merge_id,
                                   partitionFunc = partition_id }, "combine", merge_combiners_id)
end

-- partitionBy with its partition function shipped already (an id, or nil for portable_hash).
function RDD:_partition(numPartitions, partition_id)
    local n = default_partitions(self, numPartitions)
    return shuffled({ self }, n, { agg = "none", partitionFunc = partition_id }, "none")
end

function RDD:reduceByKey(func, numPartitions, partitionFunc)
    check_fn(func, "reduceByKey")
    return combine_by_key(self, "reduceByKey", identity, func, func, numPartitions, partitionFunc)
end

-- A fresh copy of a zero value (sh.null stays itself; metatables are kept).
local function deep_copy(v)
    if type(v) ~= "table" or v == NULL then return v end
    local t = {}
    for k, x in pairs(v) do t[k] = deep_copy(x) end
    return setmetatable(t, getmetatable(v))
end

function RDD:foldByKey(zeroValue, func, numPartitions, partitionFunc)
    check_fn(func, "foldByKey")
    local function create(v) return func(deep_copy(zeroValue), v) end
    return combine_by_key(self, "foldByKey", create, func, func, numPartitions, partitionFunc)
end

function RDD:groupByKey(numPartitions, partitionFunc)
    local n = default_partitions(self, numPartitions)
    return shuffled({ self }, n, { agg = "none", what = "groupByKey", partitionFunc = partition_fn(partitionFunc) },
        "group")
end

function RDD:partitionBy(numPartitions, partitionFunc)
    local n = default_partitions(self, numPartitions)
    -- updateStateByKey partitions its input with partitionBy: errors of bad records say so.
    local caller = debug.getinfo(2, "S")
    local what = caller and caller.source:find("/streamhost/state%.lua$") and "updateStateByKey" or "partitionBy"
    return shuffled({ self }, n, { agg = "none", what = what, partitionFunc = partition_fn(partitionFunc) }, "none")
end

function RDD:repartition(numPartitions)
    local n = default_partitions(self, numPartitions)
    return shuffled({ self }, n, { agg = "roundrobin", what = "repartition" }, "none")
end

-- {k, {vs of self}, {vs of other}...}: pyspark's cogroup, with arrays for the iterables.
function RDD:cogroup(other, numPartitions, what)
    local deps = { self }
    if getmetatable(other) == RDD then
        deps[2] = other
    else
        for _, o in ipairs(other) do deps[#deps + 1] = o end
    end
    local n = numPartitions and default_partitions(self, numPartitions) or 0
    if n == 0 then for _, d in ipairs(deps) do n = math.max(n, d._n) end end
    return shuffled(deps, math.max(n, 1), { agg = "none", what = what or "cogroup" }, "cogroup")
end

-- cogroup's lists hold sh.null for a nil value; in a joined {v, w} it is nil again, as the
-- missing side of an outer join is.
local function value(x)
    if x == NULL then return nil end
    return x
end

local function join_inner(g)
    local out, a, b = {}, g[1], g[2]
    for i = 1, #a do for j = 1, #b do out[#out + 1] = { value(a[i]), value(b[j]) } end end
    return out
end

local function join_left(g)
    local out, a, b = {}, g[1], g[2]
    for i = 1, #a do
        if #b == 0 then out[#out + 1] = { value(a[i]), nil } end
        for j = 1, #b do out[#out + 1] = { value(a[i]), value(b[j]) } end
    end
    return out
end

local function join_right(g)
    local out, a, b = {}, g[1], g[2]
    for j = 1, #b do
        if #a == 0 then out[#out + 1] = { nil, value(b[j]) } end
        for i = 1, #a do out[#out + 1] = { value(a[i]), value(b[j]) } end
    end
    return out
end

local function join_full(g)
    local out, a, b = {}, g[1], g[2]
    if #a == 0 then
        for j = 1, #b do out[#out + 1] = { nil, value(b[j]) } end
    elseif #b == 0 then
        for i = 1, #a do out[#out + 1] = { value(a[i]), nil } end
    else
        for i = 1, #a do for j = 1, #b do out[#out + 1] = { value(a[i]), value(b[j]) } end end
    end
    return out
end

function RDD:join(other, numPartitions)
    return self:cogroup(other, numPartitions, "join"):flatMapValues(join_inner)
end

function RDD:leftOuterJoin(other, numPartitions)
    return self:cogroup(other, numPartitions, "leftOuterJoin"):flatMapValues(join_left)
end

function RDD:rightOuterJoin(other, numPartitions)
    return self:cogroup(other, numPartitions, "rightOuterJoin"):flatMapValues(join_right)
end

function RDD:fullOuterJoin(other, numPartitions)
    return self:cogroup(other, numPartitions, "fullOuterJoin"):flatMapValues(join_full)
end

local function pair_true(x) return { x, true } end
local function keep_first(a) return a end

function RDD:distinct(numPartitions)
    return self:map(pair_true):reduceByKey(keep_first, numPartitions):keys()
end

-- Sorted by keyfunc(x) into numPartitions partitions of consecutive key ranges, as Spark does:
-- a first job samples the keys to choose the ranges, a shuffle sends each record to its range,
-- and each partition is sorted on its own. Records with equal keys keep their order within a
-- partition.
local SAMPLES_PER_PARTITION = 20

function RDD:sortBy(keyfunc, ascending, numPartitions)
    keyfunc = keyfunc or identity
    check_fn(keyfunc, "sortBy")
    if ascending == nil then ascending = true end
    local n = default_partitions(self, numPartitions)
    local less = keys.less
    local want = SAMPLES_PER_PARTITION * n
    local sample = self:mapPartitions(function(it)
        local ks = {}
        for x in it do ks[#ks + 1] = keyfunc(x) end
        table.sort(ks, less)
        local step, out = math.max(1, #ks / want), {}
        for i = 1, #ks, step do out[#out + 1] = ks[math.floor(i)] end
        return out
    end):collect()
    table.sort(sample, less)
    local bounds = {}  -- n - 1 keys; range i holds the keys up to bounds[i]
    for i = 1, n - 1 do
        local b = sample[math.floor(i * #sample / n)]
        if b ~= nil then bounds[#bounds + 1] = b end
    end
    local function range_of(k)
        local lo, hi = 1, #bounds + 1  -- the first bound not less than k
        while lo < hi do
            local mid = math.floor((lo + hi) / 2)
            if less(bounds[mid], k) then lo = mid + 1 else hi = mid end
        end
        return ascending and lo - 1 or n - lo
    end
    local function sort_partition(it)
        local arr = {}
        for kv in it do arr[#arr + 1] = { kv[1], #arr, kv[2] } end
        table.sort(arr, function(a, b)
            if less(a[1], b[1]) then return ascending end
            if less(b[1], a[1]) then return not ascending end
            return a[2] < b[2]
        end)
        local out = {}
        for i, d in ipairs(arr) do
            local x = d[3]
            if x == nil then x = NULL end  -- a nil record, as the partition's array holds it
            out[i] = x
        end
        return out
    end
    return self:map(function(x) return { keyfunc(x), x } end)
               :partitionBy(n, range_of)
               :mapPartitions(sort_partition)
end

local function first_of(kv) return kv[1] end

function RDD:sortByKey(ascending, numPartitions, keyfunc)
    local kf = keyfunc and function(kv) return keyfunc(kv[1]) end or first_of
    return self:sortBy(kf, ascending, numPartitions)
end

-- -- Caching -----------------------------------------------------------------------------

function RDD:persist(storageLevel) -- luacheck: ignore storageLevel
    self._cache_requested = true
    self.storageLevel = storageLevel
    return self
end

function RDD:cache()
    return self:persist(require("streamhost.storage").MEMORY_ONLY)
end

function RDD:unpersist()
    self._cache_requested, self._cached_parts = nil, nil
    return self
end

function RDD:isCached()
    return self._cached_parts ~= nil or self._cache_requested == true
end

-- -- Actions -------------------------------------------------------------------------------

-- Appends the records of a packed task result to out (n so far); a nil record, or a decoded
-- copy of sh.null, becomes sh.null itself. Returns the new n.
local function append_records(out, n, packed)
    local part, m = codec.unpack(packed)
    for i = 1, m do
        local x = part[i]
        if x == nil or x == NULL then x = NULL end
        n = n + 1
        out[n] = x
    end
    return n
end

-- Every record, in partition order; nil records are sh.null (Lua arrays hold no nil).
function RDD:collect()
    local out, n = {}, 0
    for _, packed in ipairs(scheduler.run_job(self, { kind = "collect" })) do
        n = append_records(out, n, packed)
    end
    return out
end

function RDD:count()
    local n = 0
    for _, c in ipairs(scheduler.run_job(self, { kind = "count" })) do n = n + c end
    return n
end

function RDD:take(num)
    local out = {}
    if num <= 0 then return out end
    -- Partition by partition, as Spark's take, so a small take reads little.
    for p = 0, self._n - 1 do
        local want = num - #out
        local sub = new(self.ctx, "coalesce", 1, { _deps = { self }, _groups = { { p } } })
        append_records(out, #out, scheduler.run_job(sub, { kind = "take", n = want })[1])
        if #out >= num then break end
    end
    return out
end

function RDD:first()
    local t = self:take(1)
    if #t == 0 then error("RDD is empty", 2) end
    if t[1] == NULL then return nil end  -- a nil record
    return t[1]
end

function RDD:isEmpty()
    return self._n == 0 or #self:take(1) == 0
end

-- The value of a fold or aggregate task's result (packed as one record).
local function value_of(r)
    return (codec.unpack(r.value))[1]
end

function RDD:reduce(f)
    local id = ship_fn(f, "reduce")
    local acc, have = nil, false
    for _, r in ipairs(scheduler.run_job(self, { kind = "fold", fn = id })) do
        if r.have then
            if have then acc = f(acc, value_of(r)) else acc, have = value_of(r), true end
        end
    end
    if not have then error("Can not reduce() empty RDD", 2) end
    return acc
end

function RDD:fold(zeroValue, op)
    local id = ship_fn(op, "fold")
    local acc = deep_copy(zeroValue)
    for _, r in ipairs(scheduler.run_job(self, { kind = "fold", fn = id, zero = zeroValue })) do
        acc = op(acc, value_of(r))
    end
    return acc
end

function RDD:aggregate(zeroValue, seqOp, combOp)
    local id = ship_fn(seqOp, "aggregate")
    check_fn(combOp, "aggregate")
    local acc = deep_copy(zeroValue)
    for _, r in ipairs(scheduler.run_job(self, { kind = "aggregate", fn = id, zero = zeroValue })) do
        acc = combOp(acc, value_of(r))
    end
    return acc
end

function RDD:sum()
    return self:fold(0, function(a, b) return a + b end)
end

-- The num first records in the order `before` (a strict order on keyfunc's keys): each
-- partition keeps its own num first, the driver merges them.
local function first_records(rdd, num, key, before)
    local kf = key or identity
    local function ordered(a, b) return before(kf(a), kf(b)) end
    local function firsts(it)
        local arr = {}
        for x in it do arr[#arr + 1] = x end
        table.sort(arr, ordered)
        for i = #arr, num + 1, -1 do arr[i] = nil end
        return arr
    end
    local all = rdd:mapPartitions(firsts):collect()
    table.sort(all, ordered)
    for i = #all, num + 1, -1 do all[i] = nil end
    return all
end

local function greater(a, b) return keys.less(b, a) end

function RDD:top(num, key)
    return first_records(self, num, key, greater)
end

function RDD:takeOrdered(num, key)
    return first_records(self, num, key, keys.less)
end

function RDD:foreach(f)
    scheduler.run_job(self, { kind = "foreach", fn = ship_fn(f, "foreach") })
end

function RDD:foreachPartition(f)
    scheduler.run_job(self, { kind = "foreachPartition", fn = ship_fn(f, "foreachPartition") })
end

-- {value = count} (pyspark returns a dict); composite values count by content.
function RDD:countByValue()
    local m, add = require("streamhost.worker").combiner(identity, function(a, b) return a + b end)
    for _, packed in ipairs(scheduler.run_job(self, { kind = "countByValue" })) do
        local part, n = codec.unpack(packed)
        for i = 1, n do add(part[i]) end
    end
    local out = {}
    require("streamhost.worker").keymap_each(m, function(v, c)
        if v == nil then v = NULL end  -- nil records count under sh.null
        out[v] = c
    end)
    return out
end

function RDD:countByKey()
    return self:keys():countByValue()
end

function RDD:collectAsMap()
    local out = {}
    for _, kv in ipairs(self:collect()) do out[kv[1]] = kv[2] end
    return out
end

-- Writes path/part-NNNNN (one record a line) and path/_SUCCESS. The directory appears whole
-- or not at all: it is written under a temporary name and renamed.
function RDD:saveAsTextFile(path)
    local output = require("streamhost.output")
    output.save_dir(path, function(tmp)
        scheduler.run_job(self, { kind = "save", dir = tmp })
    end)
end

function RDD:context()
    return self.ctx
end

function RDD:setName(name)
    self.name = name
    return self
end

function RDD:__tostring()
    return string.format("RDD[%d] (%s, %d partitions)", self.id, self._kind, self._n)
end

return M
