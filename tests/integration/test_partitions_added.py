"""Partitions added to a live topic: every machine is served its newest reading,
whichever partition stored it, with its whole history and once in the fleet listing."""

from __future__ import annotations

import time

import httpx
import pytest

# NewPartitions' documented home is confluent_kafka.admin; its type stubs do not re-export it.
from confluent_kafka.admin import AdminClient, NewPartitions  # type: ignore[attr-defined]

from consumer_worker.settings import WorkerSettings
from devstack.stack import LocalStack
from producer_api.settings import ProducerSettings
from telemetry_common.partitioning import partition_of
from tests.helpers import (
    TOPIC_PARTITIONS,
    api_client,
    reading,
    running_worker,
    unique,
    wait_until_async,
)
from tests.paging import every_page, whole_listing

pytestmark = pytest.mark.anyio

MORE_PARTITIONS = 2 * TOPIC_PARTITIONS
# The clients notice the added partitions on their next metadata refresh.
QUICK_METADATA = {"topic.metadata.refresh.interval.ms": "500"}


def add_partitions(bootstrap: str, topic: str, total: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_partitions([NewPartitions(topic, total)], operation_timeout=30)
    futures[topic].result(timeout=60)


async def post_round(client: httpx.AsyncClient, machines: list[str], used: int) -> dict[str, int]:
    """One reading of every machine; the partition each went to."""
    partitions = {}
    for machine in machines:
        response = await client.post(f"/cpu-info/{machine}", json=reading(used=used))
        assert response.status_code == 200, response.text
        partitions[machine] = int(response.headers["X-Kafka-Partition"])
    return partitions


async def test_machines_that_moved_partition_are_served_whole(
    stack: LocalStack,
    topic: str,
    producer_settings: ProducerSettings,
    worker_settings: WorkerSettings,
) -> None:
    prefix = unique("moving")
    machines = [f"{prefix}-{n:02d}" for n in range(40)]
    moving = [
        m for m in machines if partition_of(m, TOPIC_PARTITIONS) != partition_of(m, MORE_PARTITIONS)
    ]
    assert moving, "some machines change partition"
    api_settings = producer_settings.model_copy(
        update={
            "kafka_config": QUICK_METADATA,
            "kafka_consumer_group": worker_settings.kafka_consumer_group,
        }
    )
    worker = worker_settings.model_copy(update={"kafka_config": QUICK_METADATA})
    rounds = 0
    async with api_client(api_settings) as client:
        with running_worker(worker):
            # Readings before the topic grows, then partitions added while readings go on.
            for _ in range(3):
                await post_round(client, machines, rounds)
                rounds += 1
            add_partitions(stack.bootstrap_servers, topic, MORE_PARTITIONS)
            deadline = time.monotonic() + 60
            while True:
                sent_to = await post_round(client, machines, rounds)
                rounds += 1
                if all(sent_to[m] == partition_of(m, MORE_PARTITIONS) for m in machines):
                    break
                assert time.monotonic() < deadline, "the producer never used the new partitions"
            await post_round(client, machines, rounds)
            last = rounds

            async def all_served() -> bool:
                answers = [await client.get(f"/cpu-info/{m}") for m in machines]
                return all(
                    a.status_code == 200 and a.json()[m]["used"] == last
                    for m, a in zip(machines, answers, strict=True)
                )

            await wait_until_async(all_served, 60, "every machine's newest reading")

        for machine in machines:
            pages = await every_page(client, f"/cpu-info/{machine}/history?limit=4", "entries")
            used = [e["reading"]["used"] for page in pages for e in page]
            assert used == list(range(last, -1, -1)), machine

        for query in ("limit=7", "limit=7&not_seen_for=0"):
            pages = await whole_listing(client, query)
            listed = [m["machine_id"] for page in pages for m in page]
            listed = [m for m in listed if m.startswith(prefix)]
            assert sorted(listed) == machines, query
            assert len(listed) == len(set(listed)), query
