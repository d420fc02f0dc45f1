-- wrk script: GET /api/plugins/rollouts/<plugin>/should-upgrade for a new random merchant each
-- request, authenticated with a bearer token (the same shape as the Unleash anchor's frontend run).
-- usage: wrk -t2 -c50 -d20s --latency -s should_upgrade.lua http://127.0.0.1:8000 -- <token> [plugin]
-- Prints one machine-readable "RESULT ..." line (latencies in ms).

local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

local rnd = math.random
local plugin

function init(args)
  local token = args[1] or ""
  plugin = args[2] or "woocommerce"
  math.randomseed(os.time() * 1000 + (tid or 0) * 7919)
  wrk.headers["Authorization"] = "Bearer " .. token
  wrk.headers["Accept"] = "application/json"
end

local function uuid()
  return string.format("%04x%04x-%04x-4%03x-%04x-%04x%04x%04x",
    rnd(0, 0xffff), rnd(0, 0xffff), rnd(0, 0xffff), rnd(0, 0xfff),
    0x8000 + rnd(0, 0x3fff), rnd(0, 0xffff), rnd(0, 0xffff), rnd(0, 0xffff))
end

function request()
  return wrk.format("GET", "/api/plugins/rollouts/" .. plugin .. "/should-upgrade?merchant_id=" .. uuid()
    .. "&current_version=3.9.0&country=SN&tier=pro")
end

function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  local e = summary.errors
  local ms = function(us) return us / 1000 end
  io.write(string.format(
    "RESULT mode=should-upgrade requests=%d duration_s=%.2f rps=%.1f mean_ms=%.2f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f p999_ms=%.2f max_ms=%.2f non2xx=%d socket_errors=%d\n",
    summary.requests, secs, summary.requests / secs, ms(latency.mean),
    ms(latency:percentile(50)), ms(latency:percentile(90)), ms(latency:percentile(99)),
    ms(latency:percentile(99.9)), ms(latency.max), e.status,
    e.connect + e.read + e.write + e.timeout))
end
