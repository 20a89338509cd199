"""The body limit on a real server: 413 before a large body is read, memory stays flat.

The API runs as its own uvicorn process (as in production), so that bodies travel
over real sockets, with and without Content-Length, and the server's memory can be
measured on its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from devstack import services
from devstack.ports import free_port
from devstack.processes import ManagedProcess
from devstack.stack import LocalStack
from producer_api.settings import ProducerSettings
from tests.helpers import READING

pytestmark = pytest.mark.anyio

LIMIT = ProducerSettings.model_fields["api_max_body_bytes"].default
CHUNK = b"x" * 65_536
LARGE_BODY_BYTES = 50 * 1_048_576
CONCURRENT_BODIES = 4
# Growth of the server's peak memory that the four bodies may cause: a few buffers of
# socket reads, far below one body.
MAX_PEAK_GROWTH_BYTES = 32 * 1_048_576


@pytest.fixture
def api(stack: LocalStack, topic: str, tmp_path: Path) -> Iterator[tuple[ManagedProcess, str]]:
    port = free_port()
    process = services.producer_api(
        tmp_path,
        {
            **stack.api_env(),
            "KAFKA_TOPIC": topic,
            "API_PORT": str(port),
            "LOG_LEVEL": "WARNING",
            # One process: the one serving the requests is the one whose memory is read.
            "API_WORKERS": "1",
        },
    )
    process.start()
    try:
        yield process, f"http://{services.HOST}:{port}"
    finally:
        process.stop()


async def chunks(total: int) -> AsyncIterator[bytes]:
    """A body without Content-Length: httpx sends it with chunked transfer encoding."""
    for _ in range(total // len(CHUNK)):
        yield CHUNK


def memory_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for process {pid}")


def reset_peak_memory(pid: int) -> None:
    # Writing 5 resets the peak resident set size (VmHWM) to the current one.
    Path(f"/proc/{pid}/clear_refs").write_text("5")


async def test_a_body_whose_content_length_is_over_the_limit_is_refused_unread(
    api: tuple[ManagedProcess, str],
) -> None:
    _, url = api
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        response = await client.post(
            "/cpu-info/m1",
            content=b"x" * (LIMIT + 1),
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 413
        # A body at the limit is read and judged on its content.
        at_limit = await client.post(
            "/cpu-info/m1",
            content=b" " * (LIMIT - 2) + b"{}",
            headers={"content-type": "application/json"},
        )
        assert at_limit.status_code == 422
        assert (await client.post("/cpu-info/m1", json=READING)).status_code == 200


async def test_a_streamed_body_is_refused_once_it_passes_the_limit(
    api: tuple[ManagedProcess, str],
) -> None:
    _, url = api
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        response = await client.post(
            "/cpu-info/m1",
            content=chunks(LIMIT * 4),
            headers={"content-type": "application/json"},
        )
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert response.json() == {"detail": "Content Too Large"}


async def test_several_large_bodies_at_once_leave_memory_flat(
    api: tuple[ManagedProcess, str],
) -> None:
    process, url = api
    assert process.pid is not None
    before_kib = memory_kib(process.pid, "VmRSS")
    reset_peak_memory(process.pid)

    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        headers = {"content-type": "application/json"}
        sized = [
            client.post("/cpu-info/m1", content=b"x" * LARGE_BODY_BYTES, headers=headers)
            for _ in range(CONCURRENT_BODIES // 2)
        ]
        streamed = [
            client.post("/cpu-info/m1", content=chunks(LARGE_BODY_BYTES), headers=headers)
            for _ in range(CONCURRENT_BODIES - len(sized))
        ]
        responses = await asyncio.gather(*sized, *streamed)

    assert [r.status_code for r in responses] == [413] * CONCURRENT_BODIES
    peak_growth = (memory_kib(process.pid, "VmHWM") - before_kib) * 1024
    assert peak_growth < MAX_PEAK_GROWTH_BYTES, (
        f"the server's peak memory grew by {peak_growth / 1_048_576:.1f} MiB"
    )
