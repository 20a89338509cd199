"""Records of a newer schema_version: told from broken ones, and where a batch stops for
them (the partition waits for an upgraded worker; nothing of it is dead-lettered)."""

from __future__ import annotations

import json

import pytest

from consumer_worker.batch import HeldRecord, build_batch
from consumer_worker.heartbeat import PausedPartition, WorkerStatus, judge
from telemetry_common.contract import (
    DecodedReading,
    InvalidRecordError,
    MemoryReading,
    decode_reading,
    newer_schema_version,
)
from tests.helpers import reading
from tests.unit.test_batch import RECEIVED_AT, FakeRecord, record

NOW = 1_800_000_000.0


def envelope(machine_id: str, version: object, **reading_changes: int) -> bytes:
    """A value in the form a newer producer might write: this version's fields, another
    schema_version, and a field this version does not know."""
    return json.dumps(
        {
            "schema_version": version,
            "machine_id": machine_id,
            "received_at": RECEIVED_AT.isoformat(),
            "reading": reading(**reading_changes),
            "swap": {"total": 0, "used": 0},
        }
    ).encode()


def newer(machine_id: str, partition: int, offset: int, version: int = 2) -> FakeRecord:
    """A record as a producer of `version` writes it: the header and the value agree."""
    return FakeRecord(
        machine_id.encode(),
        envelope(machine_id, version),
        partition,
        offset,
        _headers=[("content-type", b"application/json"), ("schema-version", str(version).encode())],
    )


def decode_v2(key: bytes | None, value: bytes | None) -> DecodedReading:
    """What an upgraded worker's decoder of version 2 does, as far as the tests need."""
    if key is None or value is None:
        raise InvalidRecordError("record has no key or no value")
    body = json.loads(value)
    if body["schema_version"] != 2:
        raise InvalidRecordError("not version 2")
    v1 = {k: v for k, v in body.items() if k != "swap"} | {"schema_version": 1}
    return decode_reading(key, json.dumps(v1).encode())


@pytest.mark.parametrize("version", [2, 3, 17, 2**31 - 1])
def test_a_record_whose_header_and_value_name_a_newer_version_is_one(version: int) -> None:
    headers = [("schema-version", str(version).encode())]
    assert newer_schema_version(envelope("m1", version), headers) == version
    assert newer_schema_version(envelope("m1", version), [("schema-version", str(version))]) == (
        version
    )


@pytest.mark.parametrize(
    ("value", "headers"),
    [
        # This version, older ones, and numbers no version will have.
        (envelope("m1", 1), [("schema-version", b"1")]),
        (envelope("m1", 0), [("schema-version", b"0")]),
        (envelope("m1", -1), [("schema-version", b"-1")]),
        (envelope("m1", 2**31), [("schema-version", str(2**31).encode())]),
        (envelope("m1", 2**64), [("schema-version", str(2**64).encode())]),
        # A value without the header (a hand-made record), or the header without it.
        (envelope("m1", 2), []),
        (envelope("m1", 2), [("content-type", b"application/json")]),
        (envelope("m1", 1), [("schema-version", b"2")]),
        (envelope("m1", 3), [("schema-version", b"2")]),
        # Versions that are not integers, in the header or the value.
        (envelope("m1", "2"), [("schema-version", b"2")]),
        (envelope("m1", 2.0), [("schema-version", b"2")]),
        (envelope("m1", True), [("schema-version", b"1")]),
        (envelope("m1", 2), [("schema-version", b"2.0")]),
        (envelope("m1", 2), [("schema-version", b" 2")]),
        (envelope("m1", 2), [("schema-version", b"\xff")]),
        (envelope("m1", 2), [("schema-version", None)]),
        (envelope("m1", 2), [("schema-version", "\uff12")]),  # a full-width digit
        # Two headers: no way to tell which one the producer meant.
        (envelope("m1", 2), [("schema-version", b"2"), ("schema-version", b"2")]),
        # Values that are no JSON object with a schema_version.
        (None, [("schema-version", b"2")]),
        (b"", [("schema-version", b"2")]),
        (b"{not json", [("schema-version", b"2")]),
        (b"[2]", [("schema-version", b"2")]),
        (b'{"version": 2}', [("schema-version", b"2")]),
        (b"[" * 100_000 + b"]" * 100_000, [("schema-version", b"2")]),
    ],
)
def test_anything_else_is_no_record_of_a_newer_version(
    value: bytes | None, headers: list[tuple[str, str | bytes | None]]
) -> None:
    assert newer_schema_version(value, headers) is None


def test_a_batch_stops_a_partition_at_a_record_of_a_newer_version() -> None:
    batch = build_batch(
        [
            record("m1", 0, 10, used=1),
            record("m2", 1, 4, used=2),
            record("m1", 0, 11, used=3),
            newer("m1", 0, 12),
            record("m1", 0, 13, used=5),
            record("m3", 0, 14, used=6),
            newer("m2", 1, 5, version=1),  # header and value say 1: a broken record of v1
            record("m2", 1, 6, used=7),
        ]
    )
    # Partition 0: what came before the newer record is stored, nothing from it on.
    assert batch.held == {("readings", 0): HeldRecord(offset=12, schema_version=2)}
    assert batch.next_offsets == {("readings", 0): 12, ("readings", 1): 7}
    assert batch.held_back == {("readings", 0): 3}
    stored = {(r.machine_id, r.partition): (r.offset, r.reading.used) for r in batch.readings}
    assert stored == {("m1", 0): (11, 3), ("m2", 1): (6, 7)}
    # Nothing of partition 0 is dead-lettered; the broken record of partition 1 is.
    assert [(r.record.partition(), r.record.offset()) for r in batch.rejected] == [(1, 5)]
    assert batch.record_counts == {("readings", 0): 5, ("readings", 1): 3}


def test_a_newer_record_first_in_its_partition_holds_it_where_it_is() -> None:
    batch = build_batch([newer("m1", 2, 40, version=5), record("m1", 2, 41)])
    assert batch.held == {("readings", 2): HeldRecord(offset=40, schema_version=5)}
    assert batch.next_offsets == {("readings", 2): 40}
    assert batch.readings == []
    assert batch.rejected == []


@pytest.mark.parametrize(
    "value",
    [envelope("m1", 2), envelope("m1", 0), envelope("m1", 2**64), envelope("m1", "2")],
)
def test_a_record_of_another_version_without_the_header_is_dead_lettered_as_before(
    value: bytes,
) -> None:
    batch = build_batch([FakeRecord(b"m1", value, 0, 3), record("m1", 0, 4)])
    assert batch.held == {}
    assert [r.record.offset() for r in batch.rejected] == [3]
    assert isinstance(batch.rejected[0].error, InvalidRecordError)
    assert batch.next_offsets == {("readings", 0): 5}


def test_a_worker_that_reads_the_version_stores_its_records() -> None:
    records = [record("m1", 0, 10, used=1), newer("m1", 0, 11), record("m1", 0, 12, used=9)]
    batch = build_batch(records, {2: decode_v2})
    assert batch.held == {}
    assert batch.rejected == []
    (latest,) = batch.readings
    assert (latest.offset, latest.reading.used) == (12, 9)
    assert [e.offset for e in latest.earlier] == [10, 11]
    assert latest.earlier[1].reading == MemoryReading.model_validate(reading())


def test_a_version_above_every_decoder_still_holds_the_partition() -> None:
    batch = build_batch([newer("m1", 0, 11), newer("m1", 0, 12, version=3)], {2: decode_v2})
    assert batch.held == {("readings", 0): HeldRecord(offset=12, schema_version=3)}
    assert [r.offset for r in batch.readings] == [11]


def test_a_record_of_a_read_version_that_its_decoder_refuses_is_dead_lettered() -> None:
    broken = FakeRecord(
        b"m1",
        json.dumps({"schema_version": 2, "machine_id": "m1"}).encode(),
        0,
        11,
        _headers=[("schema-version", b"2")],
    )
    batch = build_batch([broken], {2: decode_v2})
    assert batch.held == {}
    assert [r.record.offset() for r in batch.rejected] == [11]


def paused_status(lag: int = 0, progress_ago: float = 0.0) -> WorkerStatus:
    return WorkerStatus(
        heartbeat_at=NOW,
        progress_at=NOW - progress_ago,
        lag=lag,
        paused=(
            PausedPartition(
                topic="readings", partition=2, offset=40, schema_version=2, known_schema_version=1
            ),
        ),
    )


def test_a_worker_holding_a_partition_is_degraded_not_unhealthy() -> None:
    verdict = judge(paused_status(), NOW, stall_seconds=30)
    assert verdict.healthy
    assert verdict.degraded
    assert verdict.state == "degraded"
    assert verdict.message.startswith(
        "degraded: waiting for an upgraded worker: readings[2] paused at offset 40 "
        "(schema_version 2, this worker reads up to 1)"
    )


def test_a_degraded_worker_that_stalls_on_its_other_partitions_is_unhealthy() -> None:
    verdict = judge(paused_status(lag=5, progress_ago=31), NOW, stall_seconds=30)
    assert not verdict.healthy
    assert verdict.state == "unhealthy"
    assert verdict.message.startswith("stalled: 5 records behind")


def test_the_health_file_keeps_the_paused_partitions() -> None:
    status = paused_status()
    assert WorkerStatus.model_validate_json(status.model_dump_json()) == status
    # A file written before partitions could be held still reads: none are.
    old = '{"heartbeat_at": 1.0, "progress_at": 1.0, "lag": 0}'
    assert WorkerStatus.model_validate_json(old).paused == ()
