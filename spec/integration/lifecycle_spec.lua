-- spec/integration/lifecycle_spec.lua: the StreamingContext lifecycle (Spark's errors and
-- messages), errors in user functions, listener batch info and getOrCreate.
local sh = require "streamhost"
local helpers = require "spec.helpers"

local C = require("streamhost.ffi").C

local function now() return C.sh_ffi_now() end

-- Asserts that f raises `msg` at a line of this file (the caller's line, not the library's).
local function assert_error_here(msg, f)
    local ok, err = pcall(f)
    assert.is_false(ok)
    assert.matches("lifecycle_spec%.lua:%d+: " .. msg:gsub("%p", "%%%0") .. "$", tostring(err))
end

-- Runs ssc's batches for `seconds`, ignoring nothing: a batch error propagates.
local function run_for(ssc, seconds)
    local deadline = now() + seconds
    while now() < deadline do ssc:awaitTerminationOrTimeout(0.02) end
end

describe("StreamingContext lifecycle", function()
    local ssc
    after_each(function()
        if ssc then ssc:stop(false, false) end
        ssc = nil
    end)

    it("refuses to start with no output operation", function()
        ssc = helpers.ssc()
        ssc:queueStream({ { 1 } })
        assert_error_here("No output operations registered, so nothing to execute", function() ssc:start() end)
        assert.is_nil(sh.StreamingContext.getActive())
    end)

    it("refuses new streams, transformations and outputs after start", function()
        ssc = helpers.ssc()
        local d = ssc:queueStream({ { 1 } })
        d:foreachRDD(function() end)
        ssc:start()
        local msg = "Adding new inputs, transformations, and output operations after starting a context is not supported"
        assert_error_here(msg, function() ssc:queueStream({ { 2 } }) end)
        assert_error_here(msg, function() d:map(tostring) end)
        assert_error_here(msg, function() d:union(d) end)
        assert_error_here(msg, function() d:foreachRDD(function() end) end)
        assert_error_here(msg, function() d:pprint() end)
    end)

    it("refuses to start once stopped", function()
        ssc = helpers.ssc()
        ssc:queueStream({ { 1 } }):foreachRDD(function() end)
        ssc:start()
        ssc:stop(false)
        assert_error_here("StreamingContext has already been stopped", function() ssc:start() end)
    end)

    it("allows one active StreamingContext at a time", function()
        ssc = helpers.ssc()
        ssc:queueStream({ { 1 } }):foreachRDD(function() end)
        ssc:start()
        local other = sh.StreamingContext(helpers.sc(), 0.05)  -- helpers.ssc() would stop ssc
        other:queueStream({ { 1 } }):foreachRDD(function() end)
        local ok, err = pcall(other.start, other)
        assert.is_false(ok)
        assert.matches("^Only one StreamingContext may be started in this process", tostring(err))
        assert.matches("lifecycle_spec.lua:%d+", tostring(err))  -- where the running one started
        assert.are.equal(ssc, sh.StreamingContext.getActive())
        other:stop(false)
    end)

    it("refuses a second SparkContext while one is active", function()
        local sc = helpers.sc()
        local ok, err = pcall(function() sh.SparkContext("local[2]", "second") end)
        assert.is_false(ok)
        assert.matches("lifecycle_spec%.lua:%d+: Cannot run multiple SparkContexts at once; existing SparkContext%(app="
            .. sc.appName, tostring(err))
        assert.are.equal(sc, sh.SparkContext._active())
    end)

    it("leaves the SparkContext usable after stop(false)", function()
        local sc = helpers.sc()
        ssc = helpers.ssc()
        ssc:queueStream({ { 1 } }):foreachRDD(function() end)
        ssc:start()
        ssc:stop(false)
        assert.are.same({ 2, 4 }, sc:parallelize({ 1, 2 }):map(function(x) return x * 2 end):collect())
    end)

    it("stops the SparkContext with stop(true), and by default", function()
        local sc = helpers.sc()
        local s = sh.StreamingContext(sc, 0.05)
        s:queueStream({ { 1 } }):foreachRDD(function() end)
        s:start()
        s:stop()
        assert.has_error(function() sc:parallelize({ 1 }) end, "Cannot call methods on a stopped SparkContext")
        assert.is_nil(sh.SparkContext._active())
        local sc2 = helpers.sc()  -- a new one may start now
        assert.are_not.equal(sc, sc2)
        assert.are.same({ 1 }, sc2:parallelize({ 1 }):collect())
    end)

    it("processes the data received so far when stopping gracefully, and drops it otherwise", function()
        local results = {}
        for _, graceful in ipairs({ true, false }) do
            local peer = helpers.line_server()
            local s = helpers.ssc(5)  -- no batch comes due during the test
            local got = {}
            s:socketTextStream("127.0.0.1", peer.port):foreachRDD(function(rdd)
                for _, r in ipairs(rdd:collect()) do got[#got + 1] = r end
            end)
            helpers.clear_of_batch_boundary(5, 2)
            s:start()
            peer:cmd("accept")
            peer:cmd("send one")
            peer:cmd("send two")
            helpers.sleep(0.3)  -- the receiver reads; no batch runs
            assert.are.same({}, got)
            s:stop(false, graceful)
            peer:quit()
            results[graceful and "graceful" or "not graceful"] = got
        end
        assert.are.same({ graceful = { "one", "two" }, ["not graceful"] = {} }, results)
    end)

    it("returns from awaitTermination(timeout) once the timeout passes", function()
        ssc = helpers.ssc()
        local batches = 0
        ssc:queueStream({}, true, { 1 }):foreachRDD(function() batches = batches + 1 end)
        ssc:start()
        local t0 = now()
        ssc:awaitTermination(0.3)
        local took = now() - t0
        assert.is_true(took >= 0.29 and took < 1.5, "awaitTermination(0.3) took " .. took .. " s")
        assert.is_true(batches >= 3, "only " .. batches .. " batches ran while waiting")
    end)

    it("answers false from awaitTerminationOrTimeout while running, true once stopped", function()
        ssc = helpers.ssc()
        local batches = 0
        ssc:queueStream({}, true, { 1 }):foreachRDD(function()
            batches = batches + 1
            if batches == 5 then ssc:stop(false) end  -- from inside a batch
        end)
        ssc:start()
        assert.is_false(ssc:awaitTerminationOrTimeout(0.06))
        local deadline = now() + 5
        local stopped = false
        while not stopped and now() < deadline do stopped = ssc:awaitTerminationOrTimeout(0.05) end
        assert.is_true(stopped)
        assert.are.equal(5, batches)
        assert.is_true(ssc:awaitTerminationOrTimeout(0.01))
    end)

    it("knows the active context", function()
        assert.is_nil(sh.StreamingContext.getActive())
        ssc = helpers.ssc()
        ssc:queueStream({ { 1 } }):foreachRDD(function() end)
        assert.is_nil(sh.StreamingContext.getActive())
        ssc:start()
        assert.are.equal(ssc, sh.StreamingContext.getActive())
        assert.are.equal(ssc, sh.StreamingContext.getActiveOrCreate(nil, function() error("not called") end))
        ssc:stop(false)
        assert.is_nil(sh.StreamingContext.getActive())
    end)
end)

describe("errors in user functions", function()
    local ssc
    after_each(function()
        if ssc then ssc:stop(false, false) end
        ssc = nil
    end)

    -- Starts ssc, waits for its first error (raised by awaitTermination) and then for `more`
    -- further batches; returns the error and how many times awaitTermination raised in all.
    local function first_error_then(more, outputs_seen)
        ssc:start()
        local err, raised = nil, 0
        local deadline = now() + 5
        while err == nil and now() < deadline do
            local ok, e = pcall(ssc.awaitTermination, ssc, 0.05)
            if not ok then err, raised = e, raised + 1 end
        end
        local after = outputs_seen()
        deadline = now() + 5
        while outputs_seen() < after + more and now() < deadline do
            local ok = pcall(ssc.awaitTerminationOrTimeout, ssc, 0.02)
            if not ok then raised = raised + 1 end
        end
        return err, raised, outputs_seen() - after
    end

    it("raises an error of map in a worker from awaitTermination once, naming file and line, and keeps running", function()
        ssc = helpers.ssc()
        local done = {}
        ssc:queueStream({ { 1 }, { 2 }, { 3 }, { 4 } })
            :map(function(x)
                if x == 2 then error("bad record " .. x) end
                return x * 10
            end)
            :foreachRDD(function(rdd)
                for _, r in ipairs(rdd:collect()) do done[#done + 1] = r end
            end)
        local err, raised = first_error_then(2, function() return #done end)
        assert.matches("lifecycle_spec.lua:%d+: bad record 2", tostring(err))
        assert.are.equal(1, raised)
        assert.are.same({ 10, 30, 40 }, done)  -- the batches after the failed one ran
    end)

    it("raises an error of foreachRDD in the driver once, naming file and line, and keeps running", function()
        ssc = helpers.ssc()
        local batches = 0
        ssc:queueStream({ { 1 }, { 2 }, { 3 } }, true, { 0 }):foreachRDD(function(rdd)
            batches = batches + 1
            if rdd:collect()[1] == 2 then error("driver side failure") end
        end)
        local err, raised, more = first_error_then(2, function() return batches end)
        assert.matches("lifecycle_spec.lua:%d+: driver side failure", tostring(err))
        assert.are.equal(1, raised)
        assert.is_true(more >= 2)
    end)
end)

describe("StreamingListener batch info", function()
    it("carries Spark's fields, with failureReason on the failing output operation", function()
        local ssc = helpers.ssc()
        local completed, started, op_done = {}, 0, {}
        local l = sh.StreamingListener()
        function l.onBatchStarted() started = started + 1 end
        function l.onBatchCompleted(_, info) completed[#completed + 1] = info end
        function l.onOutputOperationCompleted(_, op) op_done[#op_done + 1] = op end
        ssc:addStreamingListener(l)
        local d = ssc:queueStream({ { "a", "b", "c" } })
        d:foreachRDD(function(rdd) rdd:count() end)
        d:foreachRDD(function(rdd)
            if rdd:count() > 0 then error("second output fails") end
        end)
        ssc:start()
        local deadline = now() + 5
        while #completed < 2 and now() < deadline do pcall(ssc.awaitTerminationOrTimeout, ssc, 0.02) end
        ssc:stop(false)
        assert.is_true(#completed >= 2)
        assert.is_true(started >= #completed)
        local info = completed[1]
        assert.are.equal(3, info.numRecords)
        assert.are.equal(0, completed[2].numRecords)
        for _, f in ipairs({ "batchTime", "submissionTime", "processingStartTime", "processingEndTime",
                             "schedulingDelay", "processingDelay", "totalDelay" }) do
            assert.are.equal("number", type(info[f]), f)
        end
        assert.is_true(math.abs(info.batchTime * 1000 - math.floor(info.batchTime * 1000 + 0.5)) < 1e-6)
        assert.is_true(info.submissionTime >= info.batchTime - 0.001)
        assert.is_true(info.processingStartTime >= info.submissionTime)
        assert.is_true(info.processingEndTime >= info.processingStartTime)
        assert.is_true(info.schedulingDelay >= 0 and info.processingDelay >= 0)
        assert.is_true(math.abs(info.totalDelay - (info.schedulingDelay + info.processingDelay)) < 1e-6)
        assert.is_true(math.abs(info.processingDelay - (info.processingEndTime - info.processingStartTime)) < 1e-6)
        assert.is_true(completed[2].batchTime > info.batchTime)
        -- Output operations by id: the first ran fine, the second failed with the reason.
        local ok_op, bad_op = info.outputOperationInfos[0], info.outputOperationInfos[1]
        assert.are.equal(0, ok_op.id)
        assert.are.equal(1, bad_op.id)
        assert.are.equal("foreachRDD", ok_op.name)
        assert.matches("lifecycle_spec.lua:%d+", ok_op.description)
        assert.is_nil(ok_op.failureReason)
        assert.matches("lifecycle_spec.lua:%d+: second output fails", bad_op.failureReason)
        assert.are.equal(info.batchTime, bad_op.batchTime)
        assert.is_true(bad_op.endTime >= bad_op.startTime)
        assert.is_nil(completed[2].outputOperationInfos[1].failureReason)  -- the empty batch ran fine
        assert.is_true(#op_done >= 4)
        assert.are.equal(3, info.streamIdToInputInfo[0].numRecords)
    end)

    it("reports a listener that raises once, removes it, and keeps running batches", function()
        local out, err, ok = helpers.run_job([[
local sh = require "streamhost"
local ssc = sh.StreamingContext(sh.SparkContext(nil, "l"), 0.02)
local calls, batches = 0, 0
ssc:addStreamingListener(sh.StreamingListener {
    onBatchCompleted = function() calls = calls + 1; error("listener broke") end,
})
ssc:addStreamingListener(sh.StreamingListener {
    onBatchCompleted = function() batches = batches + 1; if batches == 10 then ssc:stop(false) end end,
})
ssc:queueStream({}, true, { 1 }):foreachRDD(function(rdd) rdd:count() end)
ssc:start()
ssc:awaitTerminationOrTimeout(10)
io.write("calls ", calls, " batches ", batches, "\n")
]])
        assert.is_true(ok, err)
        assert.matches("calls 1 batches 10", out)
        local _, reports = err:gsub("listener onBatchCompleted failed and was removed", "")
        assert.are.equal(1, reports)
        assert.matches("job.lua:5: listener broke", err)
    end)

    it("describes every input of a batch: inputStreamId, numRecords, metadata and metadataDescription", function()
        local ssc = helpers.ssc()
        local dir = helpers.tmpdir()
        local infos = {}
        ssc:addStreamingListener(sh.StreamingListener {
            onBatchCompleted = function(_, info) infos[#infos + 1] = info end,
        })
        local q = ssc:queueStream({ { "a", "b" } })
        local f = ssc:textFileStream(dir)
        q:union(f):foreachRDD(function(rdd) rdd:count() end)
        ssc:start()
        helpers.write_file(dir .. "/.part.tmp", "x\ny\nz\n")
        os.rename(dir .. "/.part.tmp", dir .. "/part")
        local function has_file()
            for _, info in ipairs(infos) do
                if info.streamIdToInputInfo[1].numRecords == 3 then return info end
            end
        end
        helpers.wait_for(ssc, has_file, 10)
        ssc:stop(false)
        os.execute("rm -rf '" .. dir .. "'")
        local with_file = has_file()
        assert.is_truthy(with_file, "no batch read the file")
        for _, info in ipairs(infos) do
            for id = 0, 1 do
                local input = info.streamIdToInputInfo[id]
                assert.are.equal(id, input.inputStreamId)
                assert.are.equal("number", type(input.numRecords))
                assert.are.equal("table", type(input.metadata))
                assert.are.equal("string", type(input.metadataDescription))
            end
        end
        local file_input = with_file.streamIdToInputInfo[1]
        assert.are.same({ dir .. "/part" }, file_input.metadata.files)
        assert.matches("part", file_input.metadataDescription)
        assert.matches("queueStream: 1 RDD", infos[1].streamIdToInputInfo[0].metadataDescription)
    end)
end)

describe("StreamingContext.getOrCreate", function()
    it("calls setup when there is no checkpoint, and checkpoints the new context there", function()
        local dir = helpers.tmpdir() .. "/cp"
        local calls = 0
        local made
        local ssc = sh.StreamingContext.getOrCreate(dir, function()
            calls = calls + 1
            made = helpers.ssc()
            made:queueStream({ { 1 } }):foreachRDD(function() end)
            return made
        end)
        assert.are.equal(1, calls)
        assert.are.equal(made, ssc)
        assert.are.equal(0, os.execute("test -d '" .. dir .. "'"))
        ssc:stop(false)
    end)

    it("refuses a setup function that returns no StreamingContext", function()
        assert.has_error(function()
            sh.StreamingContext.getOrCreate(helpers.tmpdir() .. "/cp", function() return 42 end)
        end, "the setup function of getOrCreate must return a StreamingContext")
    end)
end)
