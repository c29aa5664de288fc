-- streamhost.codec: the one record encoding (LuaJIT string.buffer) and reading records out of blobs.
local ffi = require "ffi"
local buffer = require "string.buffer"
local shffi = require "streamhost.ffi"

local C = shffi.C
local ffi_string, ffi_cast = ffi.string, ffi.cast
local BLOB_ENCODED, BLOB_LINES, BLOB_FIXED = shffi.BLOB_ENCODED, shffi.BLOB_LINES, shffi.BLOB_FIXED

ffi.cdef [[ void *memchr(const void *s, int c, size_t n); ]]

local M = {}

-- Records keep sh.null (the placeholder of a nil record) through encoding: its metatable is
-- registered, so a decoded copy has it too. Arrays of records may hold nil records (holes):
-- their record count travels beside them (a blob's count, a packed array's n).
local NULL_MT = getmetatable(require "streamhost.null")
local OPTIONS = { metatable = { NULL_MT } }
local enc = buffer.new(OPTIONS)
local dec = buffer.new(OPTIONS)

-- Task descriptions and task results (sh.null in them, a fold's zero value say, survives).
function M.encode(v)
    enc:reset()
    local ok, err = pcall(enc.encode, enc, v)
    if not ok then enc:reset(); error(err, 0) end
    local s = enc:tostring()
    enc:reset()
    return s
end

-- Decodes what encode, pack or a worker's result made.
local function decode(s)
    dec:set(s)
    local v = dec:decode()
    dec:reset()
    return v
end
M.decode = decode

-- An array of n records (nil records included) as a string; unpack gives arr, n back.
function M.pack(arr, n)
    enc:reset()
    arr.n = n
    local ok, err = pcall(enc.encode, enc, arr)
    arr.n = nil
    if not ok then enc:reset(); error(err, 0) end
    local s = enc:tostring()
    enc:reset()
    return s
end

function M.unpack(s)
    local arr = decode(s)
    local n = arr.n
    arr.n = nil
    return arr, n
end

-- A new blob (owned by the returned cdata) holding the encoded array `records` of n records
-- (default #records; pass n when nil records may leave holes).
function M.blob_of(records, n)
    enc:reset()
    local ok, err = pcall(enc.encode, enc, records)
    if not ok then enc:reset(); error(err, 0) end
    local p, len = enc:ref()
    local b = C.sh_ffi_blob_new(BLOB_ENCODED, p, len, 0, n or #records)
    enc:reset()
    if b == nil then error("out of memory encoding a partition", 2) end
    return shffi.own_blob(b)
end

-- The array an ENCODED blob holds. Decoding makes a whole blob's tables and strings in one
-- call, past the collector's pacing; a step sized to the blob keeps the collector level with
-- it (else the heap, and the pages LuaJIT's allocator keeps, grow by a partition a time).
local function decode_blob(b)
    dec:set(b.data, b.len)
    local arr = dec:decode()
    dec:reset()
    collectgarbage("step", tonumber(b.len) / 1024)
    return arr
end
M.decode_blob = decode_blob

-- Pushes every record of a blob into emit(record), in order; for LINES and FIXED blobs only
-- those in bytes [from, to) when a range is given (a slice of a block, see split).
function M.each(b, emit, from, to)
    local kind = b.kind
    if kind == BLOB_ENCODED then
        local arr = decode_blob(b)
        for i = 1, tonumber(b.count) do emit(arr[i]) end
    elseif kind == BLOB_LINES then
        -- A run of lines first, then the records: two flat loops trace far better than
        -- emit()'s nested pipeline inside the memchr loop (whose exits fell back to the
        -- interpreter). Runs are short so that few lines are alive at once.
        local base = ffi_cast("const char *", b.data)
        local len = to or tonumber(b.len)
        local pos = from or 0
        local lines = {}
        while pos < len do
            local n = 0
            while pos < len and n < 4096 do
                local nl = ffi_cast("const char *", C.memchr(base + pos, 10, len - pos))
                local stop = nl - base
                n = n + 1
                lines[n] = ffi_string(base + pos, stop - pos)
                pos = stop + 1
            end
            for i = 1, n do emit(lines[i]) end
        end
    elseif kind == BLOB_FIXED then
        local base = ffi_cast("const char *", b.data)
        local reclen = tonumber(b.reclen)
        local first = from and from / reclen or 0
        local stop = to and to / reclen or tonumber(b.count)
        for i = first, stop - 1 do emit(ffi_string(base + i * reclen, reclen)) end
    elseif kind == shffi.BLOB_KAFKA then  -- a Kafka receiver's block: {key, message} strings
        require("streamhost.kafka_read").each_message(b, function(_, key, value) emit({ key, value }) end)
    elseif kind == shffi.BLOB_FLUME then  -- a Flume receiver's block: {headers, body}
        require("streamhost.flume_read").each_event(b, emit)
    elseif kind == shffi.BLOB_KINESIS then  -- a Kinesis receiver's block: the records' data
        M.each_kinesis(b, emit)
    else
        error("blob of unknown kind " .. tostring(kind))
    end
end

-- The data of every record of a Kinesis block (connectors/kinesis/sh_in_kinesis.h), in order;
-- a shard's end mark is no record.
local KINESIS_HEADER = 32
function M.each_kinesis(b, emit)
    local base = ffi_cast("const char *", b.data)
    local len, pos = tonumber(b.len), 0
    while pos + KINESIS_HEADER <= len do
        local h = ffi_cast("const int32_t *", base + pos)
        local flags, slen, qlen, klen, dlen = h[0], h[1], h[2], h[3], h[4]
        local data = pos + KINESIS_HEADER + slen + qlen + klen
        if data + dlen > len then error("a Kinesis block is cut short at byte " .. pos) end
        if flags == 0 then emit(ffi_string(base + data, dlen)) end
        pos = data + dlen
    end
end

-- The first record boundary at or after byte `at` of a LINES or FIXED blob (its length when
-- there is none): where a block can be cut into slices.
function M.cut(b, at)
    local len = tonumber(b.len)
    if at >= len then return len end
    if b.kind == BLOB_FIXED then
        local reclen = tonumber(b.reclen)
        local to = at - at % reclen
        return to > 0 and to or reclen
    end
    local base = ffi_cast("const char *", b.data)
    if at > 0 and base[at - 1] == 10 then return at end
    local nl = C.memchr(base + at, 10, len - at)
    if nl == nil then return len end
    return (ffi_cast("const char *", nl) - base) + 1
end

-- The number of records of a LINES blob in bytes [from, to).
function M.count_lines(b, from, to)
    local base = ffi_cast("const char *", b.data)
    local n, pos = 0, from
    while pos < to do
        local nl = ffi_cast("const char *", C.memchr(base + pos, 10, to - pos))
        if nl == nil then break end
        n = n + 1
        pos = (nl - base) + 1
    end
    return n
end

return M
