-- wrk script: POST one valid reading, spread over 1000 machine ids.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"total": 16318064, "used": 5204372, "free": 6104220, "shared": 412908, "buff_cache": 5009472, "available": 10352120}'
local counter = 0
request = function()
  counter = counter + 1
  return wrk.format(nil, "/cpu-info/bench-" .. (counter % 1000))
end
