"""`POST /cpu-info` while Kafka is down: 503 with Retry-After, nothing claimed as stored."""

from __future__ import annotations

import pytest

from devstack.stack import LocalStack
from tests.helpers import READING, api_client, stack_settings, unreachable_settings

pytestmark = pytest.mark.anyio

DELIVERY_TIMEOUT_MS = 2000
BATCH = [{"machine_id": f"m{i}", "reading": READING} for i in range(20)]


async def test_a_batch_answers_503_when_kafka_stops(own_stack: LocalStack) -> None:
    settings = stack_settings(
        own_stack, kafka_delivery_timeout_ms=DELIVERY_TIMEOUT_MS, shutdown_flush_timeout_seconds=0.5
    )
    async with api_client(settings) as client:
        assert (await client.post("/cpu-info", json=BATCH)).status_code == 200

        own_stack.process("kafka").stop()
        response = await client.post("/cpu-info", json=BATCH)

    assert response.status_code == 503
    detail = response.json()["detail"]
    assert "Kafka acknowledged no reading of the batch" in detail
    assert "none is confirmed as stored" in detail
    assert int(response.headers["Retry-After"]) > 0


async def test_a_batch_answers_503_when_kafka_was_never_reachable() -> None:
    settings = unreachable_settings(kafka_delivery_timeout_ms=DELIVERY_TIMEOUT_MS)
    async with api_client(settings) as client:
        response = await client.post("/cpu-info", json=BATCH)
    assert response.status_code == 503
    assert response.headers["Retry-After"]
