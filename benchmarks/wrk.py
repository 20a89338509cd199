"""wrk, the C load generator: its command line and what it prints."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from benchmarks.loadrun import run_load

SCRIPTS = Path(__file__).parent
SINGLE_POST_SCRIPT = SCRIPTS / "post.lua"
BATCH_POST_SCRIPT = SCRIPTS / "post_batch.lua"
PACED_POST_SCRIPT = SCRIPTS / "post_paced.lua"

_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
_LATENCY_LINE = re.compile(r"^\s*(50|75|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$", re.MULTILINE)
_RPS_LINE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_TOTAL_LINE = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m)", re.MULTILINE)
_NON_2XX_LINE = re.compile(r"^\s*Non-2xx or 3xx responses:\s+(\d+)", re.MULTILINE)
_SOCKET_ERRORS_LINE = re.compile(
    r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)"
)


class WrkOutputError(ValueError):
    """wrk's output lacks a figure it always prints."""


@dataclass(frozen=True)
class WrkReport:
    requests: int
    seconds: float
    rps: float
    latency_ms: dict[int, float]  # by percentile: 50, 75, 90, 99
    non_2xx: int
    socket_errors: int

    @property
    def ok_rps(self) -> float:
        """Answers with a 2xx (or 3xx) status per second."""
        return (self.requests - self.non_2xx) / self.seconds if self.seconds > 0 else 0.0


def parse_wrk_output(text: str) -> WrkReport:
    """The figures of `wrk --latency` output."""
    rps = _RPS_LINE.search(text)
    total = _TOTAL_LINE.search(text)
    if rps is None or total is None:
        raise WrkOutputError(f"no request count or rate in wrk's output:\n{text}")
    latency = {
        int(q): float(value) * _UNIT_MS[unit] for q, value, unit in _LATENCY_LINE.findall(text)
    }
    if 50 not in latency or 99 not in latency:
        raise WrkOutputError(f"no latency distribution in wrk's output (--latency):\n{text}")
    non_2xx = _NON_2XX_LINE.search(text)
    socket_errors = _SOCKET_ERRORS_LINE.search(text)
    return WrkReport(
        requests=int(total.group(1)),
        seconds=float(total.group(2)) * _UNIT_MS[total.group(3)] / 1000,
        rps=float(rps.group(1)),
        latency_ms=latency,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in socket_errors.groups()) if socket_errors else 0,
    )


@dataclass(frozen=True)
class WrkRun:
    report: WrkReport
    loadgen_cpu_share: float
    server_cpu_share: float
    server_rss_mb: dict[int, float]


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise RuntimeError("wrk is not installed: apt-get install -y wrk (make bench does)")
    return found


def run_wrk(
    url: str,
    *,
    script: Path,
    connections: int,
    seconds: float,
    server_pids: tuple[int, ...] = (),
    script_args: tuple[str, ...] = (),
) -> WrkRun:
    """One wrk run with one thread (one core at most) against `url`."""
    command = [
        wrk_binary(),
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout", "10s",
        "--latency",
        "-s", str(script),
        url,
    ]  # fmt: skip
    if script_args:
        command += ["--", *script_args]
    run = run_load(command, watch=server_pids, timeout_seconds=seconds + 60)
    return WrkRun(
        report=parse_wrk_output(run.stdout),
        loadgen_cpu_share=run.cpu_share,
        server_cpu_share=run.watched_cpu_share,
        server_rss_mb=run.watched_rss_mb,
    )
