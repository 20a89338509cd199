"""Each machine's history: every reading the worker stores, read back newest first."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis

from consumer_worker.settings import WorkerSettings
from devstack.stack import LocalStack
from producer_api.settings import ProducerSettings
from telemetry_common.contract import MemoryReading, encode_record
from tests.helpers import (
    TOPIC_PARTITIONS,
    api_client,
    built_offsets,
    end_offsets,
    forget_built_offsets,
    machine_keys,
    produce,
    reading,
    readings_written,
    running_worker,
    unique,
    wait_until,
)
from tests.paging import whole_history

pytestmark = pytest.mark.anyio

RECEIVED_AT = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# A recent time: readings older than a history's age bound are dropped against Redis's
# clock, so the tests' readings are of now unless a test means them to be old.
NOW_MS = int(time.time() * 1000)


def produce_readings(bootstrap: str, topic: str, readings: Sequence[tuple[str, int, int]]) -> None:
    """Each (machine id, used, timestamp ms) as a record with that Kafka timestamp, in
    order; waits until the broker acknowledged all of them."""
    records = [
        encode_record(machine_id, MemoryReading.model_validate(reading(used=used)), RECEIVED_AT)
        for machine_id, used, _ in readings
    ]
    produce(bootstrap, topic, records, [timestamp_ms for _, _, timestamp_ms in readings])


def history_settings(settings: WorkerSettings, **changes: Any) -> WorkerSettings:
    return settings.model_copy(update={"worker_view_check_interval_seconds": 0.5, **changes})


def stream_length(client: redis.Redis, machine_id: str) -> int:
    return int(client.xlen(machine_keys(machine_id).history(machine_id)))


async def test_every_reading_is_in_the_history_newest_first_with_its_record(
    stack: LocalStack,
    topic: str,
    worker_settings: WorkerSettings,
    producer_settings: ProducerSettings,
    redis_client: redis.Redis,
) -> None:
    machine_id = unique("m")
    # Produced at once, so that the worker takes several of them in one batch: the
    # latest hash gets only the newest of those, the history every one.
    produce_readings(
        stack.bootstrap_servers, topic, [(machine_id, used, NOW_MS + used) for used in range(12)]
    )
    with running_worker(history_settings(worker_settings)):
        wait_until(lambda: stream_length(redis_client, machine_id) == 12, 30, "12 entries")

    async with api_client(producer_settings) as client:
        response = await client.get(f"/cpu-info/{machine_id}/history")
        latest = await client.get(f"/cpu-info/{machine_id}")
    assert response.status_code == 200
    body = response.json()
    assert body["machine_id"] == machine_id
    assert body["next"] is None
    entries = body["entries"]
    assert [e["reading"]["used"] for e in entries] == list(range(11, -1, -1))
    assert [e["timestamp_ms"] for e in entries] == [NOW_MS + used for used in range(11, -1, -1)]
    assert datetime.fromisoformat(entries[0]["timestamp"]) == EPOCH + timedelta(
        milliseconds=NOW_MS + 11
    )
    assert len({e["partition"] for e in entries}) == 1
    offsets = [e["offset"] for e in entries]
    assert offsets == sorted(offsets, reverse=True)
    assert len(set(offsets)) == 12
    # The newest entry is the latest reading.
    assert latest.json() == {machine_id: entries[0]["reading"]}
    assert int(latest.headers["X-Kafka-Offset"]) == offsets[0]


async def test_since_until_limit_and_cursors_page_through_each_entry_once(
    stack: LocalStack,
    topic: str,
    worker_settings: WorkerSettings,
    producer_settings: ProducerSettings,
    redis_client: redis.Redis,
) -> None:
    machine_id = unique("m")
    start = NOW_MS - 60_000
    produce_readings(
        stack.bootstrap_servers,
        topic,
        [(machine_id, used, start + used * 1000) for used in range(30)],
    )
    with running_worker(history_settings(worker_settings)):
        wait_until(lambda: stream_length(redis_client, machine_id) == 30, 30, "30 entries")

    async with api_client(producer_settings) as client:
        pages = await whole_history(client, machine_id, "limit=7")
        since = datetime.fromtimestamp((start + 5_000) / 1000, UTC).isoformat()
        window = await whole_history(
            client, machine_id, f"limit=4&since={since.replace('+', '%2B')}&until={start + 14_000}"
        )
        beyond = await whole_history(client, machine_id, f"since={start + 30_000}")

    assert [len(page) for page in pages] == [7, 7, 7, 7, 2]
    used = [e["reading"]["used"] for page in pages for e in page]
    assert used == list(range(29, -1, -1))
    assert [e["reading"]["used"] for page in window for e in page] == list(range(14, 4, -1))
    assert beyond == [[]]


async def test_the_history_keeps_at_most_max_entries(
    stack: LocalStack,
    topic: str,
    worker_settings: WorkerSettings,
    producer_settings: ProducerSettings,
    redis_client: redis.Redis,
) -> None:
    machine_id = unique("m")
    settings = history_settings(worker_settings, history_max_entries=5)
    with running_worker(settings):
        for used in range(12):  # in separate batches and in one
            produce_readings(stack.bootstrap_servers, topic, [(machine_id, used, NOW_MS + used)])
        produce_readings(
            stack.bootstrap_servers,
            topic,
            [(machine_id, used, NOW_MS + used) for used in range(12, 20)],
        )
        wait_until(lambda: latest_used(redis_client, machine_id) == 19, 30, "the last reading")

    async with api_client(producer_settings) as client:
        (page,) = await whole_history(client, machine_id)
    assert [e["reading"]["used"] for e in page] == [19, 18, 17, 16, 15]


async def test_entries_older_than_max_age_are_dropped(
    stack: LocalStack,
    topic: str,
    worker_settings: WorkerSettings,
    producer_settings: ProducerSettings,
    redis_client: redis.Redis,
) -> None:
    active, silent = unique("active"), unique("silent")
    two_hours_ago = NOW_MS - 2 * 3_600_000
    produce_readings(
        stack.bootstrap_servers,
        topic,
        [
            (active, 1, two_hours_ago),
            (silent, 1, two_hours_ago),
            (active, 2, two_hours_ago + 1),
            (active, 3, NOW_MS),
            (active, 4, NOW_MS + 1),
        ],
    )
    settings = history_settings(worker_settings, history_max_age_seconds=3600)
    with running_worker(settings):
        wait_until(lambda: latest_used(redis_client, active) == 4, 30, "the active machine")
        wait_until(lambda: latest_used(redis_client, silent) == 1, 30, "the silent machine")

    async with api_client(producer_settings) as client:
        (active_page,) = await whole_history(client, active)
        (silent_page,) = await whole_history(client, silent)
    assert [e["reading"]["used"] for e in active_page] == [4, 3]
    # The silent machine's latest reading stays; its history, all too old, is gone.
    assert silent_page == []
    assert not redis_client.exists(machine_keys(silent).history(silent))
    # What stays expires once its newest entry is too old.
    ttl_ms = int(redis_client.pttl(machine_keys(active).history(active)))
    assert 0 < ttl_ms <= 3600 * 1000 + 3600 * 1000 // 100 + 1000


def latest_used(client: redis.Redis, machine_id: str) -> int | None:
    raw = client.hget(machine_keys(machine_id).latest(machine_id), "reading")
    return MemoryReading.model_validate_json(str(raw)).used if raw else None


def history_ids(client: redis.Redis, machine_id: str) -> list[str]:
    return [
        str(entry_id)
        for entry_id, _ in client.xrange(machine_keys(machine_id).history(machine_id)) or []
    ]


def view_at_end(client: redis.Redis, stack: LocalStack, settings: WorkerSettings) -> bool:
    ends = end_offsets(stack.bootstrap_servers, settings.kafka_topic, TOPIC_PARTITIONS)
    built = built_offsets(client, settings.kafka_consumer_group, settings.kafka_topic)
    return all(built.get(p, -1) == end for p, end in ends.items() if end > 0)


async def test_a_replay_adds_no_entry_twice(
    stack: LocalStack, topic: str, worker_settings: WorkerSettings, redis_client: redis.Redis
) -> None:
    machines = [unique("m") for _ in range(6)]
    produce_readings(
        stack.bootstrap_servers,
        topic,
        [(m, used, NOW_MS + used) for used in range(8) for m in machines],
    )
    settings = history_settings(worker_settings)
    with running_worker(settings):
        wait_until(lambda: view_at_end(redis_client, stack, settings), 30, "every record stored")
    before = {m: history_ids(redis_client, m) for m in machines}
    assert all(len(ids) == 8 for ids in before.values())

    # Redis forgets how far its view is built and the latest readings: the next worker
    # reads the whole topic again, as after a restore from an old copy.
    forget_built_offsets(redis_client, settings.kafka_consumer_group, topic)
    redis_client.delete(*(machine_keys(m).latest(m) for m in machines))
    with running_worker(settings) as worker:
        wait_until(lambda: all(latest_used(redis_client, m) == 7 for m in machines), 30, "replay")
        wait_until(lambda: view_at_end(redis_client, stack, settings), 30, "the replay's end")
        assert readings_written(worker) >= len(machines)
    assert {m: history_ids(redis_client, m) for m in machines} == before


async def test_a_history_lost_with_redis_comes_back_once_from_the_topic(
    stack: LocalStack, topic: str, worker_settings: WorkerSettings, redis_client: redis.Redis
) -> None:
    machines = [unique("m") for _ in range(6)]
    produce_readings(
        stack.bootstrap_servers,
        topic,
        [(m, used, NOW_MS + used) for used in range(5) for m in machines],
    )
    settings = history_settings(worker_settings)
    with running_worker(settings):
        wait_until(lambda: view_at_end(redis_client, stack, settings), 30, "every record stored")
        before = {m: history_ids(redis_client, m) for m in machines}
        # Everything of this topic gone while the worker runs, as with an emptied Redis.
        forget_built_offsets(redis_client, settings.kafka_consumer_group, topic)
        redis_client.delete(
            *(machine_keys(m).latest(m) for m in machines),
            *(machine_keys(m).history(m) for m in machines),
        )
        wait_until(
            lambda: (
                all(stream_length(redis_client, m) == 5 for m in machines)
                and view_at_end(redis_client, stack, settings)
            ),
            30,
            "the rebuilt histories",
        )
    assert {m: history_ids(redis_client, m) for m in machines} == before


async def test_a_producer_clock_going_backwards_loses_no_reading(
    stack: LocalStack,
    topic: str,
    worker_settings: WorkerSettings,
    producer_settings: ProducerSettings,
    redis_client: redis.Redis,
) -> None:
    machine_id = unique("m")
    # The third record's timestamp is behind the second's: a producer whose clock was
    # set back, or two producers whose records crossed.
    stamps = [NOW_MS, NOW_MS + 10, NOW_MS + 5, NOW_MS + 20]
    produce_readings(
        stack.bootstrap_servers, topic, [(machine_id, used, ts) for used, ts in enumerate(stamps)]
    )
    with running_worker(history_settings(worker_settings)):
        wait_until(lambda: stream_length(redis_client, machine_id) == 4, 30, "4 entries")

    async with api_client(producer_settings) as client:
        (page,) = await whole_history(client, machine_id)
    # In the order of the topic, each with its own timestamp.
    assert [e["reading"]["used"] for e in page] == [3, 2, 1, 0]
    assert [e["timestamp_ms"] for e in page] == stamps[::-1]


async def test_an_unknown_machine_is_404_and_a_known_one_without_history_is_empty(
    stack: LocalStack,
    topic: str,
    worker_settings: WorkerSettings,
    producer_settings: ProducerSettings,
    redis_client: redis.Redis,
) -> None:
    machine_id = unique("m")
    produce_readings(stack.bootstrap_servers, topic, [(machine_id, 1, NOW_MS)])
    # Both bounds 0: the worker keeps no history.
    settings = history_settings(worker_settings, history_max_entries=0, history_max_age_seconds=0)
    with running_worker(settings):
        wait_until(lambda: latest_used(redis_client, machine_id) == 1, 30, "the reading")
    assert not redis_client.exists(machine_keys(machine_id).history(machine_id))

    async with api_client(producer_settings) as client:
        unknown = await client.get(f"/cpu-info/{unique('nobody')}/history")
        known = await client.get(f"/cpu-info/{machine_id}/history")
    assert unknown.status_code == 404
    assert unknown.json() == {"detail": "Data not found"}
    assert known.status_code == 200
    assert known.json() == {"machine_id": machine_id, "entries": [], "next": None}
