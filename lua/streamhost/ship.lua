-- streamhost.ship: turns closures into bytes that another Lua state can load (bytecode plus
-- upvalues and referenced globals by value; modules and library functions by name), keeps
-- those bytes in the host's registry under a reference-counted id, and loads them in worker
-- states once, putting the shipped values back after each task.
local buffer = require "string.buffer"
local jutil = require "jit.util"
local bit = require "bit"
local shffi = require "streamhost.ffi"
local ffi = require "ffi"

local C = shffi.C
local type, pairs, tostring, getmetatable, setmetatable = type, pairs, tostring, getmetatable, setmetatable
local dgetinfo, dgetupvalue, dsetupvalue = debug.getinfo, debug.getupvalue, debug.setupvalue
local dgetmetatable, dsetmetatable = debug.getmetatable, debug.setmetatable

local M = {}

local MARK = "\0sh"  -- the key that marks a packed non-plain value inside a table tree

-- Globals that every state has on its own: never shipped, always the receiving state's.
-- A fixed list (LuaJIT's base and standard libraries), not a snapshot of _G: this module may
-- load after the job script has defined globals of its own, and those must travel.
local standard_globals = {}
M.STANDARD_GLOBALS = standard_globals
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
    local subject = ctx.where and "cannot ship the function at " .. ctx.where or ctx.subject
    error(string.format("%s: %s %s", subject, ctx.path, what), 0)
end

local pack_value

-- -- Objects that travel as references (extensions) ----------------------------------------
--
-- Objects of other modules (lazy values, broadcast variables, accumulators) travel as a mark
-- {[MARK] = "ext", kind = ..., mod = ..., fields...} that the receiving state turns back into
-- an object of its own. M.travel(mt, spec) declares the objects whose metatable is mt:
--   spec.kind, spec.module   the mark's kind, and the module that receives it (required by the
--                            receiving state on first sight)
--   spec.pack(obj, pack)     the mark's fields (values packed with pack(v)); or nil, err to
--                            refuse the object ("is a ..." completes the refusal)
-- The shipped id keeps obj alive. M.receive(kind, make) declares, in the receiving module,
-- make(fields, unpack) -> the state's object for a mark (made once per loaded pack). The
-- fields are packed on their own (no table is shared with the rest of the pack), so they are
-- unpacked once and never put back.
local travelers, receivers = {}, {}

function M.travel(mt, spec)
    travelers[mt] = spec
end

function M.receive(kind, make)
    receivers[kind] = make
end

local function pack_traveler(obj, spec, ctx)
    local sub = { fns = ctx.fns, fn_ids = ctx.fn_ids, recs = {}, next_id = ctx.next_id,
                  where = ctx.where, subject = ctx.subject, path = ctx.path, keep = ctx.keep }
    local fields, err = spec.pack(obj, function(v) return pack_value(v, sub) end)
    if fields == nil then refuse(ctx, err) end
    ctx.next_id = sub.next_id
    fields[MARK], fields.kind, fields.mod = "ext", spec.kind, spec.module
    ctx.keep[#ctx.keep + 1] = obj
    return fields
end

-- lpeg patterns are userdata made by C code: they cannot travel, but a function that builds
-- one can (sh.lazy).
local lpeg_mt
local function is_lpeg_pattern(v)
    local lpeg = package.loaded.lpeg
    if lpeg == nil then return false end
    if lpeg_mt == nil then lpeg_mt = dgetmetatable(lpeg.P(true)) end
    return dgetmetatable(v) == lpeg_mt
end

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
    -- A function loaded with an environment of its own (a reloaded script's globals, a
    -- shipped pack's) reads its globals there, not in _G.
    local env = getfenv(f)
    for gname in pairs(global_reads(f, {})) do
        local v
        if env ~= _G and type(env) == "table" then
            local ok, ev = pcall(function() return env[gname] end)
            if ok then v = ev end
        else
            v = rawget(_G, gname)
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
    local spec = mt and travelers[mt]
    if spec then return pack_traveler(t, spec, ctx) end
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
    if t == "userdata" and is_lpeg_pattern(v) then
        refuse(ctx, "is an lpeg pattern, which cannot travel to another Lua state: build it in " ..
            "each worker with sh.lazy(function() return pattern end), the function making the " ..
            "pattern (lpeg.P, lpeg.R, ...), and use the lazy value's .value in the function")
    end
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
    local ctx = { fns = {}, fn_ids = {}, recs = {}, next_id = 0, where = where(f), path = "",
                  keep = {} }
    local root = pack_value(f, ctx)
    local id = register(buffer.encode({ root = root, fns = ctx.fns }), ctx.keep[1] and ctx.keep)
    if id == nil then error("out of memory shipping a function", 2) end
    return id
end

-- Packs any value (functions in it travel as shipped functions do, tables with their sharing
-- and metatables) and stores it in the registry; returns the owned id. `subject` opens a
-- refusal ("cannot broadcast the value"); `salt` (any string) keeps equal values apart
-- when each must have an entry of its own.
function M.put_value(v, subject, salt)
    local ctx = { fns = {}, fn_ids = {}, recs = {}, next_id = 0, subject = subject,
                  path = "value", keep = {} }
    local root = pack_value(v, ctx)
    local id = register(buffer.encode({ root = root, fns = ctx.fns, salt = salt }),
        ctx.keep[1] and ctx.keep)
    if id == nil then error("out of memory storing a value in the registry", 2) end
    return id
end

-- Drops every worker's loaded copy of entry `id` (it is loaded again on next use); the entry
-- stays.
function M.evict(id)
    C.sh_ffi_fn_evict(id)
end

-- -- Unpacking (any state) -------------------------------------------------------------
--
-- The decoded bytes of one registry entry (a "pack") are loaded once per state: its functions
-- come from bytecode once and keep their identity, so the traces LuaJIT compiles for them
-- survive from task to task. What pyspark gets by unpickling per task (every task starts from
-- the shipped values) comes from putting the values back after a task that changed them.
--
-- Putting back must not give an upvalue a new object when the upvalue is immutable (never
-- assigned in the source; LuaJIT keeps the flag in the bytecode): the trace recorder
-- constifies such an upvalue's current value when it is a function, string, number or boolean
-- (lj_record.c, rec_upvalue_constify; tables, userdata and threads are left alone), and a
-- trace compiled earlier would go on using the old object. So the loaded functions and the
-- tables that upvalues and shipped globals hold keep their identity: a table's contents are
-- put back in place (nested tables as fresh copies), a function's own upvalues are put back,
-- and only mutable upvalues are set with debug.setupvalue. Immutable scalars cannot change.
--
-- After each task the pack is compared with what was shipped (no allocation; for a captured
-- table that is one pass over it) and put back only when it differs, so that nothing a
-- finished task made stays reachable from a loaded function.

local function resolve_lib(p)
    local mod = p.mod == "_G" and _G or package.loaded[p.mod] or require(p.mod)
    if p.field == nil then return mod end
    return mod[p.field]
end

-- Whether packed value p becomes a table that this module makes (and may refill).
local function makes_table(p)
    if type(p) ~= "table" then return false end
    local kind = rawget(p, MARK)
    return kind == nil or kind == "ref" or type(kind) == "table"
end

-- The immutable flags of a dumped function's upvalues, by upvalue index: the upvalue list of
-- its prototype (the last one in the dump, after its children) carries PROTO_UV_IMMUTABLE
-- (0x4000), which the loaded closure's upvalues inherit (lj_func_newL_empty).
local function immutable_upvalues(bc)
    local p, pos = ffi.cast("const uint8_t *", bc), 4
    local function uleb()
        local v, scale = 0, 1
        while true do
            local b = p[pos]
            pos = pos + 1
            v = v + bit.band(b, 0x7f) * scale
            if b < 0x80 then return v end
            scale = scale * 128
        end
    end
    local flags = uleb()
    local strip, big_endian = bit.band(flags, 2) ~= 0, bit.band(flags, 1) ~= 0
    if not strip then pos = pos + uleb() end  -- the chunk name
    local last
    while true do
        local len = uleb()
        if len == 0 then break end
        last, pos = pos, pos + len
    end
    pos = last
    local nuv = p[pos + 3]
    pos = pos + 4
    uleb() -- sizekgc
    uleb() -- sizekn
    local nbc = uleb()
    if not strip and uleb() > 0 then uleb(); uleb() end  -- debug info size, first line, lines
    pos = pos + nbc * 4
    local imm = {}
    for i = 0, nuv - 1 do
        local hi = big_endian and p[pos + 2 * i] or p[pos + 2 * i + 1]
        imm[i + 1] = bit.band(hi, 0x40) ~= 0
    end
    return imm
end

-- A generation: the tables made by one unpacking of a pack. tables: id -> table (shared ones);
-- made: packed table -> the table made from it; keep: packed table -> the kept table to refill.
local function new_gen()
    return { tables = {}, made = {}, keep = {} }
end

-- The value of packed value v in pack L, making the tables of generation g.
local function unpack_value(v, L, g)
    if type(v) ~= "table" then return v end
    local kind = rawget(v, MARK)
    if kind == "fn" then return L.fns[v.k] end
    if kind == "lib" or kind == "mod" then
        local r = L.lib[v]
        if r == nil then
            r = resolve_lib(v)
            L.lib[v] = r
        end
        return r
    end
    if kind == "ext" then
        local obj = L.ext[v]
        if obj == nil then
            local make = receivers[v.kind]
            if make == nil then
                require(v.mod)
                make = receivers[v.kind]
                if make == nil then error("cannot receive a shipped " .. tostring(v.kind), 0) end
            end
            obj = make(v, function(x) return unpack_value(x, L, g) end)
            L.ext[v] = obj
        end
        return obj
    end
    local tables = g.tables
    if kind == "ref" then
        local t = tables[v.id]
        if t == nil then t = {}; tables[v.id] = t end
        return t
    end
    local t
    if kind and kind.id then
        t = tables[kind.id]
        if t == nil then t = {}; tables[kind.id] = t end
    else
        t = g.keep[v] or {}
    end
    g.made[v] = t
    for key, x in next, v do
        if key ~= MARK then rawset(t, unpack_value(key, L, g), unpack_value(x, L, g)) end
    end
    if kind and kind.mt then dsetmetatable(t, unpack_value(kind.mt, L, g)) end
    return t
end

-- Loads a decoded pack: its functions, their upvalues and globals. Returns the pack's state;
-- L.root is the shipped value.
local function load_pack(packed)
    local L = { packed = packed, fns = {}, imm = {}, env = {}, envmt = {}, lib = {}, ext = {},
                slots = {} }
    for k, entry in ipairs(packed.fns) do
        L.fns[k] = assert(loadstring(entry.bc))
        L.imm[k] = immutable_upvalues(entry.bc)
    end
    local g = new_gen()
    local slots = L.slots
    for k, entry in ipairs(packed.fns) do
        local f = L.fns[k]
        for i = 1, #L.imm[k] do
            local p = entry.upv[i]
            local v = unpack_value(p, L, g)
            dsetupvalue(f, i, v)
            if makes_table(p) then slots[#slots + 1] = { p = p, t = v } end
        end
        if entry.globals then
            local env, mt = {}, { __index = _G, __newindex = _G }
            for name, p in pairs(entry.globals) do
                local v = unpack_value(p, L, g)
                env[name] = v
                if makes_table(p) then slots[#slots + 1] = { p = p, t = v } end
            end
            L.env[k], L.envmt[k] = setmetatable(env, mt), mt
            setfenv(f, env)
        end
    end
    L.gen = g
    L.root = unpack_value(packed.root, L, g)
    return L
end

-- -- Comparing a pack with what was shipped ----------------------------------------------

local same_contents

-- Whether cur is what packed value p became in generation g (tables: the same table, with the
-- same contents).
local function same(L, g, cur, p)
    if type(p) ~= "table" then return cur == p or (p ~= p and cur ~= cur) end
    local kind = rawget(p, MARK)
    if kind == "fn" then return cur == L.fns[p.k] end
    if kind == "lib" or kind == "mod" then return cur == L.lib[p] end
    if kind == "ext" then return cur == L.ext[p] end
    if kind == "ref" then return cur == g.tables[p.id] end
    return cur == g.made[p] and same_contents(L, g, cur, p, true)
end

-- The object that a packed key stands for in generation g.
local function key_of(L, g, p)
    local kind = rawget(p, MARK)
    if kind == "fn" then return L.fns[p.k] end
    if kind == "lib" or kind == "mod" then return L.lib[p] end
    if kind == "ext" then return L.ext[p] end
    if kind == "ref" then return g.tables[p.id] end
    return g.made[p]
end

-- Whether table t holds exactly the entries of packed table p (and, with check_mt, its
-- metatable).
same_contents = function(L, g, t, p, check_mt)
    local n = 0
    for pk, px in next, p do
        if pk ~= MARK then
            n = n + 1
            local k = pk
            if type(pk) == "table" then
                k = key_of(L, g, pk)
                if k == nil or not same(L, g, k, pk) then return false end
            end
            if not same(L, g, rawget(t, k), px) then return false end
        end
    end
    for _ in next, t do n = n - 1 end
    if n ~= 0 then return false end
    if not check_mt then return true end
    local meta = rawget(p, MARK)
    local mt = dgetmetatable(t)
    if meta and meta.mt ~= nil then return same(L, g, mt, meta.mt) end
    return mt == nil
end

-- Whether nothing of pack L changed since it was loaded or last put back.
local function unchanged(L)
    local g = L.gen
    for k, entry in ipairs(L.packed.fns) do
        local f, imm = L.fns[k], L.imm[k]
        for i = 1, #imm do
            local p = entry.upv[i]
            if not imm[i] or type(p) == "table" then  -- an immutable scalar cannot change
                local _, cur = dgetupvalue(f, i)
                if not same(L, g, cur, p) then return false end
            end
        end
        local env = L.env[k]
        if env and (getfenv(f) ~= env or dgetmetatable(env) ~= L.envmt[k]
                    or not same_contents(L, g, env, entry.globals, false)) then
            return false
        end
    end
    return true
end

local function clear(t)
    dsetmetatable(t, nil)
    for k in next, t do t[k] = nil end
end

-- Puts pack L back as it was shipped: the kept tables refilled in place (nested tables new),
-- mutable upvalues set again, the functions' globals refilled.
local function put_back(L)
    local g = new_gen()
    -- Emptied first, all of them: unpacking one slot may refill another's table.
    for _, s in ipairs(L.slots) do clear(s.t) end
    for _, s in ipairs(L.slots) do
        local p = s.p
        local kind = rawget(p, MARK)
        if kind == "ref" then
            g.tables[p.id] = s.t
        elseif kind and kind.id then
            g.tables[kind.id] = s.t
        else
            g.keep[p] = s.t
        end
    end
    for k, entry in ipairs(L.packed.fns) do
        local f, imm = L.fns[k], L.imm[k]
        for i = 1, #imm do
            local p = entry.upv[i]
            if not imm[i] then
                dsetupvalue(f, i, unpack_value(p, L, g))
            elseif makes_table(p) then
                unpack_value(p, L, g)  -- refills the table the upvalue holds
            end
        end
        local env = L.env[k]
        if env then
            clear(env)
            for name, p in pairs(entry.globals) do rawset(env, name, unpack_value(p, L, g)) end
            dsetmetatable(env, L.envmt[k])
            setfenv(f, env)
        end
    end
    L.gen = g
end

-- -- Bytes for checkpoints ------------------------------------------------------------------

M.MARK = MARK

-- Packs any value as put_value does, into bytes of its own (not kept in the registry): what a
-- checkpoint holds of a driver function. Refusals as ship's, opened by `subject` when v is not
-- a function.
function M.pack_bytes(v, subject)
    local ctx = { fns = {}, fn_ids = {}, recs = {}, next_id = 0, subject = subject,
                  path = "value", keep = {} }
    if type(v) == "function" then ctx.where, ctx.path = where(v), "" end
    local root = pack_value(v, ctx)
    return buffer.encode({ root = root, fns = ctx.fns })
end

-- The value that pack_bytes (or a registry entry's bytes) packed, loaded in this state.
function M.unpack_bytes(s)
    return load_pack(buffer.decode(s)).root
end

-- The bytes of registry entry `id` (a number or an id), or nil when there is none.
function M.entry_bytes(id)
    local b = C.sh_ffi_fn_get(tonumber(id))
    if b == nil then return nil end
    local s = ffi.string(b.data, b.len)
    C.sh_ffi_blob_unref(b)
    return s
end

-- Stores bytes (a registry entry's, from a checkpoint) in the registry; returns the owned id.
function M.register_bytes(s)
    local id = register(s)
    if id == nil then error("out of memory restoring a shipped function", 2) end
    return id
end

-- -- The worker's cache ------------------------------------------------------------------

local packs, npacks = {}, 0             -- registry id -> loaded pack
local nloads, nputbacks = 0, 0          -- counts, for tests and benchmarks
local busy, nbusy = {}, 0               -- the packs the running task used
local dec = buffer.new()

-- The decoded bytes of registry entry `id` (a number), or nil when there is no such entry.
local function decode_entry(id)
    local b = C.sh_ffi_fn_get(id)
    if b == nil then return nil end
    dec:set(b.data, b.len)  -- read in place: the reference keeps the bytes
    local ok, v = pcall(dec.decode, dec)
    dec:reset()
    C.sh_ffi_blob_unref(b)
    if not ok then error(v, 0) end
    return v
end

-- The function with registry id `id` (a number or a uint64_t cdata), loaded on first use in
-- this state and kept; the task that calls this sees it as shipped (see end_task).
function M.load(id)
    id = tonumber(id)
    local L = packs[id]
    if L == nil then
        local packed = decode_entry(id)
        if packed == nil then error("no shipped function with id " .. tostring(id)) end
        L = load_pack(packed)
        L.id = id
        packs[id] = L
        npacks, nloads = npacks + 1, nloads + 1
    end
    if not L.busy then
        L.busy = true
        nbusy = nbusy + 1
        busy[nbusy] = L
    end
    return L.root
end

-- true and the value stored with put_value under `id` (a number), loaded afresh in this state
-- (the caller keeps it); false when the registry has no such entry.
function M.load_value(id)
    local packed = decode_entry(id)
    if packed == nil then return false end
    return true, load_pack(packed).root
end

-- Ends a task (after its result is encoded): every pack the task used is put back as shipped
-- where it differs, so the next task starts from the shipped values and nothing the task made
-- stays reachable. A pack that cannot be put back is dropped (loaded again on next use).
function M.end_task()
    for i = 1, nbusy do
        local L = busy[i]
        busy[i] = nil
        L.busy = false
        local ok, same_as_shipped = pcall(unchanged, L)
        if not (ok and same_as_shipped) then
            nputbacks = nputbacks + 1
            if not pcall(put_back, L) and packs[L.id] == L then
                packs[L.id] = nil
                npacks = npacks - 1
            end
        end
    end
    nbusy = 0
end

-- -- Dropped entries ----------------------------------------------------------------------

local LOG_BATCH = 64
local log_pos, log_ids = ffi.new("uint64_t[1]"), ffi.new("uint64_t[?]", LOG_BATCH)

local drop_listeners = {}

-- Calls f(id) for every registry entry this state must forget from now on, f(nil) when it
-- must forget them all (a cache keyed by registry id, such as the lazy values').
function M.on_drop(f)
    drop_listeners[#drop_listeners + 1] = f
end

local function drop(id)
    if packs[id] ~= nil then
        packs[id] = nil
        npacks = npacks - 1
    end
    for _, f in ipairs(drop_listeners) do f(id) end
end

local function drop_all()
    packs, npacks = {}, 0
    for _, f in ipairs(drop_listeners) do f(nil) end
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

-- Starts a task: forgets the packs whose registry entries were dropped since the last task.
function M.new_task()
    if nbusy > 0 then M.end_task() end  -- the last task's end was not signalled
    forget_dropped()
end

-- Whether this state holds registry entry `id` loaded (for tests).
function M.is_cached(id)
    return packs[tonumber(id)] ~= nil
end

-- This state's cache (for tests and benchmarks): entries = registry entries it holds loaded,
-- loads = how many it loaded since it started, put_backs = how many times a task's changes
-- were undone.
function M.cache_stats()
    return { entries = npacks, loads = nloads, put_backs = nputbacks }
end

-- The registry's live entries and their bytes (any state).
function M.registry_stats()
    local live, bytes = ffi.new("size_t[1]"), ffi.new("size_t[1]")
    C.sh_ffi_fn_stats(live, bytes)
    return { live = tonumber(live[0]), bytes = tonumber(bytes[0]) }
end

return M
