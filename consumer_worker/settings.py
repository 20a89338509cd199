"""Settings of the consumer worker, read from the environment and `.env`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from telemetry_common.settings import KafkaSettings, RedisSettings


class WorkerSettings(KafkaSettings, RedisSettings):
    kafka_consumer_group: str = Field(
        "memtel-redis-writer", min_length=1, description="Consumer group of the workers."
    )
    kafka_dead_letter_topic: str = Field(
        "memory-readings.dlq", min_length=1, description="Topic for records the worker cannot use."
    )
    kafka_auto_offset_reset: Literal["earliest", "latest"] = Field(
        "earliest", description="Where a new consumer group starts reading."
    )
    kafka_max_poll_interval_ms: int = Field(
        300_000,
        ge=10_000,
        description="Longest gap between polls before the group reassigns the partitions.",
    )
    worker_batch_size: int = Field(
        500, ge=1, le=100_000, description="Most records taken and written in one batch."
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
    worker_health_file: Path | None = Field(
        None,
        description=(
            "File the worker touches while its loop runs; "
            "`python -m consumer_worker.healthcheck` checks its age."
        ),
    )

    def consumer_config(self) -> dict[str, Any]:
        """librdkafka settings of the worker's consumer."""
        return {
            **self.kafka_client_config(),
            "group.id": self.kafka_consumer_group,
            "client.id": "memtel-consumer-worker",
            # Offsets are committed by hand, after the Redis write.
            "enable.auto.commit": False,
            "auto.offset.reset": self.kafka_auto_offset_reset,
            # Scaling the workers up or down moves only the partitions that must move.
            "partition.assignment.strategy": "cooperative-sticky",
            "max.poll.interval.ms": self.kafka_max_poll_interval_ms,
        }
