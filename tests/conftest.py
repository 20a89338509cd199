"""Fixtures: one real stack (ZooKeeper, Kafka, Redis) per test session, on free ports.

Each test gets a topic and a consumer group of its own, so tests do not see each
other's records, and no test touches a stack a person runs with `make up`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from consumer_worker.settings import WorkerSettings
from devstack import services
from devstack.settings import DevstackSettings
from devstack.stack import LocalStack
from producer_api.settings import ProducerSettings
from tests.helpers import TOPIC_PARTITIONS, unique

TESTS_ROOT = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The folder a test lives in is its tier.
    for item in items:
        tier = Path(item.fspath).relative_to(TESTS_ROOT).parts[0]
        if tier in {"unit", "integration", "e2e", "browser", "compose", "faults"}:
            item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    settings = DevstackSettings.on_free_ports(kafka_topic_partitions=TOPIC_PARTITIONS)
    backend = LocalStack
    # MEMTEL_TEST_BACKEND=containers: the infrastructure in the project's images.
    if os.environ.get("MEMTEL_TEST_BACKEND", "processes") == "containers":
        from devstack.containers import ContainerStack  # imported only here: needs Docker

        backend = ContainerStack
    with backend(settings, tmp_path_factory.mktemp("stack")) as local:
        yield local


@pytest.fixture
def topic(stack: LocalStack) -> str:
    name = unique("readings")
    services.create_topic(stack.bootstrap_servers, name, TOPIC_PARTITIONS)
    return name


@pytest.fixture
def redis_client(stack: LocalStack) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def producer_settings(stack: LocalStack, topic: str) -> ProducerSettings:
    return ProducerSettings(
        _env_file=None,
        kafka_bootstrap_servers=stack.bootstrap_servers,
        kafka_topic=topic,
        redis_url=stack.redis_url,
    )


@pytest.fixture
def worker_settings(stack: LocalStack, topic: str, tmp_path: Path) -> WorkerSettings:
    return WorkerSettings(
        _env_file=None,
        kafka_bootstrap_servers=stack.bootstrap_servers,
        kafka_topic=topic,
        kafka_consumer_group=unique("writers"),
        redis_url=stack.redis_url,
        worker_poll_timeout_seconds=0.2,
        worker_health_file=tmp_path / "worker.health",
        # Tests that scrape the worker choose a free port; the rest serve no metrics.
        worker_metrics_port=0,
    )


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"
