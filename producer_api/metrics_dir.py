"""The metrics directory shared by the server processes of one `python -m producer_api` run.

With API_WORKERS > 1, uvicorn's parent process starts the server processes, and any of
them may answer a scrape. prometheus-client's multiprocess mode makes the scrape show
all of them: each process writes its values to files in PROMETHEUS_MULTIPROC_DIR, and
`GET /metrics` reads every file there (see `metrics`). The parent makes a fresh
directory for the run before it starts the processes (a directory left by an earlier
run would add that run's counts), sets the variable they inherit, and removes the
directory when the run ends.

A process that exits leaves its files. Its counters and histograms must stay (a rate
must not drop when a process is replaced), but its gauges must go, or the sum of a live
gauge would keep a dead process's last value: uvicorn offers no hook on a worker's
exit, so a thread of the parent looks every second for gauge files of processes that no
longer exist and removes them with prometheus-client's `mark_process_dead`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from prometheus_client.multiprocess import mark_process_dead

from producer_api.metrics import MULTIPROCESS_DIR_VARIABLE

logger = logging.getLogger(__name__)

SWEEP_INTERVAL_SECONDS: Final = 1.0
# The files of gauges that count live processes only: gauge_livesum_<pid>.db, ...
_LIVE_GAUGE_FILE: Final = re.compile(r"gauge_live\w+_(\d+)\.db")


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, as another user's
        return True
    return True


def forget_exited_processes(directory: Path) -> set[int]:
    """Remove the live-gauge files of processes that no longer exist; return their pids."""
    pids = set()
    for entry in os.scandir(directory):
        match = _LIVE_GAUGE_FILE.fullmatch(entry.name)
        if match:
            pids.add(int(match.group(1)))
    gone = {pid for pid in pids if not _exists(pid)}
    for pid in gone:
        mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]
    return gone


def _sweep_until(stop: threading.Event, directory: Path) -> None:
    while not stop.wait(SWEEP_INTERVAL_SECONDS):
        try:
            for pid in forget_exited_processes(directory):
                logger.info("metrics: process %d exited; its gauges no longer count", pid)
        except OSError:
            logger.exception("metrics: could not sweep %s", directory)


@contextlib.contextmanager
def shared_metrics_directory() -> Iterator[Path]:
    """A fresh PROMETHEUS_MULTIPROC_DIR for the processes started inside, swept meanwhile
    and removed afterwards."""
    directory = Path(tempfile.mkdtemp(prefix="memtel-api-metrics-"))
    os.environ[MULTIPROCESS_DIR_VARIABLE] = str(directory)
    stop = threading.Event()
    sweeper = threading.Thread(
        target=_sweep_until, args=(stop, directory), name="metrics-sweeper", daemon=True
    )
    sweeper.start()
    try:
        yield directory
    finally:
        stop.set()
        sweeper.join()
        os.environ.pop(MULTIPROCESS_DIR_VARIABLE, None)
        shutil.rmtree(directory, ignore_errors=True)
