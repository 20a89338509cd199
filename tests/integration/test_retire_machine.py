"""DELETE /cpu-info/{machine_id}: a retired machine is gone from every read, stays gone
when the view is rebuilt from Kafka, and comes back with its next reading."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import redis
from confluent_kafka import Producer
from pydantic import SecretStr

from consumer_worker.settings import WorkerSettings
from consumer_worker.sink import RedisSink
from devstack.ports import free_port
from devstack.stack import LocalStack
from producer_api.settings import ProducerSettings
from telemetry_common.contract import encode_retirement, reading_json, utc_now
from telemetry_common.layout import LEGACY_KEYS
from telemetry_common.partitioning import PARTITIONER, Placement, partition_of
from tests.helpers import (
    TOPIC_PARTITIONS,
    api_client,
    built_offsets,
    end_offsets,
    forget_built_offsets,
    machine_keys,
    produce,
    reading,
    records_dead_lettered,
    running_worker,
    settings_like,
    unique,
    view_replays,
    wait_until,
    wait_until_async,
)
from tests.integration.test_worker import stored_used
from tests.integration.test_worker_schema_upgrade import history_used, v1
from tests.paging import every_page

pytestmark = pytest.mark.anyio

KEY = "k3y-for-the-retirers-0123456789"


async def post(client: httpx.AsyncClient, machine_id: str, used: int) -> str:
    """Post a reading; its consistency token."""
    response = await client.post(f"/cpu-info/{machine_id}", json=reading(used=used))
    assert response.status_code == 200, response.text
    return response.headers["X-Consistency-Token"]


async def latest(client: httpx.AsyncClient, machine_id: str, token: str | None = None) -> Any:
    """The GET answer's status, and the reading's `used` if there is one."""
    query = {} if token is None else {"consistency_token": token}
    response = await client.get(f"/cpu-info/{machine_id}", params=query)
    assert response.status_code in (200, 404), response.text
    return response.json()[machine_id]["used"] if response.status_code == 200 else 404


async def history(client: httpx.AsyncClient, machine_id: str) -> list[int] | int:
    """The `used` column of the machine's history, newest first (404 if none)."""
    response = await client.get(f"/cpu-info/{machine_id}/history", params={"limit": 100})
    if response.status_code == 404:
        return 404
    assert response.status_code == 200, response.text
    return [entry["reading"]["used"] for entry in response.json()["entries"]]


async def fleet(client: httpx.AsyncClient) -> set[str]:
    pages = await every_page(client, "/cpu-info?limit=1000", "machines")
    return {machine["machine_id"] for page in pages for machine in page}


def put_legacy(client: redis.Redis, machine_id: str) -> None:
    """What a 0.1 worker left of the machine (`memtel:v1`): an upgrade is under way."""
    client.hset(
        LEGACY_KEYS.latest(machine_id),
        mapping={
            "reading": reading_json(tuple(reading(used=7).values())),
            "partition": 0,
            "offset": 0,
            "timestamp_ms": 1_700_000_000_000,
            "received_at": "2023-11-14T22:13:20+00:00",
        },
    )
    columns = ",".join(str(v) for v in reading(used=7).values())
    client.xadd(
        LEGACY_KEYS.history(machine_id),
        {"entry": f"0,0,1700000000000,{columns}"},
        id="1700000000000-0",
    )
    client.zadd(LEGACY_KEYS.machine_ids, {machine_id: 0})
    client.zadd(LEGACY_KEYS.last_seen, {machine_id: 1_700_000_000_000})


def legacy_left(client: redis.Redis, machine_id: str) -> list[object]:
    return [
        client.exists(LEGACY_KEYS.latest(machine_id)),
        client.exists(LEGACY_KEYS.history(machine_id)),
        client.zscore(LEGACY_KEYS.machine_ids, machine_id),
        client.zscore(LEGACY_KEYS.last_seen, machine_id),
    ]


async def test_a_retired_machine_is_gone_stays_gone_after_a_rebuild_and_comes_back_with_a_reading(
    stack: LocalStack,
    topic: str,
    worker_settings: WorkerSettings,
    producer_settings: ProducerSettings,
    redis_client: redis.Redis,
) -> None:
    settings = worker_settings.model_copy(update={"worker_view_check_interval_seconds": 0.5})
    group = settings.kafka_consumer_group
    api = settings_like(
        producer_settings,
        kafka_consumer_group=group,
        api_keys=SecretStr(KEY),
        api_consistency_wait_ms=20_000,
    )
    retired, kept = unique("retired"), unique("kept")
    keyed = {"X-API-Key": KEY}
    try:
        with running_worker(settings) as worker:
            async with api_client(api) as client:
                client.headers.update(keyed)
                for used in (1, 2, 3):
                    token = await post(client, retired, used)
                await post(client, kept, 5)
                assert await latest(client, retired, token) == 3
                assert await history(client, retired) == [3, 2, 1]
                put_legacy(redis_client, retired)  # an older reading of the older layout
                assert {retired, kept} <= await fleet(client)

                # Behind the write keys, like POST.
                for headers, status in (({}, 401), ({"X-API-Key": "wrong-key-0123456789"}, 403)):
                    client.headers.pop("X-API-Key")
                    answer = await client.delete(f"/cpu-info/{retired}", headers=headers)
                    assert answer.status_code == status
                    client.headers.update(keyed)

                # A machine nothing is stored for (yet) is retired all the same.
                nothing = await client.delete(f"/cpu-info/{unique('never')}")
                assert nothing.status_code == 200, nothing.text

                # Answered once the view applied it (the worker runs).
                answer = await client.delete(f"/cpu-info/{retired}")
                assert answer.status_code == 200, answer.text
                body = answer.json()
                assert body["applied"] is True
                token = answer.headers["X-Consistency-Token"]
                assert body["machine_id"] == retired
                assert body["consistency_token"] == token
                partition, offset = (int(n) for n in token.split(":"))
                assert body["records"] == [{"partition": partition, "offset": offset}]
                assert partition == machine_keys(retired).partition

                # Read-your-writes: the GET given the token sees the machine gone, and so
                # does everything else; the older layout's copy is gone too.
                assert await latest(client, retired, token) == 404
                assert await history(client, retired) == 404
                listed = await fleet(client)
                assert retired not in listed
                assert kept in listed
                assert legacy_left(redis_client, retired) == [0, 0, None, None]
                assert await latest(client, kept) == 5

                # The view rebuilt from Kafka (nothing built, the machine that stays
                # removed): the retirement is replayed in its place.
                redis_client.delete(machine_keys(kept).latest(kept))
                forget_built_offsets(redis_client, group, topic)
                ends = end_offsets(stack.bootstrap_servers, topic, TOPIC_PARTITIONS)
                wait_until(
                    lambda: (
                        view_replays(worker) >= 1
                        and built_offsets(redis_client, group, topic)
                        == {p: e for p, e in ends.items() if e > 0}
                    ),
                    30,
                    "the view rebuilt from Kafka",
                )
                assert await latest(client, kept) == 5
                assert await latest(client, retired) == 404
                assert await history(client, retired) == 404
                assert retired not in await fleet(client)

                # A reading after the retirement brings the machine back, alone.
                token = await post(client, retired, 9)
                assert await latest(client, retired, token) == 9
                assert await history(client, retired) == [9]
                assert retired in await fleet(client)
    finally:
        for key in (LEGACY_KEYS.latest(retired), LEGACY_KEYS.history(retired)):
            redis_client.delete(key)
        redis_client.zrem(LEGACY_KEYS.machine_ids, retired)
        redis_client.zrem(LEGACY_KEYS.last_seen, retired)


async def test_a_machine_placed_under_two_partition_counts_is_retired_in_both(
    stack: LocalStack,
    topic: str,
    worker_settings: WorkerSettings,
    producer_settings: ProducerSettings,
    redis_client: redis.Redis,
) -> None:
    # The topic had 2 partitions before it got its 3: the workers noted both placements,
    # and the machine's older readings are where 2 partitions put it.
    machine = next(
        m for m in (unique("moved") for _ in range(100)) if partition_of(m, 2) != partition_of(m, 3)
    )
    old, new = partition_of(machine, 2), partition_of(machine, TOPIC_PARTITIONS)
    sink = RedisSink(redis_client, worker_settings.kafka_consumer_group, topic)
    for count in (2, TOPIC_PARTITIONS):
        sink.note_placement(Placement(PARTITIONER, count))
    producer = Producer({"bootstrap.servers": stack.bootstrap_servers})
    key, value, headers = v1(machine, 1)
    producer.produce(topic, key=key, value=value, headers=headers, partition=old)
    assert producer.flush(30) == 0
    api = settings_like(
        producer_settings,
        kafka_consumer_group=worker_settings.kafka_consumer_group,
        api_consistency_wait_ms=20_000,
    )
    with running_worker(worker_settings):
        async with api_client(api) as client:
            token = await post(client, machine, 2)
            assert await latest(client, machine, token) == 2

            # The older reading is in the other partition, which the worker writes on
            # its own: its history holds both once that partition is written too.
            async def both_stored() -> bool:
                return await history(client, machine) == [2, 1]

            await wait_until_async(both_stored, 30, "both readings in the history")

            # Answered once both partitions' views applied their record.
            answer = await client.delete(f"/cpu-info/{machine}")
            assert answer.status_code == 200, answer.text
            assert answer.json()["applied"] is True
            records = answer.json()["records"]
            # First where the partitioner sends the machine now (the token's), then the
            # partition of the older count.
            assert [r["partition"] for r in records] == [new, old]
            assert answer.headers["X-Consistency-Token"] == (
                f"{records[0]['partition']}:{records[0]['offset']}"
            )

            async def gone() -> bool:
                return (
                    await latest(client, machine) == 404 and await history(client, machine) == 404
                )

            await wait_until_async(gone, 30, "the machine retired in both partitions")
            assert machine not in await fleet(client)


def retirement_of(machine_id: str) -> tuple[bytes, bytes, list[tuple[str, str | bytes | None]]]:
    encoded = encode_retirement(machine_id, utc_now())
    return encoded.key, encoded.value, encoded.headers


def test_a_retirement_removes_the_readings_before_it_and_not_those_after(
    stack: LocalStack, topic: str, worker_settings: WorkerSettings, redis_client: redis.Redis
) -> None:
    back, gone = unique("back"), unique("gone")
    # Produced before the worker starts: mostly one batch (one script call per partition),
    # in which the worker orders the retirement with the readings itself.
    produce(
        stack.bootstrap_servers,
        topic,
        [
            v1(back, 1),
            v1(gone, 1),
            retirement_of(back),
            retirement_of(gone),
            v1(back, 2),
            v1(back, 3),
        ],
    )
    ends = end_offsets(stack.bootstrap_servers, topic, TOPIC_PARTITIONS)
    group = worker_settings.kafka_consumer_group
    with running_worker(worker_settings) as worker:
        wait_until(
            lambda: (
                built_offsets(redis_client, group, topic)
                == {p: e for p, e in ends.items() if e > 0}
            ),
            30,
            "every record applied",
        )
        assert records_dead_lettered(worker) == 0
    assert stored_used(redis_client, back) == 3
    assert history_used(redis_client, back) == [2, 3]
    assert stored_used(redis_client, gone) is None
    assert not redis_client.exists(machine_keys(gone).history(gone))
    keys = machine_keys(gone)
    assert redis_client.zscore(keys.machine_ids, gone) is None
    assert redis_client.zscore(keys.last_seen, gone) is None


async def test_a_retirement_no_worker_applies_in_time_is_accepted_as_recorded(
    stack: LocalStack, producer_settings: ProducerSettings
) -> None:
    # No worker reads this group: Kafka acknowledges the retirement, the view never
    # applies it within the wait.
    api = settings_like(
        producer_settings, kafka_consumer_group=unique("no-worker"), api_consistency_wait_ms=200
    )
    async with api_client(api) as client:
        answer = await client.delete(f"/cpu-info/{unique('m')}")
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["applied"] is False
    assert body["consistency_token"] == answer.headers["X-Consistency-Token"]


async def test_retiring_answers_503_when_kafka_does_not_acknowledge(
    producer_settings: ProducerSettings,
) -> None:
    settings = settings_like(producer_settings).model_copy(
        update={
            "kafka_bootstrap_servers": f"127.0.0.1:{free_port()}",
            "kafka_delivery_timeout_ms": 1_000,
            "shutdown_flush_timeout_seconds": 0.5,
        }
    )
    async with api_client(settings) as client:
        answer = await client.delete(f"/cpu-info/{unique('m')}")
    assert answer.status_code == 503
    assert answer.headers["Retry-After"]
    assert "Kafka did not acknowledge the retirement" in answer.json()["detail"]
    assert "X-Consistency-Token" not in answer.headers


async def test_retiring_a_machine_with_an_invalid_id_is_refused(
    producer_settings: ProducerSettings,
) -> None:
    async with api_client(producer_settings) as client:
        answer = await client.delete("/cpu-info/a%20b")
    assert answer.status_code == 422
