"""The Redis layout: keys, hash fields and the arguments of the store script."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from telemetry_common.contract import MemoryReading
from telemetry_common.storage import (
    STORE_ARGV_ORDER,
    DamagedStoredReadingError,
    PartitionStep,
    StoreBatchResult,
    StoredReading,
    built_offset_field,
    built_offsets_key,
    latest_reading_key,
    store_batch_call,
)
from tests.helpers import READING

RECEIVED_AT = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def test_the_redis_key_is_namespaced_per_machine() -> None:
    assert latest_reading_key("web-01") == "memtel:v1:latest:web-01"


def test_a_stored_reading_round_trips_through_its_hash_fields() -> None:
    stored = StoredReading(
        machine_id="m1",
        reading=MemoryReading.model_validate(READING),
        partition=2,
        offset=41,
        timestamp_ms=1_700_000_000_000,
        received_at=RECEIVED_AT,
    )
    # What the store script writes: each field from its argument position.
    fields = {
        str(f): str(arg) for f, arg in zip(STORE_ARGV_ORDER, stored.store_args(), strict=True)
    }
    assert StoredReading.from_redis_hash("m1", fields) == stored


def test_a_damaged_hash_is_reported() -> None:
    with pytest.raises(DamagedStoredReadingError, match="damaged"):
        StoredReading.from_redis_hash("m1", {"reading": "{}"})


def test_the_built_offsets_hash_is_namespaced_per_group_and_topic() -> None:
    assert built_offsets_key("writers", "readings") == "memtel:v1:built:writers:readings"
    assert built_offset_field(3) == "3"


def test_the_batch_script_gets_the_steps_then_every_reading() -> None:
    stored = StoredReading(
        machine_id="m1",
        reading=MemoryReading.model_validate(READING),
        partition=2,
        offset=41,
        timestamp_ms=1_700_000_000_000,
        received_at=RECEIVED_AT,
    )
    keys, args = store_batch_call(
        "built", [PartitionStep(2, None, 42), PartitionStep(5, 7, 9)], [stored.as_write()]
    )
    assert keys == ["built", latest_reading_key("m1")]
    assert args == [2, "2", "", 42, "5", "7", 9, *stored.store_args()]


def test_the_batch_reply_names_the_partitions_out_of_step() -> None:
    result = StoreBatchResult.from_reply([3, [b"1", b"", b"4", b"17"]])
    assert result == StoreBatchResult(written=3, out_of_step={1: None, 4: 17})
