"""Writes a batch of readings to Redis in one pipelined round trip."""

from __future__ import annotations

from collections.abc import Sequence

import redis

from telemetry_common.storage import STORE_IF_NEWER_LUA, StoredReading, latest_reading_key


class RedisSink:
    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._store_if_newer = client.register_script(STORE_IF_NEWER_LUA)

    def write(self, readings: Sequence[StoredReading]) -> int:
        """Store each reading unless a newer one is there; return how many were written.

        Raises redis.RedisError if Redis did not accept the whole batch; the caller
        retries it (the writes are idempotent).
        """
        if not readings:
            return 0
        with self._client.pipeline(transaction=False) as pipe:
            for reading in readings:
                self._store_if_newer(
                    keys=[latest_reading_key(reading.machine_id)],
                    args=reading.store_args(),
                    client=pipe,
                )
            results = pipe.execute()
        return sum(1 for written in results if written == 1)
