-- scripts/bench/window_job.lua: the streamhost side of the incremental-window benchmark:
-- reduceByKeyAndWindow(add, sub) over KEYS distinct keys (every batch brings KEYS records, one
-- per key, generated in the workers from a queueStream of small RDDs), with a window of W
-- batches sliding by one batch. A listener takes each batch's processingDelay; after W + SKIP
-- warm-up batches it averages MEASURE batches and prints:
--   BENCH window=W keys=K measured=N median_ms=.. mean_ms=.. min_ms=.. max_ms=.. status=ok
-- usage: host/streamhost --master local[N] window_job.lua W [KEYS] [MEASURE] [BATCH_S]
local sh = require "streamhost"

local W = tonumber(arg[1]) or error("usage: window_job.lua WINDOW_BATCHES [KEYS] [MEASURE] [BATCH_S]")
local KEYS = tonumber(arg[2]) or 100000
local MEASURE = tonumber(arg[3]) or 20
local BATCH = tonumber(arg[4]) or 0.5
local SKIP = 10

local sc = sh.SparkContext(nil, "BenchWindow")
local ssc = sh.StreamingContext(sc, BATCH)
sc:setCheckpointDir(os.getenv("TMPDIR") or "/tmp")

local P = sc.defaultParallelism * 2
local total = W + SKIP + MEASURE
local queue = {}
for b = 1, total + 2 do
    -- P seeds per batch; each worker task makes KEYS / P records, every key once per batch.
    local seeds = {}
    for i = 0, P - 1 do seeds[i + 1] = { b, i } end
    queue[b] = sc:parallelize(seeds, P)
end

local per = math.ceil(KEYS / P)
local function generate(seed)
    local b, i = seed[1], seed[2]
    local out, n = {}, 0
    for j = i * per, math.min((i + 1) * per, KEYS) - 1 do
        n = n + 1
        out[n] = { "key" .. j, (b + j) % 7 + 1 }
    end
    return out
end
local function add(a, x) return a + x end
local function sub(a, x) return a - x end

local windowed = ssc:queueStream(queue)
    :flatMap(generate)
    :reduceByKeyAndWindow(add, sub, W * BATCH, BATCH, sc.defaultParallelism)
local sizes = {}
windowed:foreachRDD(function(rdd) sizes[#sizes + 1] = rdd:count() end)

local delays, seen = {}, 0
ssc:addStreamingListener(sh.StreamingListener({
    onBatchCompleted = function(_, info)
        seen = seen + 1
        if seen > W + SKIP and #delays < MEASURE then delays[#delays + 1] = info.processingDelay end
        if #delays >= MEASURE then ssc:stop(true, false) end
    end,
}))
ssc:start()
ssc:awaitTerminationOrTimeout(total * BATCH * 10 + 60)
if #delays < MEASURE then
    print(string.format("BENCH window=%d status=incomplete measured=%d", W, #delays))
    os.exit(1)
end
table.sort(delays)
local sum = 0
for _, d in ipairs(delays) do sum = sum + d end
print(string.format("BENCH window=%d keys=%d measured=%d median_ms=%.1f mean_ms=%.1f min_ms=%.1f max_ms=%.1f window_keys=%d status=ok",
    W, KEYS, #delays, delays[math.floor(#delays / 2) + 1] * 1000, sum / #delays * 1000,
    delays[1] * 1000, delays[#delays] * 1000, sizes[#sizes] or -1))
