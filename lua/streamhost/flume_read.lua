-- streamhost.flume_read: the events of a Flume receiver's block (SH_BLOB_FLUME, see
-- connectors/flume/sh_flume.h), decoded where a task reads them: {headers, body}, headers a
-- table of strings, body the bytes as a string.
local ffi = require "ffi"

local ffi_string, ffi_cast = ffi.string, ffi.cast
local M = {}

-- Pushes every event of block b into emit({headers, body}), in order.
function M.each_event(b, emit)
    local base = ffi_cast("const uint8_t *", b.data)
    local len = tonumber(b.len)
    local pos = 0
    while pos < len do
        local nh = ffi_cast("const uint32_t *", base + pos)[0]
        pos = pos + 4
        local headers = {}
        for _ = 1, nh do
            local kl = ffi_cast("const uint32_t *", base + pos)[0]
            local k = ffi_string(base + pos + 4, kl)
            pos = pos + 4 + kl
            local vl = ffi_cast("const uint32_t *", base + pos)[0]
            headers[k] = ffi_string(base + pos + 4, vl)
            pos = pos + 4 + vl
        end
        local bl = ffi_cast("const uint32_t *", base + pos)[0]
        local body = ffi_string(base + pos + 4, bl)
        pos = pos + 4 + bl
        emit({ headers, body })
    end
end

return M
