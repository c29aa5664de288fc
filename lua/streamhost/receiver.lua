-- streamhost.receiver: what the sources of C receivers of record blocks share (Kafka's
-- createStream, Flume's streams, Kinesis): a batch's blocks as an RDD of one partition each
-- (decoded by the tasks that read them), the same from the write-ahead log, and draining the
-- receiver's reports to stderr and the listeners.
local shffi = require "streamhost.ffi"
local rddmod = require "streamhost.rdd"

local C = shffi.C
local M = {}

-- The RDD of blobs, one partition a block, mapped by the shipped function decode_id (the
-- stream's decoder) when there is one.
local function blocks_rdd(sc, blobs, decode_id)
    local parts = {}
    for i, b in ipairs(blobs) do parts[i] = { b } end
    local rdd = rddmod.from_blobs(sc, parts)
    if decode_id then rdd = rdd:_narrow("map", decode_id) end
    return rdd
end
M.blocks_rdd = blocks_rdd

-- The blocks of source.input that batch record rec holds, and how many records they hold
-- ({}, 0 without a record).
function M.batch_blocks(source, rec)
    if rec == nil or not source.input then return {}, 0 end
    return require("streamhost.sources").record_blocks(rec, source.input),
        tonumber(C.sh_ffi_batch_records(rec, source.input))
end

-- The RDD of batch t as the write-ahead log keeps it (recovery), with its input info and the
-- blocks read; nil when the log has none.
function M.from_log(source, sc, t, decode_id)
    local blobs = source.wal and source.wal.read(source.stream_id, t)
    if blobs == nil then return nil end
    return blocks_rdd(sc, blobs, decode_id),
        { description = string.format("%s: batch %d from the write-ahead log", source.name, t) }, blobs
end

-- Takes the receiver's reports with take(recv, msg_out) (1 while there is one): those that
-- end "receiving again" go to stderr, the rest to source.report (stderr and onReceiverError).
function M.drain_reports(source, take, msg_out)
    while source.recv ~= nil and take(source.recv, msg_out) == 1 do
        local msg = shffi.take_string(msg_out[0])
        if msg:find("receiving again$") then
            io.stderr:write("streamhost: ", source.name, ": ", msg, "\n")
        else
            source.report(msg)
        end
    end
end

return M
