"""The Redis layout: keys, hash fields and the arguments of the store script."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from telemetry_common.contract import MemoryReading
from telemetry_common.layout import partition_keys
from telemetry_common.storage import (
    HISTORY_ENTRY_COLUMNS,
    DamagedStoredReadingError,
    HistoryRetention,
    LatestField,
    PartitionStep,
    StoreBatchResult,
    StoredHistoryEntry,
    StoredReading,
    pressure_ppm,
    pressure_score,
    store_batch_call,
    store_batch_lua,
)
from tests.helpers import READING

RECEIVED_AT = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
KEYS = partition_keys(2)


def stored_reading() -> StoredReading:
    return StoredReading(
        machine_id="m1",
        reading=MemoryReading.model_validate(READING),
        partition=2,
        offset=41,
        timestamp_ms=1_700_000_000_000,
        received_at=RECEIVED_AT,
    )


def test_the_script_writes_the_latest_hash_fields_the_readers_take() -> None:
    hset = re.search(r"redis\.call\('HSET', key, (.*?)\)\n", store_batch_lua(), re.S)
    assert hset is not None
    names = re.findall(r"'([a-z_]+)'", hset.group(1))
    assert names == [str(field) for field in LatestField]


def test_the_script_reads_an_entry_s_position_from_its_first_columns() -> None:
    assert HISTORY_ENTRY_COLUMNS[:3] == ("partition", "offset", "timestamp_ms")
    assert "local ENTRY_POSITION = '^(%d+),(%d+),(%-?%d+),'" in store_batch_lua()


def test_a_stored_reading_round_trips_through_its_hash_fields() -> None:
    stored = stored_reading()
    write = stored.as_write()
    # What the script writes: the reading's JSON and its position, then its receipt time
    # (then the pressure score, for the pressure index).
    _, args = store_batch_call("built", PartitionStep(2, None, 42), [write])
    entry, reading_json, received_at = args[-4:-1]
    partition, offset, timestamp_ms = str(entry).split(",")[:3]
    fields = {
        LatestField.READING: str(reading_json),
        LatestField.PARTITION: partition,
        LatestField.OFFSET: offset,
        LatestField.TIMESTAMP_MS: timestamp_ms,
        LatestField.RECEIVED_AT: str(received_at),
    }
    assert StoredReading.from_redis_hash("m1", {str(k): v for k, v in fields.items()}) == stored


def test_a_damaged_hash_is_reported() -> None:
    with pytest.raises(DamagedStoredReadingError, match="damaged"):
        StoredReading.from_redis_hash("m1", {"reading": "{}"})


def test_the_batch_script_gets_the_step_then_every_reading() -> None:
    keys, args = store_batch_call(
        "built", PartitionStep(2, None, 42), [stored_reading().as_write()]
    )
    assert keys == [
        "built",
        KEYS.last_seen,
        KEYS.machine_ids,
        KEYS.by_pressure,
        KEYS.latest("m1"),
    ]
    # No history: retention 0 and 0, then the step, the prefix before machine ids, no
    # retired machines, then a group of one entry and what the latest hash takes besides,
    # and the pressure index's score: minus (1 - available/total) in millionths.
    assert args == [
        *(0, 0, "", "42", len(KEYS.latest_prefix), 0),
        1,
        "2,41,1700000000000,16318064,5204372,6104220,412908,5009472,10352120",
        '{"total":16318064,"used":5204372,"free":6104220,"shared":412908,'
        '"buff_cache":5009472,"available":10352120}',
        "2026-11-24T12:00:00+00:00",
        -365_603,
    ]


def test_readings_put_in_place_leave_the_built_offset_alone() -> None:
    _, args = store_batch_call("built", None, [stored_reading().as_write()])
    assert args[2:4] == ["*", "*"]


def test_with_history_a_reading_brings_the_ones_it_superseded() -> None:
    first = stored_reading().as_write()
    second = first._replace(offset=42, timestamp_ms=1_700_000_000_500, earlier=(first,))
    keys, args = store_batch_call(
        "built", PartitionStep(2, 7, 43), [second], HistoryRetention(1000, 60_000)
    )
    assert keys == [
        "built",
        KEYS.last_seen,
        KEYS.machine_ids,
        KEYS.by_pressure,
        KEYS.latest("m1"),
        KEYS.history("m1"),
    ]
    assert args == [
        *(1000, 60_000, "7", "43", len(KEYS.latest_prefix), 0),
        2,
        first.entry(),
        second.entry(),
        *args[-3:],
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


def test_the_batch_reply_names_the_offset_redis_holds_when_out_of_step() -> None:
    assert StoreBatchResult.from_reply([0, "17", 0, 0, 0]) == StoreBatchResult(
        written=0, in_step=False, built_in_redis=17
    )
    assert StoreBatchResult.from_reply([0, "", 0, 0, 0]).built_in_redis is None


def test_the_batch_reply_counts_history_entries_added_and_refused() -> None:
    result = StoreBatchResult.from_reply([1, "", 3, 7, 2])
    assert result == StoreBatchResult(written=3, history_appended=7, history_refused=2)


@pytest.mark.parametrize(
    ("total", "available", "ppm"),
    [(1000, 1000, 0), (1000, 0, 1_000_000), (1000, 200, 800_000), (3, 2, 333_333), (0, 0, 0)],
)
def test_pressure_is_the_share_not_available_in_millionths_rounded_down(
    total: int, available: int, ppm: int
) -> None:
    assert pressure_ppm(total, available) == ppm
    assert pressure_score(total, available) == -ppm
