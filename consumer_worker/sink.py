"""Writes batches of readings to Redis, each with the offsets it builds the view up to."""

from __future__ import annotations

from collections.abc import Sequence

import redis

from telemetry_common.storage import (
    NO_HISTORY,
    STORE_BATCH_LUA,
    STORE_IF_NEWER_LUA,
    HistoryRetention,
    PartitionStep,
    ReadingWrite,
    StoreBatchResult,
    StoredReading,
    built_offset_field,
    built_offsets_from_hash,
    store_batch_call,
    store_call,
)


class RedisSink:
    def __init__(self, client: redis.Redis, history: HistoryRetention = NO_HISTORY) -> None:
        self._client = client
        self._history = history
        self._store_if_newer = client.register_script(STORE_IF_NEWER_LUA)
        self._store_batch = client.register_script(STORE_BATCH_LUA)

    def write_batch(
        self,
        built_offsets_key: str,
        steps: Sequence[PartitionStep],
        readings: Sequence[ReadingWrite],
    ) -> StoreBatchResult:
        """In one atomic step: store each reading unless a newer one is there, append it
        and its `earlier` readings to the machine's history (if history is kept), index
        the machine, and move each partition's built offset (in the `built_offsets_key`
        hash) to its step's `next_offset`.

        A partition whose built offset in Redis is not the step's `expected` one (Redis
        lost writes, was emptied or replaced) is left alone, its readings unwritten, and
        reported in `out_of_step`. Raises redis.RedisError if Redis did not run the
        batch; the caller retries it (the writes are idempotent: a replayed reading
        neither overwrites a newer one nor enters the history twice).

        One EVALSHA per batch (the registered script loads itself if Redis lost it).
        """
        if not steps:
            return StoreBatchResult(written=0, out_of_step={})
        keys, args = store_batch_call(built_offsets_key, steps, readings, self._history)
        return StoreBatchResult.from_reply(self._store_batch(keys=keys, args=args))

    def built_offsets(
        self, built_offsets_key: str, partitions: Sequence[int]
    ) -> dict[int, int | None]:
        """How far the view is built from each partition (None: not at all)."""
        if not partitions:
            return {}
        fields = [built_offset_field(p) for p in partitions]
        values = self._client.hmget(built_offsets_key, fields)
        return built_offsets_from_hash(partitions, values)

    def write(self, readings: Sequence[StoredReading]) -> int:
        """Store readings outside any batch (no built offsets move, no history is
        written; the fleet index is); return how many were written.

        For tools and tests that put a reading in place; the worker uses write_batch.
        """
        if not readings:
            return 0
        with self._client.pipeline(transaction=False) as pipe:
            for reading in readings:
                keys, args = store_call(reading.as_write())
                self._store_if_newer(keys=keys, args=args, client=pipe)
            results = pipe.execute()
        return sum(1 for written in results if written == 1)
