"""The worker's health: the status its loop reports, the file it is kept in, and the
judgement of it.

A worker is unhealthy when its loop stopped (no heartbeat for a while), or when it is
stalled: behind (lag above 0) without storing anything for longer than
`WORKER_STALL_SECONDS`, which is what a worker stuck retrying Redis looks like while
its loop still runs. An idle worker with nothing to read is healthy however long it
has been idle. A worker that holds partitions at records of a newer schema_version
than it reads is degraded: it serves its other partitions (and is judged on them), but
those wait for an upgraded worker; restarting it with the same version changes nothing,
so the probe still passes and says so. `python -m consumer_worker.healthcheck` judges
the status file; `/healthz` on the metrics port judges the same status in memory.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from pydantic import BaseModel, ConfigDict, Field

# How old the last heartbeat may be before the loop counts as stopped: the longest
# step between two beats (a dead-letter flush, about 11 s at most) with room to spare.
DEFAULT_MAX_HEARTBEAT_AGE_SECONDS: Final = 30.0

# Rewriting the file on every poll would be wasted I/O; once a second is precise enough
# for judgements made in tens of seconds.
_MIN_WRITE_INTERVAL_SECONDS: Final = 1.0


class PausedPartition(BaseModel):
    """A partition held at a record of a newer schema_version than the worker reads."""

    model_config = ConfigDict(frozen=True)

    topic: str
    partition: int
    offset: int = Field(description="The held record's offset: nothing from it on is read.")
    schema_version: int = Field(description="The record's schema_version.")
    known_schema_version: int = Field(description="The newest version this worker reads.")


class WorkerStatus(BaseModel):
    """What the loop last reported, as written to the health file (JSON)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    # Seconds since the epoch (the probe runs in another process: wall-clock time).
    heartbeat_at: float = Field(description="When the loop last reported.")
    progress_at: float = Field(
        description=(
            "When the worker last moved on: stored a batch in Redis, dead-lettered "
            "records, or had nothing left to read."
        )
    )
    lag: int = Field(
        ge=0,
        description="Records not yet in Redis, all assigned partitions but the paused ones.",
    )
    paused: tuple[PausedPartition, ...] = Field(
        (), description="Partitions waiting for an upgraded worker (the degraded state)."
    )


@dataclass(frozen=True)
class Verdict:
    healthy: bool
    message: str
    # Healthy, but partitions wait for an upgraded worker (WorkerStatus.paused).
    degraded: bool = False

    @property
    def state(self) -> str:
        """The verdict's name: healthy, degraded or unhealthy."""
        if not self.healthy:
            return "unhealthy"
        return "degraded" if self.degraded else "healthy"


def describe_paused(paused: tuple[PausedPartition, ...]) -> str:
    return "; ".join(
        f"{p.topic}[{p.partition}] paused at offset {p.offset} (schema_version "
        f"{p.schema_version}, this worker reads up to {p.known_schema_version})"
        for p in paused
    )


def judge(
    status: WorkerStatus,
    now: float,
    *,
    stall_seconds: float,
    max_heartbeat_age: float = DEFAULT_MAX_HEARTBEAT_AGE_SECONDS,
) -> Verdict:
    """Whether the worker is healthy, and one line that says why."""
    age = now - status.heartbeat_at
    if age > max_heartbeat_age:
        return Verdict(
            False,
            f"heartbeat is {age:.0f}s old (limit {max_heartbeat_age:.0f}s): "
            "the worker's loop is not running",
        )
    still = max(0.0, now - status.progress_at)
    if status.lag > 0 and still > stall_seconds:
        return Verdict(
            False,
            f"stalled: {status.lag} records behind and nothing stored for {still:.0f}s "
            f"(limit {stall_seconds:g}s)",
        )
    if status.paused:
        return Verdict(
            True,
            f"degraded: waiting for an upgraded worker: {describe_paused(status.paused)}; "
            f"the other partitions: heartbeat {age:.1f}s old, {status.lag} records behind, "
            f"last progress {still:.0f}s ago",
            degraded=True,
        )
    return Verdict(
        True,
        f"healthy: heartbeat {age:.1f}s old, {status.lag} records behind, "
        f"last progress {still:.0f}s ago",
    )


class Heartbeat:
    """The loop's reports, kept in memory (for /healthz) and in the health file.

    Only the loop's thread calls `beat` and `progressed`; other threads read `status`,
    which is replaced whole, never changed in place.
    """

    def __init__(self, path: Path | None, clock: Callable[[], float] = time.time) -> None:
        self._path = path
        self._clock = clock
        now = clock()
        # A worker that just started has made no progress yet, but is not stalled either:
        # it gets the stall limit from its start to store its first batch.
        self._status = WorkerStatus(heartbeat_at=now, progress_at=now, lag=0)
        self._next_write = float("-inf")

    @property
    def status(self) -> WorkerStatus:
        return self._status

    def beat(self, lag: int, paused: tuple[PausedPartition, ...] = ()) -> None:
        """The loop runs, `lag` records behind on the partitions it reads, `paused`
        waiting for an upgraded worker."""
        now = self._clock()
        # Caught up is progress: a stall is counted from the moment the worker fell behind.
        progress_at = now if lag == 0 else self._status.progress_at
        self._status = WorkerStatus(
            heartbeat_at=now, progress_at=progress_at, lag=lag, paused=paused
        )
        if self._path is not None and now >= self._next_write:
            self._write(self._path)
            self._next_write = now + _MIN_WRITE_INTERVAL_SECONDS

    def progressed(self) -> None:
        """Records were stored in Redis or dead-lettered."""
        self._status = self._status.model_copy(update={"progress_at": self._clock()})

    def clear(self) -> None:
        if self._path is not None:
            self._path.unlink(missing_ok=True)

    def _write(self, path: Path) -> None:
        # Written aside and renamed over the file, so that the probe never reads half a
        # status.
        scratch = path.with_name(f"{path.name}.tmp")
        scratch.write_text(self._status.model_dump_json())
        os.replace(scratch, path)


def read_status(path: Path) -> WorkerStatus | None:
    """The status in the health file; None if there is none. Raises ValueError (a
    pydantic ValidationError) if the file holds no status."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    return WorkerStatus.model_validate_json(text)
