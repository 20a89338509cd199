"""Reads what the consumer worker stored in Redis (latest readings, histories, the fleet
index, how far the view is built), each call within a deadline.

The view is laid out by Kafka partition (telemetry_common.layout). A machine is read
from the partition its id hashes to under each placement the workers noted in Redis
(each partition count the topic has had; the partitioner of older producers): one
partition, unless partitions were added, when the machine's newest reading wins,
whichever partition stored it. The fleet listing merges
every partition's index in order. While an upgrade from the unsharded `memtel:v1`
layout is underway (its keys are still there), its keys are read as one more source,
so that no machine goes missing while the worker builds the new layout from Kafka.

redis-py bounds each attempt of a call by its socket timeout and retries connection
errors and timeouts, so a Redis that hangs (stopped, swapping, a network black hole)
keeps a call busy for several timeouts plus backoff. Every call here therefore runs
under one overall deadline, retries included, and fails with
RedisDeadlineExceededError once it has passed. Cancelling the call closes its
connection (redis-py does not return a connection with an unread reply to the pool).
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Final, TypeVar, cast

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoPermissionError, RedisClusterException

from telemetry_common.layout import LEGACY_KEYS, PartitionKeys, partition_keys, placements_key
from telemetry_common.partitioning import (
    PARTITIONER,
    Placement,
    candidate_partitions,
    partition_of,
)
from telemetry_common.redis_client import AsyncRedis
from telemetry_common.storage import (
    StoredHistoryEntry,
    StoredReading,
    parse_built_offset,
)

T = TypeVar("T")

# How long the topic's placements (and whether an older layout is still there) are
# taken as known before Redis is asked again.
_LAYOUT_REFRESH_SECONDS: Final = 1.0


class RedisDeadlineExceededError(Exception):
    """Redis did not answer a call within the API's deadline."""

    def __init__(self, deadline_seconds: float) -> None:
        super().__init__(f"Redis did not answer within {deadline_seconds:g} s")
        self.deadline_seconds = deadline_seconds


class ReadingStore:
    def __init__(
        self,
        client: AsyncRedis,
        deadline_seconds: float,
        *,
        consumer_group: str,
        topic: str,
    ) -> None:
        self._client = client
        self._deadline_seconds = deadline_seconds
        self._group = consumer_group
        self._topic = topic
        self._placements: tuple[Placement, ...] = ()
        self._legacy = False
        self._layout_read_at = float("-inf")

    async def _within_deadline(self, call: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(self._deadline_seconds):
                return await call
        except TimeoutError as exc:
            # Only the deadline raises the built-in TimeoutError here: redis-py reports
            # its own socket timeouts as redis.exceptions.TimeoutError, a RedisError.
            raise RedisDeadlineExceededError(self._deadline_seconds) from exc
        except RedisClusterException as exc:
            # No RedisError: redis-py's cluster client raises it when no node it knows
            # gives it a complete slot map (a failover, slots nobody serves).
            raise RedisConnectionError(f"Redis Cluster: {exc}") from exc
        except (AttributeError, RuntimeError) as exc:
            # When redis-py's asyncio cluster client fails to reload the slot map during a
            # failover, it closes every node's connections, also those that concurrent
            # calls are using; these then fail with such errors from the closed socket
            # (measured: a few to some fifty answers per failover), not a RedisError.
            raise RedisConnectionError(f"Redis connection closed under the call: {exc!r}") from exc

    async def _layout(self) -> tuple[tuple[Placement, ...], bool]:
        """The topic's placements, and whether the older layout is still there."""
        # Until a worker noted a placement, every read asks again (and so reaches Redis,
        # whose failure must show as one, not as a machine that is not there).
        stale = time.monotonic() - self._layout_read_at >= _LAYOUT_REFRESH_SECONDS
        if stale or not self._placements:
            noted = await self._within_deadline(self._client.smembers(placements_key(self._topic)))
            decoded = (Placement.decode(str(text)) for text in noted)
            placements = {p for p in decoded if p is not None}
            # Kept, not replaced: a topic's placements only grow (Kafka only adds
            # partitions), and a set lost with a Redis Cluster shard (until the worker
            # notes it again) must not make every machine look absent.
            self._placements = tuple(sorted({*self._placements, *placements}))
            self._legacy = await self._legacy_present()
            self._layout_read_at = time.monotonic()
        return self._placements, self._legacy

    async def _legacy_present(self) -> bool:
        try:
            return bool(await self._within_deadline(self._client.exists(LEGACY_KEYS.machine_ids)))
        except NoPermissionError:
            # An ACL user limited to this layout's keys: no older layout to read.
            return False

    async def _sources_of(self, machine_id: str, also: Iterable[int] = ()) -> list[PartitionKeys]:
        """Where the machine's keys can be: its partition under each partition count,
        `also` these partitions, and the older layout while it is there."""
        placements, legacy = await self._layout()
        partitions = sorted({*candidate_partitions(machine_id, placements), *also})
        sources = [partition_keys(p) for p in partitions]
        return [*sources, LEGACY_KEYS] if legacy else sources

    async def _fleet_sources(self) -> list[PartitionKeys]:
        placements, legacy = await self._layout()
        count = max((p.partition_count for p in placements), default=0)
        sources = [partition_keys(p) for p in range(count)]
        return [*sources, LEGACY_KEYS] if legacy else sources

    async def partitions_of(self, machine_id: str) -> list[int]:
        """Every partition the machine's readings may be in: its partition under each
        placement the workers noted (one, unless partitions were added)."""
        placements, _ = await self._layout()
        return candidate_partitions(machine_id, placements)

    async def current_partition(self, machine_id: str) -> int | None:
        """The partition this project's partitioner sends the machine's readings to under
        the largest partition count the workers noted (None: none noted yet)."""
        placements, _ = await self._layout()
        counts = [p.partition_count for p in placements if p.partitioner == PARTITIONER]
        return partition_of(machine_id, max(counts)) if counts else None

    async def latest(self, machine_id: str) -> StoredReading | None:
        """The machine's newest stored reading (None: none)."""
        sources = await self._sources_of(machine_id)
        if not sources:
            return None
        if len(sources) == 1:
            # The usual case, without a pipeline's own cost.
            raw = await self._within_deadline(self._client.hgetall(sources[0].latest(machine_id)))
            return _stored_reading(machine_id, raw)
        async with self._client.pipeline(transaction=False) as pipe:
            for keys in sources:
                pipe.hgetall(keys.latest(machine_id))
            raws = await self._within_deadline(pipe.execute())
        return _newest(machine_id, raws)

    async def view_of(
        self, partition: int, machine_id: str
    ) -> tuple[int | None, StoredReading | None]:
        """How far the view of `partition` is built (the next offset to read; None: not
        at all), and then the machine's latest reading: read in that order, so that the
        reading is at least as new as the view said (the built offset and the machine's
        keys of that partition are in one slot, so one node answers both in order)."""
        sources = await self._sources_of(machine_id, also=[partition])
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.get(partition_keys(partition).built(self._group, self._topic))
            for keys in sources:
                pipe.hgetall(keys.latest(machine_id))
            built, *raws = await self._within_deadline(pipe.execute())
        return parse_built_offset(built), _newest(machine_id, raws)

    async def history(
        self, machine_id: str, newest: str, oldest: str, count: int
    ) -> list[StoredHistoryEntry]:
        """Up to `count` entries of the machine's history, newest first, between the
        stream ids (or XREVRANGE bounds) `newest` and `oldest`, from every partition that
        holds some (merged by entry id)."""
        sources = await self._sources_of(machine_id)
        if not sources:
            return []
        async with self._client.pipeline(transaction=False) as pipe:
            for keys in sources:
                pipe.xrevrange(keys.history(machine_id), max=newest, min=oldest, count=count)
            replies = await self._within_deadline(pipe.execute())
        entries = [
            StoredHistoryEntry.from_stream_entry(
                machine_id, str(entry_id), {str(k): str(v) for k, v in (fields or {}).items()}
            )
            for reply in replies
            for entry_id, fields in reply or []
        ]
        if len(sources) > 1:
            # The same record can be in two sources (the older layout's copy during an
            # upgrade): the first source's, this layout's, is kept.
            unique = {(e.entry_id, e.partition, e.offset): e for e in reversed(entries)}
            entries = sorted(unique.values(), key=lambda e: _id_order(e.entry_id), reverse=True)
        return entries[:count]

    async def machine_known(self, machine_id: str) -> bool:
        """Whether Redis holds anything of the machine: a history or a latest reading."""
        sources = await self._sources_of(machine_id)
        if not sources:
            return False
        async with self._client.pipeline(transaction=False) as pipe:
            for keys in sources:
                pipe.exists(keys.history(machine_id), keys.latest(machine_id))
            found = await self._within_deadline(pipe.execute())
        return any(found)

    async def machines_after(self, after: str | None, count: int) -> list[tuple[str, int | None]]:
        """Up to `count` machines of the fleet in machine id order, after `after`, each
        with its last-seen time (ms; None if the index lacks it)."""
        sources = await self._fleet_sources()
        if not sources:
            return []
        start = "-" if after is None else f"({after}"
        async with self._client.pipeline(transaction=False) as pipe:
            for keys in sources:
                pipe.zrangebylex(keys.machine_ids, start, "+", start=0, num=count)
            pages = await self._within_deadline(pipe.execute())
        # Each source is in id order, so the first `count` ids of all are among the
        # first `count` of each.
        names: list[str] = []
        for name in heapq.merge(*([str(m) for m in page] for page in pages)):
            if not names or names[-1] != name:
                names.append(name)
            if len(names) == count:
                break
        if not names:
            return []
        chosen = set(names)
        holders = [
            (keys, [str(m) for m in page if str(m) in chosen])
            for keys, page in zip(sources, pages, strict=True)
        ]
        seen = await self._last_seen(holders)
        return [(name, seen.get(name)) for name in names]

    async def _last_seen(
        self, holders: Sequence[tuple[PartitionKeys, list[str]]]
    ) -> dict[str, int]:
        """Each machine's latest last-seen time among the sources that hold it."""
        asked = [(keys, names) for keys, names in holders if names]
        async with self._client.pipeline(transaction=False) as pipe:
            for keys, names in asked:
                pipe.zmscore(keys.last_seen, names)
            replies = await self._within_deadline(pipe.execute())
        seen: dict[str, int] = {}
        for (_, names), scores in zip(asked, replies, strict=True):
            for name, score in zip(names, scores, strict=True):
                if score is not None:
                    seen[name] = max(seen.get(name, int(score)), int(score))
        return seen

    async def machines_seen_by(
        self, cutoff_ms: int, after: tuple[int, str] | None, count: int
    ) -> list[tuple[str, int]]:
        """Up to `count` machines last seen at `cutoff_ms` or before, in (last seen,
        machine id) order, after the machine `after` names by that pair.

        A machine in several sources (partitions were added) is listed at its latest
        time only: an older entry of it in another partition is passed over.
        """

        async def at_latest_time(
            rows: Sequence[tuple[int, str, int]],
        ) -> Callable[[int, str, int], bool]:
            latest = await self._latest_seen_where_several([m for _, m, _ in rows])
            return lambda score, machine, _: latest.get(machine, score) == score

        sources = await self._fleet_sources()
        return await self._merged_page(
            sources, lambda keys: keys.last_seen, ("-inf", cutoff_ms), after, count, at_latest_time
        )

    async def machines_by_pressure(
        self, low: int, high: int, after: tuple[int, str] | None, count: int
    ) -> list[tuple[str, int]]:
        """Up to `count` machines whose pressure score (`storage.pressure_score`: minus
        the pressure in millionths) is from `low` to `high`, in (score, machine id) order,
        i.e. most pressed first, after the machine `after` names by that pair.

        A machine in several partitions (partitions were added) is listed with the
        pressure of the partition that holds its latest reading (by last-seen time). The
        older layout has no pressure index: during an upgrade from it, a machine is
        listed once the worker stored a reading of it in this layout.
        """
        sources = await self._fleet_sources()
        sources = [keys for keys in sources if keys != LEGACY_KEYS]

        async def from_newest_partition(
            rows: Sequence[tuple[int, str, int]],
        ) -> Callable[[int, str, int], bool]:
            owners = await self._newest_source_where_several(sources, [m for _, m, _ in rows])
            return lambda _, machine, source: owners.get(machine, source) == source

        return await self._merged_page(
            sources, lambda keys: keys.by_pressure, (low, high), after, count, from_newest_partition
        )

    async def _merged_page(
        self,
        sources: Sequence[PartitionKeys],
        index: Callable[[PartitionKeys], str],
        bounds: tuple[int | str, int],
        after: tuple[int, str] | None,
        count: int,
        keeper: Callable[
            [Sequence[tuple[int, str, int]]], Awaitable[Callable[[int, str, int], bool]]
        ],
    ) -> list[tuple[str, int]]:
        """Up to `count` members of the sorted sets `index` names in every source, with
        scores within `bounds`, merged in (score, member) order, after the pair `after`;
        of the rows of a machine in several sources, only those `keeper` keeps."""
        found: list[tuple[str, int]] = []
        while sources and len(found) < count:
            rows = await asyncio.gather(
                *(self._scored_rows(index(keys), bounds, after, count) for keys in sources)
            )
            merged = list(heapq.merge(*([(s, m, i) for m, s in r] for i, r in enumerate(rows))))
            if not merged:
                break
            # Past the last row every source returned in full, a source may hold more:
            # only the rows up to there are in their final order.
            full = [r[-1] for r in rows if len(r) == count]
            horizon = min(((s, m) for m, s in full), default=None)
            settled = [row for row in merged if horizon is None or (row[0], row[1]) <= horizon]
            keep = await keeper(settled)
            for score, machine, source in settled:
                if keep(score, machine, source) and (not found or found[-1][0] != machine):
                    found.append((machine, score))
                    if len(found) == count:
                        break
            if horizon is None:
                break
            after = horizon
        return found[:count]

    async def _scored_rows(
        self, key: str, bounds: tuple[int | str, int], after: tuple[int, str] | None, count: int
    ) -> list[tuple[str, int]]:
        """Up to `count` members of the sorted set `key` with scores within `bounds`,
        after (score, member) `after`."""
        low, high = bounds
        if after is None:
            rows = await self._within_deadline(
                self._client.zrange(
                    key, low, high, byscore=True, offset=0, num=count, withscores=True
                )
            )
        else:
            first = await self._within_deadline(self._rank_after(key, *after))
            rows = await self._within_deadline(
                self._client.zrange(key, first, first + count - 1, withscores=True)
            )
        scored = cast(list[tuple[str, float]], rows)
        return [
            (str(member), int(score))
            for member, score in scored
            if score <= high and (low == "-inf" or score >= int(low))
        ]

    async def _newest_source_where_several(
        self, sources: Sequence[PartitionKeys], machines: Sequence[str]
    ) -> dict[str, int]:
        """For each of `machines` that more than one of `sources` can hold, the index in
        `sources` of the one with its latest last-seen time."""
        placements, _ = await self._layout()
        if len(placements) <= 1 or not machines:
            return {}
        position = {keys: i for i, keys in enumerate(sources)}
        asked: list[tuple[str, int]] = []
        for machine in dict.fromkeys(machines):
            candidates = [
                position[k]
                for k in (partition_keys(p) for p in candidate_partitions(machine, placements))
                if k in position
            ]
            if len(candidates) > 1:
                asked += [(machine, i) for i in candidates]
        if not asked:
            return {}
        async with self._client.pipeline(transaction=False) as pipe:
            for machine, i in asked:
                pipe.zscore(sources[i].last_seen, machine)
            scores = await self._within_deadline(pipe.execute())
        owners: dict[str, tuple[float, int]] = {}
        for (machine, i), score in zip(asked, scores, strict=True):
            if score is not None and (machine not in owners or score > owners[machine][0]):
                owners[machine] = (float(score), i)
        return {machine: i for machine, (_, i) in owners.items()}

    async def last_seen_of(self, machine_ids: Sequence[str]) -> dict[str, int]:
        """The last-seen time (ms) of each of `machine_ids` the fleet index holds."""
        holders: dict[PartitionKeys, list[str]] = {}
        for machine_id in dict.fromkeys(machine_ids):
            for keys in await self._sources_of(machine_id):
                holders.setdefault(keys, []).append(machine_id)
        return await self._last_seen(list(holders.items())) if holders else {}

    async def latest_of(self, machine_ids: Sequence[str]) -> dict[str, StoredReading]:
        """The newest stored reading of each of `machine_ids` that has one, in one
        pipeline."""
        asked: list[tuple[str, PartitionKeys]] = []
        for machine_id in dict.fromkeys(machine_ids):
            asked += [(machine_id, keys) for keys in await self._sources_of(machine_id)]
        if not asked:
            return {}
        async with self._client.pipeline(transaction=False) as pipe:
            for machine_id, keys in asked:
                pipe.hgetall(keys.latest(machine_id))
            raws = await self._within_deadline(pipe.execute())
        found: dict[str, list[Mapping[Any, Any] | None]] = {}
        for (machine_id, _), raw in zip(asked, raws, strict=True):
            found.setdefault(machine_id, []).append(raw)
        readings = {m: _newest(m, raws_of) for m, raws_of in found.items()}
        return {m: r for m, r in readings.items() if r is not None}

    async def _latest_seen_where_several(self, machines: Sequence[str]) -> dict[str, int]:
        """The latest last-seen time of each of `machines` that more than one source can
        hold (only when partitions were added, or during an upgrade)."""
        placements, legacy = await self._layout()
        if (len(placements) <= 1 and not legacy) or not machines:
            # Each machine is in one source only.
            return {}
        holders: dict[PartitionKeys, list[str]] = {}
        for machine in dict.fromkeys(machines):
            candidates = [partition_keys(p) for p in candidate_partitions(machine, placements)]
            if legacy:
                candidates.append(LEGACY_KEYS)
            if len(candidates) > 1:
                for keys in candidates:
                    holders.setdefault(keys, []).append(machine)
        return await self._last_seen(list(holders.items()))

    async def _rank_after(self, key: str, score: int, member: str) -> int:
        """The rank in the sorted set `key` where (score, member) order goes on after
        `member` seen at `score`, whether or not it is still there with that score.

        Redis orders members of equal score by their bytes; machine ids are ASCII, so
        Python's string order is the same. Found by bisection over the members that
        share the score (usually none or one, so at most a couple of calls).
        """
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


def _newest(machine_id: str, raws: Sequence[Mapping[Any, Any] | None]) -> StoredReading | None:
    """The newest of the machine's readings read from several sources (by Kafka
    timestamp; the first source wins a tie)."""
    readings = [r for r in (_stored_reading(machine_id, raw) for raw in raws) if r is not None]
    return max(readings, key=lambda r: r.timestamp_ms, default=None)


def _id_order(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq)


def _stored_reading(machine_id: str, raw: Mapping[Any, Any] | None) -> StoredReading | None:
    if not raw:
        return None
    # The client decodes responses, so keys and values are already str.
    return StoredReading.from_redis_hash(machine_id, {str(k): str(v) for k, v in raw.items()})
