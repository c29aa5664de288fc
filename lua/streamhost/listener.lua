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

-- Calls listener:event(info) on every listener that has it. A listener's error is reported on
-- stderr and does not stop the job (Spark logs it and goes on).
function M.post(listeners, event, info)
    for _, l in ipairs(listeners) do
        local f = l[event]
        if f then
            local ok, err = xpcall(f, debug.traceback, l, info)
            if not ok then
                io.stderr:write("streamhost: listener ", event, " failed: ", tostring(err), "\n")
            end
        end
    end
end

return M
