-- spec/integration/kafka_recovery_spec.lua: exactly once across crashes: a word count over a
-- direct stream of 500k messages (spec/jobs/kafka_recoverable_wordcount.lua, against the mock
-- cluster over TCP) killed with SIGKILL 5 times and recovered with getOrCreate counts every
-- message once: the batches' offset ranges follow each other with no gap or overlap and the
-- saved counts add up to the produced words exactly.
local helpers = require "spec.helpers"

local JOB = "spec/jobs/kafka_recoverable_wordcount.lua"
local C = require("streamhost.ffi").C
local N, PARTITIONS, RATE = 500000, 8, 12500  -- 50k messages a 0.5 s batch: about 10 batches

local q = helpers.q

local wait_until = helpers.wait_until

-- Batch time -> { partition -> {from, until} } of the batches that ran (the latest run of each).
local function read_ranges(dir)
    local out = {}
    for _, name in ipairs(helpers.glob(dir .. "/ranges", "^%d+$")) do
        local r = {}
        for p, f, u in (helpers.read_file(dir .. "/ranges/" .. name) or ""):gmatch("%S+ (%d+) (%d+) (%d+)") do
            r[tonumber(p)] = { tonumber(f), tonumber(u) }
        end
        out[tonumber(name)] = r
    end
    return out
end

-- The words counted in all the batches' saved outputs, and the outputs that are incomplete.
local function read_counts(dir)
    local _, sums, incomplete = helpers.saved_counts(dir .. "/out")
    return sums, incomplete
end
local total = helpers.total

describe("Kafka direct stream recovery", function()
    it("counts 500k messages exactly once across 5 SIGKILLs", function()
        local kafka = helpers.kafka_mock({ "words:" .. PARTITIONS })
        local dir = helpers.tmpdir()
        local ok, why = pcall(function()
            os.execute("mkdir -p " .. q(dir .. "/ranges") .. " " .. q(dir .. "/out"))
            local lines, expected = {}, {}
            for i = 0, N - 1 do
                local a, b = "w" .. i % 23, "x" .. i % 7
                lines[i + 1] = a .. " " .. b
                expected[a] = (expected[a] or 0) + 1
                expected[b] = (expected[b] or 0) + 1
            end
            kafka:produce("words", lines)
            local args = table.concat({ q(dir), kafka.bootstrap, "words", tostring(RATE) }, " ")
            local pauses = { 0, 0.1, 0.3, 0.05, 0.2 }
            for round = 1, 5 do
                local before = 0
                for _ in pairs(read_ranges(dir)) do before = before + 1 end
                local h = helpers.spawn(JOB, args)
                -- A batch or two of this run has written its ranges: kill it a moment later.
                local progressed = wait_until(function()
                    local n = 0
                    for _ in pairs(read_ranges(dir)) do n = n + 1 end
                    return n > before
                end, 30)
                helpers.sleep(pauses[round])
                h.signal("KILL")
                local rc = h.exited(20)
                local err = helpers.read_file(h.dir .. "/err") or ""
                h.finish()
                assert(progressed, "round " .. round .. ": no batch ran: " .. err)
                assert.are.equal(137, rc, err)
                if round > 1 then assert.matches("recovering from", err) end
            end
            -- The last run goes on until every word is counted, then a little longer (a count
            -- past the end would show), and stops.
            local h = helpers.spawn(JOB, args)
            local done = wait_until(function() return total((read_counts(dir))) >= 2 * N end, 60)
            helpers.sleep(1.2)
            h.signal("TERM")
            h.exited(20)
            local err = helpers.read_file(h.dir .. "/err") or ""
            h.finish()
            assert(done, "the counts did not reach " .. 2 * N .. ": " .. total((read_counts(dir))) .. "\n" .. err)
            local sums, incomplete = read_counts(dir)
            assert.are.same({}, incomplete)
            assert.are.same(expected, sums)
            -- Per partition, the batches' ranges follow each other from 0 to the end.
            local times = {}
            for t in pairs(read_ranges(dir)) do times[#times + 1] = t end
            table.sort(times)
            local ranges, at, n = read_ranges(dir), {}, 0
            for _, t in ipairs(times) do
                for p, r in pairs(ranges[t]) do
                    assert.are.equal(at[p] or 0, r[1], "batch " .. t .. " partition " .. p)
                    at[p] = r[2]
                    n = n + r[2] - r[1]
                end
            end
            assert.are.equal(N, n)
        end)
        kafka.quit()
        os.execute("rm -rf " .. q(dir))
        assert(ok, why)
    end)
end)
