-- scripts/bench/state_job.lua: the streamhost side of the state-memory benchmark:
-- updateStateByKey(sum) holding KEYS string keys with number states, fed by BATCHES batches of
-- KEYS / BATCHES new keys (generated in the workers from a queueStream of small RDDs), then
-- UPDATES batches that touch every key again. Prints the process's peak RSS over the
-- baseline (after the workers started) per key:
--   BENCH keys=K state_keys=K baseline_kb=.. peak_kb=.. bytes_per_key=.. status=ok
-- usage: host/streamhost --master local[N] state_job.lua [KEYS] [BATCHES] [UPDATES] [BATCH_S]
local sh = require "streamhost"

local KEYS = tonumber(arg[1]) or 1000000
local BATCHES = tonumber(arg[2]) or 20
local UPDATES = tonumber(arg[3]) or 0
local BATCH = tonumber(arg[4]) or 0.5

local function status_kb(field)
    local f = assert(io.open("/proc/self/status"))
    local s = f:read("*a")
    f:close()
    return tonumber(s:match(field .. ":%s*(%d+)"))
end

local sc = sh.SparkContext(nil, "BenchState")
local ssc = sh.StreamingContext(sc, BATCH)
sc:setCheckpointDir(os.getenv("TMPDIR") or "/tmp")

local P = sc.defaultParallelism * 2
local per_batch = math.ceil(KEYS / BATCHES)
local queue = {}
for b = 1, BATCHES + UPDATES do
    local seeds = {}
    for i = 0, P - 1 do seeds[i + 1] = { b, i } end
    queue[b] = sc:parallelize(seeds, P)
end

-- Batch b <= BATCHES brings keys [(b-1)*per_batch, b*per_batch); later batches every key.
local function generate(seed)
    local b, i = seed[1], seed[2]
    local from, to = 0, KEYS
    if b <= BATCHES then from, to = (b - 1) * per_batch, math.min(b * per_batch, KEYS) end
    local n = to - from
    local lo, hi = from + math.floor(i * n / P), from + math.floor((i + 1) * n / P)
    local out = {}
    for j = lo, hi - 1 do out[#out + 1] = { "key" .. j, 1 } end
    return out
end
local function update(values, last)
    local s = last or 0
    for i = 1, #values do s = s + values[i] end
    return s
end

sc:parallelize({ 1, 2, 3, 4 }, P):count()  -- start the workers before the baseline
collectgarbage()
local baseline = status_kb("VmRSS")

local state = ssc:queueStream(queue):flatMap(generate):updateStateByKey(update, sc.defaultParallelism)
local sizes = {}
state:foreachRDD(function(rdd) sizes[#sizes + 1] = rdd:count() end)
ssc:addStreamingListener(sh.StreamingListener({
    onBatchCompleted = function()
        if #sizes >= BATCHES + UPDATES then ssc:stop(false, false) end
    end,
}))
ssc:start()
ssc:awaitTerminationOrTimeout((BATCHES + UPDATES) * BATCH * 20 + 60)
local peak = status_kb("VmHWM")
local n = sizes[#sizes] or -1
print(string.format("BENCH keys=%d state_keys=%d baseline_kb=%d peak_kb=%d bytes_per_key=%.1f status=%s",
    KEYS, n, baseline, peak, (peak - baseline) * 1024 / KEYS, n == KEYS and "ok" or "wrong"))
