"""The agent's reading of this machine is what `free -k` prints, give or take what
changed between two runs of `free` around it."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from memtel_agent.meminfo import read_memory

COLUMNS = ("total", "used", "free", "shared", "buff_cache", "available")
ATTEMPTS = 10

pytestmark = pytest.mark.skipif(not shutil.which("free"), reason="needs procps' free")


def free_k() -> dict[str, int]:
    output = subprocess.run(
        ["free", "-k"], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    line = next(line for line in output.splitlines() if line.startswith("Mem:"))
    return dict(zip(COLUMNS, (int(v) for v in line.split()[1:]), strict=True))


def outside(before: dict[str, int], ours: dict[str, int], after: dict[str, int]) -> list[str]:
    """The columns of `ours` that are not between `before` and `after`."""
    return [
        f"{name}: free said {before[name]} then {after[name]}, the agent read {ours[name]}"
        for name in COLUMNS
        if not min(before[name], after[name]) <= ours[name] <= max(before[name], after[name])
    ]


def test_reading_matches_free_within_the_change_between_two_calls() -> None:
    # Memory moves all the time on a busy machine, and it can move one way and back
    # between the two calls, leaving the agent's value outside the range for a reason
    # that is not the agent's. So a few attempts are allowed; a wrong definition (say
    # used = total - free - buff/cache) is off by far more than any such move, in every
    # attempt.
    problems: list[str] = []
    for _ in range(ATTEMPTS):
        before = free_k()
        ours = read_memory().model_dump()
        after = free_k()
        problems = outside(before, ours, after)
        if not problems:
            break
    assert not problems, problems
