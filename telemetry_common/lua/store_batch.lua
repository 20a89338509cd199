-- Stores one batch of one Kafka partition's readings and moves the partition's built
-- offset, atomically (telemetry_common/storage.py: store_batch_call builds the
-- arguments, StoreBatchResult reads the reply). Every key is in the partition's slot.
--
-- Unless the built offset in Redis is the one the worker expects (Redis lost writes,
-- was emptied or replaced), nothing is written and the offset Redis holds is returned:
-- the worker replays the partition from there. Otherwise, for each machine: the
-- readings go to its history (if kept), the newest to its latest hash unless a newer
-- reading is there, and the machine to the fleet indexes (by last seen, by id, and by
-- the memory pressure of the reading in its latest hash); the built offset moves last.
-- Retired machines (retirement records of the batch) are removed first: their latest
-- hash, history and fleet index entries. The readings given for them are only those
-- that came after their retirement, so this is the log's order.

local built_key = KEYS[1]
local last_seen_key = KEYS[2]
local ids_key = KEYS[3]
local pressure_key = KEYS[4]
-- KEYS[5...]: per retired machine, its latest hash and its history stream; then per
-- machine with readings, its latest hash, then its history stream if history is kept.
local retired_count = tonumber(ARGV[6])
local first_retired_key = 5
local first_machine_key = first_retired_key + 2 * retired_count

-- Most history entries per machine ('0': no bound).
local max_entries = ARGV[1]
-- Entries older than this (ms, against Redis's clock) go (0: no bound).
local max_age_ms = tonumber(ARGV[2])
-- The built offset the worker expects ('' : none yet), and where this batch builds to.
-- '*' for both: write the readings and leave the offset alone (putting readings in
-- place outside the log's order: the upgrade from an older layout).
local expected_offset = ARGV[3]
local next_offset = ARGV[4]
-- How long the latest hashes' key prefix is: the machine id follows it.
local latest_prefix_length = tonumber(ARGV[5])
-- ARGV[6]: how many machines are retired (their keys come first, see KEYS).
-- ARGV[7...]: one group per machine: its count of entries, the entries (oldest first;
-- without history, only superseded ones of a later time), then the newest reading's
-- JSON, receipt time and pressure score (storage.pressure_score), for the latest hash
-- and the pressure index.
local first_group = 7

-- The position an entry starts with: partition, offset, Kafka timestamp (ms).
local ENTRY_POSITION = '^(%d+),(%d+),(%-?%d+),'
-- Values per chunk of a multi-member ZADD: Redis's Lua unpacks at most some 8000.
local ZADD_CHUNK = 1000
-- The age bound is checked in this many steps of its length.
local AGE_STEPS = 100

local current_offset = redis.call('GET', built_key) or ''
if expected_offset ~= '*' and current_offset ~= expected_offset then
  return {0, current_offset, 0, 0, 0, 0}
end

-- Retirements first: a reading that came before one is not given, one after it is.
local retired = 0
for k = first_retired_key, first_machine_key - 1, 2 do
  local machine = string.sub(KEYS[k], latest_prefix_length + 1)
  local removed = redis.call('DEL', KEYS[k], KEYS[k + 1])
  removed = removed + redis.call('ZREM', last_seen_key, machine)
  removed = removed + redis.call('ZREM', ids_key, machine)
  removed = removed + redis.call('ZREM', pressure_key, machine)
  if removed > 0 then retired = retired + 1 end
end

-- Appends to an existing stream: false if there is none (then `create`).
local function xadd(key, id, entry)
  if max_entries ~= '0' then
    return redis.pcall('XADD', key, 'NOMKSTREAM', 'MAXLEN', max_entries, id, 'entry', entry)
  end
  return redis.pcall('XADD', key, 'NOMKSTREAM', id, 'entry', entry)
end

local function create(key, id, entry)
  if max_entries ~= '0' then
    return redis.pcall('XADD', key, 'MAXLEN', max_entries, id, 'entry', entry)
  end
  return redis.pcall('XADD', key, id, 'entry', entry)
end

-- Appends one entry to a machine's history. Returns the time part of the new entry's
-- id (and true if it created the stream), or nil if the entry is refused: a replayed
-- or duplicate record (its id, `<timestamp>-<offset>`, is not above the stream's last
-- id), an older record of another partition, or an id Redis cannot take. Where a
-- record of the same partition with a later offset has a timestamp behind the stream's
-- last id (the producer's clock went backwards), the entry takes the last id's time and
-- the next sequence number instead: the reading is kept, and ids stay ordered like
-- offsets.
local function append(key, entry, partition, offset, timestamp)
  local added = xadd(key, timestamp .. '-' .. offset, entry)
  if not added then
    added = create(key, timestamp .. '-' .. offset, entry)
    if type(added) ~= 'table' then return timestamp, true end
  end
  if type(added) ~= 'table' then return timestamp end
  if not string.find(added.err, 'equal or smaller', 1, true) then
    -- An id Redis cannot take (a timestamp before 1970): refused; anything else raises.
    if string.find(added.err, ' ID ', 1, true) then return nil end
    error(added.err)
  end
  local top = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)[1]
  if not top then return nil end
  local top_partition, top_offset = string.match(top[2][2], ENTRY_POSITION)
  if top_partition ~= partition or tonumber(offset) <= tonumber(top_offset) then
    return nil
  end
  local ms, seq = string.match(top[1], '^(%d+)%-(%d+)$')
  local id = ms .. '-' .. string.format('%d', math.max(tonumber(offset), tonumber(seq) + 1))
  added = xadd(key, id, entry)
  if type(added) == 'table' and added.err then error(added.err) end
  return ms
end

-- Writes the newest reading to the latest hash unless a newer one is there (`current`:
-- the stored partition, offset and timestamp, nils if none). The hash holds readings of
-- this partition only, whose offsets order a machine's records exactly (across
-- partitions, after partitions were added, the readers compare timestamps). Returns
-- true if written.
local function store_if_newer(key, reading, partition, offset, timestamp, received_at, current)
  if current[2] and tonumber(offset) <= tonumber(current[2]) then return false end
  redis.call('HSET', key, 'reading', reading, 'partition', partition, 'offset', offset,
    'timestamp_ms', timestamp, 'received_at', received_at)
  return true
end

local history = max_entries ~= '0' or max_age_ms > 0
-- The age bound is applied to a machine's history when its stream is created and
-- whenever its readings' time enters a new step of the bound (a hundredth of it),
-- rather than on every write: an entry outlives the bound by a step at most.
local cutoff, age_step
if max_age_ms > 0 then
  local now = redis.call('TIME')
  cutoff = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - max_age_ms
  age_step = math.max(1, math.floor(max_age_ms / AGE_STEPS))
end

local written, appended, refused = 0, 0, 0
local last_seen, ids, pressures = {}, {}, {}
local base = first_group
for k = first_machine_key, #KEYS, history and 2 or 1 do
  local latest_key = KEYS[k]
  local newest = base + tonumber(ARGV[base])
  local reading, received_at, pressure = ARGV[newest + 1], ARGV[newest + 2], ARGV[newest + 3]
  local partition, offset, timestamp = string.match(ARGV[newest], ENTRY_POSITION)
  if not partition then error('not a history entry: ' .. ARGV[newest]) end
  local first = base + 1
  base = newest + 4
  local current = redis.call('HMGET', latest_key, 'partition', 'offset', 'timestamp_ms')
  -- When the machine was last seen: its newest reading's time, or a superseded one's
  -- if that is later (a producer clock that went back).
  local seen = timestamp
  local created, newest_ms
  for entry = first, newest do
    local p, o, t = partition, offset, timestamp
    if entry ~= newest then
      p, o, t = string.match(ARGV[entry], ENTRY_POSITION)
      if not p then error('not a history entry: ' .. ARGV[entry]) end
      if tonumber(t) > tonumber(seen) then seen = t end
    end
    if history then
      local ms, new_stream = append(KEYS[k + 1], ARGV[entry], p, o, t)
      if ms then
        appended = appended + 1
        newest_ms = ms
        created = created or new_stream
      else
        refused = refused + 1
      end
    end
  end
  if history and newest_ms and cutoff then
    local step = math.floor(tonumber(newest_ms) / age_step)
    if created or not current[3] or math.floor(tonumber(current[3]) / age_step) ~= step then
      redis.call('XTRIM', KEYS[k + 1], 'MINID', string.format('%d', cutoff))
      -- A machine that stops reporting: its whole history goes once the newest entry
      -- this step can hold is too old.
      local expiry = (step + 1) * age_step + max_age_ms
      redis.call('PEXPIREAT', KEYS[k + 1], string.format('%d', expiry))
    end
  end
  if store_if_newer(latest_key, reading, partition, offset, timestamp, received_at, current) then
    written = written + 1
    local machine = string.sub(latest_key, latest_prefix_length + 1)
    last_seen[#last_seen + 1] = seen
    last_seen[#last_seen + 1] = machine
    -- The pressure index follows the latest hash: set, not only raised, with it.
    pressures[#pressures + 1] = pressure
    pressures[#pressures + 1] = machine
    -- The id index changes only with a new machine; a machine stored before the index
    -- was kept joins it as its readings enter a new hour (once an hour, adding a machine
    -- that is there costs little and changes nothing).
    if not current[1] or math.floor(tonumber(seen) / 3600000)
        ~= math.floor(tonumber(current[3]) / 3600000) then
      ids[#ids + 1] = 0
      ids[#ids + 1] = machine
    end
  end
end
for i = 1, #last_seen, ZADD_CHUNK do
  redis.call('ZADD', last_seen_key, 'GT', unpack(last_seen, i, math.min(i + ZADD_CHUNK - 1, #last_seen)))
end
for i = 1, #pressures, ZADD_CHUNK do
  redis.call('ZADD', pressure_key, unpack(pressures, i, math.min(i + ZADD_CHUNK - 1, #pressures)))
end
for i = 1, #ids, ZADD_CHUNK do
  redis.call('ZADD', ids_key, unpack(ids, i, math.min(i + ZADD_CHUNK - 1, #ids)))
end
-- Last, so that an error above leaves the offset behind the readings (a harmless
-- replay), never ahead of them.
if next_offset ~= '*' then redis.call('SET', built_key, next_offset) end
return {1, '', written, appended, refused, retired}
