"""The Redis layout: keys, hash fields and the arguments of the store script."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from telemetry_common.contract import MemoryReading
from telemetry_common.storage import (
    STORE_ARGV_ORDER,
    DamagedStoredReadingError,
    StoredReading,
    latest_reading_key,
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
