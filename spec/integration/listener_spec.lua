-- spec/integration/listener_spec.lua: every StreamingListener event, in order and with its
-- fields, for a job with two inputs (a queue and a socket receiver), a failing output operation
-- and a receiver that loses its peer.
local sh = require "streamhost"
local helpers = require "spec.helpers"

local C = require("streamhost.ffi").C

local function recorder()
    local l, events = sh.StreamingListener(), {}
    for _, name in ipairs(require("streamhost.listener").EVENTS) do
        l[name] = function(_, info) events[#events + 1] = { name = name, info = info } end
    end
    return l, events
end

local function index_of(events, pred, from)
    for i = from or 1, #events do
        if pred(events[i]) then return i end
    end
end

describe("StreamingListener events", function()
    local events, port

    setup(function()
        local peer = helpers.line_server()
        port = peer.port
        peer:cmd("accept")
        peer:cmd("lines 4 hello world")
        peer:cmd("sleep 400")
        peer:cmd("close")  -- the receiver loses its peer: onReceiverError
        local ssc = helpers.ssc(0.1)
        local l
        l, events = recorder()
        ssc:addStreamingListener(l)
        local queue = ssc:queueStream({ { "a", "b" } }, true)
        local lines = ssc:socketTextStream("127.0.0.1", port)
        queue:union(lines):foreachRDD(function(rdd) rdd:count() end)
        lines:foreachRDD(function(rdd)
            if rdd:count() > 0 then error("the socket's output fails") end
        end)
        ssc:start()
        local function seen(name, pred)
            return index_of(events, function(e) return e.name == name and (pred == nil or pred(e.info)) end)
        end
        local function completed()
            local n = 0
            for _, e in ipairs(events) do if e.name == "onBatchCompleted" then n = n + 1 end end
            return n
        end
        -- The failing output operation raises from awaitTermination*: expected here, so caught.
        local deadline = C.sh_ffi_now() + 20
        repeat
            pcall(ssc.awaitTerminationOrTimeout, ssc, 0.02)
        until (seen("onReceiverError") and completed() >= 4
               and seen("onOutputOperationCompleted", function(op) return op.failureReason end))
            or C.sh_ffi_now() > deadline
        ssc:stop(false)
        peer:quit()
    end)

    it("starts with onStreamingStarted, then onReceiverStarted for the receiver only", function()
        assert.are.equal("onStreamingStarted", events[1].name)
        assert.are.equal("number", type(events[1].info.time))
        assert.are.equal("onReceiverStarted", events[2].name)
        local ri = events[2].info.receiverInfo
        assert.are.equal(string.format("SocketReceiver(127.0.0.1:%d)", port), ri.name)
        assert.are.equal(1, ri.streamId)
        assert.are.equal(string.format("127.0.0.1:%d", port), ri.location)
        assert.is_true(ri.active)
        assert.are.equal("", ri.lastErrorMessage)
        assert.is_nil(ri.lastErrorTime)
        assert.is_nil(index_of(events, function(e) return e.name == "onReceiverStarted" end, 3))
    end)

    it("gives every batch Submitted, Started, each output operation's Started and Completed, then Completed", function()
        local batches, order = {}, {}
        for i, e in ipairs(events) do
            local t = e.info.batchTime
            if t then
                if not batches[t] then batches[t] = {}; order[#order + 1] = t end
                local tag = e.name
                if e.info.id then tag = tag .. "#" .. e.info.id end
                batches[t][#batches[t] + 1] = tag
                batches[t].last = i
                batches[t].first = batches[t].first or i
            end
        end
        local complete = 0
        for k, t in ipairs(order) do
            local seq = table.concat(batches[t], " ")
            if batches[t][#batches[t]] == "onBatchCompleted" then
                complete = complete + 1
                assert.are.equal("onBatchSubmitted onBatchStarted onOutputOperationStarted#0 " ..
                    "onOutputOperationCompleted#0 onOutputOperationStarted#1 onOutputOperationCompleted#1 " ..
                    "onBatchCompleted", seq)
            end
            if k > 1 then
                assert.is_true(t > order[k - 1], "batch times increase")
                -- One batch at a time: the previous batch completed before this one started.
                local started = index_of(events, function(e)
                    return e.name == "onBatchStarted" and e.info.batchTime == t
                end)
                if started then assert.is_true(batches[order[k - 1]].last < started) end
            end
        end
        assert.is_true(complete >= 4, "complete batches: " .. complete)
    end)

    it("fills each batch's fields as it goes: times, delays, records per input", function()
        local by = {}
        for _, e in ipairs(events) do
            local t = e.info.batchTime
            if t then by[t] = by[t] or {}; by[t][e.name] = by[t][e.name] or e.info end
        end
        local with_data = 0
        for t, b in pairs(by) do
            local sub, st, done = b.onBatchSubmitted, b.onBatchStarted, b.onBatchCompleted
            if done then
                assert.are.equal(math.floor(t * 1000 + 0.5), t * 1000)
                assert.is_nil(sub.processingStartTime)
                assert.is_nil(sub.schedulingDelay)
                assert.is_true(sub.submissionTime >= t - 0.001)
                assert.is_nil(st.processingEndTime)
                assert.is_true(math.abs(st.schedulingDelay - (st.processingStartTime - st.submissionTime)) < 1e-9)
                local processing = done.processingEndTime - done.processingStartTime
                assert.is_true(math.abs(done.processingDelay - processing) < 1e-9)
                assert.is_true(math.abs(done.totalDelay - (done.schedulingDelay + done.processingDelay)) < 1e-9)
                local q, s = done.streamIdToInputInfo[0], done.streamIdToInputInfo[1]
                assert.are.equal(0, q.inputStreamId)
                assert.are.equal(1, s.inputStreamId)
                assert.are.equal(done.numRecords, q.numRecords + s.numRecords)
                assert.are.equal(t, s.batchTime)
                if s.numRecords > 0 then with_data = with_data + 1 end
            end
        end
        assert.is_true(with_data >= 1)
    end)

    it("reports output operations with id, name, the user's file and line, times and the failure", function()
        local failed, fine = nil, nil
        for _, e in ipairs(events) do
            if e.name == "onOutputOperationStarted" then
                assert.is_nil(e.info.endTime)
                assert.is_nil(e.info.failureReason)
                assert.are.equal("number", type(e.info.startTime))
            elseif e.name == "onOutputOperationCompleted" then
                assert.are.equal("foreachRDD", e.info.name)
                assert.matches("listener_spec%.lua:%d+", e.info.description)
                assert.is_true(e.info.endTime >= e.info.startTime)
                if e.info.failureReason then failed = e.info else fine = fine or e.info end
            end
        end
        assert.are.equal(1, failed.id)
        assert.matches("listener_spec%.lua:%d+: the socket's output fails", failed.failureReason)
        assert.is_nil(fine.failureReason)
        -- The batch's own info carries the same reason under outputOperationInfos.
        local done = events[index_of(events, function(e)
            return e.name == "onBatchCompleted" and e.info.batchTime == failed.batchTime
        end)].info
        assert.are.equal(failed.failureReason, done.outputOperationInfos[1].failureReason)
    end)

    it("reports the lost peer with onReceiverError, then onReceiverStopped last, inactive", function()
        local i = index_of(events, function(e) return e.name == "onReceiverError" end)
        local ri = events[i].info.receiverInfo
        assert.are.equal(1, ri.streamId)
        assert.matches(tostring(port), ri.lastErrorMessage)
        assert.are.equal(ri.lastErrorMessage, ri.lastError)
        assert.is_true(math.abs(ri.lastErrorTime - C.sh_ffi_now()) < 60)
        local last = events[#events]
        assert.are.equal("onReceiverStopped", last.name)
        assert.is_false(last.info.receiverInfo.active)
        assert.are.equal(ri.lastErrorMessage, last.info.receiverInfo.lastErrorMessage)
    end)
end)
