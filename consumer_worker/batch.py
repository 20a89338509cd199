"""Pure logic of one batch: decode records, drop stale duplicates, compute offsets."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from telemetry_common.contract import InvalidRecordError, decode_record
from telemetry_common.storage import StoredReading

logger = logging.getLogger(__name__)


class KafkaRecord(Protocol):
    """The part of confluent_kafka.Message a batch needs."""

    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def key(self) -> bytes | str | None: ...
    def value(self) -> bytes | str | None: ...
    def timestamp(self) -> tuple[int, int]: ...


@dataclass
class Batch:
    """Readings to store and the offsets to commit once they are stored."""

    readings: list[StoredReading] = field(default_factory=list)
    # (topic, partition) -> the next offset to read, i.e. last processed + 1.
    next_offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    skipped: int = 0


def _as_bytes(data: bytes | str | None) -> bytes | None:
    return data.encode() if isinstance(data, str) else data


def build_batch(records: Sequence[KafkaRecord]) -> Batch:
    """Decode records into readings; invalid ones are logged, skipped and still committed."""
    batch = Batch()
    for record in records:
        topic, partition, offset = record.topic() or "", record.partition(), record.offset()
        if partition is None or offset is None:
            continue
        position = (topic, partition)
        batch.next_offsets[position] = max(batch.next_offsets.get(position, 0), offset + 1)
        try:
            decoded = decode_record(_as_bytes(record.key()), _as_bytes(record.value()))
        except InvalidRecordError as exc:
            batch.skipped += 1
            logger.warning("skipping record %s[%d]@%d: %s", topic, partition, offset, exc)
            continue
        _, timestamp_ms = record.timestamp()
        if timestamp_ms <= 0:  # no broker or producer timestamp: fall back to receipt time
            timestamp_ms = int(decoded.received_at.timestamp() * 1000)
        batch.readings.append(
            StoredReading(
                machine_id=decoded.machine_id,
                reading=decoded.reading,
                partition=partition,
                offset=offset,
                timestamp_ms=timestamp_ms,
                received_at=decoded.received_at,
            )
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
