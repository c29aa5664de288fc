-- streamhost.ship: turns closures into bytes that another Lua state can load (bytecode plus
-- upvalues and referenced globals by value; modules and library functions by name), and back.
local buffer = require "string.buffer"
local jutil = require "jit.util"
local bit = require "bit"
local shffi = require "streamhost.ffi"
local ffi = require "ffi"

local C = shffi.C
local type, pairs, tostring, getmetatable, setmetatable = type, pairs, tostring, getmetatable, setmetatable
local dgetinfo, dgetupvalue, dsetupvalue = debug.getinfo, debug.getupvalue, debug.setupvalue

local M = {}

local MARK = "\0sh"  -- the key that marks a packed non-plain value inside a table tree

-- Globals that every state has on its own: never shipped, always the receiving state's.
-- A fixed list (LuaJIT's base and standard libraries), not a snapshot of _G: this module may
-- load after the job script has defined globals of its own, and those must travel.
local standard_globals = {}
for name in ([[_G _VERSION assert bit collectgarbage coroutine debug dofile error gcinfo getfenv
    getmetatable io ipairs jit load loadfile loadstring math module newproxy next os package
    pairs pcall print rawequal rawget rawset require select setfenv setmetatable string table
    tonumber tostring type unpack xpcall]]):gmatch("%S+") do
    standard_globals[name] = true
end

-- -- Names of library and module values ----------------------------------------------

-- value -> "module.field" for functions, "module" for module tables. Rebuilt when modules load.
local names, names_loaded = nil, -1

local function count_loaded()
    local n = 0
    for _ in pairs(package.loaded) do n = n + 1 end
    return n
end

local function build_names()
    local n = count_loaded()
    if names and n == names_loaded then return names end
    names, names_loaded = {}, n
    for modname, mod in pairs(package.loaded) do
        if type(mod) == "table" and modname ~= "_G" then
            if names[mod] == nil then names[mod] = { mod = modname } end
            for field, v in pairs(mod) do
                if type(field) == "string" and type(v) == "function" and names[v] == nil then
                    names[v] = { mod = modname, field = field }
                end
            end
        end
    end
    for field, v in pairs(_G) do
        if type(v) == "function" and standard_globals[field] then
            names[v] = { mod = "_G", field = field }
        end
    end
    names[_G] = { mod = "_G" }
    return names
end

-- -- Packing -------------------------------------------------------------------------

local GGET
do  -- the opcode number of GGET, read off a function that does one global read
    local ins = jutil.funcbc(function() return GGET_PROBE end, 1) -- luacheck: ignore
    GGET = bit.band(ins, 0xff)
end

-- Names of the globals a function reads (GGET instructions), nested prototypes included.
local function global_reads(f, out)
    local info = jutil.funcinfo(f)
    if not info or info.addr then return out end -- a C function
    for pc = 1, info.bytecodes - 1 do
        local ins = jutil.funcbc(f, pc)
        if ins and bit.band(ins, 0xff) == GGET then
            local d = bit.rshift(ins, 16)
            local name = jutil.funck(f, -d - 1)
            if type(name) == "string" then out[name] = true end
        end
    end
    if info.children then
        local i = 1
        while true do
            local c = jutil.funck(f, -i)
            if c == nil then break end
            if type(c) == "proto" then global_reads(c, out) end
            i = i + 1
        end
    end
    return out
end

local function where(f)
    local info = dgetinfo(f, "S")
    return string.format("%s:%d", info.short_src, info.linedefined)
end

local function refuse(ctx, what)
    error(string.format("cannot ship the function at %s: %s %s", ctx.where, ctx.path, what), 0)
end

local pack_value

local function pack_function(f, ctx)
    local known = build_names()[f]
    if known then return { [MARK] = "lib", mod = known.mod, field = known.field } end
    local k = ctx.fn_ids[f]
    if k then return { [MARK] = "fn", k = k } end
    local ok, bc = pcall(string.dump, f)
    if not ok then refuse(ctx, "is a C function that is not part of a loaded module") end
    k = #ctx.fns + 1
    ctx.fn_ids[f] = k
    local entry = { bc = bc, upv = {}, globals = nil }
    ctx.fns[k] = entry
    local outer_where, outer_path = ctx.where, ctx.path
    ctx.where = where(f)
    local i = 1
    while true do
        local name, v = dgetupvalue(f, i)
        if name == nil then break end
        ctx.path = "upvalue '" .. name .. "'"
        entry.upv[i] = pack_value(v, ctx)
        i = i + 1
    end
    local env = getfenv(f)  -- not _G for a function loaded with an environment of its own
    for gname in pairs(global_reads(f, {})) do
        local v = rawget(_G, gname)
        if v == nil and env ~= _G and type(env) == "table" then
            local ok, ev = pcall(function() return env[gname] end)
            if ok then v = ev end
        end
        if v ~= nil and not standard_globals[gname] and gname ~= "arg" then
            ctx.path = "global '" .. gname .. "'"
            entry.globals = entry.globals or {}
            entry.globals[gname] = pack_value(v, ctx)
        end
    end
    ctx.where, ctx.path = outer_where, outer_path
    return { [MARK] = "fn", k = k }
end

-- A table becomes a fresh copy of its packed contents; when it has a metatable or is reached
-- more than once (shared, or a cycle such as a class whose __index is itself), the copy holds
-- [MARK] = {id = n, mt = packed metatable} and later visits give {[MARK] = "ref", id = n}, so
-- the receiving state rebuilds the same graph.
local function pack_table(t, ctx)
    local mt = getmetatable(t)
    if mt and rawget(mt, "__sh_context") then
        local what = mt.__sh_context == "SparkContext" and "the SparkContext"
            or "the SparkContext (through " .. (mt.__sh_context == "RDD" and "an " or "a ") ..
                mt.__sh_context .. ")"
        refuse(ctx, "references " .. what ..
            " (it cannot travel to workers or into a checkpoint; use it only in the driver, " ..
            "e.g. in foreachRDD or transform)")
    end
    local known = build_names()[t]
    if known and not known.field then return { [MARK] = "mod", mod = known.mod } end
    local rec = ctx.recs[t]
    if rec then
        local meta = rawget(rec, MARK)
        if meta == nil then meta = {}; rec[MARK] = meta end
        if meta.id == nil then ctx.next_id = ctx.next_id + 1; meta.id = ctx.next_id end
        return { [MARK] = "ref", id = meta.id }
    end
    rec = {}
    ctx.recs[t] = rec
    for key, v in pairs(t) do
        if key == MARK then refuse(ctx, "holds a table with the reserved key \\0sh") end
        rec[pack_value(key, ctx)] = pack_value(v, ctx)
    end
    if mt then
        local meta = rawget(rec, MARK) or {}
        rec[MARK] = meta
        meta.mt = pack_value(mt, ctx)
    end
    return rec
end

pack_value = function(v, ctx)
    local t = type(v)
    if t == "nil" or t == "boolean" or t == "number" or t == "string" then return v end
    if t == "function" then return pack_function(v, ctx) end
    if t == "table" then return pack_table(v, ctx) end
    refuse(ctx, "is a " .. t .. ", which cannot travel to another Lua state")
end

-- -- Ownership of registry entries -------------------------------------------------------

-- An id is a boxed uint64_t cdata, so that string.buffer encodes it into plans by value. LuaJIT
-- cannot attach a finalizer to a boxed scalar (ffi.gc takes pointers, structs and arrays
-- only), so each id owns a guard (a uint64_t[1] holding the id, with ffi.gc) through this
-- weak-keyed table: when the id is collected its entry goes, the guard follows in the next
-- collection and releases the registry reference. Guards never refer back to their id.
local owners = setmetatable({}, { __mode = "k" })

local function release_guard(guard)
    C.sh_ffi_fn_unref(guard[0])
end

-- Stores bytes in the registry; returns the id owning one reference. `keep` (optional) stays
-- alive as long as the id does (what the entry refers to: broadcasts, lazy values).
local function register(s, keep)
    local id = C.sh_ffi_fn_put(s, #s)
    if id == 0 then return nil end
    local guard = ffi.gc(ffi.new("uint64_t[1]", id), release_guard)
    owners[id] = keep and { guard, keep } or guard
    return id
end

-- Drops the reference an id owns now, instead of when the id is collected (idempotent).
function M.release(id)
    local o = owners[id]
    if o == nil then return end
    owners[id] = nil
    local guard = type(o) == "table" and o[1] or o
    release_guard(ffi.gc(guard, nil))
end

-- Packs a function and stores it in the registry. Returns its id, a boxed uint64_t cdata that
-- owns one reference to the registry entry: whatever holds the id (an RDD, a plan, a DStream)
-- keeps the function alive, and the entry is released after the id is collected. The id goes
-- into plans as it is; workers take it or its number. Equal ids compare equal with == but are
-- distinct table keys: key tables by tonumber(id). Errors (naming the function's file and line
-- and the upvalue or global) when it captures what cannot travel.
function M.ship(f)
    if type(f) ~= "function" then error("expected a function, got " .. type(f), 2) end
    local ctx = { fns = {}, fn_ids = {}, recs = {}, next_id = 0, where = where(f), path = "" }
    local root = pack_value(f, ctx)
    local id = register(buffer.encode({ root = root, fns = ctx.fns }))
    if id == nil then error("out of memory shipping a function", 2) end
    return id
end

-- -- Unpacking (any state) -------------------------------------------------------------

local unpack_value

local function resolve_lib(p)
    local mod = p.mod == "_G" and _G or package.loaded[p.mod] or require(p.mod)
    if p.field == nil then return mod end
    return mod[p.field]
end

unpack_value = function(v, ctx)
    if type(v) ~= "table" then return v end
    local kind = rawget(v, MARK)
    if kind == "fn" then return ctx.loaded[v.k] end
    if kind == "lib" or kind == "mod" then return resolve_lib(v) end
    if kind == "ref" then
        local t = ctx.tables[v.id]
        if t == nil then t = {}; ctx.tables[v.id] = t end
        return t
    end
    local t
    if kind and kind.id then
        t = ctx.tables[kind.id]
        if t == nil then t = {}; ctx.tables[kind.id] = t end
    else
        t = {}
    end
    for key, x in pairs(v) do
        if key ~= MARK then rawset(t, unpack_value(key, ctx), unpack_value(x, ctx)) end
    end
    if kind and kind.mt then setmetatable(t, unpack_value(kind.mt, ctx)) end
    return t
end

-- Loads a shipped function from its serialized form.
function M.load_bytes(s)
    local packed = buffer.decode(s)
    local ctx = { loaded = {}, tables = {} }
    for k, entry in ipairs(packed.fns) do
        ctx.loaded[k] = assert(loadstring(entry.bc))
    end
    for k, entry in ipairs(packed.fns) do
        local f = ctx.loaded[k]
        for i, pv in pairs(entry.upv) do dsetupvalue(f, i, unpack_value(pv, ctx)) end
        if entry.globals then
            local env = {}
            for name, pv in pairs(entry.globals) do env[name] = unpack_value(pv, ctx) end
            setfenv(f, setmetatable(env, { __index = _G, __newindex = _G }))
        end
    end
    return unpack_value(packed.root, ctx)
end

-- -- The worker's cache ------------------------------------------------------------------

local cache, bytes_cache, ncached = {}, {}, 0

-- The bytes of registry entry `id` (a number), copied out of the registry.
local function entry_bytes(id)
    local b = C.sh_ffi_fn_get(id)
    if b == nil then return nil end
    local s = ffi.string(b.data, b.len)
    C.sh_ffi_blob_unref(b)
    return s
end

-- The function with registry id `id` (a number or a uint64_t cdata), loaded once per task
-- (see new_task).
function M.load(id)
    id = tonumber(id)
    local f = cache[id]
    if f then return f end
    local s = bytes_cache[id]
    if s == nil then
        s = entry_bytes(id)
        if s == nil then error("no shipped function with id " .. tostring(id)) end
        bytes_cache[id] = s
        ncached = ncached + 1
    end
    f = M.load_bytes(s)
    cache[id] = f
    return f
end

-- -- Dropped entries ----------------------------------------------------------------------

local LOG_BATCH = 64
local log_pos, log_ids = ffi.new("uint64_t[1]"), ffi.new("uint64_t[?]", LOG_BATCH)

local function drop(id)
    if bytes_cache[id] ~= nil then
        bytes_cache[id] = nil
        ncached = ncached - 1
    end
end

local function drop_all()
    bytes_cache, ncached = {}, 0
end

-- Forgets what the registry dropped since the last call (all of it when this state fell behind
-- the registry's log).
local function forget_dropped()
    while true do
        local n = C.sh_ffi_fn_dropped_since(log_pos, log_ids, LOG_BATCH)
        if n == shffi.FN_LOST then
            drop_all()
            return
        end
        for i = 0, n - 1 do drop(tonumber(log_ids[i])) end
        if n < LOG_BATCH then return end
    end
end

-- Starts a task: forgets the loaded functions, so the task gets fresh copies of their upvalues
-- (what a task changes in an upvalue is not seen by later tasks, as Spark deserializes per
-- task), and the bytes of registry entries dropped since the last task.
function M.new_task()
    cache = {}
    forget_dropped()
end

-- Whether this state holds registry entry `id` (for tests).
function M.is_cached(id)
    return bytes_cache[tonumber(id)] ~= nil
end

-- This state's cache (for tests): { entries = registry entries whose bytes it holds }.
function M.cache_stats()
    return { entries = ncached }
end

-- The registry's live entries and their bytes (any state).
function M.registry_stats()
    local live, bytes = ffi.new("size_t[1]"), ffi.new("size_t[1]")
    C.sh_ffi_fn_stats(live, bytes)
    return { live = tonumber(live[0]), bytes = tonumber(bytes[0]) }
end

return M
