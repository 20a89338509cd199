"""The contract between the producer API and the consumer worker.

Everything that crosses a process boundary is defined here, once:

* `MemoryReading`: one reading of Linux `free`, in KiB.
* The Kafka record: key = machine id (UTF-8), value = a versioned JSON envelope.
* The Redis layout: one hash per machine holding the latest reading and the Kafka
  position it came from, so that a replayed older record never overwrites it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Final, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

# A machine id becomes part of a Kafka key and a Redis key and travels in URLs, so it
# is kept to a short, unambiguous character set: no spaces, slashes or colons.
MACHINE_ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
MACHINE_ID_MAX_LENGTH: Final = 64
_MACHINE_ID_RE: Final = re.compile(MACHINE_ID_PATTERN)

# The largest value a signed 64-bit integer holds; far above any real memory size,
# and a bound every JSON and Redis consumer of the data can represent.
_MAX_KIB: Final = 2**63 - 1
KiB = Annotated[int, Field(ge=0, le=_MAX_KIB, description="Kibibytes (KiB), as `free` prints them")]

RECORD_SCHEMA_VERSION: Final = 1
RECORD_CONTENT_TYPE: Final = "application/json"

REDIS_KEY_NAMESPACE: Final = "memtel:v1"

# A real reading of a 16 GiB machine: the example of the API documentation.
EXAMPLE_READING: Final = {
    "total": 16_318_064,
    "used": 5_204_372,
    "free": 6_104_220,
    "shared": 412_908,
    "buff_cache": 5_009_472,
    "available": 10_352_120,
}

KafkaHeaders = list[tuple[str, str | bytes | None]]


class MemoryReading(BaseModel):
    """One memory reading: the columns of `free`, all in KiB.

    Strict: every field is required, must be a JSON integer (not a bool, a float or a
    numeric string) and nothing else may be sent.
    """

    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        frozen=True,
        # (A copy, so that the type checker sees a JSON object.)
        json_schema_extra={"examples": [{name: kib for name, kib in EXAMPLE_READING.items()}]},
    )

    total: KiB
    used: KiB
    free: KiB
    shared: KiB
    buff_cache: KiB
    available: KiB

    @model_validator(mode="after")
    def _parts_fit_in_total(self) -> Self:
        # Every other column is a part of the machine's memory; none can exceed it.
        for name in ("used", "free", "shared", "buff_cache", "available"):
            value = getattr(self, name)
            if value > self.total:
                raise ValueError(f"{name} ({value}) exceeds total ({self.total})")
        return self


def is_valid_machine_id(machine_id: str) -> bool:
    return _MACHINE_ID_RE.fullmatch(machine_id) is not None


class InvalidRecordError(ValueError):
    """A Kafka record that does not follow the contract (undecodable or invalid)."""


class ReadingRecord(BaseModel):
    """The value of a Kafka record: a reading with the context it was received in."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: int = RECORD_SCHEMA_VERSION
    machine_id: str
    received_at: datetime
    reading: MemoryReading


def encode_record(
    machine_id: str, reading: MemoryReading, received_at: datetime
) -> tuple[bytes, bytes]:
    """Return the (key, value) bytes of the Kafka record for one reading."""
    record = ReadingRecord(machine_id=machine_id, received_at=received_at, reading=reading)
    return machine_id.encode("utf-8"), record.model_dump_json().encode("utf-8")


def record_headers() -> KafkaHeaders:
    return [
        ("content-type", RECORD_CONTENT_TYPE.encode()),
        ("schema-version", str(RECORD_SCHEMA_VERSION).encode()),
    ]


def decode_record(key: bytes | None, value: bytes | None) -> ReadingRecord:
    """Decode and validate a Kafka record; raise InvalidRecordError if it breaks the contract."""
    if key is None or value is None:
        raise InvalidRecordError("record has no key or no value")
    try:
        machine_id = key.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRecordError(f"key is not UTF-8: {exc}") from exc
    if not is_valid_machine_id(machine_id):
        raise InvalidRecordError(f"key {machine_id!r} is not a valid machine id")
    try:
        record = ReadingRecord.model_validate_json(value)
    except ValidationError as exc:
        raise InvalidRecordError(f"value does not match the record schema: {exc}") from exc
    if record.schema_version != RECORD_SCHEMA_VERSION:
        raise InvalidRecordError(f"unsupported schema_version {record.schema_version}")
    if record.machine_id != machine_id:
        raise InvalidRecordError(
            f"key {machine_id!r} and value machine_id {record.machine_id!r} disagree"
        )
    return record


def utc_now() -> datetime:
    return datetime.now(UTC)


# --- Redis layout -------------------------------------------------------------------


def latest_reading_key(machine_id: str) -> str:
    """The Redis hash that holds a machine's latest reading and its Kafka position."""
    return f"{REDIS_KEY_NAMESPACE}:latest:{machine_id}"


class LatestField:
    """Field names of the latest-reading hash."""

    READING: Final = "reading"
    PARTITION: Final = "partition"
    OFFSET: Final = "offset"
    TIMESTAMP_MS: Final = "timestamp_ms"
    RECEIVED_AT: Final = "received_at"


# Writes a reading only if it is newer than the stored one. Within one partition Kafka
# offsets order a machine's records exactly; across partitions (the topic was
# repartitioned) the record timestamps decide. Running it as one script makes the
# compare and the write atomic. Returns 1 if written, 0 if the record was stale.
#   KEYS[1] latest-reading key
#   ARGV    partition, offset, timestamp_ms, reading JSON, received_at
STORE_IF_NEWER_LUA: Final = """
local current = redis.call('HMGET', KEYS[1], 'partition', 'offset', 'timestamp_ms')
if current[1] then
  local partition, offset = tonumber(ARGV[1]), tonumber(ARGV[2])
  if tonumber(current[1]) == partition then
    if offset <= tonumber(current[2]) then return 0 end
  elseif tonumber(ARGV[3]) < tonumber(current[3]) then
    return 0
  end
end
redis.call('HSET', KEYS[1],
  'partition', ARGV[1], 'offset', ARGV[2], 'timestamp_ms', ARGV[3],
  'reading', ARGV[4], 'received_at', ARGV[5])
return 1
"""


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
        return [
            self.partition,
            self.offset,
            self.timestamp_ms,
            self.reading.model_dump_json(),
            self.received_at.isoformat(),
        ]

    @classmethod
    def from_redis_hash(cls, machine_id: str, fields: dict[str, str]) -> Self:
        """Rebuild a stored reading from the hash; raise InvalidRecordError if it is damaged."""
        try:
            return cls(
                machine_id=machine_id,
                reading=MemoryReading.model_validate_json(fields[LatestField.READING]),
                partition=int(fields[LatestField.PARTITION]),
                offset=int(fields[LatestField.OFFSET]),
                timestamp_ms=int(fields[LatestField.TIMESTAMP_MS]),
                received_at=datetime.fromisoformat(fields[LatestField.RECEIVED_AT]),
            )
        except (KeyError, ValueError) as exc:
            raise InvalidRecordError(f"stored reading of {machine_id!r} is damaged: {exc}") from exc
