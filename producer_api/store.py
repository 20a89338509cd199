"""Reads what the consumer worker stored in Redis (latest readings, histories, the fleet
index, how far the view is built), each call within a deadline.

redis-py bounds each attempt of a call by its socket timeout and retries connection
errors and timeouts, so a Redis that hangs (stopped, swapping, a network black hole)
keeps a call busy for several timeouts plus backoff. Every call here therefore runs
under one overall deadline, retries included, and fails with
RedisDeadlineExceededError once it has passed. Cancelling the call closes its
connection (redis-py does not return a connection with an unread reply to the pool).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from typing import Any, TypeVar, cast

import redis.asyncio

from telemetry_common.storage import (
    MACHINE_IDS_KEY,
    MACHINES_LAST_SEEN_KEY,
    StoredHistoryEntry,
    StoredReading,
    built_offset_field,
    history_key,
    latest_reading_key,
    parse_built_offset,
)

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
        return _stored_reading(machine_id, raw)

    async def view_of(
        self, built_offsets_key: str, partition: int, machine_id: str
    ) -> tuple[int | None, StoredReading | None]:
        """How far the view of `partition` is built (the next offset to read; None: not
        at all), and then the machine's latest reading: read in that order, so that the
        reading is at least as new as the view said."""
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.hget(built_offsets_key, built_offset_field(partition))
            pipe.hgetall(latest_reading_key(machine_id))
            built, raw = await self._within_deadline(pipe.execute())
        return parse_built_offset(built), _stored_reading(machine_id, raw)

    async def history(
        self, machine_id: str, newest: str, oldest: str, count: int
    ) -> list[StoredHistoryEntry]:
        """Up to `count` entries of the machine's history, newest first, between the
        stream ids (or XREVRANGE bounds) `newest` and `oldest`."""
        entries = await self._within_deadline(
            self._client.xrevrange(history_key(machine_id), max=newest, min=oldest, count=count)
        )
        return [
            StoredHistoryEntry.from_stream_entry(
                machine_id, str(entry_id), {str(k): str(v) for k, v in (fields or {}).items()}
            )
            for entry_id, fields in entries or []
        ]

    async def machine_known(self, machine_id: str) -> bool:
        """Whether Redis holds anything of the machine: a history or a latest reading."""
        keys = (history_key(machine_id), latest_reading_key(machine_id))
        return bool(await self._within_deadline(self._client.exists(*keys)))

    async def machines_after(self, after: str | None, count: int) -> list[tuple[str, int | None]]:
        """Up to `count` machines of the fleet index in machine id order, after `after`,
        each with its last-seen time (ms; None if the index lacks it)."""
        start = "-" if after is None else f"({after}"
        members = await self._within_deadline(
            self._client.zrangebylex(MACHINE_IDS_KEY, start, "+", start=0, num=count)
        )
        if not members:
            return []
        names = [str(member) for member in members]
        scores = await self._within_deadline(self._client.zmscore(MACHINES_LAST_SEEN_KEY, names))
        return [
            (name, None if score is None else int(score))
            for name, score in zip(names, scores, strict=True)
        ]

    async def machines_seen_by(
        self, cutoff_ms: int, after: tuple[int, str] | None, count: int
    ) -> list[tuple[str, int]]:
        """Up to `count` machines last seen at `cutoff_ms` or before, in (last seen,
        machine id) order, after the machine `after` names by that pair."""
        key = MACHINES_LAST_SEEN_KEY
        if after is None:
            rows = await self._within_deadline(
                self._client.zrange(
                    key, "-inf", cutoff_ms, byscore=True, offset=0, num=count, withscores=True
                )
            )
        else:
            first = await self._within_deadline(self._rank_after(*after))
            rows = await self._within_deadline(
                self._client.zrange(key, first, first + count - 1, withscores=True)
            )
        scored = cast(list[tuple[str, float]], rows)
        return [(str(member), int(score)) for member, score in scored if score <= cutoff_ms]

    async def _rank_after(self, score: int, member: str) -> int:
        """The rank in the last-seen index where (score, member) order goes on after
        `member` seen at `score`, whether or not it is still there with that score.

        Redis orders members of equal score by their bytes; machine ids are ASCII, so
        Python's string order is the same. Found by bisection over the members that
        share the score (usually none or one, so at most a couple of calls).
        """
        key = MACHINES_LAST_SEEN_KEY
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.zcount(key, "-inf", f"({score}")
            pipe.zcount(key, score, score)
            below, ties = await pipe.execute()
        low, high = int(below), int(below) + int(ties)
        while low < high:
            middle = (low + high) // 2
            probe = await self._client.zrange(key, middle, middle)
            if probe and str(probe[0]) <= member:
                low = middle + 1
            else:
                high = middle
        return low

    async def ping(self) -> bool:
        return bool(await self._within_deadline(self._client.ping()))


def _stored_reading(machine_id: str, raw: Mapping[Any, Any] | None) -> StoredReading | None:
    if not raw:
        return None
    # The client decodes responses, so keys and values are already str.
    return StoredReading.from_redis_hash(machine_id, {str(k): str(v) for k, v in raw.items()})
