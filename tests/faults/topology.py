"""The production-shaped topology (devstack.cluster_stack.ClusterStack) for the fault
scenarios of test_topology_faults.py, and what they measure on it.

Three Kafka 4 KRaft nodes (RF 3, min.insync.replicas 2), a Redis Cluster of 3 masters
with a replica each, two APIs behind HAProxy and three workers, static members of one
group. Starting it takes 20-30 s of a 2-core machine, so the scenarios share one; each
leaves it whole again (`heal`) for the next, and each streams readings for machines of
its own, so that no scenario's figures count another's readings.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from devstack.cluster_stack import ClusterStack
from devstack.haproxy import server_stats
from devstack.kraft import KraftNode, LocalKraftCluster
from devstack.processes import ManagedProcess
from telemetry_common.contract import InvalidRecordError, decode_record
from tests.faults.system import (
    PARTITIONS,
    POST_BOUND_SECONDS,
    PROBE_USED,
    probe_machine,
    service_env,
)
from tests.helpers import reading, unique, wait_until

# How long a healing step may take: a Kafka node's restart and catch-up, a Redis node's
# resync, on a loaded 2-core machine.
HEAL_TIMEOUT_SECONDS = 120.0
# What a worker's log shows when librdkafka aborts the process (the client assertion
# seen once with three workers, from a client call inside a rebalance callback).
_ABORT_MARKERS = ("Assertion", "CallState_get", "Fatal Python error", "core dumped")


class FaultClusterStack(ClusterStack):
    """The topology with the fault tier's service settings: the delivery timeout that
    bounds every POST (POST_BOUND_SECONDS), a short worker poll, INFO logs."""

    # The APIs and workers the supervisor started again: (name, time.monotonic()).
    restarts: list[tuple[str, float]]

    def __post_init__(self) -> None:
        super().__post_init__()
        self.restarts = []

    def service_env(self) -> dict[str, str]:
        # static_member=False: the stack gives each worker its own instance id.
        return {**super().service_env(), **service_env(static_member=False)}

    def restarted_since(self, since: float) -> list[str]:
        return [name for name, at in self.restarts if at >= since]


def _supervised(process: ManagedProcess) -> bool:
    """The APIs and workers, which `make up-cluster`'s supervisor (and Compose's restart
    policy) start again when they exit; the scenarios restart Kafka and Redis nodes
    themselves, after the time the fault prescribes."""
    return process.name.startswith(("producer-api-", "consumer-worker-"))


@contextlib.contextmanager
def fault_topology(work_dir: Path) -> Iterator[FaultClusterStack]:
    stack = FaultClusterStack.on_free_ports(
        work_dir,
        kafka_topic=unique("readings"),
        kafka_dead_letter_topic=unique("readings-dlq"),
        kafka_consumer_group=unique("writers"),
        kafka_topic_partitions=PARTITIONS,
    )
    with stack:
        stack.start_services()
        stop = threading.Event()

        def restarted(process: ManagedProcess) -> None:
            stack.restarts.append((process.name, time.monotonic()))

        supervisor = threading.Thread(
            target=stack.supervise, args=(stop, restarted, _supervised), name="supervisor"
        )
        supervisor.start()
        try:
            yield stack
        finally:
            stop.set()
            supervisor.join()


def apis(stack: ClusterStack) -> list[ManagedProcess]:
    return [stack.process(f"producer-api-{n}") for n in range(1, stack.api_processes + 1)]


def workers(stack: ClusterStack) -> list[ManagedProcess]:
    return [stack.process(f"consumer-worker-{n}") for n in range(1, stack.workers + 1)]


def kraft_of(stack: ClusterStack) -> LocalKraftCluster:
    assert stack.kraft is not None, "the stack runs no KRaft cluster"
    return stack.kraft


# --- what the scenarios measure ------------------------------------------------------


def time_until_served(stack: ClusterStack, since: float, timeout: float = 90.0) -> float:
    """Seconds from `since` until a reading posted now on every partition is served by
    GET, through the balancer.

    The worker applies a partition in offset order, so a probe served means every
    reading acknowledged in its partition before it is served too. A POST is sent
    again until it is acknowledged (503 while the fault lasts).
    """
    machine_ids = [probe_machine(p) for p in range(PARTITIONS)]
    with httpx.Client(base_url=stack.api_url, timeout=POST_BOUND_SECONDS * 2) as client:
        for machine_id in machine_ids:

            def posted(machine_id: str = machine_id) -> bool:
                with contextlib.suppress(httpx.TransportError):
                    answer = client.post(f"/cpu-info/{machine_id}", json=reading(used=PROBE_USED))
                    return answer.status_code == 200
                return False

            wait_until(posted, timeout, f"a probe POST for {machine_id} acknowledged", 0.2)
        pending = set(machine_ids)

        def served() -> bool:
            for machine_id in list(pending):
                with contextlib.suppress(httpx.TransportError):
                    answer = client.get(f"/cpu-info/{machine_id}")
                    if (
                        answer.status_code == 200
                        and answer.json()[machine_id]["used"] == PROBE_USED
                    ):
                        pending.discard(machine_id)
            return not pending

        wait_until(served, timeout, "the probe readings served on every partition", 0.05)
    return round(time.monotonic() - since, 2)


def statuses_between(
    answers: list[tuple[float, float, int]], start: float, end: float
) -> Counter[int]:
    """The statuses of the POSTs sent at or after `start` and answered by `end` (0: no
    answer), from a ledger's `answers`."""
    return Counter(
        status for sent, seconds, status in answers if sent >= start and sent + seconds <= end
    )


def leaders(stack: ClusterStack, topic: str) -> dict[int, int]:
    """Each partition's leader, by node id."""
    kraft = kraft_of(stack)
    return {p: kraft.leader_of(topic, p).node_id for p in range(PARTITIONS)}


def busiest_leader(stack: ClusterStack) -> KraftNode:
    """The node that leads the most partitions of the readings topic."""
    counts = Counter(leaders(stack, stack.settings.kafka_topic).values())
    return kraft_of(stack).node(counts.most_common(1)[0][0])


def time_until_led_elsewhere(stack: ClusterStack, node_id: int, since: float) -> float:
    """Seconds from `since` until no partition of the topic names `node_id` its leader."""

    def moved() -> bool:
        try:
            return node_id not in leaders(stack, stack.settings.kafka_topic).values()
        except Exception:  # metadata not available while the cluster elects: ask again
            return False

    wait_until(moved, 60, f"new leaders for node {node_id}'s partitions", 0.1)
    return round(time.monotonic() - since, 2)


def assignment(stack: ClusterStack) -> dict[str, list[int]]:
    """The readings topic's partitions of each worker, by its group.instance.id."""
    admin = AdminClient({"bootstrap.servers": stack.bootstrap_servers})
    group = stack.settings.kafka_consumer_group
    description = admin.describe_consumer_groups([group])[group].result(timeout=15)
    result: dict[str, list[int]] = {}
    for member in description.members:
        partitions = member.assignment.topic_partitions if member.assignment else []
        result[str(member.group_instance_id or member.member_id)] = sorted(
            tp.partition for tp in partitions if tp.topic == stack.settings.kafka_topic
        )
    return dict(sorted(result.items()))


def time_until_haproxy_state(
    stack: ClusterStack, server: str, done: set[str], since: float, timeout: float = 30.0
) -> float:
    """Seconds from `since` until HAProxy's state of `server` starts with one of `done`
    (e.g. DOWN), read from its runtime socket."""

    def reached() -> bool:
        with contextlib.suppress(OSError, IndexError):
            state = server_stats(stack.haproxy_socket)[server]["status"]
            return any(state.startswith(word) for word in done)
        return False

    wait_until(reached, timeout, f"HAProxy to see {server} {done}", 0.02)
    return round(time.monotonic() - since, 2)


# --- leaving the topology whole for the next scenario ---------------------------------


def heal(stack: ClusterStack) -> None:
    """Resume what is paused, start again what is dead (with its data), and wait until
    the topology is whole: three live brokers and every partition of the readings topic
    with its three replicas in sync, every Redis master with its replica, both APIs UP
    in HAProxy, three workers running."""
    kraft = kraft_of(stack)
    for node in kraft.nodes:
        kraft.resume(node)
        if not node.process.running():
            kraft.restart(node)
    topic = stack.settings.kafka_topic

    def in_sync() -> bool:
        try:
            return kraft.live_broker_ids() == {n.node_id for n in kraft.nodes} and all(
                len(kraft.in_sync_replicas(topic, p)) == len(kraft.nodes) for p in range(PARTITIONS)
            )
        except Exception:  # metadata not available yet: ask again
            return False

    wait_until(in_sync, HEAL_TIMEOUT_SECONDS, "three brokers, every replica in sync", 0.2)
    cluster = stack.redis_cluster
    assert cluster is not None
    for redis_node in cluster.nodes:
        if not redis_node.process.running():
            cluster.restart_node(redis_node, empty=False)
    cluster.wait_cluster_ok(HEAL_TIMEOUT_SECONDS)
    # The supervisor starts again an API or worker that exited.
    wait_until(
        lambda: all(process.running() for process in [*apis(stack), *workers(stack)]),
        HEAL_TIMEOUT_SECONDS,
        "the supervisor to run every API and worker",
        0.1,
    )
    # The APIs' checked entries; their unchecked fallbacks report no check state.
    names = [api.name for api in apis(stack)]
    wait_until(
        lambda: all(stack.haproxy_states().get(name) == "UP" for name in names),
        HEAL_TIMEOUT_SECONDS,
        "HAProxy to see every API UP",
        0.1,
    )


def client_aborts(stack: ClusterStack) -> list[str]:
    """The lines of the workers' logs that tell of a process aborted by a client
    library (a failed assertion in librdkafka, a fatal Python error)."""
    found = []
    for worker in workers(stack):
        if worker.log_path.exists():
            for line in worker.log_path.read_text(errors="replace").splitlines():
                if any(marker in line for marker in _ABORT_MARKERS):
                    found.append(f"{worker.name}: {line}")
    return found


def restart_in_parallel(nodes: list[KraftNode], stack: ClusterStack) -> None:
    """Start killed Kafka nodes again together: a node is ready only once a quorum of
    controllers runs, which may need the others."""
    kraft = kraft_of(stack)
    errors: list[BaseException] = []

    def restart(node: KraftNode) -> None:
        try:
            kraft.restart(node)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=restart, args=(node,)) for node in nodes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def held_at(bootstrap: str, topic: str, partition: int, offset: int) -> str:
    """What the topic holds at one offset, for the report of a reading found missing:
    the record's machine and `used`, or why there is none."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": unique("audit"), "enable.auto.commit": False}
    )
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=30)
        if not low <= offset < high:
            return f"nothing: the partition holds offsets {low} to {high - 1}"
        consumer.assign([TopicPartition(topic, partition, offset)])
        message = wait_until(lambda: consumer.poll(1.0), 30, f"the record at {offset}")
        if message.error() is not None:
            return f"an error: {message.error()}"
        try:
            record = decode_record(message.key(), message.value())
        except InvalidRecordError as exc:
            return f"a record that is not a reading: {exc}"
        return f"offset {message.offset()}: {record.machine_id} used={record.reading.used}"
    finally:
        consumer.close()
