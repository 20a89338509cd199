"""The figure tables of the docs are what benchmarks/render_docs.py renders from the
committed results: never edited by hand, never out of step with their measurements."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks import render_docs
from benchmarks.render_docs import FigureSet

STAMP = {
    "commit": "0123456789ab",
    "date": "2026-12-06T05:00:00+00:00",
    "machine": "2 cores (AMD EPYC), 23.5 GiB",
    "command": "make bench",
}

TABLE = """| Stage | Figure | Measured | Ceiling (same run) | Ratio | Load generator CPU |
|---|---|---|---|---|---|
| worker_drain | worker drains 10,000 records | 75,598/s records | 70,922/s perf | 1.07 | perf 87% |
"""


def test_every_figure_table_in_the_docs_is_rendered_from_its_results() -> None:
    assert render_docs.problems() == []


def test_the_benchmark_s_table_is_rendered_from_the_rows_it_wrote() -> None:
    rows = render_docs.rows_of_markdown_table(TABLE)
    assert rows == [
        {
            "stage": "worker_drain",
            "figure": "worker drains 10,000 records",
            "measured": "75,598/s records",
            "ceiling": "70,922/s perf",
            "ratio": "1.07",
            "loadgen_cpu": "perf 87%",
        }
    ]
    rendered = render_docs.render_bench_stages({"stamp": STAMP, "rows": rows})
    stamp_line, blank, *table = rendered.splitlines()
    assert stamp_line == (
        "Measured by `make bench` at commit 0123456789ab on 2026-12-06T05:00:00+00:00, "
        "on 2 cores (AMD EPYC), 23.5 GiB."
    )
    assert blank == ""
    assert "\n".join(table) + "\n" == TABLE


def fault_figures(**changes: Any) -> dict[str, Any]:
    figures: dict[str, Any] = {
        "scenario": "broker_sigkill_15s",
        "sent": 12000,
        "acknowledged": 11576,
        "status_503": 424,
        "other_statuses": {},
        "transport_errors": {},
        "answers_over_bound": 0,
        "slowest_answer_seconds": 5.912,
        "lost": 0,
        "recovery_seconds": 5.44,
    }
    return {**figures, **changes}


def test_each_fault_scenario_is_a_row_in_the_docs_order() -> None:
    results = {
        "scenarios": {
            "broker_sigkill_15s": {"stamp": STAMP, "figures": fault_figures()},
            "worker_sigkill_x3": {
                "stamp": STAMP,
                "figures": fault_figures(
                    scenario="worker_sigkill_x3",
                    status_503=0,
                    transport_errors={"ReadTimeout": 1},
                    recovery_seconds=[0.62, 0.55],
                ),
            },
        }
    }
    lines = render_docs.render_fault_scenarios(results).splitlines()
    assert lines[0].startswith("Measured by `make bench` at commit 0123456789ab")
    assert len([line for line in lines if line.startswith("Measured")]) == 1  # one stamp
    first, second = lines[-2:]
    assert first.startswith("| 1. Worker SIGKILLed 3 times")
    assert "| no answer (ReadTimeout): 1 |" in first
    assert first.endswith("| **0** | 0.62 s, 0.55 s |")
    assert second.startswith("| 2. The broker SIGKILLed for 15 s | 12,000 | 11,576 | 424 | none |")
    assert "| 0 (slowest 5.912 s) |" in second


def test_the_redis_cluster_scenarios_have_a_table_of_their_own() -> None:
    cluster = fault_figures(
        scenario="redis_cluster_shard_lost",
        status_503=0,
        recovery_seconds=3.25,
        slots_served_again_seconds=2.17,
        rebuild_seconds=1.08,
        replays_logged=[[0, None, 630], [3, None, 600]],
    )
    reads = fault_figures(
        scenario="redis_cluster_reads_during_failover",
        reads={
            "statuses": {"200": 4823, "503": 177},
            "transport_errors": {},
            "answers_over_bound": 0,
            "bound_seconds": 3.5,
            "slowest_answer_seconds": 2.013,
            "older_than_served_before": 0,
        },
        replica_behind_master={"0": 5},
        view_replays=1.0,
    )
    results = {
        "scenarios": {
            "broker_sigkill_15s": {"stamp": STAMP, "figures": fault_figures()},
            "redis_cluster_reads_during_failover": {"stamp": STAMP, "figures": reads},
            "redis_cluster_shard_lost": {"stamp": STAMP, "figures": cluster},
        }
    }
    assert "redis_cluster" not in render_docs.render_fault_scenarios(results)
    assert "SIGKILLed, started again empty" not in render_docs.render_fault_scenarios(results)
    first, second = render_docs.render_redis_cluster_fault_scenarios(results).splitlines()[-2:]
    assert first.startswith("| 1. A master and its replica SIGKILLed")
    assert first.endswith(
        "| 2 partitions replayed, 2 from the beginning "
        "| 3.25 s (slots served again after 2.17 s, rebuilt 1.08 s later) |"
    )
    assert "| 200: 4,823, 503: 177; 0 over 3.5 s (slowest 2.013 s); 0 older" in second
    assert "| replica lacked 5 offsets of 1 partition, 1 replay |" in second


def test_rendering_replaces_only_the_text_between_the_markers(tmp_path: Path) -> None:
    doc, results = tmp_path / "doc.md", tmp_path / "bench.json"
    rows = render_docs.rows_of_markdown_table(TABLE)
    results.write_text(json.dumps({"stamp": STAMP, "rows": rows}))
    doc.write_text(
        "before\n<!-- figures:bench-stages -->\nstale\n<!-- /figures:bench-stages -->\nafter\n"
    )
    figure_set = FigureSet("bench-stages", doc, results, render_docs.render_bench_stages)
    assert render_docs.problems((figure_set,)) != []
    assert render_docs.render_all((figure_set,)) == [doc]
    text = doc.read_text()
    assert text.startswith("before\n<!-- figures:bench-stages -->\nMeasured by")
    assert text.endswith(TABLE + "<!-- /figures:bench-stages -->\nafter\n")
    assert render_docs.problems((figure_set,)) == []
    assert render_docs.render_all((figure_set,)) == []  # nothing left to change
