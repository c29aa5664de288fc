-- examples/hdfs_wordcount.lua: port of Spark's examples/src/main/python/streaming/hdfs_wordcount.py.
-- Counts the words of the text files that appear in a directory, every second.
--
-- Usage: host/streamhost examples/hdfs_wordcount.lua <directory>
--   host/streamhost examples/hdfs_wordcount.lua /tmp/words
-- then move text files into the directory (write them elsewhere, then `mv` them in).
-- Ctrl-C stops the job.
local sh = require "streamhost"

if #arg ~= 1 then
    io.stderr:write("Usage: hdfs_wordcount.lua <directory>\n")
    os.exit(1)
end

local sc = sh.SparkContext(nil, "PythonStreamingHDFSWordCount")
local ssc = sh.StreamingContext(sc, 1)

local lines = ssc:textFileStream(arg[1])
local counts = lines:flatMap(function(line)
                        local words = {}
                        for w in line:gmatch("[^ ]+") do words[#words + 1] = w end
                        return words
                    end)
                    :map(function(x) return { x, 1 } end)
                    :reduceByKey(function(a, b) return a + b end)
counts:pprint()

ssc:start()
ssc:awaitTermination()
