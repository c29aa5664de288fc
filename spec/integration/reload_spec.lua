-- spec/integration/reload_spec.lua: hot reload of a running job (the host as a subprocess, fed
-- by a line server): --watch and SIGHUP, nothing lost or doubled across 20 reloads, state
-- carried by name and by position, broken scripts rejected with the old job and its state
-- going on, the refusal to drop state and --reload-drop-state, checkpoints after a reload, and
-- --recover-new-script.
local helpers = require "spec.helpers"

local JOBS = "spec/jobs/reload/"

-- Variants of the "a" jobs (counter_a.lua, ck_a.lua), made from their text: "b" has other
-- functions and the same graph; "failing" raises in every batch's output.
local VARIANTS = {
    ["counter_b.lua"] = { "counter_a.lua", "b" },
    ["ck_b.lua"] = { "ck_a.lua", "b" },
    ["failing.lua"] = { "counter_a.lua", "failing" },
}

local function job_text(src)
    local v = VARIANTS[src]
    if not v then return helpers.read_file(JOBS .. src) end
    local text = helpers.read_file(JOBS .. v[1])
    if v[2] == "failing" then
        return (text:gsub('local f = assert%(io%.open%(arg%[3%] %.%. "%.tmp", "w"%)%)', 'error("boom in the new job")', 1))
    end
    return (text:gsub('f:write%("a "', 'f:write("b "'):gsub('return { "n", 1 }', 'return { "n", 2 - 1 }'))
end

-- Puts a job's text at `path` in one step (a rename over it, as editors save).
local function install(src, path)
    helpers.write_file(path .. ".new", job_text(src))
    assert(os.rename(path .. ".new", path))
end

-- A host running counter_a from a copy in its own directory, fed by a fresh line server.
local function start(options)
    local dir = helpers.tmpdir()
    local peer = helpers.line_server()
    local job = dir .. "/job.lua"
    install("counter_a.lua", job)
    local h = helpers.spawn((options or "") .. " " .. job,
        string.format("%d %s/ck %s/out", peer.port, dir, dir))
    peer:cmd("accept")
    return { dir = dir, job = job, peer = peer, h = h }
end

local function stop(run)
    run.h.signal("TERM")
    run.h.exited(30)
    run.peer:quit()
    local err = helpers.read_file(run.h.dir .. "/err") or ""
    run.h.finish()
    os.execute("rm -rf '" .. run.dir .. "'")
    return err
end

-- The job's last line: version, total lines, lines counted per word; nil before the first.
local function state(run)
    local s = helpers.read_file(run.dir .. "/out") or ""
    local v, n, w = s:match("^(%a) (%d+) (%d+)")
    return v, tonumber(n), tonumber(w)
end

-- Waits (20 s at most) until the job's output satisfies cond(version, total, words).
local function wait_out(run, cond, seconds)
    local C = require("streamhost.ffi").C
    local deadline = C.sh_ffi_now() + (seconds or 20)
    repeat
        local v, n, w = state(run)
        if v and cond(v, n, w) then return v, n, w end
        helpers.sleep(0.02)
    until C.sh_ffi_now() > deadline
    return state(run)
end

local function count(s, pattern)
    local n = 0
    for _ in s:gmatch(pattern) do n = n + 1 end
    return n
end

describe("hot reload", function()
    it("takes 20 reloads alternating two scripts under steady input: every line counted once, state by name and position", function()
        local run = start("--watch")
        local ok, err = pcall(function()
            assert.are.equal("a", (wait_out(run, function(v) return v == "a" end)))
            run.peer:cmd("pace 4000 2 word")
            for i = 1, 20 do
                local want = i % 2 == 1 and "b" or "a"
                local src = want == "b" and "counter_b.lua" or "counter_a.lua"
                if i % 5 == 0 then  -- a write in place, as some editors save
                    helpers.write_file(run.job, job_text(src))
                else
                    install(src, run.job)
                end
                local v = wait_out(run, function(v) return v == want end)
                assert.are.equal(want, v, "reload " .. i)
            end
            local v, n, w = wait_out(run, function(_, n) return n >= 4000 end, 60)
            assert.are.equal("a", v)
            -- Nothing lost, nothing doubled: the named state ("total") and the unnamed one
            -- (matched by position) both hold every line exactly once.
            assert.are.equal(4000, n)
            assert.are.equal(4000, w)
            helpers.sleep(0.3)  -- no late doubles either
            assert.are.same({ "a", 4000, 4000 }, { state(run) })
        end)
        local stderr = stop(run)
        assert(ok, err)
        assert.are.equal(20, count(stderr, "reload %d+ of [^\n]* taken"), stderr)
        assert.truthy(stderr:find("kept: SocketReceiver%(127%.0%.0%.1:%d+%), state 'total', state of stream 5"), stderr)
        assert.falsy(stderr:find("rejected"), stderr)
    end)

    it("rejects a syntax error, a graph error and a failing first batch; the old job and its state go on", function()
        local run = start()
        local ok, err = pcall(function()
            run.peer:cmd("pace 100000 5 word")
            local _, n0 = wait_out(run, function(v, n) return v == "a" and n > 20 end)
            helpers.write_file(run.job, "local sh = require 'streamhost'\nlocal x = = 1\n")
            run.h.signal("HUP")
            assert.truthy(run.h.wait("err", "job%.lua:2: unexpected symbol"))
            -- The new script starts from a fresh state's globals: the old script's are not there.
            helpers.write_file(run.job, "assert(RELOAD_SPEC_OLD_GLOBAL == nil, 'the old script global is visible')\n")
            run.h.signal("HUP")
            assert.truthy(run.h.wait("err", "returned without starting a StreamingContext"))
            assert.is_nil((helpers.read_file(run.h.dir .. "/err") or ""):find("old script global is visible", 1, true))
            install("broken_graph.lua", run.job)
            run.h.signal("HUP")
            assert.truthy(run.h.wait("err", "rejected, the old job goes on: [^\n]*job%.lua:7: map expects a function"))
            local _, n1 = wait_out(run, function(v, n) return v == "a" and n > n0 + 20 end)
            assert.truthy(n1 > n0 + 20)
            install("failing.lua", run.job)
            run.h.signal("HUP")
            assert.truthy(run.h.wait("err", "first batch failed, the old job is back: [^\n]*boom in the new job", 20))
            -- The old job is back with its state: it goes on counting from where it was.
            local v, n2, w2 = wait_out(run, function(v, n) return v == "a" and n > n1 + 40 end)
            assert.are.equal("a", v)
            assert.truthy(n2 > n1 + 40)
            assert.truthy(w2 > n1 + 40)
        end)
        local stderr = stop(run)
        assert(ok, tostring(err) .. "\n" .. stderr)
        assert.are.equal(4, count(stderr, "rejected"), stderr)
    end)

    it("refuses a reload that drops state, naming the streams, unless --reload-drop-state", function()
        local run = start()
        local ok, err = pcall(function()
            run.peer:cmd("pace 100000 5 word")
            wait_out(run, function(v, n) return v == "a" and n > 10 end)
            install("stateless.lua", run.job)
            run.h.signal("HUP")
            assert.truthy(run.h.wait("err", "would drop the state of 'total' %(stream 3, updateStateByKey%), unnamed %(stream 5, updateStateByKey%)"))
            assert.truthy(run.h.wait("err", "%-%-reload%-drop%-state"))
            local _, n = state(run)
            assert.are.equal("a", (wait_out(run, function(v, m) return v == "a" and m > n + 10 end)))
        end)
        local stderr = stop(run)
        assert(ok, tostring(err) .. "\n" .. stderr)

        run = start("--reload-drop-state")
        ok, err = pcall(function()
            run.peer:cmd("pace 100000 5 word")
            wait_out(run, function(v, n) return v == "a" and n > 10 end)
            install("stateless.lua", run.job)
            run.h.signal("HUP")
            assert.are.equal("c", (wait_out(run, function(v) return v == "c" end)))
        end)
        stderr = stop(run)
        assert(ok, tostring(err) .. "\n" .. stderr)
        assert.truthy(stderr:find("reload 1 of [^\n]* taken"), stderr)
    end)

    it("checkpoints written after a reload recover the new job; --recover-new-script takes the checkpoint's state into a changed script", function()
        local dir = helpers.tmpdir()
        local job, args = dir .. "/job.lua", nil
        local peer = helpers.line_server()
        local port = peer.port
        args = string.format("%d %s/ck %s/out", port, dir, dir)
        local run = { dir = dir }
        local h, stderr
        local ok, err = pcall(function()
            install("ck_a.lua", job)
            h = helpers.spawn(job, args)
            peer:cmd("accept")
            peer:cmd("pace 100000 5 word")
            wait_out(run, function(v, n) return v == "a" and n > 20 end)
            install("ck_b.lua", job)
            h.signal("HUP")
            local _, n_b = wait_out(run, function(v) return v == "b" end)
            wait_out(run, function(v, n) return v == "b" and n > n_b + 150 end)  -- state files of b's
            -- Kills the host and its peer; starts them again (with `options`) on the same port.
            local function restart(options)
                h.signal("KILL")
                h.exited(30)
                stderr = helpers.read_file(h.dir .. "/err") or ""
                h.finish()
                peer:quit()
                os.remove(dir .. "/out")
                peer = helpers.line_server(port)
                h = helpers.spawn((options or "") .. " " .. job, args)
                peer:cmd("accept")
                peer:cmd("pace 100000 5 word")
            end
            -- The file is b's, as the checkpoint's script: b comes back with its state.
            restart()
            assert.truthy(stderr:find("reload 1 of [^\n]* taken"), stderr)
            local v, n = wait_out(run, function(v, n) return v == "b" and n > n_b end)
            assert.are.equal("b", v)
            assert.truthy(n > n_b, "recovered total " .. tostring(n) .. " after " .. n_b)
            -- Now the file is a's: with --recover-new-script, a takes the state over.
            install("ck_a.lua", job)
            restart("--recover-new-script")
            assert.falsy(stderr:find("differs from the script"), stderr)
            v, n = wait_out(run, function(v) return v == "a" end)
            assert.are.equal("a", v)
            assert.truthy(n > n_b, "taken-over total " .. tostring(n) .. " after " .. n_b)
            stderr = h.wait("err", "reload 1 of [^\n]* taken[^\n]*state 'total'") or helpers.read_file(h.dir .. "/err")
            assert.truthy(stderr:find("recovering the checkpointed job, then reloading the script into it"), stderr)
            assert.truthy(stderr:find("reload 1 of [^\n]* taken[^\n]*state 'total'"), stderr)
        end)
        if h then h.signal("TERM"); h.exited(30); h.finish() end
        peer:quit()
        os.execute("rm -rf '" .. dir .. "'")
        assert(ok, err)
    end)
end)
