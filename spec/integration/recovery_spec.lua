-- spec/integration/recovery_spec.lua: checkpoints and recovery across real process deaths: a
-- word count over textFileStream (spec/jobs/recoverable_wordcount.lua) killed with SIGKILL at
-- a dozen moments (starting up, mid-batch, mid-checkpoint-write, between batches) and restarted
-- with getOrCreate each time ends with the state and the output directories of an
-- uninterrupted run; the socket receiver's write-ahead log keeps the lines of a batch that a
-- kill interrupted.
local helpers = require "spec.helpers"

local JOB = "spec/jobs/recoverable_wordcount.lua"
local C = require("streamhost.ffi").C

local q = helpers.q

-- Input files: n files of 4 lines of words from a vocabulary of 23, deterministic.
local function make_inputs(n)
    local texts, totals, seed = {}, {}, 7
    for i = 1, n do
        local lines = {}
        for l = 1, 4 do
            local ws = {}
            for w = 1, 1 + (i + l) % 5 do
                seed = (seed * 1103515245 + 12345) % 2147483648
                local word = "w" .. (seed % 23)
                ws[w] = word
                totals[word] = (totals[word] or 0) + 1
            end
            lines[l] = table.concat(ws, " ")
        end
        texts[i] = table.concat(lines, "\n") .. "\n"
    end
    return texts, totals
end

-- Drops input file i into dir/in whole (written under a dot name, then renamed).
local function drop(dir, texts, i)
    local tmp = string.format("%s/in/.f%03d", dir, i)
    helpers.write_file(tmp, texts[i])
    assert(os.rename(tmp, string.format("%s/in/f%03d", dir, i)))
end

-- The state file: its batch time and counts (nil when it is not there yet).
local function read_state(dir)
    local s = helpers.read_file(dir .. "/state")
    if s == nil then return nil end
    local t = tonumber(s:match("^time (%d+)"))
    local counts = {}
    for w, n in s:gmatch("\n(%S+) (%d+)") do counts[w] = tonumber(n) end
    return t, counts
end

local function show(counts)
    local keys = {}
    for k in pairs(counts or {}) do keys[#keys + 1] = k end
    table.sort(keys)
    local out = {}
    for i, k in ipairs(keys) do out[i] = k .. "=" .. counts[k] end
    return table.concat(out, " ")
end

-- Waits until cond() holds or `seconds` pass; returns cond().
local wait_until = helpers.wait_until

local function same_counts(a, b)
    for k, v in pairs(a) do if b[k] ~= v then return false end end
    for k, v in pairs(b) do if a[k] ~= v then return false end end
    return true
end

-- The output directories: their batch times in order, the words counted in all of them, and
-- the names of those that are not complete.
local function read_outputs(dir) return helpers.saved_counts(dir .. "/out") end

-- Whether the batch times follow each other every 200 ms, none missing, none twice.
local function contiguous(times)
    for i = 2, #times do
        if times[i] - times[i - 1] ~= 200 then return false, times[i - 1] .. " then " .. times[i] end
    end
    return true
end

-- Waits until the job in dir has started (its first checkpoint is written): files there before
-- are not new to it (Spark's newFilesOnly).
local function wait_started(dir)
    local deadline = C.sh_ffi_now() + 15
    while #helpers.glob(dir .. "/cp", "^metadata%-") == 0 and C.sh_ffi_now() < deadline do
        helpers.sleep(0.01)
    end
    assert(#helpers.glob(dir .. "/cp", "^metadata%-") > 0, "the job did not start")
end

-- Runs the job until its state holds `totals`, then stops it with SIGTERM (gracefully);
-- returns the exit status and stderr.
local function run_to_end(dir, totals, feed)
    local h = helpers.spawn(JOB, q(dir) .. " 0")
    if feed then
        wait_started(dir)
        feed()
    end
    local deadline = C.sh_ffi_now() + 40
    repeat
        local _, counts = read_state(dir)
        if counts and same_counts(counts, totals) then break end
        helpers.sleep(0.05)
    until C.sh_ffi_now() > deadline
    h.signal("TERM")
    local rc = h.exited(20)
    local err = helpers.read_file(h.dir .. "/err")
    h.finish()
    return rc, err
end

describe("recovery from a checkpoint", function()
    local NFILES = 26
    local texts, totals = make_inputs(NFILES)

    it("after SIGKILL at 12 moments ends with an uninterrupted run's state and outputs", function()
        -- The uninterrupted run.
        local base = helpers.tmpdir()
        os.execute("mkdir -p " .. q(base .. "/in"))
        local rc, err = run_to_end(base, totals, function()
            for i = 1, NFILES do
                drop(base, texts, i)
                helpers.sleep(0.05)
            end
        end)
        assert.are.equal(0, rc, err)
        local _, base_state = read_state(base)
        local base_times, base_sums, base_incomplete = read_outputs(base)
        assert.is_true(same_counts(totals, base_state), "the uninterrupted run's state")
        assert.is_true(same_counts(totals, base_sums), "the uninterrupted run's outputs")
        assert.are.same({}, base_incomplete)

        -- The killed run: each round starts the job, drops two files, waits for its moment and
        -- kills it (or lets the failpoint kill it mid-write).
        local dir = helpers.tmpdir()
        os.execute("mkdir -p " .. q(dir .. "/in"))
        local next_file = 1
        local function feed(n)
            for _ = 1, n do
                if next_file <= NFILES then
                    drop(dir, texts, next_file)
                    next_file = next_file + 1
                end
            end
        end
        local rounds = {
            { moment = "starting up", after = 0.15 },
            { moment = "mid-batch" },
            { moment = "between batches" },
            { moment = "mid-checkpoint-write", write = 3 },
            { moment = "mid-batch" },
            { moment = "starting up", after = 0.4 },
            { moment = "between batches" },
            { moment = "mid-checkpoint-write", write = 8 },
            { moment = "mid-batch" },
            { moment = "between batches" },
            { moment = "mid-checkpoint-write", write = 14 },
            { moment = "mid-batch" },
        }
        local killed_mid_write = 0
        for r, round in ipairs(rounds) do
            local env = round.write and ("STREAMHOST_FAILPOINT=kill-mid-checkpoint-write:" .. round.write) or nil
            local before = helpers.read_file(dir .. "/running")
            local state_before = helpers.read_file(dir .. "/state")
            local h = helpers.spawn(JOB, q(dir) .. " 0.15", env)
            if r == 1 then wait_started(dir) end
            feed(2)
            local ok, why = pcall(function()
                if round.moment == "starting up" then
                    helpers.sleep(round.after)
                elseif round.moment == "mid-batch" then
                    -- A batch's output has begun (it sleeps 0.15 s before writing the state).
                    assert(wait_until(function() return helpers.read_file(dir .. "/running") ~= before end, 15),
                        "no batch began")
                elseif round.moment == "between batches" then
                    assert(wait_until(function() return helpers.read_file(dir .. "/state") ~= state_before end, 15),
                        "no batch completed")
                end
            end)
            if round.write then
                local status = h.exited(20)
                if status == 137 then
                    killed_mid_write = killed_mid_write + 1
                else
                    ok, why = false, "the failpoint did not kill the host: exit status " .. tostring(status)
                end
            else
                h.signal("KILL")
                local status = h.exited(20)
                if status ~= 137 and ok then
                    ok, why = false, "the host ended before it was killed: exit status " .. tostring(status)
                end
            end
            local err_text = helpers.read_file(h.dir .. "/err") or ""
            h.finish()
            assert(ok, string.format("round %d (%s): %s\n%s", r, round.moment, tostring(why), err_text))
        end
        assert.are.equal(3, killed_mid_write, "the failpoint killed the host mid-write")
        rc, err = run_to_end(dir, totals, function() feed(NFILES) end)
        assert.are.equal(0, rc, err)
        local _, state = read_state(dir)
        local times, sums, incomplete = read_outputs(dir)
        -- The writes the failpoint cut short left temporaries; the next start removed them.
        local p = io.popen("ls -A " .. q(dir .. "/cp"))
        local stale = {}
        for name in p:lines() do if name:find("%.tmp%-") then stale[#stale + 1] = name end end
        p:close()
        if os.getenv("KEEP_RECOVERY_DIRS") then print("kept", base, dir) else os.execute("rm -rf " .. q(base) .. " " .. q(dir)) end
        assert.is_true(same_counts(base_state, state), "the final state: " .. show(state) .. "\nexpected " .. show(base_state) .. "\n" .. tostring(err))
        assert.is_true(same_counts(base_sums, sums), "the words counted in the output directories: " .. show(sums) .. "\nexpected " .. show(base_sums))
        assert.are.same({}, incomplete)
        assert.are.same({}, stale, "temporary files of killed writes are removed")
        assert.is_true(contiguous(base_times))
        local ok, gap = contiguous(times)
        assert.is_true(ok, "output directories every batch, none twice: " .. tostring(gap))
    end)
end)

describe("the receivers' write-ahead log", function()
    -- Words of `lines` lines "<text> <i>" (line_server's pace), added to counts.
    local function add_words(counts, text, lines)
        for i = 1, lines do
            counts[text] = (counts[text] or 0) + 1
            counts[tostring(i)] = (counts[tostring(i)] or 0) + 1
        end
        return counts
    end

    -- Sends 40 lines, kills the host while the batch holding the first of them runs (every
    -- line then sits in a generated batch), restarts it and sends 10 more. Returns the final
    -- state.
    local function kill_while_lines_wait(wal)
        local dir = helpers.tmpdir()
        local peer = helpers.line_server()
        local args = q(dir) .. " %s " .. peer.port
        local h = helpers.spawn(JOB, string.format(args, "1.0"), "WAL=" .. wal)
        local ok, err = pcall(function()
            peer:cmd("accept")
            peer:cmd("pace 40 5 L")
            assert(wait_until(function() return (helpers.read_file(dir .. "/running") or ""):find("^%d+ [1-9]") end, 15),
                "no batch with lines began")
            helpers.sleep(0.6)  -- the rest of the lines are sealed into batches meanwhile
            h.signal("KILL")
            h.exited(20)
            h.finish()
            h = helpers.spawn(JOB, string.format(args, "0"), "WAL=" .. wal)
            peer:cmd("accept")
            peer:cmd("pace 10 5 M")
            local want = wal == "true" and add_words(add_words({}, "L", 40), "M", 10) or add_words({}, "M", 10)
            local deadline = C.sh_ffi_now() + 20
            repeat
                local _, counts = read_state(dir)
                if counts and same_counts(counts, want) then break end
                helpers.sleep(0.05)
            until C.sh_ffi_now() > deadline
            h.signal("TERM")
            h.exited(20)
        end)
        local _, counts = read_state(dir)
        local stderr = helpers.read_file(h.dir .. "/err")
        h.finish()
        peer:quit()
        os.execute("rm -rf " .. q(dir))
        assert(ok, tostring(err) .. "\n" .. tostring(stderr))
        return counts or {}, stderr
    end

    it("keeps every line of the batches a kill interrupted", function()
        local counts, stderr = kill_while_lines_wait("true")
        local want = add_words(add_words({}, "L", 40), "M", 10)
        assert.is_true(same_counts(want, counts), show(counts) .. "\nexpected " .. show(want) .. "\n" .. tostring(stderr))
    end)

    it("without it, loses them (as Spark does)", function()
        local counts = kill_while_lines_wait("false")
        assert.is_nil(counts.L)
        assert.are.equal(10, counts.M)
    end)
end)
