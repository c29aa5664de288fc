-- streamhost.kernel: runs a task's stage in C when it is one the host knows: records of text
-- lines (received blocks, text files), optionally split by sh.ops.words, made pairs by
-- sh.ops.pair(v) with a number v, and summed by key (reduceByKey(sh.ops.add)'s map side, or
-- countByValue). The C kernel (host/sh_ops.c) counts in its own hash table and writes the
-- encoded buckets the Lua map side would write, in the same order; no Lua runs per record.
-- Any other stage gives nil here and runs in Lua.
local ffi = require "ffi"
local shffi = require "streamhost.ffi"
local ops = require "streamhost.ops"

local C = shffi.C
local type = type
local BLOB_LINES = shffi.BLOB_LINES

-- How many stages this state ran in C (for tests): shuffle map sides, countByValues.
local M = { stats = { shuffles = 0, counts = 0 } }

-- Whether every input of a blobs node is (a slice of) a LINES blob.
local function all_lines(blobs)
    for i = 1, #blobs do
        local n = blobs[i]
        if type(n) == "table" then n = n[1] end
        if type(n) ~= "number" or shffi.number_to_blob(n).kind ~= BLOB_LINES then return false end
    end
    return true
end

-- For a plan of [flatMap(words) over] LINES blobs: the blobs node and whether to split.
local function lines_source(node, getfn)
    local split = false
    if node.op == "flatMap" and getfn(node.fn) == ops.words then
        split, node = true, node.input
    end
    if node.op ~= "blobs" or not all_lines(node.blobs) then return nil end
    return node.blobs, split
end

-- The count a shuffle's map side can run in C: blobs, split, v; nil when it cannot.
local function shuffle_count(plan, sink, getfn)
    if sink.agg ~= "combine" or sink.partitionFunc ~= nil or plan.op ~= "map" then return nil end
    if getfn(sink.createCombiner) ~= ops.identity or getfn(sink.mergeValue) ~= ops.add then
        return nil
    end
    local is_pair, v = ops.pair_value(getfn(plan.fn))
    if not is_pair or type(v) ~= "number" or v ~= v then return nil end
    local blobs, split = lines_source(plan.input, getfn)
    if blobs == nil then return nil end
    return blobs, split, v
end

-- Counts the records of blobs into n buckets; returns an array of n owned blobs (or false).
local function count(blobs, split, v, n, hand_over)
    local c = ffi.gc(C.sh_ffi_count_new(), C.sh_ffi_count_free)
    if c == nil then error("out of memory counting records", 0) end
    for i = 1, #blobs do
        local e, from, to = blobs[i], 0, -1
        if type(e) == "table" then e, from, to = e[1], e[2], e[3] end
        local rc = C.sh_ffi_count_blob(c, shffi.number_to_blob(e), from, to, split and 1 or 0, v)
        if rc ~= 0 then
            C.sh_ffi_count_free(ffi.gc(c, nil))
            error(rc == -22 and "a record too long to encode" or "out of memory counting records", 0)
        end
    end
    local out = ffi.new("sh_blob_t *[?]", n)
    local rc = C.sh_ffi_count_buckets(c, n, out, hand_over and 1 or 0)
    C.sh_ffi_count_free(ffi.gc(c, nil))
    if rc ~= 0 then error("out of memory encoding counts", 0) end
    local res = {}
    for i = 1, n do
        local b = out[i - 1]
        res[i] = b ~= nil and shffi.own_blob(b) or false
    end
    return res
end

-- A shuffle's map side in C: the buckets (owned blobs or false, one per reduce partition),
-- or nil when the stage is not one the kernel runs. The blobs are handed to the driver.
function M.shuffle(plan, sink, getfn)
    local blobs, split, v = shuffle_count(plan, sink, getfn)
    if blobs == nil then return nil end
    M.stats.shuffles = M.stats.shuffles + 1
    return count(blobs, split, v, sink.n, true)
end

-- countByValue in C: the flat array {pairs, k1, c1, ...} of the partition's counts, or nil
-- when the plan is not one the kernel runs.
function M.count_by_value(plan, getfn, decode_blob)
    local blobs, split = lines_source(plan, getfn)
    if blobs == nil then return nil end
    M.stats.counts = M.stats.counts + 1
    local b = count(blobs, split, 1, 1, false)[1]
    if not b then return { 0 } end
    local flat = decode_blob(b)
    C.sh_ffi_blob_unref(ffi.gc(b, nil))
    return flat
end

return M
