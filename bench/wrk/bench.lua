-- The benchmark's wrk script (bench/lib/wrk.mjs runs it).
-- Arguments after `--`: UPSTREAM_HOST:PORT PATH VIA_PROXY(0|1) PROFILES PROFILE_PREFIX
-- Through a proxy the request line is absolute-form (GET http://host:port/path),
-- as curl -x sends it. With PROFILES > 0 every request names a profile
-- (X-Session-Profile: PREFIX0 ... PREFIX<N-1>), each thread starting elsewhere.

local thread_count = 0
function setup(thread)
  thread:set("tid", thread_count)
  thread_count = thread_count + 1
end

local reqs = nil
local idx = 0
local nprof = 0

function init(args)
  local up_host = args[1]
  local path = args[2]
  local via_proxy = args[3] == "1"
  nprof = tonumber(args[4]) or 0
  local prefix = args[5] or "p"
  wrk.method = "GET"
  wrk.path = via_proxy and ("http://" .. up_host .. path) or path
  wrk.headers["Host"] = up_host
  if nprof > 0 then
    reqs = {}
    for i = 0, nprof - 1 do
      reqs[i + 1] = wrk.format(nil, nil, { ["Host"] = up_host, ["X-Session-Profile"] = prefix .. i })
    end
    idx = ((tid or 0) * 7919) % nprof
  end
end

function request()
  if reqs == nil then return wrk.format() end
  idx = idx + 1
  if idx > nprof then idx = 1 end
  return reqs[idx]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%.0f,"duration_us":%.0f,"bytes":%.0f,"err_connect":%.0f,"err_read":%.0f,"err_write":%.0f,"err_status":%.0f,"err_timeout":%.0f,"lat_mean_us":%.1f,"lat_max_us":%.0f,"p50_us":%.0f,"p90_us":%.0f,"p99_us":%.0f,"p999_us":%.0f}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9)))
end
