"""Fixtures: one real stack (ZooKeeper, Kafka, Redis) per test session, on free ports.

Each test gets a topic and a consumer group of its own, so tests do not see each
other's records, and no test touches a stack a person runs with `make up`.

MEMTEL_TEST_REDIS=cluster (`make test-cluster`) runs the stack's Redis as a Redis
Cluster of 3 masters and 3 replicas, and the services' settings and `redis_client`
use it as one.

MEMTEL_TEST_KAFKA=kraft (`make test-kafka4`) runs the stack's Kafka as one Kafka 4.x
node in KRaft mode (broker and controller) instead of ZooKeeper and Kafka 3.9.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import redis.cluster

from consumer_worker.settings import WorkerSettings
from devstack import services
from devstack.ports import free_port
from devstack.settings import DevstackSettings
from devstack.stack import KafkaMode, LocalStack
from producer_api.settings import ProducerSettings
from telemetry_common.redis_client import SyncRedis
from tests.helpers import TOPIC_PARTITIONS, OwnRedis, api_and_worker, stack_settings, unique

TESTS_ROOT = Path(__file__).parent

# The Redis the session's stack runs: "standalone" (the default) or "cluster".
REDIS_TOPOLOGY = os.environ.get("MEMTEL_TEST_REDIS", "standalone")
REDIS_CLUSTER = REDIS_TOPOLOGY == "cluster"

# The Kafka the session's stack runs: "zookeeper" (Kafka 3.9, the default) or "kraft".
KAFKA_MODE = os.environ.get("MEMTEL_TEST_KAFKA", "zookeeper")

# A test that makes sense on one topology only carries one of these, with its reason;
# it is skipped, with that reason, on the other.
_TOPOLOGY_MARKERS = {"standalone_redis_only": "standalone", "redis_cluster_only": "cluster"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "standalone_redis_only(reason): runs on a standalone Redis only, skipped with "
        "MEMTEL_TEST_REDIS=cluster",
    )
    config.addinivalue_line(
        "markers",
        "redis_cluster_only(reason): runs with MEMTEL_TEST_REDIS=cluster only (make test-cluster)",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The folder a test lives in is its tier.
    for item in items:
        tier = Path(item.fspath).relative_to(TESTS_ROOT).parts[0]
        if tier in {"unit", "integration", "e2e", "browser", "compose", "faults"}:
            item.add_marker(getattr(pytest.mark, tier))
        for name, topology in _TOPOLOGY_MARKERS.items():
            marker = item.get_closest_marker(name)
            if marker is not None and topology != REDIS_TOPOLOGY:
                reason = marker.kwargs.get("reason") or (marker.args[0] if marker.args else "")
                item.add_marker(pytest.mark.skip(reason=f"{topology} Redis only: {reason}"))


def _kafka_mode() -> KafkaMode:
    modes: dict[str, KafkaMode] = {"zookeeper": "zookeeper", "kraft": "kraft"}
    if KAFKA_MODE not in modes:
        raise pytest.UsageError(f"MEMTEL_TEST_KAFKA is zookeeper or kraft, not {KAFKA_MODE!r}")
    return modes[KAFKA_MODE]


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    settings = DevstackSettings.on_free_ports(
        kafka_topic_partitions=TOPIC_PARTITIONS, redis_cluster=REDIS_CLUSTER
    )
    work_dir = tmp_path_factory.mktemp("stack")
    local: LocalStack
    # MEMTEL_TEST_BACKEND=containers: the infrastructure in the project's images.
    if os.environ.get("MEMTEL_TEST_BACKEND", "processes") == "containers":
        from devstack.containers import ContainerStack  # imported only here: needs Docker

        local = ContainerStack(settings, work_dir)
    else:
        local = LocalStack(settings, work_dir, kafka_mode=_kafka_mode())
    with local:
        yield local


@pytest.fixture
def topic(stack: LocalStack) -> str:
    name = unique("readings")
    services.create_topic(stack.bootstrap_servers, name, TOPIC_PARTITIONS)
    return name


@pytest.fixture
def redis_client(stack: LocalStack) -> Iterator[SyncRedis]:
    """A client of the stack's Redis: a cluster client with MEMTEL_TEST_REDIS=cluster."""
    client: SyncRedis
    if REDIS_CLUSTER:
        client = redis.cluster.RedisCluster.from_url(stack.redis_url, decode_responses=True)
    else:
        client = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def own_stack(tmp_path: Path) -> Iterator[LocalStack]:
    """A stack of the test's own (ZooKeeper, Kafka and a standalone Redis), so that
    stopping one of its servers disturbs no other test."""
    settings = DevstackSettings.on_free_ports(kafka_topic=unique("readings"))
    with LocalStack(settings, tmp_path) as local:
        yield local


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    """A Redis server of the test's own; the test starts it when it means to. Stopped at
    the end of the test."""
    port = free_port()
    data_dir = tmp_path / "redis"
    server = services.redis(data_dir, port)
    try:
        yield OwnRedis(server, port, data_dir)
    finally:
        server.stop()


@pytest.fixture
def api_url(stack: LocalStack, topic: str, tmp_path: Path) -> Iterator[str]:
    """The URL of the API, run with a worker as processes of their own on the test's
    topic, as they run in production. One consumer group for both: the API waits on the
    view of the workers' group."""
    env = {"KAFKA_TOPIC": topic, "KAFKA_CONSUMER_GROUP": unique("writers")}
    with api_and_worker(stack, tmp_path, env) as (url, _):
        yield url


@pytest.fixture
def producer_settings(stack: LocalStack, topic: str) -> ProducerSettings:
    return stack_settings(stack, kafka_topic=topic)


@pytest.fixture
def worker_settings(stack: LocalStack, topic: str, tmp_path: Path) -> WorkerSettings:
    return WorkerSettings(
        _env_file=None,
        kafka_bootstrap_servers=stack.bootstrap_servers,
        kafka_topic=topic,
        kafka_consumer_group=unique("writers"),
        redis_url=stack.redis_url,
        redis_cluster=REDIS_CLUSTER,
        worker_poll_timeout_seconds=0.2,
        worker_health_file=tmp_path / "worker.health",
        # Tests that scrape the worker choose a free port; the rest serve no metrics.
        worker_metrics_port=0,
    )


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"
