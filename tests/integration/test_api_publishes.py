"""The API against the real broker and the real Redis."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
import redis

from devstack.stack import LocalStack
from producer_api.publisher import KafkaPublisher
from producer_api.settings import ProducerSettings
from telemetry_common.contract import MemoryReading, decode_record, encode_record, utc_now
from telemetry_common.partitioning import partition_of
from telemetry_common.storage import LatestField, StoredReading
from tests.helpers import (
    READING,
    TOPIC_PARTITIONS,
    api_client,
    consume_all,
    machine_keys,
    reading,
    sink_for_topic,
    unique,
)

pytestmark = pytest.mark.anyio


async def test_a_post_lands_on_the_topic_keyed_by_machine(
    stack: LocalStack, topic: str, producer_settings: ProducerSettings
) -> None:
    machine_id = unique("m")
    async with api_client(producer_settings) as client:
        response = await client.post(f"/cpu-info/{machine_id}", json=READING)

    assert response.status_code == 200
    assert response.json() == {machine_id: READING}
    (message,) = consume_all(stack.bootstrap_servers, topic, 1)
    assert message.key() == machine_id.encode()
    assert dict(message.headers() or [])["content-type"] == b"application/json"
    record = decode_record(message.key(), message.value())
    assert record.machine_id == machine_id
    assert record.reading.model_dump() == READING
    assert json.loads(message.value() or b"")["reading"] == READING
    # The answer names where the record went.
    assert int(response.headers["X-Kafka-Partition"]) == message.partition()
    assert int(response.headers["X-Kafka-Offset"]) == message.offset()


async def test_one_machines_readings_stay_in_order_on_one_partition(
    stack: LocalStack, topic: str, producer_settings: ProducerSettings
) -> None:
    machine_id = unique("m")
    async with api_client(producer_settings) as client:
        answers = [
            await client.post(f"/cpu-info/{machine_id}", json=reading(used=used))
            for used in range(10)
        ]
    assert {a.status_code for a in answers} == {200}
    assert len({a.headers["X-Kafka-Partition"] for a in answers}) == 1
    offsets = [int(a.headers["X-Kafka-Offset"]) for a in answers]
    assert offsets == sorted(offsets)

    messages = consume_all(stack.bootstrap_servers, topic, 10)
    used_in_order = [decode_record(m.key(), m.value()).reading.used for m in messages]
    assert used_in_order == list(range(10))


async def test_get_answers_the_latest_stored_reading(
    producer_settings: ProducerSettings, redis_client: redis.Redis
) -> None:
    machine_id = unique("m")
    partition = partition_of(machine_id, TOPIC_PARTITIONS)
    sink_for_topic(redis_client, producer_settings.kafka_topic).put(
        [
            StoredReading(
                machine_id=machine_id,
                reading=MemoryReading.model_validate(READING),
                partition=partition,
                offset=7,
                timestamp_ms=1,
                received_at=utc_now(),
            )
        ]
    )
    async with api_client(producer_settings) as client:
        response = await client.get(f"/cpu-info/{machine_id}")
    assert response.status_code == 200
    assert response.json() == {machine_id: READING}
    assert response.headers["X-Kafka-Partition"] == str(partition)
    assert response.headers["X-Kafka-Offset"] == "7"


async def test_get_of_an_unknown_machine_is_404(producer_settings: ProducerSettings) -> None:
    async with api_client(producer_settings) as client:
        response = await client.get(f"/cpu-info/{unique('never-seen')}")
    assert response.status_code == 404
    assert response.json() == {"detail": "Data not found"}


async def test_a_damaged_stored_reading_answers_500_naming_the_damage(
    producer_settings: ProducerSettings, redis_client: redis.Redis
) -> None:
    machine_id = unique("m")
    stored = StoredReading(
        machine_id=machine_id,
        reading=MemoryReading.model_validate(READING),
        partition=partition_of(machine_id, TOPIC_PARTITIONS),
        offset=1,
        timestamp_ms=1,
        received_at=utc_now(),
    )
    sink_for_topic(redis_client, producer_settings.kafka_topic).put([stored])
    redis_client.hset(machine_keys(machine_id).latest(machine_id), LatestField.OFFSET, "x")
    async with api_client(producer_settings) as client:
        response = await client.get(f"/cpu-info/{machine_id}")
    assert response.status_code == 500
    detail = response.json()["detail"]
    assert machine_id in detail
    assert "field offset" in detail


async def test_ready_when_kafka_knows_the_topic_and_redis_answers(
    producer_settings: ProducerSettings,
) -> None:
    async with api_client(producer_settings) as client:
        ready = await client.get("/readyz")
        live = await client.get("/healthz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"kafka": "ok", "redis": "ok"}
    assert live.json() == {"status": "ok"}


async def test_not_ready_when_the_topic_does_not_exist(
    producer_settings: ProducerSettings,
) -> None:
    settings = producer_settings.model_copy(update={"kafka_topic": unique("missing")})
    async with api_client(settings) as client:
        ready = await client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["kafka"] == "unavailable"


async def test_records_queued_at_shutdown_are_delivered_before_close_returns(
    stack: LocalStack, topic: str
) -> None:
    # A long linger keeps the records in the producer's queue: only the flush in
    # close() sends them.
    settings = ProducerSettings(
        _env_file=None,
        kafka_bootstrap_servers=stack.bootstrap_servers,
        kafka_delivery_timeout_ms=20_000,
        kafka_linger_ms=1000,
    )
    publisher = KafkaPublisher(settings.producer_config())
    record = encode_record(unique("m"), MemoryReading.model_validate(READING), utc_now())
    in_flight = [asyncio.create_task(publisher.publish(topic, record)) for _ in range(20)]
    await publisher.close(flush_timeout_seconds=20)

    reports = await asyncio.gather(*in_flight)
    assert len({(r.partition, r.offset) for r in reports}) == 20
    assert len(consume_all(stack.bootstrap_servers, topic, 20)) == 20


async def streamed(body: bytes) -> AsyncIterator[bytes]:
    """A body without Content-Length: httpx sends it chunked."""
    yield body


@pytest.mark.parametrize(
    "body",
    [
        json.dumps(READING).encode(),
        # Escapes, another key order, a negative zero and spacing are all still a reading.
        b'{ "available" : 10352120, "tot\\u0061l": 16318064, "used": 5204372,\n'
        b'"free": 6104220, "shared": 412908, "buff_cache": 5009472 }',
        b'{"total": 0, "used": -0, "free": 0, "shared": 0, "buff_cache": 0, "available": 0}',
    ],
)
async def test_a_post_gets_the_same_answer_whether_its_body_is_sized_or_streamed(
    stack: LocalStack, topic: str, producer_settings: ProducerSettings, body: bytes
) -> None:
    machine_id = unique("m")
    headers = {"content-type": "application/json"}
    async with api_client(producer_settings) as client:
        sized = await client.post(f"/cpu-info/{machine_id}", content=body, headers=headers)
        streamed_post = await client.post(
            f"/cpu-info/{machine_id}", content=streamed(body), headers=headers
        )
    assert "content-length" not in streamed_post.request.headers
    assert sized.status_code == streamed_post.status_code == 200
    assert sized.content == streamed_post.content
    assert json.loads(sized.content) == {machine_id: json.loads(body)}
    position_headers = {"x-kafka-partition", "x-kafka-offset"}
    assert sized.headers.keys() == streamed_post.headers.keys() >= position_headers
    assert sized.headers["content-type"] == streamed_post.headers["content-type"]
    assert int(streamed_post.headers["X-Kafka-Offset"]) == int(sized.headers["X-Kafka-Offset"]) + 1
    assert len(consume_all(stack.bootstrap_servers, topic, 2)) == 2


async def test_a_batch_gets_the_same_answer_whether_its_body_is_sized_or_streamed(
    stack: LocalStack, topic: str, producer_settings: ProducerSettings
) -> None:
    machine_id = unique("m")
    body = json.dumps(
        [{"machine_id": machine_id, "reading": reading(used=used)} for used in range(3)]
    ).encode()
    headers = {"content-type": "application/json"}
    async with api_client(producer_settings) as client:
        sized = await client.post("/cpu-info", content=body, headers=headers)
        streamed_post = await client.post("/cpu-info", content=streamed(body), headers=headers)
    assert sized.status_code == streamed_post.status_code == 200
    assert sized.headers.keys() == streamed_post.headers.keys()
    first, second = sized.json(), streamed_post.json()
    assert [item["offset"] + 3 for item in first["items"]] == [
        item["offset"] for item in second["items"]
    ]
    assert {**first, "items": []} == {**second, "items": []}
    assert len(consume_all(stack.bootstrap_servers, topic, 6)) == 6
