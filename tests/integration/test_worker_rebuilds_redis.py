"""Kafka is the log, Redis a view: a Redis that lost writes is rebuilt from the topic."""

from __future__ import annotations

import shutil

import redis

from consumer_worker.settings import WorkerSettings
from devstack.stack import LocalStack
from telemetry_common.layout import partition_keys
from telemetry_common.partitioning import partition_of
from tests.helpers import (
    TOPIC_PARTITIONS,
    OwnRedis,
    built_offsets,
    committed_offsets,
    end_offsets,
    forget_built_offsets,
    machine_keys,
    on_own_redis,
    produce,
    running_worker,
    unique,
    view_replays,
    wait_until,
)
from tests.integration.test_worker import record, stored_used


def everything_stored(client: redis.Redis, machines: dict[str, int]) -> bool:
    try:
        return all(stored_used(client, m) == used for m, used in machines.items())
    except redis.RedisError:
        return False


def produce_readings(stack: LocalStack, topic: str, machines: dict[str, int]) -> None:
    produce(
        stack.bootstrap_servers,
        topic,
        [record(m, used) for m, last in machines.items() for used in range(last + 1)],
    )


def test_a_flushed_redis_is_rebuilt_while_the_worker_runs_even_with_no_new_records(
    stack: LocalStack, topic: str, worker_settings: WorkerSettings, redis_client: redis.Redis
) -> None:
    settings = worker_settings.model_copy(update={"worker_view_check_interval_seconds": 0.5})
    machines = {unique("m"): n for n in range(1, 13)}
    produce_readings(stack, topic, machines)
    group = settings.kafka_consumer_group

    with running_worker(settings) as worker:
        wait_until(lambda: everything_stored(redis_client, machines), 30, "every reading")

        # A Redis restored from an older copy: one partition's view back at its start,
        # the readings written since gone.
        partition = {m: partition_of(m, TOPIC_PARTITIONS) for m in machines}
        rolled_back = partition[next(iter(machines))]
        redis_client.set(partition_keys(rolled_back).built(group, topic), 0)
        redis_client.delete(
            *(machine_keys(m).latest(m) for m, p in partition.items() if p == rolled_back)
        )
        wait_until(lambda: everything_stored(redis_client, machines), 30, "the rolled-back view")

        # An emptied Redis (FLUSHALL, or a failover to an empty replica).
        redis_client.flushall()
        wait_until(lambda: everything_stored(redis_client, machines), 30, "the flushed view")
        # The rollback, then every partition with readings (machine ids are random: one
        # of the partitions may hold none, and an empty view is not behind).
        assert view_replays(worker) >= 1 + len(set(partition.values()))

    ends = end_offsets(stack.bootstrap_servers, topic, TOPIC_PARTITIONS)
    assert built_offsets(redis_client, group, topic) == {
        p: end for p, end in ends.items() if end > 0
    }


def test_redis_replaced_by_an_empty_instance_is_rebuilt_by_the_next_write(
    stack: LocalStack, topic: str, worker_settings: WorkerSettings, own_redis: OwnRedis
) -> None:
    data_dir = own_redis.data_dir
    redis_process = own_redis.server
    # No periodic check: the next batch's write must notice the empty Redis by itself.
    settings = on_own_redis(
        worker_settings,
        own_redis,
        worker_retry_max_backoff_seconds=0.5,
        worker_view_check_interval_seconds=3600,
    )
    machines = {unique("m"): n for n in range(1, 13)}
    produce_readings(stack, topic, machines)
    redis_process.start()
    client = redis.Redis(port=own_redis.port, decode_responses=True)
    try:
        with running_worker(settings):
            wait_until(lambda: everything_stored(client, machines), 30, "every reading")

            redis_process.stop()
            shutil.rmtree(data_dir)  # a new instance: nothing of the old one's data
            redis_process.start()
            assert client.dbsize() == 0

            # One new record per partition; each write finds its partition's view gone.
            latest = {m: used + 1 for m, used in machines.items()}
            produce(stack.bootstrap_servers, topic, [record(m, u) for m, u in latest.items()])
            wait_until(lambda: everything_stored(client, latest), 60, "the rebuilt view")
    finally:
        client.close()
        redis_process.stop()


def test_a_worker_started_on_an_emptied_redis_rebuilds_it_past_the_committed_offsets(
    stack: LocalStack, topic: str, worker_settings: WorkerSettings, redis_client: redis.Redis
) -> None:
    machines = {unique("m"): n for n in range(1, 7)}
    produce_readings(stack, topic, machines)
    with running_worker(worker_settings):
        wait_until(lambda: everything_stored(redis_client, machines), 30, "every reading")
    ends = end_offsets(stack.bootstrap_servers, topic, TOPIC_PARTITIONS)
    committed = committed_offsets(
        stack.bootstrap_servers, worker_settings.kafka_consumer_group, topic, TOPIC_PARTITIONS
    )
    assert {p: committed[p] for p, end in ends.items() if end > 0} == {
        p: end for p, end in ends.items() if end > 0
    }

    # Redis loses everything while no worker runs; the group's commits are at the end.
    redis_client.delete(*(machine_keys(m).latest(m) for m in machines))
    forget_built_offsets(redis_client, worker_settings.kafka_consumer_group, topic)
    with running_worker(worker_settings):
        wait_until(lambda: everything_stored(redis_client, machines), 30, "the rebuilt view")
