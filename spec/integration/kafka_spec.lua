-- spec/integration/kafka_spec.lua: KafkaUtils end to end against librdkafka's mock cluster served
-- on 127.0.0.1 (build/peers/kafka_mock), messages produced with kcat: the direct stream's
-- batches and offset ranges, fromOffsets, decoders and messageHandler, the rate limit,
-- createRDD, the value types, and the errors.
local sh = require "streamhost"
local helpers = require "spec.helpers"

local TP, OffsetRange = sh.TopicAndPartition, sh.OffsetRange

-- Runs `stream` (made by make(ssc)) until cond(state) holds or 20 s pass; every batch's records
-- and offset ranges are kept in state.batches { records, ranges }. Returns state.
local function run_direct(make, cond, batch, timeout)
    local ssc = helpers.ssc(batch or 0.2)
    local state = { batches = {}, total = 0, ssc = ssc }
    local stream = make(ssc)
    stream:foreachRDD(function(rdd)
        local recs = rdd:collect()
        state.batches[#state.batches + 1] = { records = recs, ranges = rdd:offsetRanges() }
        state.total = state.total + #recs
    end)
    ssc:start()
    helpers.wait_for(ssc, function() return cond(state) end, timeout or 20)
    ssc:stop(false, false)
    return state
end

local function all_records(state)
    local out = {}
    for _, b in ipairs(state.batches) do
        for _, r in ipairs(b.records) do out[#out + 1] = r end
    end
    return out
end

describe("KafkaUtils (mock cluster over TCP)", function()
    local kafka
    before_each(function() kafka = helpers.kafka_mock({ "t3:3", "t1:1", "other:2" }) end)
    after_each(function()
        -- The workers' clients of this cluster go with it (else they keep calling it).
        helpers.on_each_worker(helpers.sc(), function() require("streamhost.kafka_read").release() end)
        kafka.quit()
    end)

    local function params(extra)
        local p = { ["metadata.broker.list"] = kafka.bootstrap }
        for k, v in pairs(extra or {}) do p[k] = v end
        return p
    end

    it("direct stream: every message once as {key, message}, ranges contiguous per partition", function()
        local lines = {}
        for i = 1, 300 do lines[i] = "k" .. i .. ":v" .. i end
        kafka:produce("t3", lines, { key = ":" })
        local st = run_direct(function(ssc)
            return sh.KafkaUtils.createDirectStream(ssc, { "t3" }, params({ ["auto.offset.reset"] = "smallest" }))
        end, function(s) return s.total >= 300 and #s.batches >= 3 end)
        local recs = all_records(st)
        assert.are.equal(300, #recs)
        local seen = {}
        for _, r in ipairs(recs) do
            assert.are.equal("v" .. r[1]:sub(2), r[2])
            assert.is_nil(seen[r[1]])
            seen[r[1]] = true
        end
        -- Per partition, each batch starts where the one before ended; the counts add up.
        local at, count = {}, 0
        for _, b in ipairs(st.batches) do
            assert.are.equal(3, #b.ranges)
            local n = 0
            for _, r in ipairs(b.ranges) do
                assert.are.equal("t3", r.topic)
                assert.are.equal(at[r.partition] or 0, r.fromOffset)
                at[r.partition] = r.untilOffset
                n = n + r.untilOffset - r.fromOffset
            end
            assert.are.equal(n, #b.records)
            count = count + n
        end
        assert.are.equal(300, count)
        assert.are.equal(300, at[0] + at[1] + at[2])
    end)

    it("direct stream: starts at the latest offsets by default (largest)", function()
        kafka:produce("t1", { "old1", "old2" })
        local produced = false
        local st = run_direct(function(ssc)
            return sh.KafkaUtils.createDirectStream(ssc, { "t1" }, params())
        end, function(s)
            if not produced and #s.batches >= 1 then
                produced = true
                kafka:produce("t1", { "new1", "new2", "new3" })
            end
            return s.total >= 3
        end)
        local values = {}
        for _, r in ipairs(all_records(st)) do values[#values + 1] = r[2] end
        assert.are.same({ "new1", "new2", "new3" }, values)
        assert.are.equal(2, st.batches[1].ranges[1].fromOffset)
    end)

    it("direct stream: fromOffsets, decoders and messageHandler", function()
        kafka:produce("t3", 10, { partition = 1 })
        local st = run_direct(function(ssc)
            return sh.KafkaUtils.createDirectStream(ssc, { "t3" }, params(), { [TP("t3", 1)] = 4 },
                nil, function(v) return v:upper() end,
                function(m) return { m.topic, m.partition, m.offset, m.key, m.message } end)
        end, function(s) return s.total >= 6 end)
        local recs = all_records(st)
        assert.are.equal(6, #recs)
        for i, r in ipairs(recs) do
            assert.are.same({ "t3", 1, i + 3, nil, "M" .. (i + 4) }, { r[1], r[2], r[3], r[4], r[5] })
        end
        -- Only the partition named in fromOffsets is read.
        for _, b in ipairs(st.batches) do
            assert.are.equal(1, #b.ranges)
            assert.are.equal(1, b.ranges[1].partition)
        end
    end)

    it("direct stream: spark.streaming.kafka.maxRatePerPartition bounds every range", function()
        kafka:produce("t1", 60)
        local conf = helpers.sc()._conf
        conf:set("spark.streaming.kafka.maxRatePerPartition", "50")  -- 10 per 0.2 s batch
        local ok, st = pcall(run_direct, function(ssc)
            return sh.KafkaUtils.createDirectStream(ssc, { "t1" }, params({ ["auto.offset.reset"] = "smallest" }))
        end, function(s) return s.total >= 60 end)
        conf:set("spark.streaming.kafka.maxRatePerPartition", "0")
        assert(ok, st)
        assert.are.equal(60, st.total)
        local nonempty = 0
        for _, b in ipairs(st.batches) do
            local r = b.ranges[1]
            assert.is_true(r.untilOffset - r.fromOffset <= 10)
            if r.untilOffset > r.fromOffset then nonempty = nonempty + 1 end
        end
        assert.is_true(nonempty >= 6)
    end)

    it("direct stream: backpressure starts at initialRate and then follows the processing rate", function()
        kafka:produce("t1", 200)
        local conf = helpers.sc()._conf
        conf:set("spark.streaming.backpressure.enabled", "true")
        conf:set("spark.streaming.backpressure.initialRate", "20")  -- 4 messages a 0.2 s batch
        local ok, st = pcall(run_direct, function(ssc)
            return sh.KafkaUtils.createDirectStream(ssc, { "t1" }, params({ ["auto.offset.reset"] = "smallest" }))
        end, function(s) return s.total >= 200 end)
        conf:set("spark.streaming.backpressure.enabled", "false")
        assert(ok, st)
        assert.are.equal(200, st.total)
        local sizes = {}
        for _, b in ipairs(st.batches) do
            local r = b.ranges[1]
            if r.untilOffset > r.fromOffset then sizes[#sizes + 1] = r.untilOffset - r.fromOffset end
        end
        assert.are.equal(4, sizes[1])
        -- Processing is far faster than 20 a second: the rate rose and the rest came sooner.
        assert.is_true(#sizes < 50, #sizes .. " batches")
    end)

    it("createRDD reads exactly the ranges given, one partition each", function()
        kafka:produce("other", 5, { partition = 0 })
        kafka:produce("other", { "a", "b", "c" }, { partition = 1 })
        local ranges = { OffsetRange("other", 0, 1, 4), OffsetRange("other", 1, 0, 3) }
        local rdd = sh.KafkaUtils.createRDD(helpers.sc(), params(), ranges, { [TP("other", 0)] = sh.Broker("127.0.0.1", 9092) })
        assert.are.equal(2, rdd:getNumPartitions())
        local values = rdd:map(function(kv) return kv[2] end):collect()
        assert.are.same({ "m2", "m3", "m4", "a", "b", "c" }, values)
        assert.is_true(rdd:offsetRanges()[1] == OffsetRange("other", 0, 1, 4))
        local h = sh.KafkaUtils.createRDD(helpers.sc(), params(), { OffsetRange("other", 1, 1, 3) }, nil,
            nil, nil, function(m) return m.offset .. "=" .. m.message end)
        assert.are.same({ "1=b", "2=c" }, h:collect())
    end)

    it("createRDD refuses a range the partition does not hold, naming it", function()
        kafka:produce("other", 3, { partition = 0 })
        local ok, err = pcall(sh.KafkaUtils.createRDD, helpers.sc(), params(), { OffsetRange("other", 0, 1, 9) })
        assert.is_false(ok)
        assert.matches("topic other partition 0 holds offsets 0 to 3", err)
        assert.matches("untilOffset=9", err)
    end)

    it("an unknown topic and unknown settings are clear errors where the stream is defined", function()
        local ssc = helpers.ssc(0.2)
        local ok, err = pcall(sh.KafkaUtils.createDirectStream, ssc, { "nosuchtopic" }, params())
        assert.is_false(ok)
        assert.matches("nosuchtopic", err)
        ok, err = pcall(sh.KafkaUtils.createDirectStream, ssc, { "t1" }, params({ ["no.such.setting"] = "1" }))
        assert.is_false(ok)
        assert.matches("no.such.setting", err)
        ok, err = pcall(sh.KafkaUtils.createDirectStream, ssc, { "t1" }, {})
        assert.is_false(ok)
        assert.matches("metadata.broker.list", err)
        ok, err = pcall(sh.KafkaUtils.createDirectStream, ssc, { "t1" }, params({ ["auto.offset.reset"] = "middle" }))
        assert.is_false(ok)
        assert.matches("auto.offset.reset must be smallest or largest", err)
        ok, err = pcall(sh.KafkaUtils.createStream, ssc, "127.0.0.1:1", "g", { t1 = 1 })
        assert.is_false(ok)
        assert.matches("ZooKeeper 127.0.0.1:1: no server answered %(or give the brokers in kafkaParams as metadata.broker.list%)", err)
    end)

    it("an offset out of range is reported naming topic, partition and offset; nothing is skipped", function()
        kafka:produce("t1", 3)
        local errors = {}
        local l = sh.StreamingListener()
        function l.onReceiverError(_, info) errors[#errors + 1] = info.receiverInfo.lastErrorMessage end
        local st = run_direct(function(ssc)
            ssc:addStreamingListener(l)
            return sh.KafkaUtils.createDirectStream(ssc, { "t1" }, params(), { [TP("t1", 0)] = 7 })
        end, function(s) return #errors >= 1 and #s.batches >= 2 end)
        assert.matches("topic t1 partition 0: offset 7 is out of range %(0 to 3%)", errors[1])
        assert.are.equal(0, st.total)
        for _, b in ipairs(st.batches) do assert.are.equal(7, b.ranges[1].fromOffset) end
    end)

    it("createStream: a receiver in a group; offsets committed only when a batch completes", function()
        -- Runs the stream in group g1 until it has seen every value of `expect` (or a batch
        -- failed on a value matching fail_on), a little longer, and stops; returns the values.
        local function run(lines_to_produce, expect, fail_on, after_fail)
            local ssc = helpers.ssc(0.2)
            local got, failed = {}, false
            -- The mock cluster forgets a member that left only after its session timeout: short.
            local s = sh.KafkaUtils.createStream(ssc, "unused:2181", "g1", { t3 = 1 },
                params({ ["auto.offset.reset"] = "smallest", ["session.timeout.ms"] = 6000,
                         ["heartbeat.interval.ms"] = 500 }), nil, nil, function(v) return v .. "!" end)
            s:foreachRDD(function(rdd)
                local recs = rdd:collect()
                for _, r in ipairs(recs) do
                    if fail_on and r[2]:find(fail_on) then failed = true; error("failing on purpose") end
                end
                for _, r in ipairs(recs) do got[#got + 1] = r[2] end
            end)
            ssc:start()
            kafka:produce("t3", lines_to_produce, { partition = 0 })  -- one partition: b and c0 meet
            local function seen_all()
                local have = {}
                for _, v in ipairs(got) do have[v] = true end
                for _, v in ipairs(expect) do if not have[v] then return false end end
                return true
            end
            -- The failing batch's error comes out of the wait (awaitTermination raises it).
            pcall(helpers.wait_for, ssc, function() return failed or (#expect > 0 and seen_all()) end, 40)
            if failed and after_fail then  -- a later batch of this run completes
                kafka:produce("t3", after_fail, { partition = 0 })
                local want = {}
                for i, v in ipairs(after_fail) do want[i] = v .. "!" end
                expect = want
                pcall(helpers.wait_for, ssc, seen_all, 40)
            end
            pcall(helpers.wait_for, ssc, function() return false end, 0.5)
            ssc:stop(false, true)
            table.sort(got)
            return got, failed
        end
        kafka:produce("t3", { "a1", "a2" })  -- before the group's first start: smallest reads them
        assert.are.same({ "a1!", "a2!", "a3!" }, (run({ "a3" }, { "a1!", "a2!", "a3!" })))
        -- The group goes on after its committed offsets: b's batch fails, and the batch after
        -- it (c0) completes but commits nothing past b either, so the next run reads b (and c0)
        -- again: at least once.
        local got, failed = run({ "b1" }, {}, "b", { "c0" })
        assert.is_true(failed)
        assert.are.same({ "c0!" }, got)
        assert.are.same({ "b1!", "c0!", "c1!" }, (run({ "c1" }, { "b1!", "c0!", "c1!" })))
    end)

    it("direct stream: the broker down mid-stream; the stream waits, says so, and loses nothing", function()
        kafka:produce("t1", 40)
        local conf = helpers.sc()._conf
        conf:set("spark.streaming.kafka.maxRatePerPartition", "25")  -- 5 per 0.2 s batch
        local errors, down, up = {}, false, false
        local l = sh.StreamingListener()
        function l.onReceiverError(_, info) errors[#errors + 1] = info.receiverInfo.lastErrorMessage end
        local ok, st = pcall(run_direct, function(ssc)
            ssc:addStreamingListener(l)
            return sh.KafkaUtils.createDirectStream(ssc, { "t1" }, params({ ["auto.offset.reset"] = "smallest" }))
        end, function(s)
            if not down and s.total >= 10 then
                down = true
                kafka:cmd("down 1")
            elseif down and not up and #errors >= 1 then
                up = true
                kafka:cmd("up 1")
                kafka:produce("t1", { "after1", "after2" })
            end
            return up and s.total >= 42
        end, 0.2, 60)
        conf:set("spark.streaming.kafka.maxRatePerPartition", "0")
        assert(ok, st)
        assert.is_true(up)
        assert.matches("waiting for the brokers: topic t1 partition 0", errors[1])
        local values, seen = {}, {}
        for _, r in ipairs(all_records(st)) do
            assert.is_nil(seen[r[2]], r[2])
            seen[r[2]] = true
            values[#values + 1] = r[2]
        end
        assert.are.equal(42, #values)
        for i = 1, 40 do assert.is_true(seen["m" .. i], "m" .. i) end
        assert.is_true(seen.after1 and seen.after2)
    end)

    it("createStream finds the brokers in ZooKeeper (/brokers/ids, as Kafka registers them)", function()
        local zk = helpers.zookeeper()
        local ok, why = pcall(function()
            zk.register(kafka)
            kafka:produce("t1", { "z1", "z2" })
            local ssc = helpers.ssc(0.2)
            local got = {}
            sh.KafkaUtils.createStream(ssc, zk.quorum, "gz", { t1 = 1 }, { ["auto.offset.reset"] = "smallest" })
                :foreachRDD(function(rdd)
                    for _, r in ipairs(rdd:collect()) do got[#got + 1] = r[2] end
                end)
            ssc:start()
            helpers.wait_for(ssc, function() return #got >= 2 end, 40)
            ssc:stop(false, false)
            table.sort(got)
            assert.are.same({ "z1", "z2" }, got)
            local made, err = pcall(sh.KafkaUtils.createStream, helpers.ssc(0.2), zk.quorum .. "/elsewhere", "gz", { t1 = 1 })
            assert.is_false(made)
            assert.matches("no brokers are registered %(/elsewhere/brokers/ids does not exist%)", err)
        end)
        zk.quit()
        assert(ok, why)
    end)

    it("value types are equal by value and check their fields", function()
        assert.is_true(TP("a", 1) == TP("a", 1))
        assert.is_false(TP("a", 1) == TP("a", 2))
        assert.is_true(sh.Broker("h", 1) == sh.Broker("h", 1))
        assert.is_true(OffsetRange("a", 0, 1, 2) == OffsetRange("a", 0, 1, 2))
        assert.is_false(OffsetRange("a", 0, 1, 2) == OffsetRange("a", 0, 1, 3))
        assert.are.equal("OffsetRange(topic=a, partition=0, fromOffset=1, untilOffset=2)", tostring(OffsetRange("a", 0, 1, 2)))
        assert.has_error(function() sh.Broker("h", 0) end, "Broker: port must be a port from 1 to 65535, got 0")
        assert.has_error(function() OffsetRange("a", -1, 0, 0) end)
        assert.has_error(function() helpers.sc():parallelize({ 1 }):offsetRanges() end)
    end)
end)
