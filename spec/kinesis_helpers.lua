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
    local k, port = helpers.start_peer("kinesalite (run scripts/setup)",
        "node scripts/peers/kinesalite/serve.js --createStreamMs 0 --deleteStreamMs 0 --updateStreamMs 0 --shardLimit 100",
        "port (%d+)", { stderr = true, seconds = 20 })
    port = tonumber(port)
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
    local f, port = helpers.start_peer("kinesis_flaky.py",
        "python3 scripts/peers/kinesis_flaky.py " .. (mode and ("--" .. mode) or ""), "port (%d+)", { stderr = true })
    f.log = f.output
    f.endpoint = "http://127.0.0.1:" .. port
    return f
end

return M
