-- streamhost.ops: the built-in operators (sh.ops, an extension beyond pyspark: API.md). Each
-- is a plain Lua function that works anywhere a function does; they travel to workers by name
-- (pair's closures by value, marked so that a worker knows them), and where a stage is one the
-- host knows (streamhost.kernel) the worker runs it in C instead of calling them per record.
local type = type

local M = {}

-- flatMap: the words of a line, split on whitespace as gmatch("%S+") splits.
function M.words(line)
    local out, n = {}, 0
    for w in line:gmatch("%S+") do
        n = n + 1
        out[n] = w
    end
    return out
end

-- reduceByKey, reduceByKeyAndWindow, foldByKey...: a + b. As updateStateByKey's function,
-- add(newValues, state): the sum of the new values plus the state (0 when there is none).
function M.add(a, b)
    if type(a) == "table" then
        local s = b or 0
        for i = 1, #a do s = s + a[i] end
        return s
    end
    return a + b
end

-- reduceByKeyAndWindow's inverse function: a - b.
function M.sub(a, b)
    return a - b
end

-- The combiner that starts a key's value in reduceByKey (pyspark's lambda x: x).
function M.identity(x)
    return x
end

-- The marker a pair closure holds as its first upvalue: this module, which travels by name and
-- so is the same table in every state. The upvalue's name says what the closure is.
local PAIR_UPVALUE = "sh_ops_pair"

-- map: x to {x, v}. A new closure for each v, as a Lua closure would be.
function M.pair(v)
    local sh_ops_pair = M
    return function(x)
        local _ = sh_ops_pair
        return { x, v }
    end
end

-- The value v of a closure made by pair(v) (shipped or not): true, v; false for any other value.
function M.pair_value(f)
    if type(f) ~= "function" then return false end
    local name, mark = debug.getupvalue(f, 1)
    if name ~= PAIR_UPVALUE or mark ~= M then return false end
    local _, v = debug.getupvalue(f, 2)
    return true, v
end

return M
