"""Helpers shared by the tests: waiting for conditions, reading topics, sample data."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
from asgi_lifespan import LifespanManager
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

import devstack.offsets
from consumer_worker.batch import RecordDecoder
from consumer_worker.build import build_worker
from consumer_worker.settings import DEFAULT_CONSUMER_GROUP, WorkerSettings
from consumer_worker.sink import RedisSink
from consumer_worker.worker import ConsumerWorker
from devstack import services
from devstack.offsets import end_offsets as end_offsets
from devstack.ports import free_port
from devstack.processes import ManagedProcess
from devstack.stack import LocalStack
from producer_api.app import create_app
from producer_api.publisher import Publisher
from producer_api.settings import ProducerSettings
from telemetry_common.contract import EXAMPLE_READING, KafkaHeaders, KafkaRecord
from telemetry_common.layout import PartitionKeys, partition_keys
from telemetry_common.partitioning import PARTITIONER, Placement, partition_of
from telemetry_common.redis_client import SyncRedis

T = TypeVar("T")

READING: dict[str, int] = dict(EXAMPLE_READING)

# Partitions of the topics the tests create: enough to spread machines over, few
# enough to keep the broker light.
TOPIC_PARTITIONS = 3


def reading(**changes: int) -> dict[str, int]:
    return {**READING, **changes}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def wait_until(
    condition: Callable[[], T | None], timeout: float, what: str, interval: float = 0.05
) -> T:
    """Return the first truthy value of `condition()`; fail if none came within `timeout`."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()  # never set: wait() is the pause between checks
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        pause.wait(interval)


async def wait_until_async(
    condition: Callable[[], Awaitable[T | None]], seconds: float, what: str, interval: float = 0.02
) -> T:
    """`wait_until` for a test whose app runs in its own event loop: the checks are awaited
    and the pauses between them yield to the loop (a blocking wait would stop the app)."""
    try:
        async with asyncio.timeout(seconds):
            while True:
                result = await condition()
                if result:
                    return result
                # The pause between checks, as in wait_until: the condition is polled
                # (a scrape, a read), there is no event to wait on.
                await asyncio.sleep(interval)
    except TimeoutError:
        raise AssertionError(f"timed out after {seconds}s waiting for {what}") from None


def consume_all(bootstrap: str, topic: str, count: int, timeout: float = 30.0) -> list[Message]:
    """Read `count` records from the beginning of `topic` with a real consumer."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique("test-reader"),
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    messages: list[Message] = []
    try:

        def got_all() -> bool:
            for message in consumer.consume(num_messages=count, timeout=0.5):
                assert message.error() is None, message.error()
                messages.append(message)
            return len(messages) >= count

        wait_until(got_all, timeout, f"{count} records on {topic}")
    finally:
        consumer.close()
    return messages


# A record as a test writes it: (key, value), (key, value, headers), or as the API encodes it.
RawRecord = tuple[bytes | None, bytes | None] | tuple[bytes | None, bytes | None, KafkaHeaders]


def produce(
    bootstrap: str,
    topic: str,
    records: Iterable[RawRecord | KafkaRecord],
    timestamps_ms: Iterable[int] | None = None,
) -> None:
    """Produce `records` in order, with their headers and, if given, each with its Kafka
    timestamp of `timestamps_ms` (the time of producing otherwise); wait until all are
    acknowledged."""
    producer = Producer(
        {"bootstrap.servers": bootstrap, "enable.idempotence": True, "partitioner": PARTITIONER}
    )
    failures: list[KafkaError] = []

    def on_delivery(err: KafkaError | None, _: Message) -> None:
        if err is not None:
            failures.append(err)

    to_send = list(records)
    stamps = [0] * len(to_send) if timestamps_ms is None else list(timestamps_ms)
    for record, timestamp in zip(to_send, stamps, strict=True):
        key: bytes | None
        value: bytes | None
        headers: KafkaHeaders | None
        if isinstance(record, KafkaRecord):
            key, value, headers = record.key, record.value, record.headers
        else:
            key, value, *rest = record
            headers = rest[0] if rest else None
        producer.produce(
            topic,
            key=key,
            value=value,
            headers=headers,
            timestamp=timestamp,  # 0: the producer's clock
            on_delivery=on_delivery,
        )
    assert producer.flush(30) == 0, "records were not delivered"
    assert not failures, failures


def committed_offsets(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    """The group's committed offset per partition (negative where nothing is committed)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        committed = consumer.committed(
            [TopicPartition(topic, p) for p in range(partitions)], timeout=10
        )
    finally:
        consumer.close()
    return {tp.partition: tp.offset for tp in committed}


def committed_to_the_end(stack: LocalStack, settings: WorkerSettings) -> dict[int, bool]:
    """For each partition of the settings' topic that holds records: whether the worker's
    group committed its offset up to the partition's end."""
    ends = end_offsets(stack.bootstrap_servers, settings.kafka_topic, TOPIC_PARTITIONS)
    committed = committed_offsets(
        stack.bootstrap_servers,
        settings.kafka_consumer_group,
        settings.kafka_topic,
        TOPIC_PARTITIONS,
    )
    return {p: committed[p] == end for p, end in ends.items() if end > 0}


def worker_count(worker: ConsumerWorker, name: str, **labels: str) -> float:
    """A counter of the worker's metrics (e.g. "memtel_worker_readings_written_total"),
    as its registry holds it (0 if it has no such sample yet)."""
    return worker.metrics.registry.get_sample_value(name, labels or None) or 0.0


def readings_written(worker: ConsumerWorker) -> float:
    return worker_count(worker, "memtel_worker_readings_written_total")


def records_dead_lettered(worker: ConsumerWorker) -> float:
    return worker_count(worker, "memtel_worker_records_dead_lettered_total")


def failed_redis_calls(worker: ConsumerWorker) -> float:
    """Failed Redis writes and reads of the view (each retried)."""
    return sum(
        worker_count(worker, "memtel_worker_redis_failures_total", operation=operation)
        for operation in ("write", "read_view")
    )


def failed_dead_letter_sends(worker: ConsumerWorker) -> float:
    return worker_count(worker, "memtel_worker_dead_letter_failures_total")


def view_replays(worker: ConsumerWorker) -> float:
    return worker_count(worker, "memtel_worker_view_replays_total")


def offset_commits(worker: ConsumerWorker) -> float:
    return worker_count(worker, "memtel_worker_offset_commits_total")


@contextmanager
def running_worker(
    settings: WorkerSettings, record_decoders: Mapping[int, RecordDecoder] | None = None
) -> Iterator[ConsumerWorker]:
    """Run a worker on a thread (reading the record versions of `record_decoders` too);
    on exit ask it to stop and wait until it has."""
    worker = build_worker(settings, record_decoders=record_decoders)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            worker.run()
        except BaseException as exc:
            errors.append(exc)
            raise

    thread = threading.Thread(target=run, name="test-worker", daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        worker.request_stop()
        thread.join(timeout=60)
        assert not thread.is_alive(), "the worker did not stop"
        assert not errors, errors


@contextmanager
def api_and_worker(
    stack: LocalStack, work_dir: Path, env: dict[str, str]
) -> Iterator[tuple[str, ManagedProcess]]:
    """The API and a worker as processes of their own on `stack`, with `env` on top of
    the stack's; yields the API's URL and the worker. Stopping the worker raises if it
    does not exit cleanly on SIGTERM."""
    api_port = free_port()
    api = services.producer_api(work_dir, {**stack.api_env(), **env, "API_PORT": str(api_port)})
    worker = services.consumer_worker(
        work_dir, {**stack.worker_env(), "WORKER_POLL_TIMEOUT_SECONDS": "0.2", **env}
    )
    api.start()
    try:
        worker.start()
        try:
            yield f"http://{services.HOST}:{api_port}", worker
        finally:
            worker.stop()
    finally:
        api.stop()


@asynccontextmanager
async def api_client(
    settings: ProducerSettings, publisher: Publisher | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client bound to the app in-process, with the app's lifespan entered; the
    app publishes with `publisher` if given (an InMemoryPublisher), to Kafka otherwise."""
    app = create_app(settings, publisher_factory=None if publisher is None else lambda _: publisher)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield client


# Port 9 of the loopback (discard): nothing listens there, so a client connecting to it
# is refused at once, as by a broker or a Redis that is down.
UNREACHABLE_KAFKA = "127.0.0.1:9"
UNREACHABLE_REDIS = "redis://127.0.0.1:9/0"


def unreachable_settings(**changes: Any) -> ProducerSettings:
    """The API's settings with a Kafka and a Redis that are never reachable, and `changes`:
    for an app whose requests are answered before anything is published or read, by an
    in-memory publisher, or with the 503 of a broker that is down."""
    return ProducerSettings(
        _env_file=None,
        **{
            "kafka_bootstrap_servers": UNREACHABLE_KAFKA,
            "redis_url": UNREACHABLE_REDIS,
            # Nothing queued can reach the broker: closing does not wait for it long.
            "shutdown_flush_timeout_seconds": 0.5,
            **changes,
        },
    )


def stack_settings(stack: LocalStack, **changes: Any) -> ProducerSettings:
    """The API's settings for `stack` (its Kafka, its topic, its Redis), with `changes`."""
    return ProducerSettings(
        _env_file=None,
        **{
            "kafka_bootstrap_servers": stack.bootstrap_servers,
            "kafka_topic": stack.settings.kafka_topic,
            "redis_url": stack.redis_url,
            "redis_cluster": stack.settings.redis_cluster,
            **changes,
        },
    )


def settings_like(base: ProducerSettings, **changes: Any) -> ProducerSettings:
    """`base`'s connections with `changes`, read and checked as the service reads them."""
    return ProducerSettings(
        _env_file=None,
        kafka_bootstrap_servers=base.kafka_bootstrap_servers,
        kafka_topic=base.kafka_topic,
        redis_url=base.redis_url,
        redis_cluster=base.redis_cluster,
        **changes,
    )


@dataclass(frozen=True)
class OwnRedis:
    """A standalone Redis server of one test's own, on a free port, so that stopping or
    freezing it disturbs no other test (the `own_redis` fixture; not started by it)."""

    server: ManagedProcess
    port: int
    data_dir: Path

    @property
    def url(self) -> str:
        return f"redis://{services.HOST}:{self.port}/0"


def on_own_redis(settings: WorkerSettings, own: OwnRedis, **changes: Any) -> WorkerSettings:
    """`settings` writing to `own` (standalone, whatever the session runs on), with a short
    Redis timeout, as a test stops that Redis, and `changes`."""
    update = {"redis_url": own.url, "redis_cluster": False, "redis_timeout_seconds": 0.5}
    return settings.model_copy(update={**update, **changes})


def machine_keys(machine_id: str, partitions: int = TOPIC_PARTITIONS) -> PartitionKeys:
    """The Redis keys of the partition a machine's readings go to in a topic of
    `partitions` partitions (the tests' topics have TOPIC_PARTITIONS)."""
    return partition_keys(partition_of(machine_id, partitions))


def built_offsets(
    client: SyncRedis, group: str, topic: str, partitions: int = TOPIC_PARTITIONS
) -> dict[int, int]:
    """How far the group's view of each partition of `topic` is built (partitions with
    nothing built left out); the tests' topics have TOPIC_PARTITIONS."""
    return devstack.offsets.built_offsets(client, group, topic, partitions)


def forget_built_offsets(
    client: SyncRedis, group: str, topic: str, partitions: int = TOPIC_PARTITIONS
) -> None:
    """Delete the group's built offsets of every partition of `topic`."""
    for p in range(partitions):
        client.delete(partition_keys(p).built(group, topic))


def sink_for_topic(client: SyncRedis, topic: str) -> RedisSink:
    """A sink writing the default group's view of a test topic (and the topic's partition
    count, which the API finds machines by, as a worker notes it)."""
    sink = RedisSink(client, DEFAULT_CONSUMER_GROUP, topic)
    sink.note_placement(Placement(PARTITIONER, TOPIC_PARTITIONS))
    return sink
