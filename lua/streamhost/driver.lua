-- streamhost.driver: what the C host calls in the driver state: start(chunk) runs the script's
-- main chunk as a coroutine, dispatch() whenever the loop has news (tasks done, a timer, a
-- sealed batch, a stop request), shutdown() when the job is over. start and dispatch answer
-- (over, err): whether the job is over, and its error if it failed.
local shffi = require "streamhost.ffi"
local loop = require "streamhost.loop"
local scheduler = require "streamhost.scheduler"
local trace = require "streamhost.trace"

local C = shffi.C

local M = {}

local main = { done = false, err = nil }
local stop_seen = false

local function streaming()
    local s = package.loaded["streamhost.streaming"]
    return type(s) == "table" and s or nil
end

local function over()
    if main.err then return true, main.err end
    local s = streaming()
    if s and s.running() then return false end
    if main.done or stop_seen then return true, nil end
    return false
end

-- Turns the driver's wheels until nothing is ready: task completions to their jobs, sealed
-- records to batches, timers, woken coroutines. Then arms the host's timer for the earliest
-- deadline left.
local function settle()
    local host = shffi.host()
    local earliest
    for _ = 1, 100000 do
        scheduler.drain_active()
        earliest = loop.run_ready()
        -- After the coroutines: a batch that just ended lets the next one start now.
        local s = streaming()
        local started = s and s.tick() or false
        if not started and not loop.has_ready() then break end
    end
    if earliest then
        C.sh_ffi_timer_arm(host, math.max(0, earliest - loop.now_ms()))
    else
        C.sh_ffi_timer_arm(host, -1)
    end
end

-- A stop asked for with sh_host_stop (a signal, another thread): the running context stops
-- gracefully; without one the job is over.
local function take_stop()
    if C.sh_ffi_take_stop(shffi.host()) == 1 then
        stop_seen = true
        local s = streaming()
        if s then s.stop_requested() end
    end
end

function M.start(chunk)
    require("streamhost.reload").init(type(arg) == "table" and arg[0] or nil, main)
    loop.spawn(chunk, { main = true }, function(co, ok, err)
        main.done = true
        if not ok then main.err = trace.user_traceback(co, err) end
    end)
    take_stop()  -- one that came before the start
    settle()
    return over()
end

function M.dispatch()
    take_stop()
    settle()
    return over()
end

-- A hot reload (sh_host_reload): runs the new script's chunk (compiled by the host) until its
-- ssc:start(); the switch follows at a batch boundary. Answers (ok, err): err names the file
-- and line of what rejected it.
function M.reload(chunk, path, drop)
    if chunk == nil then  -- the host could not compile it: drop is the message
        return require("streamhost.reload").refuse(path, drop)
    end
    local args = {}
    for i, v in ipairs(type(arg) == "table" and arg or {}) do args[i] = v end
    local ok, err = require("streamhost.reload").begin(chunk, path, args, drop, main)
    settle()
    return ok, err
end

function M.shutdown()
    loop.reset()
    local servers = package.loaded["streamhost.text_server"]
    if servers then servers.stop_all() end
    local s = streaming()
    if s then s.shutdown() end
    local context = package.loaded["streamhost.context"]
    if context and context._active() then context._active():stop() end
end

return M
