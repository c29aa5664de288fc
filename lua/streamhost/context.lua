-- streamhost.context: SparkContext: the master, the worker pool and the ways to make RDDs.
local ffi = require "ffi"
local shffi = require "streamhost.ffi"
local codec = require "streamhost.codec"
local NULL = require "streamhost.null"
local SparkConf = require "streamhost.conf"

local C = shffi.C

local SparkContext = { __sh_context = "SparkContext" }
SparkContext.__index = SparkContext

local active = nil  -- one SparkContext at a time, as in Spark

local function parse_master(master)
    if master == "local" then return 1 end
    if master == "local[*]" then return C.sh_ffi_cpu_count() end
    local n = type(master) == "string" and master:match("^local%[(%d+)%]$")
    if n and tonumber(n) > 0 then return tonumber(n) end
    error("invalid master '" .. tostring(master) .. "': expected local, local[N] or local[*]", 4)
end

-- SparkContext(master, appName, sparkHome, pyFiles, environment, batchSize, serializer, conf),
-- pyspark's arguments in pyspark's order. The positional master and appName win over conf's
-- spark.master and spark.app.name; without either, the host's --master and "streamhost".
local function new(master, appName, sparkHome, environment, conf)
    local host = shffi.host()
    if host == nil then
        error("streamhost jobs run inside the streamhost host (host/streamhost JOB.lua)", 3)
    end
    -- A hot reload's new script runs on the job's SparkContext (its workers and their state).
    if active and require("streamhost.reload").loading() then return active end
    if active then
        error(string.format("Cannot run multiple SparkContexts at once; existing SparkContext(app=%s, master=%s)",
            tostring(active.appName), tostring(active.master)), 3)
    end
    if conf ~= nil and getmetatable(conf) ~= SparkConf then
        error("SparkContext expects a SparkConf as its conf (the 8th argument), got " .. type(conf), 3)
    end
    local settings = SparkConf():setAll(conf and conf:getAll() or {})
    if master ~= nil then settings:setMaster(master) end
    if appName ~= nil then settings:setAppName(appName) end
    if sparkHome ~= nil then settings:setSparkHome(sparkHome) end
    if type(environment) == "table" then
        for k, v in pairs(environment) do settings:setExecutorEnv(k, v) end
    end
    settings:setIfMissing("spark.master", ffi.string(C.sh_ffi_master(host)))
    settings:setIfMissing("spark.app.name", "streamhost")
    master = settings:get("spark.master")
    local sc = setmetatable({
        master = master,
        appName = settings:get("spark.app.name"),
        _conf = settings,
        _host = host,
        _stopped = false,
        _next_rdd = 0,
    }, SparkContext)
    sc.defaultParallelism = parse_master(master)
    active = sc
    return sc
end

setmetatable(SparkContext, {
    -- Not a tail call: new's errors name the caller's line.
    -- pyFiles, batchSize and serializer have no meaning here (Lua functions ship themselves).
    __call = function(_, master, appName, sparkHome, _pyFiles, environment, _batchSize, _serializer, conf)
        return (new(master, appName, sparkHome, environment, conf))
    end,
})

-- The active SparkContext, or a new one with conf (the host's master when conf has none).
function SparkContext.getOrCreate(conf)
    return active or (new(nil, nil, nil, nil, conf))
end

-- A copy of the context's settings (spark.master and spark.app.name included).
function SparkContext:getConf()
    return SparkConf():setAll(self._conf:getAll())
end

-- The setting `key` as a size in bytes (1..max), default when unset; when it is not one, raises
-- an error naming the setting at `level` as error() counts it from the caller.
function SparkContext:_conf_bytes(key, default, max, level)
    local n = self._conf:_bytes(key, default, max, (level or 1) + 1)
    return n  -- not a tail call: the levels count this frame
end

function SparkContext._active()
    return active
end

-- The worker pool, started on first use so that defining a job costs no threads.
function SparkContext:_pool()
    if self._pool_ptr == nil then
        local err = ffi.new("char *[1]")
        local p = C.sh_ffi_pool_new(self._host, self.defaultParallelism, err)
        if p == nil then
            error("cannot start the worker states: " .. tostring(shffi.take_string(err[0])), 0)
        end
        self._pool_ptr = ffi.gc(p, C.sh_ffi_pool_free)
    end
    return self._pool_ptr
end

function SparkContext:_check_active()
    if self._stopped then error("Cannot call methods on a stopped SparkContext", 3) end
end

function SparkContext:_new_rdd_id()
    self._next_rdd = self._next_rdd + 1
    return self._next_rdd
end

-- Stops the workers; the context cannot be used afterwards. Idempotent.
function SparkContext:stop()
    if self._stopped then return end
    local ssc = package.loaded["streamhost.streaming"]
    if ssc then ssc._spark_context_stopping(self) end
    self._stopped = true
    if self._pool_ptr ~= nil then
        C.sh_ffi_pool_free(ffi.gc(self._pool_ptr, nil))
        self._pool_ptr = nil
        require("streamhost.scheduler").abandon_all()
    end
    if active == self then active = nil end
end

function SparkContext:parallelize(list, numSlices)
    self:_check_active()
    if type(list) ~= "table" then error("parallelize expects an array, got " .. type(list), 2) end
    local n = #list
    numSlices = numSlices or self.defaultParallelism
    if numSlices < 1 then error("numSlices must be at least 1", 2) end
    local parts = {}
    for i = 0, numSlices - 1 do
        local from, to = math.floor(i * n / numSlices) + 1, math.floor((i + 1) * n / numSlices)
        local slice, m = {}, 0
        for j = from, to do
            local x = list[j]
            if x == NULL then x = nil end  -- sh.null in the list is a nil record
            m = m + 1
            slice[m] = x
        end
        parts[i + 1] = n > 0 and { codec.blob_of(slice, m) } or {}
    end
    return require("streamhost.rdd").from_blobs(self, parts)
end

function SparkContext:emptyRDD()
    return require("streamhost.rdd").from_blobs(self, {})
end

-- The lines of the files a path names (one partition per file): a file, a directory, a glob
-- (dir/*.txt, dir/part-*, {a,b}) or a comma-separated list of those, as in Spark.
function SparkContext:textFile(path, minPartitions) -- luacheck: ignore minPartitions
    self:_check_active()
    local files = require("streamhost.files")
    local ok, paths = pcall(files.input_files, path, "textFile")
    if not ok then error(paths, 2) end
    local parts = {}
    for i, p in ipairs(paths) do
        local read, blob = pcall(files.read_lines, p)
        if not read then error("textFile: " .. tostring(blob), 2) end
        parts[i] = { blob }
    end
    return require("streamhost.rdd").from_blobs(self, parts)
end

function SparkContext:setCheckpointDir(dir)
    if type(dir) ~= "string" then error("setCheckpointDir expects a directory path", 2) end
    local ok, err = pcall(require("streamhost.files").mkdirs, dir)
    if not ok then error("setCheckpointDir: " .. tostring(err), 2) end
    self._checkpoint_dir = dir
end

-- A read-only value sent to each worker once (b.value in tasks); see streamhost.shared.
function SparkContext:broadcast(value)
    self:_check_active()
    local ok, b = pcall(require("streamhost.shared").broadcast, value)
    if not ok then error(b, 2) end
    return b
end

-- A value tasks add to (acc:add(x)), read in the driver (acc.value); see streamhost.shared.
function SparkContext:accumulator(value, accum_param)
    self:_check_active()
    local acc = require("streamhost.shared").accumulator(value, accum_param)
    return acc  -- not a tail call: an error names the caller's line
end

function SparkContext:union(rdds)
    return require("streamhost.rdd").union_all(self, rdds)
end

return SparkContext
