-- streamhost.trace: errors as the job's author reads them: the message, then the frames of the
-- job's own code (the worker's and the driver's), without streamhost's internal frames.
local M = {}

local LIB_DIR = debug.getinfo(1, "S").source:match("^@(.*/)[^/]*$") or "\0"

-- True for a traceback line that shows streamhost's own code or a C function.
local function internal(line)
    if line:find("[C]:", 1, true) or line:find("(tail call)", 1, true) then return true end
    if line:find("[builtin", 1, true) then return true end
    local path = line:match("^%s*(.-):%d+:") or line:match("^%s*(.-):%s")
    if path == nil then return false end
    return path:sub(1, #LIB_DIR) == LIB_DIR or path:find("streamhost/[%w_]+%.lua$") ~= nil
        or path:find("busted", 1, true) ~= nil
end

-- Splits "message\nstack traceback:\n..." into the message and the user's frame lines.
local function split(text)
    local at = text:find("\nstack traceback", 1, true)
    if at == nil then return text, {} end
    local msg, rest = text:sub(1, at - 1), text:sub(at + 1)
    local frames = {}
    for line in rest:gmatch("[^\n]+") do
        if not line:find("^stack traceback") and not internal(line) then
            frames[#frames + 1] = line
        end
    end
    return msg, frames
end
M.split = split

-- The error `err` raised in coroutine co (nil: the running code) as one text: the message (with
-- the user's frames of a traceback it already carries, a worker's), then the user's frames
-- where it was raised on the driver.
function M.user_traceback(co, err)
    local msg, frames = split(tostring(err))
    local here
    if co then here = debug.traceback(co, "", 0) else here = debug.traceback("", 3) end
    local _, more = split("\n" .. here)
    for _, line in ipairs(more) do frames[#frames + 1] = line end
    if #frames == 0 then return msg end
    return msg .. "\nstack traceback:\n" .. table.concat(frames, "\n")
end

return M
