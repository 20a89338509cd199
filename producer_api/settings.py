"""Settings of the producer API, read from the environment and `.env`."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from telemetry_common.settings import KafkaSettings, RedisSettings


class ProducerSettings(KafkaSettings, RedisSettings):
    api_host: str = Field("127.0.0.1", description="Interface the HTTP server binds to.")
    api_port: int = Field(5050, ge=1, le=65535, description="Port of the HTTP server.")
    kafka_delivery_timeout_ms: int = Field(
        5000,
        ge=100,
        le=300_000,
        description=(
            "Longest wait for the broker to acknowledge a reading; after it the POST "
            "answers 503. Bounds every POST when Kafka is down."
        ),
    )
    kafka_linger_ms: int = Field(
        5, ge=0, le=1000, description="How long the producer waits to batch records."
    )
    shutdown_flush_timeout_seconds: float = Field(
        10.0, gt=0, description="At shutdown, how long to wait for unsent records."
    )

    def producer_config(self) -> dict[str, Any]:
        """librdkafka settings of the API's idempotent producer, with a bounded delivery."""
        return {
            **self.kafka_client_config(),
            "client.id": "memtel-producer-api",
            # acks=all, no duplicates or reordering on retries within one producer session.
            "enable.idempotence": True,
            # After this librdkafka fails the delivery: the bound of every POST.
            "message.timeout.ms": self.kafka_delivery_timeout_ms,
            "request.timeout.ms": min(30_000, self.kafka_delivery_timeout_ms),
            "linger.ms": self.kafka_linger_ms,
            "compression.type": "lz4",
        }
