"""The Kafka record: what the producer API writes to the topic and the worker reads.

* `MemoryReading`: one reading of Linux `free`, in KiB.
* `ReadingRecord`: the versioned JSON envelope that is the record's value.
* `KafkaRecord`: key (the machine id, UTF-8), value and headers, as one value that a
  publisher takes whole.
* `RetirementRecord`: the value of a retirement record (`encode_retirement`), which
  removes a machine from the view; its `record-type` header tells it from a reading.
* `decode_record` reads a record back into the models; `decode_reading` applies the
  same rules for the worker, without building the models for a record in the form
  `encode_record` writes.

How the worker keeps readings in Redis is the other contract, in `storage`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Final, NamedTuple, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

# A machine id becomes part of a Kafka key and a Redis key and travels in URLs, so it
# is kept to a short, unambiguous character set: no spaces, slashes or colons.
MACHINE_ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
MACHINE_ID_MAX_LENGTH: Final = 64
_MACHINE_ID_RE: Final = re.compile(MACHINE_ID_PATTERN)

# The largest value a signed 64-bit integer holds; far above any real memory size,
# and a bound every JSON and Redis consumer of the data can represent.
_MAX_KIB: Final = 2**63 - 1
# The same bound as "less than 2**63": the OpenAPI document holds bounds as floats
# (FastAPI's schema model), and 2**63 is one exactly, where 2**63 - 1 rounds up to it.
KIB_LIMIT: Final = _MAX_KIB + 1
KiB = Annotated[
    int, Field(ge=0, lt=KIB_LIMIT, description="Kibibytes (KiB), as `free` prints them")
]

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

SCHEMA_VERSION_HEADER: Final = "schema-version"
# Only on records that are no reading: what they are (`RETIREMENT_RECORD_TYPE`).
RECORD_TYPE_HEADER: Final = "record-type"
RETIREMENT_RECORD_TYPE: Final = "retirement"
# A KafkaRecord's partition when the producer's partitioner chooses it (librdkafka's
# RD_KAFKA_PARTITION_UA).
ANY_PARTITION: Final = -1
# Every record carries these: a reader can tell the encoding without decoding the value.
_RECORD_HEADERS: Final[KafkaHeaders] = [
    ("content-type", RECORD_CONTENT_TYPE.encode()),
    (SCHEMA_VERSION_HEADER, str(RECORD_SCHEMA_VERSION).encode()),
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
    # The partition to write to; ANY_PARTITION: the producer's partitioner chooses (by
    # the key, as for every reading).
    partition: int = ANY_PARTITION
    # The record's Kafka timestamp in ms since the epoch; 0: the producer's clock.
    timestamp_ms: int = 0


def encode_record(machine_id: str, reading: MemoryReading, received_at: datetime) -> KafkaRecord:
    """The Kafka record of one reading."""
    envelope = ReadingRecord(machine_id=machine_id, received_at=received_at, reading=reading)
    return KafkaRecord(
        key=machine_id.encode("utf-8"),
        value=envelope.model_dump_json().encode("utf-8"),
        headers=list(_RECORD_HEADERS),
    )


class RetirementRecord(BaseModel):
    """The value of a retirement record: the machine leaves the view of the partition
    the record is in (its latest reading, history and fleet entries). The worker applies
    it in offset order with the readings: a later reading brings the machine back."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: int = RECORD_SCHEMA_VERSION
    machine_id: str
    retired_at: datetime


def encode_retirement(
    machine_id: str, retired_at: datetime, partition: int = ANY_PARTITION
) -> KafkaRecord:
    """The retirement record of a machine, for `partition` (or where the partitioner
    sends the machine's readings). A record with a value, not a tombstone: a record
    without a value is a broken one (dead-lettered), so that no producer's slip can
    retire a machine, and the value keeps the contract's envelope (`schema_version`,
    `machine_id`) that every record carries."""
    envelope = RetirementRecord(machine_id=machine_id, retired_at=retired_at)
    return KafkaRecord(
        key=machine_id.encode("utf-8"),
        value=envelope.model_dump_json().encode("utf-8"),
        headers=[*_RECORD_HEADERS, (RECORD_TYPE_HEADER, RETIREMENT_RECORD_TYPE.encode())],
        partition=partition,
    )


def is_retirement(headers: Iterable[tuple[str, str | bytes | None]]) -> bool:
    """Whether a record's headers mark it a retirement record."""
    return any(
        name == RECORD_TYPE_HEADER and value in (b"retirement", "retirement")
        for name, value in headers
    )


def decode_retirement(key: bytes | None, value: bytes | None) -> str:
    """The machine a retirement record retires; raise InvalidRecordError if the record
    breaks the contract (as decode_record does for a reading)."""
    return _decode_envelope(RetirementRecord, "retirement record", key, value).machine_id


def decode_record(key: bytes | None, value: bytes | None) -> ReadingRecord:
    """Decode and validate a Kafka record; raise InvalidRecordError if it breaks the contract."""
    return _decode_envelope(ReadingRecord, "record", key, value)


_Envelope = TypeVar("_Envelope", ReadingRecord, RetirementRecord)


def _decode_envelope(
    model: type[_Envelope], kind: str, key: bytes | None, value: bytes | None
) -> _Envelope:
    """The record's value as `model`, checked against its key and this version: the rules
    every kind of record of the topic follows."""
    if key is None or value is None:
        raise InvalidRecordError(f"{kind} has no key or no value")
    machine_id = _machine_id_of(key)
    try:
        record = model.model_validate_json(value)
    except ValidationError as exc:
        schema = kind.removesuffix(" record") or kind
        raise InvalidRecordError(f"value does not match the {schema} schema: {exc}") from exc
    if record.schema_version != RECORD_SCHEMA_VERSION:
        raise InvalidRecordError(f"unsupported schema_version {record.schema_version}")
    if record.machine_id != machine_id:
        raise InvalidRecordError(
            f"key {machine_id!r} and value machine_id {record.machine_id!r} disagree"
        )
    return record


def _machine_id_of(key: bytes) -> str:
    """The machine id a record's key names; raise InvalidRecordError if it names none."""
    try:
        machine_id = key.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRecordError(f"key is not UTF-8: {exc}") from exc
    if not is_valid_machine_id(machine_id):
        raise InvalidRecordError(f"key {machine_id!r} is not a valid machine id")
    return machine_id


# The highest schema_version a record of a newer producer can name: a version is a
# small counter; anything beyond this is a broken record, not a newer one.
MAX_SCHEMA_VERSION: Final = 2**31 - 1


class _VersionOnly(BaseModel):
    """What every version of the record's value keeps: a JSON object with an integer
    `schema_version` (the rest is the version's own)."""

    model_config = ConfigDict(extra="ignore", strict=True)

    schema_version: int


def newer_schema_version(
    value: bytes | None, headers: Iterable[tuple[str, str | bytes | None]]
) -> int | None:
    """The schema_version of a record a newer producer of this contract wrote, if it is
    one: its `schema-version` header and its value's `schema_version` agree on a version
    above RECORD_SCHEMA_VERSION (up to MAX_SCHEMA_VERSION). None for anything else (a
    record of this version, an older, unknown or invalid one, or one whose header and
    value disagree, such as a hand-made record with no header): decode_record decides
    those.

    Every version of the contract keeps these two: a worker that meets a record of a
    version it does not know can tell "written by a newer producer" (wait for an
    upgraded worker) from "broken" (dead-letter) without reading the rest.
    """
    named = [v for k, v in headers if k == SCHEMA_VERSION_HEADER]
    if len(named) != 1 or value is None:
        return None
    raw = named[0]
    text = raw.decode("ascii", "replace") if isinstance(raw, bytes) else raw
    if text is None or not text.isascii() or not text.isdigit() or len(text) > 10:
        return None
    version = int(text)
    if not RECORD_SCHEMA_VERSION < version <= MAX_SCHEMA_VERSION:
        return None
    try:
        # pydantic's own JSON parser: bounded nesting, no RecursionError on hostile input.
        in_value = _VersionOnly.model_validate_json(value).schema_version
    except ValidationError:
        return None
    return version if in_value == version else None


_READING_FIELDS: Final = tuple(MemoryReading.model_fields)
_READING_JSON: Final = "{" + ",".join(f'"{name}":%d' for name in _READING_FIELDS) + "}"


def reading_json(columns: tuple[int, ...]) -> str:
    """A reading's columns (in MemoryReading's field order) as JSON, exactly as
    `MemoryReading.model_dump_json()` writes the reading."""
    return _READING_JSON % columns


def reading_columns(reading: MemoryReading) -> tuple[int, ...]:
    """A reading's values in the order of its fields."""
    return tuple([getattr(reading, name) for name in _READING_FIELDS])


def _canonical_value_pattern() -> re.Pattern[bytes]:
    """The value of a record exactly as encode_record writes it, and nothing else.

    The envelope's fields in their order, no whitespace, the machine id's characters
    (no escapes), received_at as pydantic writes a datetime with an offset, each column
    a JSON integer without sign, fraction or exponent. Whatever matches is well-formed
    JSON with exactly the fields the models ask for; the ranges are checked after.
    """
    if tuple(ReadingRecord.model_fields) != (
        "schema_version",
        "machine_id",
        "received_at",
        "reading",
    ):
        raise RuntimeError("the canonical record pattern no longer follows ReadingRecord")
    machine_id = MACHINE_ID_PATTERN.removeprefix("^").removesuffix("$")
    received_at = (
        r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?"
        r"(?:Z|[+-][0-9]{2}:[0-5][0-9])"
    )
    columns = ",".join(f'"{name}":(0|[1-9][0-9]{{0,18}})' for name in _READING_FIELDS)
    return re.compile(
        (
            f'\\{{"schema_version":{RECORD_SCHEMA_VERSION},"machine_id":"({machine_id})",'
            f'"received_at":"({received_at})","reading":\\{{{columns}\\}}\\}}'
        ).encode("ascii")
    )


_CANONICAL_VALUE: Final = _canonical_value_pattern()


class DecodedReading(NamedTuple):
    """What a valid record holds for the store: decode_reading's answer.

    A named tuple: the worker makes one per record, and a tuple is the cheapest to make.
    """

    machine_id: str
    # The reading's values in the order of MemoryReading's fields (`reading_json`).
    columns: tuple[int, ...]
    received_at: datetime


def decode_reading(key: bytes | None, value: bytes | None) -> DecodedReading:
    """decode_record's verdict on a record, and what it holds for the store.

    The worker decodes every record, and building the models is most of its work on
    one. A record exactly as encode_record writes it is checked without them
    (`decode_canonical_reading`); any other is decided by decode_record, which either
    accepts it (valid in another form, e.g. with spaces) or refuses it and says why.
    """
    decoded = decode_canonical_reading(key, value)
    if decoded is not None:
        return decoded
    record = decode_record(key, value)
    return DecodedReading(record.machine_id, reading_columns(record.reading), record.received_at)


def decode_canonical_reading(key: bytes | None, value: bytes | None) -> DecodedReading | None:
    """A record in exactly encode_record's form that follows every rule of the models,
    decoded; None for anything else (which decode_record has to decide)."""
    if key is None or value is None:
        return None
    match = _CANONICAL_VALUE.fullmatch(value)
    # The key must be the machine id, which the pattern has checked already.
    if match is None or match[1] != key:
        return None
    columns = tuple(map(int, match.groups()[2:]))
    total = columns[0]
    # The model's bounds: each column at most total, total at most the 64-bit limit.
    if max(columns) != total or total > _MAX_KIB:
        return None
    try:
        received_at = datetime.fromisoformat(match[2].decode("ascii"))
    except ValueError:  # the pattern is loose about ranges (month 13, February 30th...)
        return None
    return DecodedReading(key.decode("ascii"), columns, received_at)


def utc_now() -> datetime:
    return datetime.now(UTC)


# The reading's columns in the order `reading_json` writes them and `reading_columns`
# returns them: the store scripts read a reading's JSON back into its columns by it.
READING_FIELDS: Final = _READING_FIELDS
