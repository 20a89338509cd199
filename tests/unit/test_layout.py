"""The key layout: one slot per partition, spread evenly over a cluster's masters."""

from __future__ import annotations

import math

import pytest
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

from telemetry_common.layout import (
    SLOT_CELL_ORDER,
    partition_keys,
    partition_tag,
    placements_key,
)


def redis_cli_slot_ranges(masters: int) -> list[range]:
    """The slots `redis-cli --cluster create` gives each of `masters` masters
    (clusterManagerCommandCreate in redis-cli.c)."""
    per_node = REDIS_CLUSTER_HASH_SLOTS / masters
    ranges, first, cursor = [], 0, 0.0
    for i in range(masters):
        last = round(cursor + per_node - 1)
        if last > REDIS_CLUSTER_HASH_SLOTS or i == masters - 1:
            last = REDIS_CLUSTER_HASH_SLOTS - 1
        last = max(last, first)
        ranges.append(range(first, last + 1))
        first = last + 1
        cursor += per_node
    return ranges


def test_the_cell_order_takes_every_cell_once() -> None:
    assert sorted(SLOT_CELL_ORDER) == list(range(60))


@pytest.mark.parametrize("masters", [1, 2, 3, 4, 5, 6])
def test_no_master_holds_more_than_its_share_of_the_partitions(masters: int) -> None:
    ranges = redis_cli_slot_ranges(masters)
    slots = [key_slot(partition_tag(p).encode()) for p in range(256)]
    for count in range(1, 257):
        held = [sum(1 for slot in slots[:count] if slot in r) for r in ranges]
        assert max(held) <= math.ceil(count / masters), (count, held)


def test_every_key_of_a_partition_is_in_the_partition_s_slot() -> None:
    for partition in (0, 1, 7, 59, 60, 1000):
        keys = partition_keys(partition)
        slots = {
            key_slot(key.encode())
            for key in (
                keys.latest("web-01"),
                keys.latest("db.02"),
                keys.history("web-01"),
                keys.last_seen,
                keys.machine_ids,
                keys.built("memtel-redis-writer", "readings"),
            )
        }
        assert slots == {key_slot(partition_tag(partition).encode())}


def test_tags_are_distinct_and_stable() -> None:
    tags = [partition_tag(p) for p in range(500)]
    assert len(set(tags)) == 500
    assert all(tag.split(".")[0] == f"p{p}" for p, tag in enumerate(tags))
    # A layout in use never changes: these are in Redis under these names.
    assert partition_keys(0).latest("m") == f"memtel:v2:{{{partition_tag(0)}}}:latest:m"


def test_partition_counts_are_kept_per_topic() -> None:
    assert placements_key("readings") == "memtel:v2:placements:readings"
