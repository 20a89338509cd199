"""The partitioner the API locates machines with is the Java clients' murmur2."""

from __future__ import annotations

import zlib

import pytest

from telemetry_common.partitioning import (
    LIBRDKAFKA_DEFAULT_PARTITIONER,
    PARTITIONER,
    Placement,
    candidate_partitions,
    murmur2,
    partition_of,
    placement_of_record,
)


@pytest.mark.parametrize(
    ("key", "signed_hash"),
    [
        # org.apache.kafka.common.utils.UtilsTest.testMurmur2
        (b"21", -973932308),
        (b"foobar", -790332482),
        (b"a-little-bit-long-string", -985981536),
        (b"a-little-bit-longer-string", -1486304829),
        (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
        (b"abc", 479470107),
    ],
)
def test_murmur2_is_kafka_s(key: bytes, signed_hash: int) -> None:
    assert murmur2(key) == signed_hash % 2**32


def test_a_machine_s_partition_is_within_the_count_and_stable() -> None:
    for count in (1, 3, 6, 12):
        partitions = {partition_of(f"m{i}", count) for i in range(200)}
        assert partitions == set(range(count))
    assert partition_of("web-01", 6) == partition_of("web-01", 6)


def test_candidates_are_the_machine_s_partition_under_each_placement() -> None:
    machine = "web-01"
    six, twelve = Placement(PARTITIONER, 6), Placement(PARTITIONER, 12)
    legacy = Placement(LIBRDKAFKA_DEFAULT_PARTITIONER, 6)
    assert candidate_partitions(machine, [six]) == [partition_of(machine, 6)]
    assert candidate_partitions(machine, [six, twelve, six, legacy]) == sorted(
        {partition_of(machine, 6), partition_of(machine, 12), zlib.crc32(b"web-01") % 6}
    )


def test_placements_round_trip_through_their_text_and_unknown_ones_are_ignored() -> None:
    placement = Placement(LIBRDKAFKA_DEFAULT_PARTITIONER, 12)
    assert Placement.decode(placement.encode()) == placement
    assert Placement.decode("fnv1a:6") is None
    assert Placement.decode("murmur2_random:0") is None


def test_a_record_s_placement_is_recognised() -> None:
    machines = [f"m{i}" for i in range(100)]
    for machine in machines:
        assert placement_of_record(machine, partition_of(machine, 12), [6, 12]) in {
            Placement(PARTITIONER, 12),
            Placement(PARTITIONER, 6),
        }
    legacy = [m for m in machines if zlib.crc32(m.encode()) % 6 != partition_of(m, 6)]
    assert all(
        placement_of_record(m, zlib.crc32(m.encode()) % 6, [6])
        == Placement(LIBRDKAFKA_DEFAULT_PARTITIONER, 6)
        for m in legacy
    )
