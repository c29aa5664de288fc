-- spec/integration/kinesis_recovery_spec.lua: a Kinesis word count (spec/jobs/
-- kinesis_recoverable_wordcount.lua, against kinesalite over HTTP) killed with SIGKILL while
-- records keep coming, and recovered with getOrCreate, counts every record exactly once: the
-- receiver resumes after the shard positions of the batches that completed (and, with the
-- write-ahead log, replays the pending batches from it), and the saved counts add up to the
-- words put, with and without the log. A LATEST shard killed before its first record resumes
-- at the time it started (records put while the host was down are read).
local helpers = require "spec.helpers"
local kh = require "spec.kinesis_helpers"

local JOB = "spec/jobs/kinesis_recoverable_wordcount.lua"
local C = require("streamhost.ffi").C
local q = kh.q
local CHUNK, ROUNDS = 3000, 3

local wait_until = helpers.wait_until

-- The words counted in all the batches' saved outputs, the outputs that are incomplete, and
-- how many there are.
local function read_counts(dir)
    local times, sums, incomplete = helpers.saved_counts(dir .. "/out")
    return sums, incomplete, #times
end
local total = helpers.total

local function scenario(wal)
    local k = kh.kinesalite()
    local dir = helpers.tmpdir()
    local stream = "words"
    local ok, why = pcall(function()
        os.execute("mkdir -p " .. q(dir .. "/out"))
        k:run("create", stream, "3")
        local expected, next_i = {}, 0
        local function put_chunk()
            local recs = {}
            for j = 1, CHUNK do
                local i = next_i
                next_i = next_i + 1
                local a, b = "w" .. i % 23, "x" .. i % 7
                recs[j] = { "pk" .. i % 101, a .. " " .. b }
                expected[a] = (expected[a] or 0) + 1
                expected[b] = (expected[b] or 0) + 1
            end
            k:put(stream, recs)
        end
        local args = table.concat({ q(dir), k.endpoint, stream, wal and "true" or "false" }, " ")
        local env = "AWS_ACCESS_KEY_ID=kinesis-spec AWS_SECRET_ACCESS_KEY=secret"
        local pauses = { 0, 0.3, 0.1 }
        for round = 1, ROUNDS do
            local _, _, before = read_counts(dir)
            local h = helpers.spawn(JOB, args, env)
            -- Records come while it runs; a batch of this run saved its counts: kill it a
            -- moment later.
            put_chunk()
            local progressed = wait_until(function()
                local sums, _, n = read_counts(dir)
                return n > before + 1 and total(sums) > 0
            end, 30)
            helpers.sleep(pauses[round])
            h.signal("KILL")
            local rc = h.exited(20)
            local err = helpers.read_file(h.dir .. "/err") or ""
            h.finish()
            assert(progressed, "round " .. round .. ": no batch ran: " .. err)
            assert.are.equal(137, rc, err)
            if round > 1 then assert.matches("recovering from", err) end
            assert.is_nil(err:find("kinesis%-spec"), "credentials in the log")
        end
        -- Records put while it is down, and after the last start.
        put_chunk()
        local h = helpers.spawn(JOB, args, env)
        put_chunk()
        local want = 2 * next_i
        local done = wait_until(function() return total((read_counts(dir))) >= want end, 40)
        helpers.sleep(1.2)  -- a count past the end would show
        h.signal("TERM")
        h.exited(20)
        local err = helpers.read_file(h.dir .. "/err") or ""
        h.finish()
        assert(done, "the counts did not reach " .. want .. ": " .. total((read_counts(dir))) .. "\n" .. err)
        assert.matches("recovering from", err)
        local sums, incomplete = read_counts(dir)
        assert.are.same({}, incomplete)
        assert.are.same(expected, sums)
        -- No credentials in the checkpoint directory.
        local p = io.popen("grep -rl -e kinesis-spec -e AWS_SECRET " .. q(dir .. "/cp") .. " 2>/dev/null")
        local found = p:read("*a")
        p:close()
        assert.are.equal("", found)
    end)
    k.quit()
    os.execute("rm -rf " .. q(dir))
    assert(ok, why)
end

-- The newest metadata checkpoint's bytes ("" when none).
local function newest_metadata(dir)
    local best, num = nil, -1
    for _, name in ipairs(helpers.glob(dir, "^metadata%-%d+$")) do
        local n = tonumber(name:match("%d+$"))
        if n > num then best, num = name, n end
    end
    return best and (helpers.read_file(dir .. "/" .. best) or "") or ""
end

-- A LATEST stream killed before its shard had any record: the shard's position is the time its
-- first iterator was asked for, and the recovered receiver resumes there (AT_TIMESTAMP): the
-- records put while it was down are counted, the one put before the first start is not.
local function latest_scenario()
    local k = kh.kinesalite()
    local dir = helpers.tmpdir()
    local ok, why = pcall(function()
        os.execute("mkdir -p " .. q(dir .. "/out"))
        k:run("create", "tip", "1")
        k:put("tip", { { "a", "before" } })
        local args = table.concat({ q(dir), k.endpoint, "tip", "false", "LATEST" }, " ")
        local env = "AWS_ACCESS_KEY_ID=kinesis-spec AWS_SECRET_ACCESS_KEY=secret"
        local h = helpers.spawn(JOB, args, env)
        -- The shard's LATEST time is in the completed positions of the newest checkpoint (it
        -- is named there twice: completed and generated).
        local noted = wait_until(function()
            local _, n = newest_metadata(dir .. "/cp"):gsub("shardId%-000000000000", "")
            return n >= 2
        end, 30)
        h.signal("KILL")
        local rc = h.exited(20)
        local err = helpers.read_file(h.dir .. "/err") or ""
        h.finish()
        assert(noted, "no LATEST position was checkpointed: " .. err)
        assert.are.equal(137, rc, err)
        k:put("tip", { { "b", "down down" }, { "c", "down" } })
        h = helpers.spawn(JOB, args, env)
        local done = wait_until(function() return total((read_counts(dir))) >= 3 end, 30)
        h.signal("TERM")
        h.exited(20)
        err = helpers.read_file(h.dir .. "/err") or ""
        h.finish()
        assert(done, "the records put while it was down were not counted: " .. err)
        assert.matches("recovering from", err)
        assert.are.same({ down = 3 }, (read_counts(dir)))
    end)
    k.quit()
    os.execute("rm -rf " .. q(dir))
    assert(ok, why)
end

describe("Kinesis receiver recovery", function()
    it("a LATEST shard that read nothing resumes where it started after a SIGKILL: records put while down are counted", function()
        latest_scenario()
    end)
    it("counts every record once across SIGKILLs, with the write-ahead log", function()
        scenario(true)
    end)
    it("counts every record once across SIGKILLs, without the write-ahead log", function()
        scenario(false)
    end)
end)
