-- streamhost.driver: what the C host calls in the driver state after the script has run.
local M = {}

function M.run_until_stopped()
    local streaming = package.loaded["streamhost.streaming"]
    if streaming then streaming.run_until_stopped() end
end

function M.shutdown()
    local servers = package.loaded["streamhost.text_server"]
    if servers then servers.stop_all() end
    local streaming = package.loaded["streamhost.streaming"]
    if streaming then streaming.shutdown() end
    local context = package.loaded["streamhost.context"]
    if context and context._active() then context._active():stop() end
end

return M
