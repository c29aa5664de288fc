-- spec/integration/kinesis_spec.lua: KinesisUtils.createStream end to end against kinesalite on
-- 127.0.0.1 (records put, streams made and shards split with botocore): every record once
-- across shards, a shard split mid-stream (parent before children), TRIM_HORIZON and LATEST,
-- the shipped decoder, and the errors (API misuse, a bad endpoint, an unknown stream).
local sh = require "streamhost"
local helpers = require "spec.helpers"
local kh = require "spec.kinesis_helpers"

local IPS = sh.InitialPositionInStream

-- Runs the streams make(ssc) returns ({name = dstream}) until cond(state) holds or `timeout`
-- seconds pass; state[name] is the array of every record in arrival order, state.ssc the
-- context (stopped on return). Returns state.
local function run(make, cond, timeout, before)
    local ssc = helpers.ssc(0.2)
    local state = { ssc = ssc, batches = 0 }
    local streams = make(ssc, state)
    for name, d in pairs(streams) do
        state[name] = {}
        d:foreachRDD(function(rdd)
            local recs, into = rdd:collect(), state[name]
            for i = 1, #recs do into[#into + 1] = recs[i] end
            state.batches = state.batches + 1
        end)
    end
    ssc:start()
    if before then before(state) end
    helpers.wait_for(ssc, function() return cond(state) end, timeout or 30)
    ssc:stop(false, false)
    return state
end

local function create(k, ssc, stream, pos, decoder)
    return sh.KinesisUtils.createStream(ssc, "app-" .. stream, stream, k.endpoint, "us-east-1",
        pos or IPS.TRIM_HORIZON, 1, sh.StorageLevel.MEMORY_AND_DISK_2, "AKIDTEST", "secret", decoder)
end

describe("KinesisUtils.createStream (kinesalite over HTTP)", function()
    local k
    setup(function() k = kh.kinesalite() end)
    teardown(function() if k then k.quit() end end)

    it("reads every record put with PutRecords once, across 4 shards", function()
        k:run("create", "four", "4")
        local recs = {}
        for i = 1, 2000 do recs[i] = { "key" .. i % 97, "rec-" .. i } end
        assert.matches("put 2000", k:put("four", recs))
        local st = run(function(ssc) return { s = create(k, ssc, "four") } end,
            function(s) return #s.s >= 2000 end)
        assert.are.equal(2000, #st.s)
        local seen = {}
        for _, r in ipairs(st.s) do
            assert.is_nil(seen[r], r)
            seen[r] = true
        end
        for i = 1, 2000 do assert.is_true(seen["rec-" .. i], "rec-" .. i) end
        local out = k:run("shards", "four")
        local _, nshards = out:gsub("open", "")
        assert.are.equal(4, nshards)
    end)

    it("follows a shard split: parent and children read once each, the parent first", function()
        k:run("create", "splitme", "2")
        local keys, n = 40, 0
        local function batch(from, to)
            local recs = {}
            for i = from, to do
                for key = 1, keys do recs[#recs + 1] = { "pk" .. key, string.format("pk%d:%d", key, i) } end
            end
            n = n + #recs
            return recs
        end
        k:put("splitme", batch(1, 10))
        local split_done = false
        local st = run(function(ssc) return { s = create(k, ssc, "splitme") } end,
            function(s)
                if not split_done and #s.s >= 10 * keys then
                    -- Mid-stream: split a shard, then put more (to the children).
                    split_done = true
                    k:run("split", "splitme", "shardId-000000000000")
                    k:put("splitme", batch(11, 25))
                end
                return split_done and #s.s >= n
            end, 40)
        assert.is_true(split_done)
        assert.are.equal(n, #st.s)
        -- Per partition key, records arrive in the order they were put: the parent's (1-10),
        -- then a child's (11-25); each once.
        local last = {}
        for _, r in ipairs(st.s) do
            local key, i = r:match("^(pk%d+):(%d+)$")
            i = tonumber(i)
            assert.are.equal((last[key] or 0) + 1, i, r)
            last[key] = i
        end
        for key = 1, keys do assert.are.equal(25, last["pk" .. key]) end
        local out = k:run("shards", "splitme")
        assert.matches("shardId%-000000000000 %- closed", out)
        assert.matches("shardId%-000000000002 shardId%-000000000000 open", out)
    end)

    it("a shard split before the start: the closed parent is read to its end before its children", function()
        k:run("create", "presplit", "1")
        local function recs(from, to)
            local out = {}
            for i = from, to do
                for key = 1, 30 do out[#out + 1] = { "pk" .. key, string.format("pk%d:%d", key, i) } end
            end
            return out
        end
        k:put("presplit", recs(1, 20))
        k:run("split", "presplit", "shardId-000000000000")
        k:put("presplit", recs(21, 40))
        local st = run(function(ssc) return { s = create(k, ssc, "presplit") } end,
            function(s) return #s.s >= 1200 end)
        assert.are.equal(1200, #st.s)
        local last = {}
        for _, r in ipairs(st.s) do
            local key, i = r:match("^(pk%d+):(%d+)$")
            assert.are.equal((last[key] or 0) + 1, tonumber(i), r)
            last[key] = tonumber(i)
        end
    end)

    it("TRIM_HORIZON reads what was there before it started; LATEST only what came after", function()
        k:run("create", "positions", "2")
        local old = {}
        for i = 1, 50 do old[i] = { "k" .. i, "old-" .. i } end
        k:put("positions", old)
        local put_new = false
        local st = run(function(ssc)
            return { trim = create(k, ssc, "positions", IPS.TRIM_HORIZON),
                     latest = create(k, ssc, "positions", IPS.LATEST) }
        end, function(s)
            -- The new records go in once the LATEST receiver holds an iterator of each shard.
            if not put_new then
                local latest = s.ssc._inputs[2]._source
                if latest:shards() == 2 then
                    put_new = true
                    local new = {}
                    for i = 1, 30 do new[i] = { "k" .. i, "new-" .. i } end
                    k:put("positions", new)
                end
                return false
            end
            return #s.trim >= 80 and #s.latest >= 30
        end)
        assert.is_true(put_new)
        assert.are.equal(80, #st.trim)
        assert.are.equal(30, #st.latest)
        for _, r in ipairs(st.latest) do assert.matches("^new%-", r) end
    end)

    it("LATEST after a split: the closed parent is skipped, its children start at their tip", function()
        k:run("create", "latestsplit", "1")
        k:put("latestsplit", { { "a", "old-1" }, { "b", "old-2" } })
        k:run("split", "latestsplit", "shardId-000000000000")
        k:put("latestsplit", { { "a", "mid-1" }, { "b", "mid-2" } })
        local put_new = false
        local st = run(function(ssc) return { s = create(k, ssc, "latestsplit", IPS.LATEST) } end,
            function(s)
                if not put_new then
                    local reading, ended = s.ssc._inputs[1]._source:shards()
                    if reading == 2 and ended == 1 then
                        put_new = true
                        local new = {}
                        for i = 1, 20 do new[i] = { "k" .. i, "new-" .. i } end
                        k:put("latestsplit", new)
                    end
                    return false
                end
                return #s.s >= 20
            end)
        assert.is_true(put_new)
        assert.are.equal(20, #st.s)
        for _, r in ipairs(st.s) do assert.matches("^new%-", r) end
    end)

    it("backpressure pauses GetRecords while the scheduler holds too much, and loses nothing", function()
        k:run("create", "pressure", "2")
        local recs, pad = {}, string.rep("x", 1000)
        for i = 1, 3000 do recs[i] = { "k" .. i, i .. ":" .. pad } end
        k:put("pressure", recs)
        local conf = helpers.sc()._conf
        conf:set("streamhost.kinesis.maxQueuedBytes", "200000")  -- 3 MB to read: it must pause
        local ok, st = pcall(run, function(ssc) return { s = create(k, ssc, "pressure") } end,
            function(s)
                local _, _, pauses = s.ssc._inputs[1]._source:shards()
                s.pauses = pauses
                return #s.s >= 3000
            end)
        conf:set("streamhost.kinesis.maxQueuedBytes", tostring(64 * 1024 * 1024))  -- the default
        assert(ok, st)
        assert.is_true(st.pauses >= 1, "never paused")
        assert.are.equal(3000, #st.s)
        local seen = {}
        for _, r in ipairs(st.s) do
            local i = tonumber(r:match("^(%d+):"))
            assert.is_nil(seen[i])
            seen[i] = true
        end
    end)

    it("keeps shard positions in the checkpoint under the app name, never the credentials", function()
        k:run("create", "checkpointed", "2")
        k:put("checkpointed", { { "a", "one" }, { "b", "two" }, { "c", "three" } })
        local dir = helpers.tmpdir()
        local ssc = helpers.ssc(0.2)
        ssc:checkpoint(dir)
        local got = { n = 0, batches = 0 }  -- the job's functions may not capture the context
        sh.KinesisUtils.createStream(ssc, "positions-app", "checkpointed", k.endpoint, "us-east-1",
            IPS.TRIM_HORIZON, 1, nil, "AKIDMARKER", "SECRETMARKER"):foreachRDD(function(rdd)
                got.n = got.n + rdd:count()
                got.batches = got.batches + 1
            end)
        ssc:start()
        helpers.wait_for(ssc, function() return got.n >= 3 and got.batches >= 3 end, 30)
        ssc:stop(false, false)
        assert.are.equal(3, got.n)
        local p = io.popen("cat " .. kh.q(dir) .. "/metadata-* 2>/dev/null")
        local bytes = p:read("*a")
        p:close()
        os.execute("rm -rf " .. kh.q(dir))
        assert.is_truthy(bytes:find("positions-app", 1, true))
        assert.is_truthy(bytes:find("shardId-000000000000", 1, true))
        assert.is_nil(bytes:find("AKIDMARKER", 1, true))
        assert.is_nil(bytes:find("SECRETMARKER", 1, true))
    end)

    it("with the write-ahead log, checkpoints no position past a batch whose log could not be written", function()
        k:run("create", "unlogged", "1")
        local WAL = "spark.streaming.receiver.writeAheadLog.enable"
        local conf = helpers.sc()._conf
        conf:set(WAL, "true")
        local dir = helpers.tmpdir()
        local ok, why = pcall(function()
            local ssc = helpers.ssc(0.2)
            ssc:checkpoint(dir)
            local got = { n = 0 }
            sh.KinesisUtils.createStream(ssc, "unlogged-app", "unlogged", k.endpoint, "us-east-1",
                IPS.TRIM_HORIZON, 1, nil, "AKIDTEST", "secret"):foreachRDD(function(rdd)
                    local n = rdd:count()
                    got.n = got.n + n
                    -- The batch holding the records fails: its positions never complete.
                    if n > 0 then error("this batch fails on purpose", 0) end
                end)
            ssc:start()
            -- The log's directory becomes a file: every log write fails.
            local logs = helpers.glob(dir .. "/receivedData", "^%d+$")
            assert.is_true(#logs >= 1)
            for _, name in ipairs(logs) do
                local d = dir .. "/receivedData/" .. name
                os.execute("rm -rf " .. kh.q(d) .. " && touch " .. kh.q(d))
            end
            k:put("unlogged", { { "a", "one" }, { "b", "two" } })
            -- The failing batch's error comes out of the wait.
            pcall(helpers.wait_for, ssc, function() return got.n >= 2 end, 30)
            ssc:stop(false, false)
            assert.are.equal(2, got.n)
            local p = io.popen("cat " .. kh.q(dir) .. "/metadata-* 2>/dev/null")
            local bytes = p:read("*a")
            p:close()
            -- The source's data is in the checkpoint, but no position of the shard: its records
            -- are in no log and no batch completed them, so a recovery must read them again.
            assert.is_truthy(bytes:find("unlogged-app", 1, true))
            assert.is_nil(bytes:find("shardId-000000000000", 1, true))
        end)
        conf:set(WAL, "false")
        os.execute("rm -rf " .. kh.q(dir))
        assert(ok, why)
    end)

    it("applies the shipped decoder to each record's data", function()
        k:run("create", "decoded", "1")
        k:put("decoded", { { "a", "hello" }, { "b", "world" } })
        local st = run(function(ssc)
            return { s = create(k, ssc, "decoded", IPS.TRIM_HORIZON, function(s) return s:upper() .. #s end) }
        end, function(s) return #s.s >= 2 end)
        table.sort(st.s)
        assert.are.same({ "HELLO5", "WORLD5" }, st.s)
    end)

    it("reports an unknown stream and an endpoint that does not answer, naming them", function()
        local errors = {}
        local l = sh.StreamingListener()
        function l.onReceiverError(_, info) errors[#errors + 1] = info.receiverInfo.lastErrorMessage end
        -- A port nothing listens on: bound, then closed.
        local p = io.popen([[python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])']])
        local dead = p:read("*l")
        p:close()
        local function has(pattern)
            for _, e in ipairs(errors) do if e:find(pattern) then return e end end
        end
        run(function(ssc)
            ssc:addStreamingListener(l)
            return { a = create(k, ssc, "nosuchstream"),
                     b = sh.KinesisUtils.createStream(ssc, "app", "s", "http://127.0.0.1:" .. dead, "us-east-1",
                         IPS.LATEST, 1, nil, "a", "b") }
        end, function() return has("nosuchstream") and has("127.0.0.1:" .. dead) end, 20)
        assert.matches("stream nosuchstream not found at " .. k.endpoint:gsub("%p", "%%%0")
            .. ": ListShards: HTTP 400 ResourceNotFoundException", has("nosuchstream"))
        assert.matches("listing the shards of stream s at http://127.0.0.1:" .. dead .. ": ListShards: .*[Cc]onnect",
            has("127.0.0.1:" .. dead))
    end)

    it("examples/kinesis_wordcount.lua counts the words of records put after it started", function()
        k:run("create", "example", "2")
        local h = helpers.spawn("examples/kinesis_wordcount.lua",
            "wordcount example " .. k.endpoint .. " us-east-1", "AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=y")
        -- LATEST: records count once the job reads; put until a batch shows them.
        local C = require("streamhost.ffi").C
        local deadline, text = C.sh_ffi_now() + 30, nil
        repeat
            k:put("example", { { "a", "hello kinesis" }, { "b", "hello lua" } })
            text = h.wait("out", '{"hello", %d+}', 1)
        until text or C.sh_ffi_now() > deadline
        local err = helpers.read_file(h.dir .. "/err") or ""
        h.finish()
        assert(text, "no counts printed: " .. err)
        assert.matches('{"kinesis", %d+}', text)
        assert.matches("Time: %d%d%d%d%-%d%d%-%d%d", text)
    end)

    it("refuses bad arguments where the job calls it", function()
        local ssc = helpers.ssc(0.2)
        local function call(...)
            local d = sh.KinesisUtils.createStream(ssc, ...)  -- not a tail call: the error names this line
            return d
        end
        local ok, err = pcall(call, "app", "s", "ftp://x", "us-east-1", IPS.LATEST, 1)
        assert.is_false(ok)
        assert.matches("kinesis_spec.lua:%d+: KinesisUtils.createStream: endpointUrl must be an http:// or https:// URL", err)
        ok, err = pcall(call, "app", "s", "http://127.0.0.1:1", "us-east-1", "oldest", 1)
        assert.matches("kinesis_spec.lua:%d+: .*initialPositionInStream as InitialPositionInStream.LATEST or TRIM_HORIZON", err)
        ok, err = pcall(call, "app", "s", "http://127.0.0.1:1", "us-east-1", IPS.LATEST, 0)
        assert.matches("checkpointInterval as a positive number of seconds", err)
        ok, err = pcall(call, "app", "s", "http://127.0.0.1:1", "us-east-1", IPS.LATEST, 1, nil, "only-key")
        assert.matches("give both awsAccessKeyId and awsSecretKey", err)
        ssc:stop(false, false)
    end)
end)
