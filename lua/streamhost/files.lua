-- streamhost.files: directory listings and file reads into blobs, with errors naming the path.
local ffi = require "ffi"
local shffi = require "streamhost.ffi"

local C = shffi.C

local M = {}

local names_out, len_out, err_out = ffi.new("char *[1]"), ffi.new("size_t[1]"), ffi.new("char *[1]")
local leftover_out = ffi.new("size_t[1]")

-- The names of a NUL-terminated list (what the host's listings hand over).
local function split_names(all)
    local names = {}
    for name in (all or ""):gmatch("([^%z]+)%z") do names[#names + 1] = name end
    return names
end
M.split_names = split_names

-- A file's content hash as checkpoints, reloads and their messages name it:
-- "crc32c:<hex>:<bytes>"; nil when the file cannot be read.
function M.content_hash(path)
    local f = path and io.open(path, "rb")
    if not f then return nil end
    local s = f:read("*a")
    f:close()
    return string.format("crc32c:%08x:%d", C.sh_ffi_crc32c(0, s, #s), #s)
end

-- Names of the visible regular files of dir, sorted; nil, err when dir cannot be listed.
function M.list(dir)
    local n = C.sh_ffi_dir_list(dir, 0, names_out, len_out, err_out)
    if n < 0 then return nil, shffi.take_string(err_out[0]) end
    return split_names(shffi.take_string(names_out[0], len_out[0]))
end

-- The visible regular files of dir, sorted by name: an array of names and a table of their
-- modification times (epoch ms) by name; nil, err when dir cannot be listed.
function M.list_mtimes(dir)
    local n = C.sh_ffi_dir_list(dir, 1, names_out, len_out, err_out)
    if n < 0 then return nil, shffi.take_string(err_out[0]) end
    local flat = split_names(shffi.take_string(names_out[0], len_out[0]))
    local names, mtimes = {}, {}
    for i = 1, #flat, 2 do
        names[#names + 1] = flat[i]
        mtimes[flat[i]] = tonumber(flat[i + 1])
    end
    return names, mtimes
end

-- Creates a directory and its missing parents; raises an error naming the path otherwise.
function M.mkdirs(path)
    if C.sh_ffi_mkdirs(path, err_out) ~= 0 then error(shffi.take_string(err_out[0]), 0) end
end

-- fsyncs a file or directory; raises an error naming the path when it fails.
function M.fsync(path)
    if C.sh_ffi_fsync_path(path, err_out) ~= 0 then error(shffi.take_string(err_out[0]), 0) end
end

-- Puts directory tmp in the place of path in one step; returns true when an old directory was
-- replaced (it is now at tmp). Raises an error naming the paths when it cannot.
function M.replace_dir(tmp, path)
    local r = C.sh_ffi_replace_dir(tmp, path, err_out)
    if r < 0 then error(shffi.take_string(err_out[0]), 0) end
    return r == 1
end

-- The paths that match a shell pattern (* ? [...] {a,b}), sorted; nil, err on a read error.
function M.glob(pattern)
    local n = C.sh_ffi_glob(pattern, names_out, len_out, err_out)
    if n < 0 then return nil, shffi.take_string(err_out[0]) end
    return split_names(shffi.take_string(names_out[0], len_out[0]))
end

local function is_pattern(path)
    return path:find("[*?[{]") ~= nil
end

-- Hadoop's hidden files, which input listings leave out: names starting with _ or . .
local function hidden(name)
    return name:find("^[_.]") ~= nil
end

-- Splits Hadoop's comma-separated input paths; a comma inside {a,b} belongs to the pattern.
local function split_paths(spec)
    local out, depth, from = {}, 0, 1
    for i = 1, #spec do
        local c = spec:sub(i, i)
        if c == "{" then
            depth = depth + 1
        elseif c == "}" and depth > 0 then
            depth = depth - 1
        elseif c == "," and depth == 0 then
            out[#out + 1] = spec:sub(from, i - 1)
            from = i + 1
        end
    end
    out[#out + 1] = spec:sub(from)
    return out
end

-- The files an input path names, as Spark's textFile reads them: comma-separated paths, each
-- a file, a directory (its files, not its subdirectories) or a glob (whose matching
-- directories count as their files); listings and matches leave hidden files out. Raises an
-- error naming the path when a path does not exist or a pattern matches nothing.
function M.input_files(spec, what)
    if type(spec) ~= "string" or spec == "" then
        error(what .. " expects a path, got " .. (spec == "" and "an empty string" or type(spec)), 0)
    end
    local out = {}
    local function add_dir(dir)
        local names, err = M.list(dir)
        if names == nil then error(what .. ": " .. tostring(err), 0) end
        for _, name in ipairs(names) do
            if not hidden(name) then out[#out + 1] = dir .. "/" .. name end
        end
    end
    for _, path in ipairs(split_paths(spec)) do
        if path == "" then error(what .. ": an empty path in '" .. spec .. "'", 0) end
        if is_pattern(path) then
            local matches, err = M.glob(path)
            if matches == nil then error(what .. ": " .. tostring(err), 0) end
            local n = 0
            for _, m in ipairs(matches) do
                if not hidden(m:match("([^/]*)/*$")) then
                    n = n + 1
                    if C.sh_ffi_path_kind(m) == 2 then add_dir(m) else out[#out + 1] = m end
                end
            end
            if n == 0 then error(what .. ": input pattern " .. path .. " matches 0 files", 0) end
        else
            local kind = C.sh_ffi_path_kind(path)
            if kind == 0 then error(what .. ": input path does not exist: " .. path, 0) end
            if kind == 2 then
                local dir = path:gsub("/+$", "")
                add_dir(dir == "" and "/" or dir)
            else
                out[#out + 1] = path
            end
        end
    end
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
