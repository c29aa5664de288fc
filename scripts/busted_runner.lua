-- scripts/busted_runner.lua: runs busted inside the streamhost host, so specs use the real
-- driver state, worker states and event loop (as pyspark's tests run against a live context).
-- Under Lua 5.1 busted signals failures by raising a nil error; that becomes exit status 1.
local ok, err = pcall(require("busted.runner"), { standalone = false })
if not ok then
    if err ~= nil then io.stderr:write(tostring(err), "\n") end
    os.exit(1)
end
