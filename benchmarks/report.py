"""The results of a run: one row per figure for the table, the JSON summary on disk."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_OUTPUT = Path("bench/results/latest.json")


@dataclass(frozen=True)
class Row:
    """A figure beside its ceiling, measured in the same run."""

    figure: str
    measured: str
    ceiling: str
    ratio: float | None
    loadgen_cpu: str


@dataclass
class StageOutput:
    summary: dict[str, Any]
    rows: list[Row]
    notes: list[str]


def per_second(value: float) -> str:
    return f"{value:,.0f}/s"


def milliseconds(value: float) -> str:
    return f"{value:,.1f} ms" if value < 100 else f"{value:,.0f} ms"


def share(value: float) -> str:
    """A CPU share as a percentage of one core."""
    return f"{value * 100:.0f}%"


def format_table(rows: list[tuple[str, Row]]) -> str:
    header = ("stage", "figure", "measured", "ceiling (same run)", "ratio", "load gen CPU")
    cells = [
        (
            stage,
            row.figure,
            row.measured,
            row.ceiling,
            "-" if row.ratio is None else f"{row.ratio:.2f}",
            row.loadgen_cpu,
        )
        for stage, row in rows
    ]
    widths = [max(len(line[i]) for line in [header, *cells]) for i in range(len(header))]

    def line(values: tuple[str, ...]) -> str:
        return "  ".join(value.ljust(width) for value, width in zip(values, widths, strict=True))

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(header), rule, *(line(cell) for cell in cells)]).rstrip()


def markdown_table(rows: list[tuple[str, Row]]) -> str:
    lines = [
        "| Stage | Figure | Measured | Ceiling (same run) | Ratio | Load generator CPU |",
        "|---|---|---|---|---|---|",
    ]
    for stage, row in rows:
        ratio = "-" if row.ratio is None else f"{row.ratio:.2f}"
        lines.append(
            f"| {stage} | {row.figure} | {row.measured} | {row.ceiling} | {ratio} | "
            f"{row.loadgen_cpu} |"
        )
    return "\n".join(lines)


def write_json(path: Path, results: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n")
