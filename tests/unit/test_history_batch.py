"""The readings a batch owes the history, and the history's settings."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from consumer_worker.batch import build_batch
from consumer_worker.settings import DEFAULT_CONSUMER_GROUP, WorkerSettings
from producer_api.settings import ProducerSettings
from telemetry_common.storage import HistoryRetention
from tests.unit.test_batch import FakeRecord, record


def test_the_newest_reading_carries_the_ones_it_supersedes_oldest_first() -> None:
    batch = build_batch(
        [
            record("m1", 0, 10, used=1),
            record("m2", 1, 4, used=2),
            record("m1", 0, 11, used=3),
            FakeRecord(b"m1", b"garbage", 0, 12),
            record("m1", 0, 13, used=4),
        ]
    )
    newest = {r.machine_id: r for r in batch.readings}
    assert (newest["m1"].offset, newest["m1"].reading.used) == (13, 4)
    assert [(r.offset, r.reading.used) for r in newest["m1"].earlier] == [(10, 1), (11, 3)]
    # What a superseded reading carries is itself only.
    assert all(r.earlier == () for r in newest["m1"].earlier)
    assert newest["m2"].earlier == ()


def test_each_partition_of_a_machine_keeps_its_own_readings() -> None:
    batch = build_batch(
        [record("m1", 0, 10), record("m1", 2, 3), record("m1", 0, 11), record("m1", 2, 4)]
    )
    chains = {r.partition: (r.offset, [e.offset for e in r.earlier]) for r in batch.readings}
    assert chains == {0: (11, [10]), 2: (4, [3])}


def test_readings_out_of_offset_order_are_put_back_in_it() -> None:
    batch = build_batch([record("m1", 0, 12), record("m1", 0, 10), record("m1", 0, 11)])
    (newest,) = batch.readings
    assert (newest.offset, [e.offset for e in newest.earlier]) == (12, [10, 11])


def test_the_history_is_bounded_by_count_and_age_by_default() -> None:
    retention = WorkerSettings(_env_file=None).history_retention()
    assert retention == HistoryRetention(max_entries=1000, max_age_ms=86_400_000)
    assert retention.enabled


@pytest.mark.parametrize(
    ("entries", "age", "enabled"), [(0, 60, True), (10, 0, True), (0, 0, False)]
)
def test_a_bound_of_0_is_lifted_and_both_at_0_keep_no_history(
    entries: int, age: int, enabled: bool
) -> None:
    settings = WorkerSettings(
        _env_file=None, history_max_entries=entries, history_max_age_seconds=age
    )
    assert settings.history_retention().enabled is enabled


@pytest.mark.parametrize("changes", [{"history_max_entries": -1}, {"history_max_age_seconds": -1}])
def test_a_negative_bound_is_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        WorkerSettings(_env_file=None, **changes)


def test_the_api_and_the_worker_default_to_the_same_consumer_group() -> None:
    assert ProducerSettings(_env_file=None).kafka_consumer_group == DEFAULT_CONSUMER_GROUP
    assert WorkerSettings(_env_file=None).kafka_consumer_group == DEFAULT_CONSUMER_GROUP


@pytest.mark.parametrize("wait_ms", [-1, 30_001])
def test_the_consistency_wait_is_bounded(wait_ms: int) -> None:
    with pytest.raises(ValidationError):
        ProducerSettings(_env_file=None, api_consistency_wait_ms=wait_ms)
