-- scripts/bench/checkpoint_job.lua: the streamhost side of the checkpoint benchmark.
--   MODE=state:   DIR/in gets a file of KEYS distinct words; updateStateByKey holds them; after
--                 that batch the context stops gracefully, which writes the final state
--                 checkpoint. Prints
--                 BENCH mode=state keys=K state_seconds=S state_mb=M metadata_seconds=S
--                 Run again on the same DIR, it recovers and prints
--                 BENCH mode=recover keys=K recovery_seconds=S (getOrCreate + start: the graph,
--                 the state read and installed in the workers)
--   MODE=wordcount: a stateful word count (updateStateByKey) of a socketTextStream until
--                 EXPECTED words were counted; CKPT=on checkpoints (ssc:checkpoint), off only
--                 sets the SparkContext's directory. Prints
--                 BENCH mode=wordcount ckpt=on|off words=N seconds=S rate=R writes=W
-- usage: host/streamhost --master local[N] checkpoint_job.lua MODE DIR [KEYS | PORT EXPECTED]
local sh = require "streamhost"
local C = require("streamhost.ffi").C

local mode, dir = arg[1], arg[2]
local BATCH = 1

local function words(line)
    local out = {}
    for w in line:gmatch("%S+") do out[#out + 1] = w end
    return out
end

local function sum(values, total)
    total = total or 0
    for _, v in ipairs(values) do total = total + v end
    return total
end

-- Progress is kept in a global: functions keep their upvalues' values as of the checkpoint,
-- the global table is the live one.
PROGRESS = { keys = 0, words = 0 }

if mode == "state" then
    local keys = tonumber(arg[3]) or 1000000
    local function setup()
        local ssc = sh.StreamingContext(sh.SparkContext(nil, "BenchCheckpointState"), 1)
        local totals = ssc:textFileStream(dir .. "/in"):map(function(w) return { w, 1 } end)
            :updateStateByKey(sum)
        totals:checkpoint(1)  -- a state checkpoint after every batch
        totals:foreachRDD(function(rdd) PROGRESS.keys = rdd:count() end)
        return ssc
    end
    local t0 = C.sh_ffi_now()
    local ssc = sh.StreamingContext.getOrCreate(dir .. "/cp", setup)
    local recovering = ssc._recovery ~= nil
    ssc:start()
    local t1 = C.sh_ffi_now()
    if recovering then
        local restored = 0
        for _, d in ipairs(ssc._dstreams) do
            local rdd = d._sid and require("streamhost.state").current(d)
            for _, part in ipairs(rdd and rdd._parts or {}) do
                for _, b in ipairs(part) do restored = restored + tonumber(b.count) end
            end
        end
        ssc:stop(true, false)
        io.write(string.format("BENCH mode=recover keys=%d recovery_seconds=%.3f\n", restored, t1 - t0))
        return
    end
    io.stderr:write("bench: writing ", keys, " keys ...\n")
    local f = assert(io.open(dir .. "/in/.keys", "w"))
    for i = 1, keys do f:write("key", i, "\n") end
    f:close()
    assert(os.rename(dir .. "/in/.keys", dir .. "/in/keys"))
    while PROGRESS.keys < keys do ssc:awaitTerminationOrTimeout(0.2) end
    io.stderr:write("bench: ", keys, " keys in state; waiting for their state checkpoint ...\n")
    local st
    repeat
        ssc:awaitTerminationOrTimeout(0.2)
        st = ssc:_checkpoint_status()
    until st.state and st.state.bytes > 0 and st.state.time and st.state.time >= 0
        and st.state.bytes >= keys * 8
    ssc:stop(true, false)
    io.write(string.format("BENCH mode=state keys=%d state_seconds=%.3f state_mb=%.1f metadata_seconds=%.3f\n",
        PROGRESS.keys, st.state.seconds, st.state.bytes / 1048576, st.metadata.seconds))
elseif mode == "wordcount" then
    local port, expected = tonumber(arg[3]), tonumber(arg[4])
    local on = os.getenv("CKPT") == "on"
    local sc = sh.SparkContext(nil, "BenchCheckpointWordCount")
    local ssc = sh.StreamingContext(sc, BATCH)
    if on then ssc:checkpoint(dir) else sc:setCheckpointDir(dir) end
    local pairs_ = ssc:socketTextStream("127.0.0.1", port):flatMap(words):map(function(w) return { w, 1 } end)
    pairs_:reduceByKey(function(a, b) return a + b end):foreachRDD(function(rdd)
        PROGRESS.words = PROGRESS.words + rdd:values():fold(0, function(a, b) return a + b end)
    end)
    pairs_:updateStateByKey(sum):foreachRDD(function(rdd) rdd:count() end)
    local t0 = C.sh_ffi_now()
    ssc:start()
    while PROGRESS.words < expected do
        if ssc:awaitTerminationOrTimeout(0.1) then break end
    end
    local t1 = C.sh_ffi_now()
    ssc:stop(true, true)
    local st = ssc:_checkpoint_status()
    io.write(string.format("BENCH mode=wordcount ckpt=%s words=%d seconds=%.3f rate=%.0f writes=%d\n",
        on and "on" or "off", PROGRESS.words, t1 - t0, PROGRESS.words / (t1 - t0), st and st.writes or 0))
else
    error("usage: checkpoint_job.lua state|wordcount DIR [KEYS | PORT EXPECTED]")
end
