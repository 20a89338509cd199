"""What the worker's loop is built from: the Kafka consumer, the Redis view it writes,
the dead-letter sender and the clock, each typed for what the loop calls on it.

`build.py` makes the real ones from the settings; the unit tests pass small in-memory
ones, so that the loop's decisions (retries, commits, holds, revocations) are tested
without a broker or Redis.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, overload

from confluent_kafka import Message, TopicPartition

from consumer_worker.dead_letters import DeadLetter
from consumer_worker.lag import OffsetsSource
from telemetry_common.partitioning import Placement
from telemetry_common.storage import PartitionStep, ReadingWrite, StoreBatchResult

# What librdkafka calls on assignment, revocation and loss (from inside poll/consume/close).
RebalanceCallback = Callable[[Any, list[TopicPartition]], None]


class WorkerConsumer(OffsetsSource, Protocol):
    """The part of confluent_kafka.Consumer the worker calls."""

    def subscribe(
        self,
        topics: list[str],
        on_assign: RebalanceCallback = ...,
        on_revoke: RebalanceCallback = ...,
        on_lost: RebalanceCallback = ...,
    ) -> None: ...

    def poll(self, timeout: float = ...) -> Message | None: ...

    def consume(self, num_messages: int = ..., timeout: float = ...) -> list[Message]: ...

    @overload
    def commit(
        self, *, offsets: list[TopicPartition], asynchronous: Literal[True] = ...
    ) -> None: ...

    @overload
    def commit(
        self, *, offsets: list[TopicPartition], asynchronous: Literal[False]
    ) -> list[TopicPartition]: ...

    def seek(self, partition: TopicPartition) -> None: ...

    def pause(self, partitions: list[TopicPartition]) -> None: ...

    def resume(self, partitions: list[TopicPartition]) -> None: ...

    def incremental_assign(self, partitions: list[TopicPartition]) -> None: ...

    def list_topics(self, topic: str | None = ..., timeout: float = ...) -> Any: ...

    def close(self) -> None: ...


class ViewSink(Protocol):
    """The part of consumer_worker.sink.RedisSink the worker calls: Redis's view of the
    topic, and how far each partition of it is built."""

    def write_batch(
        self,
        batch: Mapping[int, tuple[PartitionStep, Sequence[ReadingWrite]]],
        retired: Mapping[int, Sequence[str]] | None = ...,
    ) -> dict[int, StoreBatchResult]: ...

    def built_offsets(self, partitions: Sequence[int]) -> dict[int, int | None]: ...

    def placements(self) -> list[Placement]: ...

    def note_placement(self, placement: Placement) -> None: ...


class DeadLetterSender(Protocol):
    """Sends dead letters; `publish` returns once the broker acknowledged every one
    (raising DeadLetterUnavailableError or KafkaException otherwise)."""

    def publish(self, letters: Sequence[DeadLetter]) -> int: ...

    def close(self) -> None: ...


class Clock(Protocol):
    """Time as the loop reads it, and its waits between retries."""

    def monotonic(self) -> float: ...

    def wall(self) -> float:
        """Seconds since the epoch (for the health file)."""
        ...

    def wait(self, stop: threading.Event, seconds: float) -> None:
        """Wait `seconds`, or less if `stop` is set meanwhile."""
        ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    def wait(self, stop: threading.Event, seconds: float) -> None:
        stop.wait(seconds)


@dataclass
class WorkerParts:
    consumer: WorkerConsumer
    sink: ViewSink
    dead_letters: DeadLetterSender
    clock: Clock = field(default_factory=SystemClock)
    # Run once the loop has closed the rest (e.g. the Redis client's close).
    on_close: Callable[[], None] = lambda: None
