-- spec/integration/kafka_receiver_wal_spec.lua: KafkaUtils.createStream across a SIGKILL, with
-- and without the receivers' write-ahead log (spec/jobs/kafka_receiver_wal.lua against the mock
-- cluster over TCP). With the log, a batch's offsets are committed once its blocks are logged,
-- before it completes: the killed batch runs again from the log and the group goes on after
-- it. Without it, nothing of the killed batch was committed and the group reads it again.
-- Either way every message is counted once.
local ffi = require "ffi"
local helpers = require "spec.helpers"

local JOB = "spec/jobs/kafka_receiver_wal.lua"
local C = require("streamhost.ffi").C
local TOPIC, PARTITIONS = "walt", 2

local q = helpers.q

local wait_until = helpers.wait_until

-- The group's committed offsets, asked of the brokers with librdkafka (OffsetFetch over TCP;
-- querying does not join the group): the sum over the topic's partitions.
ffi.cdef [[
typedef struct rd_kafka_s rd_kafka_t;
typedef struct rd_kafka_conf_s rd_kafka_conf_t;
typedef struct rd_kafka_topic_partition_s {
    char *topic; int32_t partition; int64_t offset; void *metadata; size_t metadata_size;
    void *opaque; int err; void *_private;
} rd_kafka_topic_partition_t;
typedef struct rd_kafka_topic_partition_list_s {
    int cnt; int size; rd_kafka_topic_partition_t *elems;
} rd_kafka_topic_partition_list_t;
rd_kafka_conf_t *rd_kafka_conf_new(void);
int rd_kafka_conf_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *errstr, size_t errstr_size);
rd_kafka_t *rd_kafka_new(int type, rd_kafka_conf_t *conf, char *errstr, size_t errstr_size);
void rd_kafka_destroy(rd_kafka_t *rk);
rd_kafka_topic_partition_list_t *rd_kafka_topic_partition_list_new(int size);
void rd_kafka_topic_partition_list_destroy(rd_kafka_topic_partition_list_t *rkparlist);
rd_kafka_topic_partition_t *rd_kafka_topic_partition_list_add(rd_kafka_topic_partition_list_t *rktparlist, const char *topic, int32_t partition);
int rd_kafka_committed(rd_kafka_t *rk, rd_kafka_topic_partition_list_t *partitions, int timeout_ms);
]]
local function committed(bootstrap, group)
    local errstr = ffi.new("char[512]")
    local conf = C.rd_kafka_conf_new()
    assert(C.rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr, 512) == 0)
    assert(C.rd_kafka_conf_set(conf, "group.id", group, errstr, 512) == 0)
    local rk = C.rd_kafka_new(1, conf, errstr, 512)  -- RD_KAFKA_CONSUMER
    assert(rk ~= nil, ffi.string(errstr))
    local list = C.rd_kafka_topic_partition_list_new(PARTITIONS)
    for p = 0, PARTITIONS - 1 do C.rd_kafka_topic_partition_list_add(list, TOPIC, p) end
    local sum
    if C.rd_kafka_committed(rk, list, 5000) == 0 then
        sum = 0
        for i = 0, list.cnt - 1 do
            local off = tonumber(list.elems[i].offset)
            if off > 0 then sum = sum + off end  -- negative: none committed
        end
    end
    C.rd_kafka_topic_partition_list_destroy(list)
    C.rd_kafka_destroy(rk)
    return sum
end

local function read_state(dir)
    local s = helpers.read_file(dir .. "/state")
    if s == nil then return nil end
    local counts = {}
    for m, n in s:gmatch("(%S+) (%d+)") do counts[m] = tonumber(n) end
    return counts
end

local function expected()
    local want = {}
    for i = 1, 40 do want["L" .. i] = 1 end
    for i = 1, 10 do want["M" .. i] = 1 end
    return want
end

local function show(counts)
    local keys = {}
    for k in pairs(counts or {}) do keys[#keys + 1] = k end
    table.sort(keys)
    local out = {}
    for i, k in ipairs(keys) do out[i] = k .. "=" .. counts[k] end
    return table.concat(out, " ")
end

-- 40 messages, the host killed while the batch holding them runs, restarted (recovering from
-- its checkpoint), 10 more messages. Returns the final counts, what was committed while the
-- batch ran, and the stderr of both runs.
local function kill_mid_batch(wal)
    local kafka = helpers.kafka_mock({ TOPIC .. ":" .. PARTITIONS })
    local dir = helpers.tmpdir()
    local group = "wal-" .. wal
    local args = table.concat({ q(dir), kafka.bootstrap, TOPIC, group }, " ")
    local lines = {}
    for i = 1, 40 do lines[i] = "L" .. i end
    kafka:produce(TOPIC, lines)
    local h = helpers.spawn(JOB, args, "WAL=" .. wal .. " SLOW=60")
    local during, counts, errs = nil, nil, {}
    local ok, why = pcall(function()
        assert(wait_until(function() return (helpers.read_file(dir .. "/running") or ""):find("^%d+ [1-9]") end, 30),
            "no batch with messages began")
        if wal == "true" then
            wait_until(function() return committed(kafka.bootstrap, group) == 40 end, 20)
        end
        during = committed(kafka.bootstrap, group)
        assert(h.signal("KILL"))
        assert(h.exited(20), "the host did not die")
        errs[1] = helpers.read_file(h.dir .. "/err")
        h.finish()
        h = helpers.spawn(JOB, args, "WAL=" .. wal .. " SLOW=0")
        local more = {}
        for i = 1, 10 do more[i] = "M" .. i end
        kafka:produce(TOPIC, more)
        local want = expected()
        wait_until(function()
            local c = read_state(dir)
            for k in pairs(want) do if not (c and c[k]) then return false end end
            return true
        end, 40)
        helpers.sleep(1)  -- any repeat of a message would land in these batches
        counts = read_state(dir)
        h.signal("TERM")
        h.exited(20)
        errs[2] = helpers.read_file(h.dir .. "/err")
    end)
    h.finish()
    kafka.quit()
    os.execute("rm -rf " .. q(dir))
    assert(ok, tostring(why) .. "\n" .. table.concat(errs, "\n---\n"))
    return counts or {}, during, table.concat(errs, "\n---\n")
end

describe("KafkaUtils.createStream across a SIGKILL", function()
    it("with the write-ahead log: offsets committed once logged; the killed batch reruns from the log; every message once", function()
        local counts, during, errs = kill_mid_batch("true")
        assert.are.equal(40, during, "the batch's offsets were committed while it ran")
        assert.are.same(expected(), counts, show(counts) .. "\n" .. errs)
    end)

    it("without it: nothing of the killed batch was committed, and the group reads it again; every message once", function()
        local counts, during, errs = kill_mid_batch("false")
        assert.are.equal(0, during)
        assert.are.same(expected(), counts, show(counts) .. "\n" .. errs)
    end)
end)
