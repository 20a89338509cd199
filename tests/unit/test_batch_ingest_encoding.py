"""The records of a batch are byte for byte what `encode_record` writes for each reading."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from producer_api.record_batch import encode_batch
from telemetry_common.contract import MemoryReading, decode_record, encode_record
from tests.helpers import READING, reading

MAX_KIB = 2**63 - 1


@pytest.mark.parametrize(
    "received_at",
    [
        datetime(2026, 11, 25, 12, 0, tzinfo=UTC),
        datetime(2026, 11, 25, 12, 0, 0, 1, tzinfo=UTC),
        datetime(2026, 11, 25, 12, 0, 0, 999_999, tzinfo=timezone(timedelta(hours=-5))),
    ],
)
def test_each_record_is_what_encode_record_writes(received_at: datetime) -> None:
    readings = [
        ("web-01", MemoryReading(**READING)),
        ("a", MemoryReading(**dict.fromkeys(READING, 0))),
        ("Z" * 64, MemoryReading(**dict.fromkeys(READING, MAX_KIB))),
        ("db_1.eu-west", MemoryReading(**reading(used=1))),
        ("web-01", MemoryReading(**reading(used=2))),
        # The stand-in's own id and values are a machine's like any other.
        ("x" * 64, MemoryReading(**READING)),
    ]
    batch = encode_batch(readings, received_at)
    assert batch == [encode_record(*item, received_at) for item in readings]
    for record in batch:
        decoded = decode_record(record.key, record.value)
        assert decoded.received_at == received_at


def test_an_empty_batch_has_no_records() -> None:
    assert encode_batch([], datetime.now(UTC)) == []
