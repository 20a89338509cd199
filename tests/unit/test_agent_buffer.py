"""The agent's on-disk buffer: ordered, bounded, and still there after a reopen."""

from __future__ import annotations

import logging
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from memtel_agent.buffer import DATABASE_NAME, BufferInUseError, ReadingBuffer
from telemetry_common.contract import MemoryReading
from tests.helpers import reading


def sample(used: int) -> MemoryReading:
    return MemoryReading(**reading(used=used))


def used_values(buffer: ReadingBuffer, limit: int = 1000) -> list[int]:
    return [item.reading.used for item in buffer.oldest(limit)]


def test_keeps_readings_in_the_order_they_were_appended(tmp_path: Path) -> None:
    with ReadingBuffer(tmp_path, max_readings=100) as buffer:
        seqs = [buffer.append("web-01", sample(used))[0] for used in range(1, 11)]
        assert seqs == sorted(seqs)
        assert used_values(buffer) == list(range(1, 11))
        assert [item.seq for item in buffer.oldest(3)] == seqs[:3]
        assert len(buffer) == 10


def test_remove_forgets_exactly_the_given_readings(tmp_path: Path) -> None:
    with ReadingBuffer(tmp_path, max_readings=100) as buffer:
        seqs = [buffer.append("web-01", sample(used))[0] for used in range(1, 6)]
        buffer.remove([seqs[0], seqs[2]])
        assert used_values(buffer) == [2, 4, 5]


def test_when_full_the_oldest_are_dropped_and_counted(tmp_path: Path) -> None:
    with ReadingBuffer(tmp_path, max_readings=3) as buffer:
        drops = [buffer.append("web-01", sample(used))[1] for used in range(1, 6)]
        assert drops == [0, 0, 0, 1, 1]
        assert used_values(buffer) == [3, 4, 5]


def test_a_smaller_bound_after_a_restart_drops_the_excess_at_once(tmp_path: Path) -> None:
    with ReadingBuffer(tmp_path, max_readings=10) as buffer:
        for used in range(1, 8):
            buffer.append("web-01", sample(used))
    with ReadingBuffer(tmp_path, max_readings=3) as buffer:
        _, dropped = buffer.append("web-01", sample(8))
        assert dropped == 5
        assert used_values(buffer) == [6, 7, 8]


def test_survives_a_reopen_and_sequence_numbers_keep_growing(tmp_path: Path) -> None:
    with ReadingBuffer(tmp_path, max_readings=100) as buffer:
        first = [buffer.append("web-01", sample(used))[0] for used in (1, 2, 3)]
        buffer.remove(first)  # all sent: the table is empty
        kept, _ = buffer.append("db-01", sample(4))
    with ReadingBuffer(tmp_path, max_readings=100) as buffer:
        items = buffer.oldest(10)
        assert [(i.seq, i.machine_id, i.reading.used) for i in items] == [(kept, "db-01", 4)]
        later, _ = buffer.append("web-01", sample(5))
    # Numbers are never reused, even for rows deleted before the restart.
    assert later > kept > max(first)


def test_survives_the_process_being_killed(tmp_path: Path) -> None:
    # A process that appends and dies without closing anything (os._exit skips every
    # cleanup): what it committed is there.
    script = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from memtel_agent.buffer import ReadingBuffer\n"
        "from telemetry_common.contract import MemoryReading, EXAMPLE_READING\n"
        "buffer = ReadingBuffer(Path(sys.argv[1]), 100)\n"
        "for used in (1, 2, 3):\n"
        "    buffer.append('web-01', MemoryReading(**{**EXAMPLE_READING, 'used': used}))\n"
        "os._exit(9)\n"
    )
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=False)
    assert result.returncode == 9
    with ReadingBuffer(tmp_path, max_readings=100) as buffer:
        assert used_values(buffer) == [1, 2, 3]


def test_a_second_agent_on_the_same_directory_is_refused(tmp_path: Path) -> None:
    with ReadingBuffer(tmp_path, max_readings=10), pytest.raises(BufferInUseError):
        ReadingBuffer(tmp_path, max_readings=10)
    ReadingBuffer(tmp_path, max_readings=10).close()  # free again once closed


def test_a_row_that_is_no_longer_a_valid_reading_is_dropped_with_an_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with ReadingBuffer(tmp_path, max_readings=10) as buffer:
        buffer.append("web-01", sample(1))
        with sqlite3.connect(tmp_path / DATABASE_NAME) as db:
            db.execute("INSERT INTO readings (machine_id, reading) VALUES ('web-01', '{}')")
        db.close()
        buffer.append("web-01", sample(3))
        with caplog.at_level(logging.ERROR):
            assert used_values(buffer) == [1, 3]
        assert "not a valid reading" in caplog.text
        assert len(buffer) == 2
