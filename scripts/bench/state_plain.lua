-- scripts/bench/state_plain.lua: the plain-LuaJIT side of the state-memory benchmark: one table
-- holding the same KEYS string keys ("key" .. i) with number values. Prints its peak RSS over
-- the baseline per key:
--   BENCH keys=K baseline_kb=.. peak_kb=.. bytes_per_key=.. status=ok
-- usage: luajit state_plain.lua [KEYS]
local KEYS = tonumber(arg[1]) or 1000000

local function status_kb(field)
    local f = assert(io.open("/proc/self/status"))
    local s = f:read("*a")
    f:close()
    return tonumber(s:match(field .. ":%s*(%d+)"))
end

collectgarbage()
local baseline = status_kb("VmRSS")
local t = {}
for j = 0, KEYS - 1 do t["key" .. j] = 1 end
for j = 0, KEYS - 1 do t["key" .. j] = t["key" .. j] + 1 end
local n = 0
for _ in pairs(t) do n = n + 1 end
local peak = status_kb("VmHWM")
print(string.format("BENCH keys=%d baseline_kb=%d peak_kb=%d bytes_per_key=%.1f status=%s",
    KEYS, baseline, peak, (peak - baseline) * 1024 / KEYS, n == KEYS and "ok" or "wrong"))
