-- streamhost.loop: the driver's coroutines. The C host owns the event loop; every piece of
-- driver-side Lua it runs (the script's main chunk, each output operation of each batch, each
-- listener event) runs in a coroutine of this module. A call that waits (awaitTermination*,
-- collect, count, sh.sleep ...) suspends its coroutine with wait(); the dispatch that the host
-- calls when the loop has news (tasks done, a timer, a sealed batch) resumes it.
local shffi = require "streamhost.ffi"

local C = shffi.C
local create, resume, running, status, yield = coroutine.create, coroutine.resume,
    coroutine.running, coroutine.status, coroutine.yield
local isyieldable = coroutine.isyieldable
local select, type, tostring, error = select, type, tostring, error

local M = {}

local WAIT = setmetatable({}, { __tostring = function() return "streamhost wait" end })

local ours = setmetatable({}, { __mode = "k" })  -- coroutine -> { ctx, on_done }
local ready, nready = {}, 0                       -- coroutines to resume, with their values
local timers = {}                                  -- { at = ms, fn = f } (unsorted; few at a time)
local later, nlater = {}, 0                        -- spawns deferred to the next run_ready

local function now_ms()
    return C.sh_ffi_now() * 1000
end
M.now_ms = now_ms

-- Runs co until it waits or ends; an end calls its on_done(ok, ...) (or reports an error).
local function step(co, ...)
    local rec = ours[co]
    local res = { resume(co, ...) }
    if status(co) == "dead" then
        ours[co] = nil
        if rec.on_done then
            rec.on_done(co, unpack(res, 1, table.maxn(res)))
        elseif not res[1] then
            io.stderr:write("streamhost: ", debug.traceback(co, tostring(res[2])), "\n")
        end
    elseif res[2] ~= WAIT then
        -- A coroutine.yield of the job's own, outside any coroutine it made: nothing will
        -- resume it. Say so rather than hang.
        ours[co] = nil
        local msg = "coroutine.yield called outside a coroutine of the job's own (the host runs this code in its own coroutine)"
        if rec.on_done then rec.on_done(co, false, msg) else io.stderr:write("streamhost: ", msg, "\n") end
    end
end

-- Runs f(...) in a new coroutine now, until it waits or ends. ctx is what M.context() answers
-- inside it (and inside coroutines it spawns, unless they get their own); on_done(co, ok, ...)
-- is called when it ends. Returns the coroutine.
function M.spawn(f, ctx, on_done, ...)
    local co = create(f)
    if ctx == nil then
        local cur = running()
        local rec = cur and ours[cur]
        ctx = rec and rec.ctx or {}
    end
    ours[co] = { ctx = ctx, on_done = on_done }
    step(co, ...)
    return co
end

-- As spawn, but the coroutine starts at the next turn of the dispatch, not inside the caller:
-- for code (listeners) that must not run in the middle of the host's own bookkeeping.
function M.spawn_later(f, ctx, on_done)
    nlater = nlater + 1
    later[nlater] = { f, ctx, on_done }
end

-- Starts every deferred coroutine now (a context that stopped delivers its last listener
-- events before stop() returns, as Spark's listener bus drains at stop).
function M.flush_later()
    while nlater > 0 do
        local batch, n = later, nlater
        later, nlater = {}, 0
        for i = 1, n do M.spawn(batch[i][1], batch[i][2], batch[i][3]) end
    end
end

-- The running coroutine when it is one of ours and may wait, else nil.
local function current()
    local co = running()
    if co and ours[co] and isyieldable() then return co end
    return nil
end
M.current = current

-- The context table of the running coroutine of ours ({} outside any).
function M.context()
    local co = running()
    local rec = co and ours[co]
    return rec and rec.ctx or {}
end

-- Suspends the running coroutine until M.wake(co, ...); returns wake's values. Only inside a
-- coroutine of ours (check M.current() first).
function M.wait()
    return yield(WAIT)
end

-- Runs f() in a coroutine of its own (sharing the running one's context) and waits for it to
-- end; returns true, or false and errfmt(co, err) (default: the message with a traceback).
-- Outside a coroutine of ours it runs f under xpcall instead.
function M.run(f, errfmt)
    errfmt = errfmt or function(co, err)
        return co and debug.traceback(co, tostring(err)) or debug.traceback(tostring(err), 3)
    end
    local parent = current()
    if parent == nil then
        return xpcall(f, function(e) return errfmt(nil, e) end)
    end
    local done, waiting, rok, rerr = false, false, nil, nil
    M.spawn(f, nil, function(co, ok, err)
        done, rok = true, ok
        if not ok then rerr = errfmt(co, err) end
        if waiting then M.wake(parent) end
    end)
    while not done do
        waiting = true
        M.wait()
    end
    return rok, rerr
end

-- Makes co resume (with the given values) at the next turn of the dispatch.
function M.wake(co, ...)
    nready = nready + 1
    ready[nready] = { co, select("#", ...), ... }
end

-- A timer: fn() at `at` (epoch ms). Returns a handle for M.cancel.
function M.at(at, fn)
    local t = { at = at, fn = fn }
    timers[#timers + 1] = t
    return t
end

function M.cancel(t)
    if t then t.cancelled = true end
end

-- Suspends the running coroutine for `seconds` (the loop keeps turning: receivers read, batches
-- run). Outside a coroutine of ours it blocks the thread instead.
function M.sleep(seconds)
    if type(seconds) ~= "number" or seconds < 0 then
        error("sleep expects a number of seconds", 2)
    end
    local co = current()
    if co == nil then
        C.sh_ffi_sleep_ms(seconds * 1000)
        return
    end
    M.at(now_ms() + seconds * 1000, function() M.wake(co) end)
    M.wait()
end

-- Fires due timers and resumes woken coroutines until nothing more is ready. Returns the
-- earliest timer deadline left (epoch ms) or nil.
function M.run_ready()
    local progress = true
    while progress do
        progress = false
        local now = now_ms()
        local keep = {}
        local due = {}
        for _, t in ipairs(timers) do
            if not t.cancelled then
                if t.at <= now then due[#due + 1] = t else keep[#keep + 1] = t end
            end
        end
        timers = keep
        table.sort(due, function(a, b) return a.at < b.at end)
        for _, t in ipairs(due) do
            progress = true
            t.fn()
        end
        if nlater > 0 then
            progress = true
            M.flush_later()
        end
        while nready > 0 do
            local batch, n = ready, nready
            ready, nready = {}, 0
            for i = 1, n do
                local r = batch[i]
                progress = true
                if status(r[1]) == "suspended" and ours[r[1]] then
                    step(r[1], unpack(r, 3, 2 + r[2]))
                end
            end
        end
    end
    local earliest
    for _, t in ipairs(timers) do
        if not t.cancelled and (earliest == nil or t.at < earliest) then earliest = t.at end
    end
    return earliest
end

-- True when a woken coroutine waits to be resumed, or a deferred one to start.
function M.has_ready()
    return nready > 0 or nlater > 0
end

-- Forgets every timer and woken coroutine (the job is over).
function M.reset()
    timers, ready, nready, later, nlater = {}, {}, 0, {}, 0
end

return M
