"""The production-shaped stack of `make up-cluster`, on this machine.

Three Kafka 4.x nodes in KRaft mode (combined broker and controller; topics with
replication factor 3 and min.insync.replicas 2), a Redis Cluster of 3 masters with a
replica each, two API processes behind HAProxy, and three workers in one consumer
group, each a static member under its own stable id (docs/production.md).

Ports, from the stack's settings (defaults in brackets): the Kafka brokers on
KAFKA_PORT and the next two [9092-9094], their controllers 100 above [9192-9194]; the
Redis nodes on REDIS_PORT and the next five [6379-6384]; HAProxy on API_PORT [5050],
the APIs on the next ports [5051-5052]; the workers' metrics on WORKER_METRICS_PORT
and the next two [9102-9104].
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from devstack import services
from devstack.haproxy import Backend, haproxy, server_states
from devstack.ports import free_port_block
from devstack.settings import DevstackSettings
from devstack.stack import CONTROLLER_PORT_OFFSET, KafkaMode, LocalStack, worker_instance_id

KAFKA_NODES = 3
API_PROCESSES = 2
WORKERS = 3
REPLICATION_FACTOR = 3


def cluster_settings(settings: DevstackSettings) -> DevstackSettings:
    """The stack's settings with what the topology needs: a Redis Cluster, topics
    replicated on the three brokers."""
    return settings.model_copy(
        update={"redis_cluster": True, "kafka_topic_replication_factor": REPLICATION_FACTOR}
    )


@dataclass
class ClusterStack(LocalStack):
    kafka_mode: KafkaMode = "kraft"
    kafka_nodes: int = KAFKA_NODES
    api_processes: int = API_PROCESSES
    workers: int = WORKERS

    def __post_init__(self) -> None:
        self.settings = cluster_settings(self.settings)

    @classmethod
    def on_free_ports(cls, work_dir: Path, **overrides: Any) -> Self:
        """A cluster stack for tests: every port free, blocks where ports must follow
        each other."""
        settings = DevstackSettings.on_free_ports(
            redis_cluster=True,
            kafka_port=free_port_block(KAFKA_NODES, CONTROLLER_PORT_OFFSET),
            api_port=free_port_block(API_PROCESSES + 1, 0),
            worker_metrics_port=free_port_block(WORKERS, 0),
            **overrides,
        )
        return cls(settings, work_dir)

    @property
    def api_ports(self) -> list[int]:
        """The API processes' own ports (HAProxy listens on API_PORT)."""
        return [self.settings.api_port + index for index in range(1, self.api_processes + 1)]

    @property
    def haproxy_socket(self) -> Path:
        return self.work_dir / "haproxy" / "haproxy.sock"

    def haproxy_states(self) -> dict[str, str]:
        """Each API as HAProxy sees it now: UP, DOWN, ..."""
        return server_states(self.haproxy_socket)

    def start_services(self, cwd: Path | None = None) -> None:
        """The APIs, HAProxy in front of them, then the workers."""
        apps_dir = self.work_dir / "apps"
        apps_dir.mkdir(parents=True, exist_ok=True)
        backends = []
        for index, port in enumerate(self.api_ports, start=1):
            name = f"producer-api-{index}"
            # One server process each: the balancer spreads the load over the processes.
            env = {**self.api_env(), "API_PORT": str(port), "API_WORKERS": "1"}
            self._start(services.producer_api(apps_dir, env, cwd=cwd, name=name))
            backends.append(Backend(name, port))
        self._start(haproxy(self.work_dir / "haproxy", self.settings.api_port, backends))
        for index in range(1, self.workers + 1):
            env = {
                **self.worker_env(),
                "KAFKA_GROUP_INSTANCE_ID": worker_instance_id(index),
                "WORKER_METRICS_PORT": str(self.settings.worker_metrics_port + index - 1),
            }
            name = f"consumer-worker-{index}"
            self._start(services.consumer_worker(apps_dir, env, cwd=cwd, name=name))
