"""Settings of the producer API, read from the environment and `.env`."""

from __future__ import annotations

import os
from typing import Annotated, Any, Final, Self
from urllib.parse import urlsplit

from pydantic import Field, FilePath, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from producer_api.api_keys import KeyRuleError, digests_from_file, digests_from_list
from producer_api.schemas import LARGEST_ITEM_BYTES
from telemetry_common.settings import KafkaSettings, RedisSettings


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity, which `taskset` and cpusets set).

    A container's CPU quota (`docker run --cpus`) is not an affinity and is not seen.
    """
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


_ANY_ORIGIN: Final = "*"


def _checked_origin(origin: str) -> str:
    """An origin as browsers send it in `Origin`, or ValueError saying what is wrong.

    A trailing slash or a path would never equal a browser's `Origin` and would make the
    setting silently useless, so they are refused.
    """
    if origin == _ANY_ORIGIN:
        return origin
    parts = urlsplit(origin)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError(f"{origin!r} is not an origin: write scheme://host[:port], or *")
    if parts.path or parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"{origin!r}: an origin is scheme://host[:port] only (no path, no /)")
    return origin


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
    # The same setting the worker reads: read-your-writes waits on that group's view. Its
    # default is the worker's (consumer_worker.settings.DEFAULT_CONSUMER_GROUP), written
    # out as the API imports nothing of the worker; a unit test checks that they agree.
    kafka_consumer_group: str = Field(
        "memtel-redis-writer",
        min_length=1,
        description=(
            "Consumer group of the workers, whose view in Redis a GET with a consistency "
            "token waits for."
        ),
    )
    api_consistency_wait_ms: int = Field(
        2000,
        ge=0,
        le=30_000,
        description=(
            "Longest wait of a GET with a consistency token for the worker to store that "
            "reading; after it the GET answers 503 with Retry-After."
        ),
    )

    api_keys: SecretStr | None = Field(
        None,
        description=(
            "Comma-separated API keys, each 16 to 256 visible ASCII characters. With keys "
            "(here or in API_KEYS_FILE) every write needs one in the X-API-Key header."
        ),
    )
    api_keys_file: FilePath | None = Field(
        None,
        description=(
            "File of API keys, one per line: the key itself, or sha256:<64 hex digits> of "
            "it; blank lines and lines starting with # are skipped. Read at startup."
        ),
    )
    api_keys_protect_reads: bool = Field(
        False,
        description="With API keys: reads (GET) need a key too, not only writes.",
    )
    # Comma-separated rather than JSON: the form an origin list is written in everywhere else.
    api_cors_allow_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            "Comma-separated origins (scheme://host[:port]) whose pages may call the API "
            "from a browser, or *. Empty: no CORS headers, browsers allow same-origin only."
        ),
    )
    api_remote_write_machine_label: str = Field(
        "instance",
        pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$",
        description=(
            "The label of Prometheus remote-write series that names the machine (its value "
            "without a trailing :port is the machine id)."
        ),
    )
    # The SHA-256 digests of every key of API_KEYS and API_KEYS_FILE (never the keys).
    _api_key_digests: frozenset[bytes] = PrivateAttr(frozenset())

    @field_validator("api_cors_allow_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("api_cors_allow_origins", mode="after")
    @classmethod
    def _origins_are_origins(cls, origins: list[str]) -> list[str]:
        return [_checked_origin(origin) for origin in origins]

    @model_validator(mode="after")
    def _read_api_keys(self) -> Self:
        digests: set[bytes] = set()
        try:
            if self.api_keys is not None:
                digests |= digests_from_list(self.api_keys.get_secret_value())
        except KeyRuleError as exc:
            raise ValueError(f"API_KEYS: {exc}") from exc
        try:
            if self.api_keys_file is not None:
                digests |= digests_from_file(self.api_keys_file)
        except KeyRuleError as exc:
            raise ValueError(f"API_KEYS_FILE: {exc}") from exc
        self._api_key_digests = frozenset(digests)
        return self

    @property
    def api_key_digests(self) -> frozenset[bytes]:
        """SHA-256 digests of the accepted API keys; empty when no key is required."""
        return self._api_key_digests

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
