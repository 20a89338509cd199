"""Recording the fault scenarios' figures for the docs, when asked.

Every scenario prints its figures (a `[fault scenario] {...}` line) and writes them to
build/faults/NAME.json (ignored by git). With MEMTEL_FAULT_RESULTS set to a file
(docs/results/faults.json for the docs), the figures of each scenario whose test passed
in this run are also recorded there, stamped with the commit, date, machine and
command, for `make docs-figures` to render (benchmarks/render_docs.py). They are taken
from the test's own captured output, not from build/faults, which another run may be
writing at the same time; so do not pass `-s`. Without the variable, as in CI, nothing
in the tree changes.
"""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path
from typing import Any

import pytest

from benchmarks import machine
from benchmarks.render_docs import ROOT, record_faults

RECORD_VARIABLE = "MEMTEL_FAULT_RESULTS"
_FIGURES_LINE = "[fault scenario] "

# The load beside the run, as the benchmark records it: it says how shared the cores
# were.
_load_at_start: list[Any] = machine.load_average()
_passed: dict[str, dict[str, Any]] = {}


def pytest_sessionstart(session: pytest.Session) -> None:
    _load_at_start[:] = machine.load_average()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when != "call" or not report.passed or not os.environ.get(RECORD_VARIABLE):
        return
    for line in report.capstdout.splitlines():
        if line.startswith(_FIGURES_LINE):
            figures: dict[str, Any] = json.loads(line.removeprefix(_FIGURES_LINE))
            _passed[str(figures["scenario"])] = figures


def pytest_sessionfinish(session: pytest.Session) -> None:
    target = os.environ.get(RECORD_VARIABLE)
    if not target or not _passed:
        return
    arguments = shlex.join(session.config.invocation_params.args)
    command = f"{RECORD_VARIABLE}={target} python -m pytest {arguments}".rstrip()
    output = Path(target) if Path(target).is_absolute() else ROOT / target
    described = machine.describe_machine()
    described["load_average_at_start"] = list(_load_at_start)
    described["load_average_at_end"] = machine.load_average()
    record_faults(_passed, command, described, output)
