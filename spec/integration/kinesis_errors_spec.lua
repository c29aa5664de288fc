-- spec/integration/kinesis_errors_spec.lua: the receiver's retries, against an endpoint that
-- fails on purpose over real HTTP (scripts/peers/kinesis_flaky.py; kinesalite enforces no read
-- limits and keeps iterators for 5 minutes): a 500 and LimitExceeded when listing, throttling,
-- an expired iterator (a new one after the last record read), a 503, malformed answers and
-- records when reading: every record arrives once and in order (a malformed one is skipped),
-- each error is reported to listeners.
-- The endpoint checks every request's signature with botocore; and one without ListShards
-- is listed with DescribeStream, with credentials and a (long) session token from the
-- environment. A reader far behind asks each shard at most 5 times a second.
local ffi = require "ffi"
local sh = require "streamhost"
local helpers = require "spec.helpers"
local kh = require "spec.kinesis_helpers"

-- A context of 0.2 s batches with a Kinesis stream of the flaky endpoint f (args: app name,
-- stream, region, initial position, and optionally the two keys), its records collected into
-- got and its receiver errors into errors; not started.
local function collecting(f, app, stream, region, position, key, secret)
    local got, errors = {}, {}
    local l = sh.StreamingListener()
    function l.onReceiverError(_, info) errors[#errors + 1] = info.receiverInfo.lastErrorMessage end
    local ssc = helpers.ssc(0.2)
    ssc:addStreamingListener(l)
    local d = sh.KinesisUtils.createStream(ssc, app, stream, f.endpoint, region, position, 1, nil, key, secret)
    d:foreachRDD(function(rdd)
        local recs = rdd:collect()
        for i = 1, #recs do got[#got + 1] = recs[i] end
    end)
    return ssc, got, errors
end

describe("Kinesis receiver errors (a flaky endpoint over HTTP)", function()
    it("retries with backoff, loses and repeats nothing, reports each error", function()
        local f = kh.flaky()
        local ok, why = pcall(function()
            local ssc, got, errors = collecting(f, "flaky-app", "flaky", "us-east-1",
                sh.InitialPositionInStream.TRIM_HORIZON, "AKIDFLAKY", "secret")
            ssc:start()
            helpers.wait_for(ssc, function() return #got >= 7 end, 30)
            -- A little longer: a record read twice would show.
            local n = 0
            helpers.wait_for(ssc, function() n = n + 1; return n > 10 end, 1)
            ssc:stop(false, false)
            -- Records 6 and 7 were malformed: reported and skipped.
            assert.are.same({ "rec-1", "rec-2", "rec-3", "rec-4", "rec-5", "rec-8", "rec-9" }, got)
            local all = table.concat(errors, "\n")
            assert.matches("listing the shards of stream flaky at " .. f.endpoint:gsub("%p", "%%%0")
                .. ": ListShards: HTTP 500 InternalFailure: try again", all)
            assert.matches("ListShards: HTTP 400 LimitExceededException: Rate exceeded for stream flaky", all)
            assert.matches("shard shardId%-000000000000 of stream flaky at " .. f.endpoint:gsub("%p", "%%%0")
                .. ": throttled: GetRecords: HTTP 400 ProvisionedThroughputExceededException", all)
            assert.matches("shard shardId%-000000000000 of stream flaky: GetRecords: HTTP 400 ExpiredIteratorException: Iterator expired %(getting a new iterator%)", all)
            assert.matches("GetRecords: HTTP 503 ServiceUnavailable: slow down", all)
            assert.matches("GetRecords: HTTP 200 with a malformed answer %(premature end of input", all)
            assert.matches("GetRecords: HTTP 502 with a malformed answer %(.*<html>", all)
            assert.matches("GetRecords answered without a Records array", all)
            assert.matches("record 106 has Data that is not base64 %(skipped%)", all)
            assert.matches("GetRecords answered a record without Data %(skipped%)", all)
            -- The expired iterator was replaced by one after the last record read; every call signed.
            local log = f.log()
            assert.matches("GetShardIterator TRIM_HORIZON signed\n", log)
            assert.matches("GetShardIterator AFTER_SEQUENCE_NUMBER 103 signed\n", log)
            assert.is_nil(log:find("unsigned"))
        end)
        f.quit()
        assert(ok, why)
    end)

    it("lists the shards with DescribeStream, page by page, where ListShards is unknown; credentials from the environment, a session token of 6 kB", function()
        local f = kh.flaky("describe")
        -- The credentials of the environment, a session token with them.
        ffi.cdef [[ int setenv(const char *name, const char *value, int overwrite);
                    int unsetenv(const char *name); ]]
        ffi.C.setenv("AWS_ACCESS_KEY_ID", "ASIAENV", 1)
        ffi.C.setenv("AWS_SECRET_ACCESS_KEY", "secret", 1)
        -- STS tokens have no fixed size: a long one is sent and signed whole.
        local token = "session/token+1=" .. string.rep("Zm9vYmFy", 750)
        ffi.C.setenv("AWS_SESSION_TOKEN", token, 1)
        local ok, why = pcall(function()
            local ssc, got = collecting(f, "old-app", "old", "us-west-2", sh.InitialPositionInStream.TRIM_HORIZON)
            ssc:start()
            helpers.wait_for(ssc, function() return #got >= 2 end, 20)
            ssc:stop(false, false)
            table.sort(got)
            assert.are.same({ "from-shardId-000000000000", "from-shardId-000000000001" }, got)
            local log = f.log()
            local t = "signed token=" .. token:gsub("%p", "%%%0") .. "\n"
            assert.matches("ListShards " .. t .. "DescribeStream " .. t .. "DescribeStream " .. t, log)
            assert.is_nil(log:find("unsigned"))
        end)
        for _, name in ipairs({ "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN" }) do
            ffi.C.unsetenv(name)
        end
        f.quit()
        assert(ok, why)
    end)

    it("an expired NextToken of ListShards: the listing starts again from the first page", function()
        local f = kh.flaky("paged")
        local ok, why = pcall(function()
            local ssc, got, errors = collecting(f, "paged-app", "paged", "us-east-1",
                sh.InitialPositionInStream.TRIM_HORIZON, "AKIDPAGED", "secret")
            ssc:start()
            helpers.wait_for(ssc, function() return #got >= 2 end, 20)
            ssc:stop(false, false)
            table.sort(got)
            assert.are.same({ "from-shardId-000000000000", "from-shardId-000000000001" }, got)
            assert.matches("ListShards: HTTP 400 ExpiredNextTokenException", table.concat(errors, "\n"))
            -- The expired token was not sent again: a first page, then the new token.
            assert.matches("ListShards signed\nListShards signed next=page2%-1\nListShards signed\nListShards signed next=page2%-2\n", f.log())
        end)
        f.quit()
        assert(ok, why)
    end)

    it("a LATEST iterator that expires before any record: the next starts when the first was asked for", function()
        local f = kh.flaky("latest-expires")
        local ok, why = pcall(function()
            local ssc, got = collecting(f, "latest-app", "flaky", "us-east-1", sh.InitialPositionInStream.LATEST,
                "AKIDLATEST", "secret")
            local before = require("streamhost.ffi").C.sh_ffi_now()
            ssc:start()
            helpers.wait_for(ssc, function() return #got >= 1 end, 20)
            ssc:stop(false, false)
            assert.are.same({ "rec-1" }, got)
            local log = f.log()
            assert.matches("GetShardIterator LATEST signed\nGetRecords signed\nGetShardIterator AT_TIMESTAMP at=%d+%.%d+ signed\n", log)
            local at = tonumber(log:match("at=(%d+%.%d+)"))
            assert.is_true(at >= before - 0.01 and at <= before + 5, tostring(at))
        end)
        f.quit()
        assert(ok, why)
    end)

    it("asks a shard that is behind for records at most 5 times a second, and never more than 8 calls at once", function()
        local f = kh.flaky("behind")
        local C = require("streamhost.ffi").C
        local ok, why = pcall(function()
            local got = 0
            local ssc = helpers.ssc(0.2)
            local d = sh.KinesisUtils.createStream(ssc, "behind-app", "behind", f.endpoint, "us-east-1",
                sh.InitialPositionInStream.TRIM_HORIZON, 1, nil, "AKIDBEHIND", "secret")
            d:foreachRDD(function(rdd) got = got + rdd:count() end)
            local function calls(shard)
                local n = 0
                for _ in f.log():gmatch(string.format("GetRecords signed it=new%%-shardId%%-%012d limit=10000 inflight=%%d+\n", shard)) do
                    n = n + 1
                end
                return n
            end
            local function all_asked(times)
                for shard = 0, 11 do if calls(shard) < times then return false end end
                return true
            end
            local t0 = C.sh_ffi_now()
            ssc:start()
            helpers.wait_for(ssc, function() return all_asked(6) end, 30)
            ssc:stop(false, false)
            local elapsed = C.sh_ffi_now() - t0
            assert.is_true(all_asked(6))
            -- Every call of a shard waits 200 ms after the one before: over `elapsed` seconds
            -- no shard can have had more than elapsed / 0.2 + 1 (the answers say the reader
            -- is behind, so without the limit it would ask again at once).
            for shard = 0, 11 do
                local n = calls(shard)
                assert.is_true(n <= elapsed / 0.2 + 1, string.format("shard %d: %d GetRecords in %.2f s", shard, n, elapsed))
            end
            -- 12 shards, each answer 100 ms late: never more than 8 GetRecords at once.
            local most = 0
            for n in f.log():gmatch("inflight=(%d+)") do most = math.max(most, tonumber(n)) end
            assert.is_true(most >= 1 and most <= 8, "GetRecords at once: " .. most)
            assert.is_true(got >= 1)
            assert.is_nil(f.log():find("unsigned"))
        end)
        f.quit()
        assert(ok, why)
    end)
end)
