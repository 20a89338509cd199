"""Several workers in one consumer group share the partitions, as `--scale` does."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import httpx
from confluent_kafka.admin import AdminClient

from devstack import services
from devstack.ports import free_port
from devstack.processes import ManagedProcess
from devstack.stack import LocalStack
from tests.helpers import reading, unique, wait_until

WORKERS = 3
PARTITIONS = 6


def assignments(bootstrap: str, group: str) -> dict[str, list[int]]:
    """Each member's assigned partitions, by member id."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    description = admin.describe_consumer_groups([group])[group].result(timeout=10)
    return {
        member.member_id: sorted(tp.partition for tp in member.assignment.topic_partitions)
        for member in description.members
    }


def test_three_workers_split_the_partitions_and_store_everything(
    stack: LocalStack, tmp_path: Path
) -> None:
    topic, group, api_port = unique("readings"), unique("writers"), free_port()
    services.create_topic(stack.bootstrap_servers, topic, PARTITIONS)
    overrides = {"KAFKA_TOPIC": topic, "KAFKA_CONSUMER_GROUP": group, "API_PORT": str(api_port)}
    processes: list[ManagedProcess] = [
        services.producer_api(tmp_path, {**stack.api_env(), **overrides})
    ]
    processes += [
        services.consumer_worker(tmp_path, {**stack.worker_env(), **overrides}, name=f"worker-{n}")
        for n in range(WORKERS)
    ]
    with ExitStack() as running:
        for process in processes:
            process.start()
            running.callback(process.stop)

        def balanced() -> dict[str, list[int]] | None:
            current = assignments(stack.bootstrap_servers, group)
            counts = sorted(len(partitions) for partitions in current.values())
            return current if counts == [PARTITIONS // WORKERS] * WORKERS else None

        split = wait_until(balanced, 60, "the partitions spread over three workers", interval=0.5)
        assert sorted(p for partitions in split.values() for p in partitions) == list(
            range(PARTITIONS)
        )

        machines = [f"scaled-{n}" for n in range(60)]
        with httpx.Client(base_url=f"http://127.0.0.1:{api_port}", timeout=10) as client:
            for machine_id in machines:
                assert (
                    client.post(f"/cpu-info/{machine_id}", json=reading(used=7)).status_code == 200
                )

            def all_stored() -> bool:
                return all(client.get(f"/cpu-info/{m}").status_code == 200 for m in machines)

            wait_until(all_stored, 60, "every reading stored", interval=0.5)
