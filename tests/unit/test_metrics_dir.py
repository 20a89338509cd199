"""The shared metrics directory of several server processes: a process that exited stops
counting in the live gauges, and keeps its counts in everything else."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from producer_api.metrics import MULTIPROCESS_DIR_VARIABLE
from producer_api.metrics_dir import forget_exited_processes, shared_metrics_directory


def exited_pid() -> int:
    process = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(process.stdout)


def test_the_gauges_of_an_exited_process_are_forgotten(tmp_path: Path) -> None:
    gone, alive = exited_pid(), os.getpid()
    files = [
        f"gauge_livesum_{gone}.db",
        f"gauge_liveall_{gone}.db",
        f"counter_{gone}.db",
        f"histogram_{gone}.db",
        f"gauge_livesum_{alive}.db",
        f"counter_{alive}.db",
    ]
    for name in files:
        (tmp_path / name).write_bytes(b"")
    assert forget_exited_processes(tmp_path) == {gone}
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        [
            f"counter_{gone}.db",
            f"histogram_{gone}.db",
            f"gauge_livesum_{alive}.db",
            f"counter_{alive}.db",
        ]
    )


def test_the_directory_lives_as_long_as_the_run() -> None:
    with shared_metrics_directory() as directory:
        assert os.environ[MULTIPROCESS_DIR_VARIABLE] == str(directory)
        assert directory.is_dir()
        assert not any(directory.iterdir())
        (directory / "counter_1.db").write_bytes(b"")
    assert MULTIPROCESS_DIR_VARIABLE not in os.environ
    assert not directory.exists()
