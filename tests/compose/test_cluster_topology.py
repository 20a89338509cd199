"""The production-shaped topology in Compose (docker-compose.cluster.yml over the base
file and the Redis Cluster override): readings posted through HAProxy reach the three
Kafka 4 KRaft nodes, the three workers, the Redis Cluster, and are read back."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator

import httpx
import pytest

from devstack.ports import free_port
from tests.compose.project import ComposeProject
from tests.compose.readings import machines, post_readings, wait_until_served
from tests.helpers import unique

FILES = ("docker-compose.yml", "docker-compose.redis-cluster.yml", "docker-compose.cluster.yml")
KAFKA_NODES = ("kafka-1", "kafka-2", "kafka-3")
WORKERS = ("consumer-worker-1", "consumer-worker-2", "consumer-worker-3")
REDIS_NODES = ("redis", *(f"redis-node-{n}" for n in range(2, 7)))
SERVICES = (
    *KAFKA_NODES,
    "kafka-init",
    *REDIS_NODES,
    "redis-cluster-init",
    "producer-api",
    "haproxy",
    *WORKERS,
)
BOOTSTRAP = "kafka-1:29092"


@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComposeProject]:
    run_id = os.environ.get("MEMTEL_TEST_RUN") or uuid.uuid4().hex[:10]
    api_port = free_port()
    env_file = tmp_path_factory.mktemp("compose-topology") / "test.env"
    env_file.write_text(f"API_PUBLISHED_PORT={api_port}\n")
    project = ComposeProject(
        # scripts/with-docker.sh removes this project by its name at the end of a run.
        f"memtel-test-{run_id}-topology",
        env_file,
        api_port,
        # Kafka publishes no host port in this topology.
        kafka_port=0,
        files=FILES,
        services=SERVICES,
    )
    try:
        project.up()
        yield project
    finally:
        project.down(volumes=True)


def kafka_tool(project: ComposeProject, tool: str, *arguments: str) -> str:
    """One of Kafka's tools in a node; the server first (kafka-metadata-quorum wants it
    before its subcommand)."""
    return project.exec("kafka-1", tool, "--bootstrap-server", BOOTSTRAP, *arguments)


def test_readings_through_haproxy_are_replicated_and_read_back(topology: ComposeProject) -> None:
    with httpx.Client(base_url=topology.api_url, timeout=10) as api:
        assert api.get("/readyz").status_code == 200
        readings = machines(unique("topology"), 60)
        post_readings(api, readings)
        wait_until_served(api, readings, timeout=90)
        assert api.get(f"/cpu-info/{unique('nobody')}").status_code == 404

    # Two API replicas behind the balancer.
    assert len(topology.container_ids("producer-api")) == 2

    # The readings topic: three replicas, each write on two of them, every replica in
    # sync on the three nodes.
    described = kafka_tool(topology, "kafka-topics", "--describe", "--topic", "memory-readings")
    assert "ReplicationFactor: 3" in described, described
    assert "min.insync.replicas=2" in described, described
    isrs = re.findall(r"Isr: ([\d,]+)", described)
    assert len(isrs) == 6, described
    assert all(sorted(isr.split(",")) == ["1", "2", "3"] for isr in isrs), described

    # A KRaft quorum of the three nodes, no ZooKeeper.
    quorum = kafka_tool(topology, "kafka-metadata-quorum", "describe", "--status")
    assert re.search(r"CurrentVoters:\s+\[.*\b1\b.*\b2\b.*\b3\b", quorum), quorum

    # Three workers in one group, each a static member under its own id.
    members = kafka_tool(
        topology, "kafka-consumer-groups", "--describe", "--group", "memtel-redis-writer",
        "--members",
    )  # fmt: skip
    for index in range(1, 4):
        assert f"memtel-worker-{index}-" in members, members
