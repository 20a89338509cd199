"""The worker against the real broker and the real Redis."""

from __future__ import annotations

from datetime import UTC, datetime

import redis

from consumer_worker.settings import WorkerSettings
from devstack.stack import LocalStack
from telemetry_common.contract import MemoryReading, encode_record
from telemetry_common.partitioning import partition_of
from telemetry_common.storage import StoredReading
from tests.helpers import (
    TOPIC_PARTITIONS,
    OwnRedis,
    committed_offsets,
    committed_to_the_end,
    failed_redis_calls,
    machine_keys,
    on_own_redis,
    produce,
    reading,
    records_dead_lettered,
    running_worker,
    sink_for_topic,
    unique,
    wait_until,
)

RECEIVED_AT = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def record(machine_id: str, used: int) -> tuple[bytes, bytes]:
    encoded = encode_record(
        machine_id, MemoryReading.model_validate(reading(used=used)), RECEIVED_AT
    )
    return encoded.key, encoded.value


def stored_used(client: redis.Redis, machine_id: str) -> int | None:
    raw = client.hget(machine_keys(machine_id).latest(machine_id), "reading")
    return MemoryReading.model_validate_json(str(raw)).used if raw else None


def all_committed(stack: LocalStack, settings: WorkerSettings) -> bool:
    return all(committed_to_the_end(stack, settings).values())


def test_records_in_latest_values_out_offsets_committed(
    stack: LocalStack, topic: str, worker_settings: WorkerSettings, redis_client: redis.Redis
) -> None:
    machines = [unique("m") for _ in range(20)]
    produce(
        stack.bootstrap_servers,
        topic,
        [record(m, used) for used in range(5) for m in machines],
    )

    with running_worker(worker_settings):
        wait_until(
            lambda: all(stored_used(redis_client, m) == 4 for m in machines),
            30,
            "every machine's last reading in Redis",
        )
        wait_until(lambda: all_committed(stack, worker_settings), 30, "offsets committed")

    stored = redis_client.hgetall(machine_keys(machines[0]).latest(machines[0]))
    assert set(stored) == {"reading", "partition", "offset", "timestamp_ms", "received_at"}


def test_a_restarted_worker_resumes_where_it_committed(
    stack: LocalStack, topic: str, worker_settings: WorkerSettings, redis_client: redis.Redis
) -> None:
    first, second = unique("first"), unique("second")
    produce(stack.bootstrap_servers, topic, [record(first, 1)])
    with running_worker(worker_settings):
        wait_until(lambda: stored_used(redis_client, first) == 1, 30, "the first record stored")
        wait_until(lambda: all_committed(stack, worker_settings), 30, "offsets committed")

    # Had the next worker re-read the first record, the key would come back.
    redis_client.delete(machine_keys(first).latest(first))
    produce(stack.bootstrap_servers, topic, [record(second, 2)])
    with running_worker(worker_settings):
        wait_until(lambda: stored_used(redis_client, second) == 2, 30, "the second record stored")
        wait_until(lambda: all_committed(stack, worker_settings), 30, "offsets committed")
    assert stored_used(redis_client, first) is None


def test_an_undecodable_record_is_dead_lettered_and_the_rest_is_stored(
    stack: LocalStack, topic: str, worker_settings: WorkerSettings, redis_client: redis.Redis
) -> None:
    machine_id = unique("m")
    produce(
        stack.bootstrap_servers,
        topic,
        [
            (machine_id.encode(), b"{not json"),
            (None, b"no key"),
            (machine_id.encode(), b'{"schema_version": 1}'),
            record(machine_id, 7),
        ],
    )
    with running_worker(worker_settings) as worker:
        wait_until(lambda: stored_used(redis_client, machine_id) == 7, 30, "the valid record")
        wait_until(lambda: all_committed(stack, worker_settings), 30, "offsets past the bad ones")
        assert records_dead_lettered(worker) == 3


def test_a_replayed_older_record_never_overwrites_a_newer_one(
    redis_client: redis.Redis, topic: str
) -> None:
    machine_id = unique("m")
    sink = sink_for_topic(redis_client, topic)

    def stored(offset: int, used: int, timestamp_ms: int = 1000) -> StoredReading:
        return StoredReading(
            machine_id=machine_id,
            reading=MemoryReading.model_validate(reading(used=used)),
            partition=partition_of(machine_id, TOPIC_PARTITIONS),
            offset=offset,
            timestamp_ms=timestamp_ms,
            received_at=RECEIVED_AT,
        )

    assert sink.put([stored(offset=10, used=10)]) == 1
    assert sink.put([stored(offset=5, used=5, timestamp_ms=2000)]) == 0  # replayed, older
    assert sink.put([stored(offset=10, used=99)]) == 0  # the same record again
    assert stored_used(redis_client, machine_id) == 10
    assert sink.put([stored(offset=11, used=11, timestamp_ms=900)]) == 1
    assert stored_used(redis_client, machine_id) == 11


def test_while_redis_is_down_nothing_is_committed_and_nothing_lost(
    stack: LocalStack, topic: str, worker_settings: WorkerSettings, own_redis: OwnRedis
) -> None:
    redis_process = own_redis.server
    settings = on_own_redis(worker_settings, own_redis)
    machine_id = unique("m")
    redis_process.start()
    client = redis.Redis(port=own_redis.port, decode_responses=True)
    try:
        with running_worker(settings) as worker:
            redis_process.stop()
            produce(stack.bootstrap_servers, topic, [record(machine_id, 3)])
            wait_until(lambda: failed_redis_calls(worker) >= 2, 30, "the worker to retry Redis")
            # The worker has the record but cannot store it: it must not commit.
            committed = committed_offsets(
                stack.bootstrap_servers, settings.kafka_consumer_group, topic, TOPIC_PARTITIONS
            )
            assert all(offset < 0 for offset in committed.values()), committed

            redis_process.start()
            wait_until(
                lambda: stored_used(client, machine_id) == 3, 60, "the record after Redis returned"
            )
            wait_until(
                lambda: all_committed(stack, settings), 30, "offsets committed after the write"
            )
    finally:
        client.close()
        redis_process.stop()
