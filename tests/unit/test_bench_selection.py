"""`python -m benchmarks --stages ...`: which stages run, on which stack, in which order;
and the arithmetic of the drain's CPU and memory figures."""

from __future__ import annotations

import pytest

from benchmarks.redis_memory import (
    SCRATCH_LENGTHS,
    SCRATCH_MACHINES,
    KeySample,
    ServerMemory,
    memory_figures,
)
from benchmarks.runner import STAGES, Stage, select_stages
from benchmarks.stages.worker_drain import Drain, microseconds_per


def _names(stages: tuple[Stage, ...]) -> list[str]:
    return [stage.name for stage in stages]


def test_every_stage_runs_by_default_the_cluster_ones_last() -> None:
    assert select_stages(None) == STAGES
    assert _names(STAGES) == [
        "ingest_single",
        "ingest_batch",
        "worker_drain",
        "freshness",
        "worker_drain_cluster",
    ]
    on_cluster = [stage.redis_cluster for stage in STAGES]
    assert on_cluster == sorted(on_cluster)
    assert _names(tuple(s for s in STAGES if s.redis_cluster)) == ["worker_drain_cluster"]


def test_chosen_stages_keep_the_running_order_whatever_order_they_are_named_in() -> None:
    chosen = select_stages("worker_drain_cluster, worker_drain")
    assert _names(chosen) == ["worker_drain", "worker_drain_cluster"]
    assert _names(select_stages("freshness,ingest_single,")) == ["ingest_single", "freshness"]
    assert _names(select_stages("worker_drain,worker_drain")) == ["worker_drain"]


@pytest.mark.parametrize("names", ["", " , ", "worker-drain", "worker_drain,nope"])
def test_unknown_or_no_stage_names_are_refused_with_the_known_ones(names: str) -> None:
    with pytest.raises(ValueError, match="stage") as refused:
        select_stages(names)
    if "nope" in names or "-" in names:
        assert "worker_drain_cluster" in str(refused.value)


def test_cpu_per_reading_is_in_microseconds() -> None:
    assert microseconds_per(1.5, 300_000) == pytest.approx(5.0)
    assert microseconds_per(1.0, 0) is None


def test_a_drain_reports_its_rate_and_cpu_per_reading() -> None:
    drain = Drain(
        topic="t",
        records=300_000,
        drained=290_000,
        seconds=5.0,
        worker_cpu_seconds=2.9,
        redis_cpu_seconds=4.35,
        redis_masters_cpu_seconds=2.9,
        redis_servers=6,
        redis_masters=3,
        worker_peak_rss_mb=100.0,
        commits=10,
        memory={},
    )
    summary = drain.summary()
    assert summary["records_per_s"] == 58_000
    assert summary["worker_cpu_us_per_reading"] == pytest.approx(10.0)
    assert summary["redis_cpu_us_per_reading"] == pytest.approx(15.0)
    assert summary["redis_masters_cpu_us_per_reading"] == pytest.approx(10.0)
    assert summary["worker_cpu_share"] == pytest.approx(0.58)
    assert summary["commits_per_s"] == 2.0
    assert drain.cpu_per_reading() == "CPU/reading: worker 10.0 µs, Redis 15.0 µs"


def test_memory_per_machine_comes_from_the_data_and_per_entry_from_a_long_stream() -> None:
    short, long = SCRATCH_LENGTHS[0], SCRATCH_LENGTHS[-1]
    sample = KeySample(
        machines=200,
        latest_bytes=200 * 600,
        history_bytes=200 * 4800,
        history_entries=200 * 30,
        scratch_bytes={
            short: SCRATCH_MACHINES * 10_000,
            long: SCRATCH_MACHINES * (10_000 + 90 * (long - short)),
        },
    )
    before = {1: ServerMemory(1_000_000, 100_000), 2: ServerMemory(2_000_000, 200_000)}
    after = {
        1: ServerMemory(1_000_000 + 3_500_000, 100_000 + 3_000_000),
        2: ServerMemory(2_000_000 + 2_500_000, 200_000 + 2_000_000),
    }
    figures = memory_figures(before, after, machines=1000, sample=sample)
    assert figures["redis_used_memory_delta_bytes"] == 6_000_000
    assert figures["redis_used_memory_delta_bytes_by_server"] == {"1": 3_500_000, "2": 2_500_000}
    assert figures["redis_dataset_delta_bytes"] == 5_000_000
    assert figures["redis_bytes_per_machine"] == 5000
    assert figures["latest_hash_bytes_per_machine"] == 600
    assert figures["history_entries_per_machine"] == 30
    assert figures["history_stream_bytes_per_machine"] == 4800
    assert figures["history_bytes_per_entry_at_this_length"] == 160
    assert figures["history_bytes_per_entry_long"] == 90


def test_memory_figures_without_history_or_machines_are_left_empty() -> None:
    figures = memory_figures({}, {}, machines=0, sample=KeySample(0, 0, 0, 0))
    assert figures["redis_bytes_per_machine"] is None
    assert figures["history_bytes_per_entry_at_this_length"] is None
    assert figures["history_bytes_per_entry_long"] is None
