"""The worker's Prometheus metrics, scraped from its port, under real traffic."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import httpx
import redis
from prometheus_client.parser import text_string_to_metric_families

from consumer_worker.settings import WorkerSettings
from consumer_worker.worker import ConsumerWorker
from devstack.ports import free_port
from devstack.stack import LocalStack
from tests.helpers import (
    TOPIC_PARTITIONS,
    end_offsets,
    forget_built_offsets,
    produce,
    running_worker,
    unique,
    wait_until,
)
from tests.integration.test_worker import record, stored_used

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(port: int) -> Samples:
    """Every sample the worker serves, by name and labels."""
    answer = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    answer.raise_for_status()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def serving(worker: ConsumerWorker) -> int:
    """The worker's metrics port, once it listens (its thread starts it)."""
    return wait_until(lambda: worker.metrics_port, 30, "the metrics served")


def scrape_when(port: int, condition: Callable[[Samples], bool], what: str) -> Samples:
    """The first scrape that meets `condition`."""
    found: list[Samples] = []

    def met() -> bool:
        found[:] = [scrape(port)]
        return condition(found[0])

    wait_until(met, 30, what)
    return found[0]


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str) -> float:
    """The sum of a metric's samples over all its labels."""
    return sum(v for (sample_name, _), v in samples.items() if sample_name == name)


def lags(samples: Samples, topic: str) -> dict[int, float]:
    """The lag gauge's value per partition of `topic` (only the partitions it shows)."""
    found = {}
    for (name, labels), lag in samples.items():
        label_map = dict(labels)
        if name == "memtel_worker_consumer_lag_records" and label_map["topic"] == topic:
            found[int(label_map["partition"])] = lag
    return found


def growth(before: Mapping[str, float], after: Samples) -> dict[str, float]:
    return {name: total(after, name) - was for name, was in before.items()}


def totals(samples: Samples, *names: str) -> dict[str, float]:
    return {name: total(samples, name) for name in names}


def with_metrics(settings: WorkerSettings, **changes: object) -> WorkerSettings:
    return settings.model_copy(
        update={"worker_metrics_host": "127.0.0.1", "worker_metrics_port": free_port(), **changes}
    )


def test_the_metrics_count_records_batches_and_writes_and_the_lag_returns_to_zero(
    stack: LocalStack, topic: str, worker_settings: WorkerSettings, redis_client: redis.Redis
) -> None:
    settings = with_metrics(worker_settings)
    machines = [unique("m") for _ in range(20)]
    names = (
        "memtel_worker_records_consumed_total",
        "memtel_worker_readings_written_total",
        "memtel_worker_readings_stale_total",
        "memtel_worker_readings_superseded_total",
        "memtel_worker_batch_size_records_count",
        "memtel_worker_batch_size_records_sum",
        "memtel_worker_redis_write_duration_seconds_count",
    )
    with running_worker(settings) as worker:
        port = serving(worker)
        # Assigned and idle: every partition is shown, none behind.
        idle = scrape_when(
            port, lambda s: len(lags(s, topic)) == TOPIC_PARTITIONS, "the lag of every partition"
        )
        assert set(lags(idle, topic).values()) == {0}
        before = totals(idle, *names)

        # Two readings per machine in one go: the batch keeps only the newer one when both
        # are in it, so each machine's older reading is written or superseded.
        produce(stack.bootstrap_servers, topic, [record(m, u) for u in (1, 2) for m in machines])
        wait_until(
            lambda: all(stored_used(redis_client, m) == 2 for m in machines),
            30,
            "every machine's newer reading in Redis",
        )
        after = scrape_when(
            port, lambda s: set(lags(s, topic).values()) == {0}, "the lag back to 0"
        )
        grown = growth(before, after)
        assert grown["memtel_worker_records_consumed_total"] == 40
        consumed_by_partition = {
            int(dict(labels)["partition"]): v
            for (name, labels), v in after.items()
            if name == "memtel_worker_records_consumed_total"
        }
        ends = end_offsets(stack.bootstrap_servers, topic, TOPIC_PARTITIONS)
        assert consumed_by_partition == {p: end for p, end in ends.items() if end}
        # Every reading was either the machine's new latest or superseded in its batch;
        # nothing in Redis was newer.
        assert grown["memtel_worker_readings_stale_total"] == 0
        assert (
            grown["memtel_worker_readings_written_total"]
            + grown["memtel_worker_readings_superseded_total"]
            == 40
        )
        assert grown["memtel_worker_readings_written_total"] >= 20
        assert grown["memtel_worker_batch_size_records_count"] >= 1
        assert grown["memtel_worker_batch_size_records_sum"] == 40
        assert grown["memtel_worker_redis_write_duration_seconds_count"] >= 1
        assert value(after, "memtel_worker_last_progress_timestamp_seconds") > 0


def test_a_replay_counts_stale_readings_and_a_bad_record_counts_a_dead_letter(
    stack: LocalStack, topic: str, worker_settings: WorkerSettings, redis_client: redis.Redis
) -> None:
    settings = with_metrics(worker_settings, worker_view_check_interval_seconds=0.2)
    machines = [unique("m") for _ in range(10)]
    produce(stack.bootstrap_servers, topic, [record(m, 1) for m in machines])
    with running_worker(settings) as worker:
        port = serving(worker)
        stored = scrape_when(
            port,
            lambda s: total(s, "memtel_worker_readings_written_total") == 10,
            "the ten readings written",
        )
        # Redis forgets how far its view is built: the worker replays every partition,
        # and Redis already holds each replayed reading.
        forget_built_offsets(redis_client, settings.kafka_consumer_group, topic)
        replayed = scrape_when(
            port,
            lambda s: total(s, "memtel_worker_readings_stale_total") == 10,
            "the replayed readings counted as stale",
        )
        assert total(replayed, "memtel_worker_readings_written_total") == 10
        assert total(replayed, "memtel_worker_view_replays_total") >= 1
        assert total(replayed, "memtel_worker_records_dead_lettered_total") == 0
        assert total(replayed, "memtel_worker_records_consumed_total") == 20
        assert total(stored, "memtel_worker_records_consumed_total") == 10

        produce(stack.bootstrap_servers, topic, [(machines[0].encode(), b"{not json")])
        wait_until(
            lambda: total(scrape(port), "memtel_worker_records_dead_lettered_total") == 1,
            30,
            "the bad record counted as dead-lettered",
        )


def test_the_lag_of_a_partition_that_moves_to_another_worker_leaves_the_first(
    topic: str, worker_settings: WorkerSettings, tmp_path: Path
) -> None:
    first = with_metrics(worker_settings)
    second = with_metrics(worker_settings, worker_health_file=tmp_path / "second.health")
    all_partitions = set(range(TOPIC_PARTITIONS))
    with running_worker(first) as first_worker:
        first_port = serving(first_worker)
        wait_until(
            lambda: set(lags(scrape(first_port), topic)) == all_partitions,
            30,
            "the first worker showing every partition",
        )
        with running_worker(second) as second_worker:
            second_port = serving(second_worker)

            def split() -> bool:
                mine = set(lags(scrape(first_port), topic))
                theirs = set(lags(scrape(second_port), topic))
                return (
                    bool(mine and theirs)
                    and mine | theirs == all_partitions
                    and not (mine & theirs)
                )

            wait_until(split, 60, "the partitions split between the two, each shown once")
        # The second one left: the first shows every partition again.
        wait_until(
            lambda: set(lags(scrape(first_port), topic)) == all_partitions,
            60,
            "the first worker showing every partition again",
        )


def test_metrics_port_zero_serves_nothing(worker_settings: WorkerSettings) -> None:
    settings = worker_settings.model_copy(update={"worker_metrics_port": 0})
    health_file = settings.worker_health_file
    assert health_file is not None
    with running_worker(settings) as worker:
        wait_until(health_file.exists, 30, "the worker's loop running")
        assert worker.metrics_port is None
