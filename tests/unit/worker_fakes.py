"""In-memory parts for the worker's loop: a topic and consumer, Redis's view, a
dead-letter topic and a clock, each doing what the loop relies on of the real one and
no more (docs/architecture.md, "Consumer worker")."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, Message, TopicPartition
from redis.exceptions import ConnectionError as RedisConnectionError

from consumer_worker.dead_letters import DeadLetter, DeadLetterUnavailableError
from consumer_worker.parts import RebalanceCallback, WorkerParts
from consumer_worker.settings import WorkerSettings
from consumer_worker.worker import ConsumerWorker
from telemetry_common.contract import MemoryReading, encode_record
from telemetry_common.partitioning import Placement
from telemetry_common.storage import PartitionStep, ReadingWrite, StoreBatchResult
from tests.helpers import reading

TOPIC = "readings"
RECEIVED_AT = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def reading_message(machine_id: str, partition: int, offset: int, used: int = 1) -> Message:
    encoded = encode_record(
        machine_id, MemoryReading.model_validate(reading(used=used)), RECEIVED_AT
    )
    return Message(
        topic=TOPIC,
        partition=partition,
        offset=offset,
        key=encoded.key,
        value=encoded.value,
        headers=list(encoded.headers),
        timestamp=(1, 1_700_000_000_000 + offset),
    )


def poison_message(partition: int, offset: int) -> Message:
    return Message(topic=TOPIC, partition=partition, offset=offset, key=b"m", value=b"not json")


def newer_version_message(
    machine_id: str, partition: int, offset: int, version: int = 2
) -> Message:
    value = json.dumps(
        {
            "schema_version": version,
            "machine_id": machine_id,
            "received_at": RECEIVED_AT.isoformat(),
            "reading": {},
        }
    ).encode()
    return Message(
        topic=TOPIC,
        partition=partition,
        offset=offset,
        key=machine_id.encode(),
        value=value,
        headers=[("content-type", b"application/json"), ("schema-version", str(version).encode())],
    )


class FakeConsumer:
    """A topic of a few partitions and one group member reading it.

    `poll` runs the rebalance a test scheduled (as librdkafka runs rebalance callbacks
    inside poll), then returns the next record of an assigned, unpaused partition."""

    def __init__(self, partitions: int = 2) -> None:
        self.log: dict[int, list[Message]] = {p: [] for p in range(partitions)}
        self.position: dict[int, int] = {}
        self.paused: set[int] = set()
        self.commits: list[tuple[dict[int, int], bool]] = []
        self.fail_commits = 0
        self.closed = False
        self._callbacks: dict[str, RebalanceCallback] = {}
        self._rebalances: list[tuple[str, list[int]]] = []

    # What tests do to it.
    def append(self, *messages: Message) -> None:
        for message in messages:
            partition = message.partition()
            assert partition is not None
            self.log[partition].append(message)

    def rebalance(self, event: str, partitions: list[int]) -> None:
        """Run `on_assign`, `on_revoke` or `on_lost` at the next poll."""
        self._rebalances.append((event, partitions))

    @property
    def committed_offsets(self) -> dict[int, int]:
        offsets: dict[int, int] = {}
        for committed, _ in self.commits:
            offsets.update(committed)
        return offsets

    # The part of confluent_kafka.Consumer the worker calls.
    def subscribe(
        self,
        topics: list[str],
        on_assign: RebalanceCallback = lambda *_: None,
        on_revoke: RebalanceCallback = lambda *_: None,
        on_lost: RebalanceCallback = lambda *_: None,
    ) -> None:
        assert topics == [TOPIC]
        self._callbacks = {"assign": on_assign, "revoke": on_revoke, "lost": on_lost}

    def poll(self, timeout: float = -1) -> Message | None:
        while self._rebalances:
            event, partitions = self._rebalances.pop(0)
            tps = [TopicPartition(TOPIC, p) for p in partitions]
            self._callbacks[event](self, tps)
            if event != "assign":
                for p in partitions:
                    self.position.pop(p, None)
        taken = self.consume(1)
        return taken[0] if taken else None

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Message]:
        taken: list[Message] = []
        for partition in sorted(self.position):
            while partition not in self.paused and len(taken) < num_messages:
                offset = self.position[partition]
                if offset >= len(self.log[partition]):
                    break
                taken.append(self.log[partition][offset])
                self.position[partition] = offset + 1
        return taken

    def commit(self, *, offsets: list[TopicPartition], asynchronous: bool = True) -> Any:
        if self.fail_commits:
            self.fail_commits -= 1
            raise KafkaException(KafkaError(KafkaError.REQUEST_TIMED_OUT))
        self.commits.append(({tp.partition: tp.offset for tp in offsets}, asynchronous))
        return None if asynchronous else offsets

    def committed(
        self, partitions: list[TopicPartition], timeout: float = -1
    ) -> list[TopicPartition]:
        offsets = self.committed_offsets
        return [
            TopicPartition(TOPIC, p.partition, offsets.get(p.partition, -1001)) for p in partitions
        ]

    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float = -1, cached: bool = False
    ) -> tuple[int, int]:
        return 0, len(self.log[partition.partition])

    def seek(self, partition: TopicPartition) -> None:
        self.position[partition.partition] = _offset(partition.offset)

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.paused.update(p.partition for p in partitions)

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.paused.difference_update(p.partition for p in partitions)

    def incremental_assign(self, partitions: list[TopicPartition]) -> None:
        for p in partitions:
            self.position[p.partition] = _offset(p.offset)

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
        partitions = {p: SimpleNamespace(id=p) for p in self.log}
        return SimpleNamespace(topics={TOPIC: SimpleNamespace(partitions=partitions)})

    def close(self) -> None:
        # librdkafka revokes what the member holds as it leaves.
        if self.position:
            self._callbacks["revoke"](self, [TopicPartition(TOPIC, p) for p in self.position])
        self.position.clear()
        self.closed = True


def _offset(offset: int) -> int:
    return 0 if offset in (OFFSET_BEGINNING, -1001) else offset


@dataclass
class FakeSink:
    """Redis's view: how far each partition is built, and the readings stored."""

    built: dict[int, int | None] = field(default_factory=dict)
    stored: dict[str, int] = field(default_factory=dict)  # machine -> offset of its reading
    fail_writes: int = 0
    fail_reads: int = 0
    # While cleared, a write waits (a write in flight); set by default.
    gate: threading.Event = field(default_factory=threading.Event)
    writing: threading.Event = field(default_factory=threading.Event)
    writes: int = 0
    # Called at each write attempt, before it fails or succeeds.
    on_attempt: Callable[[], None] = lambda: None

    def __post_init__(self) -> None:
        self.gate.set()

    def write_batch(
        self,
        batch: Mapping[int, tuple[PartitionStep, Sequence[ReadingWrite]]],
        retired: Mapping[int, Sequence[str]] | None = None,
    ) -> dict[int, StoreBatchResult]:
        self.writing.set()
        self.gate.wait(10)
        self.on_attempt()
        if self.fail_writes:
            self.fail_writes -= 1
            raise RedisConnectionError("Redis is away")
        results = {}
        for partition, (step, readings) in batch.items():
            built = self.built.get(partition)
            if built != step.expected:
                results[partition] = StoreBatchResult(
                    written=0, in_step=False, built_in_redis=built
                )
                continue
            for r in readings:
                self.stored[r.machine_id] = r.offset
            self.built[partition] = step.next_offset
            results[partition] = StoreBatchResult(written=len(readings))
        self.writes += 1
        return results

    def built_offsets(self, partitions: Sequence[int]) -> dict[int, int | None]:
        if self.fail_reads:
            self.fail_reads -= 1
            raise RedisConnectionError("Redis is away")
        return {p: self.built.get(p) for p in partitions}

    def placements(self) -> list[Placement]:
        return []

    def note_placement(self, placement: Placement) -> None:
        pass


@dataclass
class FakeDeadLetters:
    sent: list[DeadLetter] = field(default_factory=list)
    fail: int = 0
    closed: bool = False

    def publish(self, letters: Sequence[DeadLetter]) -> int:
        if self.fail:
            self.fail -= 1
            raise DeadLetterUnavailableError("the dead-letter topic is away")
        self.sent.extend(letters)
        return len(letters)

    def close(self) -> None:
        self.closed = True


class FakeClock:
    """Time that moves only when the loop waits (or a test moves it)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.waited: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return 1_800_000_000.0 + self.now

    def wait(self, stop: threading.Event, seconds: float) -> None:
        self.waited.append(seconds)
        self.now += seconds


@dataclass
class Loop:
    """A worker on fake parts, and the parts."""

    worker: ConsumerWorker
    consumer: FakeConsumer
    sink: FakeSink
    dead_letters: FakeDeadLetters
    clock: FakeClock

    def count(self, name: str, **labels: str) -> float:
        return self.worker.metrics.registry.get_sample_value(name, labels or None) or 0.0

    def until(self, condition: Callable[[], bool], steps: int = 20) -> None:
        """Run steps until `condition` holds (at most `steps`)."""
        for _ in range(steps):
            if condition():
                return
            self.worker.step()
        assert condition(), f"not reached in {steps} steps"


def loop(partitions: int = 2, **settings: Any) -> Loop:
    worker_settings = WorkerSettings(
        _env_file=None,
        kafka_topic=TOPIC,
        worker_metrics_port=0,
        worker_health_file=None,
        worker_poll_timeout_seconds=0.01,
        **settings,
    )
    consumer, sink, dead_letters, clock = (
        FakeConsumer(partitions),
        FakeSink(),
        FakeDeadLetters(),
        FakeClock(),
    )
    worker = ConsumerWorker(
        worker_settings,
        WorkerParts(consumer=consumer, sink=sink, dead_letters=dead_letters, clock=clock),
    )
    worker.start()
    return Loop(worker, consumer, sink, dead_letters, clock)
