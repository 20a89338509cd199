"""The lag of each assigned partition, from the consumer's watermarks and Redis's view."""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException, TopicPartition
from prometheus_client import CollectorRegistry

from consumer_worker.lag import REFRESH_INTERVAL_SECONDS, PartitionLag
from consumer_worker.metrics import WorkerMetrics

TOPIC = "readings"
INVALID = -1001  # librdkafka's answer for a watermark it does not know yet


class FakeConsumer:
    """Watermarks as librdkafka caches them and as the leaders answer; committed offsets."""

    def __init__(self) -> None:
        self.cached: dict[int, tuple[int, int]] = {}
        self.leaders: dict[int, tuple[int, int]] = {}
        self.group_committed: dict[int, int] = {}
        self.leaders_answer = True
        self.leader_calls: list[int] = []

    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float = -1, cached: bool = False
    ) -> tuple[int, int]:
        if cached:
            return self.cached.get(partition.partition, (INVALID, INVALID))
        self.leader_calls.append(partition.partition)
        if not self.leaders_answer:
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT))
        return self.leaders[partition.partition]

    def committed(
        self, partitions: list[TopicPartition], timeout: float = -1
    ) -> list[TopicPartition]:
        return [
            TopicPartition(TOPIC, tp.partition, self.group_committed.get(tp.partition, INVALID))
            for tp in partitions
        ]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def next_refresh(self) -> None:
        self.now += REFRESH_INTERVAL_SECONDS


def tracker() -> tuple[PartitionLag, FakeConsumer, Clock, CollectorRegistry]:
    registry = CollectorRegistry()
    consumer, clock = FakeConsumer(), Clock()
    lag = PartitionLag(consumer, TOPIC, WorkerMetrics(registry).consumer_lag, clock)
    return lag, consumer, clock, registry


def shown(registry: CollectorRegistry) -> dict[int, float]:
    """The gauge's series, by partition."""
    return {
        int(sample.labels["partition"]): sample.value
        for family in registry.collect()
        if family.name == "memtel_worker_consumer_lag_records"
        for sample in family.samples
    }


def test_lag_is_the_high_watermark_minus_what_redis_holds() -> None:
    lag, consumer, _, registry = tracker()
    consumer.cached = {0: (0, 100), 1: (40, 90), 2: (0, 7)}
    # Partition 1: Redis holds nothing of it, so all that retention left is owed.
    lag.refresh({0: 60, 1: None, 2: 7})
    assert shown(registry) == {0: 40, 1: 50, 2: 0}
    assert lag.total == 90
    assert consumer.leader_calls == []


def test_a_view_behind_what_retention_kept_owes_only_what_is_left() -> None:
    lag, consumer, _, registry = tracker()
    consumer.cached = {0: (500, 520)}
    lag.refresh({0: 100})
    assert shown(registry) == {0: 20}


def test_it_is_worked_out_at_most_once_per_interval() -> None:
    lag, consumer, clock, registry = tracker()
    consumer.cached = {0: (0, 10)}
    lag.refresh({0: 0})
    consumer.cached = {0: (0, 30)}
    lag.refresh({0: 0})
    assert shown(registry) == {0: 10}
    clock.next_refresh()
    lag.refresh({0: 0})
    assert shown(registry) == {0: 30}


def test_a_stuck_worker_asks_the_leaders_since_its_cache_stops_moving() -> None:
    lag, consumer, _, registry = tracker()
    consumer.cached = {0: (0, 10)}
    consumer.leaders = {0: (0, 5000)}
    lag.refresh({0: 0}, ask_brokers=True)
    assert shown(registry) == {0: 5000}


def test_a_partition_not_fetched_yet_is_asked_of_its_leader() -> None:
    lag, consumer, _, registry = tracker()
    consumer.leaders = {0: (0, 12)}
    lag.refresh({0: 2})
    assert shown(registry) == {0: 10}
    assert consumer.leader_calls == [0]


def test_partitions_whose_view_cannot_be_read_count_from_the_group_commit() -> None:
    lag, consumer, _, registry = tracker()
    consumer.leaders = {0: (0, 50), 1: (10, 50)}
    consumer.group_committed = {0: 45}
    # Not assigned yet (Redis unreadable): partition 1 has no commit, so from its start.
    lag.refresh({}, assigning=[0, 1], ask_brokers=True)
    assert shown(registry) == {0: 5, 1: 40}


def test_with_the_leaders_silent_the_last_values_stay_and_only_one_call_waits() -> None:
    lag, consumer, clock, registry = tracker()
    consumer.cached = {0: (0, 10), 1: (0, 20)}
    lag.refresh({0: 0, 1: 0})
    consumer.leaders_answer = False
    clock.next_refresh()
    lag.refresh({0: 5, 1: 5}, ask_brokers=True)
    assert shown(registry) == {0: 10, 1: 20}
    assert consumer.leader_calls == [0]


def test_a_partition_that_leaves_leaves_the_gauge() -> None:
    lag, consumer, clock, registry = tracker()
    consumer.cached = {0: (0, 10), 1: (0, 20), 2: (0, 30)}
    lag.refresh({0: 0, 1: 0, 2: 0})
    lag.forget([1])  # revoked
    assert shown(registry) == {0: 10, 2: 30}
    clock.next_refresh()
    lag.refresh({0: 0})  # partition 2 went too, unannounced
    assert shown(registry) == {0: 10}
    assert lag.total == 10
