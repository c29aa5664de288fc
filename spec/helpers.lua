-- spec/helpers.lua: shared spec code: one SparkContext for the run, running a stream for a
-- number of batches and collecting each batch's output, sorting, temp dirs and test peers.
local sh = require "streamhost"
local keys = require "streamhost.keys"

local M = {}

-- The run's SparkContext (specs share it, as pyspark's test cases share theirs).
function M.sc()
    local sc = sh.SparkContext._active()
    if sc == nil then sc = sh.SparkContext(nil, "specs") end
    return sc
end

-- A fresh StreamingContext with a short batch interval (a context an earlier spec left
-- running is stopped first, so one failure does not fail every spec after it).
function M.ssc(batch)
    M.stop_active()
    return sh.StreamingContext(M.sc(), batch or 0.05)
end

-- Waits until at least `margin` seconds remain before the next multiple of `interval` seconds
-- of the wall clock (batch times are such multiples): a spec that must see no batch come due
-- for a while starts there.
function M.clear_of_batch_boundary(interval, margin)
    local C = require("streamhost.ffi").C
    local now = C.sh_ffi_now()
    local left = interval - now % interval
    if left < margin then M.sleep(left + 0.05) end
end

-- Sorts an array of records with the keys module's total order (in place), returns it.
function M.sorted(arr)
    table.sort(arr, keys.less)
    return arr
end

-- Registers foreachRDD on stream collecting each batch's records (an array per batch), starts
-- ssc, waits until `batches` batches ran (or `timeout` seconds), stops it and returns the
-- array of batches. With sort, each batch's records are sorted.
function M.collect_batches(ssc, stream, batches, opts)
    opts = opts or {}
    local out = {}
    stream:foreachRDD(function(rdd)
        if #out < batches then
            local recs = rdd:collect()
            if opts.sort ~= false then M.sorted(recs) end
            out[#out + 1] = recs
            -- Stop at the end of this batch: no extra batch runs, however late the loop is.
            if #out == batches then ssc:stop(false, false) end
        end
    end)
    ssc:start()
    local deadline = os.time() + (opts.timeout or 20)
    -- A batch's error is raised here; the context stops whatever happens, so that one failing
    -- spec does not leave a running context behind for the next.
    local ok, err = pcall(function()
        while #out < batches and os.time() < deadline do
            ssc:awaitTerminationOrTimeout(0.05)
        end
    end)
    ssc:stop(false, false)
    if not ok then error(err, 0) end
    return out
end

-- Stops a StreamingContext a failed spec may have left running (for before_each).
function M.stop_active()
    local active = require("streamhost").StreamingContext.getActive()
    if active then active:stop(false) end
end

-- Runs `input` (an array of batches, each an array of records) through f(dstream) and returns
-- the output batches, as pyspark's _test_func does.
function M.run_stream(input, f, nbatches, opts)
    local ssc = M.ssc()
    local stream = ssc:queueStream(input)
    local out = f(stream, ssc)
    return M.collect_batches(ssc, out, nbatches or #input, opts)
end

function M.tmpdir()
    local p = os.tmpname()
    os.remove(p)
    assert(os.execute("mkdir -p " .. p) == 0)
    return p
end

function M.write_file(path, content)
    local f = assert(io.open(path, "wb"))
    f:write(content)
    f:close()
end

function M.read_file(path)
    local f = io.open(path, "rb")
    if not f then return nil end
    local s = f:read("*a")
    f:close()
    return s
end

-- Runs tasks whose sink is "collect" through the scheduler; returns each task's records (an
-- array per task; collect results travel packed with their record count).
function M.run_collect_tasks(sc, tasks)
    local codec = require "streamhost.codec"
    local res = require("streamhost.scheduler").run_tasks(sc, tasks)
    for i, r in ipairs(res) do res[i] = (codec.unpack(r)) end
    return res
end

-- Runs f(w) once on every worker w (tasks pinned by affinity); returns the results in worker
-- order.
function M.on_each_worker(sc, f)
    local id = require("streamhost.ship").ship(f)
    local tasks = {}
    for w = 0, sc.defaultParallelism - 1 do
        tasks[w + 1] = { plan = { op = "map", fn = id, input = { op = "records", records = { w } } },
                         sink = { kind = "collect" }, part = w, affinity = w }
    end
    local out = {}
    for w, r in ipairs(M.run_collect_tasks(sc, tasks)) do out[w] = r[1] end
    return out
end

-- Waits `seconds` while the host's loop keeps turning (receivers read, batches run).
function M.sleep(seconds)
    require("streamhost.loop").sleep(seconds)
end

-- What the batches of a word count saved with saveAsTextFiles(dir .. "/counts") hold: their
-- batch times (sorted), the words counted in all of them ({"word", n} lines summed), and the
-- names of the directories that are not complete (no _SUCCESS).
function M.saved_counts(dir)
    local times, sums, incomplete = {}, {}, {}
    for _, name in ipairs(M.glob(dir, "^counts%-%d+$")) do
        times[#times + 1] = tonumber(name:match("%d+"))
        local path = dir .. "/" .. name
        if not M.read_file(path .. "/_SUCCESS") then incomplete[#incomplete + 1] = name end
        for _, part in ipairs(M.glob(path, "^part%-")) do
            for w, n in (M.read_file(path .. "/" .. part) or ""):gmatch('{"(%S+)", (%d+)}') do
                sums[w] = (sums[w] or 0) + tonumber(n)
            end
        end
    end
    table.sort(times)
    return times, sums, incomplete
end

-- The sum of a table's values (the words in saved_counts' sums).
function M.total(sums)
    local n = 0
    for _, v in pairs(sums) do n = n + v end
    return n
end

-- A string quoted for sh (single quotes).
function M.q(s)
    return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- Polls cond() until it holds or `seconds` pass (outside a running context: no batches run
-- meanwhile in this process); returns cond().
function M.wait_until(cond, seconds)
    local C = require("streamhost.ffi").C
    local deadline = C.sh_ffi_now() + seconds
    while not cond() and C.sh_ffi_now() < deadline do M.sleep(0.01) end
    return cond()
end

-- Runs ssc's batches until cond() is true or `timeout` seconds pass; returns cond().
function M.wait_for(ssc, cond, timeout)
    local C = require("streamhost.ffi").C
    local deadline = C.sh_ffi_now() + (timeout or 10)
    while not cond() and C.sh_ffi_now() < deadline do
        ssc:awaitTerminationOrTimeout(0.02)
    end
    return cond() and true or false
end

-- Starts a test peer: the shell command `command` (exec'd; its stdout, and with
-- opts.stderr its stderr too, to a file) with a pipe to its stdin, and waits up to
-- opts.seconds (10) until its output matches `ready`. Returns the peer, with .pid, .out (the
-- output file), :write(line) (to its stdin), :output() and :quit() (kills it, removes the
-- file), and the first capture of `ready`; raises "<what> did not start: ..." (naming the
-- output) when it does not get there.
function M.start_peer(what, command, ready, opts)
    opts = opts or {}
    local C = require("streamhost.ffi").C
    local out = os.tmpname()
    local pidfile = out .. ".pid"
    local pipe = assert(io.popen(string.format("echo $$ > %s; exec %s > %s%s", pidfile, command, out,
        opts.stderr and " 2>&1" or ""), "w"))
    local peer = { out = out }
    local deadline = C.sh_ffi_now() + (opts.seconds or 10)
    local found
    repeat
        found = (M.read_file(out) or ""):match(ready)
        if not found then M.sleep(0.01) end
    until found or C.sh_ffi_now() > deadline
    peer.pid = tonumber((M.read_file(pidfile) or ""):match("%d+"))
    os.remove(pidfile)
    function peer.output() return M.read_file(out) or "" end
    function peer.write(_, line)
        pipe:write(line, "\n")
        pipe:flush()
    end
    function peer.quit()
        if not pipe then return end
        -- It is not reaped before the close below, so the pid is still its own.
        if peer.pid then os.execute("kill " .. peer.pid .. " 2>/dev/null") end
        pcall(pipe.close, pipe)
        pipe = nil
        os.remove(out)
    end
    if not found then
        local text = peer.output()
        peer.quit()
        error(what .. " did not start: " .. text, 3)
    end
    return peer, found
end

-- Starts scripts/peers/line_server (build/peers/line_server) on 127.0.0.1:port (0 or nil: an
-- ephemeral port). Returns a peer with .port, :cmd(line) (accept, send TEXT, sendraw HEX,
-- repeat N TEXT, close, sleep MS) and :quit() (bounded: the process is ended, never waited for).
function M.line_server(port)
    local peer, found = M.start_peer("line_server (is build/peers/line_server built?)",
        "build/peers/line_server " .. (port or 0), "PORT (%d+)", { seconds = 5 })
    peer.port = tonumber(found)
    peer.cmd = peer.write
    local kill = peer.quit
    function peer.quit()
        -- Asked first; it may be blocked in accept or sleep, so it is then ended.
        pcall(peer.cmd, peer, "quit")
        kill()
    end
    return peer
end

-- Starts scripts/peers/kafka_mock (build/peers/kafka_mock): librdkafka's mock cluster on
-- 127.0.0.1 with `brokers` brokers (default 1) and the topics of `topics` ({"name:partitions",
-- ...}). Returns a cluster with .bootstrap, :cmd(line) (down ID, up ID, topic NAME N: see the
-- program), :produce(topic, lines, opts) and :quit().
function M.kafka_mock(topics, brokers)
    local C = require("streamhost.ffi").C
    local k, bootstrap = M.start_peer("kafka_mock (is build/peers/kafka_mock built?)",
        string.format("build/peers/kafka_mock -b %d %s", brokers or 1, table.concat(topics, " ")),
        "BOOTSTRAP (%S+)")
    k.bootstrap = bootstrap
    local acks = 0
    -- Runs a command and waits until the program has done it.
    function k.cmd(_, line)
        k:write(line)
        acks = acks + 1
        local until_t = C.sh_ffi_now() + 10
        repeat
            local _, n = k.output():gsub("\nOK ", "")
            if n >= acks then return end
            M.sleep(0.01)
        until C.sh_ffi_now() > until_t
        error("kafka_mock did not do: " .. line)
    end
    -- Produces lines (an array of strings, or a count n: "m1".."mn") to topic with kcat, over
    -- TCP; opts.partition (a partition, else kcat's partitioner), opts.key (a "key:value"
    -- delimiter: lines carry their keys). Waits until kcat has delivered them all.
    function k.produce(_, topic, lines, opts)
        opts = opts or {}
        if type(lines) == "number" then
            local n = lines
            lines = {}
            for i = 1, n do lines[i] = "m" .. i end
        end
        local file = os.tmpname()
        M.write_file(file, table.concat(lines, "\n") .. "\n")
        local cmd = string.format("kcat -P -b %s -t %s %s %s -l %s 2>&1", k.bootstrap, topic,
            opts.partition and ("-p " .. opts.partition) or "", opts.key and ("-K" .. opts.key) or "", file)
        local p = assert(io.popen(cmd, "r"))
        local msg = p:read("*a")
        local ok = p:close()
        os.remove(file)
        if not ok then error("kcat could not produce to " .. topic .. ": " .. msg, 2) end
    end
    return k
end

-- Starts a ZooKeeper server (Debian's zookeeperd) on a free port of 127.0.0.1 and waits until
-- it answers. Returns zk with .quorum ("127.0.0.1:port"), register(kafka) (registers a
-- kafka_mock's first broker under /brokers/ids/1 as Kafka does) and quit().
function M.zookeeper()
    local C = require("streamhost.ffi").C
    local p = io.popen([[python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])']])
    local port = tonumber(p:read("*a"))
    p:close()
    local dir = M.tmpdir()
    M.write_file(dir .. "/zoo.cfg", string.format(
        "tickTime=2000\ndataDir=%s/data\nclientPort=%d\nclientPortAddress=127.0.0.1\nadmin.enableServer=false\n", dir, port))
    os.execute(string.format("(ZOO_LOG_DIR=%s /usr/share/zookeeper/bin/zkServer.sh start-foreground %s/zoo.cfg >%s/log 2>&1 & echo $! >%s/pid)",
        dir, dir, dir, dir))
    local zk = { quorum = "127.0.0.1:" .. port }
    local function cli(cmd)
        return os.execute(string.format("/usr/share/zookeeper/bin/zkCli.sh -server %s %s 2>&1 | grep -q '^Created'", zk.quorum, cmd)) == 0
    end
    function zk.quit()
        os.execute("kill $(cat " .. dir .. "/pid) 2>/dev/null; rm -rf " .. dir)
    end
    local deadline = C.sh_ffi_now() + 60
    while not cli("create /brokers ''") and C.sh_ffi_now() < deadline do M.sleep(0.2) end
    if not cli("create /brokers/ids ''") then
        local log = M.read_file(dir .. "/log")
        zk.quit()
        error("ZooKeeper did not start (is zookeeperd installed?): " .. tostring(log), 2)
    end
    function zk.register(kafka)
        local host, bport = kafka.bootstrap:match("([^:,]+):(%d+)")
        assert(cli(string.format([[create /brokers/ids/1 '{"host":"%s","port":%s,"version":4}']], host, bport)))
    end
    return zk
end

-- Runs `input` through f(dstream, ssc) and returns, per batch, action(rdd) (or
-- action(time, rdd) when it declares two parameters) called in foreachRDD.
function M.run_actions(input, f, action, nbatches, opts)
    opts = opts or {}
    local ssc = M.ssc()
    local stream = f(ssc:queueStream(input), ssc)
    local n, out, done = nbatches or #input, {}, 0
    local with_time = debug.getinfo(action, "u").nparams >= 2
    stream:foreachRDD(function(time, rdd)
        if done < n then
            done = done + 1
            if with_time then out[done] = action(time, rdd) else out[done] = action(rdd) end
        end
    end)
    ssc:start()
    local deadline = os.time() + (opts.timeout or 20)
    while done < n and os.time() < deadline do
        ssc:awaitTerminationOrTimeout(0.05)
    end
    ssc:stop(false, false)
    return out
end

-- Calls f() with io.stdout replaced by a buffer; returns what was written (and f's results).
function M.capture_stdout(f)
    local saved, chunks = io.stdout, {}
    local fake = {
        write = function(self, ...)
            for i = 1, select("#", ...) do chunks[#chunks + 1] = tostring((select(i, ...))) end
            return self
        end,
        flush = function(self) return self end,
    }
    io.stdout = fake
    local ok, err = pcall(f)
    io.stdout = saved
    if not ok then error(err, 0) end
    return table.concat(chunks)
end

-- Runs the job script at `path` with `args` (a string, shell-quoted already) in a separate host
-- process; returns its stdout, its stderr and whether it exited with status 0.
function M.run_script(path, args, master)
    local dir = M.tmpdir()
    local host = os.getenv("STREAMHOST") or "host/streamhost"
    local cmd = string.format("%s --master '%s' %s %s >%s/out 2>%s/err; echo $?",
        host, master or "local[2]", path, args or "", dir, dir)
    local p = assert(io.popen(cmd, "r"))
    local status = tonumber(p:read("*a"):match("%d+"))
    p:close()
    local out, err = M.read_file(dir .. "/out"), M.read_file(dir .. "/err")
    os.execute("rm -rf '" .. dir .. "'")
    return out, err, status == 0
end

-- Starts the job script at `path` in a host process in the background, with `args` (shell-quoted
-- already) and `env` (a string of NAME=value words, or nil). Returns a handle: pid, dir (its
-- out, err and rc files), wait(name, pattern, seconds) -> the file's text once it matches (nil
-- after the deadline), signal(sig), exited(seconds) -> its exit status once it exits (nil if it
-- did not in time), finish() (kills it, removes its files).
function M.spawn(path, args, env, master)
    local dir = M.tmpdir()
    local host = os.getenv("STREAMHOST") or "host/streamhost"
    os.execute(string.format("(env %s %s --master '%s' %s %s >%s/out 2>%s/err </dev/null & echo $! >%s/pid; wait $!; echo $? >%s/rc) 2>/dev/null &",
        env or "", host, master or "local[2]", path, args or "", dir, dir, dir, dir))
    local h = { dir = dir }
    local C = require("streamhost.ffi").C
    function h.wait(name, pattern, seconds)
        local deadline = C.sh_ffi_now() + (seconds or 10)
        repeat
            local s = M.read_file(dir .. "/" .. name)
            if s and s:find(pattern) then return s end
            M.sleep(0.01)
        until C.sh_ffi_now() > deadline
    end
    h.pid = assert(tonumber(h.wait("pid", "%d+"):match("%d+")))
    function h.signal(sig) return os.execute("kill -" .. sig .. " " .. h.pid .. " 2>/dev/null") end
    function h.exited(seconds)
        local rc = h.wait("rc", "%d+\n", seconds)
        return rc and tonumber(rc:match("%d+"))
    end
    function h.finish()
        h.signal("KILL")
        os.execute("rm -rf '" .. dir .. "'")
    end
    return h
end

-- Runs a job script (its text) in a separate host process; returns its stdout, its stderr and
-- whether it exited with status 0.
function M.run_job(text, master)
    local dir = M.tmpdir()
    M.write_file(dir .. "/job.lua", text)
    local out, err, ok = M.run_script(dir .. "/job.lua", nil, master)
    os.execute("rm -rf '" .. dir .. "'")
    return out, err, ok
end

-- The names of the regular files of a directory (sorted), or nil when it cannot be listed.
function M.list_dir(path)
    return require("streamhost.files").list(path)
end

-- The names in dir that match a Lua pattern (files and directories), sorted.
function M.glob(dir, pattern)
    local p = assert(io.popen("ls -a '" .. dir .. "' 2>/dev/null", "r"))
    local out = {}
    for name in p:lines() do
        if name:match(pattern) then out[#out + 1] = name end
    end
    p:close()
    table.sort(out)
    return out
end

-- The lines of a file, as an array (nil when the file cannot be read).
function M.read_lines(path)
    local s = M.read_file(path)
    if s == nil then return nil end
    local out = {}
    for line in s:gmatch("([^\n]*)\n") do out[#out + 1] = line end
    return out
end

return M
