-- streamhost.worker: the runtime of a worker state: runs one task (a partition's fused plan
-- pushed into a sink) and returns its encoded result. Also loaded by the driver for local work.
local ffi = require "ffi"
local buffer = require "string.buffer"
local shffi = require "streamhost.ffi"
local codec = require "streamhost.codec"
local keys = require "streamhost.keys"
local ship = require "streamhost.ship"
local shared = require "streamhost.shared"  -- accumulators: task_begin/task_end in M.run
local format = require "streamhost.format"
local NULL = require "streamhost.null"
local diagnose = require "streamhost.diagnose"
local kernel = require "streamhost.kernel"  -- stages of built-in operators, run in C

local C = shffi.C
local type, ipairs, error, select = type, ipairs, error, select
local portable_hash, slot, unslot = keys.portable_hash, keys.slot, keys.unslot
local getfn = ship.load

local M = { index = -1 }

function M.init(index)
    M.index = index
end

-- -- Per-task data ---------------------------------------------------------------------------

-- Compiled traces keep the closures they were recorded through (a call is specialized to the
-- closure until its prototype has made several), so a closure a task made must not keep the
-- task's data: such closures register here a function that drops what they captured, run when
-- the task ends. Outside a task (the driver's local work) nothing is registered.
local releases, nreleases, in_task = {}, 0, false

local function at_task_end(f)
    if not in_task then return end
    nreleases = nreleases + 1
    releases[nreleases] = f
end

local function release_task_data()
    for i = 1, nreleases do
        local f = releases[i]
        releases[i] = nil
        f()
    end
    nreleases = 0
end

-- -- Iterators over arrays and results ----------------------------------------------

-- An iterator over the n records of arr (default #arr); a nil record comes as sh.null, since
-- a nil would end the caller's `for x in it` loop.
local function array_iterator(arr, n)
    n = n or #arr
    local i = 0
    return function()
        if i >= n then return nil end
        i = i + 1
        local x = arr[i]
        if x == nil then return NULL end
        return x
    end
end
M.array_iterator = array_iterator

-- Pushes every element of a function's result (an array or an iterator) into emit; sh.null
-- there stands for a nil record.
local function emit_all(r, emit, what)
    local t = type(r)
    if t == "table" then
        for i = 1, #r do
            local x = r[i]
            if x == NULL then x = nil end
            emit(x)
        end
    elseif t == "function" then
        for x in r do
            if x == NULL then x = nil end
            emit(x)
        end
    else
        error(what .. " must return an array or an iterator function, got " .. t, 0)
    end
end

-- -- Aggregation by key -----------------------------------------------------------------

-- A map from keys (scalars or composite arrays) to values, iterated in first-seen order.
-- A key whose value is nil (pyspark's None) is present: the combiner stores HOLE for it, so
-- that a nil slot always means "absent"; keymap_each and keymap_take give nil back.
local HOLE = setmetatable({}, { __tostring = function() return "nil value" end })

local function new_keymap()
    return { vals = {}, cvals = {}, ckeys = {}, order = {}, n = 0 }
end

-- The stored value of k (nil when absent, HOLE for a nil value), its slot and whether composite.
local function keymap_get(m, k)
    if type(k) == "table" then
        local s = slot(k)
        return m.cvals[s], s, true
    end
    local s = slot(k)
    return m.vals[s], s, false
end

local function keymap_set(m, k, s, composite, v, was_new)
    if composite then
        m.cvals[s] = v
        if was_new then m.ckeys[s] = k end
    else
        m.vals[s] = v
    end
    if was_new then
        local n = m.n + 1
        m.n = n
        m.order[n] = composite and { s } or s
    end
end

-- Removes k; returns what it held (nil when absent or nil) and whether it was there.
local function keymap_take(m, k)
    local v, s, composite = keymap_get(m, k)
    if v == nil then return nil, false end
    keymap_set(m, k, s, composite, nil, false)
    if rawequal(v, HOLE) then return nil, true end
    return v, true
end

-- Calls f(key, value) for every entry still there, in first-seen order.
local function keymap_each(m, f)
    local vals, cvals, ckeys, order = m.vals, m.cvals, m.ckeys, m.order
    for i = 1, m.n do
        local s = order[i]
        local k, v
        if type(s) == "table" and s ~= keys.NIL then
            s = s[1]
            k, v = ckeys[s], cvals[s]
        else
            k, v = unslot(s), vals[s]
        end
        if v ~= nil then
            if rawequal(v, HOLE) then v = nil end
            f(k, v)
        end
    end
end
M.new_keymap, M.keymap_get, M.keymap_set, M.keymap_take, M.keymap_each =
    new_keymap, keymap_get, keymap_set, keymap_take, keymap_each

local function not_pair(rec)
    error("a key-value operation needs {key, value} records, got a " .. type(rec), 0)
end

local function bad_key(rec)
    local k = rec[1]
    if k ~= k then error("NaN cannot be a key", 0) end
    error("a key cannot be a " .. type(k), 0)
end

-- The types a key may have (composite keys are tables).
local KEY_TYPES = { string = true, number = true, boolean = true, table = true, ["nil"] = true }

-- Combines a stream of {k, v} records: create(v) for a key's first value, merge(c, v) after.
-- Every key is added once, whatever create and merge return (nil included). bad(rec, why)
-- reports a record that cannot be combined (why: "pair", or "key" for a NaN key or a key of
-- another type than KEY_TYPES); it must raise.
local function combiner(create, merge, bad)
    local m = new_keymap()
    local vals = m.vals
    at_task_end(function() m, vals, create, merge, bad = nil, nil, nil, nil, nil end)
    local function add(rec)
        if type(rec) ~= "table" then
            if bad then bad(rec, "pair") end
            not_pair(rec)
        end
        local k = rec[1]
        if type(k) == "string" or type(k) == "number" then  -- the common case, kept short for the JIT
            local c = vals[k]
            if c == nil then
                if k ~= k then
                    if bad then bad(rec, "key") end
                    bad_key(rec)
                end
                c = create(rec[2])
                if c == nil then c = HOLE end
                keymap_set(m, k, k, false, c, true)
            else
                if rawequal(c, HOLE) then c = nil end
                c = merge(c, rec[2])
                if c == nil then c = HOLE end
                vals[k] = c
            end
            return
        end
        if not KEY_TYPES[type(k)] then
            if bad then bad(rec, "key") end
            bad_key(rec)
        end
        local c, s, composite = keymap_get(m, k)
        local was_new = c == nil
        if was_new then
            c = create(rec[2])
        else
            if rawequal(c, HOLE) then c = nil end
            c = merge(c, rec[2])
        end
        if c == nil then c = HOLE end
        keymap_set(m, k, s, composite, c, was_new)
    end
    return m, add
end
M.combiner = combiner

local function identity(x) return x end
-- Lists of values (groupByKey, updateStateByKey's new values) hold sh.null for a nil value.
local function list_of(v)
    if v == nil then v = NULL end
    return { v }
end
local function list_append(l, v)
    if v == nil then v = NULL end
    l[#l + 1] = v
    return l
end
M.identity, M.list_of, M.list_append = identity, list_of, list_append

-- -- Plans: a partition's computation, run push-style into emit ---------------------------

local run

local ops = {}

function ops.blobs(node, emit)
    for _, n in ipairs(node.blobs) do
        if type(n) == "table" then  -- a slice {blob, from, to} of a larger block
            codec.each(shffi.number_to_blob(n[1]), emit, n[2], n[3])
        else
            codec.each(shffi.number_to_blob(n), emit)
        end
    end
end

function ops.kafka(node, emit)  -- an offset range of a Kafka partition, read in this worker
    return require("streamhost.kafka_read").run(node, emit)
end

function ops.records(node, emit)  -- small data carried inside the task itself
    local r = node.records
    for i = 1, #r do emit(r[i]) end
end

function ops.concat(node, emit)
    for _, input in ipairs(node.inputs) do run(input, emit) end
end

function ops.map(node, emit)
    local f = getfn(node.fn)
    run(node.input, function(x) emit((f(x))) end)
end

function ops.filter(node, emit)
    local f = getfn(node.fn)
    run(node.input, function(x) if f(x) then emit(x) end end)
end

function ops.flatMap(node, emit)
    local f = getfn(node.fn)
    run(node.input, function(x)
        local r = f(x)
        if type(r) == "table" then
            for i = 1, #r do
                local y = r[i]
                if y == NULL then y = nil end
                emit(y)
            end
        else
            emit_all(r, emit, "the flatMap function")
        end
    end)
end

function ops.mapValues(node, emit)
    local f = getfn(node.fn)
    run(node.input, function(kv) emit({ kv[1], (f(kv[2])) }) end)
end

function ops.flatMapValues(node, emit)
    local f = getfn(node.fn)
    run(node.input, function(kv)
        local k = kv[1]
        emit_all(f(kv[2]), function(v) emit({ k, v }) end, "the flatMapValues function")
    end)
end

function ops.keys(node, emit)
    run(node.input, function(kv) emit(kv[1]) end)
end

function ops.values(node, emit)
    run(node.input, function(kv) emit(kv[2]) end)
end

-- The node's records as an array and their number (nil records leave holes).
local function gather(node)
    local arr, n = {}, 0
    run(node, function(x) n = n + 1; arr[n] = x end)
    local res = arr
    arr = nil  -- the closure above may live on in a trace
    return res, n
end

function ops.glom(node, emit)
    local arr, n = gather(node.input)
    for i = 1, n do
        if arr[i] == nil then arr[i] = NULL end
    end
    emit(arr)
end

function ops.mapPartitions(node, emit)
    local f = getfn(node.fn)
    emit_all(f(array_iterator(gather(node.input))), emit, "the mapPartitions function")
end

function ops.mapPartitionsWithIndex(node, emit)
    local f = getfn(node.fn)
    emit_all(f(node.index, array_iterator(gather(node.input))), emit,
        "the mapPartitionsWithIndex function")
end

-- The reduce side of a shuffle: this partition's buckets from every map task, aggregated.
function ops.shuffled(node, emit)
    local agg = node.agg
    local inputs = node.inputs
    local function each_input(i, f)
        for _, n in ipairs(inputs[i]) do codec.each(shffi.number_to_blob(n), f) end
    end
    if agg == "none" then
        for i = 1, #inputs do each_input(i, emit) end
    elseif agg == "combine" then
        -- Map tasks wrote their combiners flat (k1, c1, k2, c2, ...), see sinks.shuffle.
        local merge = getfn(node.mergeCombiners)
        local m, add = combiner(identity, merge)
        local pair = {}
        for _, n in ipairs(inputs[1]) do
            local flat = codec.decode_blob(shffi.number_to_blob(n))
            for i = 2, flat[1] * 2, 2 do
                pair[1], pair[2] = flat[i], flat[i + 1]
                add(pair)
            end
        end
        keymap_each(m, function(k, v) emit({ k, v }) end)
    elseif agg == "group" then
        local m, add = combiner(list_of, list_append)
        each_input(1, add)
        keymap_each(m, function(k, v) emit({ k, v }) end)
    elseif agg == "cogroup" then
        local nin = #inputs
        local m = new_keymap()
        at_task_end(function() m = nil end)
        for i = 1, nin do
            each_input(i, function(kv)
                local k = kv[1]
                local g, s, composite = keymap_get(m, k)
                if g == nil then
                    g = {}
                    for j = 1, nin do g[j] = {} end
                    keymap_set(m, k, s, composite, g, true)
                end
                local l, v = g[i], kv[2]
                if v == nil then v = NULL end
                l[#l + 1] = v
            end)
        end
        keymap_each(m, function(k, g) emit({ k, g }) end)
    else
        error("unknown aggregation " .. tostring(agg))
    end
end

run = function(node, emit)
    local op = ops[node.op]
    if op == nil then error("unknown plan operation " .. tostring(node.op)) end
    return op(node, emit)
end
M.run_plan = run

-- -- Sinks: what a task does with its partition's records -------------------------------

local sinks = {}
local created  -- blobs this task made for the driver (the task hands them over, see M.run)

local function new_blob(records, n)
    local b = codec.blob_of(records, n)
    created[#created + 1] = b
    return b
end

-- Encodes n records with encode(records, n); when they cannot be, raises an error naming the
-- record, what in it cannot be encoded and the function that made it (see diagnose).
local function encoded(encode, records, n, what, verb, plan)
    local ok, res = pcall(encode, records, n)
    if not ok then diagnose.encode_failure(what, verb, plan, records, n, res) end
    return res
end

-- Results that hold records go back packed by codec: nil records and sh.null stay as they are.
function sinks.collect(plan)
    local arr, n = gather(plan)
    return encoded(codec.pack, arr, n, "collect", "return", plan)
end

function sinks.count(plan)
    local n = 0
    run(plan, function() n = n + 1 end)
    return n
end

function sinks.store(plan)  -- cache: the partition as one blob, handed to the driver
    local arr, n = gather(plan)
    return shffi.blob_to_number(encoded(new_blob, arr, n, "cache", "store", plan))
end

-- fold's and aggregate's value, packed like records (sh.null inside stays sh.null).
local function packed_value(v, what, plan)
    return encoded(codec.pack, { v }, 1, what, "return", plan)
end

function sinks.fold(plan, sink)
    local f = getfn(sink.fn)
    local acc, have = sink.zero, sink.zero ~= nil
    at_task_end(function() acc = nil end)
    run(plan, function(x)
        if have then acc = f(acc, x) else acc, have = x, true end
    end)
    return { have = have, value = packed_value(acc, "reduce", plan) }
end

function sinks.aggregate(plan, sink)  -- fold with a combining op per partition (seqOp)
    local f = getfn(sink.fn)
    local acc = sink.zero
    at_task_end(function() acc = nil end)
    run(plan, function(x) acc = f(acc, x) end)
    return { have = true, value = packed_value(acc, "aggregate", plan) }
end

local STOP = {}
function sinks.take(plan, sink)
    local arr, n, want = {}, 0, sink.n
    at_task_end(function() arr = nil end)
    if want <= 0 then return codec.pack(arr, 0) end
    local ok, err = pcall(run, plan, function(x)
        n = n + 1
        arr[n] = x
        if n >= want then error(STOP, 0) end
    end)
    if not ok and err ~= STOP then error(err, 0) end
    return encoded(codec.pack, arr, n, "take", "return", plan)
end

function sinks.foreach(plan, sink)
    local f = getfn(sink.fn)
    run(plan, function(x) f(x) end)
    return true
end

function sinks.foreachPartition(plan, sink)
    local f = getfn(sink.fn)
    f(array_iterator(gather(plan)))
    return true
end

function sinks.countByValue(plan)
    local flat = kernel.count_by_value(plan, getfn, codec.decode_blob)
    if flat then
        local out = {}
        for i = 1, flat[1] do out[i] = { flat[2 * i], flat[2 * i + 1] } end
        return codec.pack(out, #out)
    end
    local function bad(rec) diagnose.bad_key("countByValue", plan, rec) end
    local m, add = combiner(identity, function(a, b) return a + b end, bad)
    run(plan, function(x) add({ x, 1 }) end)
    local out = {}
    keymap_each(m, function(k, v) out[#out + 1] = { k, v } end)
    return encoded(codec.pack, out, #out, "countByValue", "return", plan)
end

-- Writes the partition as text lines to sink.dir/part-NNNNN.
function sinks.save(plan, sink, part)
    local path = string.format("%s/part-%05d", sink.dir, part)
    local f, err = io.open(path, "wb")
    if not f then error("cannot write " .. path .. ": " .. tostring(err), 0) end
    local text = format.text
    local buf = buffer.new()
    at_task_end(function() buf, f = nil, nil end)
    run(plan, function(x)
        buf:put(text(x), "\n")
        if #buf > 65536 then
            local ok, werr = f:write(buf:get())
            if not ok then error("cannot write " .. path .. ": " .. tostring(werr), 0) end
        end
    end)
    local ok, werr = f:write(buf:get())
    if ok then ok, werr = f:close() else f:close() end
    if not ok then error("cannot write " .. path .. ": " .. tostring(werr), 0) end
    return true
end

-- The map side of a shuffle: records into sink.n buckets by key, combined where the
-- aggregation allows; each non-empty bucket becomes a blob.
function sinks.shuffle(plan, sink, part)
    local what = sink.what or "a key-value operation"
    local function bad(rec, why)
        if why == "pair" then diagnose.not_pair(what, plan, rec) end
        diagnose.bad_key(what, plan, rec)
    end
    local n = sink.n
    local made = sink.agg == "combine" and kernel.shuffle(plan, sink, getfn)
    if made then
        local out = {}
        for i = 1, n do
            local b = made[i]
            if b then created[#created + 1] = b end
            out[i] = b and shffi.blob_to_number(b)
        end
        return out
    end
    local buckets, counts = {}, {}  -- counts: records a bucket holds (nil records leave holes)
    for i = 1, n do buckets[i], counts[i] = {}, 0 end
    at_task_end(function() buckets, counts = nil, nil end)
    local partitioner
    if sink.partitionFunc then
        local pf = getfn(sink.partitionFunc)
        partitioner = function(k) return pf(k) % n end
    else
        partitioner = function(k) return portable_hash(k) % n end
    end
    if sink.agg == "combine" then
        local m, add = combiner(getfn(sink.createCombiner), getfn(sink.mergeValue), bad)
        run(plan, add)
        -- Flat pairs, not {k, c} tables: half the allocations on both sides of the shuffle.
        -- b[1] counts the pairs, since a nil key or combiner leaves a hole.
        for i = 1, n do buckets[i][1] = 0 end
        keymap_each(m, function(k, c)
            local b = buckets[partitioner(k) + 1]
            local at = b[1] * 2 + 2
            b[1], b[at], b[at + 1] = b[1] + 1, k, c
        end)
        for i = 1, n do
            local pairs_in = buckets[i][1]
            counts[i] = pairs_in > 0 and pairs_in * 2 + 1 or 0
        end
    elseif sink.agg == "roundrobin" then  -- repartition: spread records evenly
        local i = part
        run(plan, function(x)
            local j = i % n + 1
            local c = counts[j] + 1
            buckets[j][c], counts[j] = x, c
            i = i + 1
        end)
    else
        run(plan, function(kv)
            if type(kv) ~= "table" then bad(kv, "pair") end
            local k = kv[1]
            if k ~= k or not KEY_TYPES[type(k)] then bad(kv, "key") end
            local j = partitioner(k) + 1
            local c = counts[j] + 1
            buckets[j][c], counts[j] = kv, c
        end)
    end
    local out = {}
    for i = 1, n do
        local b = buckets[i]
        local ok, blob = false, nil
        if counts[i] > 0 then ok, blob = pcall(new_blob, b, counts[i]) end
        if ok then
            out[i] = shffi.blob_to_number(blob)
        elseif counts[i] == 0 then
            out[i] = false
        else
            local records, nrec = b, counts[i]
            if sink.agg == "combine" then  -- flat pairs: explain them as {key, value} records
                records, nrec = {}, b[1]
                for j = 1, nrec do records[j] = { b[2 * j], b[2 * j + 1] } end
            end
            diagnose.encode_failure(what, "shuffle", plan, records, nrec, blob)
        end
    end
    return out
end

-- -- Entry point -------------------------------------------------------------------------

local function execute(task)
    local sink = sinks[task.sink.kind]
    if sink == nil then error("unknown sink " .. tostring(task.sink.kind)) end
    return sink(task.plan, task.sink, task.part)
end

-- The error and the user's frames of its traceback, without streamhost's own.
local traceback = diagnose.traceback

-- Runs an encoded task; returns true and the encoded {result, accumulator deltas or nil}, or
-- false and the error.
function M.run(payload)
    local task = codec.decode(payload)
    ship.new_task()
    shared.task_begin()  -- accumulators start at their zero value
    created = {}
    in_task = true
    local ok, res = xpcall(execute, traceback, task)
    in_task = false
    release_task_data()
    -- The pool hands the driver a reference to every blob this task created (or drops them
    -- when it failed); this state's own references go now, not at some later collection.
    for _, b in ipairs(created) do C.sh_ffi_blob_unref(ffi.gc(b, nil)) end
    created = nil
    local deltas = shared.task_end()  -- what the task added to accumulators (nil: nothing)
    if not ok then
        ship.end_task()  -- put back what the task changed in the functions it loaded
        return false, res
    end
    res = codec.encode({ res, deltas })  -- the driver merges deltas (scheduler.run_tasks)
    ship.end_task()  -- after encoding: the result may hold a function's captured tables
    return true, res
end

-- Plan operations and sinks, open to the modules that add their own (stateful streams).
M.ops, M.sinks = ops, sinks
require("streamhost.state_store").install(M)

return M
