-- wrk script: POST batches of readings to /cpu-info.
-- Arguments (after `--`): readings per batch, machines to spread them over.
wrk.method = "POST"
wrk.path = "/cpu-info"
wrk.headers["Content-Type"] = "application/json"

local reading = '{"total": 16318064, "used": 5204372, "free": 6104220, "shared": 412908, "buff_cache": 5009472, "available": 10352120}'
local bodies = {}
local next_body = 0

function init(args)
  local size = tonumber(args[1]) or 100
  local machines = tonumber(args[2]) or 1000
  local count = math.max(1, math.floor(machines / size))
  for b = 0, count - 1 do
    local items = {}
    for i = 0, size - 1 do
      local machine = (b * size + i) % machines
      items[#items + 1] = '{"machine_id": "batch-' .. machine .. '", "reading": ' .. reading .. '}'
    end
    bodies[#bodies + 1] = "[" .. table.concat(items, ", ") .. "]"
  end
end

function request()
  next_body = next_body % #bodies + 1
  return wrk.format(nil, nil, nil, bodies[next_body])
end
