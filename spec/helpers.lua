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

-- A fresh StreamingContext with a short batch interval.
function M.ssc(batch)
    return sh.StreamingContext(M.sc(), batch or 0.05)
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
        end
    end)
    ssc:start()
    local deadline = os.time() + (opts.timeout or 20)
    while #out < batches and os.time() < deadline do
        ssc:awaitTerminationOrTimeout(0.05)
    end
    ssc:stop(false, false)
    return out
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

function M.sleep(seconds)
    local ffi = require "ffi"
    local C = require("streamhost.ffi").C
    local host = require("streamhost.ffi").host()
    local deadline = C.sh_ffi_now() + seconds
    while C.sh_ffi_now() < deadline do
        C.sh_ffi_pump(host, math.max(1, math.floor((deadline - C.sh_ffi_now()) * 1000)))
    end
    return ffi
end

return M
