-- wrk script of Benchmarks/http-cluster: every request is GET /counter with one of the sessions
-- created beforehand (a file of cookie values, one a line, given after `--`), taken in turn, so
-- every request loads and writes a session that already exists on every node.
local cookies = {}
local next_index = 1
local bad = 0

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then cookies[#cookies + 1] = line end
  end
  if #cookies == 0 then error("no session cookies in " .. args[1]) end
  -- Each wrk thread starts at a different session.
  next_index = math.random(#cookies)
end

function request()
  next_index = next_index % #cookies + 1
  return wrk.format("GET", "/counter", { ["Cookie"] = "COHORT_SESSION=" .. cookies[next_index] })
end

function response(status, headers, body)
  if status ~= 200 then bad = bad + 1 end
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    "WRK requests=%d duration_us=%d p50_us=%d p90_us=%d p99_us=%d non2xx=%d connect_err=%d read_err=%d write_err=%d timeouts=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    errors.status, errors.connect, errors.read, errors.write, errors.timeout))
end
