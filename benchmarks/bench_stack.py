"""A stack of the benchmark's own: real ZooKeeper, Kafka and Redis (devstack) on free
ports in a temporary folder, and the API, its stub and the worker as processes on it.

Nothing here touches a stack started with `make up`. Each stage gets topics and a
consumer group of its own, so that no stage reads what another wrote. Settings of the
services (API_WORKERS, WORKER_BATCH_SIZE, ...) reach them from the environment the
benchmark runs in, as they would in production.
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import httpx
import redis
import redis.cluster

from benchmarks import procstat
from devstack import services
from devstack.ports import free_port
from devstack.processes import ManagedProcess
from devstack.redis_cluster import MASTERS
from devstack.settings import DevstackSettings
from devstack.stack import LocalStack
from producer_api.settings import ProducerSettings
from telemetry_common.redis_client import SyncRedis

REPO_ROOT = Path(__file__).resolve().parents[1]


def expected_api_processes() -> int:
    """How many serving processes the API runs with the environment's settings."""
    settings = ProducerSettings(_env_file=None)
    worker_count = getattr(settings, "worker_count", None)  # API_WORKERS, where it exists
    return int(worker_count()) if callable(worker_count) else 1


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).is_success
    except httpx.HTTPError:
        return False


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Wait until `condition()` is true; raise TimeoutError naming `what` if it is not."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        pause.wait(0.05)


@dataclass(frozen=True)
class RedisServer:
    port: int
    pid: int
    master: bool


@dataclass(frozen=True)
class RunningApi:
    url: str
    processes: procstat.ServerProcesses


class BenchStack:
    def __init__(self, stack: LocalStack, work_dir: Path, partitions: int) -> None:
        self.stack = stack
        self.work_dir = work_dir
        self.partitions = partitions

    @classmethod
    @contextmanager
    def started(cls, partitions: int, *, redis_cluster: bool = False) -> Iterator[Self]:
        """The stack, with one Redis or (`redis_cluster`) a Redis Cluster of 3 masters
        with a replica each; the services on it get REDIS_CLUSTER accordingly."""
        with tempfile.TemporaryDirectory(prefix="memtel-bench-") as folder:
            work_dir = Path(folder)
            settings = DevstackSettings.on_free_ports(
                kafka_topic_partitions=partitions, redis_cluster=redis_cluster
            )
            with LocalStack(settings, work_dir / "stack") as stack:
                yield cls(stack, work_dir, partitions)

    @property
    def redis_cluster(self) -> bool:
        return self.stack.redis_cluster is not None

    @property
    def redis_description(self) -> str:
        if self.stack.redis_cluster is None:
            return "standalone Redis"
        return f"{MASTERS}-master Redis Cluster"

    def redis_client(self) -> SyncRedis:
        """A client of the stack's Redis (a cluster client on a cluster), answers decoded."""
        if self.redis_cluster:
            return redis.cluster.RedisCluster.from_url(
                self.redis_url, password=self.redis_password, decode_responses=True
            )
        return redis.Redis.from_url(
            self.redis_url, password=self.redis_password, decode_responses=True
        )

    def redis_servers(self) -> list[RedisServer]:
        """Every redis-server process of the stack: the one, or each node of the cluster
        with its role now (a replica holds a copy of its master's data)."""
        cluster = self.stack.redis_cluster
        if cluster is None:
            found = [(self.redis_port, self.stack.process("redis").pid, True)]
        else:
            masters = {node.port for node in cluster.masters()}
            found = [(n.port, n.process.pid, n.port in masters) for n in cluster.nodes]
        servers = []
        for port, pid, master in found:
            if pid is None:
                raise RuntimeError(f"the redis-server on port {port} is not running")
            servers.append(RedisServer(port, pid, master))
        return servers

    @property
    def bootstrap_servers(self) -> str:
        return self.stack.bootstrap_servers

    @property
    def redis_url(self) -> str:
        return self.stack.redis_url

    @property
    def redis_port(self) -> int:
        return self.stack.settings.redis_port

    @property
    def redis_password(self) -> str | None:
        password = self.stack.settings.redis_password
        return password.get_secret_value() if password is not None else None

    def new_topic(self, name: str) -> str:
        services.create_topic(self.bootstrap_servers, name, self.partitions)
        return name

    def _folder(self, label: str) -> Path:
        folder = self.work_dir / label
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    @contextmanager
    def _serving(self, process: ManagedProcess, port: int, workers: int) -> Iterator[RunningApi]:
        process.start()
        try:
            root = process.pid
            assert root is not None
            wait_for(
                lambda: len(procstat.server_processes(root).serving) >= workers,
                60,
                f"{workers} serving process(es) of {process.name}",
            )
            yield RunningApi(f"http://{services.HOST}:{port}", procstat.server_processes(root))
        finally:
            process.stop()

    @contextmanager
    def api(self, topic: str, label: str) -> Iterator[RunningApi]:
        """The real API, publishing to `topic`."""
        port = free_port()
        env = {**self.stack.api_env(), "KAFKA_TOPIC": topic, "API_PORT": str(port)}
        process = services.producer_api(self._folder(label), env)
        with self._serving(process, port, expected_api_processes()) as api:
            yield api

    @contextmanager
    def stub_api(self, topic: str, workers: int, label: str) -> Iterator[RunningApi]:
        """The API with an already-completed publish, in `workers` serving processes."""
        port = free_port()
        folder = self._folder(label)
        env = {
            **self.stack.api_env(),
            "KAFKA_TOPIC": topic,
            "API_PORT": str(port),
            # The stub lives in this repository's benchmarks package, not in the install.
            "PYTHONPATH": str(REPO_ROOT),
        }
        process = ManagedProcess(
            "stub-api",
            [sys.executable, "-m", "benchmarks.stub_api", "--workers", str(workers)],
            log_path=folder / "stub-api.log",
            ready=lambda: _answers(f"http://{services.HOST}:{port}/healthz"),
            already_running=lambda: services.port_open(port),
            env=env,
            cwd=folder,
        )
        with self._serving(process, port, workers) as api:
            yield api

    @contextmanager
    def worker(self, topic: str, group: str, label: str) -> Iterator[ManagedProcess]:
        """A consumer worker writing `topic` to Redis as `group`."""
        env = {**self.stack.worker_env(), "KAFKA_TOPIC": topic, "KAFKA_CONSUMER_GROUP": group}
        process = services.consumer_worker(self._folder(label), env)
        process.start()
        try:
            yield process
        finally:
            process.stop()
