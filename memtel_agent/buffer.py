"""The agent's on-disk buffer: readings not yet accepted by the API, oldest first.

SQLite (stdlib) in WAL mode with `synchronous=FULL`: every append and removal is one
transaction, so a crash or a power cut in the middle of a write leaves the buffer as
it was before or after that write, never half-written. Each reading gets a sequence
number from an AUTOINCREMENT key, which SQLite never reuses, even after the rows
before it were deleted: the numbers keep growing across restarts and give the order
in which readings were taken.

The buffer is bounded: past `max_readings`, the oldest readings are dropped, because
the newest readings are the ones that say most about the machine now.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from pydantic import ValidationError

from telemetry_common.contract import MemoryReading

logger = logging.getLogger(__name__)

DATABASE_NAME: Final = "readings.sqlite3"
LOCK_NAME: Final = "agent.lock"

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS readings (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    machine_id TEXT NOT NULL,
    reading TEXT NOT NULL
)
"""


class BufferInUseError(RuntimeError):
    """Another agent holds the buffer directory."""


@dataclass(frozen=True)
class BufferedReading:
    seq: int
    machine_id: str
    reading: MemoryReading


class ReadingBuffer:
    """A bounded FIFO of readings in `directory`, for one agent process at a time."""

    def __init__(self, directory: Path, max_readings: int) -> None:
        if max_readings < 1:
            raise ValueError("max_readings must be at least 1")
        self.max_readings = max_readings
        directory.mkdir(parents=True, exist_ok=True)
        # Two agents sending from one buffer would interleave their sends and break the
        # order; the lock makes the second one refuse to start. The kernel releases it
        # when the process ends, however it ends.
        self._lock_fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(self._lock_fd)
            raise BufferInUseError(f"{directory} is in use by another agent") from exc
        try:
            # Autocommit mode: transactions are explicit (see _transaction).
            self._db = sqlite3.connect(directory / DATABASE_NAME, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: a committed append survives a power cut, not only a process crash.
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(_SCHEMA)
        except BaseException:
            os.close(self._lock_fd)
            raise

    def append(self, machine_id: str, reading: MemoryReading) -> tuple[int, int]:
        """Store a reading; return its sequence number and how many old ones were dropped."""
        with self._transaction():  # the insert and the trim land together or not at all
            cursor = self._db.execute(
                "INSERT INTO readings (machine_id, reading) VALUES (?, ?)",
                (machine_id, reading.model_dump_json()),
            )
            seq = cursor.lastrowid
            assert seq is not None  # an INSERT into a rowid table always sets it
            excess = self._count() - self.max_readings
            if excess > 0:
                self._db.execute(
                    "DELETE FROM readings WHERE seq IN "
                    "(SELECT seq FROM readings ORDER BY seq LIMIT ?)",
                    (excess,),
                )
        return seq, max(excess, 0)

    def oldest(self, limit: int) -> list[BufferedReading]:
        """Up to `limit` readings, oldest first. Rows that no longer parse are dropped."""
        rows = self._db.execute(
            "SELECT seq, machine_id, reading FROM readings ORDER BY seq LIMIT ?", (limit,)
        ).fetchall()
        readings: list[BufferedReading] = []
        damaged: list[int] = []
        for seq, machine_id, text in rows:
            try:
                readings.append(
                    BufferedReading(seq, machine_id, MemoryReading.model_validate_json(text))
                )
            except ValidationError as exc:
                # Can only come from a buffer written by an agent with another contract;
                # the API would refuse it too, and keeping it would block the queue.
                logger.error("buffered reading #%d is not a valid reading, dropped: %s", seq, exc)
                damaged.append(seq)
        if damaged:
            self.remove(damaged)
        return readings

    def remove(self, seqs: Iterable[int]) -> None:
        """Forget readings the API accepted (or refused for good)."""
        with self._transaction():
            self._db.executemany("DELETE FROM readings WHERE seq = ?", ((s,) for s in seqs))

    def __len__(self) -> int:
        return self._count()

    def close(self) -> None:
        try:
            self._db.close()
        finally:
            os.close(self._lock_fd)

    def __enter__(self) -> ReadingBuffer:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        # In autocommit mode every statement is its own transaction; a group of them is
        # made atomic by hand. IMMEDIATE takes the write lock at once.
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _count(self) -> int:
        (count,) = self._db.execute("SELECT count(*) FROM readings").fetchone()
        return int(count)
