-- spec/integration/correctness_spec.lua: behaviour a new user found wrong: nil values and nil
-- records (pyspark's None), and the fixes that came with them.
local helpers = require "spec.helpers"
local sorted = helpers.sorted

local function show(x) return tostring(x) end
local function join2(x, y) return show(x) .. "+" .. show(y) end

describe("reduceByKey, combineByKey and foldByKey with nil values", function()
    local sc
    setup(function() sc = helpers.sc() end)

    it("give one record per key when a key's first value is nil", function()
        local r = sc:parallelize({ { "a", nil }, { "a", 1 }, { "a", 2 }, { "b", 7 } }, 1)
            :reduceByKey(function(x, y) return (x or 0) + (y or 0) end, 1)
        assert.are.same({ { "a", 3 }, { "b", 7 } }, sorted(r:collect()))
    end)

    it("give one record per key when the reducer returns nil part-way, and go on from nil", function()
        local function capped(x, y)
            if x == nil then return y end
            if x + y > 2 then return nil end
            return x + y
        end
        local r = sc:parallelize({ { "a", 1 }, { "a", 2 }, { "a", 3 } }, 1):reduceByKey(capped, 1)
        -- pyspark: capped(capped(1, 2), 3) = capped(None, 3) = 3
        assert.are.same({ { "a", 3 } }, r:collect())
    end)

    it("keep a key whose value stays nil, as {key, nil}", function()
        local r = sc:parallelize({ { "a", nil }, { "a", nil }, { "b", 1 } }, 2)
            :reduceByKey(function() return nil end, 1)
        local out = sorted(r:collect())
        assert.are.equal(2, r:count())
        assert.are.equal(2, #out)
        assert.are.equal("a", out[1][1])
        assert.is_nil(out[1][2])
        assert.are.same({ "b", 1 }, out[2])
    end)

    it("hand a nil value from the map side to the reduce side's merge", function()
        -- Two map tasks: the first holds only the nil value of "a", the second a 5.
        local r = sc:parallelize({ { "a", nil }, { "a", 5 } }, 2):reduceByKey(join2, 1)
        assert.are.same({ { "a", "nil+5" } }, r:collect())
    end)

    it("treat composite keys the same way", function()
        local r = sc:parallelize({ { { "k", 1 }, nil }, { { "k", 1 }, 1 }, { { "k", 1 }, 2 } }, 1)
            :reduceByKey(function(x, y) return (x or 0) + (y or 0) end, 1)
        assert.are.same({ { { "k", 1 }, 3 } }, r:collect())
        local nils = sc:parallelize({ { { "k", 1 }, nil }, { { "k", 1 }, 5 } }, 2):reduceByKey(join2, 1)
        assert.are.same({ { { "k", 1 }, "nil+5" } }, nils:collect())
    end)

    it("call combineByKey's functions once per key when createCombiner returns nil", function()
        local r = sc:parallelize({ { "a", 1 }, { "a", 2 }, { "b", 3 } }, 1):combineByKey(
            function() return nil end,
            function(c, v) return show(c) .. "," .. v end,
            join2, 1)
        assert.are.same({ { "a", "nil,2" }, { "b" } }, sorted(r:collect()))
    end)

    it("fold a nil zero value and nil values by key once per key", function()
        local r = sc:parallelize({ { "a", nil }, { "a", 1 }, { "a", 2 } }, 1)
            :foldByKey(nil, function(acc, v) if acc == nil then return v end return acc + v end, 1)
        assert.are.same({ { "a", 3 } }, r:collect())
    end)
end)

describe("nil records (pyspark's None)", function()
    local sh = require "streamhost"
    local NULL = sh.null
    local sc
    setup(function() sc = helpers.sc() end)
    before_each(helpers.stop_active)

    it("carries sh.null inside a task's description, as aggregate's zero value", function()
        local r = sc:parallelize({ 1, 2, 3 }, 2):aggregate({ NULL, 0 },
            function(acc, x) acc[2] = acc[2] + x; return acc end,
            function(a, b) return { a[1] == NULL and b[1] == NULL and NULL or "lost", a[2] + b[2] } end)
        assert.are.equal(6, r[2])
        assert.is_true(r[1] == NULL)
    end)

    local function odd_or_nil(x)
        if x % 2 == 0 then return nil end
        return x
    end
    local function is_nil(x) return x == nil end

    it("are counted and collected alike, as sh.null in the collected array", function()
        local r = sc:parallelize({ 1, 2, 3, 4 }, 2):map(odd_or_nil)
        assert.are.equal(4, r:count())
        local out = r:collect()
        assert.are.equal(4, #out)
        assert.are.equal(1, out[1])
        assert.is_true(rawequal(NULL, out[2]))
        assert.are.equal(3, out[3])
        assert.is_true(rawequal(NULL, out[4]))
    end)

    it("reach filter, map and foreach as nil after a shuffle and from a cache", function()
        local r = sc:parallelize({ 1, 2, 3, 4 }, 2):map(odd_or_nil)
        assert.are.equal(2, r:repartition(3):filter(is_nil):count())
        assert.are.equal(4, r:repartition(3):count())
        local cached = r:map(function(x) return x end):cache()
        assert.are.same({ false, true, false, true }, cached:map(is_nil):collect())
        assert.are.equal(4, cached:count())
        local path = os.tmpname()
        r:repartition(2):foreach(function(x)
            local f = assert(io.open(path, "a"))
            f:write(x == nil and "nil\n" or "value\n")
            f:close()
        end)
        local lines = helpers.read_lines(path)
        os.remove(path)
        table.sort(lines)
        assert.are.same({ "nil", "nil", "value", "value" }, lines)
    end)

    it("are taken as sh.null, and first() of a nil record is nil", function()
        local r = sc:parallelize({ 1, 2, 3, 4 }, 2):map(odd_or_nil)
        local t = r:take(3)
        assert.are.equal(3, #t)
        assert.is_true(rawequal(NULL, t[2]))
        assert.is_nil(r:filter(is_nil):first())
        assert.is_false(r:filter(is_nil):isEmpty())
    end)

    it("come as sh.null in glom arrays and partition iterators, and go back to nil from their results", function()
        local r = sc:parallelize({ 1, 2, 3, 4 }, 2):map(odd_or_nil)
        assert.are.same({ { 1, NULL }, { 3, NULL } }, r:glom():collect())
        local counts = r:mapPartitions(function(it)
            local n = 0
            for _ in it do n = n + 1 end
            return { n }
        end):collect()
        assert.are.same({ 2, 2 }, counts)
        local back = r:mapPartitions(function(it)
            local out = {}
            for x in it do out[#out + 1] = x end
            return out
        end):map(is_nil):collect()
        assert.are.same({ false, true, false, true }, back)
        local flat = sc:parallelize({ 1 }):flatMap(function(x) return { x, NULL, x } end):map(is_nil):collect()
        assert.are.same({ false, true, false }, flat)
    end)

    it("come from sh.null in the arrays given to parallelize", function()
        local r = sc:parallelize({ 1, NULL, 3, NULL }, 3)
        assert.are.equal(4, r:count())
        assert.are.same({ false, true, false, true }, r:map(is_nil):collect())
    end)

    it("stay sh.null inside the values reduce and aggregate bring back", function()
        local r = sc:parallelize({ 1, 2, 3, 4 }, 2):map(odd_or_nil)
        local function concat(a, b)
            for _, x in ipairs(b) do a[#a + 1] = x end
            return a
        end
        local all = r:glom():reduce(concat)
        assert.are.equal(4, #all)
        assert.is_true(all[2] == NULL and all[4] == NULL)
        local nils = r:aggregate(0, function(n, x) return x == nil and n + 1 or n end, function(a, b) return a + b end)
        assert.are.equal(2, nils)
    end)

    it("are counted by countByValue under sh.null", function()
        local counts = sc:parallelize({ 1, 2, 3, 4, 5 }, 2):map(odd_or_nil):countByValue()
        assert.are.equal(2, counts[NULL])
        assert.are.equal(1, counts[1])
    end)

    it("survive sorting", function()
        local out = sc:parallelize({ 1, 2, 3, 4 }, 2):map(odd_or_nil)
            :sortBy(function(x) return x or 0 end, true, 2):collect()
        assert.are.equal(4, #out)
        assert.is_true(rawequal(NULL, out[1]))
        assert.is_true(rawequal(NULL, out[2]))
        assert.are.same({ 1, 3 }, { out[3], out[4] })
    end)

    it("are the same sh.null in a worker function that captures it", function()
        local null = NULL
        local r = sc:parallelize({ 1, 2 }, 2):map(function(x) if x == 2 then return null end return x end)
        assert.are.same({ 1 }, r:filter(function(x) return rawequal(x, null) == false end):collect())
        assert.are.equal(1, r:repartition(2):filter(function(x) return x == null end):count())
    end)

    it("are a nil value's sh.null in groupByKey and cogroup lists, and nil in joins", function()
        local a = sc:parallelize({ { "k", nil }, { "k", 1 } }, 2)
        local grouped = a:groupByKey(1):collect()
        assert.are.equal(1, #grouped)
        assert.are.same({ NULL, 1 }, grouped[1][2])
        local joined = a:join(sc:parallelize({ { "k", "x" } }), 1):collect()
        assert.are.equal(2, #joined)
        for _, kv in ipairs(joined) do assert.are.equal("x", kv[2][2]) end
        local firsts = { joined[1][2][1], joined[2][2][1] }
        assert.is_true(firsts[1] == nil or firsts[2] == nil)
        assert.is_true(firsts[1] == 1 or firsts[2] == 1)
    end)

    it("come from sh.null in queueStream arrays and reach the stream's functions as nil", function()
        local out = helpers.run_stream({ { 1, NULL }, { NULL } }, function(s) return s:map(is_nil) end, 2,
            { sort = false })
        assert.are.same({ { false, true }, { true } }, out)
    end)

    it("pprint as nil", function()
        local text = helpers.capture_stdout(function()
            helpers.run_stream({ { 1, NULL, { "k", NULL } } }, function(s)
                s:map(function(x) return x end):pprint()
                return s
            end, 1)
        end)
        local body = text:match("^%-+\nTime: [^\n]*\n%-+\n(.*)$")
        assert.are.equal("1\nnil\n{\"k\", nil}\n\n", body)
    end)

    it("are saved by saveAsTextFiles as the line nil", function()
        local dir = helpers.tmpdir()
        helpers.run_stream({ { "a", NULL, "b" } }, function(s)
            s:map(function(x) return x end):repartition(1):saveAsTextFiles(dir .. "/out")
            return s
        end, 1)
        local names = helpers.glob(dir, "^out%-%d+$")
        local lines = {}
        for _, f in ipairs(helpers.list_dir(dir .. "/" .. names[1])) do
            if f ~= "_SUCCESS" then
                for _, l in ipairs(helpers.read_lines(dir .. "/" .. names[1] .. "/" .. f)) do lines[#lines + 1] = l end
            end
        end
        assert.are.same({ "a", "nil", "b" }, lines)
        os.execute("rm -rf '" .. dir .. "'")
    end)
end)

describe("sh.TextServer", function()
    local sh = require "streamhost"
    local C = require("streamhost.ffi").C
    before_each(helpers.stop_active)

    -- Lines a socketTextStream receives from a TextServer at `rate` in about `seconds`, and how
    -- long the server ran.
    local function received(rate, seconds)
        local t0 = C.sh_ffi_now()
        local server = sh.TextServer { text = "alpha\nbeta\ngamma\n", linesPerSecond = rate }
        local ssc = helpers.ssc(0.1)
        local total = 0
        ssc:socketTextStream(server.host, server.port):foreachRDD(function(rdd) total = total + rdd:count() end)
        ssc:start()
        ssc:awaitTerminationOrTimeout(seconds)
        server:stop()
        local ran = C.sh_ffi_now() - t0
        ssc:stop(false, true)  -- gracefully: what arrived is counted
        return total, ran
    end

    -- The expected count for the time that passed, with wide bounds (25..55 for 2 s at 20/s).
    local function assert_rate(rate, got, elapsed)
        local want = rate * elapsed
        assert.is_true(got >= want * 0.625 and got <= want * 1.375 + 1,
            string.format("%d lines in %.2f s at %g lines/s (expected about %d)", got, elapsed, rate, want))
    end

    it("serves 1 line a second", function()
        local got, elapsed = received(1, 2.5)
        assert.is_true(got >= 1 and got <= elapsed + 1, string.format("%d lines in %.2f s at 1 line/s", got, elapsed))
    end)

    it("serves 20 lines a second", function()
        local got, elapsed = received(20, 2)
        assert_rate(20, got, elapsed)
    end)

    it("serves 5000 lines a second, more lines than the text has", function()
        local got, elapsed = received(5000, 1)
        assert_rate(5000, got, elapsed)
    end)

    it("serves 100000 lines a second", function()
        local got, elapsed = received(100000, 1)
        assert_rate(100000, got, elapsed)
    end)

    it("refuses a rate that is not above 0", function()
        for _, bad in ipairs({ 0, -5, "fast" }) do
            local ok, err = pcall(sh.TextServer, { text = "a\n", linesPerSecond = bad })
            assert.is_false(ok)
            assert.matches("linesPerSecond must be a number above 0", tostring(err))
        end
    end)
end)

describe("math.random", function()
    -- The first number of the driver's state and of each worker state, in a fresh process.
    local JOB = [[
local sh = require "streamhost"
local sc = sh.SparkContext("local[2]", "seeds")
local driver_first = math.random()
local r = sc:parallelize({ 0, 1 }, 2):mapPartitionsWithIndex(function()
    return { { require("streamhost.worker").index, math.random() } }
end)
r._affinity = true  -- partition p runs on worker p
print(string.format("driver %.17g", driver_first))
for _, rec in ipairs(r:collect()) do print(string.format("worker%d %.17g", rec[1], rec[2])) end
sc:stop()
]]

    local function firsts()
        local out, err, ok = helpers.run_job(JOB)
        assert.is_true(ok, err)
        local t = {}
        for name, x in out:gmatch("(%w+) (%S+)") do t[name] = tonumber(x) end
        assert.is_number(t.driver)
        assert.is_number(t.worker0)
        assert.is_number(t.worker1)
        return t
    end

    it("gives every worker state its own sequence, and the driver its own", function()
        local t = firsts()
        assert.are_not.equal(t.worker0, t.worker1)
        assert.are_not.equal(t.driver, t.worker0)
        assert.are_not.equal(t.driver, t.worker1)
    end)

    it("gives every run new sequences", function()
        local a, b = firsts(), firsts()
        assert.are_not.equal(a.driver, b.driver)
        assert.are_not.equal(a.worker0, b.worker0)
        assert.are_not.equal(a.worker1, b.worker1)
    end)
end)

describe("SparkContext:textFile", function()
    local sc, dir
    setup(function()
        sc = helpers.sc()
        dir = helpers.tmpdir()
        for name, text in pairs({
            ["a.txt"] = "a1\na2\n", ["b.txt"] = "b1\n", ["c.log"] = "c1\n",
            ["part-00000"] = "p0\n", ["part-00001"] = "p1\n", ["_SUCCESS"] = "hidden\n",
            [".hidden"] = "hidden\n",
        }) do
            helpers.write_file(dir .. "/" .. name, text)
        end
        assert(os.execute("mkdir -p '" .. dir .. "/sub'") == 0)
        helpers.write_file(dir .. "/sub/d.txt", "d1\n")
    end)
    teardown(function() os.execute("rm -rf '" .. dir .. "'") end)

    local function lines(path) return sorted(sc:textFile(path):collect()) end

    it("reads a file", function()
        assert.are.same({ "a1", "a2" }, lines(dir .. "/a.txt"))
    end)

    it("reads a directory's files, not its hidden files or subdirectories", function()
        assert.are.same({ "a1", "a2", "b1", "c1", "p0", "p1" }, lines(dir))
        assert.are.same({ "a1", "a2", "b1", "c1", "p0", "p1" }, lines(dir .. "/"))
    end)

    it("reads the files a glob matches, one partition per file", function()
        assert.are.same({ "a1", "a2", "b1" }, lines(dir .. "/*.txt"))
        assert.are.same({ "p0", "p1" }, lines(dir .. "/part-*"))
        assert.are.same({ "p1" }, lines(dir .. "/part-0000[1-9]"))
        assert.are.same({ "a1", "a2", "b1" }, lines(dir .. "/?.txt"))
        assert.are.equal(2, sc:textFile(dir .. "/part-*"):getNumPartitions())
    end)

    it("reads the files of directories a glob matches", function()
        assert.are.same({ "d1" }, lines(dir .. "/su*"))
    end)

    it("reads comma-separated paths, keeping the commas of {a,b} in the pattern", function()
        assert.are.same({ "a1", "a2", "c1" }, lines(dir .. "/a.txt," .. dir .. "/c.log"))
        assert.are.same({ "a1", "a2", "c1" }, lines(dir .. "/{a.txt,c.log}"))
        assert.are.same({ "b1", "d1", "p0", "p1" }, lines(dir .. "/b.*," .. dir .. "/sub," .. dir .. "/part-*"))
    end)

    it("refuses a pattern that matches nothing, naming it and the script line", function()
        local ok, err = pcall(function() sc:textFile(dir .. "/*.csv") end)
        assert.is_false(ok)
        assert.matches("correctness_spec.lua:%d+: textFile: input pattern ", tostring(err))
        assert.is_truthy(tostring(err):find(dir .. "/*.csv matches 0 files", 1, true))
    end)

    it("refuses a path that does not exist, naming it and the script line", function()
        local ok, err = pcall(function() sc:textFile(dir .. "/a.txt," .. dir .. "/missing.txt") end)
        assert.is_false(ok)
        assert.matches("correctness_spec.lua:%d+: textFile: input path does not exist: ", tostring(err))
        assert.is_truthy(tostring(err):find(dir .. "/missing.txt", 1, true))
    end)
end)

describe("sh.SparkConf", function()
    local sh = require "streamhost"

    it("stores settings as strings, chains its setters and reads them back", function()
        local conf = sh.SparkConf():set("a.b", 5):set("flag", true):setMaster("local[3]"):setAppName("App")
        assert.are.equal("5", conf:get("a.b"))
        assert.are.equal("true", conf:get("flag"))
        assert.are.equal("local[3]", conf:get("spark.master"))
        assert.are.equal("App", conf:get("spark.app.name"))
        conf:setAll({ { "x", "1" }, { "a.b", "6" } }):setIfMissing("x", "2"):setIfMissing("y", "3")
        assert.are.equal("6", conf:get("a.b"))
        assert.are.equal("1", conf:get("x"))
        assert.are.equal("3", conf:get("y"))
    end)

    it("gives get's default for a missing key, and contains and getAll in the order first set", function()
        local conf = sh.SparkConf():set("k1", "v1"):set("k2", "v2"):set("k1", "v3")
        assert.is_nil(conf:get("missing"))
        assert.are.equal("dflt", conf:get("missing", "dflt"))
        assert.are.equal("v3", conf:get("k1", "dflt"))
        assert.is_true(conf:contains("k2"))
        assert.is_false(conf:contains("k3"))
        assert.are.same({ { "k1", "v3" }, { "k2", "v2" } }, conf:getAll())
        assert.are.equal("k1=v3\nk2=v2", conf:toDebugString())
    end)

    it("is what getConf returns: a copy of the context's settings", function()
        local sc = helpers.sc()
        local conf = sc:getConf()
        assert.are.equal(sc.master, conf:get("spark.master"))
        assert.are.equal(sc.appName, conf:get("spark.app.name"))
        conf:set("spark.app.name", "changed")
        assert.are.equal(sc.appName, sc:getConf():get("spark.app.name"))
        assert.is_false(sc:getConf():contains("streamhost.socket.maxLineBytes"))
    end)

    it("is taken by SparkContext at pyspark's 8th position; the positional master and appName win", function()
        local out, err, ok = helpers.run_job([[
local sh = require "streamhost"
local conf = sh.SparkConf():setMaster("local[3]"):setAppName("FromConf"):set("my.key", "v")
local sc = sh.SparkContext(nil, nil, nil, nil, nil, nil, nil, conf)
print(sc.master, sc.appName, sc.defaultParallelism, sc:getConf():get("my.key"))
sc:stop()
sc = sh.SparkContext("local[1]", "Positional", nil, nil, nil, nil, nil, conf)
print(sc.master, sc.appName, sc.defaultParallelism, sc:getConf():get("spark.master"))
sc:stop()
sc = sh.SparkContext.getOrCreate(sh.SparkConf():setAppName("Created"))
print(sc.master, sc.appName)
sc:stop()
print(pcall(sh.SparkContext, nil, nil, nil, nil, nil, nil, nil, { master = "local" }))
]])
        assert.is_true(ok, err)
        local lines = {}
        for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
        assert.are.equal("local[3]\tFromConf\t3\tv", lines[1])
        assert.are.equal("local[1]\tPositional\t1\tlocal[1]", lines[2])
        assert.are.equal("local[2]\tCreated", lines[3])  -- the host's --master
        assert.matches("^false\t.*SparkContext expects a SparkConf as its conf", lines[4])
    end)

    -- A job that serves a short line, a line of 1.2 MB and "end" round and round to a
    -- socketTextStream with the given SparkConf settings, until "end" came twice (so the long
    -- line came or was skipped in between); prints the longest line received.
    local function longest_line(settings)
        return helpers.run_job([[
local sh = require "streamhost"
local conf = sh.SparkConf()]] .. settings .. [[

local sc = sh.SparkContext(nil, "maxline", nil, nil, nil, nil, nil, conf)
local server = sh.TextServer { text = "short\n" .. string.rep("x", 1200000) .. "\nend\n", linesPerSecond = 30 }
local ssc = sh.StreamingContext(sc, 0.1)
local ends, longest = 0, 0
ssc:socketTextStream(server.host, server.port):foreachRDD(function(rdd)
    for _, l in ipairs(rdd:collect()) do
        if l == "end" then ends = ends + 1 end
        longest = math.max(longest, #l)
    end
    if ends >= 2 then ssc:stop(true, false) end
end)
ssc:start()
ssc:awaitTerminationOrTimeout(30)
print("longest " .. longest .. " ends " .. ends)
]])
    end

    it("sets the socket source's line limit with streamhost.socket.maxLineBytes", function()
        local out, err, ok = longest_line([[:set("streamhost.socket.maxLineBytes", "2m")]])
        assert.is_true(ok, err)
        assert.are.equal("longest 1200000 ends 2\n", out)
        assert.is_nil(err:find("skipped a line", 1, true))
    end)

    it("skips lines over the limit, 1 MiB by default, naming the limit", function()
        local out, err, ok = longest_line("")
        assert.is_true(ok, err)
        assert.are.equal("longest 5 ends 2\n", out)
        assert.matches("skipped a line longer than 1048576 bytes", err)
        out, err, ok = longest_line([[:set("streamhost.socket.maxLineBytes", 100)]])
        assert.is_true(ok, err)
        assert.are.equal("longest 5 ends 2\n", out)
        assert.matches("skipped a line longer than 100 bytes", err)
    end)

    it("refuses a maxLineBytes that is not a size, naming the setting and the script line", function()
        for _, bad in ipairs({ "abc", "0", "1.5m", "2g" }) do
            local _, err, ok = helpers.run_job([[
local sh = require "streamhost"
local conf = sh.SparkConf():set("streamhost.socket.maxLineBytes", "]] .. bad .. [[")
local sc = sh.SparkContext(nil, "bad", nil, nil, nil, nil, nil, conf)
local ssc = sh.StreamingContext(sc, 0.1)
ssc:socketTextStream("127.0.0.1", 9)
]])
            assert.is_false(ok)
            assert.matches("job%.lua:5: streamhost%.socket%.maxLineBytes must be a size from 1 to 1073741824 bytes",
                err)
            assert.is_truthy(err:find("got '" .. bad .. "'", 1, true))
        end
    end)
end)

describe("errors of bad records", function()
    local sc
    setup(function()
        sc = helpers.sc()
        sc:setCheckpointDir(helpers.tmpdir())
    end)
    before_each(helpers.stop_active)

    local function at(f)
        local info = debug.getinfo(f, "S")
        return string.format("%s:%d", info.short_src, info.linedefined)
    end

    local function error_of(f)
        local ok, err = pcall(f)
        assert.is_false(ok)
        return tostring(err)
    end

    local function has(text, part)
        assert.is_truthy(text:find(part, 1, true), "expected to find:\n" .. part .. "\nin:\n" .. text)
    end

    local words = function() return sc:parallelize({ "hello", "world" }, 1) end
    local function add(a, b) return a + b end

    it("name the map function that returned w, 1 instead of {w, 1}, and how to fix it", function()
        local function pair_up(w) return w, 1 end
        local err = error_of(function() words():map(pair_up):reduceByKey(add):collect() end)
        has(err, 'reduceByKey needs {key, value} records; the map function at ' .. at(pair_up) ..
            ' returned a string ("hello") — return {w, 1}, not w, 1')
    end)

    it("name the operation and the function for groupByKey, joins and flatMap records", function()
        local function bare(w) return w end
        has(error_of(function() words():map(bare):groupByKey():collect() end),
            'groupByKey needs {key, value} records; the map function at ' .. at(bare) ..
            ' returned a string ("hello")')
        local pairs_ = words():map(function(w) return { w, 1 } end)
        has(error_of(function() pairs_:join(words():map(bare)):collect() end),
            'join needs {key, value} records; the map function at ' .. at(bare))
        local function numbers(w) return { #w, 7 } end
        has(error_of(function() words():flatMap(numbers):partitionBy(2):collect() end),
            'partitionBy needs {key, value} records; the flatMap function at ' .. at(numbers) ..
            ' produced a number (5)')
    end)

    it("name the map function that made a NaN key", function()
        local function nan_key(w) return { 0 / 0, w } end
        has(error_of(function() words():map(nan_key):reduceByKey(add):collect() end),
            'reduceByKey: NaN cannot be a key; the map function at ' .. at(nan_key) .. ' returned {0/0, "')
        has(error_of(function() words():map(nan_key):groupByKey():collect() end),
            'groupByKey: NaN cannot be a key; the map function at ' .. at(nan_key))
    end)

    it("name the map function whose value is nested too deep to encode", function()
        local function deep(w)
            local t = {}
            local c = t
            for _ = 1, 150 do c[1] = {}; c = c[1] end
            return { w, t }
        end
        local err = error_of(function() words():map(deep):groupByKey():collect() end)
        has(err, "groupByKey cannot shuffle a record that holds tables nested deeper than " ..
            "string.buffer's limit of 100 levels")
        has(err, "the map function at " .. at(deep) .. ' returned {"')
    end)

    it("name the function whose record cannot be encoded, and what in it", function()
        local function with_fn(w) return { w, print } end
        has(error_of(function() words():map(with_fn):reduceByKey(function(a) return a end):collect() end),
            "reduceByKey cannot shuffle a record that holds a function at [2]; the map function at " .. at(with_fn))
        local function with_thread(w) return { w, coroutine.create(print) } end
        has(error_of(function() words():map(with_thread):collect() end),
            "collect cannot return a record that holds a thread at [2]; the map function at " .. at(with_thread))
        local function fn(_) return print end
        has(error_of(function() words():map(fn):cache():count() end),
            "cache cannot store a record that is a function; the map function at " .. at(fn))
    end)

    it("name the function for updateStateByKey's input", function()
        local function bare(x) return x end
        local err = error_of(function()
            helpers.run_stream({ { "a" } }, function(s)
                return s:map(bare):updateStateByKey(function(vs, st) return (st or 0) + #vs end)
            end, 1)
        end)
        has(err, 'updateStateByKey needs {key, value} records; the map function at ' .. at(bare))
        local function to_fn(vs, st) return function() return vs, st end end
        err = error_of(function()
            helpers.run_stream({ { { "k", 1 } } }, function(s) return s:updateStateByKey(to_fn) end, 1)
        end)
        has(err, 'updateStateByKey cannot keep a record that holds a function at [2]; the update function at ' ..
            at(to_fn) .. ' made {"k", function: ')
    end)

    it("keep the user's message and list only the user's frames of a worker error", function()
        local function check(x)
            if x == "world" then error("no world here") end
            return x
        end
        local function mapper(x)
            local y = check(x)
            return y
        end
        local err = error_of(function() words():map(mapper):collect() end)
        local msg_line = debug.getinfo(check, "S").linedefined + 1
        local src = debug.getinfo(check, "S").short_src
        has(err, string.format("%s:%d: no world here\nstack traceback:\n" ..
            "\t%s:%d: in function <%s>\n\t%s:%d: in function <%s>",
            src, msg_line, src, msg_line, at(check), src, debug.getinfo(mapper, "S").linedefined + 1, at(mapper)))
        assert.is_nil(err:find("streamhost/", 1, true), err)
        assert.is_nil(err:find("[C]", 1, true), err)
    end)

    it("leave streamhost's frames out of a job's error output", function()
        local _, err, ok = helpers.run_job([[
local sh = require "streamhost"
local sc = sh.SparkContext(nil, "t")
local function check(w)
    if w == "boom" then error("bad word " .. w) end
    return w
end
local r = sc:parallelize({ "a", "boom" }, 2):map(function(w) return { check(w), 1 } end)
print(#r:reduceByKey(function(a, b) return a + b end):collect())
]])
        assert.is_false(ok)
        has(err, "job.lua:4: bad word boom\nstack traceback:\n\t")
        has(err, "job.lua:4: in function <")
        has(err, "job.lua:7: in function <")
        has(err, "job.lua:8: in main chunk")
        assert.is_nil(err:find("streamhost/", 1, true), err)
    end)
end)
