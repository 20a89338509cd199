"""`make bench` / `make bench-quick`: every stage against its ceiling, on a stack of
the benchmark's own (and, for the stages that need one, a second stack whose Redis is a
3-master Redis Cluster).

    python -m benchmarks [--quick] [--stages worker_drain,...] [--output bench/results/latest.json]

Prints a table (each figure beside its ceiling measured in the same run, and the load
generator's CPU share) and writes the JSON summary. Exits non-zero only if a stage
could not run; timings never fail it.
"""

from __future__ import annotations

import argparse
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
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
from benchmarks.sizes import FULL, QUICK, Sizes
from benchmarks.stages import (
    freshness,
    ingest_batch,
    ingest_single,
    worker_drain,
    worker_drain_cluster,
)


@dataclass(frozen=True)
class Stage:
    name: str
    run: Callable[[StageContext], StageOutput]
    # On the second stack, whose Redis is a Redis Cluster.
    redis_cluster: bool = False


# In this order, whatever order they are asked for in: freshness paces its load from
# ingest_single's throughput, and worker_drain_cluster compares itself with
# worker_drain, so each comes after the stage it reads. The stages on the cluster stack
# run once those on the standalone one are done and it is stopped.
STAGES: tuple[Stage, ...] = (
    Stage(ingest_single.NAME, ingest_single.run),
    Stage(ingest_batch.NAME, ingest_batch.run),
    Stage(worker_drain.NAME, worker_drain.run),
    Stage(freshness.NAME, freshness.run),
    Stage(worker_drain_cluster.NAME, worker_drain_cluster.run, redis_cluster=True),
)


def select_stages(names: str | None, stages: tuple[Stage, ...] = STAGES) -> tuple[Stage, ...]:
    """The stages named in `names` (comma-separated), in their running order; every
    stage when `names` is None. Raises ValueError naming any unknown or missing name."""
    if names is None:
        return stages
    wanted = [name.strip() for name in names.split(",") if name.strip()]
    if not wanted:
        raise ValueError("no stage named")
    known = {stage.name for stage in stages}
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise ValueError(
            f"unknown stage(s): {', '.join(unknown)}; the stages are "
            f"{', '.join(stage.name for stage in stages)}"
        )
    return tuple(stage for stage in stages if stage.name in wanted)


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


def _run_stages(
    stages: tuple[Stage, ...],
    context: StageContext,
    statuses: dict[str, dict[str, Any]],
    rows: list[tuple[str, Row]],
    failed: list[str],
) -> None:
    for stage in stages:
        print(f"== {stage.name}", flush=True)
        stage_started = time.monotonic()
        status: dict[str, Any] = {}
        try:
            output_of_stage = stage.run(context)
        except StageNotApplicableError as skipped:
            print(f"   skipped: {skipped}")
            status = {"status": "skipped", "reason": str(skipped)}
        except Exception as exc:
            traceback.print_exc()
            print(f"   ERROR: {stage.name} could not run: {exc}")
            failed.append(stage.name)
            status = {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
        else:
            context.summaries[stage.name] = output_of_stage.summary
            rows += [(stage.name, row) for row in output_of_stage.rows]
            for note in output_of_stage.notes:
                print(f"   {note}")
            status = {"status": "ok", "notes": output_of_stage.notes}
            status.update(output_of_stage.summary)
        status["load_average_after"] = machine.load_average()
        status["stage_seconds"] = round(time.monotonic() - stage_started, 1)
        statuses[stage.name] = status


def run(quick: bool, output: Path, stages: tuple[Stage, ...] = STAGES) -> int:
    sizes: Sizes = QUICK if quick else FULL
    started = time.monotonic()
    results: dict[str, Any] = {
        "sizes": sizes.name,
        "stages": [stage.name for stage in stages],
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine.describe_machine(),
        "settings_from_environment": machine.settings_from_environment(),
        "api_processes_expected": expected_api_processes(),
    }
    statuses: dict[str, dict[str, Any]] = {}
    rows: list[tuple[str, Row]] = []
    failed: list[str] = []
    summaries: dict[str, dict[str, Any]] = {}
    for redis_cluster in (False, True):
        on_this_stack = tuple(stage for stage in stages if stage.redis_cluster == redis_cluster)
        if not on_this_stack:
            continue
        redis = "a 3-master Redis Cluster" if redis_cluster else "Redis"
        print(f"memtelemetry benchmark ({sizes.name}): starting ZooKeeper, Kafka and {redis}")
        try:
            with BenchStack.started(sizes.partitions, redis_cluster=redis_cluster) as stack:
                context = StageContext(stack=stack, sizes=sizes, summaries=summaries)
                _run_stages(on_this_stack, context, statuses, rows, failed)
        except Exception as exc:
            traceback.print_exc()
            print(f"ERROR: the benchmark's stack with {redis} could not run: {exc}")
            which = "cluster_stack" if redis_cluster else "stack"
            failed.append(which)
            results[f"{which}_error"] = f"{type(exc).__name__}: {exc}"
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
    print(
        f"({results['total_seconds']:.0f} s; load average "
        f"{results['machine']['load_average_at_start']} at the start, "
        f"{results['machine']['load_average_at_end']} at the end)"
    )
    if failed:
        print(f"FAILED: {', '.join(failed)} could not run")
        return 1
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes, seconds per stage")
    parser.add_argument(
        "--stages",
        metavar="NAME[,NAME...]",
        help=(
            "run only these stages (in their usual order; default: all of "
            f"{', '.join(stage.name for stage in STAGES)})"
        ),
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    try:
        stages = select_stages(args.stages)
    except ValueError as exc:
        parser.error(str(exc))
    raise SystemExit(run(args.quick, args.output, stages))
