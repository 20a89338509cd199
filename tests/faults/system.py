"""A whole system of real processes for one fault scenario, and the faults to inject.

Each scenario gets ZooKeeper, Kafka (one broker or three), Redis, the API and the
worker of its own, on free ports, so that killing any of them disturbs nothing else.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from redis.crc import key_slot

from devstack import services
from devstack.jars import ensure_kafka_libs
from devstack.ports import free_port
from devstack.processes import ManagedProcess
from devstack.redis_cluster import ClusterNode, LocalRedisCluster
from devstack.settings import DevstackSettings
from devstack.stack import LocalStack
from telemetry_common.layout import partition_keys
from telemetry_common.partitioning import partition_of
from tests.helpers import reading, unique, wait_until

DELIVERY_TIMEOUT_MS = 5000
# What a client can rely on: the delivery timeout plus the publisher's grace second.
POST_BOUND_SECONDS = DELIVERY_TIMEOUT_MS / 1000 + 1.0
PARTITIONS = 6
# A probe reading carries a `used` value no streamed reading has.
PROBE_USED = 9_999


@dataclass
class FaultSystem:
    stack: LocalStack
    api: ManagedProcess
    worker: ManagedProcess
    api_url: str
    work_dir: Path
    bootstrap: str
    topic: str
    dead_letter_topic: str
    consumer_group: str
    # Where the worker serves its metrics (None: its default port).
    worker_metrics_port: int | None = None


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
def fault_system(work_dir: Path, *, static_member: bool = True) -> Iterator[FaultSystem]:
    """One broker, Redis, the API and the worker. `static_member=False` for a fault that
    keeps Kafka down past the session timeout with no supervisor to restart a worker
    the broker fenced (docs/reliability.md)."""
    settings = DevstackSettings.on_free_ports(
        kafka_topic=unique("readings"),
        kafka_dead_letter_topic=unique("readings-dlq"),
        kafka_consumer_group=unique("writers"),
        kafka_topic_partitions=PARTITIONS,
    )
    with (
        LocalStack(settings, work_dir) as stack,
        _services(
            stack, work_dir, stack.api_env(), stack.worker_env(), static_member=static_member
        ) as system,
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
                topic=worker_env["KAFKA_TOPIC"],
                dead_letter_topic=worker_env["KAFKA_DEAD_LETTER_TOPIC"],
                consumer_group=worker_env["KAFKA_CONSUMER_GROUP"],
                worker_metrics_port=(
                    int(worker_env["WORKER_METRICS_PORT"])
                    if "WORKER_METRICS_PORT" in worker_env
                    else None
                ),
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


def probe_machine(partition: int) -> str:
    """A new machine id whose readings go to `partition` of the scenario's topics."""
    while True:
        machine_id = unique("probe")
        if partition_of(machine_id, PARTITIONS) == partition:
            return machine_id


def time_until_fresh(
    system: FaultSystem,
    since: float,
    timeout: float = 60.0,
    partitions: Iterable[int] | None = None,
) -> float:
    """Seconds from `since` until a reading posted now is served by GET: one reading in
    each of `partitions` (by default, in one partition, whichever its machine hashes to).

    The worker applies a partition in offset order, so a probe served means every
    reading acknowledged in its partition before the probe is served too (or a newer
    one of the same machine).
    """
    machine_ids = (
        [unique("probe")] if partitions is None else [probe_machine(p) for p in partitions]
    )
    with httpx.Client(base_url=system.api_url, timeout=POST_BOUND_SECONDS * 2) as client:
        for machine_id in machine_ids:

            def posted(machine_id: str = machine_id) -> bool:
                answer = client.post(f"/cpu-info/{machine_id}", json=reading(used=PROBE_USED))
                return answer.status_code == 200

            wait_until(posted, timeout, "a POST acknowledged", interval=0.2)
        pending = set(machine_ids)

        def served() -> bool:
            for machine_id in list(pending):
                answer = client.get(f"/cpu-info/{machine_id}")
                if answer.status_code == 200 and answer.json()[machine_id]["used"] == PROBE_USED:
                    pending.discard(machine_id)
            return not pending

        wait_until(served, timeout, "the probe readings served", interval=0.05)
    return round(time.monotonic() - since, 2)


# --- Redis Cluster -----------------------------------------------------------------


@contextlib.contextmanager
def redis_cluster_stack(work_dir: Path) -> Iterator[LocalStack]:
    """ZooKeeper, Kafka and a Redis Cluster of 3 masters with a replica each (devstack's
    cluster-node-timeout, 2 s). Several scenarios share it, each with topics, a consumer
    group, an API and a worker of its own (`services_on_cluster`)."""
    settings = DevstackSettings.on_free_ports(
        kafka_topic=unique("readings"),
        kafka_dead_letter_topic=unique("readings-dlq"),
        kafka_consumer_group=unique("writers"),
        kafka_topic_partitions=PARTITIONS,
        redis_cluster=True,
    )
    with LocalStack(settings, work_dir) as stack:
        yield stack


def cluster_of(stack: LocalStack) -> LocalRedisCluster:
    assert stack.redis_cluster is not None, "the stack runs a standalone Redis"
    return stack.redis_cluster


def heal(cluster: LocalRedisCluster) -> None:
    """Start again, with their data, the nodes a scenario left down, and wait until the
    cluster is whole: every scenario starts on six nodes, a replica for each master."""
    for node in cluster.nodes:
        if not node.process.running():
            cluster.restart_node(node, empty=False)
    cluster.wait_cluster_ok()


@contextlib.contextmanager
def services_on_cluster(stack: LocalStack, work_dir: Path) -> Iterator[FaultSystem]:
    """The API and a worker on the shared cluster stack, with a readings topic, a
    dead-letter topic and a consumer group of their own (so a scenario's view, built
    offsets and replays are its own). The worker serves its metrics on a free port and
    logs JSON, which the scenarios read."""
    topic, dead_letters, group = unique("readings"), unique("readings-dlq"), unique("writers")
    for name in (topic, dead_letters):
        services.create_topic(stack.bootstrap_servers, name, PARTITIONS)
    own = {"KAFKA_TOPIC": topic, "KAFKA_CONSUMER_GROUP": group}
    api_env = {**stack.api_env(), **own, "API_PORT": str(free_port())}
    worker_env = {
        **stack.worker_env(),
        **own,
        "KAFKA_DEAD_LETTER_TOPIC": dead_letters,
        "WORKER_METRICS_PORT": str(free_port()),
        "LOG_FORMAT": "json",
    }
    with _services(stack, work_dir, api_env, worker_env, static_member=False) as system:
        yield system


def partitions_on(cluster: LocalRedisCluster, master: ClusterNode) -> list[int]:
    """The scenario topics' partitions whose share of the view the master serves."""
    ranges = cluster.slots_of(master)
    return [
        p
        for p in range(PARTITIONS)
        if any(
            first <= key_slot(partition_keys(p).latest_prefix.encode()) <= last
            for first, last in ranges
        )
    ]


def master_of_key(cluster: LocalRedisCluster, key: str) -> ClusterNode:
    slot = key_slot(key.encode())
    return next(
        node
        for node in cluster.masters()
        if any(first <= slot <= last for first, last in cluster.slots_of(node))
    )


def built_offsets_on(
    cluster: LocalRedisCluster, node: ClusterNode, system: FaultSystem, partitions: Iterable[int]
) -> dict[int, int | None]:
    """The partitions' built offsets as one node holds them, a replica included."""
    with cluster.admin(node) as client:
        # A replica answers reads only on a connection that asked for it.
        client.execute_command("READONLY")  # type: ignore[no-untyped-call]
        keys = {p: partition_keys(p).built(system.consumer_group, system.topic) for p in partitions}
        values = {p: client.get(key) for p, key in keys.items()}
    return {p: None if value is None else int(value) for p, value in values.items()}


@contextlib.contextmanager
def replication_cut(
    cluster: LocalRedisCluster,
    master: ClusterNode,
    replica: ClusterNode,
    system: FaultSystem,
    partitions: list[int],
    timeout: float = 10.0,
) -> Iterator[None]:
    """Hold the master's replication link down until the master holds writes of the
    partitions that its replica lacks (its built offsets ahead), then yield: a failover
    now promotes a replica without the master's last writes, as after a network
    partition or a replica that fell behind.

    The replica is given a wrong master password first, so that it cannot connect again
    (it retries every second) while the writes pile up on the master; it gets its own
    back on the way out.
    """
    with cluster.admin(replica) as client:
        own = str(client.config_get("masterauth").get("masterauth", ""))
        client.config_set("masterauth", "not-the-password")
    try:
        with cluster.admin(master) as client:
            client.execute_command("CLIENT", "KILL", "TYPE", "replica")  # type: ignore[no-untyped-call]
        lagging = built_offsets_on(cluster, replica, system, partitions)

        def master_ahead() -> bool:
            on_master = built_offsets_on(cluster, master, system, partitions)
            return any((on_master[p] or 0) > (lagging[p] or 0) for p in partitions)

        wait_until(master_ahead, timeout, "the master to hold writes its replica lacks")
        yield
    finally:
        with cluster.admin(replica) as client:
            client.config_set("masterauth", own)


def log_size(process: ManagedProcess) -> int:
    return process.log_path.stat().st_size if process.log_path.exists() else 0


@dataclass(frozen=True)
class Replay:
    """The worker found a partition's view behind what it wrote and read it again."""

    partition: int
    # Where Redis's view was built to (None: not at all) and where the worker left it.
    found: int | None
    written: int | None


_REPLAY = re.compile(r"built up to (?:nothing|offset \d+), not (\d+|None) as written")


def replays_logged(
    worker: ManagedProcess, since: int = 0, until: int | None = None
) -> list[Replay]:
    """The replays the worker logged (LOG_FORMAT=json) between bytes `since` and `until`
    (by default the end) of its log."""
    with worker.log_path.open("rb") as log:
        log.seek(since)
        text = log.read() if until is None else log.read(until - since)
    lines = text.decode(errors="replace").splitlines()
    replays = []
    for line in lines:
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            match = _REPLAY.search(str(entry.get("message", "")))
            if match is not None:
                written = match[1]
                replays.append(
                    Replay(
                        int(entry["partition"]),
                        entry.get("offset"),
                        None if written == "None" else int(written),
                    )
                )
    return replays


def view_replays_metric(system: FaultSystem) -> float:
    """The worker's memtel_worker_view_replays_total, from its metrics endpoint."""
    port = system.worker_metrics_port
    assert port is not None, "the worker serves metrics on its default port"
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith("memtel_worker_view_replays_total "):
            return float(line.split()[1])
    raise AssertionError("the worker exposes no memtel_worker_view_replays_total")
