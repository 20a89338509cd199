from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from consumer_worker.batch import build_batch
from telemetry_common.contract import MemoryReading, encode_record
from tests.helpers import READING, reading

RECEIVED_AT = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


@dataclass
class FakeRecord:
    """Stands in for confluent_kafka.Message in tests of pure batch logic."""

    _key: bytes | None
    _value: bytes | None
    _partition: int
    _offset: int
    _timestamp_ms: int = 1_700_000_000_000
    _topic: str = "readings"

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def timestamp(self) -> tuple[int, int]:
        return (1, self._timestamp_ms)


def record(machine_id: str, partition: int, offset: int, **changes: int) -> FakeRecord:
    encoded = encode_record(
        machine_id, MemoryReading.model_validate(reading(**changes)), RECEIVED_AT
    )
    return FakeRecord(encoded.key, encoded.value, partition, offset)


def test_only_the_newest_reading_per_machine_and_partition_is_kept() -> None:
    batch = build_batch(
        [
            record("m1", 0, 10, used=1),
            record("m2", 1, 4, used=2),
            record("m1", 0, 11, used=3),
            record("m2", 1, 5, used=4),
        ]
    )
    latest = {r.machine_id: (r.offset, r.reading.used) for r in batch.readings}
    assert latest == {"m1": (11, 3), "m2": (5, 4)}


def test_readings_of_one_machine_from_two_partitions_are_both_kept() -> None:
    batch = build_batch([record("m1", 0, 10), record("m1", 2, 3)])
    assert sorted((r.partition, r.offset) for r in batch.readings) == [(0, 10), (2, 3)]


def test_next_offsets_cover_every_record_including_skipped_ones() -> None:
    batch = build_batch(
        [
            record("m1", 0, 10),
            FakeRecord(b"m1", b"garbage", 0, 11),
            record("m2", 1, 7),
            FakeRecord(None, None, 2, 99),
        ]
    )
    assert batch.next_offsets == {("readings", 0): 12, ("readings", 1): 8, ("readings", 2): 100}
    assert batch.skipped == 2
    assert {r.machine_id for r in batch.readings} == {"m1", "m2"}


def test_a_record_without_timestamp_falls_back_to_its_receipt_time() -> None:
    item = record("m1", 0, 1)
    item._timestamp_ms = -1
    (stored,) = build_batch([item]).readings
    assert stored.timestamp_ms == int(RECEIVED_AT.timestamp() * 1000)


def test_the_stored_reading_carries_its_kafka_position() -> None:
    (stored,) = build_batch([record("m1", 2, 41)]).readings
    assert (stored.partition, stored.offset, stored.timestamp_ms) == (2, 41, 1_700_000_000_000)
    assert stored.reading.model_dump() == READING
