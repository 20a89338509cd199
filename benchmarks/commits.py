"""How often a consumer group commits, as the broker recorded it.

Every offset commit the group coordinator accepts is appended to the internal topic
`__consumer_offsets`: one record per partition committed, all records of one commit
written together with the same timestamp. Reading that topic between two moments and
counting the group's distinct record timestamps gives its commits, however many per
second (polling the committed offsets would miss all but one per poll). Two commits in
the same millisecond count once, so the figure is a lower bound at very high rates.
"""

from __future__ import annotations

import contextlib
import struct
import time
import uuid
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaException, TopicPartition

OFFSETS_TOPIC = "__consumer_offsets"
# Key versions 0 and 1 are offset commits (group, topic, partition); 2 is group metadata.
_OFFSET_COMMIT_KEY_VERSIONS = (0, 1)
_CREATE_TIMEOUT_SECONDS = 60


@dataclass(frozen=True)
class OffsetCommitKey:
    group: str
    topic: str
    partition: int


def decode_offset_commit_key(key: bytes) -> OffsetCommitKey | None:
    """The key of an offset-commit record, or None for any other record of the topic."""
    if len(key) < 2:
        return None
    (version,) = struct.unpack_from(">h", key, 0)
    if version not in _OFFSET_COMMIT_KEY_VERSIONS:
        return None
    position = 2
    strings: list[str] = []
    for _ in range(2):
        (length,) = struct.unpack_from(">h", key, position)
        position += 2
        strings.append(key[position : position + length].decode("utf-8"))
        position += length
    (partition,) = struct.unpack_from(">i", key, position)
    return OffsetCommitKey(group=strings[0], topic=strings[1], partition=partition)


class CommitCounter:
    """Marks where `__consumer_offsets` ends now; `count(group)` later reads up to its end
    then and counts the group's commits in between."""

    def __init__(self, bootstrap: str) -> None:
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"bench-commit-counter-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
            }
        )
        self._partitions = self._offsets_partitions()
        self._start = self._ends()

    def _offsets_partitions(self) -> list[int]:
        """The partitions of `__consumer_offsets`; the broker creates the topic when a
        group first looks for its coordinator, which a stage may not have done yet."""
        deadline = time.monotonic() + _CREATE_TIMEOUT_SECONDS
        while True:
            metadata = self._consumer.list_topics(OFFSETS_TOPIC, timeout=10)
            found = metadata.topics.get(OFFSETS_TOPIC)
            if found is not None and found.error is None and found.partitions:
                return sorted(found.partitions)
            if time.monotonic() > deadline:
                raise TimeoutError(f"the broker did not create {OFFSETS_TOPIC}")
            # Looking up this counter's (empty) committed offsets finds its coordinator.
            with contextlib.suppress(KafkaException):
                self._consumer.committed([TopicPartition(OFFSETS_TOPIC, 0)], timeout=2)

    def _ends(self) -> dict[int, int]:
        return {
            p: self._consumer.get_watermark_offsets(TopicPartition(OFFSETS_TOPIC, p), timeout=10)[1]
            for p in self._partitions
        }

    def count(self, group: str) -> int:
        """Commits of `group` between construction and now."""
        end = self._ends()
        todo = {p for p in self._partitions if end[p] > self._start[p]}
        if not todo:
            return 0
        self._consumer.assign(
            [TopicPartition(OFFSETS_TOPIC, p, self._start[p]) for p in sorted(todo)]
        )
        stamps: set[tuple[int, int]] = set()
        while todo:
            messages = self._consumer.consume(num_messages=1000, timeout=5)
            if not messages:
                raise TimeoutError(f"{OFFSETS_TOPIC} stopped answering before its end")
            for message in messages:
                partition = message.partition()
                offset = message.offset()
                if partition is None or offset is None or partition not in todo:
                    continue
                if message.error() is None and offset < end[partition]:
                    key = decode_offset_commit_key(message.key() or b"")
                    if key is not None and key.group == group:
                        stamps.add((partition, message.timestamp()[1]))
                if offset >= end[partition] - 1 or message.error() is not None:
                    todo.discard(partition)
        return len(stamps)

    def close(self) -> None:
        self._consumer.close()
