-- spec/ui/ui_job.lua: the job the status-page tests watch: a queue and a socket receiver (the
-- built-in TextServer), three output operations (one fails every third batch; one busy-waits
-- 3 s in the driver when the file arg[1] .. "/busy" appears). Runs until arg[2] seconds pass
-- or a stop signal; arg[3] is the batch interval; with arg[4], a second socket receiver reads
-- from that port of 127.0.0.1 (a test peer that hangs up on it).
local sh = require "streamhost"
local dir, seconds = arg[1], tonumber(arg[2] or "60")
local interval = tonumber(arg[3] or "0.2")

local server = sh.TextServer { path = "examples/data/river.txt", linesPerSecond = 100 }
local ssc = sh.StreamingContext(sh.SparkContext(nil, "UiSpecJob"), interval)
local queue = ssc:queueStream({}, true, { "a", "b", "c" })
local lines = ssc:socketTextStream(server.host, server.port)
if arg[4] then ssc:socketTextStream("127.0.0.1", tonumber(arg[4])) end

local function exists(path)
    local f = io.open(path, "rb")
    if f then f:close() end
    return f ~= nil
end

local function touch(path)
    local f = assert(io.open(path, "wb"))
    f:close()
end

local n = 0
queue:union(lines):foreachRDD(function(rdd) rdd:count() end)
queue:foreachRDD(function(rdd)
    n = n + 1
    if n % 3 == 0 then error("every third batch fails (" .. rdd:count() .. " records)") end
end)
lines:foreachRDD(function()
    if dir and exists(dir .. "/busy") then
        os.remove(dir .. "/busy")
        touch(dir .. "/busy-start")
        local t0 = os.clock()
        while os.clock() - t0 < 3 do end  -- the driver state is busy: no yield, no loop turn
        touch(dir .. "/busy-end")
    end
end)
ssc:start()
local deadline = os.time() + seconds
while os.time() < deadline do
    local ok, stopped = pcall(ssc.awaitTerminationOrTimeout, ssc, 0.5)  -- batch errors are expected
    if ok and stopped then break end
end
ssc:stop(true, true)
server:stop()
