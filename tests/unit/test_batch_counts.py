"""What a batch tells the worker's metrics and logs: records per partition, and who a
rejected record came from."""

from __future__ import annotations

import logging

import pytest

from consumer_worker.batch import build_batch
from tests.unit.test_batch import FakeRecord, record


def test_the_batch_counts_its_records_per_partition_rejected_ones_included() -> None:
    batch = build_batch(
        [
            record("m1", 0, 10, used=1),
            record("m1", 0, 11, used=2),
            record("m2", 2, 4),
            FakeRecord(b"m3", b"{not json", 2, 5),
        ]
    )
    assert batch.record_counts == {("readings", 0): 2, ("readings", 2): 2}
    assert len(batch.readings) == 2
    assert len(batch.rejected) == 1


def test_a_rejected_record_is_logged_with_its_position_and_machine(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="consumer_worker.batch"):
        build_batch([FakeRecord(b"web-01", b"{not json", 2, 5)])
    (line,) = caplog.records
    assert (line.__dict__["partition"], line.__dict__["offset"]) == (2, 5)
    assert line.__dict__["machine_id"] == "web-01"
    assert line.getMessage().startswith("rejecting record readings[2]@5 of web-01: ")


def test_a_key_that_is_no_machine_id_is_no_machine_id_field(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="consumer_worker.batch"):
        build_batch([FakeRecord(b"\n forged line", b"{}", 1, 9)])
    (line,) = caplog.records
    assert "machine_id" not in line.__dict__
    assert "\n" not in line.getMessage()  # the error names the key escaped: one line
