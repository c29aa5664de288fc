-- streamhost.state_store: the worker side of stateful streams: each worker keeps the state of
-- the partitions it owns (updateStateByKey, incremental windows) between batches, keyed by
-- (stream id, partition), and updates it in the sinks below.
--
-- A partition's state is a list of blobs of encoded {k, v} records, CHUNK records each: the
-- compact form costs less memory than a Lua table of the same pairs, and the blobs double as the
-- partition of the stream's RDD (the driver gets one more reference to each, the data stays put).
-- An update reads the old chunks one at a time and writes new ones; the old ones are released
-- as soon as the new list is in place.
local ffi = require "ffi"
local shffi = require "streamhost.ffi"
local codec = require "streamhost.codec"
local ship = require "streamhost.ship"
local diagnose = require "streamhost.diagnose"

local C = shffi.C
local type, pairs, ipairs, error = type, pairs, ipairs, error
local getfn = ship.load

local CHUNK = 8192
local STEP_KB = 1024  -- GC work (KB) per CHUNK records decoded or written: about their garbage

local M = { CHUNK = CHUNK }

-- stores[stream id][partition] = { chunks = {blob, ...}, time = ms of the last update }: the
-- committed state. pending[stream id][partition]: the state an update wrote, installed by
-- sh_state_commit when its whole batch succeeded, dropped when it failed.
local stores, pending = {}, {}
M.stores = stores

-- The worker's keyed maps and combiners (composite keys by content), bound by install():
-- worker.lua loads this module, so it cannot be required from here.
local new_keymap, keymap_get, keymap_set, keymap_take, keymap_each, combiner
local identity, list_of, list_append

-- Pushes every {k, v} record of the plans into one map, merged with merge(old, new).
local function combine_plans(plans, merge, run)
    local m, add = combiner(identity, merge)
    for _, plan in ipairs(plans) do run(plan, add) end
    return m
end

-- -- Chunk writer ----------------------------------------------------------------------------

-- A writer of state chunks; records that cannot be encoded raise an error naming `what` and
-- the function (a shipped id) that made them, the `label` of its operation.
local function new_writer(what, fn, label)
    local w = { chunks = {}, buf = {}, n = 0 }
    local function blob(buf, n)
        local ok, b = pcall(codec.blob_of, buf, n)
        if not ok then
            diagnose.encode_failure(what, "keep", diagnose.function_producer(fn, label, "made"), buf, n, b)
        end
        return b
    end
    function w.put(rec)
        local n = w.n + 1
        w.buf[n] = rec
        w.n = n
        if n >= CHUNK then
            w.chunks[#w.chunks + 1] = blob(w.buf, n)
            w.buf, w.n = {}, 0
            -- Rewriting a state makes garbage at the rate it reads; collecting as we go keeps
            -- the worker's heap (and the pages its allocator keeps) near the live size.
            collectgarbage("step", STEP_KB)
        end
    end
    function w.finish()
        if w.n > 0 then w.chunks[#w.chunks + 1] = blob(w.buf, w.n) end
        w.buf, w.n = nil, 0
        return w.chunks
    end
    return w
end

local function release(chunks)
    if chunks == nil then return end
    for i, b in ipairs(chunks) do
        C.sh_ffi_blob_unref(ffi.gc(b, nil))
        chunks[i] = nil
    end
end

local function check_owner(worker, sink, part)
    if worker.index >= 0 and sink.nworkers and worker.index ~= part % sink.nworkers then
        error(string.format("stateful partition %d ran on worker %d, not on its owner %d",
            part, worker.index, part % sink.nworkers), 0)
    end
end

-- Keeps the new chunks as the partition's pending state and returns their numbers (the task
-- hands the driver a reference to each: they were created in this task).
local function commit(sid, part, chunks, time)
    local per = pending[sid]
    if per == nil then
        per = {}
        pending[sid] = per
    end
    local old = per[part]
    per[part] = { chunks = chunks, time = time }
    if old then release(old.chunks) end  -- a batch that never ended
    local nums = {}
    for i, b in ipairs(chunks) do nums[i] = shffi.blob_to_number(b) end
    return nums
end

-- Makes st ({chunks, time}) the committed state of (sid, part), releasing the one it replaces.
local function set_committed(sid, part, st)
    local cur = stores[sid]
    if cur == nil then
        cur = {}
        stores[sid] = cur
    end
    local old = cur[part]
    cur[part] = st
    if old then release(old.chunks) end
end

local function old_chunks(sid, part)
    local per = stores[sid]
    local st = per and per[part]
    return st and st.chunks or {}
end

-- -- Sinks ---------------------------------------------------------------------------------------

function M.install(worker)
    local sinks, run = worker.sinks, worker.run_plan
    new_keymap, keymap_get, keymap_set = worker.new_keymap, worker.keymap_get, worker.keymap_set
    keymap_take, keymap_each, combiner = worker.keymap_take, worker.keymap_each, worker.combiner
    identity, list_of, list_append = worker.identity, worker.list_of, worker.list_append

    -- Reading a stateful stream's RDD (its partitions are the state chunks): each chunk is
    -- decoded in one go, a burst of CHUNK tables and strings with one GC check, and a cheap
    -- consumer (count, filter) allocates nothing more, so the incremental collector falls behind
    -- by the whole partition (measured: ~120 bytes per state key of worker heap that the
    -- allocator keeps). A GC step sized to the chunk after each keeps the heap near one chunk.
    function worker.ops.sh_state_chunks(node, emit)
        for _, n in ipairs(node.blobs) do
            local b = shffi.number_to_blob(n)
            codec.each(b, emit)
            collectgarbage("step", STEP_KB * tonumber(b.count) / CHUNK)
        end
    end

    -- An incremental window (Spark's ReducedWindowedDStream) over one partition: the previous
    -- window's value, minus (invFunc) what left, plus (func) what entered, then filterFunc.
    -- With sink.reset the window is rebuilt from sink.added alone.
    function sinks.sh_window(_, sink, part)
        check_owner(worker, sink, part)
        local func, inv = getfn(sink.fn), getfn(sink.inv)
        local keep = sink.filter and getfn(sink.filter)
        local added = combine_plans(sink.added, func, run)
        local removed = combine_plans(sink.removed, func, run)
        local w = new_writer("reduceByKeyAndWindow", sink.fn, "reduce function")
        local put = w.put
        if not sink.reset then
            for _, chunk in ipairs(old_chunks(sink.sid, part)) do
                codec.each(chunk, function(rec)
                    local k, v = rec[1], rec[2]
                    local r, left = keymap_take(removed, k)
                    if left then v = inv(v, r) end
                    local a, entered = keymap_take(added, k)
                    if entered then v = func(v, a) end
                    rec[2] = v
                    if keep == nil or keep(rec) then put(rec) end
                end)
            end
        end
        keymap_each(added, function(k, v)
            local rec = { k, v }
            if keep == nil or keep(rec) then put(rec) end
        end)
        return commit(sink.sid, part, w.finish(), sink.time)
    end

    -- updateStateByKey over one partition: updateFunc(newValues, lastState) for every key with
    -- new values or a state; a nil result drops the key. The first batch starts from
    -- sink.init (the partition of initialRDD) instead of the stored state.
    function sinks.sh_state(_, sink, part)
        check_owner(worker, sink, part)
        local update = getfn(sink.fn)
        local news, add = combiner(list_of, list_append)
        run(sink.input, add)
        local w = new_writer("updateStateByKey", sink.fn, "update function")
        local put = w.put
        local function visit(rec)
            local r = update(keymap_take(news, rec[1]) or {}, rec[2])
            if r ~= nil then
                rec[2] = r
                put(rec)
            end
        end
        if sink.fresh then
            if sink.init then
                local seen = new_keymap()
                run(sink.init, function(kv)
                    local k = kv[1]
                    local had, s, composite = keymap_get(seen, k)
                    if had == nil then  -- a key given twice keeps its first state
                        keymap_set(seen, k, s, composite, true, true)
                        visit({ k, kv[2] })
                    end
                end)
            end
        else
            for _, chunk in ipairs(old_chunks(sink.sid, part)) do codec.each(chunk, visit) end
        end
        keymap_each(news, function(k, vs)
            local r = update(vs, nil)
            if r ~= nil then put({ k, r }) end
        end)
        local nums = commit(sink.sid, part, w.finish(), sink.time)
        collectgarbage()  -- the update made garbage of the whole state: free it before the next task
        return nums
    end

    -- Ends batch sink.time for stream sink.sid on this worker: with sink.ok its pending
    -- partitions become the state (the previous chunks are released), else they are dropped.
    function sinks.sh_state_commit(_, sink)
        local per = pending[sink.sid]
        if per == nil then return 0 end
        pending[sink.sid] = nil
        local n = 0
        for part, st in pairs(per) do
            if sink.ok and st.time == sink.time then
                set_committed(sink.sid, part, st)
                n = n + 1
            else
                release(st.chunks)
            end
        end
        return n
    end

    -- Installs a partition's state from a checkpoint (recovery): sink.blobs (numbers of blobs
    -- the driver holds) become the committed state of (sink.sid, part) as of sink.time; this
    -- worker takes references of its own.
    function sinks.sh_state_install(_, sink, part)
        check_owner(worker, sink, part)
        local chunks = {}
        for i, n in ipairs(sink.blobs) do chunks[i] = shffi.adopt_blob(n) end
        set_committed(sink.sid, part, { chunks = chunks, time = sink.time })
        return #chunks
    end

    -- Drops the state of the given streams (the context stopped).
    function sinks.sh_state_drop(_, sink)
        local n = 0
        for _, sid in ipairs(sink.sids) do
            for _, t in ipairs({ stores, pending }) do
                local per = t[sid]
                if per then
                    for _, st in pairs(per) do
                        release(st.chunks)
                        n = n + 1
                    end
                    t[sid] = nil
                end
            end
        end
        return n
    end

    -- What this worker holds: { index = worker index, parts = { [sid] = {partition, ...} },
    -- heap_kb = the size of its Lua heap }.
    function sinks.sh_state_info()
        local parts = {}
        for sid, per in pairs(stores) do
            local l = {}
            for p in pairs(per) do l[#l + 1] = p end
            table.sort(l)
            parts[sid] = l
        end
        return { index = worker.index, parts = parts, heap_kb = collectgarbage("count") }
    end
end

return M
