"""Settings of the consumer worker, read from the environment and `.env`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final, Literal

from pydantic import Field

from telemetry_common.settings import KafkaSettings, RedisSettings
from telemetry_common.storage import HistoryRetention

# The consumer group of the workers unless configured otherwise. The API reads the
# group's built offsets (read-your-writes), so its KAFKA_CONSUMER_GROUP defaults to the
# same name (tests/unit/test_history_batch.py checks that the two agree).
DEFAULT_CONSUMER_GROUP: Final = "memtel-redis-writer"


class WorkerSettings(KafkaSettings, RedisSettings):
    kafka_consumer_group: str = Field(
        DEFAULT_CONSUMER_GROUP, min_length=1, description="Consumer group of the workers."
    )
    kafka_dead_letter_topic: str = Field(
        "memory-readings.dlq", min_length=1, description="Topic for records the worker cannot use."
    )
    kafka_auto_offset_reset: Literal["earliest", "latest"] = Field(
        "earliest",
        description=(
            "Where to read from when the offset Redis's view is built up to is no longer "
            "in the topic (retention deleted it): earliest, or latest (skipping records)."
        ),
    )
    kafka_session_timeout_ms: int = Field(
        10_000,
        ge=1_000,
        le=3_600_000,
        description=(
            "How long the group waits for a silent member (crashed, cut off) before it "
            "gives the member's partitions to the others. The broker refuses values "
            "outside its group.min/max.session.timeout.ms (6000 to 1800000 by default)."
        ),
    )
    kafka_group_instance_id: str | None = Field(
        None,
        min_length=1,
        max_length=249,
        description=(
            "Static group membership: a stable id, unique in the group, that a restarted "
            "worker presents to get its partitions back at once. Unset: dynamic membership."
        ),
    )
    kafka_dead_letter_delivery_timeout_ms: int = Field(
        10_000,
        ge=1_000,
        le=300_000,
        description=(
            "Longest wait for the broker to acknowledge dead letters; then the batch is "
            "retried and nothing past its records is written or committed."
        ),
    )
    kafka_max_poll_interval_ms: int = Field(
        300_000,
        ge=10_000,
        description="Longest gap between polls before the group reassigns the partitions.",
    )
    # The consumer's memory is mostly what librdkafka fetches ahead: records in its
    # queue, plus the fetch under way. Records arrive compressed (lz4 packs a reading
    # into some 20 bytes), so a fetch of N bytes can unpack into ten times as much.
    kafka_queued_max_messages_kbytes: int = Field(
        1_024,
        ge=1,
        le=2_097_151,
        description=(
            "Most KiB of records librdkafka queues ahead of the worker (its "
            "queued.max.messages.kbytes, counting uncompressed records); past it, it "
            "stops fetching until the worker took some."
        ),
    )
    kafka_fetch_max_bytes: int = Field(
        1_048_576,
        ge=1_000_000,
        le=2_147_483_135,
        description=(
            "Most bytes (as sent, compressed) of one fetch from a broker (librdkafka's "
            "fetch.max.bytes; at least its message.max.bytes, 1000000)."
        ),
    )
    kafka_max_partition_fetch_bytes: int = Field(
        262_144,
        ge=1_024,
        le=1_000_000_000,
        description=(
            "Most bytes (as sent, compressed) of one partition in one fetch (librdkafka's "
            "max.partition.fetch.bytes; a larger record batch is still fetched whole)."
        ),
    )
    worker_batch_size: int = Field(
        5_000,
        ge=1,
        le=100_000,
        description=(
            "Most records taken and written in one batch. Of a machine's readings in a "
            "batch only the newest is written, so larger batches write less while the "
            "worker catches up; Redis runs each batch as one script, serving nothing else "
            "meanwhile (some milliseconds per thousand readings)."
        ),
    )
    worker_commit_interval_ms: int = Field(
        1_000,
        ge=0,
        le=600_000,
        description=(
            "Least time between two offset commits to Kafka (0: after every batch). The "
            "worker resumes from the offsets kept in Redis; the commits are for lag "
            "monitoring and tools, and are also made on revocation and at shutdown."
        ),
    )
    worker_poll_timeout_seconds: float = Field(
        1.0,
        gt=0,
        le=30,
        description="Longest wait for a batch; also how quickly a stop signal is seen.",
    )
    worker_retry_max_backoff_seconds: float = Field(
        10.0, gt=0, description="Cap of the backoff between retries of a failed Redis write."
    )
    worker_view_check_interval_seconds: float = Field(
        5.0,
        gt=0,
        le=3600,
        description=(
            "How often the worker checks that Redis still holds the view it built (it was "
            "not emptied or replaced), also for partitions that receive no records."
        ),
    )
    worker_health_file: Path | None = Field(
        None,
        description=(
            "File the worker's loop rewrites with its status (heartbeat, last progress, "
            "lag); `python -m consumer_worker.healthcheck` judges it."
        ),
    )
    worker_stall_seconds: float = Field(
        30.0,
        gt=0,
        le=86_400,
        description=(
            "How long the worker may be behind (lag above 0) without storing anything "
            "before its health check fails."
        ),
    )
    worker_metrics_host: str = Field(
        "127.0.0.1",
        min_length=1,
        description="Interface the Prometheus metrics (and /healthz) server binds to.",
    )
    worker_metrics_port: int = Field(
        9102,
        ge=0,
        le=65535,
        description="Port of the Prometheus metrics (and /healthz) server; 0: no server.",
    )

    # A history entry takes some 75 bytes of Redis memory: the defaults keep at most
    # about 75 KB per machine (docs/history.md has the arithmetic).
    history_max_entries: int = Field(
        1_000,
        ge=0,
        le=10_000_000,
        description=(
            "Most history entries kept per machine (the oldest go first); 0: no bound by "
            "count. With HISTORY_MAX_AGE_SECONDS also 0, no history is kept."
        ),
    )
    history_max_age_seconds: int = Field(
        86_400,
        ge=0,
        le=10 * 366 * 86_400,
        description=(
            "History entries older than this are removed (by the time of their reading), "
            "and a machine's whole history once its newest entry is; 0: no bound by age."
        ),
    )

    def history_retention(self) -> HistoryRetention:
        return HistoryRetention(
            max_entries=self.history_max_entries, max_age_ms=self.history_max_age_seconds * 1000
        )

    def consumer_config(self) -> dict[str, Any]:
        """librdkafka settings of the worker's consumer."""
        config: dict[str, Any] = {
            **self.kafka_client_config(),
            "group.id": self.kafka_consumer_group,
            "client.id": "memtel-consumer-worker",
            # Offsets are committed by hand, after the Redis write. They are for lag
            # monitoring and tools: a worker resumes from where Redis's view is built.
            "enable.auto.commit": False,
            "auto.offset.reset": self.kafka_auto_offset_reset,
            # Scaling the workers up or down moves only the partitions that must move.
            "partition.assignment.strategy": "cooperative-sticky",
            "max.poll.interval.ms": self.kafka_max_poll_interval_ms,
            "session.timeout.ms": self.kafka_session_timeout_ms,
            # At least three heartbeats per session timeout, as Kafka advises.
            "heartbeat.interval.ms": min(3_000, self.kafka_session_timeout_ms // 3),
            # librdkafka fetches ahead in its own thread while the worker decodes and
            # writes; these bound how much it holds.
            "queued.max.messages.kbytes": self.kafka_queued_max_messages_kbytes,
            "fetch.max.bytes": self.kafka_fetch_max_bytes,
            "max.partition.fetch.bytes": self.kafka_max_partition_fetch_bytes,
            # Once that queue is full librdkafka waits this long before fetching again
            # (1 s by default): the worker would drain the queue and then sit idle.
            "fetch.queue.backoff.ms": 10,
        }
        if self.kafka_group_instance_id is not None:
            config["group.instance.id"] = self.kafka_group_instance_id
        return config

    def dead_letter_producer_config(self) -> dict[str, Any]:
        """librdkafka settings of the worker's producer of dead letters."""
        return {
            # After the delivery timeout the worker retries the batch.
            **self.acknowledged_producer_config(
                "memtel-consumer-worker-dlq", self.kafka_dead_letter_delivery_timeout_ms
            ),
            # Dead letters are rare and each one holds up a batch: send them at once.
            "linger.ms": 0,
        }

    @property
    def dead_letter_flush_timeout_seconds(self) -> float:
        # A little longer than the delivery timeout, so that librdkafka reports each
        # failed delivery before the wait gives up.
        return self.kafka_dead_letter_delivery_timeout_ms / 1000 + 1.0
