"""Which Kafka partition a machine's readings go to.

The producers name their partitioner explicitly: `murmur2_random`, the hash of the
Java clients (librdkafka's default is CRC32). Every producer of the topic then agrees
on a machine's partition, and the API, which reads a machine's keys in Redis by the
partition that stored them (telemetry_common.layout), computes it from the machine id
and the topic's partition count. Kafka only ever adds partitions, so a machine that
moved when partitions were added is found under each partition count the topic has had.

The workers note in Redis each placement the topic's records show: a partitioner and a
partition count (`Placement`). Records of producers before this one (librdkafka's
default, `consistent_random`: CRC-32 of the key) are noted as such when a worker meets
them, so that their machines are found too.

The hash is Kafka's `Utils.murmur2`, a dozen lines: the Python packages that carry it
bring a whole Kafka client along (170 ms of imports and deprecation warnings), so it is
written here, checked against the Java client's published test vectors
(tests/unit/test_partitioning.py) and against librdkafka's own choice of partition on
a real broker (tests/integration/test_partitioning.py).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from typing import Final, NamedTuple

# librdkafka's name of the Java clients' partitioner (keyed records; a record without
# a key goes to a random partition, and this project's records always have one).
PARTITIONER: Final = "murmur2_random"
# librdkafka's default partitioner, which producers before this one used.
LIBRDKAFKA_DEFAULT_PARTITIONER: Final = "consistent_random"

_SEED: Final = 0x9747B28C
_M: Final = 0x5BD1E995
_MASK: Final = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's 32-bit MurmurHash2 of `data`, as an unsigned integer."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    whole = length - length % 4
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = data[whole:]
    if tail:
        h ^= int.from_bytes(tail, "little")
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


def partition_of(machine_id: str, partition_count: int) -> int:
    """The partition `murmur2_random` sends a record keyed by `machine_id` to."""
    # Java's Utils.toPositive(Utils.murmur2(key)) % numPartitions.
    return (murmur2(machine_id.encode()) & 0x7FFFFFFF) % partition_count


class Placement(NamedTuple):
    """How some of the topic's records were placed: a partitioner and a partition count."""

    partitioner: str
    partition_count: int

    def partition_of(self, machine_id: str) -> int:
        if self.partitioner == LIBRDKAFKA_DEFAULT_PARTITIONER:
            # librdkafka's rd_crc32 is the CRC-32 of zlib.
            return zlib.crc32(machine_id.encode()) % self.partition_count
        return partition_of(machine_id, self.partition_count)

    def encode(self) -> str:
        return f"{self.partitioner}:{self.partition_count}"

    @classmethod
    def decode(cls, text: str) -> Placement | None:
        """A placement as noted in Redis (None: not one this version knows)."""
        partitioner, _, count = text.rpartition(":")
        if partitioner not in KNOWN_PARTITIONERS or not count.isdigit() or int(count) < 1:
            return None
        return cls(partitioner, int(count))


KNOWN_PARTITIONERS: Final = frozenset({PARTITIONER, LIBRDKAFKA_DEFAULT_PARTITIONER})


def candidate_partitions(machine_id: str, placements: Iterable[Placement]) -> list[int]:
    """Every partition the machine's readings went to under each of `placements`, in
    ascending order."""
    return sorted({placement.partition_of(machine_id) for placement in placements})


def placement_of_record(machine_id: str, partition: int, counts: Iterable[int]) -> Placement | None:
    """How a record of `machine_id` found in `partition` was placed, given the partition
    counts the topic has had: by this project's partitioner (the usual case), else by
    librdkafka's default; None if by neither (a producer with a partitioner of its own,
    whose machines the API cannot locate)."""
    counts = sorted(set(counts))
    for count in counts:
        if partition_of(machine_id, count) == partition:
            return Placement(PARTITIONER, count)
    for count in counts:
        legacy = Placement(LIBRDKAFKA_DEFAULT_PARTITIONER, count)
        if legacy.partition_of(machine_id) == partition:
            return legacy
    return None
