-- spec/integration/cli_spec.lua: the host/streamhost executable as a subprocess: options, exit
-- statuses, errors naming the script file and line, `arg`, and SIGINT stopping a job gracefully.
local helpers = require "spec.helpers"

local HOST = os.getenv("STREAMHOST") or "host/streamhost"

local q = helpers.q

-- Runs the host with `args` (a shell-quoted string); returns exit status, stdout, stderr.
local function run(args)
    local dir = helpers.tmpdir()
    local p = assert(io.popen(string.format("timeout 30 %s %s >%s/out 2>%s/err </dev/null; echo $?",
        HOST, args, dir, dir), "r"))
    local status = tonumber(p:read("*a"):match("%d+"))
    p:close()
    local out, err = helpers.read_file(dir .. "/out"), helpers.read_file(dir .. "/err")
    os.execute("rm -rf " .. q(dir))
    return status, out, err
end

-- Writes a job script into a fresh directory; returns its path.
local function job(text)
    local path = helpers.tmpdir() .. "/job.lua"
    helpers.write_file(path, text)
    return path
end

describe("streamhost executable", function()
    it("prints usage for --help and exits 0", function()
        local status, out = run("--help")
        assert.are.equal(0, status)
        assert.matches("^usage: streamhost %[%-%-master local%[N%]%] %[%-%-ui %[ADDR:%]PORT%] JOB.lua", out)
    end)

    it("exits non-zero naming a --ui value that is not [ADDR:]PORT", function()
        local status, _, err = run("--ui=127.0.0.1:http x.lua")
        assert.are.equal(2, status)
        assert.matches("--ui '127.0.0.1:http': expected [ADDR:]PORT", err, 1, true)
        status, _, err = run("--ui=70000 x.lua")
        assert.are.equal(2, status)
        assert.matches("--ui '70000'", err, 1, true)
    end)

    it("exits non-zero naming the address when the status page's port is taken", function()
        local peer = helpers.line_server()
        local status, _, err = run(string.format("--ui 127.0.0.1:%d examples/queue_stream.lua", peer.port))
        peer:quit()
        assert.are_not.equal(0, status)
        assert.matches(string.format("status server 127.0.0.1:%d: cannot listen: address already in use", peer.port),
            err, 1, true)
    end)

    it("prints its version for --version and exits 0", function()
        local status, out = run("--version")
        assert.are.equal(0, status)
        assert.matches("^streamhost %d+%.%d+%.%d+\n$", out)
    end)

    it("exits non-zero with the usage when no script is given", function()
        local status, out, err = run("")
        assert.are_not.equal(0, status)
        assert.are.equal("", out)
        assert.matches("no job script given", err)
        assert.matches("usage: streamhost", err)
    end)

    it("exits non-zero naming an unknown option", function()
        local status, _, err = run("--frobnicate x.lua")
        assert.are_not.equal(0, status)
        assert.matches("unknown option '%-%-frobnicate'", err)
    end)

    it("exits non-zero naming a script that does not exist", function()
        local status, _, err = run("/nonexistent/job.lua")
        assert.are_not.equal(0, status)
        assert.matches("/nonexistent/job.lua", err, 1, true)
    end)

    it("reports a syntax error with the script's file and line", function()
        local path = job("local x = 1\nlocal y = = 2\n")
        local status, _, err = run(q(path))
        assert.are_not.equal(0, status)
        assert.matches(path .. ":2:", err, 1, true)
    end)

    it("reports an error the script raises with its file and line", function()
        local path = job("local sh = require 'streamhost'\n\nerror('job failed on purpose')\n")
        local status, _, err = run(q(path))
        assert.are_not.equal(0, status)
        assert.matches(path .. ":3: job failed on purpose", err, 1, true)
    end)

    it("reports an error in a worker function of a streaming job with its file and line", function()
        local path = job([[
local sh = require "streamhost"
local ssc = sh.StreamingContext(sh.SparkContext.getOrCreate(), 0.05)
ssc:queueStream({ { 1, 2 } }):map(function(x)
    error("cannot map " .. x)
end):pprint()
ssc:start()
ssc:awaitTermination()
]])
        local status, _, err = run(q(path))
        assert.are_not.equal(0, status)
        assert.matches(path .. ":4: cannot map %d", err)
    end)

    it("hands the arguments to the script as `arg`", function()
        local path = job("io.write(arg[0], '|', arg[1], '|', arg[2], '|', #arg, '\\n')\n")
        local status, out = run(q(path) .. " first 'second arg'")
        assert.are.equal(0, status)
        assert.are.equal(path .. "|first|second arg|2\n", out)
    end)

    it("exits 0 when the job stops itself", function()
        local path = job([[
local sh = require "streamhost"
local ssc = sh.StreamingContext(sh.SparkContext.getOrCreate(), 0.05)
local n = 0
ssc:queueStream({ { "a" }, { "b" }, { "c" } }):foreachRDD(function(rdd)
    n = n + 1
    io.write(table.concat(rdd:collect(), ","), "\n")
    if n == 3 then ssc:stop() end
end)
ssc:start()
ssc:awaitTermination()
io.write("done\n")
]])
        local status, out, err = run(q(path))
        assert.are.equal(0, status, err)
        assert.are.equal("a\nb\nc\ndone\n", out)
    end)

    it("stops a running job gracefully on SIGINT and exits 0", function()
        local path = job([[
local sh = require "streamhost"
io.stdout:setvbuf("no")
local ssc = sh.StreamingContext(sh.SparkContext.getOrCreate(), 0.05)
ssc:queueStream({}, true, { 1 }):foreachRDD(function(rdd) io.write("batch ", rdd:count(), "\n") end)
ssc:start()
ssc:awaitTermination()
io.write("stopped\n")
]])
        local dir = helpers.tmpdir()
        os.execute(string.format("(timeout 30 %s %s >%s/out 2>%s/err </dev/null & echo $! >%s/pid; wait $!; echo $? >%s/rc) &",
            HOST, q(path), dir, dir, dir, dir))
        local function wait_file(name, pattern)
            for _ = 1, 200 do
                local s = helpers.read_file(dir .. "/" .. name)
                if s and s:find(pattern) then return s end
                helpers.sleep(0.025)
            end
        end
        assert.is_truthy(wait_file("out", "batch 1\n"), "the job never ran a batch")
        local pid = assert(tonumber(wait_file("pid", "%d+"):match("%d+")))
        -- `timeout` forwards the signal to the host it runs.
        assert.are.equal(0, os.execute("kill -INT " .. pid))
        local rc = wait_file("rc", "%d+")
        local out, err = helpers.read_file(dir .. "/out"), helpers.read_file(dir .. "/err")
        os.execute("rm -rf " .. q(dir))
        assert.is_truthy(rc, "the job did not stop within 5 s of SIGINT")
        assert.are.equal(0, tonumber(rc:match("%d+")), err)
        assert.matches("batch 1\nstopped\n$", out)
    end)

    it("gives the script's SparkContext the --master parallelism", function()
        local path = job([[
local sh = require "streamhost"
io.write(sh.SparkContext.getOrCreate().defaultParallelism, "\n")
]])
        local status, out = run("--master 'local[3]' " .. q(path))
        assert.are.equal(0, status)
        assert.are.equal("3\n", out)
        status, out = run("--master=local " .. q(path))
        assert.are.equal(0, status)
        assert.are.equal("1\n", out)
    end)

    it("refuses a bad --master with a clear error", function()
        local path = job("io.write('ran\\n')\n")
        for _, m in ipairs({ "yarn", "local[0]", "local[x]", "local[2" }) do
            local status, out, err = run("--master " .. q(m) .. " " .. q(path))
            assert.are_not.equal(0, status, m)
            assert.are.equal("", out, m)
            assert.matches("invalid master '" .. m:gsub("%p", "%%%0") .. "': expected local, local%[N%] or local%[%*%]", err)
        end
    end)

    it("refuses --master without a value", function()
        local status, _, err = run("--master")
        assert.are_not.equal(0, status)
        assert.matches("%-%-master needs a value", err)
    end)
end)

describe("streamhost executable and signals", function()
    local function spawn(path, arg1)
        return helpers.spawn(path, arg1)
    end

    local slow_job = [[
local sh = require "streamhost"
io.stdout:setvbuf("no")
local ssc = sh.StreamingContext(sh.SparkContext.getOrCreate(), 0.1)
local work = tonumber(arg[1] or "0")
ssc:queueStream({}, true, { 1 }):foreachRDD(function(rdd)
    rdd:map(function(x)  -- each batch keeps a worker busy `work` seconds
        local C = require("streamhost.ffi").C
        local t0 = C.sh_ffi_now()
        while C.sh_ffi_now() - t0 < work do end
        return x
    end):count()
    io.write("batch\n")
end)
ssc:start()
ssc:awaitTermination()
io.write("stopped\n")
]]

    it("stops gracefully under `timeout -s INT` and exits 0", function()
        local path = job(slow_job)
        local status, out, err
        local dir = helpers.tmpdir()
        local p = assert(io.popen(string.format("timeout --preserve-status -s INT 1 %s %s >%s/out 2>%s/err </dev/null; echo $?",
            HOST, q(path), dir, dir), "r"))
        status = tonumber(p:read("*a"):match("%d+"))
        p:close()
        out, err = helpers.read_file(dir .. "/out"), helpers.read_file(dir .. "/err")
        os.execute("rm -rf " .. q(dir))
        assert.are.equal(0, status, err)
        assert.matches("batch\nstopped\n$", out)
    end)

    it("takes one SIGINT delivered twice in quick succession as one graceful stop", function()
        local h = spawn(job(slow_job))
        local ok, err = pcall(function()
            assert.is_truthy(h.wait("out", "batch\n"), "the job never ran a batch")
            h.signal("INT")
            h.signal("INT")
            local rc = h.wait("rc", "%d+", 10)
            assert.is_truthy(rc, "the job did not stop within 10 s")
            assert.are.equal(0, tonumber(rc:match("%d+")), helpers.read_file(h.dir .. "/err"))
            assert.matches("stopped\n$", helpers.read_file(h.dir .. "/out"))
        end)
        h.finish()
        if not ok then error(err, 0) end
    end)

    it("sees SIGINT while batches are behind and stops within the graceful timeout", function()
        local path = job(slow_job)
        local h = spawn(path, "0.3")  -- every batch of 0.1 s takes 0.3 s
        local ok, err = pcall(function()
            assert.is_truthy(h.wait("out", "batch\nbatch\n"), "the job never ran two batches")
            local t0 = os.time()
            h.signal("INT")
            local rc = h.wait("rc", "%d+", 10)
            assert.is_truthy(rc, "the job did not stop within 10 s of SIGINT while behind")
            assert.is_true(os.time() - t0 <= 6)
            assert.are.equal(0, tonumber(rc:match("%d+")), helpers.read_file(h.dir .. "/err"))
            assert.matches("stopped\n$", helpers.read_file(h.dir .. "/out"))
        end)
        h.finish()
        if not ok then error(err, 0) end
    end)

    it("ends the process at once on a second signal more than a second after the first", function()
        local path = job(slow_job)
        local h = spawn(path, "30")  -- a batch that would take 30 s
        local ok, err = pcall(function()
            assert.is_truthy(h.wait("err", "", 5))
            helpers.sleep(0.5)  -- the first batch is running
            h.signal("INT")
            helpers.sleep(1.3)
            assert.is_falsy(helpers.read_file(h.dir .. "/rc"), "the first signal ended the job at once")
            h.signal("INT")
            local rc = h.wait("rc", "%d+", 5)
            assert.is_truthy(rc, "the second signal did not end the process")
            assert.are.equal(130, tonumber(rc:match("%d+")))
            assert.matches("second signal", helpers.read_file(h.dir .. "/err"))
        end)
        h.finish()
        if not ok then error(err, 0) end
    end)
end)
