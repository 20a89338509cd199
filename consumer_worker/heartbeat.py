"""A heartbeat file the worker touches while its loop runs, and its check.

A container healthcheck (or any supervisor) runs `python -m consumer_worker.healthcheck`
which fails when the file is missing or older than the allowed age.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

# Touching a file on every poll would be wasted I/O; a few seconds of precision is plenty.
_MIN_TOUCH_INTERVAL_SECONDS = 2.0


class Heartbeat:
    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._last_touch = 0.0

    def beat(self) -> None:
        if self._path is None:
            return
        now = time.monotonic()
        if now - self._last_touch < _MIN_TOUCH_INTERVAL_SECONDS:
            return
        self._path.touch()
        self._last_touch = now

    def clear(self) -> None:
        if self._path is not None:
            self._path.unlink(missing_ok=True)


def heartbeat_age_seconds(path: Path) -> float | None:
    """Seconds since the last beat, or None if there is no heartbeat file."""
    try:
        return time.time() - os.stat(path).st_mtime
    except FileNotFoundError:
        return None
