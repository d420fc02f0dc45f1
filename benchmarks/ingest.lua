-- wrk script: POST /api/plugins/upgrades, each request from the next of many plugin credentials
-- (its own merchant), with a fresh Idempotency-Key, all reporting on the same rollout.
-- usage: wrk -t2 -c50 -d20s --latency -s ingest.lua http://127.0.0.1:8000 -- <credentials file>
-- The file holds "<token> <merchant_id>" per line. Prints one "RESULT ..." line (latencies in ms).

local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

local rnd = math.random
local creds = {}
local n = 0

function init(args)
  for line in io.lines(args[1]) do
    local token, merchant = line:match("^(%S+)%s+(%S+)$")
    if token then table.insert(creds, {token, merchant}) end
  end
  n = (tid or 1) * 7919
  math.randomseed(os.time() * 1000 + (tid or 0) * 104729)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Accept"] = "application/json"
end

local function uuid()
  return string.format("%04x%04x-%04x-4%03x-%04x-%04x%04x%04x",
    rnd(0, 0xffff), rnd(0, 0xffff), rnd(0, 0xffff), rnd(0, 0xfff),
    0x8000 + rnd(0, 0x3fff), rnd(0, 0xffff), rnd(0, 0xffff), rnd(0, 0xffff))
end

function request()
  n = n + 1
  local cred = creds[(n % #creds) + 1]
  local status = (rnd(1, 100) <= 5) and "failed" or "success"
  local body = string.format(
    '{"merchant_id":"%s","plugin_name":"woocommerce","from_version":"3.9.0","to_version":"4.0.0","status":"%s","duration_ms":%d}',
    cred[2], status, rnd(500, 5000))
  return wrk.format(nil, "/api/plugins/upgrades", {
    ["Authorization"] = "Bearer " .. cred[1],
    ["Idempotency-Key"] = uuid(),
  }, body)
end

function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  local e = summary.errors
  local ms = function(us) return us / 1000 end
  io.write(string.format(
    "RESULT mode=ingest requests=%d duration_s=%.2f rps=%.1f mean_ms=%.2f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f non2xx=%d socket_errors=%d\n",
    summary.requests, secs, summary.requests / secs, ms(latency.mean),
    ms(latency:percentile(50)), ms(latency:percentile(90)), ms(latency:percentile(99)),
    ms(latency.max), e.status, e.connect + e.read + e.write + e.timeout))
end
