-- streamhost.streaming: StreamingContext: the stream graph, its lifecycle, and its batches: the
-- C scheduler seals records at every interval; each record becomes a batch whose output
-- operations run in coroutines on the host's loop, one batch at a time, in order.
local shffi = require "streamhost.ffi"
local loop = require "streamhost.loop"
local trace = require "streamhost.trace"
local format = require "streamhost.format"
local SparkContext = require "streamhost.context"
local dstream = require "streamhost.dstream"
require "streamhost.window"  -- windowed and stateful DStream methods
require "streamhost.state"
local sources = require "streamhost.sources"
local listener = require "streamhost.listener"
local status = require "streamhost.status"
local reload = require "streamhost.reload"

local C = shffi.C
local floor = math.floor

local StreamingContext = { __sh_context = "StreamingContext" }
StreamingContext.__index = StreamingContext

local M = { StreamingContext = StreamingContext }

local active = nil        -- the started, not yet stopped context
local running = {}        -- batches whose coroutine has not ended (released at shutdown)

local function now_ms()
    return floor(C.sh_ffi_now() * 1000)
end

local function format_time(t_ms)
    return format.time(t_ms / 1000)
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

-- An extension beyond pyspark: a DStream of the strings C pushes with sh_host_push.
function StreamingContext:embeddedStream(name, capacity)
    return (sources.embedded(self, name, capacity))
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
    return dstream.transform_all(dstreams, transformFunc)
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

-- The stream graph as plain data (DESIGN.md "The graph is data"): the streams' records, in the
-- order they were defined, and the output operations.
function StreamingContext:_graph()
    local streams, outputs = {}, {}
    for i, d in ipairs(self._dstreams) do streams[i] = d:_record() end
    for i, out in ipairs(self._outputs) do
        outputs[i] = { id = out.id, stream = out.dstream._id, name = out.name, description = out.description }
    end
    return { batch_ms = self._batch_ms, streams = streams, outputs = outputs }
end

-- The checkpoint writer's status (see streamhost.checkpoint: Checkpointer:status), or nil when
-- the context does not checkpoint (or has not started). For the status page and benchmarks.
function StreamingContext:_checkpoint_status()
    return self._ckpt and self._ckpt:status() or self._ckpt_last_status
end

function StreamingContext:addStreamingListener(l)
    if type(l) ~= "table" then error("addStreamingListener expects a listener object", 2) end
    self._listeners[#self._listeners + 1] = l
end

-- -- Lifecycle ---------------------------------------------------------------------------------

function StreamingContext.getActive()
    return active
end

-- Delivers a listener event, each listener's call in a coroutine of its own (it may wait).
function StreamingContext:_post(event, info)
    status.post(self, event, info)  -- the status page's model, before any listener runs
    listener.post(self._listeners, event, info)
end

-- Spark's ReceiverInfo: name, streamId, active, location, lastErrorMessage, lastError and
-- lastErrorTime (epoch seconds; nil before any error).
local function receiver_info(ssc, d)
    local s = d._source
    return { name = s.name, streamId = s.stream_id, location = s.location,
             lastErrorMessage = s.lastErrorMessage or "", lastError = s.lastErrorMessage or "",
             lastErrorTime = s.lastErrorTime, active = ssc._state == "active" and not s.stopped }
end

local function stop_inputs(ssc)
    for _, d in ipairs(ssc._inputs) do
        local s = d._source
        if s.stop and not s.stopped then
            s.stopped = true
            s:stop()
            if s.receiver then ssc:_post("onReceiverStopped", { receiverInfo = receiver_info(ssc, d) }) end
        end
    end
end

function StreamingContext:start()
    if self._state == "active" then return end  -- Spark warns and ignores a second start
    local r = reload.loading()
    if r and self._state == "initialized" then  -- a hot reload's new script: the switch starts it
        reload.start_new(r, self, 3)
        return
    end
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
    -- Batch times are multiples of the batch interval; the first is the next one after now. A
    -- recovered context keeps the zero time it started with.
    local now = now_ms()
    local first = (floor(now / self._batch_ms) + 1) * self._batch_ms
    local recovery = self._recovery
    self._zero_ms = recovery and recovery.zero_ms or first - self._batch_ms
    if recovery and recovery.last_generated then  -- a graceful stop may have made a later one
        first = math.max(first, recovery.last_generated + self._batch_ms)
    end
    if self._checkpoint_dir then
        local checkpoint = require "streamhost.checkpoint"
        local ok, ck = pcall(checkpoint.open, self)
        if not ok then error(ck, 2) end
        self._ckpt = ck
    end
    local sched = C.sh_ffi_sched_new(self.sparkContext._host, self._batch_ms, first)
    if sched == nil then
        if self._ckpt then self._ckpt:close(); self._ckpt = nil end
        error("out of memory starting the batch scheduler", 2)
    end
    self._sched = sched
    self._queue, self._waiters, self._drain_waiters, self._stop_waiters = {}, {}, {}, {}
    for _, d in ipairs(self._inputs) do
        local s = d._source
        s.stopped = nil  -- a start that failed before may have stopped it
        s.report = function(msg)
            io.stderr:write("streamhost: ", s.name, ": ", msg, "\n")
            s.lastErrorMessage, s.lastErrorTime = msg, C.sh_ffi_now()
            self:_post("onReceiverError", { receiverInfo = receiver_info(self, d) })
        end
        if s.start then
            local ok, err = pcall(s.start, s, sched)
            if not ok then
                stop_inputs(self)
                C.sh_ffi_sched_free(sched)
                self._sched = nil
                if self._ckpt then self._ckpt:close(); self._ckpt = nil end
                error(err, 2)
            end
        end
    end
    self._state = "active"
    active = self
    self:_post("onStreamingStarted", { time = now / 1000 })
    if recovery and self._ckpt then
        -- The batches recovery replays come first, in time order, then the scheduler's: no
        -- batch is taken or started while the state is restored (that waits for tasks).
        self._replaying = true
        local ok, err = pcall(function()
            for _, step in ipairs(require("streamhost.checkpoint").replay_plan(self, first)) do
                self:_generate_batch(step.time, nil, step.kind)
            end
        end)
        self._replaying = nil
        if not ok then
            self:stop(false)
            error(err, 2)
        end
    end
    for _, d in ipairs(self._inputs) do
        if d._source.receiver then
            self:_post("onReceiverStarted", { receiverInfo = receiver_info(self, d) })
        end
    end    if self._reload_after_start then reload.after_start(self._reload_after_start) end
end

local function wake_all(set)
    for co in pairs(set) do
        set[co] = nil
        loop.wake(co)
    end
end

-- Lets go of batches not run yet (their records and the RDDs generated for them).
local function drop_queue(ssc)
    for _, batch in ipairs(ssc._queue or {}) do
        C.sh_ffi_batch_release(batch.rec)
        batch.rec = nil
        for _, d in ipairs(ssc._inputs) do d._generated[batch.time] = nil end
    end
    ssc._queue = {}
end

local function finish_stop(ssc, stopSparkContext)
    if ssc._state == "stopped" then
        if stopSparkContext then ssc.sparkContext:stop() end
        return
    end
    ssc._state = "stopped"
    if active == ssc then active = nil end
    reload.abandon("the job stopped")
    stop_inputs(ssc)
    status.stopped()
    drop_queue(ssc)
    if ssc._sched ~= nil then
        C.sh_ffi_sched_free(ssc._sched)  -- after the receivers that feed it are closed
        ssc._sched = nil
    end
    if ssc._ckpt then  -- what is queued is written, then the writer stops
        ssc._ckpt:close()
        ssc._ckpt_last_status = ssc._ckpt:status()
        ssc._ckpt = nil
    end
    for _, d in ipairs(ssc._dstreams) do  -- stateful streams drop their workers' state
        if d._cleanup then
            local ok, err = pcall(d._cleanup, d)
            if not ok then io.stderr:write("streamhost: dropping the state of ", tostring(d), ": ", tostring(err), "\n") end
        end
    end
    if stopSparkContext then ssc.sparkContext:stop() end
    ssc._stop_done = true
    loop.flush_later()  -- the last listener events (onReceiverStopped) before stop returns
    wake_all(ssc._waiters or {})
    wake_all(ssc._drain_waiters or {})
    wake_all(ssc._stop_waiters or {})
end

-- Waits (in a coroutine of the host's) until no batch runs and none waits, or `deadline`.
local function wait_drained(ssc, deadline)
    local co = loop.current()
    if co == nil then return end
    local timer = deadline and loop.at(deadline, function()
        if ssc._drain_waiters[co] then ssc._drain_waiters[co] = nil; loop.wake(co) end
    end)
    while (ssc._running or #ssc._queue > 0) and ssc._state ~= "stopped" do
        if deadline and now_ms() >= deadline then break end
        ssc._drain_waiters[co] = true
        loop.wait()
    end
    ssc._drain_waiters[co] = nil
    loop.cancel(timer)
end

-- stop(stopSparkContext = true, stopGracefully = false). Gracefully: receivers stop, and every
-- batch holding data they received runs first (for at most spark.streaming.gracefulStopTimeout,
-- ten batch intervals, as Spark). Otherwise batches not started are dropped; one running
-- finishes first. Called from inside one of this context's batches, the stop happens when the
-- batch ends.
function StreamingContext:stop(stopSparkContext, stopGracefully)
    if stopSparkContext == nil then stopSparkContext = true end
    if self._state == "initialized" or (self._state == "stopped" and not self._stopping) then
        finish_stop(self, stopSparkContext)
        return
    end
    local ctx = loop.context()
    if ctx.batch and ctx.ssc == self then
        self._stop_after_batch = { stopSparkContext = stopSparkContext, graceful = stopGracefully }
        return
    end
    if self._stopping then  -- another stop is under way: wait for it
        if stopSparkContext then self._stop_sc = true end
        while not self._stop_done and loop.current() do
            self._stop_waiters[loop.current()] = true
            loop.wait()
        end
        return
    end
    self._stopping = true
    self._stop_sc = stopSparkContext
    if stopGracefully then
        for _, d in ipairs(self._inputs) do  -- what sits in receivers' queues goes in too
            if d._source.drain then d._source:drain() end
        end
        C.sh_ffi_sched_flush(self._sched)  -- what was received goes into batches; no new ones
        stop_inputs(self)
        M.tick()
        wait_drained(self, now_ms() + 10 * self._batch_ms)
        if self._ckpt and not self._running and #self._queue == 0 then self._ckpt:final() end
    else
        C.sh_ffi_sched_stop(self._sched)
        stop_inputs(self)
        drop_queue(self)
        wait_drained(self, nil)
    end
    finish_stop(self, self._stop_sc)
end

-- Called when the SparkContext stops: Spark stops its StreamingContext with it.
function M._spark_context_stopping(sc)
    if active and active.sparkContext == sc then finish_stop(active, false) end
end

-- -- Batches -------------------------------------------------------------------------------

-- A new batch from a sealed record: every input's RDD of time t is made now (receivers' blocks
-- from the record; files and queues are read as of now), so the batch holds its interval's data
-- however late it runs.
function StreamingContext:_generate(rec)
    self:_generate_batch(tonumber(C.sh_ffi_batch_time(rec)), rec, nil)
end

-- Makes batch t and queues it. replay (recovery): nil for a live batch (inputs from the sealed
-- record `rec`, files as of now), "down" for a batch time the host was down for (as live, no
-- record), "pending" for a batch to rerun with its recorded input, "state" for a completed
-- batch whose state is re-applied from its recorded input (no outputs, no listener events).
function StreamingContext:_generate_batch(t, rec, replay)
    local batch = { time = t, rec = rec, touched = {}, replay = replay }
    local recorded = replay == "pending" or replay == "state"
    local num_records, inputs = 0, {}
    for _, d in ipairs(self._inputs) do
        local s = d._source
        local gen = s.generate
        if recorded then
            gen = function() return (s.regenerate and s:regenerate(t)) or self.sparkContext:emptyRDD() end
        end
        local ok, rdd, meta = pcall(gen, s, t, rec)
        if not ok then
            s.report(tostring(rdd))
            rdd, meta = self.sparkContext:emptyRDD(), nil
        end
        d._generated[t] = rdd or false
        local n = rdd and rdd:_known_count() or 0
        num_records = num_records + n
        meta = meta or {}
        inputs[s.stream_id] = { inputStreamId = s.stream_id, numRecords = n, batchTime = t / 1000,
                                metadata = meta,
                                metadataDescription = meta.description or string.format("%s: %d records", s.name, n) }
    end
    batch.info = {
        -- A live batch is submitted at its time, as Spark's timer submits it (this runs later
        -- when the loop was busy: that wait is scheduling delay); a replayed one now.
        batchTime = t / 1000, submissionTime = replay and C.sh_ffi_now() or math.min(t / 1000, C.sh_ffi_now()),
        processingStartTime = nil,
        processingEndTime = nil, schedulingDelay = nil, processingDelay = nil, totalDelay = nil,
        numRecords = num_records, streamIdToInputInfo = inputs, outputOperationInfos = {},
    }
    self._queue[#self._queue + 1] = batch
    if replay == "state" then return end
    if self._ckpt then self._ckpt:generated(batch) end
    self:_post("onBatchSubmitted", batch.info)
end

-- Runs the batch's output operations in order, each in a coroutine of its own.
function StreamingContext:_run_batch(batch)
    local t, info = batch.time, batch.info
    if batch.rec ~= nil then C.sh_ffi_batch_start(batch.rec) end
    if batch.replay == "state" then return self:_reapply_state(batch) end
    info.processingStartTime = C.sh_ffi_now()
    info.schedulingDelay = info.processingStartTime - info.submissionTime
    self:_post("onBatchStarted", info)
    local failure = nil
    for _, out in ipairs(self._outputs) do
        if self._state == "stopped" then break end
        local op = { batchTime = t / 1000, id = out.id, name = out.name, description = out.description,
                     startTime = C.sh_ffi_now(), endTime = nil, failureReason = nil }
        info.outputOperationInfos[out.id] = op
        self:_post("onOutputOperationStarted", op)
        local ok, err = loop.run(function()
            local rdd = out.dstream:_get(t)
            if rdd then out.func(rdd, t) end
        end, trace.user_traceback)  -- the message, then the job's own frames
        op.endTime = C.sh_ffi_now()
        if not ok then
            op.failureReason = tostring(err)
            failure = failure or op.failureReason
        end
        self:_post("onOutputOperationCompleted", op)
    end
    batch.failure = self:_end_state(batch, failure)
    -- Forgotten RDDs hold C blocks the Lua collector cannot see the size of: free them now.
    collectgarbage()
    info.processingEndTime = C.sh_ffi_now()
    info.processingDelay = info.processingEndTime - info.processingStartTime
    info.totalDelay = info.schedulingDelay + info.processingDelay
    self:_post("onBatchCompleted", info)
end

-- Ends batch's state: stateful streams commit the new state of every partition, or, when the
-- batch failed (`failure`), keep the previous one everywhere; then every stream forgets what
-- it no longer needs to remember. Returns the batch's failure, or the first commit's.
function StreamingContext:_end_state(batch, failure)
    local t = batch.time
    for d in pairs(batch.touched) do
        -- A batch still running when its context stopped (a graceful stop that timed out)
        -- commits nothing: the streams' state was dropped with the context.
        local ok, err = pcall(d._finish_update, d, t, failure == nil and self._state ~= "stopped")
        if not ok and failure == nil then
            failure = "committing the state of " .. tostring(d) .. ": " .. tostring(err)
        end
    end
    for _, d in ipairs(self._dstreams) do d:_forget(t) end
    return failure
end

-- A completed batch replayed by recovery: the stateful streams it moved are computed from its
-- recorded input and committed; no output runs again.
function StreamingContext:_reapply_state(batch)
    local t = batch.time
    local ok, err = loop.run(function()
        for _, d in ipairs(self._dstreams) do
            if d._sid and (t - self._zero_ms) % d._slide_ms == 0 and (d._state_time or -1) < t then
                d:_get(t)
            end
        end
    end, trace.user_traceback)
    local failure = not ok and ("re-applying batch " .. format_time(t) .. " from the checkpoint: " .. tostring(err)) or nil
    batch.failure = self:_end_state(batch, failure)
end

-- After a batch's coroutine ended: release its record, report, and start what follows.
function StreamingContext:_batch_ended(batch, ok, err)
    if not ok then batch.failure = batch.failure or tostring(err) end
    running[batch] = nil
    if batch.rec ~= nil then
        C.sh_ffi_batch_release(batch.rec)
        batch.rec = nil
    end
    self._running = nil
    if batch.replay ~= "state" then
        for _, d in ipairs(self._inputs) do  -- sources that act on completion (Kafka: rates, commits)
            local s = d._source
            if s.batch_completed then pcall(s.batch_completed, s, batch.info, batch.failure == nil, batch.time) end
        end
    end
    reload.batch_ended(M, self, batch)
    if self._ckpt and batch.replay ~= "state" and self._state ~= "stopped" then
        local cok, cerr = pcall(self._ckpt.completed, self._ckpt, batch)
        if not cok then io.stderr:write("streamhost: checkpoint: ", tostring(cerr), "\n") end
    end
    if batch.failure then
        -- Said once: raised by the awaitTermination that waits for it, else printed here.
        if self._error == nil and next(self._waiters) ~= nil then
            self._error = batch.failure
            wake_all(self._waiters)
        else
            io.stderr:write("streamhost: batch ", format_time(batch.time), " failed: ", batch.failure, "\n")
            if self._error == nil then self._error = batch.failure end
        end
    end
    if #self._queue == 0 then wake_all(self._drain_waiters) end
    local pending = self._stop_after_batch
    if pending then
        self._stop_after_batch = nil
        loop.spawn(function() self:stop(pending.stopSparkContext, pending.graceful) end, { ssc = self })
    end
end

-- One step of the batch machinery (the dispatch calls it until it answers false): takes the
-- records the scheduler sealed, reports receiver events, starts the next batch when none runs.
-- Returns true when it started something.
function M.tick()
    local ssc = active
    if ssc == nil or ssc._sched == nil and #(ssc._queue or {}) == 0 then return false end
    if ssc._replaying then return false end  -- recovery is queueing its batches
    for _, d in ipairs(ssc._inputs) do
        if d._source.poll_events then d._source:poll_events() end
    end
    if ssc._ckpt then ssc._ckpt:poll() end
    while ssc._sched ~= nil do
        local rec = C.sh_ffi_sched_take(ssc._sched)
        if rec == nil then break end
        ssc:_generate(rec)
    end
    if reload.maybe_switch(M, ssc) then ssc = active end  -- a batch boundary
    if ssc._running or #ssc._queue == 0 or ssc._state == "stopped" then return false end
    if (ssc._queue[1].hold or 0) > 0 then return false end  -- its write-ahead log is being written
    local batch = table.remove(ssc._queue, 1)
    ssc._running = batch
    running[batch] = true
    loop.spawn(function() ssc:_run_batch(batch) end, { batch = batch, ssc = ssc },
        function(_, ok, err) ssc:_batch_ended(batch, ok, err) end)
    return true
end

-- A stop request from the host (a signal, sh_host_stop): the active context stops gracefully.
-- Returns false when there is nothing to stop.
function M.stop_requested()
    local ssc = active
    if ssc == nil then return false end
    if not ssc._stopping then
        loop.spawn(function() ssc:stop(true, true) end, { ssc = ssc })
    end
    return true
end

-- Hot reload's switch: the new graph's context becomes the running one.
function M._set_active(ssc)
    active = ssc
end

-- True while a StreamingContext runs or is stopping.
function M.running()
    return active ~= nil
end

local function raise_pending(ssc)
    local err = ssc._error
    if err then
        ssc._error = nil
        ssc._error_reported = true
        error(err, 0)
    end
end

-- Waits until the context stops, a batch fails or `deadline` (epoch ms) passes.
local function wait_termination(ssc, deadline, what)
    if ssc._state == "stopped" or ssc._error then return end
    local co = loop.current()
    if co == nil then
        error(what .. " cannot wait here: call it from the job script or from a function the host runs, not from inside a coroutine of your own", 3)
    end
    local timer = deadline and loop.at(deadline, function()
        if ssc._waiters[co] then ssc._waiters[co] = nil; loop.wake(co) end
    end)
    ssc._waiters = ssc._waiters or {}
    ssc._waiters[co] = true
    loop.wait()
    ssc._waiters[co] = nil
    loop.cancel(timer)
end

-- Waits until the context stops (or timeout seconds pass) while the host runs its batches.
-- Raises, once, the error of a failed batch.
function StreamingContext:awaitTermination(timeout)
    local deadline = timeout and (now_ms() + floor(timeout * 1000)) or nil
    wait_termination(self, deadline, "awaitTermination")
    raise_pending(self)
end

-- true when the context stopped, false when timeout seconds passed first; raises a batch's error.
function StreamingContext:awaitTerminationOrTimeout(timeout)
    if type(timeout) ~= "number" then error("awaitTerminationOrTimeout expects a timeout in seconds", 2) end
    wait_termination(self, now_ms() + floor(timeout * 1000), "awaitTerminationOrTimeout")
    raise_pending(self)
    return self._state == "stopped"
end

-- -- getOrCreate -----------------------------------------------------------------------------

function StreamingContext.getOrCreate(checkpointPath, setupFunc)
    if type(setupFunc) ~= "function" then error("getOrCreate expects a setup function", 2) end
    if checkpointPath ~= nil and type(checkpointPath) ~= "string" then
        error("getOrCreate expects a checkpoint directory path", 2)
    end
    -- A hot reload takes over the running job, not the checkpoint (which that job writes).
    if checkpointPath and not reload.loading() then
        local ok, recovered = pcall(require("streamhost.checkpoint").recover, checkpointPath)
        if not ok then error(recovered, 2) end
        if recovered then return recovered end
    end
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

-- Stops whatever is still running (the job is over, or the host is being freed).
function M.shutdown()
    reload.abandon("the job ended")
    if active then finish_stop(active, true) end
    -- Batches still running when the job ended (a stop that timed out) never resume.
    for batch in pairs(running) do
        running[batch] = nil
        if batch.rec ~= nil then
            C.sh_ffi_batch_release(batch.rec)
            batch.rec = nil
        end
    end
    local sc = SparkContext._active()
    if sc then sc:stop() end
end

return M
