-- streamhost.kafka_types: the Kafka value types of the API (OffsetRange, TopicAndPartition,
-- Broker, KafkaMessageAndMetadata), equal by value; loadable in driver and worker states.
local M = {}

-- A value type: fields in order, checked by `checks`, equal (==) by value, printable.
local function value_type(name, fields, checks)
    local mt = { __name = name }
    mt.__index = mt
    mt.__eq = function(a, b)
        for _, f in ipairs(fields) do
            if a[f] ~= b[f] then return false end
        end
        return true
    end
    mt.__tostring = function(v)
        local parts = {}
        for i, f in ipairs(fields) do parts[i] = f .. "=" .. tostring(v[f]) end
        return name .. "(" .. table.concat(parts, ", ") .. ")"
    end
    return setmetatable(mt, {
        __call = function(_, ...)
            local v = {}
            for i, f in ipairs(fields) do v[f] = (select(i, ...)) end
            for i, f in ipairs(fields) do
                local ok, why = checks[i](v[f])
                if not ok then error(name .. ": " .. f .. " " .. why .. ", got " .. tostring(v[f]), 2) end
            end
            return setmetatable(v, mt)
        end,
    })
end

local function is_name(x)
    if type(x) == "string" and x ~= "" then return true end
    return false, "must be a non-empty string"
end
local function is_index(x)
    if type(x) == "number" and x >= 0 and x % 1 == 0 then return true end
    return false, "must be a whole number of at least 0"
end
local function is_port(x)
    if type(x) == "number" and x >= 1 and x <= 65535 and x % 1 == 0 then return true end
    return false, "must be a port from 1 to 65535"
end

M.TopicAndPartition = value_type("TopicAndPartition", { "topic", "partition" }, { is_name, is_index })
M.Broker = value_type("Broker", { "host", "port" }, { is_name, is_port })
local OffsetRange = value_type("OffsetRange", { "topic", "partition", "fromOffset", "untilOffset" },
    { is_name, is_index, is_index, is_index })
M.OffsetRange = OffsetRange
function OffsetRange:count() return self.untilOffset - self.fromOffset end
function OffsetRange:topicAndPartition() return M.TopicAndPartition(self.topic, self.partition) end

-- A message with its place, as messageHandler receives it (key and message decoded).
M.KafkaMessageAndMetadata = value_type("KafkaMessageAndMetadata",
    { "topic", "partition", "offset", "key", "message" },
    { is_name, is_index, is_index, function() return true end, function() return true end })

return M
