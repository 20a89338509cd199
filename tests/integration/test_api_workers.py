"""The API served by two worker processes (API_WORKERS=2), as `python -m producer_api`
runs it: both publish, and SIGTERM to the parent stops both without losing a reading."""

from __future__ import annotations

import asyncio
import os
import re
import signal
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from devstack import services
from devstack.ports import free_port
from devstack.stack import LocalStack
from telemetry_common.contract import decode_record
from tests.helpers import READING, TOPIC_PARTITIONS, consume_all, end_offsets, unique, wait_until

pytestmark = pytest.mark.anyio

REQUESTS = 300
SIGTERM_AFTER = 100
PRODUCER_CLOSED = re.compile(r"Kafka producer closed: (\d+) records acknowledged, (\d+) not")


def worker_pids(parent: int) -> list[int]:
    """The worker processes uvicorn started (not multiprocessing's resource tracker)."""
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    return [
        int(pid) for pid in children if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]


async def post_all(
    url: str, machine_ids: list[str], after: int, then: Callable[[], None]
) -> set[str]:
    """POST one reading per machine id, each on a new connection (so that the kernel
    spreads them over the workers); call `then` once `after` of them were answered 200.
    Return the machine ids answered 200."""
    acknowledged: set[str] = set()
    limits = httpx.Limits(max_connections=50, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:

        async def post(machine_id: str) -> None:
            try:
                response = await client.post(f"/cpu-info/{machine_id}", json=READING)
            except httpx.TransportError:
                return  # refused or cut by the stopping server: not acknowledged
            if response.status_code == 200:
                acknowledged.add(machine_id)
                if len(acknowledged) == after:
                    then()

        await asyncio.gather(*(post(machine_id) for machine_id in machine_ids))
    return acknowledged


async def test_two_workers_publish_and_stop_on_sigterm_losing_nothing(
    stack: LocalStack, topic: str, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **stack.api_env(),
        "KAFKA_TOPIC": topic,
        "API_PORT": str(port),
        "API_WORKERS": "2",
        # Each answer waits for a linger: requests are still in flight at the SIGTERM.
        "KAFKA_LINGER_MS": "200",
        "LOG_LEVEL": "INFO",
    }
    api = services.producer_api(tmp_path, env)
    api.start()
    try:
        parent = api.pid
        assert parent is not None
        assert len(worker_pids(parent)) == 2

        acknowledged = await post_all(
            f"http://{services.HOST}:{port}",
            [unique("m") for _ in range(REQUESTS)],
            after=SIGTERM_AFTER,
            then=lambda: os.kill(parent, signal.SIGTERM),
        )
        wait_until(lambda: api.exit_code() is not None, 60, "the API to exit")
        assert api.exit_code() == 0
    finally:
        api.stop()

    assert len(acknowledged) >= SIGTERM_AFTER
    published = sum(end_offsets(stack.bootstrap_servers, topic, TOPIC_PARTITIONS).values())
    records = consume_all(stack.bootstrap_servers, topic, published)
    in_kafka = {decode_record(m.key(), m.value()).machine_id for m in records}
    assert acknowledged <= in_kafka, "a reading answered 200 is not in Kafka"

    # Each worker flushed its own producer on the way out, and both had published.
    log = api.log_path.read_text()
    closed = [(int(ok), int(failed)) for ok, failed in PRODUCER_CLOSED.findall(log)]
    assert len(closed) == 2, log
    assert all(ok > 0 and failed == 0 for ok, failed in closed), closed
    assert sum(ok for ok, _ in closed) == published
