-- wc_plain.lua - owns the plain-LuaJIT word-count baseline: one Lua state, io.lines,
-- gmatch("%S+"), a counts table; prints "total=.. distinct=.. top_count=.. top_word=..".
-- usage: luajit wc_plain.lua FILE
local path = assert(arg[1], "usage: luajit wc_plain.lua FILE")

local counts = {}
for line in io.lines(path) do
  for w in line:gmatch("%S+") do
    counts[w] = (counts[w] or 0) + 1
  end
end

local total, distinct, top_count, top_word = 0, 0, 0, ""
for w, c in pairs(counts) do
  total = total + c
  distinct = distinct + 1
  if c > top_count then top_count, top_word = c, w end
end
io.write(string.format("total=%d distinct=%d top_count=%d top_word=%s\n",
                       total, distinct, top_count, top_word))
