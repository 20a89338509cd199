"""A whole local stack: ZooKeeper, Kafka, Redis and, optionally, the two services."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from devstack import services
from devstack.jars import ensure_kafka_libs
from devstack.ports import free_port
from devstack.processes import ManagedProcess

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StackConfig:
    zookeeper_port: int
    kafka_port: int
    redis_port: int
    api_port: int
    topic: str
    topic_partitions: int
    dead_letter_topic: str | None = None
    topic_replication_factor: int = 1
    consumer_group: str = "memtel-redis-writer"
    redis_password: str | None = None

    @classmethod
    def on_free_ports(
        cls, topic: str = "memory-readings", topic_partitions: int = 3
    ) -> StackConfig:
        return cls(
            zookeeper_port=free_port(),
            kafka_port=free_port(),
            redis_port=free_port(),
            api_port=free_port(),
            topic=topic,
            topic_partitions=topic_partitions,
        )


@dataclass
class LocalStack:
    """Starts the infrastructure in dependency order and stops it in reverse."""

    config: StackConfig
    work_dir: Path
    _started: list[ManagedProcess] = field(default_factory=list)

    @property
    def bootstrap_servers(self) -> str:
        return f"{services.HOST}:{self.config.kafka_port}"

    @property
    def redis_url(self) -> str:
        return f"redis://{services.HOST}:{self.config.redis_port}/0"

    @property
    def api_url(self) -> str:
        return f"http://{services.HOST}:{self.config.api_port}"

    def service_env(self) -> dict[str, str]:
        """The environment both services need to use this stack."""
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "KAFKA_TOPIC": self.config.topic,
            "REDIS_URL": self.redis_url,
        }
        if self.config.redis_password:
            env["REDIS_PASSWORD"] = self.config.redis_password
        return env

    def api_env(self) -> dict[str, str]:
        return {
            **self.service_env(),
            "API_HOST": services.HOST,
            "API_PORT": str(self.config.api_port),
        }

    def worker_env(self) -> dict[str, str]:
        return {**self.service_env(), "KAFKA_CONSUMER_GROUP": self.config.consumer_group}

    def start_infrastructure(self) -> None:
        libs = ensure_kafka_libs()
        self._start(
            services.zookeeper(libs, self.work_dir / "zookeeper", self.config.zookeeper_port)
        )
        self._start(
            services.kafka(
                libs, self.work_dir / "kafka", self.config.kafka_port, self.config.zookeeper_port
            )
        )
        for topic in (self.config.topic, self.config.dead_letter_topic):
            if topic:
                services.create_topic(
                    self.bootstrap_servers,
                    topic,
                    self.config.topic_partitions,
                    self.config.topic_replication_factor,
                )
        self._start(
            services.redis(
                self.work_dir / "redis", self.config.redis_port, self.config.redis_password
            )
        )

    def start_services(self, cwd: Path | None = None) -> None:
        """Start the API and the worker as processes of their own.

        They run in `cwd` (and so read its `.env`, under the stack's own settings);
        by default in a folder of the stack's, where no `.env` is.
        """
        apps_dir = self.work_dir / "apps"
        apps_dir.mkdir(parents=True, exist_ok=True)
        self._start(services.producer_api(apps_dir, self.api_env(), cwd=cwd))
        self._start(services.consumer_worker(apps_dir, self.worker_env(), cwd=cwd))

    def _start(self, process: ManagedProcess) -> None:
        try:
            process.start()
        except Exception:
            self.stop()
            raise
        self._started.append(process)

    def processes(self) -> list[ManagedProcess]:
        return list(self._started)

    def process(self, name: str) -> ManagedProcess:
        for process in self._started:
            if process.name == name:
                return process
        raise KeyError(name)

    def stop(self) -> None:
        """Stop everything started, newest first; keep going if one stop fails."""
        while self._started:
            process = self._started.pop()
            try:
                process.stop()
            except Exception:
                logger.exception("stopping %s failed", process.name)
