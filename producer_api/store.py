"""Reads the latest readings the consumer worker stored in Redis."""

from __future__ import annotations

import redis.asyncio

from telemetry_common.contract import StoredReading, latest_reading_key


class ReadingStore:
    def __init__(self, client: redis.asyncio.Redis) -> None:
        self._client = client

    async def latest(self, machine_id: str) -> StoredReading | None:
        fields: dict[str, str] = await self._client.hgetall(latest_reading_key(machine_id))
        if not fields:
            return None
        return StoredReading.from_redis_hash(machine_id, fields)

    async def ping(self) -> bool:
        return bool(await self._client.ping())
