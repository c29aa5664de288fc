-- streamhost.listener: the StreamingListener base and the delivery of events to listeners.
local StreamingListener = {}
StreamingListener.__index = StreamingListener

local EVENTS = {
    "onStreamingStarted", "onBatchSubmitted", "onBatchStarted", "onBatchCompleted",
    "onOutputOperationStarted", "onOutputOperationCompleted", "onReceiverStarted",
    "onReceiverError", "onReceiverStopped",
    "onCheckpointError",  -- an extension: a checkpoint write failed (the job goes on)
    "onJobReloaded",      -- an extension: a hot reload was taken or rejected
}
for _, name in ipairs(EVENTS) do
    StreamingListener[name] = function() end
end

setmetatable(StreamingListener, {
    __call = function(cls, fields) return setmetatable(fields or {}, cls) end,
})

local M = { StreamingListener = StreamingListener, EVENTS = EVENTS }

-- A copy of an event's info as it is now, tables inside copied too (a few levels: a batch's
-- outputOperationInfos hold op tables): the host goes on filling a batch's info after posting
-- onBatchSubmitted, and listeners run later, so each event keeps what it said when posted, as
-- Spark's immutable BatchInfo does.
local function snapshot(t, depth)
    if type(t) ~= "table" or getmetatable(t) ~= nil or depth == 0 then return t end
    local out = {}
    for k, v in pairs(t) do out[k] = snapshot(v, depth - 1) end
    return out
end

-- Calls listener:event(info) on every listener that has it (info as of the post: a snapshot
-- the listeners share), each call in a coroutine of its own that starts at the host's next
-- turn, in the order posted (it may wait, stop the context, ...; the batch does not wait for
-- it). A listener that raises is reported once on stderr,
-- with its error, and removed from `listeners`: the job goes on without it.
function M.post(listeners, event, info)
    local loop = require "streamhost.loop"
    local trace = require "streamhost.trace"
    if #listeners == 0 then return end
    info = snapshot(info, 4)
    for _, l in ipairs(listeners) do
        local f = l[event]
        if f then
            loop.spawn_later(function()
                if not rawget(l, "_sh_removed") then f(l, info) end
            end, { listener = event }, function(co, ok, err)
                if ok or rawget(l, "_sh_removed") then return end
                rawset(l, "_sh_removed", true)
                for i = #listeners, 1, -1 do
                    if listeners[i] == l then table.remove(listeners, i) end
                end
                require("streamhost.status").listener_error()
                io.stderr:write("streamhost: listener ", event, " failed and was removed: ",
                    trace.user_traceback(co, err), "\n")
            end)
        end
    end
end

return M
