"""When the worker commits offsets to Kafka: at most once per interval, and what."""

from __future__ import annotations

from consumer_worker.commits import PendingCommits


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_first_offsets_are_due_at_once_then_at_most_once_per_interval() -> None:
    clock = Clock()
    pending = PendingCommits(interval_seconds=1.0, clock=clock)
    assert pending.due() == {}

    pending.stored(0, 10)
    assert pending.due() == {0: 10}
    assert pending.due() == {}

    pending.stored(0, 20)
    pending.stored(1, 5)
    pending.stored(0, 30)
    clock.now += 0.5
    assert pending.due() == {}
    clock.now += 0.5
    assert pending.due() == {0: 30, 1: 5}


def test_offsets_taken_at_revocation_or_shutdown_are_taken_whatever_the_time() -> None:
    clock = Clock()
    pending = PendingCommits(interval_seconds=60.0, clock=clock)
    pending.stored(0, 1)
    assert pending.due() == {0: 1}
    pending.stored(0, 2)
    pending.stored(1, 7)
    assert pending.take([1, 2]) == {1: 7}
    assert pending.take() == {0: 2}
    assert not pending


def test_forgotten_partitions_are_not_committed() -> None:
    pending = PendingCommits(interval_seconds=0.0, clock=Clock())
    pending.stored(0, 4)
    pending.stored(1, 9)
    pending.forget([0])
    assert pending.due() == {1: 9}


def test_an_interval_of_zero_commits_after_every_batch() -> None:
    pending = PendingCommits(interval_seconds=0.0, clock=Clock())
    for offset in (1, 2, 3):
        pending.stored(0, offset)
        assert pending.due() == {0: offset}
