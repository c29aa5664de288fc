-- wordcount_job.lua - owns the streamhost side of the word-count benchmark: a
-- pyspark.streaming-style job (API: /work/shared/API.md) that counts the words of a
-- socketTextStream per 0.2 s batch, sums the counts until EXPECTED words were seen,
-- stops, and prints one machine-readable line:
--   BENCH words=N expected=E seconds=S stream_seconds=T rate=R batches=B clock=C status=ok
-- seconds: from ssc:start() to the batch that completed the total; stream_seconds: from the
-- start of the first non-empty batch interval to then; rate = words / seconds.
-- MODE "lua" (default): the word count as Spark's example writes it, with Lua functions;
-- "ops": with the built-in operators (sh.ops), which the host runs in C.
-- usage: host/streamhost [--master local[N]] wordcount_job.lua HOST PORT EXPECTED [IDLE_S] [MODE]
local sh = require "streamhost"

local host = arg[1] or "127.0.0.1"
local port = tonumber(arg[2]) or error("usage: wordcount_job.lua HOST PORT EXPECTED [IDLE_S]")
local expected = tonumber(arg[3]) or error("usage: wordcount_job.lua HOST PORT EXPECTED [IDLE_S]")
local idle_limit = tonumber(arg[4]) or 10 -- seconds of empty batches after data: give up
local mode = arg[5] or "lua"
local BATCH = 0.2

-- Wall clock (epoch seconds, like batch times): clock_gettime through the FFI when the
-- script state has it, else os.time (1 s resolution). Used only in the script's own state.
local now, clock_name = os.time, "os.time"
do
  local ok, ffi = pcall(require, "ffi")
  if ok then
    pcall(ffi.cdef, [[
      typedef struct { long tv_sec; long tv_nsec; } sh_bench_timespec;
      int clock_gettime(int clk, sh_bench_timespec *ts);
    ]])
    local okts, ts = pcall(ffi.new, "sh_bench_timespec")
    local function ffi_now()
      ffi.C.clock_gettime(0, ts) -- CLOCK_REALTIME
      return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
    end
    if okts and pcall(ffi_now) then now, clock_name = ffi_now, "clock_gettime" end
  end
end

-- No master here: as with pyspark's SparkContext(appName=...), the master then comes from
-- the launcher (`host/streamhost --master local[N]`, which applies when the script names none).
local sc = sh.SparkContext(nil, "BenchWordCount")
local ssc = sh.StreamingContext(sc, BATCH)
local lines = ssc:socketTextStream(host, port) -- default storage level, as a plain port would

-- Same split as wc_plain.lua: gmatch("%S+").
local function split_words(line)
  local out, n = {}, 0
  for w in line:gmatch("%S+") do
    n = n + 1
    out[n] = w
  end
  return out
end
local function add(a, b) return a + b end

local counts
if mode == "ops" then
  counts = lines:flatMap(sh.ops.words):map(sh.ops.pair(1)):reduceByKey(sh.ops.add)
else
  counts = lines:flatMap(split_words)
                :map(function(w) return {w, 1} end)
                :reduceByKey(add)
end

local total, batches, idle = 0, 0, 0
local first_batch, t_done, done = nil, nil, false
counts:foreachRDD(function(time, rdd)
  if done then return end
  local n = rdd:values():fold(0, add)
  if n > 0 then
    first_batch = first_batch or time
    total = total + n
    batches = batches + 1
    idle = 0
  else
    idle = idle + BATCH
  end
  -- before any data, allow the receiver longer to connect
  local limit = first_batch and idle_limit or 6 * idle_limit
  if total >= expected or idle >= limit then
    done, t_done = true, now()
  end
end)

-- BENCH_TRACE=1: one line per batch on stderr (records; submission, start and end times), to
-- see where the time goes.
if os.getenv("BENCH_TRACE") == "1" then
  ssc:addStreamingListener(sh.StreamingListener {
    onBatchCompleted = function(_, info)
      io.stderr:write(string.format("batch %.1f records=%d submitted=%.3f start=%.3f end=%.3f\n",
        info.batchTime, info.numRecords, info.submissionTime, info.processingStartTime, info.processingEndTime))
    end,
  })
end

local t_start = now()
ssc:start()
-- Stop from the script, not from inside foreachRDD (stopping from a batch can deadlock in
-- Spark); the wait is short and the timing above is taken inside the completing batch.
local stopped = false
while not done do
  if ssc:awaitTerminationOrTimeout(0.1) then stopped = true; break end
end
if not stopped then ssc:stop(false, false) end

local status = total == expected and "ok" or (done and "incomplete" or "stopped")
t_done = t_done or now()
local seconds = t_done - t_start
local stream_seconds = first_batch and (t_done - (first_batch - BATCH)) or 0
io.write(string.format(
  "BENCH words=%d expected=%d seconds=%.3f stream_seconds=%.3f rate=%.0f batches=%d clock=%s status=%s\n",
  total, expected, seconds, stream_seconds, seconds > 0 and total / seconds or 0,
  batches, clock_name, status))
io.stdout:flush()
