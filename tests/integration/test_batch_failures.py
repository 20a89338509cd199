"""`POST /cpu-info` while Kafka is down: 503 with Retry-After, nothing claimed as stored."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.ports import free_port
from devstack.settings import DevstackSettings
from devstack.stack import LocalStack
from producer_api.settings import ProducerSettings
from tests.helpers import READING, api_client, unique

pytestmark = pytest.mark.anyio

DELIVERY_TIMEOUT_MS = 2000
BATCH = [{"machine_id": f"m{i}", "reading": READING} for i in range(20)]


@pytest.fixture
def own_stack(tmp_path: Path) -> Iterator[LocalStack]:
    """A broker of this test's own, so that stopping it disturbs no other test."""
    settings = DevstackSettings.on_free_ports(kafka_topic=unique("readings"))
    with LocalStack(settings, tmp_path) as local:
        yield local


async def test_a_batch_answers_503_when_kafka_stops(own_stack: LocalStack) -> None:
    settings = ProducerSettings(
        _env_file=None,
        kafka_bootstrap_servers=own_stack.bootstrap_servers,
        kafka_topic=own_stack.settings.kafka_topic,
        redis_url=own_stack.redis_url,
        kafka_delivery_timeout_ms=DELIVERY_TIMEOUT_MS,
        shutdown_flush_timeout_seconds=0.5,
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
    settings = ProducerSettings(
        _env_file=None,
        kafka_bootstrap_servers=f"127.0.0.1:{free_port()}",
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
        kafka_delivery_timeout_ms=DELIVERY_TIMEOUT_MS,
        shutdown_flush_timeout_seconds=0.5,
    )
    async with api_client(settings) as client:
        response = await client.post("/cpu-info", json=BATCH)
    assert response.status_code == 503
    assert response.headers["Retry-After"]
