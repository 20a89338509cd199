"""The worker as it runs: its parts built from the settings (for `python -m
consumer_worker` and the tests on a real stack)."""

from __future__ import annotations

from collections.abc import Mapping

from confluent_kafka import Consumer, Producer
from prometheus_client import CollectorRegistry

from consumer_worker.batch import RecordDecoder
from consumer_worker.dead_letters import DeadLetterPublisher
from consumer_worker.kafka_errors import KafkaErrors
from consumer_worker.metrics import WorkerMetrics
from consumer_worker.parts import SystemClock, WorkerParts
from consumer_worker.settings import WorkerSettings
from consumer_worker.sink import RedisSink
from consumer_worker.worker import ConsumerWorker
from telemetry_common.redis_client import create_sync_redis


def build_worker(
    settings: WorkerSettings, *, record_decoders: Mapping[int, RecordDecoder] | None = None
) -> ConsumerWorker:
    """A worker on the real Kafka consumer, dead-letter producer and Redis of `settings`
    (`record_decoders`: see ConsumerWorker)."""
    # A registry of the worker's own: several workers in one process share no counters.
    metrics = WorkerMetrics(CollectorRegistry())
    kafka_errors = KafkaErrors(metrics)
    consumer = Consumer(
        {
            **kafka_errors.reported(settings.consumer_config()),
            "on_commit": kafka_errors.on_commit,
        }
    )
    dead_letters = DeadLetterPublisher(
        lambda: Producer(kafka_errors.reported(settings.dead_letter_producer_config())),
        settings.kafka_dead_letter_topic,
        settings.dead_letter_flush_timeout_seconds,
    )
    redis = create_sync_redis(settings)
    sink = RedisSink(
        redis, settings.kafka_consumer_group, settings.kafka_topic, settings.history_retention()
    )
    parts = WorkerParts(
        consumer=consumer,
        sink=sink,
        dead_letters=dead_letters,
        clock=SystemClock(),
        on_close=redis.close,
    )
    return ConsumerWorker(
        settings,
        parts,
        metrics=metrics,
        kafka_errors=kafka_errors,
        record_decoders=record_decoders,
    )
