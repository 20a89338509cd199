"""How the worker keeps readings in Redis and the API reads them back.

One hash per machine holds its latest reading and the Kafka position the reading came
from, so that a replayed, older record never overwrites it. The hash's field names are
written once, in `LatestField`; the store scripts and their arguments are built from them.

Redis is a view of the Kafka topic: one more hash per consumer group and topic records,
per partition, the offset up to which the view is built. The batch script writes it in
the same atomic step as the readings, so the two can never disagree, and a worker that
finds it behind (or missing) rebuilds the view by replaying the topic from there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final, NamedTuple, Self, TypeVar

from pydantic import BaseModel, ConfigDict

from telemetry_common.contract import MemoryReading, reading_columns, reading_json

REDIS_KEY_NAMESPACE: Final = "memtel:v1"

T = TypeVar("T")


def latest_reading_key(machine_id: str) -> str:
    """The Redis hash that holds a machine's latest reading and its Kafka position."""
    return f"{REDIS_KEY_NAMESPACE}:latest:{machine_id}"


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


def _store_if_newer_body(key: str, arg: Callable[[LatestField], str]) -> str:
    """Lua statements that store one reading unless a newer one is there.

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
local current = redis.call('HMGET', {key}, '{partition}', '{offset}', '{timestamp}')
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


# KEYS[1]: the latest-reading key; ARGV: `StoredReading.store_args()`. Running it as
# one script makes the compare and the write atomic.
STORE_IF_NEWER_LUA: Final = _store_if_newer_body(
    "KEYS[1]", lambda field: f"ARGV[{_position(field) + 1}]"
)


def _store_batch_lua() -> str:
    # Three passes, all in one script (so atomic): check every partition's built offset
    # against what the worker expects; store the readings of the partitions in step;
    # only then move their built offsets, so that a script cut short by an error leaves
    # the offsets behind the readings (a harmless replay), never ahead of them.
    store_if_newer = _store_if_newer_body("key", lambda field: f"ARGV[base + {_position(field)}]")
    return f"""
local function store_if_newer(key, base)
{store_if_newer}
end
local partitions = tonumber(ARGV[1])
local in_step = {{}}
local out_of_step = {{}}
for i = 0, partitions - 1 do
  local base = 2 + i * 3
  local current = redis.call('HGET', KEYS[1], ARGV[base]) or ''
  if current == ARGV[base + 1] then
    in_step[ARGV[base]] = true
  else
    table.insert(out_of_step, ARGV[base])
    table.insert(out_of_step, current)
  end
end
local written = 0
local first = 2 + partitions * 3
for k = 2, #KEYS do
  local base = first + (k - 2) * {len(STORE_ARGV_ORDER)}
  if in_step[ARGV[base + {_position(LatestField.PARTITION)}]] then
    written = written + store_if_newer(KEYS[k], base)
  end
end
for i = 0, partitions - 1 do
  local base = 2 + i * 3
  if in_step[ARGV[base]] then
    redis.call('HSET', KEYS[1], ARGV[base], ARGV[base + 2])
  end
end
return {{written, out_of_step}}
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


@dataclass(frozen=True)
class PartitionStep:
    """One partition's move in a batch: from the built offset the worker expects Redis
    to hold (None: none yet) to the next offset to read after this batch."""

    partition: int
    expected: int | None
    next_offset: int


@dataclass(frozen=True)
class StoreBatchResult:
    written: int
    # Partitions whose built offset in Redis was not the expected one, with the offset
    # Redis holds (None: none). Nothing of theirs was written.
    out_of_step: dict[int, int | None]

    @classmethod
    def from_reply(cls, reply: Sequence[object]) -> Self:
        written, flat = reply
        pairs = list(flat) if isinstance(flat, list) else []
        return cls(
            written=int(str(written)),
            out_of_step={
                int(_text(pairs[i])): parse_built_offset(pairs[i + 1])
                for i in range(0, len(pairs), 2)
            },
        )


def store_batch_call(
    built_key: str, steps: Sequence[PartitionStep], readings: Sequence[ReadingWrite]
) -> tuple[list[str], list[str | int]]:
    """KEYS and ARGV of STORE_BATCH_LUA: the partitions' steps, then every reading."""
    keys = [built_key, *(latest_reading_key(r.machine_id) for r in readings)]
    args: list[str | int] = [len(steps)]
    for step in steps:
        expected = "" if step.expected is None else str(step.expected)
        args += [built_offset_field(step.partition), expected, step.next_offset]
    for reading in readings:
        args += reading.store_args()
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
