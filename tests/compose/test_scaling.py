"""`--scale consumer-worker=3`: three members of one group share the topic's partitions."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
import pytest

from tests.compose.project import ComposeProject
from tests.compose.readings import machines, post_readings, wait_until_served
from tests.helpers import unique, wait_until

logger = logging.getLogger(__name__)

GROUP = "memtel-redis-writer"
PARTITIONS = 6


def partitions_per_member(project: ComposeProject) -> dict[str, int]:
    """The group's members and their partition counts, as Kafka's own tool reports them."""
    output = project.exec(
        "kafka",
        *("kafka-consumer-groups", "--bootstrap-server", "localhost:29092"),
        *("--describe", "--group", GROUP, "--members"),
    )
    members = {}
    for line in output.splitlines():
        columns = line.split()
        # GROUP CONSUMER-ID HOST CLIENT-ID #PARTITIONS
        if len(columns) == 5 and columns[0] == GROUP and columns[4].isdigit():
            members[columns[1]] = int(columns[4])
    return members


@pytest.fixture
def three_workers(compose_project: ComposeProject) -> Iterator[None]:
    compose_project.up("consumer-worker", scale_workers=3)
    try:
        yield
    finally:
        compose_project.up("consumer-worker", scale_workers=1)


@pytest.mark.usefixtures("three_workers")
def test_three_workers_share_the_partitions_and_readings_keep_flowing(
    compose_project: ComposeProject, api: httpx.Client
) -> None:
    assert len(compose_project.container_ids("consumer-worker")) == 3

    def shared_by_three() -> dict[str, int] | None:
        members = partitions_per_member(compose_project)
        logger.info("group %s: %s", GROUP, sorted(members.values()))
        spread = len(members) == 3 and all(members.values())
        return members if spread and sum(members.values()) == PARTITIONS else None

    wait_until(shared_by_three, 90, "three members sharing the partitions", interval=1.0)

    readings = machines(unique("scaled"), 60)
    post_readings(api, readings)
    wait_until_served(api, readings, timeout=60)
