-- streamhost.text_server: sh.TextServer, a built-in source of text lines on a local TCP port
-- for socketTextStream (an extension beyond pyspark: the demo job and examples use it where
-- Spark's examples ask you to run `nc -lk 9999`).
local ffi = require "ffi"
local shffi = require "streamhost.ffi"

local C = shffi.C

local TextServer = {}
TextServer.__index = TextServer

local running = setmetatable({}, { __mode = "k" })

-- TextServer{ text = "...", or path = "file", linesPerSecond = 1000, port = 0 }: serves the
-- lines round and round to every client of 127.0.0.1:port (0 = a free port; see .port).
local function new(_, opts)
    opts = opts or {}
    local text = opts.text
    if text == nil and opts.path then
        local f, err = io.open(opts.path, "rb")
        if not f then error("TextServer: cannot read " .. tostring(err), 2) end
        text = f:read("*a")
        f:close()
    end
    if type(text) ~= "string" or text == "" then error("TextServer needs text or a path to a text file", 2) end
    local rate = opts.linesPerSecond or 1000
    if type(rate) ~= "number" or not (rate > 0 and rate <= 1e9) then
        error("TextServer: linesPerSecond must be a number above 0, got " .. tostring(rate), 2)
    end
    local host = shffi.host()
    if host == nil then error("TextServer runs inside the streamhost host", 2) end
    local port_out, err = ffi.new("int[1]"), ffi.new("char *[1]")
    local s = C.sh_ffi_text_server_start(host, text, #text, rate, opts.port or 0, port_out, err)
    if s == nil then error("TextServer: " .. tostring(shffi.take_string(err[0])), 2) end
    local server = setmetatable({ host = "127.0.0.1", port = port_out[0], _ptr = s }, TextServer)
    running[server] = true
    return server
end

function TextServer:stop()
    if self._ptr ~= nil then
        C.sh_ffi_text_server_stop(self._ptr)
        self._ptr = nil
        running[self] = nil
    end
end

-- Stops every server still running (host shutdown).
function TextServer.stop_all()
    for server in pairs(running) do server:stop() end
end

return setmetatable(TextServer, { __call = new })
