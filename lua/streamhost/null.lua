-- streamhost.null: sh.null, the placeholder of a nil record (pyspark's None) where records sit
-- in an array: collect() and take() results, glom() arrays, partition iterators, groupByKey
-- lists, and the arrays given to parallelize and queueStream. Worker functions get nil itself.
--
-- One table per Lua state, loaded as a module so that shipped functions that capture it get
-- the worker's own (ship sends modules by name). Encoded records keep it (codec registers its
-- metatable); a decoded copy is a new table with the same metatable, equal to sh.null by ==.
local mt = {
    __tostring = function() return "nil" end,
    __eq = function() return true end,  -- only ever called with two tables of this metatable
    __newindex = function() error("sh.null is a constant", 2) end,
}

return setmetatable({}, mt)
