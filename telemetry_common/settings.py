"""Connection settings both services read, as pydantic-settings mixins.

Each service has one Settings class of its own; these bases give the Kafka and Redis
fields the same names, defaults and documentation in both.
"""

from __future__ import annotations

import logging
from typing import Any, Final, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]

# The standard ports of Kafka and Redis: the services' defaults and the local stack's.
DEFAULT_KAFKA_PORT: Final = 9092
DEFAULT_REDIS_PORT: Final = 6379


class ServiceSettings(BaseSettings):
    """Read from the environment and from `.env` in the working directory."""

    # An empty variable counts as unset: Compose passes `${VAR:-}` as an empty string.
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", env_ignore_empty=True
    )

    log_level: LogLevel = Field("INFO", description="Log level of the service.")


class KafkaSettings(ServiceSettings):
    kafka_bootstrap_servers: str = Field(
        f"localhost:{DEFAULT_KAFKA_PORT}",
        description="Comma-separated host:port list of Kafka brokers.",
    )
    kafka_topic: str = Field(
        "memory-readings", min_length=1, description="Topic that carries the readings."
    )
    kafka_security_protocol: SecurityProtocol = Field(
        "PLAINTEXT", description="How clients talk to the brokers."
    )
    kafka_sasl_mechanism: str | None = Field(
        None, description="SASL mechanism (PLAIN, SCRAM-SHA-256, ...) when SASL is used."
    )
    kafka_sasl_username: str | None = Field(None, description="SASL user name.")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password.")

    @model_validator(mode="after")
    def _sasl_is_complete(self) -> KafkaSettings:
        if self.kafka_security_protocol.startswith("SASL_") and not (
            self.kafka_sasl_mechanism and self.kafka_sasl_username and self.kafka_sasl_password
        ):
            raise ValueError(
                "KAFKA_SECURITY_PROTOCOL uses SASL: set KAFKA_SASL_MECHANISM, "
                "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"
            )
        return self

    def kafka_client_config(self) -> dict[str, Any]:
        """The librdkafka settings every client of this service shares."""
        config: dict[str, Any] = {
            "bootstrap.servers": self.kafka_bootstrap_servers,
            "security.protocol": self.kafka_security_protocol,
            # librdkafka's own log lines go through Python logging, like everything else.
            "logger": logging.getLogger("librdkafka"),
        }
        if self.kafka_sasl_mechanism and self.kafka_sasl_username and self.kafka_sasl_password:
            config["sasl.mechanism"] = self.kafka_sasl_mechanism
            config["sasl.username"] = self.kafka_sasl_username
            config["sasl.password"] = self.kafka_sasl_password.get_secret_value()
        return config


class RedisSettings(ServiceSettings):
    redis_url: str = Field(
        f"redis://localhost:{DEFAULT_REDIS_PORT}/0",
        description="Redis URL (redis:// or rediss://, with db).",
    )
    redis_password: SecretStr | None = Field(
        None, description="Redis password; overrides one in REDIS_URL."
    )
    redis_timeout_seconds: float = Field(
        2.0, gt=0, description="Connect and socket timeout of Redis calls."
    )
