"""Settings of the local stack that `make up` runs, read from the environment and `.env`.

The stack runs both services, so it reads their settings (topic, consumer group, API
port, Redis password...) from the same classes, with the same defaults, and adds only
what is its own: where its servers listen and how its topics are created. The topic
settings have the names the Compose stack uses, so both stacks are configured alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

from pydantic import Field

from consumer_worker.settings import WorkerSettings
from devstack.ports import free_port, free_port_block
from producer_api.settings import ProducerSettings
from telemetry_common.settings import DEFAULT_KAFKA_PORT, DEFAULT_REDIS_PORT


class DevstackSettings(ProducerSettings, WorkerSettings):
    devstack_dir: Path = Field(
        Path(".devstack"), description="State, data and logs of the local stack."
    )
    zookeeper_port: int = Field(2181, ge=1, le=65535, description="ZooKeeper client port.")
    kafka_port: int = Field(
        DEFAULT_KAFKA_PORT, ge=1, le=65535, description="Kafka port (advertised as 127.0.0.1)."
    )
    redis_port: int = Field(
        DEFAULT_REDIS_PORT,
        ge=1,
        le=65535,
        description=(
            "Redis port; with REDIS_CLUSTER the first of the 6 nodes' consecutive ports "
            "(their cluster bus on each port + 10000)."
        ),
    )
    kafka_topic_partitions: int = Field(
        6, ge=1, description="Partitions of the readings topics when they are created."
    )
    kafka_topic_replication_factor: int = Field(
        1, ge=1, description="Replication factor of the topics when they are created."
    )

    @classmethod
    def on_free_ports(cls, **overrides: Any) -> Self:
        """A stack for tests: free ports, no `.env`, the given settings on top.

        With redis_cluster, the Redis port is the first of the cluster's consecutive ones.
        """
        # Imported here: the cluster module imports the services, which import this one.
        from devstack.redis_cluster import BUS_PORT_OFFSET, NODE_COUNT

        redis_port = (
            free_port_block(NODE_COUNT, BUS_PORT_OFFSET)
            if overrides.get("redis_cluster")
            else free_port()
        )
        ports = {
            "zookeeper_port": free_port(),
            "kafka_port": free_port(),
            "redis_port": redis_port,
            "api_port": free_port(),
        }
        return cls(_env_file=None, **{**ports, **overrides})
