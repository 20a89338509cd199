"""REDIS_CLUSTER: the settings it refuses, the clients it builds, the devstack's parsing."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
import redis.asyncio
import redis.asyncio.cluster
from pydantic import ValidationError

from consumer_worker.settings import WorkerSettings
from devstack.ports import free_port_block
from devstack.redis_cluster import parse_cluster_nodes, slot_ranges
from devstack.settings import DevstackSettings
from producer_api.settings import ProducerSettings
from telemetry_common.redis_client import create_async_redis, create_sync_redis
from telemetry_common.settings import RedisSettings


def test_cluster_mode_is_off_by_default_and_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert not RedisSettings(_env_file=None).redis_cluster
    monkeypatch.setenv("REDIS_CLUSTER", "true")
    for settings_class in (ProducerSettings, WorkerSettings, DevstackSettings):
        assert settings_class(_env_file=None).redis_cluster


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("unix:///run/redis.sock", "REDIS_URL must be redis:// or rediss://"),
        ("redis://redis-1:6379/2", "a cluster has database 0 only"),
        ("redis://redis-1:6379/0?db=1", "a cluster has database 0 only"),
        ("rediss://redis-1:6380/x", "a cluster has database 0 only"),
    ],
)
def test_a_url_a_cluster_cannot_serve_is_refused(url: str, problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        RedisSettings(_env_file=None, redis_url=url, redis_cluster=True)
    # The same URL is fine for a standalone Redis.
    RedisSettings(_env_file=None, redis_url=url)


@pytest.mark.parametrize("url", ["redis://redis-1:6379/0", "redis://redis-1:6379", "rediss://r/"])
def test_database_0_is_accepted_however_written(url: str) -> None:
    assert RedisSettings(_env_file=None, redis_url=url, redis_cluster=True).redis_cluster


def test_the_standalone_clients_stay_standalone() -> None:
    settings = RedisSettings(_env_file=None)
    assert type(create_sync_redis(settings)) is redis.Redis
    assert type(create_async_redis(settings)) is redis.asyncio.Redis


def test_the_async_cluster_client_gets_the_same_options_as_a_standalone_one(
    tmp_path: Path,
) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not read until a connection is made")
    settings = RedisSettings(
        _env_file=None,
        redis_url="rediss://memtel:s3cret@redis-1:6380/0",
        redis_cluster=True,
        redis_timeout_seconds=1.5,
        redis_tls_ca_file=ca,
        redis_tls_verify_hostname=False,
    )
    client = create_async_redis(settings)
    assert isinstance(client, redis.asyncio.cluster.RedisCluster)
    options = client.nodes_manager.connection_kwargs
    assert options["username"] == "memtel"
    assert options["password"] == "s3cret"
    assert options["socket_timeout"] == options["socket_connect_timeout"] == 1.5
    assert options["decode_responses"] is True
    assert options["connection_class"] is redis.asyncio.connection.SSLConnection
    assert options["ssl_ca_certs"] == str(ca)
    assert options["ssl_check_hostname"] is False
    # A bounded number of attempts, each reloading the slot map first.
    assert client.retry.get_retries() == 3
    assert [(node.host, node.port) for node in client.nodes_manager.startup_nodes.values()] == [
        ("redis-1", 6380)
    ]


def test_an_unreachable_cluster_is_a_redis_connection_error() -> None:
    # The synchronous client loads the slot map when built; redis-py's own exception
    # for a cluster it cannot reach is no RedisError, which the services handle.
    port = free_port_block(1)
    settings = RedisSettings(
        _env_file=None, redis_url=f"redis://127.0.0.1:{port}/0", redis_cluster=True
    )
    with pytest.raises(redis.ConnectionError, match="Redis Cluster"):
        create_sync_redis(settings)


NODES = """\
07c37dfe 127.0.0.1:30004@40004 slave e7d1eecc 0 1426238317239 4 connected
67ed2db8 127.0.0.1:30002@40002 master - 0 1426238316232 2 connected 5461-10922
292f8b36 127.0.0.1:30003@40003 master - 0 1426238318243 3 connected 10923-16383
6ec23923 127.0.0.1:30005@40005,host-5 slave,fail 67ed2db8 0 1426238316232 5 connected
e7d1eecc 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5459 5460 [5461->-67ed2db8]
"""


def test_cluster_nodes_is_read_as_the_cluster_bus_writes_it() -> None:
    views = {view.port: view for view in parse_cluster_nodes(NODES)}
    assert views[30001].slots == ((0, 5459), (5460, 5460))
    assert views[30001].is_master
    assert "myself" in views[30001].flags
    assert views[30004].master_id == "e7d1eecc"
    assert not views[30004].is_master
    assert views[30005].failed
    assert not views[30002].failed
    assert views[30002].master_id is None


def test_slots_are_grouped_in_ranges() -> None:
    assert slot_ranges([5, 1, 2, 3, 9, 10]) == [(1, 3), (5, 5), (9, 10)]
    assert slot_ranges([]) == []


def test_a_cluster_of_free_ports_has_free_bus_ports_too() -> None:
    settings = DevstackSettings.on_free_ports(redis_cluster=True)
    # Below the ephemeral range, with room for the six nodes and their bus ports.
    assert settings.redis_port >= 10000
    assert settings.redis_port + 5 + 10000 < 32768
