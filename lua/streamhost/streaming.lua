-- streamhost.streaming: StreamingContext: the stream graph, its lifecycle and the batch loop
-- that runs on the driver thread between turns of the host's event loop.
local shffi = require "streamhost.ffi"
local SparkContext = require "streamhost.context"
local dstream = require "streamhost.dstream"
require "streamhost.window"  -- windowed and stateful DStream methods
require "streamhost.state"
local sources = require "streamhost.sources"
local listener = require "streamhost.listener"
local rddmod = require "streamhost.rdd"

local C = shffi.C
local floor = math.floor

local StreamingContext = { __sh_context = "StreamingContext" }
StreamingContext.__index = StreamingContext

local M = { StreamingContext = StreamingContext }

local active = nil        -- the started, not yet stopped context
local stop_requested = false

local function now_ms()
    return floor(C.sh_ffi_now() * 1000)
end

local function seconds_to_ms(d, what, level)
    if type(d) ~= "number" or d <= 0 then
        error(what .. " must be a positive number of seconds, got " .. tostring(d), level + 1)
    end
    local ms = floor(d * 1000 + 0.5)
    if ms < 1 then error(what .. " must be at least a millisecond", level + 1) end
    return ms
end
M.seconds_to_ms = seconds_to_ms

local function new(sc, batchDuration)
    if getmetatable(sc) ~= SparkContext then
        error("StreamingContext expects a SparkContext as its first argument", 3)
    end
    local ssc = setmetatable({
        sparkContext = sc,
        _batch_ms = seconds_to_ms(batchDuration, "batchDuration", 3),
        _state = "initialized",
        _dstreams = {},
        _inputs = {},
        _outputs = {},
        _listeners = {},
        _remember_ms = nil,
        _zero_ms = 0,
    }, StreamingContext)
    return ssc
end

setmetatable(StreamingContext, {
    -- Not tail calls: errors count their level from the caller's frame.
    __call = function(_, sc, batchDuration) return (new(sc, batchDuration)) end,
})

-- The level, for error() called in the function `level` frames up, of the first frame outside
-- streamhost's own modules: the job's line, however many (tail) calls the library made.
local LIB_DIR = debug.getinfo(1, "S").source:match("^@(.*/)[^/]*$")
local function user_level(level)
    local l = level + 1
    while true do
        local info = debug.getinfo(l + 1, "S")
        if info == nil then return level end
        if info.what ~= "C" and info.what ~= "tail"
            and not (LIB_DIR and info.source:sub(2, #LIB_DIR + 1) == LIB_DIR) then
            return l
        end
        l = l + 1
    end
end
M.user_level = user_level

function StreamingContext:_check_can_add(level) -- luacheck: ignore level
    if self._state == "active" then
        error("Adding new inputs, transformations, and output operations after starting a context is not supported", user_level(1))
    elseif self._state == "stopped" then
        error("Adding new inputs, transformations, and output operations after stopping a context is not supported", user_level(1))
    end
end

function StreamingContext:_add_output(d, func, name, description)
    self:_check_can_add(3)
    self._outputs[#self._outputs + 1] = { dstream = d, func = func, name = name,
                                          description = description, id = #self._outputs }
end

-- -- Sources -----------------------------------------------------------------------------------

function StreamingContext:queueStream(rdds, oneAtATime, default)
    return (sources.queue(self, rdds, oneAtATime, default))
end

function StreamingContext:socketTextStream(hostname, port, storageLevel)
    return (sources.socket(self, hostname, port, storageLevel))
end

function StreamingContext:textFileStream(directory)
    return (sources.text_files(self, directory))
end

function StreamingContext:binaryRecordsStream(directory, recordLength)
    return (sources.binary_records(self, directory, recordLength))
end

function StreamingContext:union(...)
    local streams = { ... }
    if #streams == 1 and getmetatable(streams[1]) ~= dstream.DStream then streams = streams[1] end
    if #streams == 0 then error("union expects at least one DStream", 2) end
    local acc = streams[1]
    for i = 2, #streams do acc = acc:union(streams[i]) end
    return acc
end

-- transform(dstreams, func): func(rdds) or func(time, rdds) over the streams' RDDs of a batch.
function StreamingContext:transform(dstreams, transformFunc)
    if type(transformFunc) ~= "function" then error("transform expects a function", 2) end
    local with_time = debug.getinfo(transformFunc, "u").nparams >= 2
    return dstream.multi(dstreams, function(t, rdds)
        local r
        if with_time then r = transformFunc(t / 1000, rdds) else r = transformFunc(rdds) end
        if getmetatable(r) ~= rddmod.RDD then error("the transform function must return an RDD", 0) end
        return r
    end)
end

function StreamingContext:remember(duration)
    self._remember_ms = seconds_to_ms(duration, "remember duration", 2)
end

function StreamingContext:checkpoint(directory)
    if directory ~= nil and type(directory) ~= "string" then
        error("checkpoint expects a directory path", 2)
    end
    self._checkpoint_dir = directory
    if directory then self.sparkContext:setCheckpointDir(directory) end
end

function StreamingContext:addStreamingListener(l)
    if type(l) ~= "table" then error("addStreamingListener expects a listener object", 2) end
    self._listeners[#self._listeners + 1] = l
end

-- -- Lifecycle ---------------------------------------------------------------------------------

function StreamingContext.getActive()
    return active
end

function StreamingContext:_post(event, info)
    listener.post(self._listeners, event, info)
end

local function receiver_info(ssc, d, msg)
    local s = d._source
    return { name = s.name, streamId = s.stream_id, location = s.location,
             lastErrorMessage = msg or s.lastErrorMessage or "", active = ssc._state == "active" }
end

function StreamingContext:start()
    if self._state == "active" then return end  -- Spark warns and ignores a second start
    if self._state == "stopped" then error("StreamingContext has already been stopped", 2) end
    if active and active ~= self then
        error("Only one StreamingContext may be started in this process. Currently running StreamingContext was started at " ..
            tostring(active._started_at), 2)
    end
    if #self._outputs == 0 then
        error("No output operations registered, so nothing to execute", 2)
    end
    self.sparkContext:_check_active()
    for _, d in ipairs(self._dstreams) do
        if d._validate then d:_validate() end
    end
    for _, out in ipairs(self._outputs) do out.dstream:_init_remember(self._remember_ms) end
    local info = debug.getinfo(2, "Sl")
    self._started_at = info and string.format("%s:%d", info.short_src, info.currentline or 0) or "?"
    -- Batch times are multiples of the batch interval; the first is the next one after now.
    local now = now_ms()
    local first = (floor(now / self._batch_ms) + 1) * self._batch_ms
    self._zero_ms = first - self._batch_ms
    self._next_ms = first
    for _, d in ipairs(self._inputs) do
        local s = d._source
        s.report = function(msg)
            io.stderr:write("streamhost: ", s.name, ": ", msg, "\n")
            s.lastErrorMessage = msg
            self:_post("onReceiverError", { receiverInfo = receiver_info(self, d, msg) })
        end
        if s.start then
            local ok, err = pcall(s.start, s)
            if not ok then
                for _, e in ipairs(self._inputs) do
                    if e._source.stop then e._source:stop() end
                end
                error(err, 2)
            end
        end
    end
    self._state = "active"
    active = self
    self:_post("onStreamingStarted", { time = now / 1000 })
    for _, d in ipairs(self._inputs) do
        if d._source.receiver then
            self:_post("onReceiverStarted", { receiverInfo = receiver_info(self, d) })
        end
    end
end

local function stop_inputs(ssc)
    for _, d in ipairs(ssc._inputs) do
        local s = d._source
        if s.stop then
            s:stop()
            if s.receiver then ssc:_post("onReceiverStopped", { receiverInfo = receiver_info(ssc, d) }) end
        end
    end
end

local function finish_stop(ssc, stopSparkContext)
    ssc._state = "stopped"
    for _, d in ipairs(ssc._dstreams) do  -- stateful streams drop their workers' state
        if d._cleanup then
            local ok, err = pcall(d._cleanup, d)
            if not ok then io.stderr:write("streamhost: dropping the state of ", tostring(d), ": ", tostring(err), "\n") end
        end
    end
    if active == ssc then active = nil end
    if stopSparkContext then ssc.sparkContext:stop() end
end

-- stop(stopSparkContext = true, stopGracefully = false). Gracefully: the data received so far
-- is processed in one last batch first. Called from inside a batch, the stop happens when the
-- batch ends.
function StreamingContext:stop(stopSparkContext, stopGracefully)
    if stopSparkContext == nil then stopSparkContext = true end
    if self._state == "initialized" then
        finish_stop(self, stopSparkContext)
        return
    end
    if self._state == "stopped" then
        if stopSparkContext then self.sparkContext:stop() end
        return
    end
    if self._in_batch then
        self._stop_after_batch = { stopSparkContext = stopSparkContext, graceful = stopGracefully }
        return
    end
    if stopGracefully then
        -- Receivers stop taking data first; then one batch takes what they hold.
        for _, d in ipairs(self._inputs) do
            local s = d._source
            if s.pause then s:pause() end
        end
        local t = math.max(self._next_ms, floor(now_ms() / self._batch_ms) * self._batch_ms)
        self:_run_batch(t)
        self._next_ms = t + self._batch_ms
    end
    stop_inputs(self)
    finish_stop(self, stopSparkContext)
end

-- Called when the SparkContext stops: Spark stops its StreamingContext with it.
function M._spark_context_stopping(sc)
    if active and active.sparkContext == sc then
        stop_inputs(active)
        finish_stop(active, false)
    end
end

-- -- The batch -------------------------------------------------------------------------------

local function traceback(e)
    return debug.traceback(tostring(e), 2)
end

function StreamingContext:_run_batch(t)
    self._in_batch = true
    local submitted = C.sh_ffi_now()
    for _, d in ipairs(self._inputs) do
        if d._source.poll_events then d._source:poll_events() end
    end
    -- Inputs first, so every output of the batch sees the same data.
    local num_records, inputs = 0, {}
    for _, d in ipairs(self._inputs) do
        local ok, rdd = pcall(d._get, d, t)
        local n = 0
        if ok and rdd then
            n = rdd:_known_count()
        elseif not ok then
            d._source.report(tostring(rdd))
        end
        num_records = num_records + n
        inputs[d._source.stream_id] = { inputStreamId = d._source.stream_id, numRecords = n,
                                        batchTime = t / 1000, metadata = { name = d._source.name } }
    end
    local info = {
        batchTime = t / 1000, submissionTime = submitted, processingStartTime = nil,
        processingEndTime = nil, schedulingDelay = nil, processingDelay = nil, totalDelay = nil,
        numRecords = num_records, streamIdToInputInfo = inputs, outputOperationInfos = {},
    }
    self:_post("onBatchSubmitted", info)
    info.processingStartTime = C.sh_ffi_now()
    info.schedulingDelay = info.processingStartTime - t / 1000
    self:_post("onBatchStarted", info)
    local failure = nil
    for _, out in ipairs(self._outputs) do
        local op = { batchTime = t / 1000, id = out.id, name = out.name, description = out.description,
                     startTime = C.sh_ffi_now(), endTime = nil, failureReason = nil }
        info.outputOperationInfos[out.id] = op
        self:_post("onOutputOperationStarted", op)
        local ok, err = xpcall(function()
            local rdd = out.dstream:_get(t)
            if rdd then out.func(rdd, t) end
        end, traceback)
        op.endTime = C.sh_ffi_now()
        if not ok then
            op.failureReason = tostring(err)
            failure = failure or op.failureReason
            io.stderr:write("streamhost: batch ", tostring(t / 1000), " output ", out.name,
                " failed: ", op.failureReason, "\n")
        end
        self:_post("onOutputOperationCompleted", op)
    end
    for _, d in ipairs(self._dstreams) do d:_forget(t) end
    -- Forgotten RDDs hold C blocks the Lua collector cannot see the size of: free them now.
    collectgarbage()
    info.processingEndTime = C.sh_ffi_now()
    info.processingDelay = info.processingEndTime - info.processingStartTime
    info.totalDelay = info.schedulingDelay + info.processingDelay
    self._last_batch_ms = t
    self._batches_done = (self._batches_done or 0) + 1
    self._in_batch = false
    if failure and not self._error then self._error = failure end
    self:_post("onBatchCompleted", info)
    local pending = self._stop_after_batch
    if pending then
        self._stop_after_batch = nil
        self._next_ms = t + self._batch_ms
        self:stop(pending.stopSparkContext, pending.graceful)
    end
end

-- -- The loop ------------------------------------------------------------------------------------

-- Runs due batches and turns the host's loop until done() is true or the deadline (ms) passes.
-- Returns true when done() became true.
local function run_until(done, deadline)
    local host = shffi.host()
    while true do
        if done() then return true end
        local now = now_ms()
        if deadline and now >= deadline then return false end
        local ssc = active
        if ssc and now >= ssc._next_ms then
            local t = ssc._next_ms
            ssc._next_ms = t + ssc._batch_ms
            ssc:_run_batch(t)
        else
            local wait = 1000
            if ssc then wait = math.min(wait, ssc._next_ms - now) end
            if deadline then wait = math.min(wait, deadline - now) end
            if C.sh_ffi_pump(host, math.max(wait, 1)) == 1 then
                C.sh_ffi_clear_stop(host)
                stop_requested = true
                if active then active:stop(true, true) end
            end
        end
    end
end
M.run_until = run_until

local function raise_pending(ssc)
    local err = ssc._error
    if err then
        ssc._error = nil
        ssc._error_reported = true
        error(err, 0)
    end
end

-- Waits until the context stops (or timeout seconds pass), running its batches meanwhile.
-- Raises, once, the error of a failed batch.
function StreamingContext:awaitTermination(timeout)
    local deadline = timeout and (now_ms() + floor(timeout * 1000)) or nil
    run_until(function() return self._state == "stopped" or self._error ~= nil end, deadline)
    raise_pending(self)
end

-- true when the context stopped, false when timeout seconds passed first; raises a batch's error.
function StreamingContext:awaitTerminationOrTimeout(timeout)
    if type(timeout) ~= "number" then error("awaitTerminationOrTimeout expects a timeout in seconds", 2) end
    local deadline = now_ms() + floor(timeout * 1000)
    run_until(function() return self._state == "stopped" or self._error ~= nil end, deadline)
    raise_pending(self)
    return self._state == "stopped"
end

-- -- getOrCreate -----------------------------------------------------------------------------

function StreamingContext.getOrCreate(checkpointPath, setupFunc)
    if type(setupFunc) ~= "function" then error("getOrCreate expects a setup function", 2) end
    local recovered = nil
    local checkpoint = package.loaded["streamhost.checkpoint"]
    if checkpointPath and checkpoint then recovered = checkpoint.recover(checkpointPath) end
    if recovered then return recovered end
    local ssc = setupFunc()
    if getmetatable(ssc) ~= StreamingContext then
        error("the setup function of getOrCreate must return a StreamingContext", 2)
    end
    if checkpointPath then ssc:checkpoint(checkpointPath) end
    return ssc
end

function StreamingContext.getActiveOrCreate(checkpointPath, setupFunc)
    if active then return active end
    return StreamingContext.getOrCreate(checkpointPath, setupFunc)
end

-- -- For the host --------------------------------------------------------------------------------

-- After the script returns: a started context keeps running until it stops or the host is
-- asked to stop.
function M.run_until_stopped()
    if active == nil then return end
    run_until(function() return active == nil or stop_requested end)
    if active then active:stop(true, true) end
end

-- Stops whatever is still running (host shutdown or a script error).
function M.shutdown()
    if active then
        stop_inputs(active)
        finish_stop(active, true)
    end
    local sc = SparkContext._active()
    if sc then sc:stop() end
end

return M
