-- examples/kinesis_wordcount.lua: port of Spark's
-- external/kinesis-asl/src/main/python/examples/streaming/kinesis_wordcount_asl.py.
-- Counts the words of the records of a Kinesis stream every second, from the records that
-- arrive after it starts (InitialPositionInStream.LATEST), its shard positions kept every 2 s.
--
-- Usage: host/streamhost examples/kinesis_wordcount.lua <app-name> <stream-name> <endpoint-url> <region-name>
--   Credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN).
--
-- Against a local kinesalite (scripts/setup installs it under scripts/peers/kinesalite):
--   node scripts/peers/kinesalite/serve.js --port 4567 --createStreamMs 0 &
--   python3 scripts/peers/kinesis_client.py http://127.0.0.1:4567 create test 2
--   AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local \
--     host/streamhost examples/kinesis_wordcount.lua wordcount test http://127.0.0.1:4567 us-east-1
-- then put records, e.g. a file of "partitionkey<TAB>some words" lines:
--   printf 'k1\thello kinesis\nk2\thello lua\n' > /tmp/recs
--   python3 scripts/peers/kinesis_client.py http://127.0.0.1:4567 put test /tmp/recs
-- (or `aws --endpoint-url http://127.0.0.1:4567 kinesis put-record ...`). Ctrl-C stops the job.
local sh = require "streamhost"

if #arg ~= 4 then
    io.stderr:write("Usage: kinesis_wordcount.lua <app-name> <stream-name> <endpoint-url> <region-name>\n")
    os.exit(1)
end

local sc = sh.SparkContext(nil, "PythonStreamingKinesisWordCountAsl")
local ssc = sh.StreamingContext(sc, 1)
local appName, streamName, endpointUrl, regionName = arg[1], arg[2], arg[3], arg[4]
local lines = sh.KinesisUtils.createStream(
    ssc, appName, streamName, endpointUrl, regionName, sh.InitialPositionInStream.LATEST, 2)
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
