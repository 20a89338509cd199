"""Pure logic of one batch: decode records, set bad ones aside, drop stale duplicates,
compute offsets."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from telemetry_common.contract import decode_record
from telemetry_common.storage import StoredReading

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


@dataclass
class Batch:
    """Readings to store, records to dead-letter, and the offsets both move to."""

    readings: list[StoredReading] = field(default_factory=list)
    rejected: list[RejectedRecord] = field(default_factory=list)
    # (topic, partition) -> the next offset to read, i.e. last processed + 1.
    next_offsets: dict[tuple[str, int], int] = field(default_factory=dict)


def _as_bytes(data: bytes | str | None) -> bytes | None:
    return data.encode() if isinstance(data, str) else data


def to_stored_reading(record: KafkaRecord, partition: int, offset: int) -> StoredReading:
    """The write one record makes; raises if the record cannot make one."""
    decoded = decode_record(_as_bytes(record.key()), _as_bytes(record.value()))
    _, timestamp_ms = record.timestamp()
    if timestamp_ms <= 0:  # no broker or producer timestamp: fall back to receipt time
        timestamp_ms = int(decoded.received_at.timestamp() * 1000)
    return StoredReading(
        machine_id=decoded.machine_id,
        reading=decoded.reading,
        partition=partition,
        offset=offset,
        timestamp_ms=timestamp_ms,
        received_at=decoded.received_at,
    )


def build_batch(records: Sequence[KafkaRecord]) -> Batch:
    """Turn records into readings; a record that cannot become one is rejected.

    Any exception while turning one record into a write is that record's fault, not
    the worker's: whatever a producer put on the topic (not only what the contract
    names invalid) must not stop the records around it. Rejected records still move
    the offsets: they go to the dead-letter topic, not back to the start of the queue.
    """
    batch = Batch()
    for record in records:
        topic, partition, offset = record.topic() or "", record.partition(), record.offset()
        if partition is None or offset is None:
            continue
        position = (topic, partition)
        batch.next_offsets[position] = max(batch.next_offsets.get(position, 0), offset + 1)
        try:
            batch.readings.append(to_stored_reading(record, partition, offset))
        except Exception as exc:
            batch.rejected.append(RejectedRecord(record, exc))
            logger.warning(
                "rejecting record %s[%d]@%d: %s: %s",
                topic,
                partition,
                offset,
                type(exc).__name__,
                str(exc).splitlines()[0][:200] if str(exc) else "",
            )
    batch.readings = latest_per_machine(batch.readings)
    return batch


def latest_per_machine(readings: Iterable[StoredReading]) -> list[StoredReading]:
    """Keep, per machine and partition, only the reading with the highest offset.

    Older readings in the same batch would be overwritten at once, so they are not sent
    to Redis. Readings of one machine from different partitions are all kept: the
    store script orders them by timestamp.
    """
    newest: dict[tuple[str, int], StoredReading] = {}
    for reading in readings:
        slot = (reading.machine_id, reading.partition)
        kept = newest.get(slot)
        if kept is None or reading.offset > kept.offset:
            newest[slot] = reading
    return list(newest.values())
