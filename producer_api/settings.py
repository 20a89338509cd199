"""Settings of the producer API, read from the environment and `.env`."""

from __future__ import annotations

import os
from typing import Any, Self

from pydantic import Field, model_validator

from producer_api.batch_models import LARGEST_ITEM_BYTES
from telemetry_common.settings import KafkaSettings, RedisSettings


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity, which `taskset` and cpusets set).

    A container's CPU quota (`docker run --cpus`) is not an affinity and is not seen.
    """
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class ProducerSettings(KafkaSettings, RedisSettings):
    api_host: str = Field("127.0.0.1", description="Interface the HTTP server binds to.")
    api_port: int = Field(5050, ge=1, le=65535, description="Port of the HTTP server.")
    # One Python process serves one request at a time on one core: the API scales over
    # the cores with processes, each with its own Kafka producer.
    api_workers: int | None = Field(
        None,
        ge=1,
        le=256,
        description=(
            "Worker processes of the HTTP server, each with its own Kafka producer. "
            "Unset: one per CPU available to the process."
        ),
    )
    # A line per request costs as much as a large part of the request itself.
    api_access_log: bool = Field(False, description="Log one line per request.")
    # A client reuses an idle connection until its own expiry (5 s in httpx and Node's
    # agent, 60 s behind a cloud load balancer). If the server closes first, a request
    # sent at that moment meets a reset socket and fails without an answer: the server's
    # idle timeout must outlast the clients'. 75 s is nginx's default for the same reason.
    api_keep_alive_seconds: int = Field(
        75,
        ge=1,
        le=3600,
        description="How long the server keeps an idle client connection open.",
    )
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
    redis_deadline_seconds: float = Field(
        3.0,
        gt=0,
        le=60,
        description=(
            "Overall bound on each Redis call of the API, the client's retries included; "
            "after it the request answers 503. At least REDIS_TIMEOUT_SECONDS."
        ),
    )
    # One reading is about 130 bytes; 1 MiB leaves room for batches of several thousand.
    api_max_body_bytes: int = Field(
        1_048_576,
        ge=1024,
        le=64 * 1_048_576,
        description=(
            "Largest request body the API accepts, in bytes; a larger one is answered 413 "
            "before it is read further."
        ),
    )

    api_max_batch_items: int = Field(
        1000,
        ge=1,
        le=100_000,
        description=(
            "Most readings in one POST /cpu-info batch; a larger batch is answered 413. "
            "API_MAX_BODY_BYTES must hold that many of the largest readings."
        ),
    )

    @model_validator(mode="after")
    def _body_limit_holds_a_full_batch(self) -> Self:
        # Otherwise a valid batch of the largest allowed count could never be sent whole.
        needed = self.api_max_batch_items * LARGEST_ITEM_BYTES
        if self.api_max_body_bytes < needed:
            raise ValueError(
                f"API_MAX_BODY_BYTES ({self.api_max_body_bytes}) must hold API_MAX_BATCH_ITEMS "
                f"({self.api_max_batch_items}) of the largest readings ({LARGEST_ITEM_BYTES} "
                f"bytes each): at least {needed}"
            )
        return self

    @model_validator(mode="after")
    def _deadline_covers_one_attempt(self) -> Self:
        # A deadline shorter than one attempt's socket timeout would cut every slow but
        # healthy call short and make REDIS_TIMEOUT_SECONDS meaningless.
        if self.redis_deadline_seconds < self.redis_timeout_seconds:
            raise ValueError(
                f"REDIS_DEADLINE_SECONDS ({self.redis_deadline_seconds}) must be at least "
                f"REDIS_TIMEOUT_SECONDS ({self.redis_timeout_seconds})"
            )
        return self

    def worker_count(self) -> int:
        return self.api_workers if self.api_workers is not None else available_cpus()

    def producer_config(self) -> dict[str, Any]:
        """librdkafka settings of the API's idempotent producer, with a bounded delivery."""
        return {
            # The delivery timeout is the bound of every POST.
            **self.acknowledged_producer_config(
                "memtel-producer-api", self.kafka_delivery_timeout_ms
            ),
            "linger.ms": self.kafka_linger_ms,
            "compression.type": "lz4",
        }
