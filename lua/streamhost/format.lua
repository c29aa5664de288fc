-- streamhost.format: records as Lua literals (pprint, saveAsTextFiles) and batch times as text.
local keys = require "streamhost.keys"
local NULL_MT = getmetatable(require "streamhost.null")

local type, tostring, format, concat = type, tostring, string.format, table.concat
local floor, huge = math.floor, math.huge

local M = {}

local function number_literal(x)
    if x ~= x then return "0/0" end
    if x == huge then return "math.huge" end
    if x == -huge then return "-math.huge" end
    if x == floor(x) and x > -2^53 and x < 2^53 then return format("%d", x) end
    -- The shortest form that reads back as the same number (as Python's repr).
    for precision = 15, 16 do
        local s = format("%." .. precision .. "g", x)
        if tonumber(s) == x then return s end
    end
    return format("%.17g", x)
end

local function is_identifier(s)
    return type(s) == "string" and s:match("^[%a_][%w_]*$") ~= nil
end

local literal

local function table_literal(t, seen)
    if seen[t] then return "{...}" end
    seen[t] = true
    local parts, n = {}, #t
    for i = 1, n do parts[i] = literal(t[i], seen) end
    -- Other keys in a stable order, so the same record always prints the same.
    local extra = {}
    for k in pairs(t) do
        if not (type(k) == "number" and k >= 1 and k <= n and k == floor(k)) then
            extra[#extra + 1] = k
        end
    end
    table.sort(extra, keys.less)
    for _, k in ipairs(extra) do
        local key = is_identifier(k) and k or ("[" .. literal(k, seen) .. "]")
        parts[#parts + 1] = key .. " = " .. literal(t[k], seen)
    end
    seen[t] = nil
    return "{" .. concat(parts, ", ") .. "}"
end

literal = function(v, seen)
    local t = type(v)
    if t == "string" then return format("%q", v):gsub("\\\n", "\\n") end
    if t == "number" then return number_literal(v) end
    if t == "table" then
        if getmetatable(v) == NULL_MT then return "nil" end  -- sh.null, a nil record or value
        return table_literal(v, seen or {})
    end
    return tostring(v)
end

-- A record as a Lua literal: strings quoted, arrays as {a, b}, other tables with sorted keys.
function M.literal(v)
    return (literal(v))
end

-- A record as a line of saveAsTextFiles: strings as they are, anything else as its literal.
function M.text(v)
    if type(v) == "string" then return v end
    return (literal(v))
end

-- A batch time as pyspark prints a datetime: local time, microseconds only when not whole.
function M.time(t)
    local secs = floor(t)
    local micros = floor((t - secs) * 1e6 + 0.5)
    if micros >= 1000000 then secs, micros = secs + 1, 0 end
    local s = os.date("%Y-%m-%d %H:%M:%S", secs)
    if micros ~= 0 then s = s .. format(".%06d", micros) end
    return s
end

return M
