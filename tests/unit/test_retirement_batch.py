"""Retirement records: what they are, how a batch orders them with the readings, and the
store script's arguments that carry them."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from consumer_worker.batch import Retirement, build_batch
from telemetry_common.contract import (
    ANY_PARTITION,
    InvalidRecordError,
    decode_retirement,
    encode_retirement,
    is_retirement,
)
from telemetry_common.layout import partition_keys
from telemetry_common.storage import PartitionStep, StoreBatchResult, store_batch_call
from tests.unit.test_batch import FakeRecord, record

RETIRED_AT = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


def retirement(machine_id: str, partition: int, offset: int) -> FakeRecord:
    encoded = encode_retirement(machine_id, RETIRED_AT)
    return FakeRecord(encoded.key, encoded.value, partition, offset, _headers=encoded.headers)


def test_a_retirement_record_is_keyed_by_the_machine_and_marked_by_its_header() -> None:
    encoded = encode_retirement("web-01", RETIRED_AT, partition=4)
    assert encoded.key == b"web-01"
    assert json.loads(encoded.value) == {
        "schema_version": 1,
        "machine_id": "web-01",
        "retired_at": "2026-12-01T09:30:00Z",
    }
    assert ("record-type", b"retirement") in encoded.headers
    assert ("schema-version", b"1") in encoded.headers
    assert encoded.partition == 4
    assert encode_retirement("web-01", RETIRED_AT).partition == ANY_PARTITION
    assert is_retirement(encoded.headers)
    assert decode_retirement(encoded.key, encoded.value) == "web-01"


@pytest.mark.parametrize(
    ("key", "value", "error"),
    [
        (b"web-01", None, "no key or no value"),
        (None, b"{}", "no key or no value"),
        (b"web 01", b"{}", "not a valid machine id"),
        (b"web-01", b'{"machine_id": "web-02", "retired_at": "2026-12-01T09:30:00Z"}', "disagree"),
        (b"web-01", b'{"machine_id": "web-01"}', "retirement schema"),
        (b"web-01", b'{"machine_id": "web-01", "retired_at": "x"}', "retirement schema"),
        (
            b"web-01",
            b'{"schema_version": 0, "machine_id": "web-01", "retired_at": "2026-12-01T09:30:00Z"}',
            "unsupported schema_version 0",
        ),
        (b"web-01", b"not json", "retirement schema"),
    ],
)
def test_a_broken_retirement_is_refused(key: bytes | None, value: bytes | None, error: str) -> None:
    with pytest.raises(InvalidRecordError, match=error):
        decode_retirement(key, value)


def test_a_retirement_is_applied_in_offset_order_with_the_readings() -> None:
    batch = build_batch(
        [
            record("m1", 0, 10, used=1),  # before the retirement: removed with the machine
            record("m2", 0, 11, used=2),
            retirement("m1", 0, 12),
            record("m3", 1, 5, used=3),
            retirement("m3", 1, 6),  # the last reading of m3 before it: none kept
            record("m1", 0, 13, used=4),  # after it: brings the machine back
            record("m1", 0, 14, used=5),
        ]
    )
    assert batch.rejected == []
    assert batch.retirements == [Retirement("m1", 0, 12), Retirement("m3", 1, 6)]
    stored = {r.machine_id: (r.offset, [e.offset for e in r.earlier]) for r in batch.readings}
    assert stored == {"m1": (14, [13]), "m2": (11, [])}
    # The offsets cover every record, retirements included.
    assert batch.next_offsets == {("readings", 0): 15, ("readings", 1): 7}


def test_of_a_machine_s_retirements_in_a_partition_the_last_counts() -> None:
    batch = build_batch(
        [
            retirement("m1", 0, 3),
            record("m1", 0, 4),
            retirement("m1", 0, 5),
            record("m1", 2, 6),  # another partition: untouched
        ]
    )
    assert batch.retirements == [Retirement("m1", 0, 5)]
    assert [(r.partition, r.offset) for r in batch.readings] == [(2, 6)]


@pytest.mark.parametrize(
    ("value", "headers"),
    [
        # A tombstone: no value is a broken record, whatever its headers.
        (None, [("record-type", b"retirement")]),
        (None, []),
        # A retirement's value without its header, or with the header's value wrong.
        (encode_retirement("m1", RETIRED_AT).value, []),
        (encode_retirement("m1", RETIRED_AT).value, [("record-type", b"Retirement")]),
        # The header on a value that is no retirement.
        (b'{"machine_id": "m1"}', [("record-type", b"retirement")]),
    ],
)
def test_what_is_not_a_valid_retirement_is_dead_lettered(
    value: bytes | None, headers: list[tuple[str, str | bytes | None]]
) -> None:
    batch = build_batch([FakeRecord(b"m1", value, 0, 7, _headers=headers), record("m1", 0, 8)])
    assert batch.retirements == []
    assert [r.record.offset() for r in batch.rejected] == [7]
    assert [r.offset for r in batch.readings] == [8]


def test_a_retirement_past_a_held_record_waits_with_it() -> None:
    newer = FakeRecord(
        b"m1",
        b'{"schema_version": 2, "machine_id": "m1"}',
        0,
        4,
        _headers=[("schema-version", b"2")],
    )
    batch = build_batch([retirement("m1", 0, 3), newer, retirement("m2", 0, 5)])
    assert batch.retirements == [Retirement("m1", 0, 3)]
    assert batch.next_offsets == {("readings", 0): 4}
    assert batch.held_back == {("readings", 0): 2}


def test_the_store_script_gets_the_retired_machines_keys_before_the_readings() -> None:
    keys_of = partition_keys(2)
    reading = build_batch([record("m1", 2, 41)]).readings[0]
    keys, args = store_batch_call("built", PartitionStep(2, 40, 42), [reading], retired=["m0"])
    assert keys == [
        "built",
        keys_of.last_seen,
        keys_of.machine_ids,
        keys_of.by_pressure,
        keys_of.latest("m0"),
        keys_of.history("m0"),
        keys_of.latest("m1"),
    ]
    assert args[:6] == [0, 0, "40", "42", len(keys_of.latest_prefix), 1]
    # Then the reading's group, as without retirements.
    assert args[6:] == store_batch_call("built", PartitionStep(2, 40, 42), [reading])[1][6:]


def test_the_script_s_reply_says_how_many_retired_machines_it_removed() -> None:
    assert StoreBatchResult.from_reply([1, "", 3, 7, 2, 1]).retired == 1
    assert StoreBatchResult.from_reply([0, "17", 0, 0, 0, 0]).built_in_redis == 17
