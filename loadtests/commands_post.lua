-- wrk script of the commands benchmark (loadtests/commands_bench.py): POST a command
-- open-loop at a fixed rate, round-robin over the devices d00000..d<N-1>.
--
-- Why wrk and not Python: a Python client needs ~8 ms of CPU per request, so at 500/s it
-- wants 4 cores of a 2-core box and measures its own queue. wrk has no open-loop mode
-- (wrk2 is not packaged): each thread keeps its own schedule (due = t0 + n * threads /
-- rate) and `delay()` holds a connection until its slot is due, with enough connections
-- that one is free when a slot comes. A request whose slot passed goes at once; the
-- harness compares the achieved rate with the target to say when the generator fell
-- behind. Every request carries the wall time it was written in its params
-- (`t_request`), so request -> accepted starts when the request left, not when a slot was
-- planned.
--
-- Arguments after `--`: project devices rate threads name timeout_s.

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } f5g_timespec;
int clock_gettime(int clk_id, f5g_timespec *tp);
]]
local ts = ffi.new("f5g_timespec")

local function now()
  ffi.C.clock_gettime(0, ts) -- CLOCK_REALTIME: compared with the database's clock
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

local counter = 0

function setup(thread)
  thread:set("index", counter)
  counter = counter + 1
end

function init(args)
  project = args[1]
  devices = tonumber(args[2])
  nthreads = tonumber(args[4])
  period = nthreads / tonumber(args[3])
  name = args[5]
  timeout_s = args[6]
  t0 = now()
  slots = 0
  built = 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function delay()
  local due = t0 + slots * period
  slots = slots + 1
  local ms = (due - now()) * 1000
  if ms < 0 then
    return 0
  end
  return ms
end

function request()
  local device = (index + nthreads * built) % devices
  built = built + 1
  local path = string.format("/api/v1/projects/%s/devices/d%05d/commands", project, device)
  local body = string.format(
    '{"name":"%s","timeout_s":%s,"params":{"t_request":%.6f}}', name, timeout_s, now()
  )
  return wrk.format(nil, path, nil, body)
end
