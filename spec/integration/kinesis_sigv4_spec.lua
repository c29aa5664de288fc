-- spec/integration/kinesis_sigv4_spec.lua: the SigV4 signer (connectors/kinesis/sh_sigv4.c,
-- through its FFI function) against botocore's SigV4Auth (scripts/peers/sigv4_botocore.py):
-- the same requests signed at the same fixed time give the same Authorization header, byte for
-- byte: different bodies, paths, query strings, header spacing, ports, with and without a
-- session token.
local ffi = require "ffi"
local helpers = require "spec.helpers"
require "streamhost.kinesis"  -- declares sh_ffi_sigv4_authorization

local C = ffi.C

local CASES = {
    { url = "http://127.0.0.1:4567/", host = "127.0.0.1:4567", path = "/",
      target = "Kinesis_20131202.GetRecords",
      body = '{"ShardIterator":"AAAAAAAAAAGx5p+ab/c=","Limit":10000}',
      region = "us-east-1", time = "20150830T123600Z", key = "AKIDEXAMPLE",
      secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" },
    { url = "https://kinesis.eu-west-1.amazonaws.com/", host = "kinesis.eu-west-1.amazonaws.com", path = "/",
      target = "Kinesis_20131202.ListShards", body = '{"StreamName":"clicks"}',
      region = "eu-west-1", time = "20261202T235959Z", key = "ASIAXXXX", secret = "s3cr3t/+=",
      token = "FwoGZXIvYXdzEJr//////////wEaDOSESSIONTOKEN+with/slashes==" },
    { url = "http://localhost:8080/v1/str-eam_s.~x/a%3Db?b=2&a=1&a=0&c=&Z=%2F",
      host = "localhost:8080", path = "/v1/str-eam_s.~x/a%3Db", query = "b=2&a=1&a=0&c=&Z=%2F",
      target = "Kinesis_20131202.DescribeStream", body = "",
      region = "ap-southeast-2", time = "20200229T000000Z", key = "AKID2", secret = "k",
      extra = { "X-Extra-Header", "  spaced    out   value  " } },
    { url = "https://example.com:443/", host = "example.com", path = "/",
      target = "Kinesis_20131202.GetShardIterator",
      body = '{"StreamName":"s","ShardId":"shardId-000000000001","ShardIteratorType":"AFTER_SEQUENCE_NUMBER","StartingSequenceNumber":"49590338271490256608559692538361571095921575989136588898"}',
      region = "us-west-2", time = "19991231T235959Z", key = "AKID3", secret = "other",
      token = "tok" },
    { url = "http://127.0.0.1:9/", host = "127.0.0.1:9", path = "/",
      target = "Kinesis_20131202.PutRecord", body = '{"Data":"w6lsw6hu","PartitionKey":"clé ünïcode"}',
      region = "us-east-1", time = "20261202T120000Z", key = "AKID4", secret = "x" },
}

local function json_str(s)
    return '"' .. s:gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end) .. '"'
end

local function case_json(c)
    local headers = { ["Content-Type"] = "application/x-amz-json-1.1", ["X-Amz-Target"] = c.target }
    if c.extra then headers[c.extra[1]] = c.extra[2] end
    local hs = {}
    for k, v in pairs(headers) do hs[#hs + 1] = json_str(k) .. ":" .. json_str(v) end
    return string.format('{"url":%s,"method":"POST","headers":{%s},"body":%s,"region":%s,"service":"kinesis","time":%s,"key":%s,"secret":%s,"token":%s}',
        json_str(c.url), table.concat(hs, ","), json_str(c.body), json_str(c.region), json_str(c.time),
        json_str(c.key), json_str(c.secret), c.token and json_str(c.token) or "null")
end

local function sign(c)
    local names, vals = { "Content-Type", "X-Amz-Target" }, { "application/x-amz-json-1.1", c.target }
    if c.extra then names[3], vals[3] = c.extra[1], c.extra[2] end
    local n = #names
    local cn, cv = ffi.new("const char *[?]", n, names), ffi.new("const char *[?]", n, vals)
    local out = ffi.new("char[1024]")
    local len = C.sh_ffi_sigv4_authorization("POST", c.host, c.path, c.query, cn, cv, n, c.body, #c.body,
        c.region, "kinesis", c.time, c.key, c.secret, c.token, out, 1024)
    assert(len > 0, "the signer failed")
    return ffi.string(out, len)
end

describe("SigV4 signer", function()
    it("signs as botocore's SigV4Auth does, byte for byte", function()
        local items = {}
        for i, c in ipairs(CASES) do items[i] = case_json(c) end
        local file = os.tmpname()
        helpers.write_file(file, "[" .. table.concat(items, ",") .. "]")
        local p = assert(io.popen("python3 scripts/peers/sigv4_botocore.py < " .. file .. " 2>&1"))
        local text = p:read("*a")
        p:close()
        os.remove(file)
        local lines = {}
        for l in text:gmatch("[^\n]+") do lines[#lines + 1] = l end
        assert.are.equal(#CASES, #lines, text)
        for i, c in ipairs(CASES) do
            assert.matches("^AWS4%-HMAC%-SHA256 Credential=", lines[i])
            assert.are.equal(lines[i], sign(c), "case " .. i .. " (" .. c.url .. ")")
        end
        -- The token is signed: the same request without it signs differently.
        local c2 = {}
        for k, v in pairs(CASES[2]) do c2[k] = v end
        c2.token = nil
        assert.are_not.equal(lines[2], sign(c2))
        assert.matches("SignedHeaders=content%-type;host;x%-amz%-date;x%-amz%-security%-token;x%-amz%-target,", lines[2])
    end)

    it("refuses an output buffer that is too small", function()
        local c = CASES[1]
        local names, vals = ffi.new("const char *[1]", { "X-Amz-Target" }), ffi.new("const char *[1]", { c.target })
        local out = ffi.new("char[16]")
        assert.are.equal(-1, C.sh_ffi_sigv4_authorization("POST", c.host, "/", nil, names, vals, 1, "", 0,
            c.region, "kinesis", c.time, c.key, c.secret, nil, out, 16))
    end)
end)
