-- wrk script: POST one valid reading at a fixed rate, spread over 1000 machine ids.
-- Argument (after `--`): requests per second for this thread.
--
-- wrk asks delay() before each request on a connection; every call takes the next
-- slot of one schedule (a request every 1/rate seconds) and waits until it. While
-- connections are free the requests leave on schedule whatever the answers' pace (an
-- open loop); when the schedule is behind, requests go at once until it is caught up.
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock_id, bench_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local now_ts = ffi.new("bench_timespec")

local function now_ms()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, now_ts)
  return tonumber(now_ts.tv_sec) * 1000 + tonumber(now_ts.tv_nsec) / 1e6
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"total": 16318064, "used": 5204372, "free": 6104220, "shared": 412908, "buff_cache": 5009472, "available": 10352120}'

local interval_ms = 1
local next_slot = nil
local counter = 0

function init(args)
  interval_ms = 1000 / tonumber(args[1])
end

function delay()
  local now = now_ms()
  if next_slot == nil then
    next_slot = now
  end
  local slot = next_slot
  next_slot = next_slot + interval_ms
  local wait = slot - now
  if wait < 1 then
    return 0
  end
  return math.floor(wait)
end

function request()
  counter = counter + 1
  return wrk.format(nil, "/cpu-info/paced-" .. (counter % 1000))
end
