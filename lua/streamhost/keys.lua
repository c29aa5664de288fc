-- streamhost.keys: key identity and the portable hash, the same in every Lua state.
-- Keys are strings, numbers, booleans, nil or arrays of those; arrays are equal by content.
local bit = require "bit"
local buffer = require "string.buffer"
local shffi = require "streamhost.ffi"

local C = shffi.C
local type, band, bxor, tobit = type, bit.band, bit.bxor, bit.tobit

local M = {}

-- A unique stand-in for the nil key, which Lua tables cannot hold.
M.NIL = setmetatable({}, { __tostring = function() return "nil key" end })

local function portable_hash(k)
    local t = type(k)
    if t == "string" then
        return C.sh_ffi_hash_bytes(k, #k, 1)
    elseif t == "number" then
        return C.sh_ffi_hash_number(k, 2)
    elseif t == "boolean" then
        return k and 3 or 4
    elseif k == nil then
        return 0
    elseif t == "table" then
        local h = 5
        for i = 1, #k do
            h = C.sh_ffi_hash_number(tobit(h) * 31 + portable_hash(k[i]), 7)
        end
        return h
    end
    error("cannot hash a key of type " .. t .. " (keys are strings, numbers, booleans or arrays of those)", 2)
end
M.portable_hash = portable_hash

-- The partition of a key among n, as Spark's HashPartitioner does with portable_hash.
function M.partition(k, n)
    return portable_hash(k) % n
end

-- The table slot for a key: the key itself for scalars; for arrays (composite keys) a canonical
-- string kept apart from string keys by the caller (slot, is_composite).
local canon = buffer.new()
local table_new = require "table.new"

-- A fresh copy of an array key with every element in the array part, so that equal contents
-- encode the same whichever way the table was built ({[1] = "a"} keeps "a" in the hash part)
-- and -0 encodes as 0, the same key.
local function plain_array(k)
    local n = #k
    local t = table_new(n, 0)
    for i = 1, n do
        local v = k[i]
        if type(v) == "table" then v = plain_array(v) elseif v == 0 then v = 0 end  -- -0 is 0
        t[i] = v
    end
    return t
end

function M.slot(k)
    local t = type(k)
    if t == "table" then
        canon:reset()
        canon:encode(plain_array(k))
        return canon:tostring(), true
    elseif k == nil then
        return M.NIL, false
    elseif k ~= k then
        error("NaN cannot be a key", 2)
    end
    return k, false
end

-- The original key back from a scalar slot.
function M.unslot(s)
    if s == M.NIL then return nil end
    return s
end

-- A total order over keys of mixed types (numbers < strings < booleans < arrays), used by
-- sortBy/sortByKey and for stable test output.
local rank = { number = 1, string = 2, boolean = 3, table = 4 }
local function less(a, b)
    local ta, tb = type(a), type(b)
    if ta ~= tb then return (rank[ta] or 5) < (rank[tb] or 5) end
    if ta == "number" or ta == "string" then return a < b end
    if ta == "boolean" then return (not a) and b end
    if ta == "table" then
        for i = 1, math.max(#a, #b) do
            local x, y = a[i], b[i]
            if x == nil then return true end
            if y == nil then return false end
            if less(x, y) then return true end
            if less(y, x) then return false end
        end
        return false
    end
    return false
end
M.less = less

return M
