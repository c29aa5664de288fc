-- streamhost.diagnose: error messages for bad records that name the user's function (file and
-- line) and say how to fix it, and worker tracebacks without streamhost's own frames. Only
-- error paths call this module.
local ship = require "streamhost.ship"
local format = require "streamhost.format"

local type, tostring, error, pairs = type, tostring, error, pairs
local sformat = string.format

local M = {}

-- The directory of streamhost's modules (…/lua/streamhost/), whose frames tracebacks leave out.
local LIB_DIR = debug.getinfo(1, "S").source:match("^@(.*/)[^/]*$")

local function in_library(source)
    return LIB_DIR ~= nil and source:sub(2, #LIB_DIR + 1) == LIB_DIR
end

-- -- Worker tracebacks ------------------------------------------------------------------------

-- The error message, then the stack traceback of the user's frames only (innermost first):
-- streamhost's modules and C functions are left out. An error in streamhost's own code (its
-- message starts with a module's path) keeps every frame, to find the fault. For xpcall in
-- worker states.
function M.traceback(e)
    if type(e) ~= "string" then e = tostring(e) end
    if LIB_DIR and e:sub(1, #LIB_DIR) == LIB_DIR then return debug.traceback(e, 2) end
    local frames = {}
    for level = 2, 100 do
        local info = debug.getinfo(level, "Sl")
        if info == nil then break end
        if info.what == "main" and not in_library(info.source) then
            frames[#frames + 1] = sformat("\t%s:%d: in main chunk", info.short_src, info.currentline)
        elseif info.what == "Lua" and not in_library(info.source) then
            frames[#frames + 1] = sformat("\t%s:%d: in function <%s:%d>", info.short_src,
                info.currentline, info.short_src, info.linedefined)
        end
    end
    if #frames == 0 then return e end
    return e .. "\nstack traceback:\n" .. table.concat(frames, "\n")
end

-- -- Where records came from ------------------------------------------------------------------

-- Operations whose function makes the records the next step sees, and the verb for what it did.
local MAKERS = {
    map = "returned", mapValues = "returned", flatMap = "produced", flatMapValues = "produced",
    mapPartitions = "produced", mapPartitionsWithIndex = "produced",
}

local function where(f)
    local info = debug.getinfo(f, "S")
    if info.what == "C" then return nil end
    return sformat("%s:%d", info.short_src, info.linedefined)
end

-- Who made the records of a plan node: { text = "the map function at job.lua:12", verb =
-- "returned", fn = the function, op = "map" }; records a filter passed on are its input's.
function M.producer(node)
    while type(node) == "table" do
        local op = node.op
        if MAKERS[op] and node.fn then
            local ok, f = pcall(ship.load, node.fn)
            local at = ok and where(f)
            local text = at and sformat("the %s function at %s", op, at) or sformat("the %s function", op)
            return { text = text, verb = MAKERS[op], fn = ok and f or nil, op = op }
        elseif op == "filter" then
            node = node.input
        elseif op == "concat" then
            node = node.inputs and node.inputs[1]
        else
            break
        end
    end
    return { text = "its input", verb = "held" }
end

-- -- Describing values -----------------------------------------------------------------------

local function short_literal(v)
    local ok, s = pcall(format.literal, v)
    if not ok then s = tostring(v) end
    if #s > 60 then s = s:sub(1, 57) .. "..." end
    return s
end

local function a_value(v)
    local t = type(v)
    if v == nil then return "nil" end
    if t == "table" or t == "function" or t == "userdata" or t == "thread" or t == "cdata" then
        return "a " .. t
    end
    return sformat("a %s (%s)", t, short_literal(v))
end

-- The expressions after a `return` (s starts after it), split at the commas outside brackets
-- and strings; the statement ends at `end`, `;` or a bracket it did not open.
local function split_top(s)
    local parts, depth, from, i, n = {}, 0, 1, 1, #s
    while i <= n do
        local c = s:sub(i, i)
        if c == '"' or c == "'" then
            local j = i + 1
            while j <= n and s:sub(j, j) ~= c do
                if s:sub(j, j) == "\\" then j = j + 1 end
                j = j + 1
            end
            i = j
        elseif c == "(" or c == "{" or c == "[" then
            depth = depth + 1
        elseif c == ")" or c == "}" or c == "]" then
            if depth == 0 then n = i - 1; break end
            depth = depth - 1
        elseif c == "," and depth == 0 then
            parts[#parts + 1] = s:sub(from, i - 1)
            from = i + 1
        elseif depth == 0 and c == ";" then
            n = i - 1
            break
        elseif depth == 0 and s:find("^end%f[%W]", i) and (i == 1 or s:sub(i - 1, i - 1):find("[%s%)%]}]")) then
            n = i - 1
            break
        end
        i = i + 1
    end
    parts[#parts + 1] = s:sub(from, n)
    for k, p in pairs(parts) do parts[k] = p:match("^%s*(.-)%s*$") end
    return parts
end

local function returned_list(f)
    if f == nil then return nil end
    local info = debug.getinfo(f, "S")
    local path = info.source:match("^@(.+)$")
    if not path or info.linedefined < 1 then return nil end
    local fh = io.open(path, "r")
    if not fh then return nil end
    local body, i = {}, 0
    for l in fh:lines() do
        i = i + 1
        if i >= info.linedefined then body[#body + 1] = l end
        if i >= info.lastlinedefined then break end
    end
    fh:close()
    -- The function's lines may hold other functions (one-line functions side by side): the
    -- guess is the one return there of two or more values.
    local text = table.concat(body, "\n")
    local found
    for at in text:gmatch("%f[%w_]return%f[^%w_]()") do
        local exprs = split_top(text:sub(at))
        if #exprs >= 2 and exprs[1] ~= "" then
            if found then return nil end
            found = table.concat(exprs, ", ")
        end
    end
    return found
end

-- -- Bad records -------------------------------------------------------------------------------

-- Raises: `what` needs {key, value} records, naming the function that made `rec` (from node).
function M.not_pair(what, node, rec)
    local p = M.producer(node)
    local hint = ""
    if p.op == "map" then
        local list = returned_list(p.fn)
        if list then
            hint = sformat(" — return {%s}, not %s", list, list)
        else
            hint = " — return one {key, value} array"
        end
    elseif p.op == "flatMap" or p.op == "mapPartitions" or p.op == "mapPartitionsWithIndex" then
        hint = " — make its records {key, value} arrays"
    end
    error(sformat("%s needs {key, value} records; %s %s %s%s", what, p.text, p.verb, a_value(rec), hint), 0)
end

-- Raises: the key of rec cannot be a key (why: "nan", or the key's type).
function M.bad_key(what, node, rec)
    local p = M.producer(node)
    local k = rec[1]
    local problem
    if type(k) == "number" and k ~= k then
        problem = "NaN cannot be a key"
    else
        problem = "a key cannot be a " .. type(k) .. " (keys are strings, numbers, booleans or arrays of those)"
    end
    error(sformat("%s: %s; %s %s %s", what, problem, p.text, p.verb, short_literal(rec)), 0)
end

-- What in v string.buffer cannot encode ("holds a function at [2].x", "is a thread", "holds
-- tables nested too deep ..."), or nil. depth: v's nesting level in what is encoded.
local MAX_DEPTH = 100  -- string.buffer's nesting limit (LJ_SERIALIZE_DEPTH)
local function unencodable(v, path, depth)
    local t = type(v)
    if t == "nil" or t == "boolean" or t == "number" or t == "string" then return nil end
    if t == "cdata" and pcall(require("string.buffer").encode, v) then return nil end
    if t ~= "table" then
        if path == "" then return "is a " .. t end
        return sformat("holds a %s at %s", t, path)
    end
    if getmetatable(v) == getmetatable(require "streamhost.null") then return nil end
    if depth > MAX_DEPTH then
        return sformat("holds tables nested deeper than string.buffer's limit of %d levels (at %s)",
            MAX_DEPTH, path == "" and "the top" or path:sub(1, 60) .. (#path > 60 and "..." or ""))
    end
    for k, x in pairs(v) do
        local kp = type(k) == "string" and k:match("^[%a_][%w_]*$") and (path .. "." .. k)
            or (path .. "[" .. short_literal(k) .. "]")
        local bad = unencodable(k, path .. "[a key]", depth + 1) or unencodable(x, kp, depth + 1)
        if bad then return bad end
    end
    return nil
end

-- A producer for a function of a sink (updateStateByKey's update function, ...).
function M.function_producer(id, label, verb)
    local ok, f = pcall(ship.load, id)
    local at = ok and where(f)
    return { text = at and sformat("the %s at %s", label, at) or "the " .. label, verb = verb or "returned" }
end

-- Raises for the n records (arrays of records, at nesting level 2 in what was encoded) that
-- string.buffer could not encode (err its error): which record, what in it, and who made it
-- (node: a plan node, or a producer from function_producer).
function M.encode_failure(what, verb, node, records, n, err)
    local p = node and node.text and node or M.producer(node)
    for i = 1, n or #records do
        local rec = records[i]
        local bad = unencodable(rec, "", 2)
        if bad then
            error(sformat("%s cannot %s a record that %s; %s %s %s", what, verb, bad, p.text, p.verb,
                short_literal(rec)), 0)
        end
    end
    error(sformat("%s cannot %s its records (%s); they came from %s", what, verb, tostring(err), p.text), 0)
end

return M
