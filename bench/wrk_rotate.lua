-- bench/wrk_rotate.lua -- wrk requests rotating over the users' tokens (and post ids).
--
-- usage: wrk -t1 -c64 -d10 --latency -s bench/wrk_rotate.lua URL -- MODE TOKENS [IDS]
--   MODE post      POST /v1/posts with a small JSON post
--        timeline  GET /v1/timeline?limit=20
--        get       GET /v1/posts/{id}, the ids taken from IDS (one a line)
--   TOKENS: one bearer token a line.
-- Every request is formatted once in init, so the per-request cost in wrk is one table
-- lookup; request k uses token k mod #TOKENS and id k mod #IDS. done() prints one
-- "RESULT key=value ..." line for bench/ratios.sh (latencies in ms). wrk counts an answer
-- with status >= 400 as a "status" error (its "Non-2xx or 3xx responses").

local function lines(path)
  local t = {}
  for line in io.lines(path) do
    if line ~= "" then t[#t + 1] = line end
  end
  assert(#t > 0, path .. " is empty")
  return t
end

local reqs = {}
local k = 0

function init(args)
  local mode, tokens = args[1], lines(args[2])
  local ids = mode == "get" and lines(args[3]) or { "" }
  local n = math.max(#tokens, #ids)
  for i = 1, n do
    local headers = { ["Authorization"] = "Bearer " .. tokens[(i - 1) % #tokens + 1] }
    if mode == "post" then
      headers["Content-Type"] = "application/json"
      reqs[i] = wrk.format("POST", "/v1/posts", headers,
        string.format('{"text":"wrk post %d from a benchmark"}', i))
    elseif mode == "timeline" then
      reqs[i] = wrk.format("GET", "/v1/timeline?limit=20", headers)
    elseif mode == "get" then
      reqs[i] = wrk.format("GET", "/v1/posts/" .. ids[(i - 1) % #ids + 1], headers)
    else
      error("unknown mode " .. tostring(mode))
    end
  end
end

function request()
  k = k % #reqs + 1
  return reqs[k]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_s=%.3f rps=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f " ..
    "max_ms=%.3f non2xx=%d connect=%d read=%d write=%d timeout=%d\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1e3, latency:percentile(90) / 1e3, latency:percentile(99) / 1e3,
    latency.max / 1e3, e.status, e.connect, e.read, e.write, e.timeout))
end
