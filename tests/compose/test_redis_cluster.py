"""The whole system on the Compose Redis Cluster (docker-compose.redis-cluster.yml):
readings go through the containers, and the view is spread over the three masters."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import httpx
import pytest

from devstack.ports import free_port
from tests.compose.project import SERVICES, ComposeProject
from tests.compose.readings import machines, post_readings, wait_until_served
from tests.helpers import unique

CLUSTER_NODES = ("redis", *(f"redis-node-{n}" for n in range(2, 7)))


@pytest.fixture(scope="module")
def cluster_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComposeProject]:
    run_id = os.environ.get("MEMTEL_TEST_RUN") or uuid.uuid4().hex[:10]
    api_port, kafka_port = free_port(), free_port()
    env_file = tmp_path_factory.mktemp("compose-cluster") / "test.env"
    env_file.write_text(f"API_PUBLISHED_PORT={api_port}\nKAFKA_PUBLISHED_PORT={kafka_port}\n")
    project = ComposeProject(
        # scripts/with-docker.sh removes what is labelled with the run id, and this
        # project by its name prefix.
        f"memtel-test-{run_id}-cluster",
        env_file,
        api_port,
        kafka_port,
        files=("docker-compose.yml", "docker-compose.redis-cluster.yml"),
        services=(*SERVICES, *CLUSTER_NODES[1:], "redis-cluster-init"),
    )
    try:
        project.up()
        yield project
    finally:
        project.down(volumes=True)


def test_readings_go_through_the_cluster_and_spread_over_its_masters(
    cluster_project: ComposeProject,
) -> None:
    with httpx.Client(base_url=cluster_project.api_url, timeout=10) as api:
        assert api.get("/readyz").status_code == 200
        readings = machines(unique("cluster"), 60)
        post_readings(api, readings)
        wait_until_served(api, readings, timeout=90)
        assert api.get(f"/cpu-info/{unique('nobody')}").status_code == 404

    info = cluster_project.exec("redis", "redis-cli", "cluster", "info")
    assert "cluster_state:ok" in info
    # Every master holds part of the view: each partition's keys are in one slot, and
    # the partitions' slots are spread over the masters.
    holding = 0
    for node in CLUSTER_NODES:
        role = cluster_project.exec(node, "redis-cli", "role").split()[0]
        keys = int(cluster_project.exec(node, "redis-cli", "dbsize").strip())
        if role == "master":
            holding += keys > 0
    assert holding == 3
