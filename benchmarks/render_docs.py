"""The figure tables of the docs, rendered from committed result files.

    python -m benchmarks.render_docs                  # re-render every table (make docs-figures)
    python -m benchmarks.render_docs --check          # exit 1 if a doc differs from its results
    python -m benchmarks.render_docs record-bench bench/results/latest.json --command "make bench"

A table lives in a doc between `<!-- figures:NAME -->` and `<!-- /figures:NAME -->`;
everything between the two markers is this module's output, so it is never edited by
hand. The results are under docs/results/ (committed, unlike bench/results/ and
build/), each with a stamp: the commit, date, machine and command that measured it.
`make bench` records its run; the fault tier records its scenarios when
MEMTEL_FAULT_RESULTS names the file (tests/faults/conftest.py), so that ordinary test
runs leave the tree alone.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "docs" / "results"
BENCH_RESULTS = RESULTS_DIR / "bench.json"
FAULT_RESULTS = RESULTS_DIR / "faults.json"

_TABLE_HEADER = re.compile(r"^\|(.+)\|\s*$")


@dataclass(frozen=True)
class FigureSet:
    """One table: where it is shown, what it is rendered from, and how."""

    name: str
    doc: Path
    results: Path
    render: Callable[[dict[str, Any]], str]


# --- stamps --------------------------------------------------------------------------


def current_commit() -> str:
    """The commit checked out (abbreviated), or "unknown" outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out.stdout.strip()


def machine_line(machine: dict[str, Any]) -> str:
    """The machine as one phrase: cores, CPU, memory, and the load average around the run."""
    parts = [f"{machine.get('cores', '?')} cores ({machine.get('cpu_model', '?')})"]
    if "memory_gib" in machine:
        parts.append(f"{machine['memory_gib']} GiB")
    if "kernel" in machine:
        parts.append(f"Linux {str(machine['kernel']).split('-')[0]}")
    start, end = machine.get("load_average_at_start"), machine.get("load_average_at_end")
    if start and end:
        parts.append(f"load average {start[0]} at the start, {end[0]} at the end")
    return ", ".join(parts)


def stamp(command: str, machine: dict[str, Any], date: str | None = None) -> dict[str, str]:
    return {
        "commit": current_commit(),
        "date": date or datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_line(machine),
        "command": command,
    }


def stamp_line(stamps: list[dict[str, str]]) -> str:
    """The provenance of a table, one line per distinct stamp."""
    lines = []
    for s in _distinct(stamps):
        line = (
            f"Measured by `{s['command']}` at commit {s['commit']} on {s['date']}, "
            f"on {s['machine']}."
        )
        if s.get("note"):
            line += f" {s['note']}"
        lines.append(line)
    return "\n".join(lines)


def _distinct(stamps: list[dict[str, str]]) -> list[dict[str, str]]:
    seen: list[dict[str, str]] = []
    for s in stamps:
        if s not in seen:
            seen.append(s)
    return seen


# --- the benchmark's stage table -----------------------------------------------------

BENCH_COLUMNS = ("stage", "figure", "measured", "ceiling", "ratio", "loadgen_cpu")


def rows_of_markdown_table(text: str) -> list[dict[str, str]]:
    """The rows of the Markdown table the benchmark writes beside its JSON summary."""
    rows = []
    lines = [line for line in text.splitlines() if _TABLE_HEADER.match(line)]
    for line in lines[2:]:  # the header and its rule
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != len(BENCH_COLUMNS):
            raise ValueError(f"a row of {len(cells)} cells, not {len(BENCH_COLUMNS)}: {line}")
        rows.append(dict(zip(BENCH_COLUMNS, cells, strict=True)))
    return rows


def render_bench_stages(results: dict[str, Any]) -> str:
    lines = [
        stamp_line([results["stamp"]]),
        "",
        "| Stage | Figure | Measured | Ceiling (same run) | Ratio | Load generator CPU |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        "| " + " | ".join(row[column] for column in BENCH_COLUMNS) + " |" for row in results["rows"]
    ]
    return "\n".join(lines)


def record_bench(summary_path: Path, command: str, output: Path = BENCH_RESULTS) -> None:
    """Keep a benchmark run (its JSON summary and the rows of its table) for the docs."""
    summary = json.loads(summary_path.read_text())
    rows = rows_of_markdown_table(summary_path.with_suffix(".md").read_text())
    recorded = {
        "stamp": stamp(command, summary.get("machine", {}), summary.get("started_at")),
        "rows": rows,
        "summary": summary,
    }
    _write(output, recorded)


# --- the fault scenarios' table ------------------------------------------------------

# The scenarios in the order the docs number them, with what each does.
FAULT_SCENARIOS: dict[str, str] = {
    "worker_sigkill_x3": "Worker SIGKILLed 3 times, restarted each time",
    "redis_faults": (
        "Redis SIGKILLed and restarted; SIGSTOPped 10 s; replaced by an empty instance"
    ),
    "broker_sigkill_15s": "The broker SIGKILLed for 15 s",
    "cluster_leader_sigkill": (
        "Leader of partition 0 SIGKILLed in a 3-broker cluster (RF 3, min ISR 2)"
    ),
    "poison_records": "Poison records produced twice during the stream",
}


# The Redis Cluster scenarios (tests/faults/test_redis_cluster_faults.py): a table of
# their own, in reliability.md's Redis Cluster section, with what GET answered and what
# the worker replayed.
REDIS_CLUSTER_FAULT_SCENARIOS: dict[str, str] = {
    "redis_cluster_master_sigkill": (
        "A master SIGKILLed mid-stream, twice: its replica in sync, then behind "
        "(replication cut just before)"
    ),
    "redis_cluster_shard_lost": (
        "A master and its replica SIGKILLed, started again empty, their slots given back"
    ),
    "redis_cluster_reads_during_failover": (
        "A master SIGKILLed while every client GETs its machine after each POST"
    ),
}


# The scenarios on the production-shaped topology (tests/faults/test_topology_faults.py):
# a table of their own, in reliability.md's section on that topology, with what each
# scenario measured beside the figures every scenario has.
TOPOLOGY_FAULT_SCENARIOS: dict[str, str] = {
    "topology_leader_sigkill": "The leader of the busiest partitions SIGKILLed mid-stream",
    "topology_two_brokers_sigkill_15s": (
        "Two of the three brokers SIGKILLed for 15 s (the active controller among them)"
    ),
    "topology_broker_sigstop_20s": "A broker frozen (SIGSTOP) for 20 s, then resumed",
    "topology_api_sigkill": (
        "An API SIGKILLed behind HAProxy mid-stream, started again by the supervisor"
    ),
    "topology_worker_sigkill_sigterm": (
        "A worker SIGKILLed, then another SIGTERMed (a rolling restart), each started "
        "again by the supervisor under its instance id"
    ),
    "topology_redis_master_sigkill": "A Redis Cluster master SIGKILLed mid-stream",
}


def _seconds(value: float) -> str:
    return f"{value:g} s"


def _recovery(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ", ".join(_seconds(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k} {_seconds(v)}" for k, v in value.items())
    return _seconds(float(value))


def _fault_row(number: int, name: str, figures: dict[str, Any]) -> str:
    others = figures.get("other_statuses") or {}
    errors = figures.get("transport_errors") or {}
    other = ", ".join(
        [f"{code}: {n}" for code, n in others.items()]
        + [f"no answer ({error}): {n}" for error, n in errors.items()]
    )
    cells = [
        f"{number}. {FAULT_SCENARIOS.get(name, name)}",
        f"{figures['sent']:,}",
        f"{figures['acknowledged']:,}",
        f"{figures['status_503']:,}",
        other or "none",
        f"{figures['answers_over_bound']} (slowest {figures['slowest_answer_seconds']:.3f} s)",
        f"**{figures['lost']}**",
        _recovery(figures.get("recovery_seconds")),
    ]
    return "| " + " | ".join(cells) + " |"


def render_fault_scenarios(results: dict[str, Any]) -> str:
    scenarios: dict[str, dict[str, Any]] = {
        name: scenario
        for name, scenario in results["scenarios"].items()
        if name not in REDIS_CLUSTER_FAULT_SCENARIOS and name not in TOPOLOGY_FAULT_SCENARIOS
    }
    known = [name for name in FAULT_SCENARIOS if name in scenarios]
    order = known + sorted(name for name in scenarios if name not in FAULT_SCENARIOS)
    lines = [
        stamp_line([scenarios[name]["stamp"] for name in order]),
        "",
        "| Scenario | Sent | Acknowledged | 503 | Other answers | Answers over the bound "
        "(slowest answer) | Lost | Time to recover |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        _fault_row(number, name, scenarios[name]["figures"])
        for number, name in enumerate(order, start=1)
    ]
    return "\n".join(lines)


def _gets(figures: dict[str, Any]) -> str:
    reads = figures.get("reads")
    if not reads:
        return "-"
    statuses = reads["statuses"]
    answers = ", ".join(f"{code}: {n:,}" for code, n in statuses.items())
    errors = "".join(f", no answer ({e}): {n}" for e, n in reads["transport_errors"].items())
    return (
        f"{answers}{errors}; {reads['answers_over_bound']} over {reads['bound_seconds']:g} s "
        f"(slowest {reads['slowest_answer_seconds']:.3f} s); "
        f"{reads['older_than_served_before']} older than served before"
    )


def _behind_and_replays(figures: dict[str, Any]) -> str:
    def one(kill: dict[str, Any]) -> str:
        behind = kill["replica_behind_master"]
        lacked = (
            f"replica lacked {_count(sum(behind.values()), 'offset')} of "
            f"{_count(len(behind), 'partition')}"
            if behind
            else "replica had every write"
        )
        return f"{lacked}, {_count(int(kill['view_replays']), 'replay')}"

    if "kills" in figures:
        return "; ".join(
            f"{name.replace('_', ' ')}: {one(kill)}" for name, kill in figures["kills"].items()
        )
    if "replica_behind_master" in figures:
        return one(figures)
    replays = figures.get("replays_logged") or []
    from_start = sum(1 for _, found, _ in replays if found is None)
    return f"{_count(len(replays), 'partition')} replayed, {from_start} from the beginning"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _cluster_recovery(figures: dict[str, Any]) -> str:
    recovery = figures.get("recovery_seconds")
    if isinstance(recovery, dict):
        recovery = {name.replace("_", " "): seconds for name, seconds in recovery.items()}
    text = _recovery(recovery)
    if "rebuild_seconds" in figures:
        text += (
            f" (slots served again after {_seconds(figures['slots_served_again_seconds'])}, "
            f"rebuilt {_seconds(figures['rebuild_seconds'])} later)"
        )
    return text


def render_redis_cluster_fault_scenarios(results: dict[str, Any]) -> str:
    scenarios: dict[str, dict[str, Any]] = results["scenarios"]
    order = [name for name in REDIS_CLUSTER_FAULT_SCENARIOS if name in scenarios]
    if not order:
        return "No run recorded yet."
    lines = [
        stamp_line([scenarios[name]["stamp"] for name in order]),
        "",
        "| Scenario | Sent | Acknowledged | 503 | POSTs over the bound (slowest answer) "
        "| GET answers | Lost | Replica behind, replays | Time to recover |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for number, name in enumerate(order, start=1):
        figures = scenarios[name]["figures"]
        cells = [
            f"{number}. {REDIS_CLUSTER_FAULT_SCENARIOS[name]}",
            f"{figures['sent']:,}",
            f"{figures['acknowledged']:,}",
            f"{figures['status_503']:,}",
            f"{figures['answers_over_bound']} (slowest {figures['slowest_answer_seconds']:.3f} s)",
            _gets(figures),
            f"**{figures['lost']}**",
            _behind_and_replays(figures),
            _cluster_recovery(figures),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _topology_notes(figures: dict[str, Any]) -> str:
    """What a topology scenario measured besides the common figures."""
    notes = []
    if "leaders_moved_seconds" in figures:
        notes.append(
            f"node {figures['killed_node']} led partitions "
            f"{', '.join(map(str, figures['partitions_it_led']))}; new leaders after "
            f"{_seconds(figures['leaders_moved_seconds'])}"
        )
    if "answered_while_one_broker_ran" in figures:
        during = figures["answered_while_one_broker_ran"]
        notes.append(
            f"POSTs sent and answered while one broker ran: {during.get('200', 0)} answered "
            f"200, {during.get('503', 0)} answered 503; brokers live again "
            f"{_seconds(figures['brokers_live_again_seconds'])} after their restart"
        )
    if "was_active_controller" in figures:
        role = "the active controller" if figures["was_active_controller"] else "not the controller"
        notes.append(
            f"node {figures['frozen_node']} frozen ({role}) for "
            f"{_seconds(figures.get('frozen_seconds', 20))}"
        )
    if "dead_api_connection_errors" in figures:
        notes.append(
            f"HAProxy: {figures['dead_api_connection_errors']} connections to the dead API "
            f"failed and {figures['dead_api_redispatched']} requests went to the other API "
            f"before it was marked down (checks every "
            f"{_seconds(figures['check_interval_seconds'])})"
        )
    if "assignment_before" in figures:
        same = (
            figures["assignment_before"]
            == figures["assignment_after_sigkill"]
            == figures["assignment_after_sigterm"]
        )
        notes.append(
            "each worker got its own partitions back"
            if same
            else "partitions moved between the workers"
        )
    if "slots_served_again_seconds" in figures:
        notes.append(
            f"{figures['killed']}'s replica served its slots after "
            f"{_seconds(figures['slots_served_again_seconds'])}"
        )
    retried = figures.get("retried_after_connection_error")
    if retried:
        notes.append(f"{retried} POSTs sent again after a connection error")
    return "; ".join(notes) or "-"


def render_topology_fault_scenarios(results: dict[str, Any]) -> str:
    scenarios: dict[str, dict[str, Any]] = results["scenarios"]
    order = [name for name in TOPOLOGY_FAULT_SCENARIOS if name in scenarios]
    if not order:
        return "No run recorded yet."
    lines = [
        stamp_line([scenarios[name]["stamp"] for name in order]),
        "",
        "| Scenario | Sent | Acknowledged | 503 | Answers over the bound (slowest answer) "
        "| Lost | Time to recover | Measured besides |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for number, name in enumerate(order, start=1):
        figures = scenarios[name]["figures"]
        recovery = figures.get("recovery_seconds")
        recovered = (
            ", ".join(
                f"{key.replace('_', ' ')} {'-' if seconds is None else _seconds(seconds)}"
                for key, seconds in recovery.items()
            )
            if isinstance(recovery, dict)
            else _recovery(recovery)
        )
        cells = [
            f"{number}. {TOPOLOGY_FAULT_SCENARIOS[name]}",
            f"{figures['sent']:,}",
            f"{figures['acknowledged']:,}",
            f"{figures['status_503']:,}",
            f"{figures['answers_over_bound']} (slowest {figures['slowest_answer_seconds']:.3f} s)",
            f"**{figures['lost']}**",
            recovered,
            _topology_notes(figures),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def record_faults(
    figures_by_scenario: dict[str, dict[str, Any]],
    command: str,
    machine: dict[str, Any],
    output: Path = FAULT_RESULTS,
) -> None:
    """Keep the figures of the scenarios that ran; the others keep their last run's."""
    recorded: dict[str, Any] = (
        json.loads(output.read_text()) if output.exists() else {"scenarios": {}}
    )
    run_stamp = stamp(command, machine)
    for name, figures in figures_by_scenario.items():
        recorded["scenarios"][name] = {"stamp": run_stamp, "figures": figures}
    _write(output, recorded)


def _write(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


# --- the docs ------------------------------------------------------------------------

FIGURE_SETS: tuple[FigureSet, ...] = (
    FigureSet("bench-stages", ROOT / "docs" / "benchmarks.md", BENCH_RESULTS, render_bench_stages),
    FigureSet(
        "fault-scenarios", ROOT / "docs" / "reliability.md", FAULT_RESULTS, render_fault_scenarios
    ),
    FigureSet(
        "redis-cluster-fault-scenarios",
        ROOT / "docs" / "reliability.md",
        FAULT_RESULTS,
        render_redis_cluster_fault_scenarios,
    ),
    FigureSet(
        "topology-fault-scenarios",
        ROOT / "docs" / "reliability.md",
        FAULT_RESULTS,
        render_topology_fault_scenarios,
    ),
)


def region(name: str) -> re.Pattern[str]:
    """The text between a table's two markers (the markers on lines of their own)."""
    return re.compile(
        rf"(<!-- figures:{re.escape(name)} -->\n)(.*?)(<!-- /figures:{re.escape(name)} -->)",
        re.DOTALL,
    )


def rendered(figure_set: FigureSet) -> str:
    return figure_set.render(json.loads(figure_set.results.read_text())) + "\n"


def shown(figure_set: FigureSet, text: str) -> str | None:
    """What the doc shows between the set's markers (None: no markers)."""
    found = region(figure_set.name).search(text)
    return found.group(2) if found else None


def problems(figure_sets: tuple[FigureSet, ...] = FIGURE_SETS) -> list[str]:
    """Every table whose doc differs from what its results render."""
    found = []
    for figure_set in figure_sets:
        if not figure_set.results.exists():
            found.append(f"{figure_set.name}: no results at {figure_set.results}")
            continue
        text = figure_set.doc.read_text()
        current = shown(figure_set, text)
        if current is None:
            found.append(f"{figure_set.name}: no markers in {figure_set.doc}")
        elif current != rendered(figure_set):
            found.append(
                f"{figure_set.name}: {_shown_path(figure_set.doc)} differs from "
                f"{_shown_path(figure_set.results)}; run `make docs-figures`"
            )
    return found


def _shown_path(path: Path) -> Path:
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def render_all(figure_sets: tuple[FigureSet, ...] = FIGURE_SETS) -> list[Path]:
    """Re-render every table that has results; return the docs changed."""
    changed = []
    for figure_set in figure_sets:
        if not figure_set.results.exists():
            print(f"{figure_set.name}: no results at {figure_set.results}, left as it is")
            continue
        text = figure_set.doc.read_text()
        found = region(figure_set.name).search(text)
        if found is None:
            raise SystemExit(f"{figure_set.doc}: no <!-- figures:{figure_set.name} --> markers")
        new = text[: found.start(2)] + rendered(figure_set) + text[found.end(2) :]
        if new != text:
            figure_set.doc.write_text(new)
            changed.append(figure_set.doc)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 on a change")
    commands = parser.add_subparsers(dest="action")
    bench = commands.add_parser("record-bench", help="keep a benchmark run for the docs")
    bench.add_argument("summary", type=Path, help="the run's JSON summary (its .md beside it)")
    bench.add_argument("--command", default="make bench")
    args = parser.parse_args(argv)
    if args.action == "record-bench":
        record_bench(args.summary, args.command)
        print(f"recorded {args.summary} in {_shown_path(BENCH_RESULTS)}")
        return 0
    if args.check:
        found = problems()
        for problem in found:
            print(problem, file=sys.stderr)
        return 1 if found else 0
    for doc in render_all():
        print(f"rendered {_shown_path(doc)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
