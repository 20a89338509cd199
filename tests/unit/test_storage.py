"""The Redis layout: keys, hash fields and the arguments of the store script."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from telemetry_common.contract import MemoryReading
from telemetry_common.storage import (
    HISTORY_ENTRY_COLUMNS,
    MACHINE_IDS_KEY,
    MACHINES_LAST_SEEN_KEY,
    STORE_ARGV_ORDER,
    DamagedStoredReadingError,
    HistoryRetention,
    PartitionStep,
    StoreBatchResult,
    StoredHistoryEntry,
    StoredReading,
    built_offset_field,
    built_offsets_key,
    history_key,
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
    assert keys == ["built", MACHINES_LAST_SEEN_KEY, MACHINE_IDS_KEY, latest_reading_key("m1")]
    # No history: retention 0 and 0, then the steps, then a group of one entry and what
    # the latest hash takes besides.
    assert args == [
        *(0, 0, 2, "2", "", 42, "5", "7", 9),
        1,
        "2,41,1700000000000,16318064,5204372,6104220,412908,5009472,10352120",
        '{"total":16318064,"used":5204372,"free":6104220,"shared":412908,'
        '"buff_cache":5009472,"available":10352120}',
        "2026-11-24T12:00:00+00:00",
    ]


def test_with_history_a_reading_brings_the_ones_it_superseded() -> None:
    first = StoredReading(
        machine_id="m1",
        reading=MemoryReading.model_validate(READING),
        partition=2,
        offset=41,
        timestamp_ms=1_700_000_000_000,
        received_at=RECEIVED_AT,
    ).as_write()
    second = first._replace(offset=42, timestamp_ms=1_700_000_000_500, earlier=(first,))
    keys, args = store_batch_call(
        "built", [PartitionStep(2, None, 43)], [second], HistoryRetention(1000, 60_000)
    )
    assert keys == [
        "built",
        MACHINES_LAST_SEEN_KEY,
        MACHINE_IDS_KEY,
        latest_reading_key("m1"),
        history_key("m1"),
    ]
    json, received_at = second.store_args()[0], second.store_args()[-1]
    assert args == [
        1000,
        60_000,
        1,
        "2",
        "",
        43,
        2,
        first.entry(),
        second.entry(),
        json,
        received_at,
    ]


def test_a_history_entry_reads_back_from_its_packed_field() -> None:
    entry = StoredHistoryEntry.from_stream_entry(
        "m1",
        "1700000000000-41",
        {"entry": "2,41,1700000000000,16318064,5204372,6104220,412908,5009472,10352120"},
    )
    assert entry.reading == MemoryReading.model_validate(READING)
    assert (entry.partition, entry.offset, entry.timestamp_ms) == (2, 41, 1_700_000_000_000)
    assert HISTORY_ENTRY_COLUMNS[3:] == tuple(READING)


@pytest.mark.parametrize(
    "fields",
    [{}, {"entry": "2,41"}, {"entry": "2,41,x,1,1,1,1,1,1"}, {"entry": "2,41,5,1,2,1,1,1,1"}],
)
def test_a_damaged_history_entry_is_reported(fields: dict[str, str]) -> None:
    with pytest.raises(DamagedStoredReadingError, match="history entry 5-41"):
        StoredHistoryEntry.from_stream_entry("m1", "5-41", fields)


def test_the_batch_reply_names_the_partitions_out_of_step() -> None:
    result = StoreBatchResult.from_reply([3, [b"1", b"", b"4", b"17"]])
    assert result == StoreBatchResult(written=3, out_of_step={1: None, 4: 17})


def test_the_batch_reply_counts_history_entries_added_and_refused() -> None:
    result = StoreBatchResult.from_reply([3, [], 7, 2])
    assert (result.history_appended, result.history_refused) == (7, 2)
