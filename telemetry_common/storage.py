"""How the worker keeps readings in Redis and the API reads them back.

One hash per machine holds its latest reading and the Kafka position the reading came
from, so that a replayed, older record never overwrites it. The hash's field names are
written once, in `LatestField`; the store scripts and their arguments are built from them.

Redis is a view of the Kafka topic: one more hash per consumer group and topic records,
per partition, the offset up to which the view is built. The batch script writes it in
the same atomic step as the readings, so the two can never disagree, and a worker that
finds it behind (or missing) rebuilds the view by replaying the topic from there.

The same script keeps two more things of every reading (docs/history.md):

* the history: a Redis Stream per machine that every reading of a batch is appended to,
  in order, bounded by count and by age. An entry's id is made from the record's Kafka
  timestamp and offset, so that Redis itself refuses a replayed record (its id is not
  above the stream's last one);
* the fleet index: two sorted sets of the machines with a stored reading, one by the
  time of each machine's latest reading (never moved backwards), one by machine id
  (a stable order to page through).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final, NamedTuple, Self, TypeVar

from pydantic import BaseModel, ConfigDict

from telemetry_common.contract import (
    READING_FIELDS,
    MemoryReading,
    reading_columns,
    reading_json,
)

REDIS_KEY_NAMESPACE: Final = "memtel:v1"

# The consumer group of the workers unless configured otherwise. The API reads the
# group's built offsets (for read-your-writes), so both services default to this name.
DEFAULT_CONSUMER_GROUP: Final = "memtel-redis-writer"

_LATEST_KEY_PREFIX: Final = f"{REDIS_KEY_NAMESPACE}:latest:"

# The fleet index. Members are machine ids. In MACHINES_LAST_SEEN_KEY the score is the
# Kafka timestamp (ms) of the machine's latest reading, only ever raised; in
# MACHINE_IDS_KEY every score is 0, so that the set is ordered by machine id alone.
MACHINES_LAST_SEEN_KEY: Final = f"{REDIS_KEY_NAMESPACE}:machines"
MACHINE_IDS_KEY: Final = f"{REDIS_KEY_NAMESPACE}:machine-ids"

T = TypeVar("T")


def latest_reading_key(machine_id: str) -> str:
    """The Redis hash that holds a machine's latest reading and its Kafka position."""
    return f"{_LATEST_KEY_PREFIX}{machine_id}"


def history_key(machine_id: str) -> str:
    """The Redis Stream of a machine's readings, oldest first (see HISTORY_ENTRY_FIELD)."""
    return f"{REDIS_KEY_NAMESPACE}:history:{machine_id}"


def built_offsets_key(consumer_group: str, topic: str) -> str:
    """The Redis hash of how far the view is built from each partition of `topic`.

    Its fields are `built_offset_field(partition)`; each value is the next offset to
    read from that partition (the last offset applied + 1). Kafka topic names have no
    colon, so the key is unambiguous whatever the group is called.
    """
    return f"{REDIS_KEY_NAMESPACE}:built:{consumer_group}:{topic}"


def built_offset_field(partition: int) -> str:
    """The field of `built_offsets_key`'s hash that holds one partition's offset."""
    return str(partition)


class LatestField(StrEnum):
    """Field names of the latest-reading hash."""

    READING = "reading"
    PARTITION = "partition"
    OFFSET = "offset"
    TIMESTAMP_MS = "timestamp_ms"
    RECEIVED_AT = "received_at"


# The order of the store script's ARGV. The script is built from it, and
# `ReadingWrite.store_args` is checked against it at import, so the two cannot disagree
# about positions.
STORE_ARGV_ORDER: Final = tuple(LatestField)


def _current_position_lua(key: str) -> str:
    """A Lua expression: the stored reading's partition, offset and timestamp (nils if
    none), as `_store_if_newer_body` takes them in `current`."""
    fields = (LatestField.PARTITION, LatestField.OFFSET, LatestField.TIMESTAMP_MS)
    return f"redis.call('HMGET', {key}, {', '.join(repr(str(f)) for f in fields)})"


def _store_if_newer_body(key: str, arg: Callable[[LatestField], str]) -> str:
    """Lua statements that store one reading unless a newer one is there (`current`,
    from `_current_position_lua`, says what is stored).

    Within one partition Kafka offsets order a machine's records exactly; across
    partitions (the topic was repartitioned) the record timestamps decide. They return
    1 if the reading was written, 0 if it was stale.
    """
    hset_pairs = ", ".join(f"'{field}', {arg(field)}" for field in STORE_ARGV_ORDER)
    partition, offset, timestamp = (
        LatestField.PARTITION,
        LatestField.OFFSET,
        LatestField.TIMESTAMP_MS,
    )
    return f"""
if current[1] then
  if tonumber(current[1]) == tonumber({arg(partition)}) then
    if tonumber({arg(offset)}) <= tonumber(current[2]) then return 0 end
  elseif tonumber({arg(timestamp)}) < tonumber(current[3]) then
    return 0
  end
end
redis.call('HSET', {key}, {hset_pairs})
return 1
"""


def _position(field: LatestField) -> int:
    """0-based position of a field in a reading's arguments."""
    return STORE_ARGV_ORDER.index(field)


def _index_machine_lua(latest_key: str, timestamp: str, last_seen: str, ids: str) -> str:
    """Lua statements that put the machine of `latest_key` in the fleet index, one
    reading at a time (the batch script adds many machines per call instead)."""
    return f"""
local machine = string.sub({latest_key}, {len(_LATEST_KEY_PREFIX) + 1})
redis.call('ZADD', {last_seen}, 'GT', {timestamp}, machine)
redis.call('ZADD', {ids}, 0, machine)
"""


def _store_if_newer_lua() -> str:
    store_if_newer = _store_if_newer_body("KEYS[1]", lambda field: f"ARGV[{_position(field) + 1}]")
    index = _index_machine_lua(
        "KEYS[1]", f"ARGV[{_position(LatestField.TIMESTAMP_MS) + 1}]", "KEYS[2]", "KEYS[3]"
    )
    return f"""
local function store_if_newer(current)
{store_if_newer}
end
if store_if_newer({_current_position_lua("KEYS[1]")}) == 0 then return 0 end
{index}
return 1
"""


# KEYS: the latest-reading key, MACHINES_LAST_SEEN_KEY, MACHINE_IDS_KEY (`store_call`);
# ARGV: `StoredReading.store_args()`. Running it as one script makes the compare and
# the write atomic. Returns 1 if the reading was written, 0 if it was stale.
STORE_IF_NEWER_LUA: Final = _store_if_newer_lua()


# A history entry has one field, HISTORY_ENTRY_FIELD, whose value is these integers
# joined by commas: the record's partition, offset and own Kafka timestamp (ms), then
# the reading's columns. One field and a short value keep both the entry (about 100
# bytes of Redis memory, stream nodes included, against about 200 with the latest
# hash's fields and the reading as JSON) and the script's work small
# (docs/history.md). The entry id's time part is the timestamp, or the previous
# entry's where the producer's clock went backwards.
HISTORY_ENTRY_FIELD: Final = "entry"
HISTORY_ENTRY_COLUMNS: Final = ("partition", "offset", "timestamp_ms", *READING_FIELDS)
_ENTRY_FORMAT: Final = ",".join(["%d"] * len(HISTORY_ENTRY_COLUMNS))
# The position an entry starts with, captured (a Lua pattern).
_ENTRY_POSITION_PATTERN: Final = "^(%d+),(%d+),(%-?%d+),"
if HISTORY_ENTRY_COLUMNS[:3] != ("partition", "offset", "timestamp_ms"):
    raise RuntimeError("the history scripts no longer follow HISTORY_ENTRY_COLUMNS")

# Values per chunk of a multi-member ZADD: Redis's Lua unpacks at most some 8000.
_ZADD_CHUNK: Final = 1000
# How many steps the age bound is checked in (see the batch script).
_AGE_STEPS: Final = 100


def _append_history_lua() -> str:
    """Lua functions that append one entry to a machine's history stream.

    `append(key, entry, partition, offset, timestamp, max_entries)` (the entry's
    position as its value starts; `max_entries` as given in ARGV, '0' for no bound)
    returns the time part of the new entry's id (and true if it created the
    stream), or nil if the entry is refused: a replayed or duplicate record (its id,
    `<timestamp>-<offset>`, is not above the stream's last id), an older record of
    another partition, or an id Redis cannot take. Where a record of the same partition
    with a later offset has a timestamp behind the stream's last id (the producer's
    clock went backwards), the entry takes the last id's time and the next sequence
    number instead: the reading is kept, and ids stay ordered like offsets.
    """
    field = HISTORY_ENTRY_FIELD
    return f"""
-- Appends to an existing stream: false if there is none (then `create`).
local function xadd(key, id, entry, max_entries)
  if max_entries ~= '0' then
    return redis.pcall('XADD', key, 'NOMKSTREAM', 'MAXLEN', max_entries, id, '{field}', entry)
  end
  return redis.pcall('XADD', key, 'NOMKSTREAM', id, '{field}', entry)
end
local function create(key, id, entry, max_entries)
  if max_entries ~= '0' then
    return redis.pcall('XADD', key, 'MAXLEN', max_entries, id, '{field}', entry)
  end
  return redis.pcall('XADD', key, id, '{field}', entry)
end
local function append(key, entry, partition, offset, timestamp, max_entries)
  local added = xadd(key, timestamp .. '-' .. offset, entry, max_entries)
  if not added then
    added = create(key, timestamp .. '-' .. offset, entry, max_entries)
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
  local top_partition, top_offset = string.match(top[2][2], '{_ENTRY_POSITION_PATTERN}')
  if top_partition ~= partition or tonumber(offset) <= tonumber(top_offset) then
    return nil
  end
  local ms, seq = string.match(top[1], '^(%d+)%-(%d+)$')
  local id = ms .. '-' .. string.format('%d', math.max(tonumber(offset), tonumber(seq) + 1))
  added = xadd(key, id, entry, max_entries)
  if type(added) == 'table' and added.err then error(added.err) end
  return ms
end
"""


# The Lua locals the batch script holds a group's newest reading in, by field.
_NEWEST_LOCALS: Final = {
    LatestField.READING: "reading",
    LatestField.PARTITION: "partition",
    LatestField.OFFSET: "offset",
    LatestField.TIMESTAMP_MS: "timestamp",
    LatestField.RECEIVED_AT: "received_at",
}


def _store_batch_lua() -> str:
    # Three passes, all in one script (so atomic): check every partition's built offset
    # against what the worker expects; store the readings of the partitions in step
    # (history, latest hash, fleet index); only then move their built offsets, so that
    # a script cut short by an error leaves the offsets behind the readings (a harmless
    # replay), never ahead of them.
    store_if_newer = _store_if_newer_body("key", _NEWEST_LOCALS.__getitem__)
    params = ", ".join(_NEWEST_LOCALS[field] for field in STORE_ARGV_ORDER)
    return f"""
local function store_if_newer(key, {params}, current)
{store_if_newer}
end
{_append_history_lua()}
local max_entries = ARGV[1]
local max_age_ms = tonumber(ARGV[2])
local history = max_entries ~= '0' or max_age_ms > 0
-- The age bound is applied to a machine's history when its stream is created and
-- whenever its readings' time enters a new step of the bound (a hundredth of it),
-- rather than on every write: an entry outlives the bound by a step at most.
local cutoff, age_step
if max_age_ms > 0 then
  local now = redis.call('TIME')
  cutoff = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - max_age_ms
  age_step = math.max(1, math.floor(max_age_ms / {_AGE_STEPS}))
end
local partitions = tonumber(ARGV[3])
local in_step = {{}}
local out_of_step = {{}}
for i = 0, partitions - 1 do
  local base = 4 + i * 3
  local current = redis.call('HGET', KEYS[1], ARGV[base]) or ''
  if current == ARGV[base + 1] then
    in_step[ARGV[base]] = true
  else
    table.insert(out_of_step, ARGV[base])
    table.insert(out_of_step, current)
  end
end
local written, appended, refused = 0, 0, 0
local last_seen, ids = {{}}, {{}}
local base = 4 + partitions * 3
-- One group per machine and partition: its count of entries, the entries (oldest
-- first; without history, only superseded ones of a later time), then the newest
-- reading's JSON and receipt time, for the latest hash.
for k = 4, #KEYS, history and 2 or 1 do
  local newest = base + tonumber(ARGV[base])
  local reading, received_at = ARGV[newest + 1], ARGV[newest + 2]
  local partition, offset, timestamp = string.match(ARGV[newest], '{_ENTRY_POSITION_PATTERN}')
  if not partition then error('not a history entry: ' .. ARGV[newest]) end
  local first = base + 1
  base = newest + 3
  if in_step[partition] then
    local current = {_current_position_lua("KEYS[k]")}
    -- When the machine was last seen: its newest reading's time, or a superseded one's
    -- if that is later (a producer clock that went back).
    local seen = timestamp
    local created, newest_ms
    for entry = first, newest do
      local p, o, t = partition, offset, timestamp
      if entry ~= newest then
        p, o, t = string.match(ARGV[entry], '{_ENTRY_POSITION_PATTERN}')
        if not p then error('not a history entry: ' .. ARGV[entry]) end
        if tonumber(t) > tonumber(seen) then seen = t end
      end
      if history then
        local ms, new_stream = append(KEYS[k + 1], ARGV[entry], p, o, t, max_entries)
        if ms then
          appended = appended + 1
          newest_ms = ms
          created = created or new_stream
        else
          refused = refused + 1
        end
      end
    end
    if history then
      if newest_ms and cutoff then
        local step = math.floor(tonumber(newest_ms) / age_step)
        if created or not current[3] or math.floor(tonumber(current[3]) / age_step) ~= step then
          redis.call('XTRIM', KEYS[k + 1], 'MINID', string.format('%d', cutoff))
          -- A machine that stops reporting: its whole history goes once the newest
          -- entry this step can hold is too old.
          local expiry = (step + 1) * age_step + max_age_ms
          redis.call('PEXPIREAT', KEYS[k + 1], string.format('%d', expiry))
        end
      end
    end
    if store_if_newer(KEYS[k], {params}, current) == 1 then
      written = written + 1
      local machine = string.sub(KEYS[k], {len(_LATEST_KEY_PREFIX) + 1})
      last_seen[#last_seen + 1] = seen
      last_seen[#last_seen + 1] = machine
      -- The id index changes only with a new machine; a machine stored before the
      -- index was kept joins it as its readings enter a new hour (once an hour, adding
      -- a machine that is there costs little and changes nothing).
      if not current[1] or math.floor(tonumber(seen) / 3600000)
          ~= math.floor(tonumber(current[3]) / 3600000) then
        ids[#ids + 1] = 0
        ids[#ids + 1] = machine
      end
    end
  end
end
for i = 1, #last_seen, {_ZADD_CHUNK} do
  local last = math.min(i + {_ZADD_CHUNK - 1}, #last_seen)
  redis.call('ZADD', KEYS[2], 'GT', unpack(last_seen, i, last))
end
for i = 1, #ids, {_ZADD_CHUNK} do
  redis.call('ZADD', KEYS[3], unpack(ids, i, math.min(i + {_ZADD_CHUNK - 1}, #ids)))
end
for i = 0, partitions - 1 do
  local base = 4 + i * 3
  if in_step[ARGV[base]] then
    redis.call('HSET', KEYS[1], ARGV[base], ARGV[base + 2])
  end
end
return {{written, out_of_step, appended, refused}}
"""


# KEYS and ARGV: `store_batch_call()`; the reply: `StoreBatchResult.from_reply()`.
STORE_BATCH_LUA: Final = _store_batch_lua()


class DamagedStoredReadingError(Exception):
    """A latest-reading hash in Redis that cannot be read back (edited or corrupted)."""

    def __init__(self, machine_id: str, problem: str) -> None:
        super().__init__(f"the stored reading of {machine_id!r} is damaged: {problem}")
        self.machine_id = machine_id
        self.problem = problem


class ReadingWrite(NamedTuple):
    """One reading as the store scripts take it.

    The worker makes one per record: a named tuple is the cheapest to make, and the
    reading's JSON is written only for the readings that are sent.
    """

    machine_id: str
    # The reading's values in the order of MemoryReading's fields.
    columns: tuple[int, ...]
    partition: int
    offset: int
    timestamp_ms: int
    received_at: datetime
    # The same machine's readings of the same partition that came before this one in
    # its batch, oldest first: superseded for the latest hash (never sent to it), still
    # owed to the history.
    earlier: tuple[ReadingWrite, ...] = ()

    @property
    def reading(self) -> MemoryReading:
        return MemoryReading.model_validate_json(reading_json(self.columns))

    def store_args(self) -> list[str | int]:
        """The ARGV of STORE_IF_NEWER_LUA for this reading (in STORE_ARGV_ORDER)."""
        return [
            reading_json(self.columns),
            self.partition,
            self.offset,
            self.timestamp_ms,
            self.received_at.isoformat(),
        ]

    def entry(self) -> str:
        """The reading as a history entry's value (HISTORY_ENTRY_COLUMNS), which is also
        how the batch script takes its position."""
        return _ENTRY_FORMAT % (self.partition, self.offset, self.timestamp_ms, *self.columns)


# The order store_args writes, checked once here rather than looked up on every write.
if STORE_ARGV_ORDER != (
    LatestField.READING,
    LatestField.PARTITION,
    LatestField.OFFSET,
    LatestField.TIMESTAMP_MS,
    LatestField.RECEIVED_AT,
):
    raise RuntimeError("ReadingWrite.store_args does not follow STORE_ARGV_ORDER")


class StoredReading(BaseModel):
    """A reading as kept in Redis, with the Kafka position it was read from."""

    model_config = ConfigDict(frozen=True)

    machine_id: str
    reading: MemoryReading
    partition: int
    offset: int
    timestamp_ms: int
    received_at: datetime

    def as_write(self) -> ReadingWrite:
        return ReadingWrite(
            machine_id=self.machine_id,
            columns=reading_columns(self.reading),
            partition=self.partition,
            offset=self.offset,
            timestamp_ms=self.timestamp_ms,
            received_at=self.received_at,
        )

    def store_args(self) -> list[str | int]:
        """The ARGV of STORE_IF_NEWER_LUA for this reading."""
        return self.as_write().store_args()

    @classmethod
    def from_redis_hash(cls, machine_id: str, fields: dict[str, str]) -> Self:
        """Rebuild a stored reading from its hash; raise DamagedStoredReadingError if damaged."""
        missing = [str(field) for field in LatestField if field not in fields]
        if missing:
            raise DamagedStoredReadingError(machine_id, f"missing field(s) {', '.join(missing)}")

        def parse(field: LatestField, parser: Callable[[str], T]) -> T:
            try:
                return parser(fields[field])
            except ValueError as exc:  # pydantic's ValidationError is a ValueError too
                raise DamagedStoredReadingError(
                    machine_id, f"field {field!s}: {_first_line(exc)}"
                ) from exc

        return cls(
            machine_id=machine_id,
            reading=parse(LatestField.READING, MemoryReading.model_validate_json),
            partition=parse(LatestField.PARTITION, int),
            offset=parse(LatestField.OFFSET, int),
            timestamp_ms=parse(LatestField.TIMESTAMP_MS, int),
            received_at=parse(LatestField.RECEIVED_AT, datetime.fromisoformat),
        )


class StoredHistoryEntry(BaseModel):
    """One entry of a machine's history, as kept in its stream."""

    model_config = ConfigDict(frozen=True)

    # The stream entry's id, `<time ms>-<sequence>`: its place in the history.
    entry_id: str
    reading: MemoryReading
    partition: int
    offset: int
    timestamp_ms: int

    @classmethod
    def from_stream_entry(cls, machine_id: str, entry_id: str, fields: dict[str, str]) -> Self:
        """Rebuild an entry from its fields; raise DamagedStoredReadingError if damaged."""
        try:
            values = [int(value) for value in fields[HISTORY_ENTRY_FIELD].split(",")]
            if len(values) != len(HISTORY_ENTRY_COLUMNS):
                raise ValueError(f"{len(values)} values, not {len(HISTORY_ENTRY_COLUMNS)}")
            partition, offset, timestamp_ms, *columns = values
            reading = MemoryReading.model_validate(dict(zip(READING_FIELDS, columns, strict=True)))
        except KeyError:
            raise DamagedStoredReadingError(
                machine_id, f"history entry {entry_id}: no field {HISTORY_ENTRY_FIELD}"
            ) from None
        except ValueError as exc:  # pydantic's ValidationError is a ValueError too
            raise DamagedStoredReadingError(
                machine_id, f"history entry {entry_id}: {_first_line(exc)}"
            ) from exc
        return cls(
            entry_id=entry_id,
            reading=reading,
            partition=partition,
            offset=offset,
            timestamp_ms=timestamp_ms,
        )


@dataclass(frozen=True)
class PartitionStep:
    """One partition's move in a batch: from the built offset the worker expects Redis
    to hold (None: none yet) to the next offset to read after this batch."""

    partition: int
    expected: int | None
    next_offset: int


@dataclass(frozen=True)
class HistoryRetention:
    """How much of each machine's history the worker keeps; 0 lifts a bound, and with
    both at 0 no history is kept at all (an unbounded one would fill Redis)."""

    # Most entries per machine (the oldest go first).
    max_entries: int = 0
    # Entries whose time is older than this (against Redis's clock) go; so does the
    # whole history of a machine whose newest entry is.
    max_age_ms: int = 0

    @property
    def enabled(self) -> bool:
        return self.max_entries > 0 or self.max_age_ms > 0


NO_HISTORY: Final = HistoryRetention()


@dataclass(frozen=True)
class StoreBatchResult:
    written: int
    # Partitions whose built offset in Redis was not the expected one, with the offset
    # Redis holds (None: none). Nothing of theirs was written.
    out_of_step: dict[int, int | None]
    # History entries added, and refused (replays, duplicates, older records of another
    # partition: see docs/history.md).
    history_appended: int = 0
    history_refused: int = 0

    @classmethod
    def from_reply(cls, reply: Sequence[object]) -> Self:
        written, flat, *history = reply
        pairs = list(flat) if isinstance(flat, list) else []
        appended, refused = (int(str(n)) for n in history) if history else (0, 0)
        return cls(
            written=int(str(written)),
            out_of_step={
                int(_text(pairs[i])): parse_built_offset(pairs[i + 1])
                for i in range(0, len(pairs), 2)
            },
            history_appended=appended,
            history_refused=refused,
        )


def store_call(reading: ReadingWrite) -> tuple[list[str], list[str | int]]:
    """KEYS and ARGV of STORE_IF_NEWER_LUA."""
    keys = [latest_reading_key(reading.machine_id), MACHINES_LAST_SEEN_KEY, MACHINE_IDS_KEY]
    return keys, reading.store_args()


def store_batch_call(
    built_key: str,
    steps: Sequence[PartitionStep],
    readings: Sequence[ReadingWrite],
    history: HistoryRetention = NO_HISTORY,
) -> tuple[list[str], list[str | int]]:
    """KEYS and ARGV of STORE_BATCH_LUA: the retention and the partitions' steps, then
    one group per reading: the entries of its `earlier` readings if history is kept and
    its own, then its JSON and receipt time for the latest hash."""
    keys = [built_key, MACHINES_LAST_SEEN_KEY, MACHINE_IDS_KEY]
    args: list[str | int] = [history.max_entries, history.max_age_ms, len(steps)]
    for step in steps:
        expected = "" if step.expected is None else str(step.expected)
        args += [built_offset_field(step.partition), expected, step.next_offset]
    for reading in readings:
        keys.append(latest_reading_key(reading.machine_id))
        earlier = reading.earlier
        if history.enabled:
            keys.append(history_key(reading.machine_id))
        elif earlier:
            # Only what could move the machine's last-seen time: a superseded reading of
            # a later time (a producer clock that went back).
            earlier = tuple(e for e in earlier if e.timestamp_ms > reading.timestamp_ms)
        if earlier:
            args.append(len(earlier) + 1)
            args += [e.entry() for e in earlier]
        else:
            args.append(1)
        args += [reading.entry(), reading_json(reading.columns), reading.received_at.isoformat()]
    return keys, args


def parse_built_offset(raw: object) -> int | None:
    """A built offset as Redis returns it (bytes, str, or nothing)."""
    text = _text(raw) if raw is not None else ""
    return int(text) if text else None


def built_offsets_from_hash(
    partitions: Sequence[int], values: Sequence[object]
) -> dict[int, int | None]:
    """The built offsets of `partitions` from an HMGET of their fields, in order."""
    return {p: parse_built_offset(v) for p, v in zip(partitions, values, strict=True)}


def _text(raw: object) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
