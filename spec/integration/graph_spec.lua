-- spec/integration/graph_spec.lua: the stream graph is data (DESIGN.md "The graph is data"):
-- every DStream a plain record that serializes and compares; functions are shipped once, when
-- a stream is defined, not for every batch.
local helpers = require "spec.helpers"
local codec = require "streamhost.codec"
local ship = require "streamhost.ship"

-- The same job, defined on a fresh context each time it is called.
local function build(ssc, use_filter)
    local lines = ssc:queueStream({ { "a b", "b" } })
    local words = lines:flatMap(function(l)
        local out = {}
        for w in l:gmatch("%S+") do out[#out + 1] = w end
        return out
    end)
    if use_filter then
        words = words:filter(function(w) return w ~= "" end)
    else
        words = words:map(function(w) return w end)
    end
    local counts = words:map(function(w) return { w, 1 } end)
        :reduceByKey(function(a, b) return a + b end, 3)
        :setName("counts")
    counts:window(0.2, 0.1):count():foreachRDD(function() end)
    return counts
end

describe("the stream graph", function()
    before_each(helpers.stop_active)

    it("holds every DStream as a plain record that encodes and decodes unchanged", function()
        local ssc = helpers.ssc(0.1)
        build(ssc)
        local g = ssc:_graph()
        assert.are.equal(100, g.batch_ms)
        local ops = {}
        for i, r in ipairs(g.streams) do
            ops[i] = r.op
            assert.are.equal(i, r.id)
            for _, p in ipairs(r.parents) do assert.is_true(p < r.id) end
            for _, id in ipairs(r.fns) do assert.are.equal("number", type(id)) end
        end
        assert.are.same({ "input", "flatMap", "map", "map", "combineByKey", "window", "count" }, ops)
        assert.are.same({ kind = "queueStream", oneAtATime = true }, g.streams[1].args)
        assert.are.equal("counts", g.streams[5].name)
        assert.are.equal(3, g.streams[5].args.numPartitions)
        assert.are.equal(200, g.streams[6].args.window_ms)
        assert.are.equal(1, #g.outputs)
        assert.matches("foreachRDD at .*graph_spec.lua:%d+", g.outputs[1].description)
        assert.are.same(g, codec.decode(codec.encode(g)))
        ssc:stop(false)
    end)

    it("compares equal for the same job defined twice, and differs where an operation changed", function()
        local a, b, c = helpers.ssc(0.1), nil, nil
        build(a)
        local ga = a:_graph()
        a:stop(false)
        b = helpers.ssc(0.1)
        build(b)
        local gb = b:_graph()
        b:stop(false)
        c = helpers.ssc(0.1)
        build(c, true)
        local gc = c:_graph()
        c:stop(false)
        assert.are.same(ga, gb)
        assert.are_not.same(ga.streams[3], gc.streams[3])
        assert.are.equal("filter", gc.streams[3].op)
    end)

    it("refuses a name that is not a string", function()
        local ssc = helpers.ssc(0.1)
        local d = ssc:queueStream({})
        assert.has_error(function() d:setName(42) end, "setName expects a non-empty string")
        ssc:stop(false)
    end)

    it("ships a stream's functions once, when it is defined, not for every batch", function()
        local big = {}
        for i = 1, 100000 do big[i] = "value " .. i end  -- a large captured table
        local real_ship, shipped = ship.ship, 0
        local ok, err = pcall(function()
            local out = helpers.run_stream({ { 1, 2 }, { 3 }, { 4 }, { 5 }, { 6 } }, function(d)
                ship.ship = function(f) shipped = shipped + 1; return real_ship(f) end
                local r = d:map(function(x) return big[x] end):filter(function(v) return v ~= nil end)
                return r
            end, 5)
            assert.are.same({ { "value 1", "value 2" }, { "value 3" }, { "value 4" }, { "value 5" }, { "value 6" } }, out)
        end)
        ship.ship = real_ship
        if not ok then error(err, 0) end
        assert.are.equal(2, shipped)  -- map's and filter's, once each, for five batches
    end)
end)
