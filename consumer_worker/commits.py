"""Which offsets the worker owes Kafka a commit of, and when it commits them.

The worker resumes from the offsets Redis holds, so Kafka's committed offsets serve lag
monitoring and tools only: committing after every batch would cost a broker round trip
per batch for nothing. Offsets are recorded here once their records are in Redis (or
in the dead-letter topic), and committed at most once per interval, and whenever the
partitions leave the worker (revocation, shutdown).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable


class PendingCommits:
    def __init__(
        self, interval_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._interval_seconds = interval_seconds
        self._clock = clock
        # partition -> the next offset to read, i.e. what a commit of it would say.
        self._offsets: dict[int, int] = {}
        self._next_commit_at = float("-inf")

    def __bool__(self) -> bool:
        return bool(self._offsets)

    def stored(self, partition: int, next_offset: int) -> None:
        """Records before `next_offset` are in Redis: the partition may be committed to it."""
        self._offsets[partition] = next_offset

    def forget(self, partitions: Iterable[int]) -> None:
        """Drop what is owed for partitions that are gone, or that are read again from
        an earlier offset (a commit must not claim what Redis no longer holds)."""
        for partition in partitions:
            self._offsets.pop(partition, None)

    def due(self) -> dict[int, int]:
        """What to commit now (taking it): everything owed, once the interval since the
        last commit has passed; else nothing."""
        if not self._offsets or self._clock() < self._next_commit_at:
            return {}
        return self.take()

    def take(self, partitions: Iterable[int] | None = None) -> dict[int, int]:
        """What is owed (for `partitions`, or all), now to be committed whatever the time."""
        if partitions is None:
            taken, self._offsets = self._offsets, {}
        else:
            taken = {p: self._offsets.pop(p) for p in partitions if p in self._offsets}
        if taken:
            self._next_commit_at = self._clock() + self._interval_seconds
        return taken
