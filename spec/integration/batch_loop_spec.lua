-- spec/integration/batch_loop_spec.lua: the batch loop the C host owns: receivers keep reading
-- while the driver waits, every batch holds exactly its interval's records however late it
-- runs, a failed batch releases what it made and leaves state where it was.
local helpers = require "spec.helpers"
local sh = require "streamhost"

-- Keeps a worker busy for `seconds` (a slow task, so the driver waits on it).
local function busy(seconds)
    return function(x)
        local C = require("streamhost.ffi").C
        local t0 = C.sh_ffi_now()
        while C.sh_ffi_now() - t0 < seconds do end -- luacheck: ignore
        return x
    end
end

local function rss_kb()
    local s = helpers.read_file("/proc/self/status") or ""
    return tonumber(s:match("VmRSS:%s*(%d+)")) or 0
end

-- Waits (the loop turning) until cond() or `timeout` seconds; a batch's error does not end it.
local function wait_until(ssc, cond, timeout)
    local deadline = os.time() + timeout
    while not cond() and os.time() < deadline do
        pcall(ssc.awaitTerminationOrTimeout, ssc, 0.05)
    end
    return cond()
end

describe("the batch loop", function()
    local sc
    setup(function() sc = helpers.sc() end)
    before_each(helpers.stop_active)

    it("keeps receiving while a foreachRDD collects for 3 s: every interval of it holds data", function()
        local peer = helpers.line_server()
        local ssc = helpers.ssc(0.2)
        local per_batch, seen, slow = {}, {}, nil
        ssc:socketTextStream("127.0.0.1", peer.port):foreachRDD(function(rdd)
            local recs = rdd:collect()
            per_batch[#per_batch + 1] = #recs
            for _, l in ipairs(recs) do seen[#seen + 1] = l end
            if #recs > 0 and slow == nil then
                slow = #per_batch
                sc:parallelize({ 1 }, 1):map(busy(3)):collect()  -- the driver waits 3 s here
            end
        end)
        ssc:start()
        peer:cmd("accept")
        peer:cmd("pace 500 10 line")  -- 100 lines a second for 5 s, numbered
        local ok = wait_until(ssc, function() return #seen >= 500 end, 30)
        ssc:stop(false, false)
        peer:quit()
        assert.is_true(ok, "received " .. #seen .. " of 500 lines")
        local count = {}
        for _, l in ipairs(seen) do count[l] = (count[l] or 0) + 1 end
        for i = 1, 500 do assert.are.equal(1, count["line " .. i], "line " .. i) end
        -- The 12 intervals after the slow batch's own were sealed during its 3 s collect:
        -- each holds its own ~20 lines, none is empty, none took the others' lines.
        for i = slow + 1, slow + 12 do
            assert.is_true(per_batch[i] >= 5 and per_batch[i] <= 40,
                string.format("batch %d (after the slow one) held %s lines", i, tostring(per_batch[i])))
        end
    end)

    it("gives each batch exactly its interval's records after a first batch that took three intervals", function()
        local peer = helpers.line_server()
        local ssc = helpers.ssc(0.5)
        local counts, slowed = {}, false
        ssc:socketTextStream("127.0.0.1", peer.port):foreachRDD(function(rdd)
            local n = rdd:count()
            if n > 0 or #counts > 0 then counts[#counts + 1] = n end
            if n > 0 and not slowed then
                slowed = true
                sc:parallelize({ 1 }, 1):map(busy(1.6)):collect()  -- over three intervals
            end
        end)
        ssc:start()
        peer:cmd("accept")
        -- Burst i (i lines) in the middle of its own interval, 8 intervals in a row.
        for i = 1, 8 do
            peer:cmd("align 500 250")
            peer:cmd("lines " .. i .. " x")
        end
        local ok = wait_until(ssc, function() return #counts >= 8 end, 30)
        ssc:stop(false, false)
        peer:quit()
        assert.is_true(ok, "only " .. #counts .. " batches with data")
        assert.are.same({ 1, 2, 3, 4, 5, 6, 7, 8 }, { unpack(counts, 1, 8) })
    end)

    it("releases what a failed batch made and leaves state at its previous value (200 batches, every fifth failing)", function()
        local dir = helpers.tmpdir()
        local ssc = helpers.ssc(0.03)
        ssc.sparkContext:setCheckpointDir(dir)
        local input = {}
        for b = 1, 200 do
            local recs = {}
            for i = 1, 40 do recs[i] = "k" .. (i % 10) end
            if b % 5 == 0 then recs[40] = "bad" end  -- in the last of 4 partitions
            input[b] = sc:parallelize(recs, 4)
        end
        local state = ssc:queueStream(input)
            :map(function(w)
                if w == "bad" then error("a bad record") end
                return { w, 1 }
            end)
            :reduceByKey(function(a, b) return a + b end)
            :updateStateByKey(function(vs, s)
                s = s or 0
                for _, v in ipairs(vs) do s = s + v end
                return s
            end)
        local last, completed, failed, rss50, rss200 = nil, 0, 0, nil, nil
        state:foreachRDD(function(rdd) last = rdd:collect() end)
        ssc:addStreamingListener(sh.StreamingListener {
            onBatchCompleted = function(_, info)
                completed = completed + 1
                for _, op in pairs(info.outputOperationInfos) do
                    if op.failureReason then
                        failed = failed + 1
                        assert(op.failureReason:find("a bad record", 1, true))
                        break
                    end
                end
                if completed == 50 then rss50 = rss_kb() end
                if completed == 200 then rss200 = rss_kb() end
            end,
        })
        ssc:start()
        local ok = wait_until(ssc, function() return completed >= 200 end, 60)
        ssc:stop(false, false)
        os.execute("rm -rf '" .. dir .. "'")
        assert.is_true(ok, "only " .. completed .. " batches completed")
        assert.are.equal(40, failed)
        -- A run where the failed batches had no input: 160 batches, each key 4 times a batch.
        local want = {}
        for k = 0, 9 do want[#want + 1] = { "k" .. k, 640 } end
        assert.are.same(want, helpers.sorted(last))
        if not (os.getenv("STREAMHOST") or ""):find("asan", 1, true) then
            -- (AddressSanitizer keeps freed memory in quarantine: RSS says nothing there.)
            assert.is_true(rss200 - rss50 < 16 * 1024,
                string.format("RSS grew from %d kB at batch 50 to %d kB at batch 200", rss50, rss200))
        end
    end)

    it("runs a transform(sortBy) job for 2000 batches with a flat function registry and RSS", function()
        -- In a process of its own, so its RSS is its own. Every batch's transform ships new
        -- closures (a sort, and a map capturing a fresh 20 KB table).
        local out, err, ok = helpers.run_script("scripts/bench/sortby_job.lua", "0.02 2000")
        assert.is_true(ok, err)
        local l100, l2000, r100, r2000 = out:match(
            "registry_live_at_100=(%d+) registry_live_at_2000=(%d+) rss_at_100_kb=(%d+) rss_at_2000_kb=(%d+)")
        assert.is_truthy(l100, out)
        assert.is_true(tonumber(l2000) <= tonumber(l100) + 20,
            string.format("registry: %s live entries at batch 100, %s at 2000", l100, l2000))
        if not (os.getenv("STREAMHOST") or ""):find("asan", 1, true) then
            assert.is_true(tonumber(r2000) - tonumber(r100) < 10 * 1024,
                string.format("RSS %s kB at batch 100, %s kB at 2000", r100, r2000))
        end
    end)

    it("ends a batch whose SparkContext stops while its job runs, releasing what the job made", function()
        local out, err, ok = helpers.run_job([[
local sh = require "streamhost"
local sc = sh.SparkContext(nil, "abandon")
local ssc = sh.StreamingContext(sc, 0.05)
local failures = {}
ssc:addStreamingListener(sh.StreamingListener {
    onOutputOperationCompleted = function(_, op) failures[#failures + 1] = op.failureReason end,
})
ssc:queueStream({ sc:parallelize({ 1, 2, 3, 4 }, 4) }):foreachRDD(function(rdd)
    -- A shuffle's map side finishes (its blobs are made), then a slow stage runs.
    rdd:map(function(x) return { x % 2, x } end):reduceByKey(function(a, b) return a + b end)
       :map(function(kv)
            local C = require("streamhost.ffi").C
            local t0 = C.sh_ffi_now()
            while C.sh_ffi_now() - t0 < 1 do end
            return kv
        end):collect()
end)
ssc:start()
sh.sleep(0.4)
sc:stop()
sh.sleep(0.1)
io.write(tostring(failures[1]), "\n")
]])
        assert.is_true(ok, err)
        assert.matches("the SparkContext stopped while this job ran", out)
    end)

    it("lets a listener stop the context from any event, receiver errors and batch submission included", function()
        local peer = helpers.line_server()
        peer:cmd("accept")
        peer:cmd("close")  -- the receiver loses its peer: onReceiverError
        local out, err, ok = helpers.run_job(string.format([[
local sh = require "streamhost"
local ssc = sh.StreamingContext(sh.SparkContext(nil, "l"), 0.05)
local seen = {}
ssc:socketTextStream("127.0.0.1", %d):foreachRDD(function(rdd) rdd:count() end)
ssc:addStreamingListener(sh.StreamingListener {
    onReceiverError = function(_, info) seen[#seen + 1] = "error"; ssc:stop(false, true) end,
})
ssc:start()
ssc:awaitTerminationOrTimeout(10)
io.write("stopped by ", table.concat(seen, ","), "\n")
local ssc2 = sh.StreamingContext(sh.SparkContext.getOrCreate(), 0.05)
ssc2:queueStream({}, true, { 1 }):foreachRDD(function(rdd) rdd:count() end)
ssc2:addStreamingListener(sh.StreamingListener {
    onBatchSubmitted = function() ssc2:stop(false, false) end,
})
ssc2:start()
ssc2:awaitTerminationOrTimeout(10)
io.write("second stopped\n")
]], peer.port))
        peer:quit()
        assert.is_true(ok, err)
        assert.matches("stopped by error", out)
        assert.matches("second stopped", out)
    end)

    it("starts a context whose first start failed, and stops it cleanly", function()
        local peer = helpers.line_server()
        local dir = helpers.tmpdir() .. "/later"
        local out, err, ok = helpers.run_job(string.format([[
local sh = require "streamhost"
local ssc = sh.StreamingContext(sh.SparkContext(nil, "retry"), 0.05)
ssc:socketTextStream("127.0.0.1", %d):union(ssc:textFileStream(%q)):foreachRDD(function(rdd) rdd:count() end)
local ok, err = pcall(ssc.start, ssc)
io.write("first start: ", tostring(ok), "\n")
os.execute("mkdir -p %s")
ssc:start()
ssc:awaitTerminationOrTimeout(0.3)
ssc:stop(false, false)
sh.sleep(0.2)
io.write("stopped\n")
]], peer.port, dir, dir))
        peer:quit()
        assert.is_true(ok, err)
        assert.matches("first start: false", out)
        assert.matches("stopped", out)
    end)

    it("waits with an infinite timeout without spinning", function()
        local out, err, ok = helpers.run_job([[
local sh = require "streamhost"
local ssc = sh.StreamingContext(sh.SparkContext(nil, "inf"), 0.05)
local n = 0
ssc:queueStream({}, true, { 1 }):foreachRDD(function() n = n + 1; if n == 30 then ssc:stop(false) end end)
local C = require("streamhost.ffi").C
local t0, c0 = C.sh_ffi_now(), os.clock()
ssc:start()
ssc:awaitTerminationOrTimeout(math.huge)
io.write(string.format("wall %.3f cpu %.3f\n", C.sh_ffi_now() - t0, os.clock() - c0))
]])
        assert.is_true(ok, err)
        local wall, cpu = out:match("wall ([%d.]+) cpu ([%d.]+)")
        assert.is_truthy(wall, out)
        assert.is_true(tonumber(cpu) < 0.6 * tonumber(wall), out)
    end)

    it("commits no state for a batch still running when a graceful stop timed out", function()
        local state = require "streamhost.state"
        local ssc = helpers.ssc(0.05)
        local dir = helpers.tmpdir()
        ssc.sparkContext:setCheckpointDir(dir)
        local started = false
        ssc:queueStream({ { "a" } }, true, { "b" })
            :transform(function(rdd)
                started = true
                return rdd:map(busy(1.5))  -- a batch that outlasts the graceful timeout
            end)
            :map(function(w) return { w, 1 } end)
            :updateStateByKey(function(vs, s) return (s or 0) + #vs end)
            :foreachRDD(function(rdd) rdd:count() end)
        ssc:start()
        assert.is_true(wait_until(ssc, function() return started end, 10))
        ssc:stop(false, true)  -- graceful: gives up after 10 batch intervals (0.5 s)
        helpers.sleep(2)       -- the abandoned batch ends meanwhile
        local held = 0
        for _, w in ipairs(state.worker_info(sc)) do
            for _, parts in pairs(w.parts) do held = held + #parts end
        end
        os.execute("rm -rf '" .. dir .. "'")
        assert.are.equal(0, held)
    end)
end)
