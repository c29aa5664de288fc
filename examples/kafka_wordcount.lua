-- examples/kafka_wordcount.lua: port of Spark's examples/src/main/python/streaming/kafka_wordcount.py.
-- Counts the words of the messages of a Kafka topic every second, received by a consumer in
-- the group "spark-streaming-consumer" (offsets committed once a batch is done).
--
-- Usage: host/streamhost examples/kafka_wordcount.lua <zkQuorum> <topic>
--   The brokers are found in ZooKeeper, where Kafka registers them, e.g. with ZooKeeper on
--   localhost:2181 and a topic "test":
--   host/streamhost examples/kafka_wordcount.lua localhost:2181 test
-- then produce lines, e.g. `kcat -P -b <broker> -t test`. Ctrl-C stops the job.
local sh = require "streamhost"

if #arg ~= 2 then
    io.stderr:write("Usage: kafka_wordcount.lua <zkQuorum> <topic>\n")
    os.exit(1)
end

local sc = sh.SparkContext(nil, "PythonStreamingKafkaWordCount")
local ssc = sh.StreamingContext(sc, 1)

local zkQuorum, topic = arg[1], arg[2]
local kvs = sh.KafkaUtils.createStream(ssc, zkQuorum, "spark-streaming-consumer", { [topic] = 1 })
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
