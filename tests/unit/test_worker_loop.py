"""The worker loop's decisions, one `step()` at a time, on in-memory parts
(tests/unit/worker_fakes.py): when it retries, what it commits and when, what it holds.

The same loop on the real Kafka and Redis: tests/integration/test_worker*.py."""

from __future__ import annotations

import logging
import threading

import pytest

from tests.unit.worker_fakes import (
    TOPIC,
    loop,
    newer_version_message,
    poison_message,
    reading_message,
)

pytestmark = pytest.mark.unit


def test_a_batch_is_written_then_committed_at_most_once_per_interval() -> None:
    run = loop(worker_commit_interval_ms=5000)
    run.consumer.rebalance("assign", [0, 1])
    run.consumer.append(reading_message("m1", 0, 0), reading_message("m2", 1, 0))
    run.until(lambda: run.consumer.commits != [])

    assert run.sink.stored == {"m1": 0, "m2": 0}
    assert run.consumer.commits == [({0: 1, 1: 1}, True)]

    # Stored, but the interval has not passed: owed, not committed.
    run.consumer.append(reading_message("m1", 0, 1))
    run.until(lambda: run.sink.built.get(0) == 2)
    for _ in range(3):
        run.worker.step()
    assert run.consumer.commits == [({0: 1, 1: 1}, True)]

    run.clock.now += 5.0
    run.worker.step()
    assert run.consumer.commits[-1] == ({0: 2}, True)
    assert run.count("memtel_worker_offset_commits_total") == 2
    assert run.count("memtel_worker_readings_written_total") == 3


def test_a_failed_redis_write_is_retried_with_backoff_and_nothing_is_committed_past_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    run = loop(worker_retry_max_backoff_seconds=1.0)
    run.consumer.rebalance("assign", [0])
    run.worker.step()
    committed_at_attempts: list[dict[int, int]] = []
    run.sink.on_attempt = lambda: committed_at_attempts.append(run.consumer.committed_offsets)
    run.sink.fail_writes = 6
    run.consumer.append(reading_message("m1", 0, 0), reading_message("m2", 0, 1))

    with caplog.at_level(logging.INFO, logger="consumer_worker.worker"):
        run.until(lambda: run.sink.built.get(0) == 2)
        run.worker.step()

    # Every failed attempt saw nothing of the batch committed; the commit came after.
    assert committed_at_attempts == [{}] * 7
    assert run.consumer.committed_offsets == {0: 2}
    assert run.count("memtel_worker_redis_failures_total", operation="write") == 6
    # Exponential backoff (0.1 s, 0.2 s, ... capped at the setting), waited on the clock.
    assert run.clock.waited == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0])
    # One line when Redis went away, one when it came back: the retries are counted.
    lines = [r.getMessage() for r in caplog.records if "Redis" in r.getMessage()]
    assert len(lines) == 2, lines
    assert lines[0].startswith("Redis write failed (attempt 1: Redis is away)")
    assert "Redis unreachable" in lines[0]
    assert lines[1].startswith("Redis reachable again after 2.5 s")
    assert lines[1].endswith(", 6 errors")


def test_rejected_records_are_dead_lettered_before_the_batch_is_written_and_committed() -> None:
    run = loop()
    run.consumer.rebalance("assign", [0])
    run.dead_letters.fail = 2
    written_when_sent: list[int] = []
    publish = run.dead_letters.publish

    def publish_noting_writes(letters):  # type: ignore[no-untyped-def]
        written_when_sent.append(run.sink.writes)
        return publish(letters)

    run.dead_letters.publish = publish_noting_writes  # type: ignore[method-assign]
    run.consumer.append(reading_message("m1", 0, 0), poison_message(0, 1))
    run.until(lambda: run.consumer.commits != [])

    assert written_when_sent == [0, 0, 0]  # two failed sends, then one acknowledged
    assert [letter.value for letter in run.dead_letters.sent] == [b"not json"]
    assert run.sink.stored == {"m1": 0}
    assert run.consumer.committed_offsets == {0: 2}
    assert run.count("memtel_worker_dead_letter_failures_total") == 2
    assert run.count("memtel_worker_records_dead_lettered_total") == 1


def test_a_revocation_waits_for_the_write_in_flight_and_commits_what_it_wrote() -> None:
    run = loop(worker_commit_interval_ms=60_000, worker_view_check_interval_seconds=600)
    run.consumer.rebalance("assign", [0])
    run.worker.step()
    run.worker.step()  # the first view check, before the write below
    # A first commit, so that the interval holds the next one back.
    run.consumer.append(reading_message("m0", 0, 0))
    run.until(lambda: run.consumer.commits != [])

    run.sink.gate.clear()
    run.sink.writing.clear()
    run.consumer.append(reading_message("m1", 0, 1), reading_message("m2", 0, 2))
    run.worker.step()  # polls the batch and sends it to the writer thread
    assert run.sink.writing.wait(5)
    run.consumer.rebalance("revoke", [0])
    threading.Timer(0.2, run.sink.gate.set).start()
    run.worker.step()

    assert run.sink.writes == 2
    assert run.sink.stored == {"m0": 0, "m1": 1, "m2": 2}
    assert run.consumer.commits[-1] == ({0: 3}, False)  # synchronous, before it goes
    assert 0 not in run.consumer.position


def test_a_lost_partition_is_not_committed() -> None:
    run = loop(worker_view_check_interval_seconds=600)
    run.consumer.rebalance("assign", [0, 1])
    run.worker.step()
    run.worker.step()
    run.sink.gate.clear()
    run.consumer.append(reading_message("m1", 0, 0), reading_message("m2", 1, 0))
    run.worker.step()
    assert run.sink.writing.wait(5)
    run.consumer.rebalance("lost", [0])
    run.sink.gate.set()
    run.until(lambda: run.consumer.commits != [])

    # Written (another member re-reads it harmlessly), but not committed by a member
    # that no longer owns it.
    assert run.sink.built == {0: 1, 1: 1}
    assert run.consumer.committed_offsets == {1: 1}
    run.clock.now += 60
    for _ in range(3):
        run.worker.step()
    assert 0 not in run.consumer.committed_offsets


def test_a_partition_at_a_newer_schema_version_is_paused_and_not_committed_past_it() -> None:
    run = loop()
    run.consumer.rebalance("assign", [0, 1])
    run.consumer.append(
        reading_message("m1", 0, 0),
        newer_version_message("m2", 0, 1),
        reading_message("m3", 0, 2),
        reading_message("m4", 1, 0),
    )
    run.until(lambda: run.consumer.committed_offsets == {0: 1, 1: 1})

    assert run.sink.stored == {"m1": 0, "m4": 0}
    assert run.sink.built == {0: 1, 1: 1}
    assert run.consumer.paused == {0}
    assert run.consumer.position[0] == 1  # sought back to the held record
    assert (
        run.count("memtel_worker_paused_partition_schema_version", topic=TOPIC, partition="0") == 2
    )
    # The other partition goes on; the held one stays where it is.
    run.consumer.append(reading_message("m5", 1, 1))
    run.clock.now += 60
    run.until(lambda: run.consumer.committed_offsets == {0: 1, 1: 2})
    for _ in range(3):
        run.worker.step()
    assert run.consumer.committed_offsets[0] == 1
    assert "m3" not in run.sink.stored


def test_a_stop_sees_the_write_through_commits_it_and_closes_every_part() -> None:
    run = loop(worker_commit_interval_ms=60_000, worker_view_check_interval_seconds=600)
    run.consumer.rebalance("assign", [0])
    run.worker.step()
    run.worker.step()
    run.consumer.append(reading_message("m0", 0, 0))
    run.until(lambda: run.consumer.commits != [])
    run.sink.gate.clear()
    run.sink.writing.clear()
    run.consumer.append(reading_message("m1", 0, 1))
    run.worker.step()
    assert run.sink.writing.wait(5)

    run.worker.request_stop()
    threading.Timer(0.2, run.sink.gate.set).start()
    run.worker.close()

    assert run.sink.built == {0: 2}
    assert run.consumer.commits[-1] == ({0: 2}, False)
    assert run.consumer.closed
    assert run.dead_letters.closed


def test_a_stop_while_redis_keeps_failing_commits_nothing_of_the_batch() -> None:
    run = loop(worker_view_check_interval_seconds=600)
    run.consumer.rebalance("assign", [0])
    run.worker.step()
    run.worker.step()
    attempts = 0

    def fail_then_stop() -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 3:
            run.worker.request_stop()

    run.sink.on_attempt = fail_then_stop
    run.sink.fail_writes = 1000
    run.consumer.append(reading_message("m1", 0, 0))
    run.worker.step()  # sends the write
    run.worker.step()  # takes its outcome: retried until the stop
    run.worker.close()

    assert attempts == 3
    assert run.sink.built == {}
    assert run.consumer.commits == []
    assert run.consumer.closed


def test_a_view_found_behind_is_read_again_from_where_it_is_built() -> None:
    run = loop(worker_view_check_interval_seconds=1)
    run.consumer.rebalance("assign", [0])
    run.consumer.append(reading_message("m1", 0, 0), reading_message("m2", 0, 1))
    run.until(lambda: run.sink.built.get(0) == 2)

    run.sink.built.clear()  # Redis emptied
    run.sink.stored.clear()
    run.clock.now += 2
    run.until(lambda: run.sink.built.get(0) == 2)

    assert run.sink.stored == {"m1": 0, "m2": 1}
    assert run.count("memtel_worker_view_replays_total") == 1


def test_an_assignment_retries_reading_the_view_then_starts_where_it_is_built() -> None:
    run = loop()
    run.sink.built = {0: 2, 1: None}
    run.sink.fail_reads = 3
    run.consumer.append(*(reading_message(f"m{n}", 0, n) for n in range(3)))
    run.consumer.append(reading_message("m9", 1, 0))
    run.consumer.rebalance("assign", [0, 1])
    run.until(lambda: run.consumer.committed_offsets == {0: 3, 1: 1})

    assert run.count("memtel_worker_redis_failures_total", operation="read_view") == 3
    assert run.clock.waited == pytest.approx([0.1, 0.2, 0.4])
    # Partition 0 from offset 2 (where its view is built), partition 1 from its start.
    assert run.sink.stored == {"m2": 2, "m9": 0}
