-- streamhost.reload: hot reload of a running job (DESIGN.md "Hot reload and embedding").
-- Stage one runs the new script's main chunk in a fresh environment of the driver state (the
-- globals a fresh state starts with: the standard libraries, none of the old script's), with the running SparkContext, until it calls ssc:start(): an error there, or
-- a graph that cannot start, rejects the reload and the old job goes on. Stage two, at a batch
-- boundary (no batch of the old job runs), switches: inputs whose definition is unchanged (same
-- source and arguments) hand their receiver, sealed batches and history to the new graph, so
-- what arrives during a reload reaches the new job once; stateful streams hand their state over
-- by name (setName), else by position among streams of their kind; the old graph is kept until
-- the new one completed a batch, and comes back if that batch fails.
local shffi = require "streamhost.ffi"
local loop = require "streamhost.loop"
local trace = require "streamhost.trace"
local status = require "streamhost.status"

local C = shffi.C

local M = {}

local current = nil   -- the reload under way: loading, ready, probation
local version = 0     -- reloads taken
local script = { path = nil, hash = nil }  -- the running job's script

-- The running script's path and hash ("crc32c:<hex>:<bytes>", as checkpoints record it).
local hash_of = require("streamhost.files").content_hash
M.hash_of = hash_of

local driver_main = nil  -- the driver's record of the main chunk

-- Called by the driver when the first script starts (main: its record of the main chunk).
function M.init(path, main)
    script.path, script.hash = path, hash_of(path)
    driver_main = main
end

-- True while the running coroutine is a reload's new main chunk (its SparkContext is the
-- running one; its start() hands over to the switch).
function M.loading()
    local r = loop.context().reload
    return r ~= nil and r == current and r.phase == "loading" and r or nil
end

-- -- Reporting -----------------------------------------------------------------------------------

local function report(r, err)
    local ssc = require("streamhost.streaming").StreamingContext.getActive()
    local msg
    if err then
        msg = string.format("streamhost: reload of %s rejected, the old job goes on: %s", r.path, err)
    else
        msg = string.format("streamhost: reload %d of %s taken (%s -> %s); kept: %s", version, r.path,
            tostring(r.old_hash), tostring(r.hash),
            #r.kept > 0 and table.concat(r.kept, ", ") or "nothing")
    end
    io.stderr:write(msg, "\n")
    status.reload(r.path, r.hash, err == nil, err or msg)
    C.sh_ffi_reload_result(shffi.host(), err == nil and 0 or 1, err or "")
    if ssc then
        ssc:_post("onJobReloaded", { version = version, oldHash = r.old_hash, newHash = r.hash,
                                     keptStreams = r.kept, error = err, script = r.path })
    end
end

-- -- Matching two graphs -----------------------------------------------------------------------------

local function same(a, b)
    if type(a) ~= "table" or type(b) ~= "table" then return a == b end
    for k, v in pairs(a) do if not same(v, b[k]) then return false end end
    for k in pairs(b) do if a[k] == nil then return false end end
    return true
end

-- Inputs that keep running: same source kind and arguments. A queueStream's arguments do not
-- say what its queue holds: it never counts as unchanged.
local function match_inputs(old, new)
    local pairs_, used = {}, {}
    for _, d in ipairs(new._inputs) do
        local s = d._source
        if s.args and s.args.kind ~= "queueStream" then
            for _, o in ipairs(old._inputs) do
                if not used[o] and same(o._source.args, s.args) then
                    used[o] = true
                    pairs_[#pairs_ + 1] = { old = o, new = d }
                    break
                end
            end
        end
    end
    return pairs_
end

local function describe(d)
    return string.format("%s%s (stream %d, %s)", d.name and "'" or "", d.name and (d.name .. "'") or "unnamed",
                         d._id, d.op)
end

-- Stateful streams' pairs: by name; the unnamed by position among the unnamed of their op.
-- Returns the pairs and the old streams with state that nothing takes over.
local function match_state(old, new)
    local by_name, unnamed_old, pairs_, taken = {}, {}, {}, {}
    for _, d in ipairs(old._dstreams) do
        if d._sid then
            if d.name then by_name[d.name] = d
            else
                unnamed_old[d.op] = unnamed_old[d.op] or {}
                table.insert(unnamed_old[d.op], d)
            end
        end
    end
    local seen = {}
    for _, d in ipairs(new._dstreams) do
        if d._sid then
            local o
            if d.name then
                o = by_name[d.name]
                if o and o.op ~= d.op then o = nil end
            else
                seen[d.op] = (seen[d.op] or 0) + 1
                o = unnamed_old[d.op] and unnamed_old[d.op][seen[d.op]]
            end
            if o and not taken[o] then
                taken[o] = true
                pairs_[#pairs_ + 1] = { old = o, new = d }
            end
        end
    end
    local dropped = {}
    for _, d in ipairs(old._dstreams) do
        if d._sid and not taken[d] and (d._touched or d._state_time) then dropped[#dropped + 1] = d end
    end
    return pairs_, dropped
end

-- -- Stage one --------------------------------------------------------------------------------

-- The new script's ssc:start() (from StreamingContext:start while loading): checks the graph
-- as start would, matches it against the running one, then waits for the switch. Raises what
-- rejects the reload.
function M.start_new(r, new, level)
    local old = r.old
    if #new._outputs == 0 then error("No output operations registered, so nothing to execute", level) end
    for _, d in ipairs(new._dstreams) do
        if d._validate then d:_validate() end
    end
    if new._batch_ms ~= old._batch_ms then
        error(string.format("the new script's batch interval (%gs) differs from the running job's (%gs): a reload keeps the batch interval",
            new._batch_ms / 1000, old._batch_ms / 1000), level)
    end
    if new.sparkContext ~= old.sparkContext then
        error("the new script made a SparkContext of its own: a reload runs on the running one", level)
    end
    r.inputs = match_inputs(old, new)
    local dropped
    r.states, dropped = match_state(old, new)
    if #dropped > 0 and not r.drop then
        local names = {}
        for i, d in ipairs(dropped) do names[i] = describe(d) end
        error("the reload would drop the state of " .. table.concat(names, ", ") ..
              ": name the new streams the same (setName) or keep their order, or reload with --reload-drop-state (SH_RELOAD_DROP_STATE)", level)
    end
    r.dropped = dropped
    r.new = new
    r.phase = "ready"
    r.co = loop.current()
    if r.co then
        local err = loop.wait()
        if err then error(err, 0) end
    end
end

-- Starts a reload: runs `chunk` (the new script, compiled) until it calls ssc:start(). Returns
-- true (stage one passed, or the chunk waits before its start: the switch follows), or false
-- and the error. main is the driver's record of the main chunk, which the new chunk takes over.
function M.begin(chunk, path, args, drop, main)
    local streaming = require "streamhost.streaming"
    local old = streaming.StreamingContext.getActive()
    local r = { path = path, hash = hash_of(path), old_hash = script.hash, drop = drop,
                kept = {}, phase = "loading", old = old, main = main }
    if current then
        local err = "a reload is already under way"
        report(r, err)
        return false, err
    end
    if old == nil or old._stopping or old._state ~= "active" then
        local err = "no StreamingContext runs: there is no job to reload"
        report(r, err)
        return false, err
    end
    current = r
    -- The new script's globals start as a fresh driver state's: the standard libraries only
    -- (the old script's globals are not visible); modules stay loaded (package.loaded).
    local env = {}
    for name in pairs(require("streamhost.ship").STANDARD_GLOBALS) do env[name] = rawget(_G, name) end
    env._G = env
    local a = { [0] = path }
    for i, v in ipairs(args or {}) do a[i] = v end
    env.arg = a
    r.arg = a
    setfenv(chunk, env)
    loop.spawn(chunk, { main = true, reload = r }, function(co, ok, err)
        if not ok then err = trace.user_traceback(co, err) end
        if r.phase == "loading" or r.phase == "ready" then
            M.reject(r, ok and "the new script returned without starting a StreamingContext" or err)
        elseif r.phase == "committed" then
            main.done = true
            if not ok then main.err = err end
        end
    end)
    if r.phase == "rejected" then return false, r.error end
    return true
end

-- getOrCreate with --recover-new-script: once the recovered job runs, the script at `path`
-- is reloaded into it (from the loop, not inside the start that asks for it).
function M.after_start(path)
    loop.spawn_later(function()
        local chunk, err = loadfile(path)
        if chunk == nil then return M.refuse(path, "cannot load job script: " .. tostring(err)) end
        local args = {}
        for i, v in ipairs(type(arg) == "table" and arg or {}) do args[i] = v end
        M.begin(chunk, path, args, false, driver_main or {})
    end, {})
end

-- A script that does not compile: reported as any rejection.
function M.refuse(path, err)
    report({ path = path, hash = hash_of(path), old_hash = script.hash, kept = {} }, err)
    return false, err
end

-- Stage one failed (or the switch did): the old job goes on; the new chunk, if it waits, ends.
function M.reject(r, err)
    if r.phase == "rejected" or r.phase == "committed" then return end
    local co = r.co
    r.phase, r.error = "rejected", err
    if current == r then current = nil end
    if r.new and r.new._state ~= "stopped" then r.new._state = "stopped" end
    report(r, err)
    r.new, r.old, r.inputs, r.states, r.dropped = nil, nil, nil, nil, nil
    if co then loop.wake(co, err) end
end

-- -- Stage two ------------------------------------------------------------------------------------

local RUNTIME = { "input", "recv", "embed", "wal", "threshold", "at_start", "selected", "recent" }

-- Hands the running job over from `from` to `to` (a switch, or its rollback): kept inputs'
-- receivers, sealed batches and history; matched state; the scheduler; checkpointing.
local function transfer(streaming, from, to, inputs, states, forward, script_path)
    local kept = {}
    local taken = {}
    for _, p in ipairs(inputs) do
        local a, b = forward and p.old or p.new, forward and p.new or p.old
        local s, t = a._source, b._source
        if not s.stopped then
            for _, k in ipairs(RUNTIME) do
                if s[k] ~= nil then t[k], s[k] = s[k], nil end
            end
            t.stopped = nil
            b._generated, a._generated = a._generated, {}
            taken[a], taken[b] = true, true
            kept[#kept + 1] = t.name
        end
    end
    for _, d in ipairs(from._inputs) do  -- what the new graph does not read stops
        local s = d._source
        if not taken[d] and s.stop and not s.stopped then
            s.stopped = true
            pcall(s.stop, s)
        end
    end
    to._zero_ms = from._zero_ms
    to._sched, from._sched = from._sched, nil
    to._queue, to._waiters, to._drain_waiters, to._stop_waiters = {}, to._waiters or {}, {}, {}
    for _, d in ipairs(to._inputs) do
        local s = d._source
        s.stopped = nil
        s.report = function(msg)
            io.stderr:write("streamhost: ", s.name, ": ", msg, "\n")
            s.lastErrorMessage, s.lastErrorTime = msg, C.sh_ffi_now()
            to:_post("onReceiverError", { receiverInfo = { name = s.name, streamId = s.stream_id,
                location = s.location, lastErrorMessage = msg } })
        end
        if not taken[d] and s.start then
            local ok, err = pcall(s.start, s, to._sched)
            if not ok then s.report(tostring(err)) end
        end
    end
    for _, p in ipairs(states) do
        local a, b = forward and p.old or p.new, forward and p.new or p.old
        b._sid, b._state_time, b._touched = a._sid, a._state_time, a._touched
        b._generated = a._generated
        a._generated, a._touched = {}, nil
        kept[#kept + 1] = "state " .. (b.name and ("'" .. b.name .. "'") or ("of stream " .. b._id))
    end
    for _, out in ipairs(to._outputs) do out.dstream:_init_remember(to._remember_ms) end
    -- Batches sealed and not run: the new graph makes them from their records.
    local queue = from._queue or {}
    from._queue = {}
    for _, batch in ipairs(queue) do
        for _, d in ipairs(from._inputs) do d._generated[batch.time] = nil end
        to:_generate_batch(batch.time, batch.rec, nil)
    end
    -- Checkpoints: the same directory goes on with the new graph (numbering, state files and
    -- recorded batches continue, so recovery finds the new job); another one starts afresh.
    local ck = from._ckpt
    from._ckpt = nil
    if ck and to._checkpoint_dir == ck.dir then
        local ok, err = pcall(ck.rebind, ck, to, script_path)
        if ok then to._ckpt, ck = ck, nil
        else io.stderr:write("streamhost: reload: checkpoints: ", tostring(err), "\n") end
    end
    if ck then ck:close() end
    if to._checkpoint_dir and not to._ckpt then
        local ok, nck = pcall(require("streamhost.checkpoint").open, to)
        if ok then to._ckpt = nck else io.stderr:write("streamhost: reload: checkpoints: ", tostring(nck), "\n") end
    end
    from._state, to._state = "reloaded", "active"
    streaming._set_active(to)
    return kept
end

-- At a batch boundary (the dispatch's tick, no batch running): switches to a ready reload.
-- Returns true when it switched.
function M.maybe_switch(streaming, ssc)
    local r = current
    if r == nil or r.phase ~= "ready" or ssc ~= r.old or ssc._running then return false end
    for _, b in ipairs(ssc._queue or {}) do  -- recovery's replays run on the graph they recorded
        if b.replay then return false end
    end
    if ssc._stopping then
        M.reject(r, "the running job is stopping")
        return false
    end
    r.new._started_at = r.old._started_at
    r.kept = transfer(streaming, r.old, r.new, r.inputs, r.states, true, r.path)
    r.phase = "probation"
    -- The new chunk goes on (to its awaitTermination) now that its context runs.
    if r.co then loop.wake(r.co) end
    return true
end

-- Finishes the reload: the old graph goes (its unmatched state dropped when allowed), the new
-- script becomes the job's.
local function commit(r)
    local old = r.old
    r.phase = "committed"
    current = nil
    version = version + 1
    for _, d in ipairs(r.dropped or {}) do
        if d._cleanup then pcall(d._cleanup, d) end
    end
    -- The old main chunk waits in its awaitTermination: it is let go, never resumed.
    old._waiters, old._drain_waiters = {}, {}
    old._state = "stopped"
    old._listeners = {}
    script.path, script.hash = r.path, r.hash
    _G.arg = r.arg  -- what checkpoints record as the script from now on
    C.sh_ffi_script_changed(shffi.host(), r.path)
    report(r, nil)
    -- The new chunk's completion keeps `r`: let go of the old graph and what it remembered.
    for _, d in ipairs(old._dstreams) do d._generated = {} end
    r.old, r.inputs, r.states, r.dropped = nil, nil, nil, nil
end

-- Rolls back to the old graph (the new one's first batch failed).
local function rollback(streaming, r, failure)
    r.phase = "rolling back"
    transfer(streaming, r.new, r.old, r.inputs, r.states, false, script.path)
    local new = r.new
    for _, d in ipairs(new._dstreams) do  -- fresh state of the new graph's own streams
        if d._sid and d._touched and d._cleanup then pcall(d._cleanup, d) end
    end
    new._waiters, new._drain_waiters = {}, {}
    current = r
    r.co = nil
    M.reject(r, "the new job's first batch failed, the old job is back: " .. tostring(failure))
end

-- After a batch of ssc ended: a reload on probation commits, or rolls back on failure.
function M.batch_ended(streaming, ssc, batch)
    local r = current
    if r == nil or r.phase ~= "probation" or ssc ~= r.new then return end
    if batch.failure then rollback(streaming, r, batch.failure) else commit(r) end
end

-- The job stops (or the host ends): a reload under way is abandoned.
function M.abandon(reason)
    if current then M.reject(current, reason or "the job stopped") end
end

return M
