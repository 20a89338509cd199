"""An asyncio front for confluent-kafka's Producer.

librdkafka delivers acknowledgements through callbacks served by `poll()`. A single
background thread polls; each `publish()` awaits a future that the delivery callback
resolves on the event loop with `call_soon_threadsafe`. The event loop never blocks
and nothing is flushed per request. (confluent_kafka.aio.AIOProducer buffers records
for up to its buffer timeout before producing them and refuses headers, which would
add latency to every POST and drop the record headers.)
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from telemetry_common.contract import KafkaRecord

logger = logging.getLogger(__name__)

# Extra time on top of librdkafka's own message timeout before a publish gives up on
# the callback: a safety net, librdkafka normally reports the timeout itself.
_CALLBACK_GRACE_SECONDS = 1.0
_POLL_INTERVAL_SECONDS = 0.1


class DeliveryError(Exception):
    """The broker did not acknowledge a record; it may or may not have been written."""


@dataclass(frozen=True)
class DeliveryReport:
    """Where the broker wrote the record."""

    partition: int
    offset: int


def _report_from(message: Message) -> DeliveryReport:
    return DeliveryReport(partition=message.partition() or 0, offset=message.offset() or 0)


def _resolve(future: asyncio.Future[DeliveryReport], err: KafkaError | None, msg: Message) -> None:
    if future.done():  # the request already gave up waiting
        return
    if err is not None:
        future.set_exception(DeliveryError(f"Kafka refused the record: {err.str()}"))
    else:
        future.set_result(_report_from(msg))


class KafkaPublisher:
    """Publishes records and awaits the broker's acknowledgement of each one."""

    def __init__(self, config: dict[str, Any]) -> None:
        # librdkafka fails a delivery after `message.timeout.ms`: the one setting that
        # bounds a publish. The wait below only adds a grace period on top of it.
        self._delivery_timeout_seconds = int(config["message.timeout.ms"]) / 1000
        self._fatal_error: KafkaError | None = None
        self._producer = Producer({**config, "error_cb": self._on_client_error})
        self._stopping = threading.Event()
        self._poller = threading.Thread(
            target=self._poll_until_stopped, name="kafka-delivery-poller", daemon=True
        )
        self._poller.start()

    def _on_client_error(self, err: KafkaError) -> None:
        # Connection trouble is reported here too; librdkafka recovers from it by itself.
        if err.fatal():
            self._fatal_error = err
            logger.critical("Kafka producer hit a fatal error and can no longer publish: %s", err)
        else:
            logger.warning("Kafka client error: %s", err)

    def _poll_until_stopped(self) -> None:
        while not self._stopping.is_set():
            self._producer.poll(_POLL_INTERVAL_SECONDS)

    @property
    def healthy(self) -> bool:
        return self._fatal_error is None

    async def publish(self, topic: str, record: KafkaRecord) -> DeliveryReport:
        """Produce one record; return once the broker acknowledged it.

        Raises DeliveryError if the record was refused, could not be queued, or was not
        acknowledged within the delivery timeout.
        """
        if self._fatal_error is not None:
            raise DeliveryError(f"the Kafka producer is unusable: {self._fatal_error.str()}")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[DeliveryReport] = loop.create_future()

        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            try:
                loop.call_soon_threadsafe(_resolve, future, err, msg)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                logger.warning("delivery report for %s arrived after shutdown", msg.key())

        try:
            self._producer.produce(
                topic,
                value=record.value,
                key=record.key,
                headers=record.headers,
                on_delivery=on_delivery,
            )
        except BufferError as exc:
            raise DeliveryError("the producer's local queue is full") from exc
        except KafkaException as exc:
            raise DeliveryError(f"Kafka refused the record: {exc.args[0].str()}") from exc
        try:
            return await asyncio.wait_for(
                future, self._delivery_timeout_seconds + _CALLBACK_GRACE_SECONDS
            )
        except TimeoutError as exc:
            raise DeliveryError("no acknowledgement from Kafka in time") from exc

    async def topic_available(self, topic: str, timeout_seconds: float) -> bool:
        """Whether a broker answers and knows the topic (for the readiness probe)."""

        def lookup() -> bool:
            try:
                metadata = self._producer.list_topics(topic, timeout=timeout_seconds)
            except KafkaException:
                return False
            found = metadata.topics.get(topic)
            return found is not None and found.error is None and bool(found.partitions)

        return await asyncio.to_thread(lookup)

    async def close(self, flush_timeout_seconds: float) -> None:
        """Stop polling and wait (in a thread) for queued records to be delivered."""
        self._stopping.set()
        await asyncio.to_thread(self._poller.join)
        remaining = await asyncio.to_thread(self._producer.flush, flush_timeout_seconds)
        if remaining:
            logger.error("%d record(s) were not delivered before shutdown", remaining)
