"""The benchmark's view of processes through /proc, checked on processes it can see."""

from __future__ import annotations

import os
import subprocess
import sys

from benchmarks import procstat
from benchmarks.loadrun import run_load


def test_this_process_has_cpu_time_and_memory() -> None:
    pid = os.getpid()
    assert procstat.cpu_seconds(pid) > 0
    assert procstat.peak_rss_mb(pid) >= procstat.rss_mb(pid) > 1


def test_a_process_without_children_serves_itself() -> None:
    pid = os.getpid()
    with subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    ) as child:
        servers = procstat.server_processes(child.pid)
        assert servers.serving == (child.pid,)
        assert child.pid in procstat.descendants(pid)
        assert child.stdin is not None
        child.stdin.close()


def test_a_load_run_reports_its_output_and_cpu_time() -> None:
    run = run_load([sys.executable, "-c", "print(sum(range(3_000_000)))"])
    assert run.stdout.strip() == str(sum(range(3_000_000)))
    assert run.cpu_seconds > 0
    assert 0 < run.cpu_share <= 1.5
