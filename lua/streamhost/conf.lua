-- streamhost.conf: SparkConf, pyspark's configuration object: settings as strings by key, in the
-- order they were first set. Settings named streamhost.* are streamhost's own (README.md).
local type, tostring, error, setmetatable = type, tostring, error, setmetatable

local SparkConf = {}
SparkConf.__index = SparkConf

-- A value as the string pyspark stores (str(value)); whole numbers without an exponent.
local function as_string(v)
    if type(v) == "number" and v == math.floor(v) and math.abs(v) < 2^63 then
        return string.format("%d", v)
    end
    return tostring(v)
end

local function check_key(key, what)
    if type(key) ~= "string" then
        error("SparkConf:" .. what .. " expects a string key, got " .. type(key), 3)
    end
end

-- SparkConf(loadDefaults): an empty configuration (there are no JVM system properties to load).
local function new(_, loadDefaults) -- luacheck: ignore loadDefaults
    return setmetatable({ _values = {}, _keys = {} }, SparkConf)
end

-- Sets key to tostring(value); returns the conf, so calls chain.
function SparkConf:set(key, value)
    check_key(key, "set")
    if self._values[key] == nil then self._keys[#self._keys + 1] = key end
    self._values[key] = as_string(value)
    return self
end

function SparkConf:setIfMissing(key, value)
    check_key(key, "setIfMissing")
    if self._values[key] == nil then self:set(key, value) end
    return self
end

function SparkConf:setMaster(value)
    return self:set("spark.master", value)
end

function SparkConf:setAppName(value)
    return self:set("spark.app.name", value)
end

function SparkConf:setSparkHome(value)
    return self:set("spark.home", value)
end

-- setExecutorEnv(key, value) or setExecutorEnv(nil, nil, pairs): spark.executorEnv.<key>.
function SparkConf:setExecutorEnv(key, value, pairs_)
    if (key ~= nil and pairs_ ~= nil) or (key == nil and pairs_ == nil) then
        error("SparkConf:setExecutorEnv expects either a key and a value or an array of {key, value}", 2)
    end
    if key ~= nil then return self:set("spark.executorEnv." .. tostring(key), value) end
    for _, kv in ipairs(pairs_) do self:set("spark.executorEnv." .. tostring(kv[1]), kv[2]) end
    return self
end

-- setAll(pairs): pairs is an array of {key, value}.
function SparkConf:setAll(pairs_)
    if type(pairs_) ~= "table" then error("SparkConf:setAll expects an array of {key, value}", 2) end
    for _, kv in ipairs(pairs_) do
        if type(kv) ~= "table" then error("SparkConf:setAll expects an array of {key, value}", 2) end
        check_key(kv[1], "setAll")
        self:set(kv[1], kv[2])
    end
    return self
end

-- The value of key (a string), else defaultValue (nil when not given).
function SparkConf:get(key, defaultValue)
    check_key(key, "get")
    local v = self._values[key]
    if v == nil then return defaultValue end
    return v
end

function SparkConf:contains(key)
    check_key(key, "contains")
    return self._values[key] ~= nil
end

-- Every setting as an array of {key, value}, in the order the keys were first set.
function SparkConf:getAll()
    local out = {}
    for _, k in ipairs(self._keys) do out[#out + 1] = { k, self._values[k] } end
    return out
end

function SparkConf:toDebugString()
    local lines = {}
    for _, kv in ipairs(self:getAll()) do lines[#lines + 1] = kv[1] .. "=" .. kv[2] end
    return table.concat(lines, "\n")
end

function SparkConf:__tostring()
    return "SparkConf(" .. #self._keys .. " settings)"
end

-- A size in bytes from a setting: a whole number of bytes, or with a unit as Spark reads sizes
-- (b, k/kb, m/mb, g/gb, t/tb; powers of 1024). Returns the number, or nil and why not.
function SparkConf.bytes(s)
    s = type(s) == "string" and s:lower():gsub("^%s+", ""):gsub("%s+$", "") or tostring(s)
    local digits, unit = s:match("^(%d+)(%a*)$")
    local scale = ({ [""] = 1, b = 1, k = 2^10, kb = 2^10, m = 2^20, mb = 2^20, g = 2^30, gb = 2^30,
                     t = 2^40, tb = 2^40 })[unit or ""]
    if digits == nil or scale == nil then return nil, "not a size in bytes" end
    return tonumber(digits) * scale
end

-- The setting `key` as a size in bytes from 1 to max; default when unset. Raises an error
-- naming the setting (at the given level) when it is not such a size.
function SparkConf:_bytes(key, default, max, level)
    local v = self._values[key]
    if v == nil then return default end
    local n = SparkConf.bytes(v)
    if n == nil or n < 1 or n > max then
        error(string.format("%s must be a size from 1 to %d bytes (a whole number, or with a unit: "
            .. "512k, 4m, 1g), got '%s'", key, max, v), (level or 1) + 1)
    end
    return n
end

return setmetatable(SparkConf, { __call = new })
