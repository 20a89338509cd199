"""Redis Cluster nodes killed on real processes while readings stream through the API.

The scenarios share one stack with a Redis Cluster of 3 masters and 3 replicas (its
own, whatever MEMTEL_TEST_REDIS says), each with topics, a consumer group, an API and
a worker of its own. Every scenario starts with the cluster whole and compares, at
the end, every acknowledged POST with what GET serves and what the topic holds, as
the other fault scenarios do.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devstack.redis_cluster import NODE_TIMEOUT_MS, ClusterNode, LocalRedisCluster
from devstack.stack import LocalStack
from producer_api.settings import ProducerSettings
from telemetry_common.layout import placements_key
from tests.faults.stream import ReadingStream, assert_nothing_lost, report, verify
from tests.faults.system import (
    POST_BOUND_SECONDS,
    FaultSystem,
    Replay,
    built_offsets_on,
    cluster_of,
    heal,
    log_size,
    master_of_key,
    partitions_on,
    redis_cluster_stack,
    replays_logged,
    replication_cut,
    services_on_cluster,
    time_until_fresh,
    view_replays_metric,
)

pytestmark = pytest.mark.timeout(600)

# What a GET may take when Redis fails: the API's deadline on its Redis calls, plus
# some room for HTTP and the event loop on a busy two-core machine.
REDIS_DEADLINE_SECONDS = float(ProducerSettings.model_fields["redis_deadline_seconds"].default)
GET_BOUND_SECONDS = REDIS_DEADLINE_SECONDS + 0.5


@pytest.fixture(scope="module")
def cluster_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with redis_cluster_stack(tmp_path_factory.mktemp("redis-cluster-stack")) as stack:
        yield stack


@pytest.fixture
def cluster_system(
    cluster_stack: LocalStack, tmp_path: Path
) -> Iterator[tuple[FaultSystem, LocalRedisCluster]]:
    cluster = cluster_of(cluster_stack)
    heal(cluster)
    with services_on_cluster(cluster_stack, tmp_path) as system:
        yield system, cluster


@dataclass
class MasterKill:
    """A master SIGKILLed mid-stream, and what its replica held at that moment."""

    master: ClusterNode
    replica: ClusterNode
    partitions: list[int]
    # The partitions' built offsets read from the master just before the kill, and from
    # its replica just after (before it is promoted, so exactly what it starts with).
    on_master: dict[int, int | None]
    on_replica: dict[int, int | None]
    killed_at: float
    killed_at_in_stream: float
    worker_log_mark: int
    replays_metric_before: float
    # The partitions' built offsets on the promoted replica once the view recovered.
    after_recovery: dict[int, int | None] | None = None

    def recovered(self, cluster: LocalRedisCluster, system: FaultSystem) -> None:
        self.after_recovery = built_offsets_on(cluster, self.replica, system, self.partitions)

    def replica_behind(self) -> dict[int, int]:
        """The partitions whose replica lacked writes seen on the master, by how many
        offsets."""
        return {
            p: (self.on_master[p] or 0) - (self.on_replica[p] or 0)
            for p in self.partitions
            if (self.on_replica[p] or 0) < (self.on_master[p] or 0)
        }


def kill_master(
    system: FaultSystem, cluster: LocalRedisCluster, stream: ReadingStream, master: ClusterNode
) -> MasterKill:
    (replica,) = cluster.replicas_of(master)
    partitions = partitions_on(cluster, master)
    assert partitions, f"{master.name} serves none of the topic's partitions"
    replays_before = view_replays_metric(system)
    mark = log_size(system.worker)
    on_master = built_offsets_on(cluster, master, system, partitions)
    cluster.kill_node(master)
    killed_at = time.monotonic()
    # Read before the replica is promoted (cluster-node-timeout is 2 s): nothing writes
    # to it meanwhile.
    on_replica = built_offsets_on(cluster, replica, system, partitions)
    return MasterKill(
        master,
        replica,
        partitions,
        on_master,
        on_replica,
        killed_at,
        stream.elapsed(),
        mark,
        replays_before,
    )


def master_serving_partition_zero(cluster: LocalRedisCluster) -> ClusterNode:
    return next(node for node in cluster.masters() if 0 in partitions_on(cluster, node))


def assert_replayed_where_behind(kill: MasterKill, replays: list[Replay]) -> None:
    # Only the killed master's partitions can have gone back.
    assert {r.partition for r in replays} <= set(kill.partitions), replays
    # A promoted replica that lacked writes the master had is found out by the worker,
    # which reads the partition again from the replica's offset.
    for partition in kill.replica_behind():
        found = [r for r in replays if r.partition == partition]
        assert any(r.found == kill.on_replica[partition] for r in found), (partition, replays)


def failover_figures(
    system: FaultSystem, kill: MasterKill, replays: list[Replay], view_replays: float
) -> dict[str, object]:
    return {
        "killed": kill.master.name,
        "killed_at": kill.killed_at_in_stream,
        "partitions": kill.partitions,
        "cluster_node_timeout_ms": NODE_TIMEOUT_MS,
        "built_on_master_before_kill": kill.on_master,
        "built_on_replica_at_kill": kill.on_replica,
        "built_on_promoted_after_recovery": kill.after_recovery,
        "replica_behind_master": kill.replica_behind(),
        "view_replays": view_replays,
        "replays_logged": [(r.partition, r.found, r.written) for r in replays],
    }


def test_master_sigkilled_mid_stream_replica_promoted(
    cluster_system: tuple[FaultSystem, LocalRedisCluster],
) -> None:
    """Two kills in one stream: first with the replica in sync (on one host a killed
    master's replication stream is never behind what it answered), then with the
    replica behind the master (its link cut just before), so that the promoted replica
    lacks the master's last writes and the worker must replay them."""
    system, cluster = cluster_system
    api_pid, worker_pid = system.api.pid, system.worker.pid
    stream = ReadingStream(
        system.api_url, machines=200, readings_per_machine=50, bound_seconds=POST_BOUND_SECONDS
    ).start()
    kills: dict[str, MasterKill] = {}
    recoveries: dict[str, float] = {}

    stream.wait_for_sent(int(stream.total * 0.25), timeout=120)
    kills["in_sync"] = kill_master(system, cluster, stream, master_serving_partition_zero(cluster))
    # From the kill until a reading posted then is served in each of the master's
    # partitions: the worker writes a partition in offset order, so everything
    # acknowledged there before it is served too.
    recoveries["in_sync"] = time_until_fresh(
        system, since=kills["in_sync"].killed_at, partitions=kills["in_sync"].partitions
    )
    kills["in_sync"].recovered(cluster, system)
    # The killed master comes back with its data, as the replica of its successor.
    heal(cluster)

    stream.wait_for_sent(int(stream.total * 0.6), timeout=120)
    master = master_serving_partition_zero(cluster)
    (replica,) = cluster.replicas_of(master)
    with replication_cut(cluster, master, replica, system, partitions_on(cluster, master)):
        kills["replica_behind"] = kill_master(system, cluster, stream, master)
    recoveries["replica_behind"] = time_until_fresh(
        system,
        since=kills["replica_behind"].killed_at,
        partitions=kills["replica_behind"].partitions,
    )
    kills["replica_behind"].recovered(cluster, system)

    ledger = stream.join(timeout=180)
    verdict = verify(ledger, system.api_url, system.bootstrap, system.topic)
    first, second = kills["in_sync"], kills["replica_behind"]
    replays = {
        "in_sync": replays_logged(system.worker, first.worker_log_mark, second.worker_log_mark),
        "replica_behind": replays_logged(system.worker, second.worker_log_mark),
    }
    view_replays = {
        "in_sync": second.replays_metric_before - first.replays_metric_before,
        "replica_behind": view_replays_metric(system) - second.replays_metric_before,
    }
    figures = report(
        "redis_cluster_master_sigkill",
        ledger,
        verdict,
        recovery_seconds=recoveries,
        kills={
            name: failover_figures(system, kill, replays[name], view_replays[name])
            for name, kill in kills.items()
        },
    )
    assert_nothing_lost(figures)
    # Writes never touch Redis: every POST is acknowledged whatever the cluster does.
    assert ledger.statuses == {200: stream.total}, figures
    # The services found the promoted replicas by themselves.
    assert (system.api.pid, system.worker.pid) == (api_pid, worker_pid)
    assert system.api.running()
    assert system.worker.running()
    assert second.replica_behind(), figures
    for name, kill in kills.items():
        assert_replayed_where_behind(kill, replays[name])
    assert max(recoveries.values()) < 30, figures


def test_master_and_replica_lost_their_partitions_rebuilt_from_kafka(
    cluster_system: tuple[FaultSystem, LocalRedisCluster],
) -> None:
    system, cluster = cluster_system
    api_pid, worker_pid = system.api.pid, system.worker.pid
    stream = ReadingStream(
        system.api_url, machines=200, readings_per_machine=50, bound_seconds=POST_BOUND_SECONDS
    ).start()
    stream.wait_for_sent(int(stream.total * 0.3), timeout=120)
    # The shard that also holds the topic's placements set, by which the API finds every
    # machine: the worst shard to lose.
    master = master_of_key(cluster, placements_key(system.topic))
    (replica,) = cluster.replicas_of(master)
    partitions = partitions_on(cluster, master)
    mark = log_size(system.worker)
    cluster.kill_node(master)
    cluster.kill_node(replica)
    killed_at = time.monotonic()
    killed_at_in_stream = stream.elapsed()
    for node in (master, replica):
        cluster.restart_node(node, empty=True)
    cluster.cover_lost_slots()
    cluster.wait_slots_served()
    slots_back_at = time.monotonic()
    since_kill = time_until_fresh(system, since=killed_at, partitions=partitions)
    rebuilt = round(since_kill - (slots_back_at - killed_at), 2)
    cluster.wait_cluster_ok()
    ledger = stream.join(timeout=180)
    verdict = verify(ledger, system.api_url, system.bootstrap, system.topic)
    replays = replays_logged(system.worker, mark)
    figures = report(
        "redis_cluster_shard_lost",
        ledger,
        verdict,
        killed=[master.name, replica.name],
        killed_at=killed_at_in_stream,
        partitions=partitions,
        cluster_node_timeout_ms=NODE_TIMEOUT_MS,
        slots_served_again_seconds=round(slots_back_at - killed_at, 2),
        rebuild_seconds=rebuilt,
        recovery_seconds=since_kill,
        replays_logged=[(r.partition, r.found, r.written) for r in replays],
    )
    assert_nothing_lost(figures)
    assert ledger.statuses == {200: stream.total}, figures
    assert (system.api.pid, system.worker.pid) == (api_pid, worker_pid)
    assert system.api.running()
    assert system.worker.running()
    # The lost partitions, and only they, were read again from their beginning.
    assert {r.partition for r in replays if r.found is None} == set(partitions), replays
    assert {r.partition for r in replays} <= set(partitions), replays


def test_gets_during_a_failover_answer_503_in_time_and_never_go_back(
    cluster_system: tuple[FaultSystem, LocalRedisCluster],
) -> None:
    system, cluster = cluster_system
    stream = ReadingStream(
        system.api_url,
        machines=100,
        readings_per_machine=50,
        bound_seconds=POST_BOUND_SECONDS,
        rate_per_second=200.0,
        read_bound_seconds=GET_BOUND_SECONDS,
    ).start()
    stream.wait_for_sent(int(stream.total * 0.3), timeout=120)
    kill = kill_master(system, cluster, stream, master_serving_partition_zero(cluster))
    recovery = time_until_fresh(system, since=kill.killed_at, partitions=kill.partitions)
    kill.recovered(cluster, system)
    ledger = stream.join(timeout=180)
    verdict = verify(ledger, system.api_url, system.bootstrap, system.topic)
    replays = replays_logged(system.worker, kill.worker_log_mark)
    reads = ledger.reads
    assert reads is not None
    figures = report(
        "redis_cluster_reads_during_failover",
        ledger,
        verdict,
        recovery_seconds=recovery,
        get_bound_seconds=GET_BOUND_SECONDS,
        get_503_within_seconds_of_kill=_spread(
            [at - kill.killed_at for at, _, status in reads.failed if status == 503]
        ),
        regressions=[
            (m, before, now, round(at - kill.killed_at, 2))
            for m, before, now, at in reads.regressions[:20]
        ],
        **failover_figures(
            system, kill, replays, view_replays_metric(system) - kill.replays_metric_before
        ),
    )
    assert_nothing_lost(figures)
    assert ledger.statuses == {200: stream.total}, figures
    # The failover was seen by readers: it is what this scenario is about.
    assert reads.statuses[503] > 0, figures
    # Every GET answered, 200, 404 (not yet written) or 503 with Retry-After, never 500,
    # within the API's Redis deadline.
    assert set(reads.statuses) <= {200, 404, 503}, figures
    assert not reads.errors, figures
    assert reads.without_retry_after == 0, figures
    assert reads.over_bound == 0, figures
    # No client was served a reading older than one it was served before.
    assert reads.regressions == [], figures
    assert_replayed_where_behind(kill, replays)


def _spread(values: list[float]) -> list[float]:
    return [round(min(values), 2), round(max(values), 2)] if values else []
