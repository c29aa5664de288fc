-- examples/recoverable_network_wordcount.lua: port of Spark's
-- examples/src/main/python/streaming/recoverable_network_wordcount.py.
-- Counts the words of the text received each second from a TCP server, drops the words of a
-- blacklist (a broadcast variable) counting them in an accumulator, and appends each batch's
-- counts to an output file. The context checkpoints to a directory: killed and started again,
-- the job comes back from the checkpoint (its graph and functions; the setup function is not
-- called) and goes on where it was.
--
-- Usage: host/streamhost examples/recoverable_network_wordcount.lua <hostname> <port> <checkpoint-directory> <output-file>
--   Run a server first, e.g. `nc -lk 9999`, then
--   host/streamhost examples/recoverable_network_wordcount.lua localhost 9999 ~/checkpoint/ ~/out
-- Type words into nc, kill the job (Ctrl-C, or even kill -9), start it again with the same
-- arguments, and type more.
local sh = require "streamhost"

io.stdout:setvbuf("line")  -- each line as it is printed, even into a file

-- Broadcast variables and accumulators cannot be recovered from a checkpoint (as in Spark):
-- they are made lazily, once per process, in the driver (Spark's lazily instantiated
-- singletons; _G plays the part of Python's globals()).
function get_or_register_word_blacklist(sparkContext)
    if _G.wordBlacklist == nil then
        _G.wordBlacklist = sparkContext:broadcast({ "a", "b", "c" })
    end
    return _G.wordBlacklist
end

function get_or_register_dropped_word_counter(sparkContext)
    if _G.droppedWordsCounter == nil then
        _G.droppedWordsCounter = sparkContext:accumulator(0)
    end
    return _G.droppedWordsCounter
end

local function create_context(host, port, output_path)
    -- Only when there is no checkpoint to recover from.
    print("Creating new context")
    os.remove(output_path)
    local sc = sh.SparkContext(nil, "PythonStreamingRecoverableNetworkWordCount")
    local ssc = sh.StreamingContext(sc, 1)

    local lines = ssc:socketTextStream(host, port)
    local words = lines:flatMap(function(line)
        local out = {}
        for w in line:gmatch("[^ ]+") do out[#out + 1] = w end
        return out
    end)
    local word_counts = words:map(function(x) return { x, 1 } end)
                             :reduceByKey(function(x, y) return x + y end)

    local function echo(time, rdd)
        local blacklist = get_or_register_word_blacklist(rdd:context())
        local dropped = get_or_register_dropped_word_counter(rdd:context())
        local function filter_func(word_count)
            for _, w in ipairs(blacklist.value) do
                if word_count[1] == w then
                    dropped:add(word_count[2])
                    return false
                end
            end
            return true
        end
        local kept = rdd:filter(filter_func):collect()
        table.sort(kept, function(x, y) return x[1] < y[1] end)
        local parts = {}
        for i, wc in ipairs(kept) do parts[i] = string.format("('%s', %d)", wc[1], wc[2]) end
        local counts = string.format("Counts at time %s [%s]", os.date("%Y-%m-%d %H:%M:%S", math.floor(time)),
            table.concat(parts, ", "))
        print(counts)
        print(string.format("Dropped %d word(s) totally", dropped.value))
        print("Appending to " .. output_path)
        local f = assert(io.open(output_path, "a"))
        f:write(counts, "\n")
        f:close()
    end

    word_counts:foreachRDD(echo)
    return ssc
end

if #arg ~= 4 then
    io.stderr:write("Usage: recoverable_network_wordcount.lua <hostname> <port> <checkpoint-directory> <output-file>\n")
    os.exit(1)
end

local host, port, checkpoint, output = arg[1], tonumber(arg[2]), arg[3], arg[4]
local ssc = sh.StreamingContext.getOrCreate(checkpoint, function()
    return create_context(host, port, output)
end)
ssc:start()
ssc:awaitTermination()
