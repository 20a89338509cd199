"""Writes batches of readings (and retirements) to Redis, each partition's with the
offset it builds the partition's view up to (telemetry_common.layout: one slot per
partition)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import redis.cluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoPermissionError, NoScriptError, RedisClusterException, RedisError

from telemetry_common.layout import LEGACY_KEYS, partition_keys, placements_key
from telemetry_common.partitioning import Placement
from telemetry_common.redis_client import SyncRedis
from telemetry_common.storage import (
    NO_HISTORY,
    HistoryRetention,
    PartitionStep,
    ReadingWrite,
    StoreBatchResult,
    StoredReading,
    parse_built_offset,
    store_batch_call,
    store_batch_lua,
)


class RedisSink:
    def __init__(
        self,
        client: SyncRedis,
        consumer_group: str,
        topic: str,
        history: HistoryRetention = NO_HISTORY,
    ) -> None:
        self._client = client
        self._group = consumer_group
        self._topic = topic
        self._history = history
        self._script = client.register_script(store_batch_lua())

    def built_key(self, partition: int) -> str:
        return partition_keys(partition).built(self._group, self._topic)

    def write_batch(
        self,
        batch: Mapping[int, tuple[PartitionStep, Sequence[ReadingWrite]]],
        retired: Mapping[int, Sequence[str]] | None = None,
    ) -> dict[int, StoreBatchResult]:
        """Per partition of `batch`, in one atomic step: store each reading unless a
        newer one is there, append it and its `earlier` readings to the machine's history
        (if history is kept), index the machine, and move the partition's built offset
        to its step's `next_offset`.

        A partition whose built offset in Redis is not the step's `expected` one (Redis
        lost writes, was emptied or replaced) is left alone, its readings unwritten, and
        its result is not `in_step`. Raises redis.RedisError if Redis did not run every
        partition's script; the caller retries the batch (the writes are idempotent: a
        replayed reading neither overwrites a newer one nor enters the history twice,
        and a partition already moved to its `next_offset` counts as done).

        One EVALSHA per partition, all in one pipeline: one round trip on a standalone
        Redis, one per master on a cluster.

        `retired`: per partition, the machines its retirement records in the batch
        retire; the script removes their keys of the partition before the readings
        (which are only those after the retirement). Their keys of the older layout go
        first, in calls of their own (those keys are in no partition's slot): a
        partition's view never counts a retirement as applied while they are there.
        """
        retired = retired or {}
        if any(retired.values()):
            self._forget_legacy(sorted({m for machines in retired.values() for m in machines}))
        calls = {
            partition: store_batch_call(
                self.built_key(partition),
                step,
                readings,
                self._history,
                retired.get(partition, ()),
            )
            for partition, (step, readings) in batch.items()
        }
        replies = self._run_scripts(list(calls.values()))
        results = {}
        for (partition, (step, _)), reply in zip(batch.items(), replies, strict=True):
            result = StoreBatchResult.from_reply(reply)
            if not result.in_step and result.built_in_redis == step.next_offset:
                # Written by an earlier try of this batch whose answer was lost.
                result = StoreBatchResult(written=0)
            results[partition] = result
        return results

    def _forget_legacy(self, machine_ids: Sequence[str]) -> None:
        """Remove retired machines from the older layout (`memtel:v1`), which the API
        reads while an upgrade from it is underway, and from which `upgrade finish`
        copies. Idempotent: a replayed retirement removes nothing more. An ACL user
        limited to this layout's keys cannot see the older one, and needs nothing here.
        """
        try:
            with self._client.pipeline(transaction=False) as pipe:
                for machine_id in machine_ids:
                    pipe.delete(LEGACY_KEYS.latest(machine_id))
                    pipe.delete(LEGACY_KEYS.history(machine_id))
                    pipe.zrem(LEGACY_KEYS.last_seen, machine_id)
                    pipe.zrem(LEGACY_KEYS.machine_ids, machine_id)
                pipe.execute()
        except NoPermissionError:
            return
        except RedisClusterException as exc:
            raise RedisConnectionError(f"Redis Cluster: {exc}") from exc

    def put(self, readings: Sequence[StoredReading]) -> int:
        """Store readings outside the log's order (no built offset is checked or moved;
        history and fleet index as in a batch); return how many became the latest.

        For putting readings in place (the upgrade from an older layout, tools, tests);
        the worker uses write_batch.
        """
        by_partition: dict[int, list[ReadingWrite]] = defaultdict(list)
        for stored in readings:
            write = stored.as_write()
            by_partition[write.partition].append(write)
        calls = [
            store_batch_call(self.built_key(partition), None, writes, self._history)
            for partition, writes in by_partition.items()
        ]
        return sum(StoreBatchResult.from_reply(reply).written for reply in self._run_scripts(calls))

    def _queue_script(self, pipe: Any, keys: list[str], args: list[str | int]) -> None:
        if not isinstance(self._client, redis.cluster.RedisCluster):
            pipe.evalsha(self._script.sha, len(keys), *keys, *args)
            return
        # redis-py's cluster pipeline refuses evalsha(). A plain EVALSHA it would route by
        # asking its default node for the keys (COMMAND GETKEYS with every argument: a
        # second round trip carrying the batch, and one that keeps failing once that
        # node is dead, as the failure does not refresh the slot map). Told the node
        # (every key is in the partition's slot), it sends the call to it directly, and
        # a node found dead makes it reload the slot map for the retry.
        node = self._client.get_node_from_key(keys[0])  # type: ignore[no-untyped-call]
        pipe.execute_command(
            "EVALSHA", self._script.sha, len(keys), *keys, *args, target_nodes=node
        )

    def built_offsets(self, partitions: Sequence[int]) -> dict[int, int | None]:
        """How far the view is built from each partition (None: not at all)."""
        if not partitions:
            return {}
        with self._client.pipeline(transaction=False) as pipe:
            for partition in partitions:
                pipe.get(self.built_key(partition))
            values = pipe.execute()
        return {p: parse_built_offset(v) for p, v in zip(partitions, values, strict=True)}

    def placements(self) -> list[Placement]:
        """The placements noted in Redis (those this version knows)."""
        noted = (
            Placement.decode(str(text))
            for text in self._client.smembers(placements_key(self._topic))
        )
        return [p for p in noted if p is not None]

    def note_placement(self, placement: Placement) -> None:
        """Note how some of the topic's records are placed (the API finds machines under
        every placement noted: each partition count the topic has had, and the
        partitioner of older producers)."""
        self._client.sadd(placements_key(self._topic), placement.encode())

    def _run_scripts(self, calls: Sequence[tuple[list[str], list[str | int]]]) -> list[Any]:
        if not calls:
            return []
        try:
            return self._pipelined(calls)
        except NoScriptError:
            # A Redis that restarted, failed over or was replaced lost its scripts; on a
            # cluster this loads it on every master. The calls are idempotent.
            self._client.script_load(self._script.script)
            return self._pipelined(calls)

    def _pipelined(self, calls: Sequence[tuple[list[str], list[str | int]]]) -> list[Any]:
        try:
            with self._client.pipeline(transaction=False) as pipe:
                for keys, args in calls:
                    self._queue_script(pipe, keys, args)
                replies = pipe.execute(raise_on_error=False)
        except RedisClusterException as exc:
            # redis-py's cluster client raises this, which is no RedisError, when no node
            # it knows serves every slot (a master and its replicas lost): Redis is away
            # for now, and the worker retries.
            raise RedisConnectionError(f"Redis Cluster: {exc}") from exc
        errors = [reply for reply in replies if isinstance(reply, Exception)]
        if any(isinstance(error, NoScriptError) for error in errors):
            raise NoScriptError("the batch script is not loaded")
        if errors:
            if isinstance(errors[0], RedisError):
                raise errors[0]
            raise RedisError(str(errors[0]))
        return list(replies)
