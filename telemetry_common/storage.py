"""How the worker keeps readings in Redis and the API reads them back.

One hash per machine holds its latest reading and the Kafka position the reading came
from, so that a replayed, older record never overwrites it. The hash's field names are
written once, in `LatestField`; the store script and its arguments are built from them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from typing import Final, Self, TypeVar

from pydantic import BaseModel, ConfigDict

from telemetry_common.contract import MemoryReading

REDIS_KEY_NAMESPACE: Final = "memtel:v1"

T = TypeVar("T")


def latest_reading_key(machine_id: str) -> str:
    """The Redis hash that holds a machine's latest reading and its Kafka position."""
    return f"{REDIS_KEY_NAMESPACE}:latest:{machine_id}"


class LatestField(StrEnum):
    """Field names of the latest-reading hash."""

    READING = "reading"
    PARTITION = "partition"
    OFFSET = "offset"
    TIMESTAMP_MS = "timestamp_ms"
    RECEIVED_AT = "received_at"


# The order of the store script's ARGV. The script and `StoredReading.store_args` are
# both built from it, so the two cannot disagree about positions.
STORE_ARGV_ORDER: Final = tuple(LatestField)


def _argv(field: LatestField) -> str:
    return f"ARGV[{STORE_ARGV_ORDER.index(field) + 1}]"


def _store_if_newer_lua() -> str:
    # Within one partition Kafka offsets order a machine's records exactly; across
    # partitions (the topic was repartitioned) the record timestamps decide. Running it
    # as one script makes the compare and the write atomic. Returns 1 if written, 0 if
    # the record was stale.
    hset_pairs = ", ".join(f"'{field}', {_argv(field)}" for field in STORE_ARGV_ORDER)
    partition, offset, timestamp = (
        LatestField.PARTITION,
        LatestField.OFFSET,
        LatestField.TIMESTAMP_MS,
    )
    return f"""
local current = redis.call('HMGET', KEYS[1], '{partition}', '{offset}', '{timestamp}')
if current[1] then
  if tonumber(current[1]) == tonumber({_argv(partition)}) then
    if tonumber({_argv(offset)}) <= tonumber(current[2]) then return 0 end
  elseif tonumber({_argv(timestamp)}) < tonumber(current[3]) then
    return 0
  end
end
redis.call('HSET', KEYS[1], {hset_pairs})
return 1
"""


# KEYS[1]: the latest-reading key; ARGV: `StoredReading.store_args()`.
STORE_IF_NEWER_LUA: Final = _store_if_newer_lua()


class DamagedStoredReadingError(Exception):
    """A latest-reading hash in Redis that cannot be read back (edited or corrupted)."""

    def __init__(self, machine_id: str, problem: str) -> None:
        super().__init__(f"the stored reading of {machine_id!r} is damaged: {problem}")
        self.machine_id = machine_id
        self.problem = problem


class StoredReading(BaseModel):
    """A reading as kept in Redis, with the Kafka position it was read from."""

    model_config = ConfigDict(frozen=True)

    machine_id: str
    reading: MemoryReading
    partition: int
    offset: int
    timestamp_ms: int
    received_at: datetime

    def store_args(self) -> list[str | int]:
        """The ARGV of STORE_IF_NEWER_LUA for this reading."""
        values: dict[LatestField, str | int] = {
            LatestField.READING: self.reading.model_dump_json(),
            LatestField.PARTITION: self.partition,
            LatestField.OFFSET: self.offset,
            LatestField.TIMESTAMP_MS: self.timestamp_ms,
            LatestField.RECEIVED_AT: self.received_at.isoformat(),
        }
        return [values[field] for field in STORE_ARGV_ORDER]

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


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
