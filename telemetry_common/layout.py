"""Where the view of the topic lives in Redis: the key layout, sharded by Kafka partition.

Every key the worker writes for a record of partition P starts with one hash tag made
for P (`{p<P>...}`): the latest reading and the history of each machine of P, P's three
fleet indexes, and the offset up to which P is built. They all fall in one Redis
Cluster slot, so one script call per partition per batch writes a partition's readings
and moves its built offset atomically, on a standalone Redis and on a Redis Cluster
alike, and the view is never ahead of its offsets (docs/redis-cluster.md).

The tags are spread over the slot space: partition P's tag is chosen so that its slot
falls in the middle of cell `SLOT_CELL_ORDER[P % 60]` of 60 equal cells. A cluster of
M masters made with `redis-cli --cluster create` gives each master an equal range of
slots; for every M from 1 to 6 (which all divide 60), every prefix of that order
puts at most ceil(N/M) of N partitions in each master's range, and so does every
count of partitions N (60 in a row complete every cell once).

A layout change gets a new version in the namespace, and the worker builds it from
Kafka; `memtel:v1` (one unsharded set of keys) is read only while an upgrade is
underway (`LEGACY_NAMESPACE`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Final

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

REDIS_KEY_NAMESPACE: Final = "memtel:v2"
LEGACY_NAMESPACE: Final = "memtel:v1"

# The order partitions take the 60 cells of the slot space in (found by a search that
# keeps every prefix balanced for 1 to 6 equal ranges; tests/unit/test_layout.py checks
# the property against redis-cli's slot allocation).
SLOT_CELL_ORDER: Final = (
    0, 30, 45, 15, 50, 20, 1, 36, 51, 24, 10, 40, 12, 31, 48, 21, 2, 52, 25, 41,
    3, 32, 16, 53, 37, 4, 46, 17, 26, 54, 5, 33, 42, 13, 55, 22, 6, 38, 49, 27,
    11, 56, 18, 34, 43, 7, 23, 57, 28, 44, 8, 58, 14, 35, 47, 19, 29, 39, 9, 59,
)  # fmt: skip
SLOT_CELLS: Final = len(SLOT_CELL_ORDER)
# A tag's slot keeps this far from its cell's edges, where rounding in a cluster's
# slot allocation could put it on the neighbouring master.
_CELL_MARGIN: Final = 8


# Bounded: a read-your-writes token names a partition the client chooses.
@functools.lru_cache(maxsize=4096)
def partition_tag(partition: int) -> str:
    """The hash tag of partition `partition`'s keys (without the braces).

    `p<partition>` when its slot falls inside the partition's cell, else the first
    `p<partition>.<n>` that does: deterministic, so every service finds the same one.
    """
    cell = SLOT_CELL_ORDER[partition % SLOT_CELLS]
    low = cell * REDIS_CLUSTER_HASH_SLOTS // SLOT_CELLS + _CELL_MARGIN
    high = (cell + 1) * REDIS_CLUSTER_HASH_SLOTS // SLOT_CELLS - _CELL_MARGIN
    candidate = f"p{partition}"
    attempt = 0
    while not low <= key_slot(candidate.encode()) < high:
        attempt += 1
        candidate = f"p{partition}.{attempt}"
    return candidate


@dataclass(frozen=True)
class PartitionKeys:
    """The Redis keys of one Kafka partition's share of the view."""

    partition: int
    prefix: str

    def latest(self, machine_id: str) -> str:
        """Hash: the machine's latest reading and the Kafka position it came from."""
        return f"{self.prefix}latest:{machine_id}"

    @property
    def latest_prefix(self) -> str:
        return f"{self.prefix}latest:"

    def history(self, machine_id: str) -> str:
        """Stream: the machine's readings of this partition, oldest first."""
        return f"{self.prefix}history:{machine_id}"

    @property
    def last_seen(self) -> str:
        """Sorted set: the partition's machines by the Kafka timestamp (ms) of their
        latest reading, only ever raised."""
        return f"{self.prefix}machines"

    @property
    def machine_ids(self) -> str:
        """Sorted set: the same machines, every score 0, so ordered by machine id."""
        return f"{self.prefix}machine-ids"

    @property
    def by_pressure(self) -> str:
        """Sorted set: the same machines by the memory pressure of their latest reading,
        scored minus the pressure in millionths (`storage.pressure_score`), so that
        Redis's ascending order is the most pressed first, ties by machine id."""
        return f"{self.prefix}machines-by-pressure"

    def built(self, consumer_group: str, topic: str) -> str:
        """String: the next offset of the partition to apply (the last applied + 1), i.e.
        how far the group's view of the partition is built. Kafka topic names have no
        colon, so the key is unambiguous whatever the group is called."""
        return f"{self.prefix}built:{consumer_group}:{topic}"


@functools.lru_cache(maxsize=4096)
def partition_keys(partition: int) -> PartitionKeys:
    return PartitionKeys(partition, f"{REDIS_KEY_NAMESPACE}:{{{partition_tag(partition)}}}:")


def placements_key(topic: str) -> str:
    """Set: every placement (partitioner and partition count, Placement.encode()) the
    topic's records were seen with (Kafka only adds partitions), so that a machine is
    found in each partition it was ever sent to."""
    return f"{REDIS_KEY_NAMESPACE}:placements:{topic}"


# The unsharded layout before this one: the same key names under one prefix (and its
# built offsets in one hash per group and topic, `LEGACY_BUILT_KEY`).
LEGACY_KEYS: Final = PartitionKeys(-1, f"{LEGACY_NAMESPACE}:")


def legacy_built_key(consumer_group: str, topic: str) -> str:
    """The older layout's hash of built offsets, one field per partition."""
    return f"{LEGACY_NAMESPACE}:built:{consumer_group}:{topic}"
