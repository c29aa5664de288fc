-- streamhost.listener: the StreamingListener base and the delivery of events to listeners.
local StreamingListener = {}
StreamingListener.__index = StreamingListener

local EVENTS = {
    "onStreamingStarted", "onBatchSubmitted", "onBatchStarted", "onBatchCompleted",
    "onOutputOperationStarted", "onOutputOperationCompleted", "onReceiverStarted",
    "onReceiverError", "onReceiverStopped",
}
for _, name in ipairs(EVENTS) do
    StreamingListener[name] = function() end
end

setmetatable(StreamingListener, {
    __call = function(cls, fields) return setmetatable(fields or {}, cls) end,
})

local M = { StreamingListener = StreamingListener, EVENTS = EVENTS }

-- Calls listener:event(info) on every listener that has it, each call in a coroutine of its
-- own that starts at the host's next turn, in the order posted (it may wait, stop the context,
-- ...; the batch does not wait for it). A listener's error is reported on stderr
-- and does not stop the job (Spark logs it and goes on).
function M.post(listeners, event, info)
    local loop = require "streamhost.loop"
    local trace = require "streamhost.trace"
    for _, l in ipairs(listeners) do
        local f = l[event]
        if f then
            loop.spawn_later(function() f(l, info) end, { listener = event }, function(co, ok, err)
                if not ok then
                    io.stderr:write("streamhost: listener ", event, " failed: ",
                        trace.user_traceback(co, err), "\n")
                end
            end)
        end
    end
end

return M
