-- streamhost.output: directories that appear complete or not at all (saveAsTextFile(s)).
local ffi = require "ffi"
local files = require "streamhost.files"

ffi.cdef [[
int mkdir(const char *path, unsigned int mode);
int rename(const char *oldpath, const char *newpath);
int unlink(const char *path);
int rmdir(const char *path);
int getpid(void);
char *strerror(int errnum);
]]
local C = ffi.C

local M = {}

local function errno_text()
    return ffi.string(C.strerror(ffi.errno()))
end

local function exists(path)
    local f = io.open(path, "rb")
    if f then f:close(); return true end
    return files.list(path) ~= nil
end
M.exists = exists

-- Removes a directory of plain files (what save_dir writes).
local function remove_dir(path)
    for _, name in ipairs(files.list(path) or {}) do C.unlink(path .. "/" .. name) end
    C.unlink(path .. "/_SUCCESS")
    C.rmdir(path)
end
M.remove_dir = remove_dir

local counter = 0

-- Calls write(tmpdir) to fill a fresh directory, adds _SUCCESS, fsyncs what it holds and puts
-- it in the place of `path` in one step (a reader sees the old directory or the new one, never
-- a mix or none). Missing parent directories are made, as Hadoop does. With replace, an
-- existing `path` (a replayed batch) is replaced; without, it is an error.
function M.save_dir(path, write, replace)
    if exists(path) and not replace then
        error("Output directory " .. path .. " already exists", 3)
    end
    counter = counter + 1
    local parent, base = path:match("^(.*)/([^/]+)/*$")
    if not parent then parent, base = ".", path end
    if parent == "" then parent = "/" end
    local made, merr = pcall(files.mkdirs, parent)
    if not made then error(merr, 3) end
    -- The process id and the clock keep a temporary name apart from one that a killed
    -- process left behind.
    local tmp = string.format("%s/.%s.tmp-%d-%d-%d", parent, base, C.getpid(),
        math.floor(require("streamhost.ffi").C.sh_ffi_now() * 1000), counter)
    if C.mkdir(tmp, tonumber("755", 8)) ~= 0 then
        error("cannot create " .. tmp .. ": " .. errno_text(), 3)
    end
    local ok, err = pcall(write, tmp)
    if ok then
        local f, ferr = io.open(tmp .. "/_SUCCESS", "wb")
        if f then f:close() else ok, err = false, "cannot write " .. tmp .. "/_SUCCESS: " .. tostring(ferr) end
    end
    if ok then
        ok, err = pcall(function()
            for _, name in ipairs(files.list(tmp) or {}) do files.fsync(tmp .. "/" .. name) end
            files.fsync(tmp)
            if files.replace_dir(tmp, path) then remove_dir(tmp) end  -- the old one, now at tmp
        end)
    end
    if not ok then
        remove_dir(tmp)
        error(err, 0)
    end
end
return M
