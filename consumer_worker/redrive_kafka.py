"""The re-drive tool's Kafka clients: read a topic up to where it ended when asked, create
the ledger topic, send records and wait for every acknowledgement.

The clients take the worker's settings (`kafka_client_config`: bootstrap servers, TLS,
SASL and the KAFKA_CONFIG__ properties), so the tool reaches the cluster as the
worker does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from consumer_worker.settings import WorkerSettings

logger = logging.getLogger(__name__)

CLIENT_ID: Final = "memtel-redrive"
# Records asked for per consume() call while reading a topic.
_READ_BATCH: Final = 500


class RedriveError(Exception):
    """Kafka cannot do what the tool needs; the message says what and where."""


@dataclass(frozen=True)
class Delivery:
    """The broker's answer for one record sent: its offset, or the error."""

    offset: int | None
    error: str | None


class RedriveKafka:
    def __init__(self, settings: WorkerSettings, timeout_seconds: float) -> None:
        self._settings = settings
        self._timeout = timeout_seconds
        self._bootstrap = settings.kafka_bootstrap_servers
        self._admin = AdminClient({**settings.kafka_client_config(), "client.id": CLIENT_ID})
        self._producer: Producer | None = None

    def partition_count(self, topic: str) -> int | None:
        """How many partitions `topic` has; None if it does not exist.

        Raises RedriveError when the cluster does not answer (unreachable, refused
        credentials), naming the bootstrap servers.
        """
        try:
            # Every topic's metadata: asking for one by name could make a broker with
            # auto.create.topics.enable create it.
            metadata = self._admin.list_topics(timeout=self._timeout)
        except KafkaException as exc:
            raise RedriveError(
                f"cannot reach Kafka at {self._bootstrap} within {self._timeout:g}s: "
                f"{_describe(exc)}"
            ) from exc
        found = metadata.topics.get(topic)
        if found is None:
            return None
        if found.error is not None and found.error.code() not in (
            KafkaError.UNKNOWN_TOPIC_OR_PART,
            KafkaError._UNKNOWN_TOPIC,
        ):
            raise RedriveError(f"cannot read topic {topic}: {found.error.str()}")
        if found.error is not None or not found.partitions:
            return None
        return len(found.partitions)

    def existing_partitions(self, topic: str, what: str) -> int:
        count = self.partition_count(topic)
        if count is None:
            raise RedriveError(f"the {what} {topic} does not exist on {self._bootstrap}")
        return count

    def create_compacted_topic(self, topic: str) -> None:
        """Create the ledger topic: one partition, compacted, the broker's replication."""
        futures = self._admin.create_topics(
            [
                NewTopic(
                    topic,
                    num_partitions=1,
                    replication_factor=-1,  # the broker's default.replication.factor
                    config={"cleanup.policy": "compact"},
                )
            ],
            operation_timeout=self._timeout,
        )
        try:
            futures[topic].result(timeout=self._timeout + 5)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise RedriveError(
                    f"cannot create the ledger topic {topic}: {_describe(exc)}"
                ) from exc
        logger.info("created the ledger topic %s", topic)

    def read(
        self,
        topic: str,
        partitions: Iterable[int],
        *,
        since_ms: int | None = None,
        start_offsets: dict[int, int] | None = None,
    ) -> list[Message]:
        """The records of `topic` up to the end offsets it has now, in partition order.

        From each partition's first record, or its first at or after `since_ms` (a
        record's time), or from `start_offsets`. Records that arrive meanwhile are left
        for the next run: a growing topic does not keep the tool reading.
        """
        consumer = Consumer(
            {
                **self._settings.kafka_client_config(),
                "client.id": CLIENT_ID,
                # Required by the client; nothing is committed, no group is joined.
                "group.id": CLIENT_ID,
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "auto.offset.reset": "earliest",
            }
        )
        try:
            return self._read(consumer, topic, sorted(partitions), since_ms, start_offsets or {})
        except KafkaException as exc:
            raise RedriveError(f"cannot read {topic}: {_describe(exc)}") from exc
        finally:
            consumer.close()

    def _read(
        self,
        consumer: Consumer,
        topic: str,
        partitions: list[int],
        since_ms: int | None,
        start_offsets: dict[int, int],
    ) -> list[Message]:
        ends: dict[int, int] = {}
        starts: dict[int, int] = {}
        for p in partitions:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, p), timeout=self._timeout
            )
            ends[p], starts[p] = high, max(low, start_offsets.get(p, low))
        if since_ms is not None:
            found = consumer.offsets_for_times(
                [TopicPartition(topic, p, since_ms) for p in partitions],
                timeout=self._timeout,
            )
            for tp in found:
                # -1: no record at or after that time.
                starts[tp.partition] = ends[tp.partition] if tp.offset < 0 else tp.offset
        pending = {p for p in partitions if starts[p] < ends[p]}
        if not pending:
            return []
        consumer.assign([TopicPartition(topic, p, starts[p]) for p in sorted(pending)])
        records: list[Message] = []
        last_progress = time.monotonic()
        while pending:
            batch = consumer.consume(num_messages=_READ_BATCH, timeout=0.5)
            for message in batch:
                partition, offset = message.partition() or 0, message.offset() or 0
                error = message.error()
                if error is not None:
                    if error.code() != KafkaError._PARTITION_EOF:
                        raise KafkaException(error)
                    if offset >= ends.get(partition, 0):
                        pending.discard(partition)
                    continue
                if partition in pending and offset < ends[partition]:
                    records.append(message)
                if offset >= ends[partition] - 1:
                    pending.discard(partition)
            if batch:
                last_progress = time.monotonic()
            elif time.monotonic() - last_progress > self._timeout:
                raise RedriveError(
                    f"no records of {topic} for {self._timeout:g}s while partitions "
                    f"{sorted(pending)} were not read to their end"
                )
        records.sort(key=lambda m: (m.partition() or 0, m.offset() or 0))
        return records

    def end_offset(self, topic: str, partition: int) -> int:
        """The offset the next record of the partition will get."""
        consumer = Consumer(
            {**self._settings.kafka_client_config(), "client.id": CLIENT_ID, "group.id": CLIENT_ID}
        )
        try:
            return int(
                consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=self._timeout
                )[1]
            )
        except KafkaException as exc:
            raise RedriveError(
                f"cannot read the end of {topic}[{partition}]: {_describe(exc)}"
            ) from exc
        finally:
            consumer.close()

    def send(self, records: Sequence[dict[str, Any]]) -> list[Delivery]:
        """Send each record (produce() keyword arguments) and wait for every answer.

        The producer is the services' acknowledged one: acks from all in-sync replicas,
        idempotent. Returns one Delivery per record, in order.
        """
        producer = self._acknowledged_producer()
        answers: list[Delivery | None] = [None] * len(records)

        def reporter(index: int) -> Any:
            def on_delivery(err: KafkaError | None, message: Message) -> None:
                if err is not None:
                    answers[index] = Delivery(None, err.str())
                else:
                    answers[index] = Delivery(message.offset(), None)

            return on_delivery

        for index, record in enumerate(records):
            while True:
                try:
                    producer.produce(**record, on_delivery=reporter(index))
                    break
                except BufferError:  # the local queue is full: let deliveries drain it
                    producer.poll(0.1)
                except KafkaException as exc:
                    answers[index] = Delivery(None, _describe(exc))
                    break
        remaining = producer.flush(self._delivery_timeout_seconds + 5)
        if remaining:
            producer.purge()
            producer.poll(0)
        return [
            answer or Delivery(None, f"not acknowledged within {self._delivery_timeout_seconds:g}s")
            for answer in answers
        ]

    @property
    def _delivery_timeout_seconds(self) -> float:
        return self._settings.kafka_dead_letter_delivery_timeout_ms / 1000

    def _acknowledged_producer(self) -> Producer:
        if self._producer is None:
            self._producer = Producer(
                self._settings.acknowledged_producer_config(
                    CLIENT_ID, self._settings.kafka_dead_letter_delivery_timeout_ms
                )
            )
        return self._producer


def _describe(exc: KafkaException) -> str:
    error = exc.args[0] if exc.args else None
    return error.str() if isinstance(error, KafkaError) else str(exc)
