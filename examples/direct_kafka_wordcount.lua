-- examples/direct_kafka_wordcount.lua: port of Spark's
-- examples/src/main/python/streaming/direct_kafka_wordcount.py.
-- Counts the words of the messages of a Kafka topic every 2 seconds, reading the topic's
-- partitions directly (no receiver): each batch reads the offsets that arrived since the last.
--
-- Usage: host/streamhost examples/direct_kafka_wordcount.lua <broker_list> <topic>
--   e.g. with a broker on localhost:9092 and a topic "test":
--   host/streamhost examples/direct_kafka_wordcount.lua localhost:9092 test
-- then produce lines, e.g. `kcat -P -b localhost:9092 -t test`. Ctrl-C stops the job.
local sh = require "streamhost"

if #arg ~= 2 then
    io.stderr:write("Usage: direct_kafka_wordcount.lua <broker_list> <topic>\n")
    os.exit(1)
end

local sc = sh.SparkContext(nil, "PythonStreamingDirectKafkaWordCount")
local ssc = sh.StreamingContext(sc, 2)

local brokers, topic = arg[1], arg[2]
local kvs = sh.KafkaUtils.createDirectStream(ssc, { topic }, { ["metadata.broker.list"] = brokers })
local lines = kvs:map(function(x) return x[2] end)
local counts = lines:flatMap(function(line)
                        local words = {}
                        for w in line:gmatch("[^ ]+") do words[#words + 1] = w end
                        return words
                    end)
                    :map(function(word) return { word, 1 } end)
                    :reduceByKey(function(a, b) return a + b end)
counts:pprint()

ssc:start()
ssc:awaitTermination()
