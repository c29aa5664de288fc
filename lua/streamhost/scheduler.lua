-- streamhost.scheduler: runs jobs on the worker pool: prepares shuffle map stages and caches,
-- then one task per partition. Tasks are submitted without blocking; the coroutine that asked
-- waits (streamhost.loop) while the loop turns, and the dispatch hands it the completions.
local ffi = require "ffi"
local shffi = require "streamhost.ffi"
local codec = require "streamhost.codec"
local loop = require "streamhost.loop"
local shared = require "streamhost.shared"  -- accumulators: merged when a task succeeds

local C = shffi.C

local M = {}

local id_out, ok_out = ffi.new("double[1]"), ffi.new("int[1]")
local res_out, len_out = ffi.new("char *[1]"), ffi.new("size_t[1]")
local made_out = ffi.new("sh_bloblist_t *[1]")

local jobs = {}  -- task id -> the job waiting for it
local live = {}  -- every job not yet returned (abandoned together when the pool goes)

-- Takes every finished task of `pool` and hands it to its job; a job whose last task is done
-- wakes its coroutine. Called by the dispatch and by a job that waits without yielding.
local function drain(pool)
    while C.sh_ffi_pool_next_done(pool, id_out, ok_out, res_out, len_out, made_out) == 1 do
        local id = id_out[0]
        local text = shffi.take_string(res_out[0], len_out[0]) or ""
        local made = made_out[0]
        local job = jobs[id]
        jobs[id] = nil
        if job == nil then  -- its job was abandoned (the context stopped): drop what it made
            C.sh_ffi_bloblist_free(made)
        else
            local i = job.index[id]
            if made ~= nil then job.made[#job.made + 1] = made end
            if ok_out[0] == 1 then
                local r = codec.decode(text)  -- {result, accumulator deltas or nil} (worker.run)
                job.results[i] = r[1]
                if r[2] then shared.merge(r[2]) end
            elseif job.failure == nil then
                job.failure = text
            end
            job.pending = job.pending - 1
            if job.pending == 0 and job.co then loop.wake(job.co) end
        end
    end
end

-- The pool is going (its SparkContext stopped): every job still waiting will never end, and what
-- finished tasks made is released now. A job's coroutine that resumes anyway raises.
function M.abandon_all()
    for job in pairs(live) do
        job.abandoned = true
        for _, l in ipairs(job.made) do C.sh_ffi_bloblist_free(l) end
        job.made = {}
        if job.pending > 0 then
            job.pending = 0
            if job.co then loop.wake(job.co) end
        end
    end
    live, jobs = {}, {}
end

-- Drains the active SparkContext's pool (the dispatch's first step).
function M.drain_active()
    local sc = require("streamhost.context")._active()
    if sc and sc._pool_ptr ~= nil then drain(sc._pool_ptr) end
end

-- Replaces every blob number in a result (numbers, nested in arrays) with an owned reference.
local function adopt(v)
    if type(v) == "number" then return shffi.adopt_blob(v) end
    if type(v) == "table" then
        for k, x in pairs(v) do v[k] = adopt(x) end
    end
    return v
end

-- Gives the blobs a job's tasks made to the batch the running coroutine belongs to (the record
-- drops them when the batch ends), or drops them now outside a batch.
local function hand_over(made)
    local batch = loop.context().batch
    for _, l in ipairs(made) do
        if batch and batch.rec ~= nil then C.sh_ffi_batch_hold(batch.rec, l) else C.sh_ffi_bloblist_free(l) end
    end
end

-- Runs tasks ({plan, sink, part, affinity}) and returns their decoded results in order. With
-- blobs = true the results are blob numbers (in arrays), returned as owned blob references.
-- Raises the first task error (a worker error names the user function's file and line) after
-- every task has finished, so no task outlives the job; whatever the tasks made is released.
function M.run_tasks(sc, tasks, blobs)
    local pool = sc:_pool()
    local job = { index = {}, results = {}, made = {}, pending = 0 }
    live[job] = true
    for i, t in ipairs(tasks) do
        local ok, payload = pcall(codec.encode, { plan = t.plan, sink = t.sink, part = t.part })
        local id = ok and C.sh_ffi_pool_submit(pool, t.affinity or -1, payload, #payload) or 0
        if id == 0 then  -- the tasks already submitted still run: wait for them, then raise
            job.failure = ok and "out of memory submitting a task" or tostring(payload)
            break
        end
        job.index[id] = i
        jobs[id] = job
        job.pending = job.pending + 1
    end
    if job.pending > 0 then
        job.co = loop.current()
        if job.co then
            while job.pending > 0 do loop.wait() end
        else  -- cannot yield here (not a coroutine of ours): wait without turning the loop
            while job.pending > 0 do
                C.sh_ffi_pool_wait(pool, 1000)
                drain(pool)
            end
        end
    end
    live[job] = nil
    if job.abandoned then error("the SparkContext stopped while this job ran", 0) end
    local results = {}
    if job.failure == nil then
        for i = 1, #tasks do
            results[i] = job.results[i]
            if blobs then results[i] = adopt(results[i]) end
        end
    end
    hand_over(job.made)
    if job.failure then error(job.failure, 0) end
    return results
end

-- Makes sure every shuffle output and cached partition that rdd's plans read exists,
-- running the map stages first (parents before children).
local function prepare(sc, rdd)
    if rdd._cached_parts then return end
    for _, parent in ipairs(rdd:_parents()) do prepare(sc, parent) end
    if rdd._kind == "shuffled" and not rdd._outputs then
        local outputs, keep = {}, {}
        for i, parent in ipairs(rdd._deps) do
            local tasks = {}
            for q = 0, parent:getNumPartitions() - 1 do
                tasks[q + 1] = { plan = parent:_plan(q), sink = rdd._map_sink, part = q }
            end
            local results = M.run_tasks(sc, tasks, true)
            local per_reduce = {}
            for p = 1, rdd._n do per_reduce[p] = {} end
            for _, buckets in ipairs(results) do
                for p = 1, rdd._n do
                    local b = buckets[p]
                    if b then
                        keep[#keep + 1] = b
                        local l = per_reduce[p]
                        l[#l + 1] = shffi.blob_to_number(b)
                    end
                end
            end
            outputs[i] = per_reduce
        end
        rdd._outputs, rdd._output_blobs = outputs, keep
    end
    if rdd._cache_requested then
        local tasks = {}
        for p = 0, rdd:getNumPartitions() - 1 do
            tasks[p + 1] = { plan = rdd:_plan(p), sink = { kind = "store" }, part = p }
        end
        rdd._cached_parts = M.run_tasks(sc, tasks, true)
    end
end
M.prepare = prepare

-- Runs `sink` over every partition of rdd; returns the per-partition results in order.
function M.run_job(rdd, sink)
    local sc = rdd.ctx
    sc:_check_active()
    prepare(sc, rdd)
    local tasks = {}
    for p = 0, rdd:getNumPartitions() - 1 do
        tasks[p + 1] = { plan = rdd:_plan(p), sink = sink, part = p, affinity = rdd._affinity and p or -1 }
    end
    return M.run_tasks(sc, tasks)
end

return M
