-- streamhost.files: directory listings and file reads into blobs, with errors naming the path.
local ffi = require "ffi"
local shffi = require "streamhost.ffi"

local C = shffi.C

local M = {}

local names_out, len_out, err_out = ffi.new("char *[1]"), ffi.new("size_t[1]"), ffi.new("char *[1]")
local leftover_out = ffi.new("size_t[1]")

-- Names of the visible regular files of dir, sorted; nil, err when dir cannot be listed.
function M.list(dir)
    local n = C.sh_ffi_dir_list(dir, names_out, len_out, err_out)
    if n < 0 then return nil, shffi.take_string(err_out[0]) end
    local all = shffi.take_string(names_out[0], len_out[0]) or ""
    local names = {}
    for name in all:gmatch("([^%z]+)%z") do names[#names + 1] = name end
    return names
end

-- A path's files: the path itself, or a directory's visible files.
function M.expand(path)
    local names = M.list(path)
    if names == nil then return { path } end
    local out = {}
    for i, name in ipairs(names) do out[i] = path .. "/" .. name end
    return out
end

-- A file's lines as a blob; raises an error naming the path when it cannot be read.
function M.read_lines(path)
    local b = C.sh_ffi_file_read_lines(path, err_out)
    if b == nil then error(shffi.take_string(err_out[0]), 0) end
    return shffi.own_blob(b)
end

-- A file's fixed-length records as a blob, and the number of trailing bytes that did not
-- make a whole record (dropped).
function M.read_fixed(path, reclen)
    local b = C.sh_ffi_file_read_fixed(path, reclen, leftover_out, err_out)
    if b == nil then error(shffi.take_string(err_out[0]), 0) end
    return shffi.own_blob(b), tonumber(leftover_out[0])
end

return M
