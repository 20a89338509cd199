"""A whole system of real processes for one fault scenario, and the faults to inject.

Each scenario gets ZooKeeper, Kafka (one broker or three), Redis, the API and the
worker of its own, on free ports, so that killing any of them disturbs nothing else.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from devstack import services
from devstack.jars import ensure_kafka_libs
from devstack.ports import free_port
from devstack.processes import ManagedProcess
from devstack.settings import DevstackSettings
from devstack.stack import LocalStack
from tests.helpers import unique

DELIVERY_TIMEOUT_MS = 5000
# What a client can rely on: the delivery timeout plus the publisher's grace second.
POST_BOUND_SECONDS = DELIVERY_TIMEOUT_MS / 1000 + 1.0
PARTITIONS = 6


@dataclass
class FaultSystem:
    stack: LocalStack
    api: ManagedProcess
    worker: ManagedProcess
    api_url: str
    work_dir: Path
    bootstrap: str

    @property
    def topic(self) -> str:
        return self.stack.settings.kafka_topic

    @property
    def dead_letter_topic(self) -> str:
        return self.stack.settings.kafka_dead_letter_topic


def kill(process: ManagedProcess) -> None:
    """SIGKILL the process (no shutdown hook runs) and reap it."""
    pid = process.pid
    assert pid is not None, f"{process.name} is not running"
    os.kill(pid, signal.SIGKILL)
    # Stopping a killed process only collects its exit status; the executor complains
    # that the exit code is not the clean one, which is the point of the fault.
    with contextlib.suppress(Exception):
        process.stop()


def hold(seconds: float) -> None:
    """Keep a fault in place for the time the scenario prescribes."""
    threading.Event().wait(seconds)


def empty_redis_data(system: FaultSystem) -> None:
    """Delete the Redis data files: the next start is a new, empty instance."""
    redis_dir = system.stack.work_dir / "redis"
    shutil.rmtree(redis_dir / "appendonlydir", ignore_errors=True)
    (redis_dir / "dump.rdb").unlink(missing_ok=True)


def service_env(*, static_member: bool) -> dict[str, str]:
    env = {
        "KAFKA_DELIVERY_TIMEOUT_MS": str(DELIVERY_TIMEOUT_MS),
        "WORKER_POLL_TIMEOUT_SECONDS": "0.2",
        "LOG_LEVEL": "INFO",
    }
    if static_member:
        # A restarted worker takes its partitions back at once (static membership).
        env["KAFKA_GROUP_INSTANCE_ID"] = "fault-worker-1"
    return env


@contextlib.contextmanager
def fault_system(work_dir: Path) -> Iterator[FaultSystem]:
    settings = DevstackSettings.on_free_ports(
        kafka_topic=unique("readings"),
        kafka_dead_letter_topic=unique("readings-dlq"),
        kafka_consumer_group=unique("writers"),
        kafka_topic_partitions=PARTITIONS,
    )
    with (
        LocalStack(settings, work_dir) as stack,
        _services(stack, work_dir, stack.api_env(), stack.worker_env()) as system,
    ):
        yield system


@contextlib.contextmanager
def _services(
    stack: LocalStack,
    work_dir: Path,
    api_env: dict[str, str],
    worker_env: dict[str, str],
    *,
    static_member: bool = True,
) -> Iterator[FaultSystem]:
    apps = work_dir / "apps"
    apps.mkdir(parents=True, exist_ok=True)
    extra = service_env(static_member=static_member)
    api = services.producer_api(apps, {**api_env, **extra})
    worker = services.consumer_worker(apps, {**worker_env, **extra})
    api.start()
    try:
        worker.start()
        try:
            yield FaultSystem(
                stack,
                api,
                worker,
                api_url=f"http://127.0.0.1:{api_env['API_PORT']}",
                work_dir=work_dir,
                bootstrap=api_env["KAFKA_BOOTSTRAP_SERVERS"],
            )
        finally:
            with contextlib.suppress(Exception):
                worker.stop()
    finally:
        api.stop()


@dataclass
class Cluster:
    """ZooKeeper and three brokers; the readings topic replicated on all three."""

    brokers: list[ManagedProcess]
    ports: list[int]

    @property
    def bootstrap(self) -> str:
        return ",".join(f"{services.HOST}:{port}" for port in self.ports)


@contextlib.contextmanager
def three_broker_system(work_dir: Path) -> Iterator[tuple[FaultSystem, Cluster]]:
    """A stack whose Kafka is a cluster of three brokers (replication factor 3,
    min.insync.replicas=2), with the API and the worker on it."""
    settings = DevstackSettings.on_free_ports(
        kafka_topic=unique("readings"),
        kafka_dead_letter_topic=unique("readings-dlq"),
        kafka_consumer_group=unique("writers"),
        kafka_topic_partitions=PARTITIONS,
        kafka_topic_replication_factor=3,
    )
    libs = ensure_kafka_libs()
    started: list[ManagedProcess] = []
    try:
        zookeeper = services.zookeeper(libs, work_dir / "zookeeper", settings.zookeeper_port)
        zookeeper.start()
        started.append(zookeeper)
        ports = [settings.kafka_port, free_port(), free_port()]
        brokers = []
        for broker_id, port in enumerate(ports):
            broker = services.kafka(
                libs,
                work_dir / f"kafka-{broker_id}",
                port,
                settings.zookeeper_port,
                broker_id=broker_id,
                cluster_size=3,
                name=f"kafka-{broker_id}",
            )
            broker.start()
            started.append(broker)
            brokers.append(broker)
        cluster = Cluster(brokers, ports)
        for topic in (settings.kafka_topic, settings.kafka_dead_letter_topic):
            services.create_topic(cluster.bootstrap, topic, PARTITIONS, replication_factor=3)
        redis = services.redis(work_dir / "redis", settings.redis_port)
        redis.start()
        started.append(redis)
        stack = LocalStack(settings, work_dir)
        env_cluster = {"KAFKA_BOOTSTRAP_SERVERS": cluster.bootstrap}
        # Dynamic membership here: the group coordinator may be on the broker that is
        # killed, and a static member that times out while the coordinator moves is
        # fenced for good; a dynamic member simply joins again.
        with _services(
            stack,
            work_dir,
            {**stack.api_env(), **env_cluster},
            {**stack.worker_env(), **env_cluster},
            static_member=False,
        ) as system:
            yield system, cluster
    finally:
        for process in reversed(started):
            with contextlib.suppress(Exception):
                process.stop()
