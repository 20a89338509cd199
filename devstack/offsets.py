"""How far a topic goes and how far a consumer group's view of it is built.

A test or a benchmark waits for a worker to catch up by comparing the two: Kafka's end
offset of each partition, and the offset up to which Redis holds the group's view of it.
"""

from __future__ import annotations

from confluent_kafka import Consumer, TopicPartition

from telemetry_common.layout import partition_keys
from telemetry_common.redis_client import SyncRedis


def end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    """The next offset Kafka will give in each partition of `topic` (its high watermark)."""
    # Reading watermarks joins no group: the group id is only required by the client.
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "memtel-watermarks"})
    try:
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(partitions)
        }
    finally:
        consumer.close()


def built_offsets(client: SyncRedis, group: str, topic: str, partitions: int) -> dict[int, int]:
    """How far the group's view of each partition of `topic` is built (partitions with
    nothing built left out)."""
    values = [client.get(partition_keys(p).built(group, topic)) for p in range(partitions)]
    return {p: int(str(v)) for p, v in enumerate(values) if v is not None}
