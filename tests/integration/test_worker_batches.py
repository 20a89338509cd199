"""A batch's writes and the worker's offset commits, against the real broker and Redis."""

from __future__ import annotations

import redis

from consumer_worker.batch import build_batch
from consumer_worker.settings import WorkerSettings
from consumer_worker.sink import RedisSink
from devstack.stack import LocalStack
from telemetry_common.storage import PartitionStep
from tests.helpers import (
    TOPIC_PARTITIONS,
    built_offsets,
    committed_to_the_end,
    consume_all,
    end_offsets,
    offset_commits,
    produce,
    readings_written,
    running_worker,
    unique,
    wait_until,
)
from tests.integration.test_worker import record, stored_used

READINGS_PER_MACHINE = 10


def partitions_committed_to_the_end(stack: LocalStack, settings: WorkerSettings) -> set[int]:
    return {p for p, done in committed_to_the_end(stack, settings).items() if done}


def partitions_with_records(stack: LocalStack, topic: str) -> set[int]:
    ends = end_offsets(stack.bootstrap_servers, topic, TOPIC_PARTITIONS)
    return {p for p, end in ends.items() if end > 0}


# Each machine's readings share its partition: with three per machine, no partition
# holds a single record, so the first batch of one record never completes a partition.
READINGS_PER_COMMIT_TEST = 3


def produce_readings(stack: LocalStack, topic: str, machines: list[str]) -> None:
    produce(
        stack.bootstrap_servers,
        topic,
        [record(m, used) for used in range(READINGS_PER_COMMIT_TEST) for m in machines],
    )


def all_stored(client: redis.Redis, machines: list[str]) -> bool:
    return all(stored_used(client, m) == READINGS_PER_COMMIT_TEST - 1 for m in machines)


def test_a_batch_stores_each_machines_newest_reading_and_builds_past_every_record(
    stack: LocalStack, topic: str, redis_client: redis.Redis
) -> None:
    machines = [unique("m") for _ in range(5)]
    produce(
        stack.bootstrap_servers,
        topic,
        [record(m, used) for used in range(READINGS_PER_MACHINE) for m in machines],
    )
    messages = consume_all(stack.bootstrap_servers, topic, len(machines) * READINGS_PER_MACHINE)

    batch = build_batch(messages)
    writes = {
        p: (PartitionStep(p, None, next_offset), [r for r in batch.readings if r.partition == p])
        for (_, p), next_offset in batch.next_offsets.items()
    }
    group = unique("writers")
    results = RedisSink(redis_client, group, topic).write_batch(writes)

    # One write per machine, of its newest reading; the view is built past every record.
    assert all(result.in_step for result in results.values())
    assert sum(result.written for result in results.values()) == len(machines)
    assert all(stored_used(redis_client, m) == READINGS_PER_MACHINE - 1 for m in machines)
    ends = end_offsets(stack.bootstrap_servers, topic, TOPIC_PARTITIONS)
    assert built_offsets(redis_client, group, topic) == {
        p: end for p, end in ends.items() if end > 0
    }


def test_offsets_are_committed_at_most_once_per_interval_and_at_shutdown(
    stack: LocalStack, topic: str, worker_settings: WorkerSettings, redis_client: redis.Redis
) -> None:
    # One record per batch, and an interval far longer than the test: every batch but
    # the first is stored without a commit of its own.
    settings = worker_settings.model_copy(
        update={"worker_batch_size": 1, "worker_commit_interval_ms": 600_000}
    )
    machines = [unique("m") for _ in range(12)]
    produce_readings(stack, topic, machines)

    with running_worker(settings) as worker:
        wait_until(lambda: all_stored(redis_client, machines), 30, "every reading in Redis")
        wait_until(
            lambda: readings_written(worker) == len(machines) * READINGS_PER_COMMIT_TEST,
            10,
            "one batch per record",
        )
        assert offset_commits(worker) == 1
        # That one commit was of the first record: no partition is committed to its end.
        assert partitions_committed_to_the_end(stack, settings) == set()

    # Stopping commits what is owed.
    assert partitions_committed_to_the_end(stack, settings) == partitions_with_records(stack, topic)


def test_a_worker_commits_the_partitions_it_gives_up_to_another(
    stack: LocalStack, topic: str, worker_settings: WorkerSettings, redis_client: redis.Redis
) -> None:
    settings = worker_settings.model_copy(
        update={"worker_batch_size": 1, "worker_commit_interval_ms": 600_000}
    )
    machines = [unique("m") for _ in range(12)]
    produce_readings(stack, topic, machines)
    with running_worker(settings) as first:
        wait_until(lambda: all_stored(redis_client, machines), 30, "every reading in Redis")
        assert offset_commits(first) == 1
        assert partitions_committed_to_the_end(stack, settings) == set()

        # A second member takes some partitions: the first commits them as they go
        # (the second has nothing to write, Redis's view being built to their end).
        with running_worker(settings) as second:
            wait_until(
                lambda: partitions_committed_to_the_end(stack, settings),
                60,
                "the partitions given up committed",
                interval=0.5,
            )
            assert readings_written(second) == 0
