"""A batch through the API and the worker, as separate processes: each machine's last
reading of the batch is what GET answers, at the position the batch's answer gave."""

from __future__ import annotations

from pathlib import Path

import httpx

from devstack.stack import LocalStack
from tests.helpers import api_and_worker, reading, unique, wait_until


def test_a_batch_is_readable_by_get_machine_by_machine(
    stack: LocalStack, topic: str, tmp_path: Path
) -> None:
    machines = [unique("m") for _ in range(4)]
    # Ten readings of each machine, interleaved; the last of each is its latest.
    batch = [
        {"machine_id": machine, "reading": reading(used=1000 * n + used)}
        for used in range(10)
        for n, machine in enumerate(machines)
    ]
    env = {"KAFKA_TOPIC": topic, "KAFKA_CONSUMER_GROUP": unique("writers")}
    with (
        api_and_worker(stack, tmp_path, env) as (api_url, _),
        httpx.Client(base_url=api_url, timeout=30) as client,
    ):
        posted = client.post("/cpu-info", json=batch)
        assert posted.status_code == 200, posted.text
        positions = posted.json()["items"]

        for machine in machines:
            last = max(i for i, item in enumerate(batch) if item["machine_id"] == machine)

            def stored(machine: str = machine, expected: int = last) -> httpx.Response | None:
                response = client.get(f"/cpu-info/{machine}")
                ok = response.status_code == 200
                return (
                    response
                    if ok and response.json() == {machine: batch[expected]["reading"]}
                    else None
                )

            response = wait_until(stored, 30, f"the latest reading of {machine} in Redis")
            assert int(response.headers["X-Kafka-Partition"]) == positions[last]["partition"]
            assert int(response.headers["X-Kafka-Offset"]) == positions[last]["offset"]
