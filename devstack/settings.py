"""Settings of the local stack that `make up` runs, read from the environment and `.env`.

The names of the topic settings are the ones the Compose stack uses, so that both
stacks are configured the same way.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from telemetry_common.settings import ServiceSettings


class DevstackSettings(ServiceSettings):
    devstack_dir: Path = Field(
        Path(".devstack"), description="State, data and logs of the local stack."
    )
    zookeeper_port: int = Field(2181, description="ZooKeeper client port.")
    kafka_port: int = Field(9092, description="Kafka port (advertised as 127.0.0.1).")
    redis_port: int = Field(6379, description="Redis port.")
    api_port: int = Field(5050, ge=1, le=65535, description="Port of the HTTP server.")
    kafka_topic: str = Field("memory-readings", min_length=1)
    kafka_topic_partitions: int = Field(
        6, ge=1, description="Partitions of the readings topics when they are created."
    )
    kafka_topic_replication_factor: int = Field(
        1, ge=1, description="Replication factor of the topics when they are created."
    )
    kafka_dead_letter_topic: str = Field(
        "memory-readings.dlq", min_length=1, description="Topic for records the worker cannot use."
    )
    kafka_consumer_group: str = Field("memtel-redis-writer", min_length=1)
    redis_password: SecretStr | None = None
