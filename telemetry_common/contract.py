"""The Kafka record: what the producer API writes to the topic and the worker reads.

* `MemoryReading`: one reading of Linux `free`, in KiB.
* `ReadingRecord`: the versioned JSON envelope that is the record's value.
* `KafkaRecord`: key (the machine id, UTF-8), value and headers, as one value that a
  publisher takes whole.

How the worker keeps readings in Redis is the other contract, in `storage`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
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

# Every record carries these: a reader can tell the encoding without decoding the value.
_RECORD_HEADERS: Final[KafkaHeaders] = [
    ("content-type", RECORD_CONTENT_TYPE.encode()),
    ("schema-version", str(RECORD_SCHEMA_VERSION).encode()),
]


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


@dataclass(frozen=True)
class KafkaRecord:
    """One record as it goes to the topic: what a publisher needs, in one value."""

    key: bytes
    value: bytes
    headers: KafkaHeaders


def encode_record(machine_id: str, reading: MemoryReading, received_at: datetime) -> KafkaRecord:
    """The Kafka record of one reading."""
    envelope = ReadingRecord(machine_id=machine_id, received_at=received_at, reading=reading)
    return KafkaRecord(
        key=machine_id.encode("utf-8"),
        value=envelope.model_dump_json().encode("utf-8"),
        headers=list(_RECORD_HEADERS),
    )


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
