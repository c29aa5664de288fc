-- streamhost.scheduler: runs jobs on the worker pool: prepares shuffle map stages and caches,
-- then one task per partition, and waits for them while the driver loop keeps turning.
local ffi = require "ffi"
local shffi = require "streamhost.ffi"
local codec = require "streamhost.codec"
local shared = require "streamhost.shared"  -- accumulators: merge in run_tasks

local C = shffi.C

local M = {}

local id_out, ok_out = ffi.new("double[1]"), ffi.new("int[1]")
local res_out, len_out = ffi.new("char *[1]"), ffi.new("size_t[1]")

-- Runs tasks ({plan, sink, part, affinity}) and returns their decoded results in order.
-- Raises the first task error (a worker error names the user function's file and line) after
-- every task has finished, so no task outlives the job.
function M.run_tasks(sc, tasks)
    local pool = sc:_pool()
    local host = sc._host
    local index, pending = {}, 0
    for i, t in ipairs(tasks) do
        local payload = codec.encode({ plan = t.plan, sink = t.sink, part = t.part })
        local id = C.sh_ffi_pool_submit(pool, t.affinity or -1, payload, #payload)
        if id == 0 then error("out of memory submitting a task", 0) end
        index[id] = i
        pending = pending + 1
    end
    local results, failure = {}, nil
    while pending > 0 do
        if C.sh_ffi_pool_next_done(pool, id_out, ok_out, res_out, len_out) == 1 then
            local text = shffi.take_string(res_out[0], len_out[0]) or ""
            local i = index[id_out[0]]
            pending = pending - 1
            if ok_out[0] == 1 then
                local r = codec.decode(text)  -- {result, accumulator deltas or nil} (worker.run)
                results[i] = r[1]
                if r[2] then shared.merge(r[2]) end
            elseif failure == nil then
                failure = text
            end
        else
            C.sh_ffi_pump(host, 1000)
        end
    end
    if failure then error(failure, 0) end
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
            local results = M.run_tasks(sc, tasks)
            local per_reduce = {}
            for p = 1, rdd._n do per_reduce[p] = {} end
            for _, buckets in ipairs(results) do
                for p = 1, rdd._n do
                    local n = buckets[p]
                    if n then
                        keep[#keep + 1] = shffi.own_blob(shffi.number_to_blob(n))
                        local l = per_reduce[p]
                        l[#l + 1] = n
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
        local results = M.run_tasks(sc, tasks)
        local parts = {}
        for p, n in ipairs(results) do parts[p] = shffi.own_blob(shffi.number_to_blob(n)) end
        rdd._cached_parts = parts
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
