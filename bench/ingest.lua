-- wrk script for bench/ingest.py: POSTs a realistic Chargebee event with a unique id per request
-- (so none are duplicates), with Basic auth, and counts the answers that say "queued".
-- The event body comes from the file named by $BENCH_EVENT_FILE, with __ID__ where the id goes.

local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
  table.insert(threads, thread)
end

function init(args)
  local f = assert(io.open(os.getenv("BENCH_EVENT_FILE"), "r"))
  template = f:read("*a")
  f:close()
  prefix = os.getenv("BENCH_ID_PREFIX") or "ev_wrk"
  auth = "Basic " .. os.getenv("BENCH_BASIC_AUTH")
  n = 0
  queued = 0
  other = 0
end

function request()
  n = n + 1
  local id = string.format("%s_%d_%d", prefix, tid, n)
  local body = string.gsub(template, "__ID__", id)
  return wrk.format("POST", "/webhooks/chargebee",
    {["Content-Type"] = "application/json", ["Authorization"] = auth}, body)
end

function response(status, headers, body)
  if status == 200 and string.find(body, '"queued"', 1, true) then
    queued = queued + 1
  elseif status ~= 200 then
    other = other + 1
  end
end

function done(summary, latency, requests)
  local q, o = 0, 0
  for _, t in ipairs(threads) do
    q = q + t:get("queued")
    o = o + t:get("other")
  end
  io.write(string.format(
    "BENCH {\"requests\": %d, \"seconds\": %f, \"queued\": %d, \"non_200\": %d, " ..
    "\"connect_errors\": %d, \"read_errors\": %d, \"write_errors\": %d, \"timeouts\": %d, " ..
    "\"status_errors\": %d, \"p50_ms\": %f, \"p99_ms\": %f, \"max_ms\": %f}\n",
    summary.requests, summary.duration / 1e6, q, o,
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout,
    summary.errors.status, latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
