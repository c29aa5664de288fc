-- spec/integration/flume_spec.lua: FlumeUtils end to end against independent peers written
-- with Debian's python3-avro (scripts/peers/flume_client.py: a Flume agent's Avro sink;
-- scripts/peers/flume_sink.py: Spark's sink), over loopback TCP with Avro's Netty framing, the
-- Avro handshake and (for the push stream) zlib: every event once with headers and body
-- intact, what a broken client sent is never stored, the polling stream's acks, parallelism
-- and sinks, and the argument errors.
local sh = require "streamhost"
local helpers = require "spec.helpers"

local PY = "/usr/bin/python3"  -- Debian's, with python3-avro (not a pyenv one on PATH)
local C = require("streamhost.ffi").C

-- Starts a peer in the background: { out = its output file, pid, text(), quit() }.
local function peer(script, args)
    local out = os.tmpname()
    local p = assert(io.popen(string.format("%s scripts/peers/%s %s >%s 2>&1 & echo $!", PY, script, args, out)))
    local pid = tonumber(p:read("*a"):match("%d+"))
    p:close()
    local h = { out = out, pid = pid }
    function h.text() return helpers.read_file(out) or "" end
    function h.quit()
        os.execute("kill " .. pid .. " 2>/dev/null")
        os.remove(out)
    end
    return h
end

local function hex(s) return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end)) end

-- An event as flume_client.py's --expect file describes it: body hex, space, sorted headers hex.
local function event_line(ev)
    local keys = {}
    for k in pairs(ev[1]) do keys[#keys + 1] = k end
    table.sort(keys)
    local h = {}
    for _, k in ipairs(keys) do h[#h + 1] = k .. "\0" .. ev[1][k] .. "\0" end
    return hex(ev[2]) .. " " .. hex(table.concat(h))
end

-- Collects every record of `stream` into state.records.
local function collect(stream, state)
    state.records = state.records or {}
    stream:foreachRDD(function(rdd)
        for _, r in ipairs(rdd:collect()) do state.records[#state.records + 1] = r end
    end)
end

local function errors_of(ssc)
    local errs = {}
    ssc:addStreamingListener(sh.StreamingListener {
        onReceiverError = function(_, info) errs[#errs + 1] = info.receiverInfo.lastErrorMessage end,
    })
    return errs
end

local function count_lines(s)
    local n = 0
    for _ in s:gmatch("[^\n]*\n") do n = n + 1 end
    return n
end

describe("FlumeUtils.createStream (an Avro source; python3-avro clients over TCP)", function()
    local ssc, peers = nil, {}
    after_each(function()
        for _, p in ipairs(peers) do p.quit() end
        peers = {}
        if ssc then ssc:stop(false, false); ssc = nil end
    end)

    it("stores every event of append and appendBatch once, plain and zlib, headers and body intact, answering OK", function()
        ssc = helpers.ssc(0.2)
        local plain = sh.FlumeUtils.createStream(ssc, "127.0.0.1", 0)
        local zipped = sh.FlumeUtils.createStream(ssc, "127.0.0.1", 0, nil, true)
        local st = {}
        collect(plain:union(zipped), st)
        local errs = errors_of(ssc)
        ssc:start()
        local expect = os.tmpname()
        local p1, p2 = plain._source:port(), zipped._source:port()
        peers[1] = peer("flume_client.py", string.format("--port %d --events 150 --batch 9 --expect %s.1", p1, expect))
        peers[2] = peer("flume_client.py", string.format("--port %d --events 90 --batch 20 --first 1000 --expect %s.2", p1, expect))
        peers[3] = peer("flume_client.py", string.format("--port %d --compress --unknown-hash --events 120 --batch 11 --first 5000 --expect %s.3", p2, expect))
        assert.is_true(helpers.wait_for(ssc, function()
            return #st.records >= 360 and peers[1].text():find("DONE") and peers[2].text():find("DONE")
                and peers[3].text():find("DONE") and true
        end, 30))
        helpers.wait_for(ssc, function() return false end, 0.5)  -- nothing more arrives
        -- Every answer was OK (a client exits before DONE otherwise); the handshake matched at
        -- once on our hash, and after NONE the server gave its protocol with python3-avro's hash.
        assert.truthy(peers[1].text():find("MATCH BOTH\nDONE 150", 1, true))
        assert.truthy(peers[3].text():find("NONE\nMATCH BOTH\nDONE 120", 1, true))
        local want = {}
        for i = 1, 3 do
            for line in (helpers.read_file(expect .. "." .. i) or ""):gmatch("([^\n]+)\n") do want[#want + 1] = line end
            os.remove(expect .. "." .. i)
        end
        os.remove(expect)
        assert.are.equal(360, #want)
        local got = {}
        for i, r in ipairs(st.records) do got[i] = event_line(r) end
        table.sort(want)
        table.sort(got)
        assert.are.same(want, got)
        -- Binary bodies, UTF-8 bodies and events without headers all came through.
        local bin, utf, bare = 0, 0, 0
        for _, r in ipairs(st.records) do
            if r[2]:find("\0", 1, true) then bin = bin + 1 end
            if r[2]:find("ünïcødé ✓", 1, true) then utf = utf + 1 end
            if next(r[1]) == nil then bare = bare + 1 end
        end
        assert.is_true(bin > 50 and utf > 150 and bare > 50)
        assert.are.same({}, errs)
    end)

    it("stores nothing of a request cut short, a malformed frame or malformed Avro; names the client; keeps serving", function()
        ssc = helpers.ssc(0.2)
        local stream = sh.FlumeUtils.createStream(ssc, "127.0.0.1", 0)
        local st = {}
        collect(stream, st)
        local errs = errors_of(ssc)
        ssc:start()
        local port = stream._source:port()
        local function run(args)
            local p = peer("flume_client.py", string.format("--port %d %s", port, args))
            peers[#peers + 1] = p
            assert.is_true(helpers.wait_for(ssc, function() return p.text():find("DONE") ~= nil end, 20), p.text())
        end
        run("--mode half --events 5 --batch 5 --first 0")         -- 5 stored, then half a frame of 50
        assert.is_true(helpers.wait_for(ssc, function() return #errs >= 1 end, 10))
        run("--mode badframe --events 4 --batch 4 --first 100")   -- 4 stored, then a bad frame header
        run("--mode malformed --events 3 --batch 3 --first 200")  -- 3 stored, then a bad body length
        run("--events 40 --batch 8 --first 300")                  -- the next client is served
        assert.is_true(helpers.wait_for(ssc, function() return #st.records >= 52 and #errs >= 3 end, 20))
        helpers.wait_for(ssc, function() return false end, 0.5)
        assert.are.equal(52, #st.records)
        local ids = {}
        for _, r in ipairs(st.records) do
            local id = tonumber(r[1].seq) or tonumber(r[2]:match("^event (%d+) "))
            if id then ids[#ids + 1] = id end
        end
        for _, id in ipairs(ids) do
            assert.is_true(id < 5 or (id >= 100 and id < 104) or (id >= 200 and id < 203) or (id >= 300 and id < 340))
        end
        local all = table.concat(errs, "\n")
        assert.truthy(all:find("client 127%.0%.0%.1:%d+ disconnected in the middle of a request %(%d+ bytes of it dropped, nothing of it stored%)"))
        assert.truthy(all:find("malformed frame: 4294967280 buffers from client 127%.0%.0%.1:%d+"))
        assert.truthy(all:find("malformed appendBatch request from client 127%.0%.0%.1:%d+: negative length %(nothing of it stored%)"))
    end)

    it("answers a burst of 200k small compressed requests written at once, every one OK and stored once", function()
        -- Inflated, 200k frames of ~30 bytes sit in the stream together: each is taken in turn
        -- without moving the rest (the stream keeps a read offset).
        ssc = helpers.ssc(0.2)
        local stream = sh.FlumeUtils.createStream(ssc, "127.0.0.1", 0, nil, true)
        local n = 0
        stream:foreachRDD(function(rdd) n = n + rdd:count() end)
        ssc:start()
        local p = peer("flume_client.py", string.format("--port %d --compress --mode burst --events 200000", stream._source:port()))
        peers[#peers + 1] = p
        assert.is_true(helpers.wait_for(ssc, function() return p.text():find("DONE") ~= nil end, 120), p.text())
        assert.matches("DONE 200001", p.text())
        assert.is_true(helpers.wait_for(ssc, function() return n >= 200001 end, 20))
        helpers.wait_for(ssc, function() return false end, 0.3)
        assert.are.equal(200001, n)
    end)

    it("refuses a request of more events than the limit (tiny compressed, large in memory), storing nothing of it", function()
        ssc = helpers.ssc(0.2)
        local stream = sh.FlumeUtils.createStream(ssc, "127.0.0.1", 0, nil, true)
        local n = 0
        stream:foreachRDD(function(rdd) n = n + rdd:count() end)
        local errs = errors_of(ssc)
        ssc:start()
        local p = peer("flume_client.py", string.format("--port %d --compress --mode toomany --events 1000001", stream._source:port()))
        peers[#peers + 1] = p
        assert.is_true(helpers.wait_for(ssc, function() return p.text():find("DONE") ~= nil end, 60), p.text())
        assert.is_true(helpers.wait_for(ssc, function() return #errs >= 1 end, 10))
        assert.matches("more events in one request than the limit of 1000000", table.concat(errs, "\n"))
        helpers.wait_for(ssc, function() return false end, 0.3)
        assert.are.equal(1, n)  -- the handshake call's event, and nothing of the refused request
    end)

    it("refuses bad arguments naming the caller's line", function()
        ssc = helpers.ssc(0.2)
        local ok, err = pcall(sh.FlumeUtils.createStream, ssc, "127.0.0.1", 70000)
        assert.is_false(ok)
        assert.truthy(err:find("port must be from 0 to 65535, got 70000"))
        ok, err = pcall(function() sh.FlumeUtils.createStream(ssc, "127.0.0.1", 1, nil, "yes") end)
        assert.truthy(err:find("flume_spec.lua:%d+: FlumeUtils.createStream expects enableDecompression as a boolean"))
        ok, err = pcall(function() sh.FlumeUtils.createPollingStream(ssc, { "nohost" }) end)
        assert.truthy(err:find("flume_spec.lua:%d+: FlumeUtils.createPollingStream: address 1 must be"))
        ok, err = pcall(function() sh.FlumeUtils.createPollingStream(ssc, { { "127.0.0.1", 1 } }, nil, 0) end)
        assert.truthy(err:find("expects maxBatchSize as an integer from 1 to 1000000"))
        ok, err = pcall(function() sh.FlumeUtils.createPollingStream(ssc, { { "127.0.0.1", 1 } }, nil, 2000000) end)
        assert.truthy(err:find("expects maxBatchSize as an integer from 1 to 1000000 %(events a request%), got 2000000"))
        ok, err = pcall(function() sh.FlumeUtils.createStream(ssc, "127.0.0.1", 1, nil, false, 42) end)
        assert.truthy(err:find("expects bodyDecoder as a function or nil"))
        -- An address that cannot be bound fails start, naming it.
        local s = sh.FlumeUtils.createStream(ssc, "192.0.2.1", 1)
        s:count():pprint()
        ok, err = pcall(ssc.start, ssc)
        assert.is_false(ok)
        assert.truthy(err:find("FlumeReceiver%(192%.0%.2%.1:1%): cannot listen on 192%.0%.2%.1:1"))
        ssc = nil
    end)
end)

-- The sink's event rule (flume_sink.py): body "s<id>:" then text or 4 binary bytes; header id.
local function check_sink_event(r)
    local id = tonumber(r[2]:match("^s(%d+):"))
    assert.is_not_nil(id, r[2])
    local tail = r[2]:sub(#("s" .. id .. ":") + 1)
    if id % 3 == 0 then
        assert.are.equal(string.char(0, 255, 10, id % 256), tail)
    else
        assert.are.equal("évt ✓ " .. id, tail)
    end
    if id % 5 == 0 then assert.are.same({}, r[1]) else assert.are.same({ id = tostring(id) }, r[1]) end
    return id
end

describe("FlumeUtils.createPollingStream (a client of python3-avro sinks over TCP)", function()
    local ssc, peers = nil, {}
    after_each(function()
        for _, p in ipairs(peers) do p.quit() end
        peers = {}
        if ssc then ssc:stop(false, false); ssc = nil end
    end)

    local function sink(args)
        local p = peer("flume_sink.py", args)
        peers[#peers + 1] = p
        local deadline = C.sh_ffi_now() + 10
        while not p.text():find("PORT %d+") and C.sh_ffi_now() < deadline do helpers.sleep(0.01) end
        p.port = assert(tonumber(p.text():match("PORT (%d+)")), p.text())
        return p
    end

    it("takes every event of two sinks once, parallelism requests in flight, acks each batch once, survives error batches", function()
        local s1 = sink("--events 200 --barrier 3")
        local s2 = sink("--events 120 --first 10000 --error-first 2")
        ssc = helpers.ssc(0.2)
        local stream = sh.FlumeUtils.createPollingStream(ssc, { { "127.0.0.1", s1.port }, "127.0.0.1:" .. s2.port },
            nil, 7, 3, function(body) return body end)
        local st = {}
        collect(stream, st)
        local errs = errors_of(ssc)
        ssc:start()
        assert.is_true(helpers.wait_for(ssc, function()
            return #st.records >= 320 and s1.text():find("ALLACKED") and s2.text():find("ALLACKED") and true
        end, 30))
        helpers.wait_for(ssc, function() return false end, 0.5)
        local seen = {}
        for _, r in ipairs(st.records) do
            local id = check_sink_event(r)
            assert.is_nil(seen[id], "event " .. id .. " twice")
            seen[id] = true
        end
        assert.are.equal(320, #st.records)
        for _, s in ipairs({ s1, s2 }) do
            local t = s.text()
            assert.is_nil(t:find("BAD"), t)
            assert.is_nil(t:find("BARRIER TIMEOUT"), t)   -- 3 requests were in flight at once
            assert.is_nil(t:find("NACK"), t)
            local _, conns = t:gsub("CONN %d+ BOTH", "")
            assert.are.equal(3, conns)                    -- parallelism connections, handshake BOTH
            local _, acks = t:gsub("\nACK seq%-%d+ %d+", "")
            local _, batches = t:gsub("\nBATCH seq%-%d+ %d+", "")
            assert.are.equal(batches, acks)               -- every batch acked once
            for n in t:gmatch("\nBATCH seq%-%d+ (%d+)") do assert.is_true(tonumber(n) <= 7) end
        end
        assert.truthy(table.concat(errs, "\n"):find("sink 127%.0%.0%.1:" .. s2.port .. ": error batch: simulated sink error"))
    end)

    it("reconnects to a sink that comes back, reporting it; batches not acked are delivered again", function()
        local s1 = sink("--events 60")
        local port = s1.port
        ssc = helpers.ssc(0.2)
        local stream = sh.FlumeUtils.createPollingStream(ssc, { "127.0.0.1:" .. port }, nil, 5, 2)
        local st = {}
        collect(stream, st)
        local errs = errors_of(ssc)
        ssc:start()
        assert.is_true(helpers.wait_for(ssc, function() return s1.text():find("ALLACKED") ~= nil end, 20))
        -- The sink goes away: the receiver reports it and retries with backoff.
        s1.quit()
        assert.is_true(helpers.wait_for(ssc, function()
            return table.concat(errs, "\n"):find("sink 127%.0%.0%.1:" .. port .. ": connection lost") ~= nil
        end, 10))
        -- A sink on the same port again, with new events: they arrive.
        local s2 = sink(string.format("--port %d --events 40 --first 500", port))
        assert.is_true(helpers.wait_for(ssc, function() return s2.text():find("ALLACKED") ~= nil and #st.records >= 100 end, 20))
        local seen = {}
        for _, r in ipairs(st.records) do seen[check_sink_event(r)] = true end
        for i = 0, 59 do assert.is_true(seen[i]) end
        for i = 500, 539 do assert.is_true(seen[i]) end
        assert.is_nil(s2.text():find("BAD"))
    end)
end)

describe("FlumeUtils with the write-ahead log", function()
    local ssc, peers, dir = nil, {}, nil
    local WAL = "spark.streaming.receiver.writeAheadLog.enable"
    after_each(function()
        for _, p in ipairs(peers) do p.quit() end
        peers = {}
        if ssc then ssc:stop(false, false); ssc = nil end
        helpers.sc()._conf:set(WAL, "false")
        if dir then os.execute("rm -rf '" .. dir .. "'") end
    end)

    it("answers OK and acks only once the batch is logged: a log that cannot be written makes FAILED and nack, and the events come again", function()
        local s1 = peer("flume_sink.py", "--events 40 --first 700")
        peers[#peers + 1] = s1
        assert.is_true(helpers.wait_for(helpers.ssc(0.2), function() return s1.text():find("PORT %d+") ~= nil end, 10))
        local sport = tonumber(s1.text():match("PORT (%d+)"))
        helpers.sc()._conf:set(WAL, "true")
        dir = helpers.tmpdir()
        ssc = helpers.ssc(0.2)
        ssc:checkpoint(dir)
        local push = sh.FlumeUtils.createStream(ssc, "127.0.0.1", 0)
        local poll = sh.FlumeUtils.createPollingStream(ssc, { "127.0.0.1:" .. sport }, nil, 10, 1)
        local st = {}
        collect(push:union(poll), st)
        ssc:start()
        -- The log's directories become files: every log write fails until they come back.
        local function break_log(on)
            for id = 0, 1 do
                local d = string.format("%s/receivedData/%d", dir, id)
                os.execute(on and ("rm -rf '" .. d .. "' && touch '" .. d .. "'") or ("rm -f '" .. d .. "' && mkdir -p '" .. d .. "'"))
            end
        end
        break_log(true)
        local c = peer("flume_client.py", string.format("--port %d --events 30 --batch 10 --first 0 --retry", push._source:port()))
        peers[#peers + 1] = c
        assert.is_true(helpers.wait_for(ssc, function()
            return c.text():find("FAILED") ~= nil and s1.text():find("NACK") ~= nil
        end, 20), c.text() .. s1.text())
        assert.is_nil(c.text():find("DONE"))         -- no OK while nothing could be logged
        assert.is_nil(s1.text():find("\nACK "))      -- nor an ack
        break_log(false)
        assert.is_true(helpers.wait_for(ssc, function()
            return c.text():find("DONE 30") ~= nil and s1.text():find("ALLACKED") ~= nil
        end, 20), c.text() .. s1.text())
        assert.is_nil(s1.text():find("BAD"))
        -- Every event arrives (at least once: the ones answered FAILED were in batches too). An
        -- answer comes once the batch is logged, before it runs: the last ones may follow.
        local function missing()
            local seen = {}
            for _, r in ipairs(st.records) do
                local id = tonumber(r[2]:match("^s(%d+):")) or tonumber(r[1].seq) or tonumber(r[2]:match("^event (%d+) "))
                if id == nil and r[2]:byte(1) then id = r[2]:byte(1) end  -- a binary body: its first byte is i % 256
                seen[id] = true
            end
            local m = {}
            for i = 0, 29 do if not seen[i] then m[#m + 1] = i end end
            for i = 700, 739 do if not seen[i] then m[#m + 1] = i end end
            return m
        end
        helpers.wait_for(ssc, function() return #missing() == 0 end, 10)
        assert.are.same({}, missing())
        -- And the log holds batches of both streams.
        assert.is_true(#helpers.glob(dir .. "/receivedData/0", "^wal%-") > 0)
        assert.is_true(#helpers.glob(dir .. "/receivedData/1", "^wal%-") > 0)
    end)
end)
