"""`POST /cpu-info` against the real broker: what is published, in which order, and what
the answer says about each reading."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from devstack.stack import LocalStack
from producer_api.app import create_app
from producer_api.publisher import KafkaPublisher, Publisher
from producer_api.settings import ProducerSettings
from telemetry_common.contract import decode_record
from tests.helpers import (
    READING,
    TOPIC_PARTITIONS,
    api_client,
    consume_all,
    end_offsets,
    reading,
    unique,
)

pytestmark = pytest.mark.anyio


def batch_of(machines: list[str], per_machine: int) -> list[dict[str, Any]]:
    """`per_machine` readings of each machine, interleaved; `used` counts up per machine."""
    return [
        {"machine_id": machine, "reading": reading(used=used)}
        for used in range(per_machine)
        for machine in machines
    ]


async def test_a_batch_lands_on_the_topic_keyed_and_in_order_per_machine(
    stack: LocalStack, topic: str, producer_settings: ProducerSettings
) -> None:
    machines = [unique("m") for _ in range(5)]
    batch = batch_of(machines, per_machine=20)
    async with api_client(producer_settings) as client:
        response = await client.post("/cpu-info", json=batch)

    assert response.status_code == 200
    answer = response.json()
    assert answer["acknowledged"] == len(batch)
    assert answer["failed"] == 0
    assert {item["status"] for item in answer["items"]} == {"acknowledged"}

    messages = consume_all(stack.bootstrap_servers, topic, len(batch))
    by_position = {(m.partition(), m.offset()): m for m in messages}
    # The answer names, for each item, the record that holds it.
    for sent, where in zip(batch, answer["items"], strict=True):
        message = by_position[(where["partition"], where["offset"])]
        assert message.key() == sent["machine_id"].encode()
        record = decode_record(message.key(), message.value())
        assert record.reading.model_dump() == sent["reading"]
    # Each machine's readings are on one partition, in the order sent.
    per_machine: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
    for message in messages:
        record = decode_record(message.key(), message.value())
        per_machine[record.machine_id].append(
            (message.partition() or 0, message.offset() or 0, record.reading.used)
        )
    for machine in machines:
        positions = sorted(per_machine[machine])
        assert len({partition for partition, _, _ in positions}) == 1
        assert [used for _, _, used in positions] == list(range(20))


async def test_an_invalid_item_publishes_nothing_of_the_batch(
    stack: LocalStack, topic: str, producer_settings: ProducerSettings
) -> None:
    batch = batch_of([unique("m"), unique("m")], per_machine=3)
    batch[2]["reading"] = {**READING, "used": -1}
    batch[4]["machine_id"] = "not/an/id"
    async with api_client(producer_settings) as client:
        response = await client.post("/cpu-info", json=batch)
        assert response.status_code == 422
        locations = [error["loc"] for error in response.json()["detail"]]
        assert locations == [["body", 2, "reading", "used"], ["body", 4, "machine_id"]]

        # Sent again, fixed, the whole batch goes through; only it is in the topic.
        batch[2]["reading"] = dict(READING)
        batch[4]["machine_id"] = batch[0]["machine_id"]
        fixed = await client.post("/cpu-info", json=batch)
    assert fixed.status_code == 200
    assert sum(end_offsets(stack.bootstrap_servers, topic, TOPIC_PARTITIONS).values()) == len(batch)


async def test_a_batch_over_the_item_bound_is_413_and_publishes_nothing(
    stack: LocalStack, topic: str, producer_settings: ProducerSettings
) -> None:
    settings = producer_settings.model_copy(update={"api_max_batch_items": 10})
    async with api_client(settings) as client:
        too_many = await client.post("/cpu-info", json=batch_of([unique("m")], per_machine=11))
        assert too_many.status_code == 413
        assert "at most 10 readings" in too_many.json()["detail"]
        at_bound = await client.post("/cpu-info", json=batch_of([unique("m")], per_machine=10))
    assert at_bound.status_code == 200
    assert sum(end_offsets(stack.bootstrap_servers, topic, TOPIC_PARTITIONS).values()) == 10


QUEUE_SIZE = 3


def small_queue(settings: ProducerSettings) -> Publisher:
    # A producer whose local queue holds 3 records: a 5-item batch overflows it, the
    # way a producer under more load than the broker takes does.
    config = {**settings.producer_config(), "queue.buffering.max.messages": QUEUE_SIZE}
    return KafkaPublisher(config)


@asynccontextmanager
async def client_of_small_queue(settings: ProducerSettings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, publisher_factory=small_queue)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield client


async def test_a_batch_partly_published_says_which_items_to_send_again(
    stack: LocalStack, topic: str, producer_settings: ProducerSettings
) -> None:
    machine = unique("m")
    batch = batch_of([machine], per_machine=QUEUE_SIZE + 2)
    async with client_of_small_queue(producer_settings) as client:
        response = await client.post("/cpu-info", json=batch)

    assert response.status_code == 207
    assert int(response.headers["Retry-After"]) > 0
    answer = response.json()
    assert answer["acknowledged"] == QUEUE_SIZE
    assert answer["failed"] == 2
    statuses = [item["status"] for item in answer["items"]]
    assert statuses == ["acknowledged"] * QUEUE_SIZE + ["failed"] * 2
    assert "local queue is full" in answer["items"][QUEUE_SIZE]["detail"]
    # The item after the one that failed was not produced either: order is kept.
    assert f"record {QUEUE_SIZE} of the batch" in answer["items"][QUEUE_SIZE + 1]["detail"]

    messages = consume_all(stack.bootstrap_servers, topic, QUEUE_SIZE)
    used = [decode_record(m.key(), m.value()).reading.used for m in messages]
    assert used == list(range(QUEUE_SIZE))
    assert sum(end_offsets(stack.bootstrap_servers, topic, TOPIC_PARTITIONS).values()) == 3
