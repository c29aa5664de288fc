-- spec/integration/flume_recovery_spec.lua: with the write-ahead log, an event the Avro source
-- answered OK survives a crash: a python3-avro client (scripts/peers/flume_client.py, mode
-- resilient: it sends a call again until it is answered OK, reconnecting as a Flume agent does)
-- pushes 3000 events to spec/jobs/flume_recoverable.lua, which is killed with SIGKILL 3 times
-- and recovered with getOrCreate; every event ends up in the saved outputs.
local helpers = require "spec.helpers"

local JOB = "spec/jobs/flume_recoverable.lua"
local C = require("streamhost.ffi").C
local N = 3000

local q = helpers.q

local wait_until = helpers.wait_until

-- Event id -> how many times it is in the saved outputs, and how many outputs are incomplete.
local function read_events(dir)
    local seen, incomplete = {}, 0
    for _, name in ipairs(helpers.glob(dir .. "/out", "^events%-%d+$")) do
        local path = dir .. "/out/" .. name
        if not helpers.read_file(path .. "/_SUCCESS") then incomplete = incomplete + 1 end
        for _, part in ipairs(helpers.glob(path, "^part%-")) do
            for id in (helpers.read_file(path .. "/" .. part) or ""):gmatch("e(%d+)\n") do
                seen[tonumber(id)] = (seen[tonumber(id)] or 0) + 1
            end
        end
    end
    return seen, incomplete
end

local function acked(client_out)
    local n = 0
    for k in (helpers.read_file(client_out) or ""):gmatch("OK (%d+)") do n = math.max(n, tonumber(k)) end
    return n
end

describe("Flume push stream recovery (write-ahead log)", function()
    it("loses no event answered OK across 3 SIGKILLs", function()
        local dir = helpers.tmpdir()
        os.execute("mkdir -p " .. q(dir .. "/out"))
        local p = io.popen([[/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])']])
        local port = tonumber(p:read("*a"))
        p:close()
        local client_out = dir .. "/client"
        p = io.popen(string.format("/usr/bin/python3 scripts/peers/flume_client.py --mode resilient --port %d --events %d --batch 100 >%s 2>&1 & echo $!",
            port, N, q(client_out)))
        local client_pid = tonumber(p:read("*a"):match("%d+"))
        p:close()
        local ok, why = pcall(function()
            local args = q(dir) .. " " .. port
            for round = 1, 3 do
                local before = acked(client_out)
                local h = helpers.spawn(JOB, args)
                -- The client's calls are answered again (a few since this run started): kill it.
                local progressed = wait_until(function() return acked(client_out) >= before + 300 end, 30)
                h.signal("KILL")
                local rc = h.exited(20)
                local err = helpers.read_file(h.dir .. "/err") or ""
                h.finish()
                assert(progressed, "round " .. round .. ": no call answered: " .. err .. (helpers.read_file(client_out) or ""))
                assert.are.equal(137, rc, err)
                if round > 1 then assert.matches("recovering from", err) end
            end
            -- The last run goes on until the client is done and every event is saved.
            local h = helpers.spawn(JOB, args)
            local function all_saved()
                local seen = read_events(dir)
                for i = 0, N - 1 do if not seen[i] then return false end end
                return true
            end
            local done = wait_until(function()
                return (helpers.read_file(client_out) or ""):find("DONE " .. N) ~= nil and all_saved()
            end, 60)
            h.signal("TERM")
            h.exited(20)
            local err = helpers.read_file(h.dir .. "/err") or ""
            h.finish()
            local seen = read_events(dir)
            local missing = {}
            for i = 0, N - 1 do if not seen[i] then missing[#missing + 1] = i end end
            assert(done, "not every event was saved; missing: " .. table.concat(missing, " ", 1, math.min(#missing, 20))
                .. "\n" .. err .. (helpers.read_file(client_out) or ""):sub(-300))
            assert.are.same({}, missing)
        end)
        os.execute("kill " .. client_pid .. " 2>/dev/null")
        os.execute("rm -rf " .. q(dir))
        assert(ok, why)
    end)
end)
