"""Pure logic of one batch: decode records, set bad ones aside, keep each machine's
newest reading (with the ones it supersedes, for the history), apply retirements to
them in offset order, compute offsets, and find where a partition must wait for an
upgraded worker (a record of a newer schema_version than this worker reads)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from telemetry_common.contract import (
    RECORD_SCHEMA_VERSION,
    DecodedReading,
    decode_reading,
    decode_retirement,
    is_retirement,
    is_valid_machine_id,
    newer_schema_version,
)
from telemetry_common.storage import ReadingWrite

logger = logging.getLogger(__name__)


HeaderValue = str | bytes | None
# As confluent_kafka hands headers over: a list of pairs (or, in theory, a dict).
RecordHeaders = list[tuple[str, HeaderValue]] | dict[str, HeaderValue]


class KafkaRecord(Protocol):
    """The part of confluent_kafka.Message a batch needs."""

    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def key(self) -> bytes | str | None: ...
    def value(self) -> bytes | str | None: ...
    def timestamp(self) -> tuple[int, int]: ...
    def headers(self) -> RecordHeaders | None: ...


@dataclass(frozen=True)
class RejectedRecord:
    """A record the worker cannot turn into a write, and why: for the dead-letter topic."""

    record: KafkaRecord
    error: Exception


# Decodes a record's key and value into a reading, or raises (decode_reading's shape).
RecordDecoder = Callable[[bytes | None, bytes | None], DecodedReading]


@dataclass(frozen=True)
class HeldRecord:
    """The first record of a partition that a newer producer wrote, of a schema_version
    this worker cannot read: the partition waits at it for an upgraded worker."""

    offset: int
    schema_version: int


class Retirement(NamedTuple):
    """A retirement record: the machine leaves the partition's view at this offset."""

    machine_id: str
    partition: int
    offset: int


@dataclass
class Batch:
    """Readings to store, records to dead-letter, and the offsets both move to."""

    readings: list[ReadingWrite] = field(default_factory=list)
    rejected: list[RejectedRecord] = field(default_factory=list)
    # The last retirement of each machine and partition; `readings` holds only what
    # came after it (see `apply_retirements`).
    retirements: list[Retirement] = field(default_factory=list)
    # (topic, partition) -> the next offset to read, i.e. last processed + 1; for a
    # partition in `held`, the held record's offset (nothing from it on is handled).
    next_offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    # (topic, partition) -> how many of the batch's records came from it.
    record_counts: dict[tuple[str, int], int] = field(default_factory=dict)
    # (topic, partition) -> where it waits for an upgraded worker (see HeldRecord).
    held: dict[tuple[str, int], HeldRecord] = field(default_factory=dict)
    # (topic, partition) -> records left for a later reader: the held record and every
    # one after it.
    held_back: dict[tuple[str, int], int] = field(default_factory=dict)


def to_reading_write(
    record: KafkaRecord, partition: int, offset: int, decode: RecordDecoder = decode_reading
) -> ReadingWrite:
    """The write one record makes; raises if the record cannot make one."""
    key, value = record.key(), record.value()
    decoded = decode(
        key.encode() if isinstance(key, str) else key,
        value.encode() if isinstance(value, str) else value,
    )
    _, timestamp_ms = record.timestamp()
    if timestamp_ms <= 0:  # no broker or producer timestamp: fall back to receipt time
        timestamp_ms = int(decoded.received_at.timestamp() * 1000)
    return ReadingWrite(
        decoded.machine_id,
        decoded.columns,
        partition,
        offset,
        timestamp_ms,
        decoded.received_at,
    )


def build_batch(
    records: Sequence[KafkaRecord], decoders: Mapping[int, RecordDecoder] | None = None
) -> Batch:
    """Turn records into readings; a record that cannot become one is rejected.

    Any exception while turning one record into a write is that record's fault, not
    the worker's: whatever a producer put on the topic (not only what the contract
    names invalid) must not stop the records around it. Rejected records still move
    the offsets: they go to the dead-letter topic, not back to the start of the queue.
    Of a machine's readings only the newest is kept, carrying the others for the
    history (see `latest_per_machine`); the offsets still cover every record.

    A retirement record (its `record-type` header) is no reading and no reject: the
    machine leaves the partition's view at its offset, and only the machine's readings
    after it are kept (see `apply_retirements`). A record marked a retirement that
    breaks the contract is rejected like a broken reading.

    A record that a newer producer wrote, of a schema_version above every version this
    worker reads (`newer_schema_version`), is no fault of the record: its partition is
    held there (`Batch.held`), and neither it nor anything after it in its partition is
    handled or covered by the offsets, for a worker that reads the version to take.
    `decoders`: the versions above RECORD_SCHEMA_VERSION this worker reads, and how
    (a newer release adds its version here; none today).
    """
    newer = dict(decoders or {})
    known = max((RECORD_SCHEMA_VERSION, *newer))
    batch = Batch()
    next_offsets, record_counts, held = batch.next_offsets, batch.record_counts, batch.held
    readings = []
    retirements: list[Retirement] = []
    for record in records:
        topic, partition, offset = record.topic() or "", record.partition(), record.offset()
        if partition is None or offset is None:
            continue
        position = (topic, partition)
        record_counts[position] = record_counts.get(position, 0) + 1
        hold = held.get(position)
        if hold is not None and offset >= hold.offset:
            batch.held_back[position] += 1
            continue
        if offset >= next_offsets.get(position, 0):
            next_offsets[position] = offset + 1
        try:
            readings.append(to_reading_write(record, partition, offset))
        except Exception as exc:
            error: Exception = exc
            try:
                retired = _retirement_of(record)
            except Exception as retirement_exc:
                retired, error = None, retirement_exc
            if retired is not None:
                retirements.append(Retirement(retired, partition, offset))
                continue
            version = _newer_version_of(record)
            if version is not None and version > known:
                held[position] = HeldRecord(offset, version)
                next_offsets[position] = offset
                batch.held_back[position] = 1
                continue
            if version is not None and version in newer:
                try:
                    readings.append(to_reading_write(record, partition, offset, newer[version]))
                    continue
                except Exception as newer_exc:
                    error = newer_exc
            batch.rejected.append(RejectedRecord(record, error))
            _log_rejection(record, topic, partition, offset, error)
    if held:
        readings, retirements = _before_holds(batch, readings, retirements)
    if retirements:
        readings, batch.retirements = apply_retirements(readings, retirements)
    batch.readings = latest_per_machine(readings)
    return batch


def _retirement_of(record: KafkaRecord) -> str | None:
    """The machine a retirement record retires; None if the record is no retirement.
    Raises (InvalidRecordError) if it is one that breaks the contract."""
    try:
        raw = record.headers() or []
        headers = list(raw.items()) if isinstance(raw, dict) else list(raw)
    except Exception:  # a header name that is not UTF-8: no retirement record of ours
        return None
    if not is_retirement(headers):
        return None
    key, value = record.key(), record.value()
    return decode_retirement(
        key.encode() if isinstance(key, str) else key,
        value.encode() if isinstance(value, str) else value,
    )


def apply_retirements(
    readings: Sequence[ReadingWrite], retirements: Sequence[Retirement]
) -> tuple[list[ReadingWrite], list[Retirement]]:
    """The readings that outlive the batch's retirements, and the retirements to apply.

    A retirement removes what the view holds of the machine in its partition; a reading
    of the machine before it in the same batch would be removed with it (so it is left
    out), a reading after it brings the machine back (so it is kept, and written after
    the removal: telemetry_common/lua/store_batch.lua removes first). Of a machine's
    retirements in one partition only the last counts.
    """
    last: dict[tuple[str, int], Retirement] = {}
    for retirement in retirements:
        slot = (retirement.machine_id, retirement.partition)
        kept = last.get(slot)
        if kept is None or retirement.offset > kept.offset:
            last[slot] = retirement
    after = [
        r
        for r in readings
        if (found := last.get((r.machine_id, r.partition))) is None or r.offset > found.offset
    ]
    return after, sorted(last.values(), key=lambda r: (r.partition, r.offset))


def _newer_version_of(record: KafkaRecord) -> int | None:
    """The record's schema_version if a newer producer wrote it (see
    `newer_schema_version`); None if not, or if its headers cannot be read."""
    try:
        raw = record.headers() or []
        headers = list(raw.items()) if isinstance(raw, dict) else list(raw)
        value = record.value()
        return newer_schema_version(value.encode() if isinstance(value, str) else value, headers)
    except Exception:  # a header name that is not UTF-8: no newer producer wrote that
        return None


def _before_holds(
    batch: Batch, readings: list[ReadingWrite], retirements: list[Retirement]
) -> tuple[list[ReadingWrite], list[Retirement]]:
    """Leave out what lies at or past a held record of its partition. Records come in
    offset order within a partition, so this finds nothing more; it keeps the rule
    whatever the order."""
    held = {position[1]: (position, hold.offset) for position, hold in batch.held.items()}

    def before(partition: int | None, offset: int | None) -> bool:
        if partition not in held or offset is None:
            return True
        position, limit = held[partition]
        if offset < limit:
            return True
        batch.held_back[position] += 1
        return False

    kept = [r for r in readings if before(r.partition, r.offset)]
    retirements = [r for r in retirements if before(r.partition, r.offset)]
    batch.rejected = [r for r in batch.rejected if before(r.record.partition(), r.record.offset())]
    for position, hold in batch.held.items():
        batch.next_offsets[position] = hold.offset
    return kept, retirements


def _log_rejection(
    record: KafkaRecord, topic: str, partition: int, offset: int, error: Exception
) -> None:
    fields: dict[str, object] = {"topic": topic, "partition": partition, "offset": offset}
    # The key names the machine only if it is a machine id: anything else a producer put
    # there (any bytes, any length) stays out of the log.
    key = record.key()
    machine_id = key.decode("utf-8", "replace") if isinstance(key, bytes) else key
    if machine_id is not None and is_valid_machine_id(machine_id):
        fields["machine_id"] = machine_id
    logger.warning(
        "rejecting record %s[%d]@%d%s: %s: %s",
        topic,
        partition,
        offset,
        f" of {machine_id}" if "machine_id" in fields else "",
        type(error).__name__,
        str(error).splitlines()[0][:200] if str(error) else "",
        extra=fields,
    )


def latest_per_machine(readings: Iterable[ReadingWrite]) -> list[ReadingWrite]:
    """Keep, per machine and partition, only the reading with the highest offset, which
    carries the others in its `earlier` (oldest first) for the history.

    The store script would overwrite the older readings in the same batch at once, so
    they are not sent to the latest hash; the history takes every one of them. A
    machine's records share a partition (the machine id is the record key), so this is
    one reading per machine. Only after the topic was repartitioned can a batch hold a
    machine's readings from two partitions: all are kept, because the script orders
    those by timestamp against what Redis holds, and writes a partition's readings only
    while that partition's view is in step; picking one of them here could drop the one
    that Redis would have taken.
    """
    newest: dict[tuple[str, int], ReadingWrite] = {}
    # Only for the slots with more than one reading: most hold one.
    chains: dict[tuple[str, int], list[ReadingWrite]] = {}
    for reading in readings:
        slot = (reading.machine_id, reading.partition)
        kept = newest.get(slot)
        if kept is not None:
            chain = chains.get(slot)
            if chain is None:
                chains[slot] = [kept, reading]
            else:
                chain.append(reading)
        newest[slot] = reading
    for slot, chain in chains.items():
        # A partition's records come in offset order; sorting (linear on sorted input)
        # keeps the newest and the history's order right whatever happens.
        chain.sort(key=_offset)
        newest[slot] = chain[-1]._replace(earlier=tuple(chain[:-1]))
    return list(newest.values())


def _offset(reading: ReadingWrite) -> int:
    return reading.offset
