-- examples/embed/leaderboard.lua: the job that examples/embed/game_server.c embeds. Player events
-- ("<player> <points>") arrive from the game through ssc:embeddedStream("events"); every batch's
-- points per player go to the C callback "points", and every second the leaderboard of the last
-- two seconds goes to "leaderboard", best first.
local sh = require "streamhost"

local ssc = sh.StreamingContext(sh.SparkContext(nil, "Leaderboard"), 0.25)
local points = ssc:embeddedStream("events"):map(function(e)
    local player, n = e:match("^(%S+) (%d+)$")
    return { player, tonumber(n) }
end)
points:reduceByKey(function(a, b) return a + b end):output("points")
points:reduceByKeyAndWindow(function(a, b) return a + b end, nil, 2, 1)
    :transform(function(rdd) return rdd:sortBy(function(kv) return kv[2] end, false) end)
    :output("leaderboard")
ssc:start()
ssc:awaitTermination()
