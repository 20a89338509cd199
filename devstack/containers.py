"""ZooKeeper, Kafka and Redis as containers of the project's own images (testcontainers).

The second backend of the test fixtures: the same stack as `LocalStack`, run from the
images `docker compose build` makes (docker/kafka, docker/redis), never pulled. Kafka
and Redis are published on the stack's host ports, so `bootstrap_servers`,
`redis_url` and the service environments are the same as for the processes.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import redis
from testcontainers.core.config import testcontainers_config
from testcontainers.core.container import DockerContainer
from testcontainers.core.docker_client import DockerClient
from testcontainers.core.network import Network

from devstack import services
from devstack.stack import LocalStack

logger = logging.getLogger(__name__)

# The images docker-compose.yml builds; a test keeps these names in step with it.
KAFKA_IMAGE = "memtelemetry/kafka:3.9.2"
REDIS_IMAGE = "memtelemetry/redis:7.0"
# Every container and network of a run carries this label, with the run's id
# (MEMTEL_TEST_RUN), so that scripts/with-docker.sh removes them even after a crash.
RUN_LABEL = "memtelemetry.test-run"
KAFKA_CONTAINER_PORT = 9092
REDIS_CONTAINER_PORT = 6379
START_TIMEOUT_SECONDS = 120.0

# The reaper container (Ryuk) is an image from a registry; the stack removes its own
# containers instead.
testcontainers_config.ryuk_disabled = True


class ImageMissingError(RuntimeError):
    pass


def _require_local_image(name: str) -> None:
    """Fail at once, rather than let a missing image become a pull from a registry."""
    client = DockerClient().client
    try:
        present = bool(client.images.list(name=name))
    finally:
        client.close()
    if not present:
        raise ImageMissingError(
            f"image {name} is not built: run `make test-integration-containers`, "
            "or scripts/with-docker.sh, which build it"
        )


def _wait_for(
    condition: Callable[[], bool], container: DockerContainer, what: str, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    pause = threading.Event()  # never set: wait() is the pause between checks
    while not condition():
        if time.monotonic() >= deadline:
            stdout, stderr = container.get_logs()
            tail = (stdout + stderr).decode(errors="replace").splitlines()[-40:]
            raise TimeoutError(f"{what} within {timeout}s; its log ends:\n" + "\n".join(tail))
        pause.wait(0.25)


@dataclass
class ContainerStack(LocalStack):
    """LocalStack whose infrastructure runs in containers; the services stay processes."""

    _containers: list[DockerContainer] = field(default_factory=list)
    _network: Network | None = None

    def start_infrastructure(self) -> None:
        if self.settings.redis_cluster:
            # The Compose override (docker-compose.redis-cluster.yml) runs the cluster's
            # containers; this backend runs the standalone Redis only.
            raise NotImplementedError("the container backend runs no Redis Cluster")
        for image in (KAFKA_IMAGE, REDIS_IMAGE):
            _require_local_image(image)
        labels = {RUN_LABEL: os.environ.get("MEMTEL_TEST_RUN", "manual")}
        try:
            self._network = Network(docker_network_kw={"labels": labels}).create()
            self._start_zookeeper(labels)
            self._start_kafka(labels)
            services.create_stack_topics(self.bootstrap_servers, self.settings)
            self._start_redis(labels)
        except BaseException:
            self.stop()
            raise

    def _container(self, image: str, alias: str, labels: dict[str, str]) -> DockerContainer:
        assert self._network is not None
        container = DockerContainer(image).with_network(self._network)
        return container.with_network_aliases(alias).with_kwargs(labels=labels)

    def _run(self, container: DockerContainer) -> DockerContainer:
        self._containers.append(container)
        return container.start()

    def _start_zookeeper(self, labels: dict[str, str]) -> None:
        zookeeper = self._run(
            self._container(KAFKA_IMAGE, "zookeeper", labels).with_command("zookeeper-server")
        )

        def answers() -> bool:
            probe = "echo ruok | nc -w 2 127.0.0.1 2181"
            return zookeeper.exec(["bash", "-c", probe]).output == b"imok"

        _wait_for(answers, zookeeper, "ZooKeeper did not answer", START_TIMEOUT_SECONDS)

    def _start_kafka(self, labels: dict[str, str]) -> None:
        port = self.settings.kafka_port
        kafka = (
            self._container(KAFKA_IMAGE, "kafka", labels)
            .with_command("kafka-server")
            .with_bind_ports(KAFKA_CONTAINER_PORT, port)
            .with_envs(
                KAFKA_BROKER_ID="0",
                KAFKA_ZOOKEEPER_CONNECT="zookeeper:2181",
                # INTERNAL between containers; EXTERNAL is what the tests on the host reach.
                KAFKA_LISTENERS="INTERNAL://0.0.0.0:29092,EXTERNAL://0.0.0.0:9092",
                KAFKA_ADVERTISED_LISTENERS=(
                    f"INTERNAL://kafka:29092,EXTERNAL://{services.HOST}:{port}"
                ),
                KAFKA_LISTENER_SECURITY_PROTOCOL_MAP="INTERNAL:PLAINTEXT,EXTERNAL:PLAINTEXT",
                KAFKA_INTER_BROKER_LISTENER_NAME="INTERNAL",
                # As the processes' broker (services.kafka_server_properties).
                KAFKA_AUTO_CREATE_TOPICS_ENABLE="false",
                KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR="1",
                KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS="10",
                KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR="1",
                KAFKA_TRANSACTION_STATE_LOG_MIN_ISR="1",
                KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS="0",
            )
        )
        self._run(kafka)
        _wait_for(
            lambda: services.broker_answers(self.bootstrap_servers),
            kafka,
            "Kafka did not answer",
            START_TIMEOUT_SECONDS,
        )

    def _start_redis(self, labels: dict[str, str]) -> None:
        container = self._container(REDIS_IMAGE, "redis", labels)
        container.with_bind_ports(REDIS_CONTAINER_PORT, self.settings.redis_port)
        if self.settings.redis_password is not None:
            container.with_env("REDIS_PASSWORD", self.settings.redis_password.get_secret_value())
        self._run(container)
        password = self.settings.redis_password

        def answers() -> bool:
            client = redis.Redis.from_url(
                self.redis_url,
                password=password.get_secret_value() if password is not None else None,
                socket_timeout=1,
            )
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False
            finally:
                client.close()

        _wait_for(answers, container, "Redis did not answer", START_TIMEOUT_SECONDS)

    def stop(self) -> None:
        """Stop the services (processes) and remove the containers and their network."""
        super().stop()
        while self._containers:
            container = self._containers.pop()
            try:
                container.stop()
            except Exception:
                logger.exception("removing the container of %s failed", container.image)
        if self._network is not None:
            self._network.remove()
            self._network = None
