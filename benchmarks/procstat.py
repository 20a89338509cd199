"""What the kernel says about a process: CPU time, resident memory, its children.

Read from /proc (Linux): `stat` for user+system CPU time, `status` for VmRSS and VmHWM
(the peak resident set), `task/*/children` for the process tree.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PROC = Path("/proc")
# multiprocessing's helper process sits beside uvicorn's workers and serves nothing.
_NOT_SERVING_MARKERS = ("multiprocessing.resource_tracker",)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    stat = (_PROC / str(pid) / "stat").read_text()
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / _CLOCK_TICKS


def _status_kib(pid: int, field: str) -> int:
    for line in (_PROC / str(pid) / "status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise ValueError(f"/proc/{pid}/status has no {field}")


def rss_mb(pid: int) -> float:
    """Resident memory now (VmRSS), in MiB."""
    return _status_kib(pid, "VmRSS") / 1024


def peak_rss_mb(pid: int) -> float:
    """Peak resident memory since the process started (VmHWM), in MiB."""
    return _status_kib(pid, "VmHWM") / 1024


def command_line(pid: int) -> str:
    """The process's command line ("" once it ended)."""
    try:
        raw = (_PROC / str(pid) / "cmdline").read_bytes()
    except FileNotFoundError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = list((_PROC / str(pid) / "task").iterdir())
    except FileNotFoundError:  # the process ended
        return []
    for task in tasks:
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except FileNotFoundError:  # the thread ended meanwhile
            continue
    return found


def descendants(pid: int) -> list[int]:
    found: list[int] = []
    for child in children(pid):
        found += [child, *descendants(child)]
    return found


@dataclass(frozen=True)
class ServerProcesses:
    """The processes of one server: the one started, and those that serve requests
    (the same one, unless it supervises workers)."""

    root: int
    serving: tuple[int, ...]

    @property
    def all(self) -> tuple[int, ...]:
        return (self.root, *(pid for pid in self.serving if pid != self.root))


def server_processes(root: int) -> ServerProcesses:
    """A server's processes: its descendants that serve, or itself if it has none."""
    workers = [
        pid
        for pid in descendants(root)
        if (line := command_line(pid))
        and not any(marker in line for marker in _NOT_SERVING_MARKERS)
    ]
    return ServerProcesses(root=root, serving=tuple(workers) if workers else (root,))


class CpuMeter:
    """CPU time used by a set of processes between `start()` and `share()`."""

    def __init__(self, pids: tuple[int, ...]) -> None:
        self._pids = pids
        self._start_cpu: dict[int, float] = {}
        self._start_wall = 0.0

    def start(self) -> None:
        self._start_cpu = {pid: cpu_seconds(pid) for pid in self._pids}
        self._start_wall = time.monotonic()

    def share(self) -> float:
        """CPU seconds per wall second since start (1.0 is one core fully busy)."""
        wall = time.monotonic() - self._start_wall
        return self.seconds() / wall if wall > 0 else 0.0

    def seconds_by_pid(self) -> dict[int, float]:
        """CPU seconds each process used since start."""
        return {pid: cpu_seconds(pid) - self._start_cpu[pid] for pid in self._pids}

    def seconds(self) -> float:
        """CPU seconds the processes used since start, all of them together."""
        return sum(self.seconds_by_pid().values())
