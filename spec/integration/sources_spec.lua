-- spec/integration/sources_spec.lua: the input streams end to end: queueStream, socketTextStream
-- against a real peer on 127.0.0.1, textFileStream and binaryRecordsStream on real directories.
local sh = require "streamhost"
local helpers = require "spec.helpers"

-- Collects every batch of `stream` (records in order) into the returned array.
local function record_batches(stream)
    local batches = {}
    stream:foreachRDD(function(rdd) batches[#batches + 1] = rdd:collect() end)
    return batches
end

local function all_records(batches)
    local out = {}
    for _, b in ipairs(batches) do
        for _, r in ipairs(b) do out[#out + 1] = r end
    end
    return out
end

-- A listener that keeps every event it gets, as { name, info }.
local function recording_listener()
    local l = sh.StreamingListener()
    l.events = {}
    for _, name in ipairs({ "onReceiverStarted", "onReceiverError", "onReceiverStopped" }) do
        l[name] = function(self, info)
            self.events[#self.events + 1] = { name, info, require("streamhost.ffi").C.sh_ffi_now() }
        end
    end
    function l.errors(self)
        local out = {}
        for _, e in ipairs(self.events) do
            if e[1] == "onReceiverError" then out[#out + 1] = e[2].receiverInfo.lastErrorMessage end
        end
        return out
    end
    function l.names(self)
        local out = {}
        for _, e in ipairs(self.events) do out[#out + 1] = e[1] end
        return out
    end
    return l
end

local function any_matches(list, pattern)
    for _, s in ipairs(list) do
        if s:find(pattern) then return true end
    end
    return false
end

-- Asserts that f raises `msg` at a line of this file (the caller's line, not the library's).
local function assert_error_here(msg, f)
    local ok, err = pcall(f)
    assert.is_false(ok)
    assert.matches("sources_spec%.lua:%d+: " .. msg:gsub("%p", "%%%0") .. "$", tostring(err))
end

local function count_records(batches)
    return #all_records(batches)
end

describe("queueStream", function()
    it("hands over one RDD per batch when oneAtATime", function()
        local sc = helpers.sc()
        local ssc = helpers.ssc()
        local rdds = { sc:parallelize({ 1, 2 }), sc:parallelize({ 3 }), sc:parallelize({ 4, 5, 6 }) }
        local out = helpers.collect_batches(ssc, ssc:queueStream(rdds, true), 4)
        assert.are.same({ { 1, 2 }, { 3 }, { 4, 5, 6 }, {} }, out)
    end)

    it("hands over every queued RDD in the first batch when not oneAtATime", function()
        local sc = helpers.sc()
        local ssc = helpers.ssc()
        local rdds = { sc:parallelize({ 1, 2 }), sc:parallelize({ 3 }), sc:parallelize({ 4 }) }
        local out = helpers.collect_batches(ssc, ssc:queueStream(rdds, false), 2)
        assert.are.same({ { 1, 2, 3, 4 }, {} }, out)
    end)

    it("gives the default RDD once the queue is empty", function()
        local sc = helpers.sc()
        local ssc = helpers.ssc()
        local out = helpers.collect_batches(ssc,
            ssc:queueStream({ sc:parallelize({ "a" }) }, true, sc:parallelize({ "d" })), 3)
        assert.are.same({ { "a" }, { "d" }, { "d" } }, out)
    end)

    it("accepts arrays of records as RDDs, for the queue and the default", function()
        local ssc = helpers.ssc()
        local out = helpers.collect_batches(ssc, ssc:queueStream({ { 1, 2 }, { 3 } }, nil, { 0 }), 3)
        assert.are.same({ { 1, 2 }, { 3 }, { 0 } }, out)
    end)

    it("refuses what is neither an RDD nor an array, naming the type", function()
        local ssc = helpers.ssc()
        assert_error_here("queueStream takes RDDs or arrays of records, got a number",
            function() ssc:queueStream({ 42 }) end)
        assert_error_here("queueStream expects an array of RDDs or arrays", function() ssc:queueStream(nil) end)
        ssc:stop(false)
    end)
end)

describe("socketTextStream", function()
    local peer, ssc
    after_each(function()
        if ssc then ssc:stop(false, false) end
        if peer then peer:quit() end
        ssc, peer = nil, nil
    end)

    -- A started context reading the peer's port; returns its batches and listener.
    local function start_reading(port, batch, host)
        ssc = helpers.ssc(batch)
        local l = recording_listener()
        ssc:addStreamingListener(l)
        local batches = record_batches(ssc:socketTextStream(host or "127.0.0.1", port))
        ssc:start()
        return batches, l
    end

    it("delivers the lines in batches, all of them, in order", function()
        peer = helpers.line_server()
        local batches = start_reading(peer.port)
        peer:cmd("accept")
        local sent = {}
        for i = 1, 300 do
            sent[i] = "line " .. i
            peer:cmd("send " .. sent[i])
            if i % 100 == 0 then peer:cmd("sleep 120") end
        end
        assert.is_true(helpers.wait_for(ssc, function() return count_records(batches) >= 300 end, 10))
        assert.are.same(sent, all_records(batches))
        local nonempty = 0
        for _, b in ipairs(batches) do if #b > 0 then nonempty = nonempty + 1 end end
        assert.is_true(nonempty >= 2, "the lines came in " .. nonempty .. " batch(es), expected several")
    end)

    it("strips the CR of CRLF line ends", function()
        peer = helpers.line_server()
        local batches = start_reading(peer.port)
        peer:cmd("accept")
        peer:cmd("sendraw 6f6e650d0a74776f0d0a0d0a")  -- "one\r\ntwo\r\n\r\n"
        assert.is_true(helpers.wait_for(ssc, function() return count_records(batches) >= 3 end, 5))
        assert.are.same({ "one", "two", "" }, all_records(batches))
    end)

    it("joins a line split across sends", function()
        peer = helpers.line_server()
        local batches = start_reading(peer.port)
        peer:cmd("accept")
        peer:cmd("sendraw 68656c")     -- "hel"
        peer:cmd("sleep 200")          -- several batches pass in between
        peer:cmd("sendraw 6c6f0a7769") -- "lo\nwi"
        peer:cmd("sleep 150")
        peer:cmd("send ld")
        assert.is_true(helpers.wait_for(ssc, function() return count_records(batches) >= 2 end, 5))
        assert.are.same({ "hello", "wild" }, all_records(batches))
    end)

    it("keeps UTF-8 and turns invalid bytes into U+FFFD", function()
        peer = helpers.line_server()
        local batches = start_reading(peer.port)
        peer:cmd("accept")
        peer:cmd("send héllo wörld ✓ 𝄞")
        peer:cmd("sendraw 61ff62c3280a")  -- "a", 0xFF, "b", a truncated 2-byte sequence, "("
        assert.is_true(helpers.wait_for(ssc, function() return count_records(batches) >= 2 end, 5))
        assert.are.same({ "héllo wörld ✓ 𝄞", "a\239\191\189b\239\191\189(" }, all_records(batches))
    end)

    it("keeps NUL bytes inside a line and a last line the peer ends without a newline", function()
        peer = helpers.line_server()
        local batches = start_reading(peer.port)
        peer:cmd("accept")
        peer:cmd("sendraw 6100620a")  -- "a\0b\n"
        peer:cmd("sendraw 6c617374")  -- "last", then the connection closes
        peer:cmd("close")
        assert.is_true(helpers.wait_for(ssc, function() return count_records(batches) >= 2 end, 5))
        assert.are.same({ "a\0b", "last" }, all_records(batches))
    end)

    it("reports a host name that does not resolve, naming host:port", function()
        local batches, l = start_reading(9, nil, "no-such-host.invalid")
        assert.is_true(helpers.wait_for(ssc, function() return #l:errors() >= 1 end, 10),
            "the failed resolve was not reported")
        assert.matches("no%-such%-host%.invalid:9: ", l:errors()[1])
        -- Spark's ReceiverInfo fields, on the error event.
        for _, e in ipairs(l.events) do
            if e[1] == "onReceiverError" then
                local info = e[2].receiverInfo
                assert.are.equal("number", type(info.lastErrorTime))
                assert.is_true(math.abs(info.lastErrorTime - e[3]) < 5)
                assert.are.equal(info.lastErrorMessage, info.lastError)
                assert.is_true(info.active)
                assert.are.equal(0, info.streamId)
            end
        end
        assert.are.same({}, all_records(batches))
    end)

    it("reports a line over 1 MiB naming host:port, skips it and keeps its neighbours", function()
        peer = helpers.line_server()
        local batches, l = start_reading(peer.port)
        peer:cmd("accept")
        peer:cmd("send before")
        peer:cmd("repeat 1025 " .. string.rep("x", 1024))  -- 1 MiB + 1 KiB
        peer:cmd("send after")
        assert.is_true(helpers.wait_for(ssc, function()
            return count_records(batches) >= 2 and #l:errors() >= 1
        end, 10))
        helpers.wait_for(ssc, function() return false end, 0.2)  -- nothing else may arrive
        assert.are.same({ "before", "after" }, all_records(batches))
        local errs = l:errors()
        assert.are.equal(1, #errs)
        assert.matches("127%.0%.0%.1:" .. peer.port, errs[1])
        assert.matches("longer than 1048576 bytes", errs[1])
    end)

    it("reconnects when the peer closes and reads the second connection", function()
        peer = helpers.line_server()
        local batches, l = start_reading(peer.port)
        peer:cmd("accept")
        peer:cmd("send first")
        peer:cmd("sleep 100")
        peer:cmd("close")
        peer:cmd("accept")
        peer:cmd("send second")
        assert.is_true(helpers.wait_for(ssc, function() return count_records(batches) >= 2 end, 10))
        assert.are.same({ "first", "second" }, all_records(batches))
        assert.is_true(any_matches(l:errors(), "127%.0%.0%.1:" .. peer.port .. ": peer closed the connection"),
            "no disconnect reported: " .. table.concat(l:errors(), " | "))
    end)

    it("reports failed connects while the peer is absent, backing off, then reads once it appears", function()
        local probe = helpers.line_server()  -- a port that was free a moment ago
        local port = probe.port
        probe:quit()
        local batches, l = start_reading(port)
        assert.is_true(helpers.wait_for(ssc, function() return #l:errors() >= 4 end, 5),
            "connect failures were not reported")
        for _, e in ipairs(l:errors()) do
            assert.matches("127%.0%.0%.1:" .. port .. ": connect failed: connection refused", e)
        end
        -- Retries back off: the wait before the 4th attempt is well above the first one.
        local t = {}
        for _, e in ipairs(l.events) do
            if e[1] == "onReceiverError" then t[#t + 1] = e[3] end
        end
        assert.is_true(t[4] - t[3] > 1.5 * (t[2] - t[1]),
            string.format("no backoff: gaps %.3f s then %.3f s", t[2] - t[1], t[4] - t[3]))
        peer = helpers.line_server(port)
        peer:cmd("accept")
        peer:cmd("send at last")
        assert.is_true(helpers.wait_for(ssc, function() return count_records(batches) >= 1 end, 10))
        assert.are.same({ "at last" }, all_records(batches))
    end)

    it("posts onReceiverStarted at start and onReceiverStopped at stop, naming the receiver", function()
        peer = helpers.line_server()
        local _, l = start_reading(peer.port)
        peer:cmd("accept")
        helpers.wait_for(ssc, function() return false end, 0.15)
        ssc:stop(false, false)
        local names = l:names()
        assert.are.equal("onReceiverStarted", names[1])
        assert.are.equal("onReceiverStopped", names[#names])
        local started = l.events[1][2].receiverInfo
        assert.are.equal(0, started.streamId)
        assert.matches("127%.0%.0%.1:" .. peer.port, started.name)
        assert.are.equal("127.0.0.1:" .. peer.port, started.location)
        ssc = nil
    end)

    it("refuses a port outside 1..65535 and an empty host, naming the script line", function()
        ssc = helpers.ssc()
        assert_error_here("socketTextStream expects a port from 1 to 65535",
            function() ssc:socketTextStream("127.0.0.1", 70000) end)
        assert_error_here("socketTextStream expects a port from 1 to 65535",
            function() ssc:socketTextStream("127.0.0.1", "http") end)
        assert_error_here("socketTextStream expects a host name", function() ssc:socketTextStream("", 80) end)
    end)
end)

describe("textFileStream", function()
    local ssc
    after_each(function()
        if ssc then ssc:stop(false, false) end
        ssc = nil
    end)

    it("reads each file moved in after start once, and neither old files nor dotfiles", function()
        local dir, stage = helpers.tmpdir(), helpers.tmpdir()
        helpers.write_file(dir .. "/old.txt", "old\n")
        ssc = helpers.ssc()
        local batches = record_batches(ssc:textFileStream(dir))
        ssc:start()
        helpers.wait_for(ssc, function() return #batches >= 2 end, 5)
        helpers.write_file(stage .. "/a.txt", "a1\r\na2\n")
        helpers.write_file(stage .. "/.hidden", "hidden\n")
        helpers.write_file(stage .. "/b.txt", "b1")  -- no final newline
        assert(os.rename(stage .. "/a.txt", dir .. "/a.txt"))
        assert(os.rename(stage .. "/.hidden", dir .. "/.hidden"))
        assert(os.rename(stage .. "/b.txt", dir .. "/b.txt"))
        local seen = #batches
        assert.is_true(helpers.wait_for(ssc, function() return #batches >= seen + 4 end, 5))
        assert.are.same({ "a1", "a2", "b1" }, helpers.sorted(all_records(batches)))
        -- The files arrived together, so one batch has them all.
        local holding = 0
        for _, b in ipairs(batches) do if #b > 0 then holding = holding + 1 end end
        assert.are.equal(1, holding)
    end)

    it("reports a file that cannot be read, naming its path, and reads its neighbours", function()
        local dir, stage = helpers.tmpdir(), helpers.tmpdir()
        ssc = helpers.ssc()
        local l = recording_listener()
        ssc:addStreamingListener(l)
        local batches = record_batches(ssc:textFileStream(dir))
        ssc:start()
        -- /proc/self/mem is a regular file whose first page no process maps: read() fails (EIO).
        assert.are.equal(0, os.execute("ln -s /proc/self/mem " .. stage .. "/bad.txt"))
        helpers.write_file(stage .. "/good.txt", "good\n")
        assert(os.rename(stage .. "/bad.txt", dir .. "/bad.txt"))
        assert(os.rename(stage .. "/good.txt", dir .. "/good.txt"))
        assert.is_true(helpers.wait_for(ssc, function()
            return count_records(batches) >= 1 and #l:errors() >= 1
        end, 5))
        assert.are.same({ "good" }, all_records(batches))
        assert.matches(dir .. "/bad.txt", l:errors()[1], 1, true)
    end)

    it("refuses to start on a directory that does not exist, naming it", function()
        ssc = helpers.ssc()
        ssc:textFileStream("/nonexistent/streamhost-spec"):foreachRDD(function() end)
        local ok, err = pcall(function() ssc:start() end)
        assert.is_false(ok)
        assert.matches("sources_spec%.lua:%d+: textFileStream%(/nonexistent/streamhost%-spec%): " ..
            "cannot list directory /nonexistent/streamhost%-spec: No such file or directory", tostring(err))
        assert.is_nil(sh.StreamingContext.getActive())
    end)
end)

describe("binaryRecordsStream", function()
    local ssc
    after_each(function()
        if ssc then ssc:stop(false, false) end
        ssc = nil
    end)

    it("gives records of recordLength bytes as strings", function()
        local dir, stage = helpers.tmpdir(), helpers.tmpdir()
        ssc = helpers.ssc()
        local batches = record_batches(ssc:binaryRecordsStream(dir, 4))
        ssc:start()
        helpers.wait_for(ssc, function() return #batches >= 1 end, 5)
        helpers.write_file(stage .. "/r.bin", "abcd\0\1\2\3\n\r\n\r")
        assert(os.rename(stage .. "/r.bin", dir .. "/r.bin"))
        assert.is_true(helpers.wait_for(ssc, function() return count_records(batches) >= 3 end, 5))
        assert.are.same({ "abcd", "\0\1\2\3", "\n\r\n\r" }, all_records(batches))
    end)

    it("reports a file whose size is not a multiple, naming it, and keeps its whole records", function()
        local dir, stage = helpers.tmpdir(), helpers.tmpdir()
        ssc = helpers.ssc()
        local l = recording_listener()
        ssc:addStreamingListener(l)
        local batches = record_batches(ssc:binaryRecordsStream(dir, 3))
        ssc:start()
        helpers.write_file(stage .. "/odd.bin", "aaabbbcc")
        assert(os.rename(stage .. "/odd.bin", dir .. "/odd.bin"))
        assert.is_true(helpers.wait_for(ssc, function()
            return count_records(batches) >= 2 and #l:errors() >= 1
        end, 5))
        assert.are.same({ "aaa", "bbb" }, all_records(batches))
        assert.matches(dir .. "/odd.bin", l:errors()[1], 1, true)
    end)

    it("refuses a recordLength that is not a positive whole number", function()
        ssc = helpers.ssc()
        assert_error_here("binaryRecordsStream expects a positive whole recordLength, got 0",
            function() ssc:binaryRecordsStream("/tmp", 0) end)
        assert_error_here("binaryRecordsStream expects a positive whole recordLength, got 2.5",
            function() ssc:binaryRecordsStream("/tmp", 2.5) end)
    end)
end)

describe("textFileStream's memory of the files it read", function()
    it("is bounded: selections older than the remember duration (60 s) are forgotten, and their files stay old", function()
        local C = require("streamhost.ffi").C
        local dir = helpers.tmpdir()
        local ssc = helpers.ssc(0.5)
        local d = ssc:textFileStream(dir)
        local src = d._source
        src.report = function(msg) error(msg) end
        src:prepare()
        helpers.write_file(dir .. "/a", "x\n")
        local now = math.floor(C.sh_ffi_now() * 1000)
        local t1 = now - now % 500 + 1000
        local _, meta = src:generate(t1)
        assert.are.same({ dir .. "/a" }, meta.files)
        _, meta = src:generate(t1 + 500)
        assert.are.same({}, meta.files)  -- remembered: not read twice
        assert.is_truthy(src.recent[dir .. "/a"])
        -- 61 s later the selection is forgotten, and the file is older than the threshold.
        _, meta = src:generate(t1 + 61000)
        assert.are.same({}, meta.files)
        assert.is_nil(next(src.recent))
        assert.is_nil(src.selected[t1])
        -- Its recorded input is what recovery reads again, while remembered.
        local rdd = src:regenerate(t1 + 61000)
        assert.are.equal(0, rdd:count())
        os.execute("rm -rf '" .. dir .. "'")
        ssc:stop(false)
    end)
end)
