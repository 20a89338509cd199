"""The services' Redis clients on a real Redis Cluster of 3 masters and 3 replicas.

The cluster is this module's own (free ports, a temporary directory): the tests kill
its nodes, which must disturb no other test. Each test starts and ends with the
cluster whole.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio.cluster
import redis.cluster

from devstack.ports import free_port_block
from devstack.redis_cluster import (
    BUS_PORT_OFFSET,
    MASTERS,
    NODE_COUNT,
    ClusterNode,
    LocalRedisCluster,
)
from devstack.stack import LocalStack
from producer_api.settings import ProducerSettings
from telemetry_common.redis_client import create_async_redis, create_sync_redis
from telemetry_common.settings import RedisSettings
from tests.helpers import unique, wait_until

logger = logging.getLogger(__name__)

# A failover takes the node timeout (2 s), the failure reports and the election: about
# 3 s here; the bound leaves room for a busy machine.
FAILOVER_TIMEOUT_SECONDS = 30.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRedisCluster]:
    work_dir = tmp_path_factory.mktemp("redis-cluster")
    local = LocalRedisCluster(work_dir, free_port_block(NODE_COUNT, BUS_PORT_OFFSET))
    try:
        for process in local.processes():
            process.start()
        local.create()
        yield local
    finally:
        for process in reversed(local.processes()):
            process.stop()


@pytest.fixture
def settings(cluster: LocalRedisCluster) -> RedisSettings:
    """The services' Redis settings, REDIS_URL naming the first node only."""
    cluster.wait_cluster_ok()
    return RedisSettings(
        _env_file=None,
        redis_url=f"redis://127.0.0.1:{cluster.first_port}/0",
        redis_cluster=True,
    )


@pytest.fixture
def client(settings: RedisSettings) -> Iterator[redis.cluster.RedisCluster]:
    created = create_sync_redis(settings)
    assert isinstance(created, redis.cluster.RedisCluster)
    yield created
    created.close()


def port_of_key(client: redis.cluster.RedisCluster, key: str) -> int:
    # redis-py leaves the cluster client's node lookups unannotated.
    port: int = client.get_node_from_key(key).port  # type: ignore[no-untyped-call]
    return port


def primary_ports(client: redis.cluster.RedisCluster) -> set[int]:
    return {int(node.port) for node in client.get_primaries()}  # type: ignore[no-untyped-call]


def master_of(
    cluster: LocalRedisCluster, client: redis.cluster.RedisCluster, key: str
) -> ClusterNode:
    return cluster.node_at(port_of_key(client, key))


def replicate_now(cluster: LocalRedisCluster, master: ClusterNode) -> None:
    """Wait until the master's replica has every write so far (replication is
    asynchronous: a failover may otherwise lose the last ones)."""
    with cluster.admin(master) as admin:
        assert admin.execute_command("WAIT", 1, 5000) == 1  # type: ignore[no-untyped-call]


def answer(client: redis.cluster.RedisCluster, key: str) -> str | None:
    """The key's value, or None while the cluster does not answer."""
    try:
        value = client.get(key)
    except redis.RedisError:
        return None
    return str(value) if value is not None else None


def test_a_client_given_one_node_finds_the_three_masters(
    cluster: LocalRedisCluster, client: redis.cluster.RedisCluster
) -> None:
    masters = {node.port for node in cluster.masters()}
    assert len(masters) == MASTERS
    assert primary_ports(client) == masters
    # A key on each master: every one is written through the same client.
    keys: dict[int, str] = {}
    for index in range(1000):
        key = f"discovery-{index}"
        keys.setdefault(port_of_key(client, key), key)
    assert set(keys) == masters
    for port, key in keys.items():
        client.set(key, str(port))
        with cluster.admin(cluster.node_at(port)) as node:
            assert node.get(key) == str(port)


@pytest.mark.anyio
async def test_the_async_client_finds_the_three_masters(
    cluster: LocalRedisCluster, settings: RedisSettings
) -> None:
    client = create_async_redis(settings)
    assert isinstance(client, redis.asyncio.cluster.RedisCluster)
    try:
        key = unique("async")
        await client.set(key, "value")
        assert await client.get(key) == "value"
        masters = {node.port for node in cluster.masters()}
        assert {node.port for node in client.get_primaries()} == masters
    finally:
        await client.aclose()


def test_the_services_settings_build_cluster_clients(cluster: LocalRedisCluster) -> None:
    settings = ProducerSettings(
        _env_file=None, redis_url=f"redis://127.0.0.1:{cluster.first_port}/0", redis_cluster=True
    )
    client = create_sync_redis(settings)
    try:
        assert isinstance(client, redis.cluster.RedisCluster)
        assert client.ping()
    finally:
        client.close()


def test_after_a_master_is_killed_the_same_client_answers_from_its_promoted_replica(
    cluster: LocalRedisCluster,
    client: redis.cluster.RedisCluster,
    record_property: Callable[[str, object], None],
) -> None:
    key = unique("failover")
    client.set(key, "before")
    master = master_of(cluster, client, key)
    (replica,) = cluster.replicas_of(master)
    replicate_now(cluster, master)

    cluster.kill_node(master)
    killed_at = time.monotonic()
    wait_until(
        lambda: answer(client, key) == "before",
        FAILOVER_TIMEOUT_SECONDS,
        "the same client to read the key from the promoted replica",
        interval=0.05,
    )
    failover_seconds = time.monotonic() - killed_at
    record_property("failover_seconds", round(failover_seconds, 2))
    logger.info("the client answered again %.2fs after the master was killed", failover_seconds)
    assert master_of(cluster, client, key) is replica
    client.set(key, "after")
    assert client.get(key) == "after"

    # Started again empty, the old master becomes the replica of its successor.
    cluster.restart_node(master, empty=True)
    cluster.wait_cluster_ok()
    assert cluster.replicas_of(replica) == [master]
    replicate_now(cluster, replica)
    with cluster.admin(master) as node:
        # A replica answers reads on a connection that sent READONLY.
        assert node.execute_command("READONLY")  # type: ignore[no-untyped-call]
        assert node.get(key) == "after"


def test_a_master_and_its_replica_lost_get_their_slots_back(
    cluster: LocalRedisCluster, client: redis.cluster.RedisCluster
) -> None:
    key = unique("lost")
    client.set(key, "gone with its nodes")
    master = master_of(cluster, client, key)
    (replica,) = cluster.replicas_of(master)
    slots = cluster.slots_of(master)

    cluster.kill_node(master)
    cluster.kill_node(replica)
    for node in (master, replica):
        cluster.restart_node(node, empty=True)
    # Nobody serves the pair's slots: the cluster refuses every key until they are given.
    assert cluster.serving_problem() is not None
    assert cluster.cover_lost_slots() == slots
    seconds = cluster.wait_cluster_ok()
    logger.info("the cluster was whole again %.2fs after the lost slots were given", seconds)

    assert {node.port for node in cluster.masters()} >= {master.port}
    assert cluster.slots_of(master) == slots
    assert cluster.replicas_of(master) == [replica]
    # The same client finds the slots' new master; their data went with the nodes.
    assert wait_until(
        lambda: answer(client, key) is None and client.set(key, "again"),
        FAILOVER_TIMEOUT_SECONDS,
        "the client to reach the slots' new master",
    )
    assert master_of(cluster, client, key) is master
    assert client.get(key) == "again"


@pytest.mark.redis_cluster_only(reason="checks the session stack's Redis Cluster")
def test_the_session_stack_runs_a_cluster(
    stack: LocalStack,
    producer_settings: ProducerSettings,
    redis_client: redis.Redis,
    tmp_path: Path,
) -> None:
    assert stack.redis_cluster is not None
    assert stack.service_env()["REDIS_CLUSTER"] == "true"
    assert producer_settings.redis_cluster
    assert isinstance(redis_client, redis.cluster.RedisCluster)
    assert len(primary_ports(redis_client)) == MASTERS
    assert stack.redis_cluster.health_problem() is None
