"""A whole local stack: Kafka (3.9 with ZooKeeper, or 4.x in KRaft mode), Redis and,
optionally, the two services."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Self

from devstack import services
from devstack.faults import resume
from devstack.jars import ensure_kafka4_libs, ensure_kafka_libs
from devstack.kraft import LocalKraftCluster, start_together
from devstack.ports import free_port
from devstack.processes import ManagedProcess, RestartBackoff, ServiceStartError
from devstack.redis_cluster import LocalRedisCluster
from devstack.settings import DevstackSettings

logger = logging.getLogger(__name__)

# How often the supervisor looks for a process that ended.
SUPERVISE_INTERVAL_SECONDS = 0.5
# A KRaft node's controller listens this far above its broker port (make up-cluster:
# brokers on 9092-9094, controllers on 9192-9194).
CONTROLLER_PORT_OFFSET = 100
# Each worker of the stack is a static member of its group under a stable id of its
# own: started again after a crash, it gets its partitions back at once instead of
# after the session timeout (docs/production.md#workers-one-group-static-membership).
WORKER_INSTANCE_PREFIX = "memtel-worker"

KafkaMode = Literal["zookeeper", "kraft"]


def worker_instance_id(index: int) -> str:
    """The group.instance.id of the stack's worker number `index` (from 1)."""
    return f"{WORKER_INSTANCE_PREFIX}-{index}"


@dataclass
class LocalStack:
    """Starts the infrastructure in dependency order and stops it in reverse.

    As a context manager it starts the infrastructure on entry and stops everything
    it started on exit.
    """

    settings: DevstackSettings
    work_dir: Path
    # "zookeeper": ZooKeeper and one Kafka 3.9 broker (the default); "kraft": Kafka 4.x
    # in KRaft mode, `kafka_nodes` combined broker and controller nodes.
    kafka_mode: KafkaMode = "zookeeper"
    kafka_nodes: int = 1
    _started: list[ManagedProcess] = field(default_factory=list)
    # With REDIS_CLUSTER: its nodes, for the tests that kill and restart them.
    redis_cluster: LocalRedisCluster | None = None
    # In KRaft mode: its nodes, for the tests that kill, pause and restart them.
    kraft: LocalKraftCluster | None = None

    def __enter__(self) -> Self:
        self.start_infrastructure()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def bootstrap_servers(self) -> str:
        if self.kraft is not None:
            return self.kraft.bootstrap_servers
        return f"{services.HOST}:{self.settings.kafka_port}"

    @property
    def redis_url(self) -> str:
        return f"redis://{services.HOST}:{self.settings.redis_port}/0"

    @property
    def api_url(self) -> str:
        return f"http://{services.HOST}:{self.settings.api_port}"

    def service_env(self) -> dict[str, str]:
        """The environment both services need to use this stack."""
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "KAFKA_TOPIC": self.settings.kafka_topic,
            "REDIS_URL": self.redis_url,
        }
        if self.settings.redis_cluster:
            env["REDIS_CLUSTER"] = "true"
        if self.settings.redis_password is not None:
            env["REDIS_PASSWORD"] = self.settings.redis_password.get_secret_value()
        return env

    def api_env(self) -> dict[str, str]:
        return {
            **self.service_env(),
            "API_HOST": services.HOST,
            "API_PORT": str(self.settings.api_port),
        }

    def worker_env(self) -> dict[str, str]:
        return {
            **self.service_env(),
            "KAFKA_CONSUMER_GROUP": self.settings.kafka_consumer_group,
            "KAFKA_DEAD_LETTER_TOPIC": self.settings.kafka_dead_letter_topic,
        }

    def start_infrastructure(self) -> None:
        if self.kafka_mode == "kraft":
            self._start_kraft()
        else:
            self._start_zookeeper_and_kafka()
        services.create_stack_topics(self.bootstrap_servers, self.settings)
        password = self.settings.redis_password
        secret = password.get_secret_value() if password is not None else None
        if self.settings.redis_cluster:
            self._start_redis_cluster(secret)
            return
        self._start(services.redis(self.work_dir / "redis", self.settings.redis_port, secret))

    def _start_zookeeper_and_kafka(self) -> None:
        libs = ensure_kafka_libs()
        self._start(
            services.zookeeper(libs, self.work_dir / "zookeeper", self.settings.zookeeper_port)
        )
        self._start(
            services.kafka(
                libs,
                self.work_dir / "kafka",
                self.settings.kafka_port,
                self.settings.zookeeper_port,
            )
        )

    def _start_kraft(self) -> None:
        """The nodes on consecutive ports from KAFKA_PORT, their controllers
        CONTROLLER_PORT_OFFSET above (one node: its controller on any free port)."""
        first = self.settings.kafka_port
        ports = [first + index for index in range(self.kafka_nodes)]
        controller_ports = (
            [free_port()]
            if self.kafka_nodes == 1
            else [port + CONTROLLER_PORT_OFFSET for port in ports]
        )
        cluster = LocalKraftCluster(
            ensure_kafka4_libs(), self.work_dir / "kafka", ports, controller_ports
        )
        self.kraft = cluster
        try:
            start_together(cluster.processes())
        except Exception:
            self.stop()
            raise
        self._started.extend(cluster.processes())

    def _start_redis_cluster(self, password: str | None) -> None:
        """The nodes on consecutive ports from REDIS_PORT (the one REDIS_URL names),
        joined into one cluster."""
        cluster = LocalRedisCluster(
            self.work_dir / "redis-cluster", self.settings.redis_port, password
        )
        self.redis_cluster = cluster
        for process in cluster.processes():
            self._start(process)
        try:
            cluster.create()
        except Exception:
            self.stop()
            raise

    def start_services(self, cwd: Path | None = None) -> None:
        """Start the API and the worker as processes of their own.

        They run in `cwd` (and so read its `.env`, under the stack's own settings);
        by default in a folder of the stack's, where no `.env` is.
        """
        apps_dir = self.work_dir / "apps"
        apps_dir.mkdir(parents=True, exist_ok=True)
        self._start(services.producer_api(apps_dir, self.api_env(), cwd=cwd))
        worker_env = {**self.worker_env(), "KAFKA_GROUP_INSTANCE_ID": worker_instance_id(1)}
        self._start(services.consumer_worker(apps_dir, worker_env, cwd=cwd))

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

    def supervise(
        self,
        stop: threading.Event,
        on_restart: Callable[[ManagedProcess], None],
        only: Callable[[ManagedProcess], bool] = lambda _: True,
    ) -> None:
        """Until `stop` is set, start again every process that ends, with backoff.

        Like Compose's `restart: unless-stopped`: a process that exits (crashed,
        killed, or exited by itself) is logged and restarted after a delay that
        grows while it keeps ending; only `stop` (`make down`) ends it for good.
        `only` picks the processes looked after (a fault test restarts the ones it
        kills itself, e.g. Kafka nodes it keeps down for a while).
        """
        backoffs: dict[str, RestartBackoff] = {}
        restart_due: dict[str, float] = {}
        while not stop.wait(SUPERVISE_INTERVAL_SECONDS):
            for process in [p for p in self._started if only(p)]:
                if process.running():
                    continue
                due = restart_due.get(process.name)
                if due is None:
                    backoff = backoffs.setdefault(process.name, RestartBackoff())
                    delay = backoff.next_delay(process.uptime())
                    restart_due[process.name] = time.monotonic() + delay
                    logger.warning(
                        "%s exited with code %s after %.0fs; restarting it in %.1fs",
                        process.name,
                        process.exit_code(),
                        process.uptime(),
                        delay,
                    )
                elif time.monotonic() >= due and not stop.is_set():
                    del restart_due[process.name]
                    self._restart(process, on_restart)

    def _restart(
        self, process: ManagedProcess, on_restart: Callable[[ManagedProcess], None]
    ) -> None:
        try:
            process.restart()
        except ServiceStartError as exc:
            # Still not running: the next round schedules another try, later.
            logger.error("%s", str(exc).splitlines()[0])
            return
        logger.info("%s restarted (pid %s)", process.name, process.pid)
        on_restart(process)

    def stop(self) -> None:
        """Stop everything started, newest first; keep going if one stop fails."""
        kraft_nodes = set(self.kraft.processes()) if self.kraft is not None else set()
        while self._started:
            process = self._started.pop()
            if process in kraft_nodes:
                # The nodes go together: one by one, the last would wait for a quorum.
                self._started = [p for p in self._started if p not in kraft_nodes]
                self._stop_kraft()
                continue
            try:
                # A process a test paused (SIGSTOP) would not see the SIGTERM.
                resume(process)
                process.stop()
            except Exception:
                logger.exception("stopping %s failed", process.name)

    def _stop_kraft(self) -> None:
        if self.kraft is None:
            return
        try:
            self.kraft.stop()
        except Exception:
            logger.exception("stopping the Kafka nodes failed")
