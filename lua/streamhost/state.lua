-- streamhost.state: stateful DStreams on the driver: updateStateByKey, and what every stateful
-- stream shares (incremental windows too): a stream id for the workers' state stores, update
-- tasks pinned to the worker that owns the partition (partition p on worker p % nworkers), the
-- checkpoint-directory check at start, and dropping the workers' state when the context stops.
local ffi = require "ffi"
local shffi = require "streamhost.ffi"
local dstream = require "streamhost.dstream"
local rddmod = require "streamhost.rdd"
local scheduler = require "streamhost.scheduler"
local loop = require "streamhost.loop"

local C = shffi.C
local DStream = dstream.DStream
local type, ipairs, pairs, error = type, ipairs, pairs, error

local M = {}

local next_sid = 0  -- stream ids of the workers' state stores, unique in the process

local NO_CHECKPOINT = "The checkpoint directory has not been set. Please set it by StreamingContext.checkpoint()"
M.NO_CHECKPOINT = NO_CHECKPOINT

-- Spark refuses to start stateful and incremental streams without a checkpoint directory.
local function validate(d)
    local ssc = d._ssc
    if not (ssc._checkpoint_dir or ssc.sparkContext._checkpoint_dir) then
        error(NO_CHECKPOINT, 3)
    end
end

-- Drops the references the driver holds on the blobs of a forgotten RDD of a stateful stream;
-- a later use of the RDD is an error rather than a read of freed memory.
local function release_rdd(rdd)
    if rdd._kind ~= "blobs" then return end
    for _, part in ipairs(rdd._parts) do
        for i, b in ipairs(part) do
            C.sh_ffi_blob_unref(ffi.gc(b, nil))
            part[i] = nil
        end
    end
    rdd._parts, rdd._kind = nil, "released"
end

local function forget(d, t)
    local keep = d._remember_ms or d._slide_ms
    for time, rdd in pairs(d._generated) do
        if rdd and time <= t - keep then release_rdd(rdd) end
    end
    DStream._forget(d, t)
end

-- Drops the stream's state in every worker and the RDDs it still remembers.
local function cleanup(d)
    for time, rdd in pairs(d._generated) do
        if rdd then release_rdd(rdd) end
        d._generated[time] = nil
    end
    d._state_time = nil
    local sc = d._ssc.sparkContext
    if not d._touched or sc._stopped or sc._pool_ptr == nil then return end
    d._touched = nil
    local tasks = {}
    for w = 0, sc.defaultParallelism - 1 do
        tasks[w + 1] = { sink = { kind = "sh_state_drop", sids = { d._sid } }, part = w, affinity = w }
    end
    scheduler.run_tasks(sc, tasks)
end

-- Ends the update of batch t: every worker installs the new state of its partitions (ok), or
-- drops it and keeps the previous one (the batch failed), so a state moves for all partitions
-- or none. Only then does the stream's state time move to t.
local function finish_update(d, t, ok)
    local sc = d._ssc.sparkContext
    if not sc._stopped and sc._pool_ptr ~= nil then
        local tasks = {}
        for w = 0, sc.defaultParallelism - 1 do
            tasks[w + 1] = { sink = { kind = "sh_state_commit", sid = d._sid, time = t, ok = ok },
                             part = w, affinity = w }
        end
        scheduler.run_tasks(sc, tasks)
    end
    if ok then
        d._state_time = t
    else
        local rdd = d._generated[t]
        if rdd then release_rdd(rdd) end
        d._generated[t] = nil
    end
end

-- Registers a stateful DStream op (what dstream.define does for the others).
M.define = dstream.define

-- A new stateful DStream, as dstream.new; d._sid names its state in the workers.
function M.new(ssc, parents, op, opts)
    local d = dstream.new(ssc, parents, op, opts)
    next_sid = next_sid + 1
    d._sid = next_sid
    d._validate = validate
    d._forget = forget
    d._cleanup = cleanup
    d._finish_update = finish_update
    return d
end

-- The plan of partition p of a state RDD: its chunks, read by the workers' sh_state_chunks
-- (state_store), which paces the GC to the decoding; cached or released RDDs plan as usual.
local function state_plan(rdd, p)
    if rdd._kind ~= "blobs" or rdd._cached_parts then return rddmod.RDD._plan(rdd, p) end
    local nums = {}
    for i, b in ipairs(rdd._parts[p + 1]) do nums[i] = shffi.blob_to_number(b) end
    return { op = "sh_state_chunks", blobs = nums }
end

-- Runs the update of batch t: one task per partition (0..n-1), each on the worker that owns
-- the partition, with the sink that sink_of(p) returns; returns the RDD of the new state (n
-- partitions), which the workers keep pending until the batch ends (finish_update).
function M.update(d, n, t, sink_of)
    local sc = d._ssc.sparkContext
    local nworkers = sc.defaultParallelism
    d._touched = true
    local tasks = {}
    for p = 0, n - 1 do
        local sink = sink_of(p)
        sink.sid, sink.nworkers = d._sid, nworkers
        tasks[p + 1] = { sink = sink, part = p, affinity = p }
    end
    local parts = scheduler.run_tasks(sc, tasks, true)
    local rdd = rddmod.from_blobs(sc, parts)
    rdd._plan = state_plan
    -- The new state is pending in the workers until the batch ends (finish_update).
    local batch = loop.context().batch
    if batch then
        batch.touched[d] = true
    else
        finish_update(d, t, true)
    end
    return rdd
end

-- The committed state of stream d as of its state time: the RDD whose partitions are the
-- state's chunks (blobs), or nil when it has none (checkpoints write it from the blobs).
function M.current(d)
    local t = d._state_time
    local rdd = t and d._generated[t]
    if not rdd or rdd._kind ~= "blobs" then return nil end
    return rdd, t
end

-- Installs, from a checkpoint, the state of d as of time t: parts[p + 1] = the blobs (owned
-- cdata) of partition p. Each worker takes the partitions it owns; the driver keeps the RDD.
function M.install(d, t, parts)
    local sc = d._ssc.sparkContext
    local nworkers = sc.defaultParallelism
    local tasks = {}
    for p = 0, #parts - 1 do
        local nums = {}
        for i, b in ipairs(parts[p + 1]) do nums[i] = shffi.blob_to_number(b) end
        tasks[p + 1] = { sink = { kind = "sh_state_install", sid = d._sid, nworkers = nworkers,
                                  blobs = nums, time = t }, part = p, affinity = p }
    end
    scheduler.run_tasks(sc, tasks)
    d._touched = true
    local rdd = rddmod.from_blobs(sc, parts)
    rdd._plan = state_plan
    d._generated[t] = rdd
    d._state_time = t
end

-- What each worker's state store holds (for tests): an array by worker index of
-- { index = w, parts = { [sid] = {partition, ...} } }.
function M.worker_info(sc)
    local tasks = {}
    for w = 0, sc.defaultParallelism - 1 do
        tasks[w + 1] = { sink = { kind = "sh_state_info" }, part = w, affinity = w }
    end
    return scheduler.run_tasks(sc, tasks)
end

-- -- updateStateByKey ----------------------------------------------------------------------------

-- updateFunc(newValues, lastState) -> new state, or nil to drop the key; newValues is an array
-- (empty when the key has only a state), lastState nil for a new key. initialRDD ({k, state}
-- records, an RDD or an array) seeds the state.
M.define("updateStateByKey", function(d, t)
    local sc = d._ssc.sparkContext
    local batch = d._parents[1]:_get(t)
    if batch == nil then return nil end
    local n = d.args.numPartitions
    local input = batch:partitionBy(n)
    scheduler.prepare(sc, input)
    local fresh = d._state_time == nil
    local init
    if fresh and d._initial then
        init = d._initial:partitionBy(n)
        scheduler.prepare(sc, init)
    end
    return M.update(d, n, t, function(p)
        return { kind = "sh_state", fn = d.fns[1], input = input:_plan(p), fresh = fresh,
                 init = init and init:_plan(p), time = t }
    end)
end)

function DStream:updateStateByKey(updateFunc, numPartitions, initialRDD)
    local fn = dstream.check_ship(updateFunc, "updateStateByKey")
    local sc = self._ssc.sparkContext
    dstream.check_partitions(numPartitions, 2)
    local n = numPartitions or sc.defaultParallelism
    if initialRDD ~= nil and getmetatable(initialRDD) ~= rddmod.RDD then
        if type(initialRDD) ~= "table" then
            error("updateStateByKey: initialRDD must be an RDD or an array of {key, state}", 2)
        end
        initialRDD = sc:parallelize(initialRDD)
    end
    local d = M.new(self._ssc, { self }, "updateStateByKey",
        { fns = { fn }, args = { numPartitions = n, initialRDD = initialRDD ~= nil } })
    d._initial = initialRDD
    return d
end

return M
