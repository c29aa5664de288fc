-- streamhost.status: keeps the host's C status model (sh_status.h: the status page, /metrics,
-- /api/v1) up to date from the StreamingContext's events, one cheap FFI call per event, so the
-- status server answers from C while the driver state is busy. Also the setters other modules
-- report through: checkpoint results and reloads.
local ffi = require "ffi"
local shffi = require "streamhost.ffi"

ffi.cdef [[
typedef struct sh_status_s sh_status_t;
sh_status_t *sh_ffi_status(sh_host_t *h);
void sh_status_started(sh_status_t *s, const char *app_name, double batch_ms, double time);
void sh_status_stopped(sh_status_t *s, double time);
void sh_status_input(sh_status_t *s, int id, const char *name, const char *location, int receiver);
void sh_status_receiver(sh_status_t *s, int id, int active, const char *last_error,
                        double last_error_time);
void sh_status_batch_submitted(sh_status_t *s, double time_ms, double submitted, double records);
void sh_status_batch_input(sh_status_t *s, double time_ms, int id, double records);
void sh_status_batch_started(sh_status_t *s, double time_ms, double started);
void sh_status_op_started(sh_status_t *s, double time_ms, int id, const char *name,
                          const char *description, double start);
void sh_status_op_completed(sh_status_t *s, double time_ms, int id, double end,
                            const char *failure);
void sh_status_batch_completed(sh_status_t *s, double time_ms, double ended);
void sh_status_listener_error(sh_status_t *s);
void sh_status_reload(sh_status_t *s, double time, const char *script, const char *hash, int ok,
                      const char *message);
void sh_status_checkpoint(sh_status_t *s, const char *dir, double time, double batch_ms,
                          int ok, const char *message);
void sh_status_checkpoint_dir(sh_status_t *s, const char *dir);
]]

local C = shffi.C
local floor = math.floor

local M = {}

local model = nil  -- the host's sh_status_t (the driver state only; workers have no host)

local function get()
    if model == nil then
        local h = shffi.host()
        if h == nil then return nil end
        model = C.sh_ffi_status(h)
    end
    return model
end

local function ms(seconds)
    return floor(seconds * 1000 + 0.5)
end

local function str(v)
    if v == nil then return nil end
    return tostring(v)
end

local function receiver(s, info)
    local ri = info.receiverInfo
    C.sh_status_receiver(s, ri.streamId, ri.active and 1 or 0, str(ri.lastErrorMessage),
        ri.lastErrorTime or 0)
end

local on = {}

function on.onStreamingStarted(s, ssc, info)
    C.sh_status_started(s, str(ssc.sparkContext.appName), ssc._batch_ms, info.time)
    C.sh_status_checkpoint_dir(s, str(ssc._checkpoint_dir))
    for _, d in ipairs(ssc._inputs) do
        local src = d._source
        C.sh_status_input(s, src.stream_id, str(src.name), str(src.location), src.receiver and 1 or 0)
    end
end

function on.onBatchSubmitted(s, _, info)
    local t = ms(info.batchTime)
    C.sh_status_batch_submitted(s, t, info.submissionTime, info.numRecords or 0)
    for id, input in pairs(info.streamIdToInputInfo or {}) do
        C.sh_status_batch_input(s, t, id, input.numRecords or 0)
    end
end

function on.onBatchStarted(s, _, info)
    C.sh_status_batch_started(s, ms(info.batchTime), info.processingStartTime)
end

function on.onBatchCompleted(s, _, info)
    C.sh_status_batch_completed(s, ms(info.batchTime), info.processingEndTime)
end

function on.onOutputOperationStarted(s, _, op)
    C.sh_status_op_started(s, ms(op.batchTime), op.id, str(op.name), str(op.description), op.startTime)
end

function on.onOutputOperationCompleted(s, _, op)
    C.sh_status_op_completed(s, ms(op.batchTime), op.id, op.endTime, str(op.failureReason))
end

on.onReceiverStarted = function(s, _, info) receiver(s, info) end
on.onReceiverError = on.onReceiverStarted
on.onReceiverStopped = on.onReceiverStarted

-- A listener event of ssc (StreamingContext:_post calls this before the listeners run).
function M.post(ssc, event, info)
    local s, f = get(), on[event]
    if s ~= nil and f ~= nil then f(s, ssc, info) end
end

-- The context stopped.
function M.stopped()
    local s = get()
    if s ~= nil then C.sh_status_stopped(s, C.sh_ffi_now()) end
end

-- A listener raised and was removed.
function M.listener_error()
    local s = get()
    if s ~= nil then C.sh_status_listener_error(s) end
end

-- For the checkpoint writer: one write's result. dir nil says checkpointing is off;
-- batch_time in epoch seconds; message the error when ok is false.
function M.checkpoint(dir, batch_time, ok, message)
    local s = get()
    if s ~= nil then
        C.sh_status_checkpoint(s, str(dir), C.sh_ffi_now(), ms(batch_time or 0), ok and 1 or 0, str(message))
    end
end

-- For hot reload: the new script's path and hash (or nil), whether it was taken, a message.
function M.reload(script, hash, ok, message)
    local s = get()
    if s ~= nil then C.sh_status_reload(s, C.sh_ffi_now(), str(script), str(hash), ok and 1 or 0, str(message)) end
end

return M
