-- scripts/busted_runner.lua: runs busted inside the streamhost host, so specs use the real
-- driver state, worker states and event loop (as pyspark's tests run against a live context).
require "busted.runner" ({ standalone = false })
