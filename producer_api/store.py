"""Reads the latest readings the consumer worker stored in Redis."""

from __future__ import annotations

import redis.asyncio

from telemetry_common.storage import StoredReading, latest_reading_key


class ReadingStore:
    def __init__(self, client: redis.asyncio.Redis) -> None:
        self._client = client

    async def latest(self, machine_id: str) -> StoredReading | None:
        raw = await self._client.hgetall(latest_reading_key(machine_id))
        if not raw:
            return None
        # The client decodes responses, so keys and values are already str.
        return StoredReading.from_redis_hash(machine_id, {str(k): str(v) for k, v in raw.items()})

    async def ping(self) -> bool:
        return bool(await self._client.ping())
