"""Kafka or Redis down: a clear 503 with Retry-After, within the configured bound."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from devstack.processes import ManagedProcess
from devstack.stack import LocalStack
from producer_api.settings import ProducerSettings
from tests.helpers import READING, OwnRedis, api_client, stack_settings, unreachable_settings

pytestmark = pytest.mark.anyio

DELIVERY_TIMEOUT_MS = 2000
# The bound a client can rely on: the delivery timeout plus the publisher's grace.
BOUND_SECONDS = DELIVERY_TIMEOUT_MS / 1000 + 1.0


def settings_for(stack: LocalStack, **changes: Any) -> ProducerSettings:
    return stack_settings(
        stack,
        kafka_delivery_timeout_ms=DELIVERY_TIMEOUT_MS,
        shutdown_flush_timeout_seconds=0.5,
        **changes,
    )


async def test_post_answers_503_within_the_bound_when_kafka_stops(own_stack: LocalStack) -> None:
    async with api_client(settings_for(own_stack)) as client:
        assert (await client.post("/cpu-info/m1", json=READING)).status_code == 200

        own_stack.process("kafka").stop()
        started = time.monotonic()
        response = await client.post("/cpu-info/m1", json=READING)
        elapsed = time.monotonic() - started

        assert response.status_code == 503
        assert "Kafka did not acknowledge" in response.json()["detail"]
        assert int(response.headers["Retry-After"]) > 0
        assert elapsed < BOUND_SECONDS + 1.0, f"took {elapsed:.1f}s"

        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["kafka"] == "unavailable"


async def test_post_answers_503_when_kafka_was_never_reachable() -> None:
    settings = unreachable_settings(kafka_delivery_timeout_ms=DELIVERY_TIMEOUT_MS)
    async with api_client(settings) as client:
        started = time.monotonic()
        response = await client.post("/cpu-info/m1", json=READING)
        elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    assert elapsed < BOUND_SECONDS + 1.0, f"took {elapsed:.1f}s"


async def test_get_answers_503_when_redis_is_down(own_stack: LocalStack) -> None:
    async with api_client(settings_for(own_stack, redis_timeout_seconds=0.5)) as client:
        assert (await client.get("/cpu-info/m1")).status_code == 404
        own_stack.process("redis").stop()
        response = await client.get("/cpu-info/m1")
        ready = await client.get("/readyz")
    assert response.status_code == 503
    assert "Redis is unavailable" in response.json()["detail"]
    assert response.headers["Retry-After"]
    assert ready.json()["checks"]["redis"] == "unavailable"


@contextmanager
def frozen(process: ManagedProcess) -> Iterator[None]:
    """SIGSTOP the process: its port still accepts connections, but nothing answers."""
    assert process.pid is not None
    os.kill(process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(process.pid, signal.SIGCONT)


REDIS_TIMEOUT_SECONDS = 1.0
REDIS_DEADLINE_SECONDS = 1.5
# What a caller may rely on: the deadline, and a little for the event loop and the answer.
REDIS_BOUND_SECONDS = REDIS_DEADLINE_SECONDS + 0.5


async def test_get_and_readiness_answer_503_within_the_deadline_when_redis_hangs(
    stack: LocalStack, own_redis: OwnRedis
) -> None:
    own_redis.server.start()
    settings = stack_settings(
        stack,
        redis_url=own_redis.url,
        redis_cluster=False,
        redis_timeout_seconds=REDIS_TIMEOUT_SECONDS,
        redis_deadline_seconds=REDIS_DEADLINE_SECONDS,
        shutdown_flush_timeout_seconds=0.5,
    )
    async with api_client(settings) as client:
        # A pooled connection exists before the freeze, as in a running service.
        assert (await client.get("/cpu-info/m1")).status_code == 404
        with frozen(own_redis.server):
            started = time.monotonic()
            response = await client.get("/cpu-info/m1")
            get_elapsed = time.monotonic() - started

            started = time.monotonic()
            ready = await client.get("/readyz")
            ready_elapsed = time.monotonic() - started

        # Without the deadline, redis-py's retries took several socket timeouts.
        assert response.status_code == 503
        assert f"did not answer within {REDIS_DEADLINE_SECONDS:g} s" in response.json()["detail"]
        assert int(response.headers["Retry-After"]) > 0
        assert get_elapsed < REDIS_BOUND_SECONDS, f"GET took {get_elapsed:.2f}s"

        assert ready.status_code == 503
        assert ready.json()["checks"] == {"kafka": "ok", "redis": "unavailable"}
        assert ready_elapsed < REDIS_BOUND_SECONDS, f"readiness took {ready_elapsed:.2f}s"

        # The timed-out connections were dropped, not returned to the pool half-read.
        assert (await client.get("/cpu-info/m1")).status_code == 404
