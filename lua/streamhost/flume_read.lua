-- streamhost.flume_read: the events of a Flume receiver's block (SH_BLOB_FLUME, see
-- connectors/flume/sh_flume.h), decoded where a task reads them: {headers, body}, headers a
-- table of strings, body the bytes as a string.
local ffi = require "ffi"

local ffi_string, ffi_cast = ffi.string, ffi.cast
local u32_t = ffi.typeof("const uint32_t *")
local M = {}

-- Pushes every event of block b into emit({headers, body}), in order. The receiver wrote the
-- block, and the write-ahead log checks what it reads back; a length past the block's end is
-- still refused, naming the byte.
function M.each_event(b, emit)
    local base = ffi_cast("const uint8_t *", b.data)
    local len = tonumber(b.len)
    local pos = 0
    -- The next length-prefixed string at pos.
    local function field()
        if pos + 4 > len then error("a Flume block is cut short at byte " .. pos, 0) end
        local n = ffi_cast(u32_t, base + pos)[0]
        if pos + 4 + n > len then error("a Flume block is cut short at byte " .. pos, 0) end
        local s = ffi_string(base + pos + 4, n)
        pos = pos + 4 + n
        return s
    end
    while pos < len do
        if pos + 4 > len then error("a Flume block is cut short at byte " .. pos, 0) end
        local nh = ffi_cast(u32_t, base + pos)[0]
        pos = pos + 4
        local headers = {}
        for _ = 1, nh do
            local k = field()
            headers[k] = field()
        end
        emit({ headers, field() })
    end
end

return M
