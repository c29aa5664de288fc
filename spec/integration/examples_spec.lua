-- spec/integration/examples_spec.lua: the examples run as their header comments say, as
-- subprocesses of the built host, against real sockets and files.
local helpers = require "spec.helpers"
local sh = require "streamhost"

local STREAMHOST = os.getenv("STREAMHOST") or "host/streamhost"

-- Starts `cmd` in the background with stdout/stderr to files; returns its pid and the files.
local function spawn(cmd)
    local out, err = os.tmpname(), os.tmpname()
    local p = io.popen(string.format("%s >%s 2>%s & echo $!", cmd, out, err))
    local pid = tonumber(p:read("*l"))
    p:close()
    return pid, out, err
end

local function running(pid)
    return os.execute("kill -0 " .. pid .. " 2>/dev/null") == 0
end

-- Pumps the host loop (so servers in this process keep serving) until cond() or timeout.
local wait_until = helpers.wait_until

local function count_of(text, word)
    local best = 0
    for n in text:gmatch('{"' .. word .. '", (%d+)}') do best = math.max(best, tonumber(n)) end
    return best
end

describe("examples", function()
    it("the demo job prints word counts every batch and stops by itself", function()
        local pid, out, err = spawn(STREAMHOST .. " --master 'local[2]' examples/wordcount_demo.lua 2")
        assert.is_true(wait_until(function() return not running(pid) end, 30))
        local text = helpers.read_file(out)
        assert.matches("Time: %d%d%d%d%-%d%d%-%d%d %d%d:%d%d:%d%d", text)
        assert.is_true(count_of(text, "the") > 0, text)
        assert.are.equal("", helpers.read_file(err))
    end)

    it("queue_stream counts each last digit 100 times a batch", function()
        local pid, out = spawn(STREAMHOST .. " --master 'local[2]' examples/queue_stream.lua")
        assert.is_true(wait_until(function() return not running(pid) end, 30))
        local text = helpers.read_file(out)
        local batches = select(2, text:gsub("Time: ", ""))
        assert.is_true(batches >= 5, text)
        for digit = 0, 9 do assert.matches("{" .. digit .. ", 100}", text, 1, true) end
    end)

    it("network_wordcount counts what a TCP server sends and stops on SIGINT", function()
        local server = sh.TextServer { text = "spark streams\nlua streams\n", linesPerSecond = 100 }
        local pid, out = spawn(string.format("%s examples/network_wordcount.lua 127.0.0.1 %d", STREAMHOST, server.port))
        local ok = wait_until(function() return count_of(helpers.read_file(out) or "", "streams") > 0 end, 20)
        os.execute("kill -INT " .. pid)
        local stopped = wait_until(function() return not running(pid) end, 20)
        server:stop()
        assert.is_true(ok, helpers.read_file(out))
        assert.is_true(stopped)
        assert.is_true(count_of(helpers.read_file(out), "lua") > 0)
    end)

    -- Runs a Kafka example against a mock cluster's topic "test", producing lines until it has
    -- counted some (its stream starts at the latest offsets), then stops it with SIGINT.
    -- With zk, the example is given a ZooKeeper where the cluster's broker is registered.
    local function kafka_example(script, zk)
        local kafka = helpers.kafka_mock({ "test:2" })
        if zk then zk.register(kafka) end
        local pid, out = spawn(string.format("%s %s %s test", STREAMHOST, script, zk and zk.quorum or kafka.bootstrap))
        local ok = wait_until(function()
            kafka:produce("test", { "kafka streams", "lua streams" })
            return count_of(helpers.read_file(out) or "", "streams") > 0
        end, 40)
        os.execute("kill -INT " .. pid)
        local stopped = wait_until(function() return not running(pid) end, 20)
        kafka.quit()
        assert.is_true(ok, helpers.read_file(out))
        assert.is_true(stopped)
        assert.is_true(count_of(helpers.read_file(out), "kafka") > 0)
    end

    it("direct_kafka_wordcount counts the words of a topic's new messages and stops on SIGINT", function()
        kafka_example("examples/direct_kafka_wordcount.lua")
    end)

    it("kafka_wordcount counts the words a consumer group receives (brokers from ZooKeeper), stops on SIGINT", function()
        local zk = helpers.zookeeper()
        local ok, why = pcall(kafka_example, "examples/kafka_wordcount.lua", zk)
        zk.quit()
        assert(ok, why)
    end)

    it("hdfs_wordcount counts the words of files moved into the directory", function()
        local dir, staging = helpers.tmpdir(), helpers.tmpdir()
        local pid, out = spawn(string.format("%s examples/hdfs_wordcount.lua %s", STREAMHOST, dir))
        helpers.sleep(1.5)
        helpers.write_file(staging .. "/words.txt", "apple pear apple\nfig apple\n")
        assert(os.rename(staging .. "/words.txt", dir .. "/words.txt"))
        local ok = wait_until(function() return count_of(helpers.read_file(out) or "", "apple") == 3 end, 20)
        os.execute("kill -INT " .. pid)
        wait_until(function() return not running(pid) end, 20)
        assert.is_true(ok, helpers.read_file(out))
        assert.matches('{"pear", 1}', helpers.read_file(out), 1, true)
    end)

    it("recoverable_network_wordcount comes back from its checkpoint after kill -9 and goes on", function()
        local server = sh.TextServer { text = "a spark b streams\nlua streams c\n", linesPerSecond = 50 }
        local dir = helpers.tmpdir()
        local cmd = string.format("%s examples/recoverable_network_wordcount.lua 127.0.0.1 %d %s/cp %s/out",
            STREAMHOST, server.port, dir, dir)
        local function lines_of_output()
            return select(2, (helpers.read_file(dir .. "/out") or ""):gsub("\n", ""))
        end
        local pid, out = spawn(cmd)
        local ok = wait_until(function() return lines_of_output() >= 2 end, 20)
        os.execute("kill -KILL " .. pid)
        wait_until(function() return not running(pid) end, 20)
        local first_out = helpers.read_file(out) or ""
        local before = lines_of_output()
        local pid2, out2, err2 = spawn(cmd)
        local ok2 = wait_until(function() return lines_of_output() >= before + 2 end, 20)
        os.execute("kill -INT " .. pid2)
        wait_until(function() return not running(pid2) end, 20)
        server:stop()
        local second_out, second_err = helpers.read_file(out2) or "", helpers.read_file(err2) or ""
        local text = helpers.read_file(dir .. "/out") or ""
        os.execute("rm -rf '" .. dir .. "'")
        assert.is_true(ok, first_out)
        assert.is_true(ok2, second_out .. second_err)
        assert.matches("Creating new context", first_out, 1, true)
        assert.is_nil(second_out:find("Creating new context", 1, true), "setup ran again: " .. second_out)
        assert.matches("recovering from .-/cp/metadata%-%d+", second_err)
        assert.matches("Dropped %d+ word%(s%) totally", second_out)
        assert.matches("Counts at time [%d%- :]+ %[.*%('lua', %d+%)", text)
        assert.is_nil(text:find("'a'", 1, true), "a blacklisted word was counted")
    end)
    -- The Flume examples against the python3-avro peers (scripts/peers), stopped with SIGINT.
    it("flume_wordcount counts the words of events a Flume client pushes, stops on SIGINT", function()
        local p = io.popen([[python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])']])
        local port = tonumber(p:read("*a"))
        p:close()
        local text = os.tmpname()
        helpers.write_file(text, "flume streams\nlua streams\n")
        local pid, out = spawn(string.format("%s examples/flume_wordcount.lua 127.0.0.1 %d", STREAMHOST, port))
        local ok = wait_until(function()  -- the client fails until the example listens
            os.execute(string.format("/usr/bin/python3 scripts/peers/flume_client.py --port %d --mode text --text %s >/dev/null 2>&1", port, text))
            return count_of(helpers.read_file(out) or "", "streams") > 0
        end, 40)
        os.execute("kill -INT " .. pid)
        local stopped = wait_until(function() return not running(pid) end, 20)
        os.remove(text)
        assert.is_true(ok, helpers.read_file(out))
        assert.is_true(stopped)
        assert.is_true(count_of(helpers.read_file(out), "flume") > 0)
    end)

    it("flume_polling_wordcount counts the words of the events it pulls from a sink, stops on SIGINT", function()
        local sink_out = os.tmpname()
        local p = io.popen(string.format("/usr/bin/python3 scripts/peers/flume_sink.py --events 50 >%s 2>&1 & echo $!", sink_out))
        local sink_pid = tonumber(p:read("*a"):match("%d+"))
        p:close()
        wait_until(function() return (helpers.read_file(sink_out) or ""):find("PORT %d+") ~= nil end, 10)
        local port = tonumber((helpers.read_file(sink_out) or ""):match("PORT (%d+)"))
        local pid, out = spawn(string.format("%s examples/flume_polling_wordcount.lua 127.0.0.1:%d", STREAMHOST, port))
        local ok = wait_until(function() return (helpers.read_file(sink_out) or ""):find("ALLACKED") ~= nil end, 40)
        local counted = wait_until(function() return count_of(helpers.read_file(out) or "", "✓") > 0 end, 20)
        os.execute("kill -INT " .. pid)
        local stopped = wait_until(function() return not running(pid) end, 20)
        os.execute("kill " .. sink_pid)
        local text = helpers.read_file(out) or ""
        os.remove(sink_out)
        assert.is_true(ok, text)
        assert.is_true(counted, text)
        assert.is_true(stopped)
        assert.matches("Received [1-9]%d* flume events%.", text)
    end)
end)

