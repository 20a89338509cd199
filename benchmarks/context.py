"""What every stage is handed: the stack, the sizes, and what earlier stages found."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.bench_stack import BenchStack
from benchmarks.sizes import Sizes


@dataclass
class StageContext:
    stack: BenchStack
    sizes: Sizes
    # The summaries of the stages that ran, by stage name.
    summaries: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def scratch(self) -> Path:
        folder = self.stack.work_dir / "scratch"
        folder.mkdir(exist_ok=True)
        return folder


class StageNotApplicableError(Exception):
    """The stage cannot run against this version of the code (not an error)."""
