from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from consumer_worker.batch import build_batch
from telemetry_common.contract import InvalidRecordError, MemoryReading, encode_record
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
    _headers: list[tuple[str, str | bytes | None]] | None = None

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

    def headers(self) -> list[tuple[str, str | bytes | None]] | None:
        return self._headers


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


def test_a_machines_many_readings_make_one_write_and_the_offsets_cover_them_all() -> None:
    records = [record("m1", 0, offset, used=offset) for offset in range(20, 30)]
    records += [record("m2", 0, 30, used=1), FakeRecord(b"m1", b"garbage", 0, 31)]
    batch = build_batch(records)
    assert sorted((r.machine_id, r.offset, r.reading.used) for r in batch.readings) == [
        ("m1", 29, 29),
        ("m2", 30, 1),
    ]
    assert batch.next_offsets == {("readings", 0): 32}


def test_readings_of_one_machine_from_two_partitions_are_both_kept() -> None:
    batch = build_batch([record("m1", 0, 10), record("m1", 2, 3)])
    assert sorted((r.partition, r.offset) for r in batch.readings) == [(0, 10), (2, 3)]


def test_next_offsets_cover_every_record_including_rejected_ones() -> None:
    batch = build_batch(
        [
            record("m1", 0, 10),
            FakeRecord(b"m1", b"garbage", 0, 11),
            record("m2", 1, 7),
            FakeRecord(None, None, 2, 99),
        ]
    )
    assert batch.next_offsets == {("readings", 0): 12, ("readings", 1): 8, ("readings", 2): 100}
    assert [(r.record.partition(), r.record.offset()) for r in batch.rejected] == [(0, 11), (2, 99)]
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


class ExplodingRecord(FakeRecord):
    """A record whose timestamp cannot even be read: an error nobody foresaw."""

    def timestamp(self) -> tuple[int, int]:
        raise RuntimeError("boom")


def test_any_error_while_turning_a_record_into_a_write_rejects_only_that_record() -> None:
    good = record("m1", 0, 1)
    exploding = ExplodingRecord(good._key, good._value, 0, 2)
    batch = build_batch([good, exploding, record("m2", 0, 3)])
    assert {r.machine_id for r in batch.readings} == {"m1", "m2"}
    ((rejected_record, error),) = [(r.record, r.error) for r in batch.rejected]
    assert rejected_record is exploding
    assert isinstance(error, RuntimeError)
    assert batch.next_offsets == {("readings", 0): 4}


@pytest.mark.parametrize(
    ("key", "value"),
    [
        (None, None),
        (b"\xff\xfe", b"{}"),
        (b"m1", b"not json"),
        (b"m1", b"[]"),
        (b"m1", b'{"schema_version": 1}'),
        (b"bad id!", b"{}"),
    ],
)
def test_contract_breaking_records_are_rejected_with_their_reason(
    key: bytes | None, value: bytes | None
) -> None:
    batch = build_batch([FakeRecord(key, value, 0, 5)])
    assert batch.readings == []
    (rejected,) = batch.rejected
    assert isinstance(rejected.error, InvalidRecordError)
