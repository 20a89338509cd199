"""redis-benchmark (Debian's redis-tools): the ceiling of writing to the same Redis."""

from __future__ import annotations

import re
import shutil

from benchmarks.kafka_tools import ToolOutputError, ToolRun
from benchmarks.loadrun import run_load

_SET_RATE = re.compile(r"SET: ([\d.]+) requests per second")


def parse_redis_benchmark(text: str) -> float:
    """Requests per second of SET from `redis-benchmark -q` (its progress lines end in
    carriage returns; the last figure is the result)."""
    found = _SET_RATE.findall(text)
    if not found:
        raise ToolOutputError(f"no SET rate in redis-benchmark's output:\n{text}")
    return float(found[-1])


def pipelined_set(port: int, password: str | None, requests: int, pipeline: int = 16) -> ToolRun:
    binary = shutil.which("redis-benchmark")
    if binary is None:
        raise RuntimeError("redis-benchmark is missing: apt-get install -y redis-tools")
    command = [
        binary,
        "-h", "127.0.0.1",
        "-p", str(port),
        "-t", "set",
        "-P", str(pipeline),
        "-n", str(requests),
        "-q",
    ]  # fmt: skip
    if password:
        command += ["-a", password]
    run = run_load(command, timeout_seconds=300)
    summary = run.stdout.replace("\r", "\n").strip().splitlines()[-1]
    return ToolRun(parse_redis_benchmark(run.stdout), run.cpu_share, summary)
