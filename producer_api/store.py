"""Reads the latest readings the consumer worker stored in Redis, each within a deadline.

redis-py bounds each attempt of a call by its socket timeout and retries connection
errors and timeouts, so a Redis that hangs (stopped, swapping, a network black hole)
keeps a call busy for several timeouts plus backoff. Every call here therefore runs
under one overall deadline, retries included, and fails with
RedisDeadlineExceededError once it has passed. Cancelling the call closes its
connection (redis-py does not return a connection with an unread reply to the pool).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

import redis.asyncio

from telemetry_common.storage import StoredReading, latest_reading_key

T = TypeVar("T")


class RedisDeadlineExceededError(Exception):
    """Redis did not answer a call within the API's deadline."""

    def __init__(self, deadline_seconds: float) -> None:
        super().__init__(f"Redis did not answer within {deadline_seconds:g} s")
        self.deadline_seconds = deadline_seconds


class ReadingStore:
    def __init__(self, client: redis.asyncio.Redis, deadline_seconds: float) -> None:
        self._client = client
        self._deadline_seconds = deadline_seconds

    async def _within_deadline(self, call: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(self._deadline_seconds):
                return await call
        except TimeoutError as exc:
            # Only the deadline raises the built-in TimeoutError here: redis-py reports
            # its own socket timeouts as redis.exceptions.TimeoutError, a RedisError.
            raise RedisDeadlineExceededError(self._deadline_seconds) from exc

    async def latest(self, machine_id: str) -> StoredReading | None:
        raw = await self._within_deadline(self._client.hgetall(latest_reading_key(machine_id)))
        if not raw:
            return None
        # The client decodes responses, so keys and values are already str.
        return StoredReading.from_redis_hash(machine_id, {str(k): str(v) for k, v in raw.items()})

    async def ping(self) -> bool:
        return bool(await self._within_deadline(self._client.ping()))
