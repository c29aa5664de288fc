-- spec/integration/embed_spec.lua: examples/embed (a C game server embedding the host: two
-- producer threads, output callbacks, a hot reload) run as built in the tree; `make install`
-- into a temporary prefix (and with DESTDIR), the example built against it with pkg-config, and
-- the installed executable and example run from another directory.
local helpers = require "spec.helpers"

local function sh(cmd)
    local p = assert(io.popen(cmd .. " 2>&1; echo \"rc=$?\"", "r"))
    local out = p:read("*a")
    p:close()
    return out, tonumber(out:match("rc=(%d+)%s*$"))
end

-- The example as built beside the host under test (make asan builds a sanitized one).
local GAME = (os.getenv("STREAMHOST") or ""):find("asan") and "build/examples/game_server-asan"
    or "build/examples/game_server"

local q = helpers.q

describe("embedding", function()
    it("the game server example feeds the job from two threads, gets leaderboards, reloads, and every point is counted once", function()
        local out, rc = sh("timeout 120 " .. GAME .. " examples/embed/leaderboard.lua 3 examples/embed/leaderboard_top2.lua 1.5")
        assert.are.equal(0, rc, out)
        assert.truthy(out:find("leaderboard at [%d.]+: 1%. {\"%a+\", %d+}"), out)
        assert.truthy(out:find("reload 1 of examples/embed/leaderboard_top2.lua taken [^\n]*kept: EmbeddedStream%(events%)"), out)
        assert.truthy(out:find("every point counted once"), out)
    end)

    it("installs into a prefix; an embedder builds with pkg-config and both run from any directory", function()
        local prefix, stage, work = helpers.tmpdir(), helpers.tmpdir(), helpers.tmpdir()
        local ok, err = pcall(function()
            local out, rc = sh("make --no-print-directory install PREFIX=" .. q(prefix))
            assert.are.equal(0, rc, out)
            for _, f in ipairs({ "bin/streamhost", "include/streamhost.h", "lib/libstreamhost.a",
                                 "lib/libstreamhost.so", "lib/pkgconfig/streamhost.pc",
                                 "share/streamhost/lua/streamhost/init.lua",
                                 "share/streamhost/lua/streamhost/reload.lua" }) do
                assert.truthy(helpers.read_file(prefix .. "/" .. f), "missing " .. f)
            end
            -- No source-tree path is compiled in.
            local here = sh("pwd"):match("^(%S+)")
            out = sh("grep -c " .. q(here) .. " " .. q(prefix .. "/bin/streamhost") .. " " .. q(prefix .. "/lib/libstreamhost.so"))
            assert.truthy(out:find(":0\n.*:0\n"), out)
            -- DESTDIR stages the same tree elsewhere.
            out, rc = sh("make --no-print-directory install PREFIX=" .. q(prefix) .. " DESTDIR=" .. q(stage))
            assert.are.equal(0, rc, out)
            assert.truthy(helpers.read_file(stage .. prefix .. "/lib/pkgconfig/streamhost.pc"))
            -- The embedder, built against the installed library with pkg-config.
            out, rc = sh(string.format("PKG_CONFIG_PATH=%s/lib/pkgconfig cc -o %s/game examples/embed/game_server.c $(PKG_CONFIG_PATH=%s/lib/pkgconfig pkg-config --cflags --libs streamhost) -pthread -Wl,-rpath,%s/lib",
                q(prefix), q(work), q(prefix), q(prefix)))
            assert.are.equal(0, rc, out)
            os.execute(string.format("cp examples/embed/leaderboard.lua %s/job.lua", q(work)))
            out, rc = sh(string.format("cd / && timeout 120 %s/game %s/job.lua 2", q(work), q(work)))
            assert.are.equal(0, rc, out)
            assert.truthy(out:find("every point counted once"), out)
            -- The installed executable runs a job from another directory.
            helpers.write_file(work .. "/sum.lua", "local sh = require 'streamhost'\n" ..
                "print(sh.SparkContext('local[2]'):parallelize({1, 2, 3, 4}):reduce(function(a, b) return a + b end))\n")
            out, rc = sh(string.format("cd / && env -u STREAMHOST_LUA_DIR timeout 60 %s/bin/streamhost %s/sum.lua", q(prefix), q(work)))
            assert.are.equal(0, rc, out)
            assert.truthy(out:find("^10\n"), out)
        end)
        os.execute("rm -rf " .. q(prefix) .. " " .. q(stage) .. " " .. q(work))
        assert(ok, err)
    end)
end)
