"""The consumer loop: Kafka batches in, Redis writes, then offset commits.

At-least-once: offsets are committed only after Redis accepted a batch, and the
writes are idempotent (a stale or replayed record never overwrites a newer one), so a
crash or a rebalance at any point re-reads records but never loses one. Every call on
the consumer happens on the thread that runs `run()`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from redis.exceptions import RedisError
from tenacity import (
    RetryCallState,
    RetryError,
    Retrying,
    retry_if_exception_type,
    wait_exponential,
)

from consumer_worker.batch import Batch, build_batch
from consumer_worker.heartbeat import Heartbeat
from consumer_worker.settings import WorkerSettings
from consumer_worker.sink import RedisSink
from telemetry_common.redis_client import create_sync_redis

logger = logging.getLogger(__name__)


def _describe(partitions: Sequence[TopicPartition]) -> str:
    return ", ".join(f"{p.topic}[{p.partition}]" for p in partitions) or "none"


class ConsumerWorker:
    def __init__(self, settings: WorkerSettings) -> None:
        self._settings = settings
        self._consumer = Consumer({**settings.consumer_config(), "error_cb": self._on_client_error})
        self._redis = create_sync_redis(settings)
        self._sink = RedisSink(self._redis)
        self._heartbeat = Heartbeat(settings.worker_health_file)
        self._stop = threading.Event()
        self.readings_written = 0
        self.records_skipped = 0
        self.failed_writes = 0

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def request_stop(self) -> None:
        """Finish the current batch, commit, close. Safe from a signal handler or thread."""
        self._stop.set()

    def run(self) -> None:
        logger.info(
            "consuming %s as group %s from %s",
            self._settings.kafka_topic,
            self._settings.kafka_consumer_group,
            self._settings.kafka_bootstrap_servers,
        )
        self._consumer.subscribe(
            [self._settings.kafka_topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        try:
            while not self._stop.is_set():
                self._heartbeat.beat()
                records = self._without_errors(self._next_batch())
                if records:
                    self._process(build_batch(records))
        finally:
            logger.info(
                "stopping: %d readings written, %d records skipped",
                self.readings_written,
                self.records_skipped,
            )
            self._consumer.close()
            self._redis.close()
            self._heartbeat.clear()

    def _next_batch(self) -> list[Message]:
        """Wait for the first record, then take what else is already fetched.

        consume(n, timeout) alone waits until n records arrived or the timeout passed,
        which would hold every record of a quiet topic for the whole timeout.
        """
        first = self._consumer.poll(self._settings.worker_poll_timeout_seconds)
        if first is None:
            return []
        room = self._settings.worker_batch_size - 1
        more = self._consumer.consume(num_messages=room, timeout=0) if room else []
        return [first, *more]

    def _process(self, batch: Batch) -> None:
        if not self._write(batch):
            return
        self.records_skipped += batch.skipped
        self._commit(batch)

    def _write(self, batch: Batch) -> bool:
        """Write the batch to Redis, retrying with backoff until it is accepted.

        Returns False only if a stop was requested while Redis kept failing: the batch's
        offsets are then left uncommitted, so its records are read again later.
        """
        retrying = Retrying(
            retry=retry_if_exception_type(RedisError),
            wait=wait_exponential(
                multiplier=0.1, max=self._settings.worker_retry_max_backoff_seconds
            ),
            stop=lambda _: self._stop.is_set(),
            sleep=self._wait_before_retry,
            before_sleep=self._log_retry,
        )
        try:
            written = retrying(self._sink.write, batch.readings)
        except RetryError as exc:
            logger.warning(
                "stop requested while Redis was failing (%s): %d readings not stored and "
                "their offsets not committed; they will be read again",
                exc.last_attempt.exception(),
                len(batch.readings),
            )
            return False
        self.readings_written += written
        return True

    def _wait_before_retry(self, seconds: float) -> None:
        # Waiting on the stop event (not sleeping) lets a stop signal cut the wait short.
        self._heartbeat.beat()
        self._stop.wait(seconds)

    def _log_retry(self, state: RetryCallState) -> None:
        self.failed_writes += 1
        outcome = state.outcome.exception() if state.outcome else None
        logger.error(
            "Redis write failed (attempt %d: %s); retrying in %.1fs, offsets not committed",
            state.attempt_number,
            outcome,
            state.upcoming_sleep,
        )

    def _commit(self, batch: Batch) -> None:
        offsets = [
            TopicPartition(topic, partition, offset)
            for (topic, partition), offset in batch.next_offsets.items()
        ]
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # The records are in Redis; a failed commit (e.g. during a rebalance) only means
            # the next owner of the partition reads them again and writes nothing new.
            logger.warning("offset commit failed, records will be re-read: %s", exc)

    def _without_errors(self, messages: list[Message]) -> list[Message]:
        records = []
        for message in messages:
            error = message.error()
            if error is None:
                records.append(message)
            elif error.fatal():
                raise KafkaException(error)
            else:
                logger.warning("consumer error: %s", error)
        return records

    def _on_client_error(self, err: KafkaError) -> None:
        logger.warning("Kafka client error: %s", err)

    def _on_assign(self, _: Consumer, partitions: list[TopicPartition]) -> None:
        logger.info("partitions assigned: %s", _describe(partitions))

    def _on_revoke(self, _: Consumer, partitions: list[TopicPartition]) -> None:
        # Nothing is pending here: librdkafka runs rebalance callbacks only inside poll(),
        # consume() and close(), on this thread, and each batch is stored and committed
        # before the next poll().
        logger.info("partitions revoked: %s", _describe(partitions))

    def _on_lost(self, _: Consumer, partitions: list[TopicPartition]) -> None:
        logger.warning("partitions lost (their records will be re-read): %s", _describe(partitions))
