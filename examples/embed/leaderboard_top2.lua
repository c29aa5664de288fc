-- examples/embed/leaderboard_top2.lua: what game_server hot-reloads into: the same points, and a
-- leaderboard of the last four seconds that shows the best two players only.
local sh = require "streamhost"

local ssc = sh.StreamingContext(sh.SparkContext(nil, "Leaderboard"), 0.25)
local points = ssc:embeddedStream("events"):map(function(e)
    local player, n = e:match("^(%S+) (%d+)$")
    return { player, tonumber(n) }
end)
points:reduceByKey(function(a, b) return a + b end):output("points")
points:reduceByKeyAndWindow(function(a, b) return a + b end, nil, 4, 1)
    :transform(function(rdd)
        return rdd:context():parallelize(rdd:sortBy(function(kv) return kv[2] end, false):take(2), 1)
    end)
    :output("leaderboard")
ssc:start()
ssc:awaitTermination()
