-- spec/integration/checkpoint_spec.lua: what ssc:checkpoint writes and what getOrCreate makes
-- of it, in this process: the graph and its functions come back without calling setup, state
-- goes on from the checkpoint, damaged files are skipped with a message naming them, what
-- cannot be checkpointed is refused at start, a directory that cannot be written is an error
-- of start, a disk that fills is reported and the job goes on.
local sh = require "streamhost"
local helpers = require "spec.helpers"

local C = require("streamhost.ffi").C

local q = helpers.q

local function error_of(f)
    local ok, err = pcall(f)
    assert.is_false(ok, "expected an error")
    return tostring(err)
end

-- Drops a file of text into dir whole (a dot name, then renamed).
local function drop(dir, name, text)
    helpers.write_file(dir .. "/." .. name, text)
    assert(os.rename(dir .. "/." .. name, dir .. "/" .. name))
end

-- An output function writing an RDD's {k, v} pairs, sorted, as "k=v ..." to path (whole).
local function pairs_to(path)
    return function(rdd)
        local all = rdd:collect()
        table.sort(all, function(a, b) return a[1] < b[1] end)
        local out = {}
        for i, kv in ipairs(all) do out[i] = kv[1] .. "=" .. kv[2] end
        local f = assert(io.open(path .. ".tmp", "w"))
        f:write(table.concat(out, " "))
        f:close()
        os.rename(path .. ".tmp", path)
    end
end

-- A context counting the words of the files in dir/in with updateStateByKey; the totals go to
-- dir/state after every batch. Made as a getOrCreate setup makes it.
local function word_totals(dir)
    return function()
        local ssc = helpers.ssc(0.1)
        local totals = ssc:textFileStream(dir .. "/in")
            :flatMap(function(line)
                local out = {}
                for w in line:gmatch("%S+") do out[#out + 1] = w end
                return out
            end)
            :map(function(w) return { w, 1 } end)
            :updateStateByKey(function(vs, total) return (total or 0) + #vs end)
            :setName("totals")
        totals:checkpoint(0.3)
        totals:foreachRDD(pairs_to(dir .. "/state"))
        return ssc
    end
end

-- Runs ssc until dir/state reads `want` (or 15 s pass); returns what it read.
local function run_until(ssc, dir, want)
    ssc:start()
    helpers.wait_for(ssc, function() return helpers.read_file(dir .. "/state") == want end, 15)
    return helpers.read_file(dir .. "/state")
end

-- Runs the context `setup` makes (through getOrCreate on dir/cp) until file a (text_a) makes
-- dir/state read `first`, stops it gracefully, recovers it (setup is not called again), and
-- runs it until file b (text_b) makes dir/state read `second`.
local function across_recovery(dir, setup, text_a, first, text_b, second)
    local ssc = sh.StreamingContext.getOrCreate(dir .. "/cp", setup)
    ssc:start()
    drop(dir .. "/in", "a", text_a)
    helpers.wait_for(ssc, function() return helpers.read_file(dir .. "/state") == first end, 15)
    ssc:stop(false, true)
    assert.are.equal(first, helpers.read_file(dir .. "/state"))
    local again = sh.StreamingContext.getOrCreate(dir .. "/cp", function() error("setup was called") end)
    drop(dir .. "/in", "b", text_b)
    assert.are.equal(second, run_until(again, dir, second))
    again:stop(false, true)
end

-- Captures what f writes to stderr (the host writes there with io.stderr).
local function capture_stderr(f)
    local saved = io.stderr
    local path = os.tmpname()
    local file = assert(io.open(path, "w"))
    io.stderr = file
    local ok, err = pcall(f)
    io.stderr = saved
    file:close()
    local text = helpers.read_file(path)
    os.remove(path)
    if not ok then error(err, 0) end
    return text
end

local function newest(dir, prefix)
    local names = helpers.glob(dir, "^" .. prefix:gsub("%-", "%%-") .. "%d+$")
    table.sort(names, function(a, b) return tonumber(a:match("%d+$")) > tonumber(b:match("%d+$")) end)
    return names[1], names
end

describe("getOrCreate with checkpoint data", function()
    local dir
    before_each(function()
        dir = helpers.tmpdir()
        os.execute("mkdir -p " .. q(dir .. "/in"))
    end)
    after_each(function()
        helpers.stop_active()
        os.execute("rm -rf " .. q(dir))
    end)

    it("brings back the graph and its functions without calling setup, and the state goes on", function()
        local ssc = sh.StreamingContext.getOrCreate(dir .. "/cp", word_totals(dir))
        ssc:start()
        drop(dir .. "/in", "a", "x y x\n")
        helpers.wait_for(ssc, function() return helpers.read_file(dir .. "/state") == "x=2 y=1" end, 15)
        ssc:stop(false, true)
        assert.are.equal("x=2 y=1", helpers.read_file(dir .. "/state"))
        local again = sh.StreamingContext.getOrCreate(dir .. "/cp", function() error("setup was called") end)
        assert.are_not.equal(ssc, again)
        local names = {}
        for _, d in ipairs(again._dstreams) do names[#names + 1] = d.name end
        assert.are.same({ "totals" }, names)
        drop(dir .. "/in", "b", "y z\n")
        local state
        local err = capture_stderr(function() state = run_until(again, dir, "x=2 y=2 z=1") end)
        assert.are.equal("x=2 y=2 z=1", state)
        -- The graceful stop wrote a final checkpoint: nothing to re-apply or rerun.
        assert.matches("state as of %d+; re%-applying 0 completed batches, rerunning 0 pending", err)
        again:stop(false, true)
    end)

    it("skips a truncated and a bit-flipped newest metadata file, naming them, and recovers from the one before", function()
        local ssc = sh.StreamingContext.getOrCreate(dir .. "/cp", word_totals(dir))
        ssc:start()
        drop(dir .. "/in", "a", "p q\n")
        helpers.wait_for(ssc, function() return helpers.read_file(dir .. "/state") == "p=1 q=1" end, 15)
        ssc:stop(false, true)
        local first, names = newest(dir .. "/cp", "metadata-")
        assert.is_true(#names >= 3, "metadata files kept: " .. #names)
        local second = names[2]
        -- Truncate the newest, flip a bit in the payload of the one before.
        local whole = helpers.read_file(dir .. "/cp/" .. first)
        helpers.write_file(dir .. "/cp/" .. first, whole:sub(1, #whole - 7))
        local other = helpers.read_file(dir .. "/cp/" .. second)
        local at = 40
        helpers.write_file(dir .. "/cp/" .. second,
            other:sub(1, at - 1) .. string.char(bit.bxor(other:byte(at), 4)) .. other:sub(at + 1))
        local again
        local err = capture_stderr(function()
            again = sh.StreamingContext.getOrCreate(dir .. "/cp", function() error("setup was called") end)
        end)
        assert.matches("skipping checkpoint " .. (dir .. "/cp/" .. first):gsub("%p", "%%%0") .. ".-truncated", err)
        assert.matches("skipping checkpoint " .. (dir .. "/cp/" .. second):gsub("%p", "%%%0") .. ".-checksum mismatch", err)
        drop(dir .. "/in", "b", "q r\n")
        assert.are.equal("p=1 q=2 r=1", run_until(again, dir, "p=1 q=2 r=1"))
        again:stop(false, true)
    end)

    it("skips a damaged state file and re-applies the batches after an older one", function()
        local ssc = sh.StreamingContext.getOrCreate(dir .. "/cp", word_totals(dir))
        ssc:start()
        drop(dir .. "/in", "a", "m\n")
        helpers.wait_for(ssc, function() return helpers.read_file(dir .. "/state") == "m=1" end, 15)
        helpers.sleep(0.4)  -- a state checkpoint (every 0.3 s) after the file's batch
        drop(dir .. "/in", "b", "n\n")
        helpers.wait_for(ssc, function() return helpers.read_file(dir .. "/state") == "m=1 n=1" end, 15)
        ssc:stop(false, true)
        local first, names = newest(dir .. "/cp", "state-")
        assert.are.equal(2, #names)
        local whole = helpers.read_file(dir .. "/cp/" .. first)
        helpers.write_file(dir .. "/cp/" .. first, whole:sub(1, 30))
        local again
        local err = capture_stderr(function()
            again = sh.StreamingContext.getOrCreate(dir .. "/cp", function() error("setup was called") end)
            again:start()
        end)
        assert.matches("skipping checkpoint " .. (dir .. "/cp/" .. first):gsub("%p", "%%%0"), err)
        assert.matches("state as of " .. names[2]:match("%d+"), err)
        drop(dir .. "/in", "c", "n\n")
        assert.are.equal("m=1 n=2", run_until(again, dir, "m=1 n=2"))
        again:stop(false, true)
    end)

    it("brings back functions that use a lazy value (sh.lazy) with their builders", function()
        local setup = function()
            local ssc = helpers.ssc(0.1)
            local upper = sh.lazy(function() return string.upper end)
            local path = dir .. "/state"
            ssc:textFileStream(dir .. "/in"):map(function(l) return upper.value(l) end)
                :foreachRDD(function(rdd)
                    local rows = rdd:collect()
                    if #rows == 0 then return end
                    local f = assert(io.open(path, "w"))
                    f:write(table.concat(rows, " "))
                    f:close()
                end)
            return ssc
        end
        across_recovery(dir, setup, "abc\n", "ABC", "xyz\n", "XYZ")
    end)

    it("brings back the values driver functions capture as of the last checkpoint (pyspark pickles at each)", function()
        -- The output keeps a running count of lines in an upvalue; recovered, it goes on from
        -- the count it had, not from the 0 it started with.
        local setup = function()
            local ssc = helpers.ssc(0.1)
            local seen = 0
            local path = dir .. "/state"
            ssc:textFileStream(dir .. "/in"):foreachRDD(function(rdd)
                local n = rdd:count()
                if n == 0 then return end
                seen = seen + n
                helpers.write_file(path, "seen " .. seen)
            end)
            return ssc
        end
        across_recovery(dir, setup, "a\nb\nc\n", "seen 3", "d\ne\n", "seen 5")
    end)

    it("a driver function that comes to capture an RDD is reported; the last good graph is kept", function()
        local errors = {}
        local L = sh.StreamingListener()
        function L:onCheckpointError(e) errors[#errors + 1] = e end
        local setup = function()
            local ssc = helpers.ssc(0.1)
            local last
            local path = dir .. "/state"
            ssc:textFileStream(dir .. "/in"):foreachRDD(function(rdd)
                if rdd:count() == 0 then return end
                last = rdd  -- an RDD cannot be checkpointed (pyspark's pickling refuses it too)
                helpers.write_file(path, "kept " .. tostring(last ~= nil))
            end)
            return ssc
        end
        local ssc = sh.StreamingContext.getOrCreate(dir .. "/cp", setup)
        ssc:addStreamingListener(L)
        ssc:start()
        drop(dir .. "/in", "a", "x\n")
        helpers.wait_for(ssc, function() return #errors > 0 end, 15)
        ssc:stop(false, true)
        assert.is_true(#errors > 0, "no checkpoint error reported")
        assert.are.equal("graph", errors[1].kind)
        assert.matches("RDD", errors[1].message)
        -- The last good graph (from before the RDD was captured) recovers.
        local again = sh.StreamingContext.getOrCreate(dir .. "/cp", function() error("setup was called") end)
        drop(dir .. "/in", "b", "y\n")
        again:start()
        helpers.wait_for(again, function() return helpers.read_file(dir .. "/state") == "kept true" end, 15)
        again:stop(false, true)
    end)

    it("brings back an incremental window, whose old batches leave it after recovery", function()
        local setup = function()
            local ssc = helpers.ssc(0.1)
            local path = dir .. "/state"
            ssc:textFileStream(dir .. "/in"):map(function(w) return { w, 1 } end)
                :reduceByKeyAndWindow(function(a, b) return a + b end, function(a, b) return a - b end,
                    1.0, 0.1, nil, function(kv) return kv[2] > 0 end)
                :foreachRDD(pairs_to(path))
            return ssc
        end
        -- y enters; x's batch leaves the 1 s window (its input is read again from the record).
        across_recovery(dir, setup, "x\nx\n", "x=2", "y\n", "y=1")
    end)

    it("uses the active SparkContext (getActiveOrCreate returns the active context)", function()
        local ssc = sh.StreamingContext.getOrCreate(dir .. "/cp", word_totals(dir))
        ssc:start()
        assert.are.equal(ssc, sh.StreamingContext.getActiveOrCreate(dir .. "/cp", function() error("setup was called") end))
        ssc:stop(false, true)
        local again = sh.StreamingContext.getActiveOrCreate(dir .. "/cp", function() error("setup was called") end)
        assert.are.equal(helpers.sc(), again.sparkContext)
    end)
end)

describe("ssc:checkpoint refuses at start", function()
    after_each(helpers.stop_active)

    it("a function that references the SparkContext, with pyspark's meaning", function()
        local dir = helpers.tmpdir()
        os.execute("mkdir -p " .. q(dir .. "/in"))
        local ssc = helpers.ssc(0.1)
        ssc:checkpoint(dir .. "/cp")
        local sc = ssc.sparkContext
        ssc:textFileStream(dir .. "/in"):foreachRDD(function(rdd) return sc.defaultParallelism + rdd:count() end)
        local err = error_of(function() ssc:start() end)
        os.execute("rm -rf " .. q(dir))
        assert.matches("upvalue 'sc' references the SparkContext", err)
        assert.matches("checkpoint_spec.lua:%d+", err)
    end)

    it("a function that captures a broadcast variable, which Spark cannot recover either", function()
        local dir = helpers.tmpdir()
        os.execute("mkdir -p " .. q(dir .. "/in"))
        local ssc = helpers.ssc(0.1)
        ssc:checkpoint(dir .. "/cp")
        local words = ssc.sparkContext:broadcast({ "a" })
        ssc:textFileStream(dir .. "/in"):filter(function(w) return w ~= words.value[1] end)
            :foreachRDD(function(rdd) rdd:count() end)
        local err = error_of(function() ssc:start() end)
        os.execute("rm -rf " .. q(dir))
        assert.matches("cannot checkpoint .-captures a broadcast variable, which cannot be recovered from a checkpoint", err)
    end)

    it("a checkpoint directory that cannot be written, naming it", function()
        local dir = helpers.tmpdir()
        os.execute("mkdir -p " .. q(dir .. "/in") .. " " .. q(dir .. "/ro"))
        if os.execute("mount -t tmpfs -o size=64k,ro tmpfs " .. q(dir .. "/ro") .. " 2>/dev/null") ~= 0 then
            os.execute("rm -rf " .. q(dir))
            pending("mounting a read-only tmpfs needs root")
            return
        end
        local ssc = helpers.ssc(0.1)
        ssc:checkpoint(dir .. "/ro")
        ssc:textFileStream(dir .. "/in"):foreachRDD(function(rdd) rdd:count() end)
        local err = error_of(function() ssc:start() end)
        os.execute("umount " .. q(dir .. "/ro"))
        os.execute("rm -rf " .. q(dir))
        assert.matches("cannot write to checkpoint directory " .. (dir .. "/ro"):gsub("%p", "%%%0"), err)
        assert.matches("Read%-only file system", err)
        assert.matches("checkpoint_spec.lua:%d+", err)
    end)
end)

describe("a checkpoint directory whose disk fills", function()
    after_each(helpers.stop_active)

    it("reports the failed writes, keeps the last good checkpoint, goes on and writes again when there is room", function()
        local dir = helpers.tmpdir()
        os.execute("mkdir -p " .. q(dir .. "/in") .. " " .. q(dir .. "/cp"))
        if os.execute("mount -t tmpfs -o size=512k tmpfs " .. q(dir .. "/cp") .. " 2>/dev/null") ~= 0 then
            os.execute("rm -rf " .. q(dir))
            pending("mounting a small tmpfs needs root")
            return
        end
        local ok, err = pcall(function()
            local ssc = sh.StreamingContext.getOrCreate(dir .. "/cp", word_totals(dir))
            local errors = {}
            ssc:addStreamingListener(sh.StreamingListener {
                onCheckpointError = function(_, info) errors[#errors + 1] = info end,
            })
            local stderr = capture_stderr(function()
                ssc:start()
                drop(dir .. "/in", "a", "d\n")
                assert.is_true(helpers.wait_for(ssc, function() return helpers.read_file(dir .. "/state") == "d=1" end, 15))
                os.execute("dd if=/dev/zero of=" .. q(dir .. "/cp/filler") .. " bs=4k count=1000 2>/dev/null")
                assert.is_true(helpers.wait_for(ssc, function() return #errors > 0 end, 15), "no onCheckpointError")
                -- The job goes on while no checkpoint can be written.
                drop(dir .. "/in", "b", "d e\n")
                assert.is_true(helpers.wait_for(ssc, function() return helpers.read_file(dir .. "/state") == "d=2 e=1" end, 15))
                local before = newest(dir .. "/cp", "metadata-")
                os.remove(dir .. "/cp/filler")
                assert.is_true(helpers.wait_for(ssc, function() return newest(dir .. "/cp", "metadata-") ~= before end, 15),
                    "no checkpoint written after the disk had room again")
            end)
            assert.matches("No space left on device", errors[1].message)
            assert.matches("No space left on device.-the last good checkpoint stays", stderr)
            ssc:stop(false, true)
            -- What was written after the disk had room recovers the state.
            local again = sh.StreamingContext.getOrCreate(dir .. "/cp", function() error("setup was called") end)
            drop(dir .. "/in", "c", "e\n")
            assert.are.equal("d=2 e=2", run_until(again, dir, "d=2 e=2"))
            again:stop(false, true)
        end)
        helpers.stop_active()
        os.execute("umount " .. q(dir .. "/cp"))
        os.execute("rm -rf " .. q(dir))
        assert(ok, err)
    end)
end)

describe("a checkpoint and its script", function()
    local job = [[
local sh = require "streamhost"
local VERSION = "v1"
local dir = arg[1]
local function setup()
    local conf = sh.SparkConf():set("spark.hadoop.fs.s3a.secret.key", "hunter2-secret")
                               :set("streamhost.example.setting", "kept-setting")
    local sc = sh.SparkContext(nil, "ScriptVersions", nil, nil, nil, nil, nil, conf)
    local ssc = sh.StreamingContext(sc, 0.1)
    ssc:textFileStream(dir .. "/in"):foreachRDD(function(rdd)
        io.write(VERSION, " ", rdd:count(), "\n")
    end)
    return ssc
end
local ssc = sh.StreamingContext.getOrCreate(dir .. "/cp", setup)
ssc:start()
ssc:awaitTerminationOrTimeout(0.5)
ssc:stop(true, true)
]]

    it("recovers the checkpointed graph when the script changed, saying so with both hashes; no credential is written", function()
        local dir = helpers.tmpdir()
        os.execute("mkdir -p " .. q(dir .. "/in"))
        local path = dir .. "/job.lua"
        helpers.write_file(path, job)
        local out, err, ok = helpers.run_script(path, q(dir))
        assert.is_true(ok, err)
        assert.matches("^v1 0\n", out)
        helpers.write_file(path, (job:gsub('"v1"', '"v2"')))
        local out2, err2, ok2 = helpers.run_script(path, q(dir))
        local files = {}
        for _, name in ipairs(helpers.glob(dir .. "/cp", "^[ms]")) do
            files[#files + 1] = helpers.read_file(dir .. "/cp/" .. name) or ""
        end
        local all = table.concat(files)
        os.execute("rm -rf " .. q(dir))
        assert.is_true(ok2, err2)
        assert.matches("^v1 0\n", out2)  -- the checkpointed function, not the script's new one
        assert.is_nil(out2:find("v2", 1, true))
        assert.matches("job%.lua differs from the script that wrote checkpoint .-%(hash crc32c:%x+:%d+ there, crc32c:%x+:%d+ now%); running the checkpointed graph", err2)
        assert.is_true(#files > 0)
        assert.is_truthy(all:find("kept-setting", 1, true), "the settings are in the checkpoint")
        assert.is_nil(all:find("hunter2-secret", 1, true), "a credential was written into a checkpoint")
    end)
end)
