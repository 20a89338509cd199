"""Run a load generator (or a measuring tool) as a process of its own and account for it.

The CPU time it used comes from the kernel when it is reaped (`os.wait4`): divided by
the wall time, it shows whether the generator itself was near a core's limit, and so
whether a figure measures the server or the client. While it runs, the resident memory
of the processes under load is sampled, keeping each one's largest value.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field

from benchmarks import procstat

_SAMPLE_INTERVAL_SECONDS = 0.5
# How soon the end of the tool is noticed (it ends the wall time its CPU share is over).
_CHECK_INTERVAL_SECONDS = 0.02


class LoadRunError(RuntimeError):
    """The tool exited with an error (its output is in the message)."""


@dataclass
class LoadRun:
    command: list[str]
    stdout: str
    wall_seconds: float
    cpu_seconds: float
    # The largest VmRSS seen of each watched process, in MiB.
    watched_rss_mb: dict[int, float] = field(default_factory=dict)
    # CPU seconds per wall second of the watched processes, added up.
    watched_cpu_share: float = 0.0

    @property
    def cpu_share(self) -> float:
        """The tool's CPU seconds per wall second (1.0 is one core fully busy)."""
        return self.cpu_seconds / self.wall_seconds if self.wall_seconds > 0 else 0.0


def run_load(
    command: list[str],
    *,
    watch: tuple[int, ...] = (),
    timeout_seconds: float = 600.0,
    env: dict[str, str] | None = None,
) -> LoadRun:
    """Run `command` to its end; raise LoadRunError if it fails or outlasts the timeout."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        cpu_meter = procstat.CpuMeter(watch)
        cpu_meter.start()
        started = time.monotonic()
        process = subprocess.Popen(
            command, stdout=out, stderr=err, env={**os.environ, **(env or {})}
        )
        peaks: dict[int, float] = {}
        next_sample = started
        pause = threading.Event()  # never set: wait() is the pause between checks
        try:
            while True:
                # wait4 reaps the process and hands back its resource usage; Popen.wait()
                # would reap it without.
                pid, status, usage = os.wait4(process.pid, os.WNOHANG)
                if pid == process.pid:
                    break
                now = time.monotonic()
                if now >= next_sample:
                    next_sample = now + _SAMPLE_INTERVAL_SECONDS
                    for watched in watch:
                        peaks[watched] = max(peaks.get(watched, 0.0), _rss_or_zero(watched))
                if now - started > timeout_seconds:
                    raise LoadRunError(
                        f"{command[0]} ran over {timeout_seconds:.0f}s and was killed"
                    )
                pause.wait(_CHECK_INTERVAL_SECONDS)
        except BaseException:
            process.kill()
            os.wait4(process.pid, 0)
            raise
        wall = time.monotonic() - started
        watched_share = cpu_meter.share() if watch else 0.0
        returncode = os.waitstatus_to_exitcode(status)
        process.returncode = returncode  # reaped above: Popen must not wait for it
        out.seek(0)
        err.seek(0)
        stdout = out.read()
        if returncode != 0:
            raise LoadRunError(
                f"{' '.join(command[:3])} ... exited with {returncode}:\n"
                f"{_tail(err.read() or stdout)}"
            )
    return LoadRun(
        command=command,
        stdout=stdout,
        wall_seconds=wall,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        watched_rss_mb=peaks,
        watched_cpu_share=watched_share,
    )


def _rss_or_zero(pid: int) -> float:
    try:
        return procstat.rss_mb(pid)
    except (FileNotFoundError, ProcessLookupError):
        return 0.0


def _tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])
