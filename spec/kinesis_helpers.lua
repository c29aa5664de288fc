-- spec/kinesis_helpers.lua: the Kinesis specs' peer: kinesalite (scripts/peers/kinesalite,
-- installed by scripts/setup) on a free port of 127.0.0.1, and botocore as its client
-- (scripts/peers/kinesis_client.py) to create streams, put records and split shards.
local helpers = require "spec.helpers"

local M = {}

local q = helpers.q
M.q = q

-- Starts kinesalite; returns k with .endpoint, :run(cmd...) (a kinesis_client.py command: its
-- output, raising on failure), :put(stream, records) (records: { {key, data}, ... }) and quit().
function M.kinesalite()
    local C = require("streamhost.ffi").C
    local out = os.tmpname()
    local pidfile = out .. ".pid"
    local pipe = assert(io.popen(string.format(
        "echo $$ > %s; exec node scripts/peers/kinesalite/serve.js --createStreamMs 0 --deleteStreamMs 0 --updateStreamMs 0 --shardLimit 100 > %s 2>&1",
        pidfile, out), "w"))
    local k = {}
    local deadline = C.sh_ffi_now() + 20
    local port
    repeat
        port = tonumber((helpers.read_file(out) or ""):match("port (%d+)"))
        if not port then helpers.sleep(0.02) end
    until port or C.sh_ffi_now() > deadline
    k.pid = tonumber((helpers.read_file(pidfile) or ""):match("%d+"))
    os.remove(pidfile)
    function k.quit()
        if not pipe then return end
        if k.pid then os.execute("kill " .. k.pid .. " 2>/dev/null") end
        pcall(pipe.close, pipe)
        pipe = nil
        os.remove(out)
    end
    if not port then
        local text = helpers.read_file(out) or ""
        k.quit()
        error("kinesalite did not start (run scripts/setup): " .. text, 2)
    end
    k.port = port
    k.endpoint = "http://127.0.0.1:" .. port
    function k.run(_, ...)
        local args = {}
        for i, a in ipairs({ ... }) do args[i] = q(a) end
        local p = assert(io.popen("python3 scripts/peers/kinesis_client.py " .. k.endpoint .. " "
            .. table.concat(args, " ") .. " 2>&1; echo \"rc=$?\"", "r"))
        local text = p:read("*a")
        p:close()
        local body, rc = text:match("^(.-)rc=(%d+)%s*$")
        if rc ~= "0" then error("kinesis_client " .. table.concat(args, " ") .. ": " .. text, 2) end
        return body
    end
    function k.put(_, stream, records)
        local file = os.tmpname()
        local lines = {}
        for i, r in ipairs(records) do lines[i] = r[1] .. "\t" .. r[2] end
        helpers.write_file(file, table.concat(lines, "\n") .. "\n")
        local ok, res = pcall(k.run, k, "put", stream, file)
        os.remove(file)
        if not ok then error(res, 2) end
        return res
    end
    return k
end

-- Starts scripts/peers/kinesis_flaky.py (a Kinesis endpoint that fails on a script; mode
-- "describe": one without ListShards that lists with DescribeStream; "latest-expires": the
-- first iterator expires at once); returns
-- f with .endpoint, log() (its request lines so far) and quit().
function M.flaky(mode)
    local C = require("streamhost.ffi").C
    local out = os.tmpname()
    local pidfile = out .. ".pid"
    local pipe = assert(io.popen(string.format("echo $$ > %s; exec python3 scripts/peers/kinesis_flaky.py %s > %s 2>&1",
        pidfile, mode and ("--" .. mode) or "", out), "w"))
    local f = {}
    local deadline = C.sh_ffi_now() + 10
    local port
    repeat
        port = tonumber((helpers.read_file(out) or ""):match("port (%d+)"))
        if not port then helpers.sleep(0.02) end
    until port or C.sh_ffi_now() > deadline
    f.pid = tonumber((helpers.read_file(pidfile) or ""):match("%d+"))
    os.remove(pidfile)
    function f.log() return helpers.read_file(out) or "" end
    function f.quit()
        if not pipe then return end
        if f.pid then os.execute("kill " .. f.pid .. " 2>/dev/null") end
        pcall(pipe.close, pipe)
        pipe = nil
        os.remove(out)
    end
    if not port then
        local text = f.log()
        f.quit()
        error("kinesis_flaky.py did not start: " .. text, 2)
    end
    f.endpoint = "http://127.0.0.1:" .. port
    return f
end

return M
