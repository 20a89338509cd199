"""The API and the worker as separate processes on the real stack."""

from __future__ import annotations

import asyncio
import http.client
import select
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from devstack.processes import ManagedProcess
from devstack.stack import LocalStack
from tests.helpers import (
    READING,
    TOPIC_PARTITIONS,
    api_and_worker,
    committed_offsets,
    end_offsets,
    reading,
    unique,
    wait_until,
)


@dataclass
class System:
    api_url: str
    worker: ManagedProcess
    topic: str
    group: str


@pytest.fixture
def system(stack: LocalStack, topic: str, tmp_path: Path) -> Iterator[System]:
    group = unique("writers")
    env = {"KAFKA_TOPIC": topic, "KAFKA_CONSUMER_GROUP": group}
    with api_and_worker(stack, tmp_path, env) as (api_url, worker):
        yield System(api_url, worker, topic, group)


def latest(client: httpx.Client, machine_id: str) -> dict[str, int] | None:
    response = client.get(f"/cpu-info/{machine_id}")
    if response.status_code == 404:
        return None
    response.raise_for_status()
    body: dict[str, dict[str, int]] = response.json()
    return body[machine_id]


def test_post_then_get_returns_the_reading(system: System) -> None:
    with httpx.Client(base_url=system.api_url, timeout=10) as client:
        posted = client.post("/cpu-info/web-01", json=READING)
        assert posted.status_code == 200
        assert posted.json() == {"web-01": READING}

        wait_until(lambda: latest(client, "web-01") == READING, 30, "the reading in Redis")
        got = client.get("/cpu-info/web-01")
    assert got.json() == {"web-01": READING}
    assert got.headers["X-Kafka-Offset"] == posted.headers["X-Kafka-Offset"]


def test_a_hundred_machines_end_with_their_last_reading(system: System) -> None:
    machines = [f"host-{n:03d}" for n in range(100)]
    readings_per_machine = 10

    async def post_all() -> list[int]:
        limits = httpx.Limits(max_connections=50)
        async with httpx.AsyncClient(base_url=system.api_url, timeout=30, limits=limits) as client:

            async def report(machine_id: str) -> list[int]:
                # One machine reports its readings one after another, as a real agent does.
                codes = []
                for used in range(1, readings_per_machine + 1):
                    response = await client.post(f"/cpu-info/{machine_id}", json=reading(used=used))
                    codes.append(response.status_code)
                return codes

            results = await asyncio.gather(*(report(m) for m in machines))
        return [code for codes in results for code in codes]

    codes = asyncio.run(post_all())
    assert codes == [200] * (len(machines) * readings_per_machine)

    expected = reading(used=readings_per_machine)
    with httpx.Client(base_url=system.api_url, timeout=10) as client:
        wait_until(
            lambda: all(latest(client, m) == expected for m in machines),
            60,
            "every machine's last reading",
            interval=0.5,
        )


def test_sigterm_finishes_commits_and_exits_zero(stack: LocalStack, system: System) -> None:
    with httpx.Client(base_url=system.api_url, timeout=10) as client:
        for used in range(1, 21):
            assert client.post(f"/cpu-info/m{used}", json=reading(used=used)).status_code == 200
        wait_until(
            lambda: all(latest(client, f"m{used}") is not None for used in range(1, 21)),
            30,
            "every reading stored",
        )

    system.worker.stop()  # SIGTERM; raises unless the process exits 0

    ends = end_offsets(stack.bootstrap_servers, system.topic, TOPIC_PARTITIONS)
    committed = committed_offsets(
        stack.bootstrap_servers, system.group, system.topic, TOPIC_PARTITIONS
    )
    assert {p: committed[p] for p, end in ends.items() if end > 0} == {
        p: end for p, end in ends.items() if end > 0
    }


def test_an_idle_connection_outlives_a_client_s_keep_alive(system: System) -> None:
    # httpx, like Node's agent, reuses an idle connection for up to 5 s. A server that
    # closed it at the same moment would answer the next request with a reset.
    client_keep_alive_seconds = 5.0
    url = httpx.URL(system.api_url)
    connection = http.client.HTTPConnection(url.host, url.port, timeout=10)
    try:
        connection.request("GET", "/healthz")
        first = connection.getresponse()
        first.read()
        assert first.status == 200
        # Wait past the client's keep-alive for the server to close (readable at EOF).
        readable, _, _ = select.select([connection.sock], [], [], client_keep_alive_seconds + 1)
        assert readable == [], "the server closed an idle connection a client may reuse"
        connection.request("GET", "/healthz")
        assert connection.getresponse().status == 200
    finally:
        connection.close()
