"""`make bench` / `make bench-quick`: every stage against its ceiling, on a stack of
the benchmark's own.

    python -m benchmarks [--quick] [--output bench/results/latest.json]

Prints a table (each figure beside its ceiling measured in the same run, and the load
generator's CPU share) and writes the JSON summary. Exits non-zero only if a stage
could not run; timings never fail it.
"""

from __future__ import annotations

import argparse
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import machine
from benchmarks.bench_stack import BenchStack, expected_api_processes
from benchmarks.context import StageContext, StageNotApplicableError
from benchmarks.report import (
    DEFAULT_OUTPUT,
    Row,
    StageOutput,
    format_table,
    markdown_table,
    write_json,
)
from benchmarks.sizes import FULL, QUICK
from benchmarks.stages import freshness, ingest_batch, ingest_single, worker_drain

Stage = tuple[str, Callable[[StageContext], StageOutput]]
# freshness paces its load from ingest_single's throughput: it comes after it.
STAGES: tuple[Stage, ...] = (
    (ingest_single.NAME, ingest_single.run),
    (ingest_batch.NAME, ingest_batch.run),
    (worker_drain.NAME, worker_drain.run),
    (freshness.NAME, freshness.run),
)


def _live_figures(summaries: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The top-level figures of the running system, taken from the stages that hold them."""
    fresh = summaries.get(freshness.NAME, {})
    single = summaries.get(ingest_single.NAME, {})
    drain = summaries.get(worker_drain.NAME, {})
    return {
        "rss_mb": {
            "api_under_freshness_load": fresh.get("api_rss_mb"),
            "api_under_ingest_load": single.get("api_rss_mb"),
            "worker_under_freshness_load": fresh.get("worker_rss_mb"),
            "worker_peak_draining": drain.get("worker_peak_rss_mb"),
        },
        "commits_per_s": {
            "live": fresh.get("commits_per_s"),
            "draining": drain.get("commits_per_s"),
        },
    }


def run(quick: bool, output: Path) -> int:
    sizes = QUICK if quick else FULL
    started = time.monotonic()
    results: dict[str, Any] = {
        "sizes": sizes.name,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine.describe_machine(),
        "settings_from_environment": machine.settings_from_environment(),
        "api_processes_expected": expected_api_processes(),
    }
    statuses: dict[str, dict[str, Any]] = {}
    rows: list[tuple[str, Row]] = []
    failed: list[str] = []
    print(f"memtelemetry benchmark ({sizes.name}): starting ZooKeeper, Kafka and Redis")
    try:
        with BenchStack.started(sizes.partitions) as stack:
            context = StageContext(stack=stack, sizes=sizes)
            for name, stage in STAGES:
                print(f"== {name}", flush=True)
                stage_started = time.monotonic()
                status: dict[str, Any] = {}
                try:
                    output_of_stage = stage(context)
                except StageNotApplicableError as skipped:
                    print(f"   skipped: {skipped}")
                    status = {"status": "skipped", "reason": str(skipped)}
                except Exception as exc:
                    traceback.print_exc()
                    print(f"   ERROR: {name} could not run: {exc}")
                    failed.append(name)
                    status = {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
                else:
                    context.summaries[name] = output_of_stage.summary
                    rows += [(name, row) for row in output_of_stage.rows]
                    for note in output_of_stage.notes:
                        print(f"   {note}")
                    status = {"status": "ok", "notes": output_of_stage.notes}
                    status.update(output_of_stage.summary)
                status["stage_seconds"] = round(time.monotonic() - stage_started, 1)
                statuses[name] = status
    except Exception as exc:
        traceback.print_exc()
        print(f"ERROR: the benchmark's stack could not run: {exc}")
        failed.append("stack")
        results["stack_error"] = f"{type(exc).__name__}: {exc}"
    results.update(statuses)
    results.update(_live_figures(statuses))
    results["machine"]["load_average_at_end"] = machine.load_average()
    results["total_seconds"] = round(time.monotonic() - started, 1)
    results["failed_stages"] = failed
    write_json(output, results)
    # The same table in Markdown, for docs/benchmarks.md.
    output.with_suffix(".md").write_text(markdown_table(rows) + "\n")
    print()
    print(format_table(rows) if rows else "(no figures)")
    print()
    print(f"summary written to {output} and its table to {output.with_suffix('.md')}")
    print(f"({results['total_seconds']:.0f} s)")
    if failed:
        print(f"FAILED: {', '.join(failed)} could not run")
        return 1
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes, seconds per stage")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    raise SystemExit(run(args.quick, args.output))
