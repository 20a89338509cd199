"""`GET /metrics` under real traffic: the counters and histograms move with what the API
did, whichever path served the request and whichever process answered the scrape."""

from __future__ import annotations

import asyncio
import os
import re
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from devstack import services
from devstack.ports import free_port
from devstack.stack import LocalStack
from producer_api.metrics import MULTIPROCESS_DIR_VARIABLE
from producer_api.settings import ProducerSettings
from tests.helpers import (
    READING,
    api_client,
    unique,
    unreachable_settings,
    wait_until,
    wait_until_async,
)
from tests.integration.test_api_workers import worker_pids

pytestmark = pytest.mark.anyio

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

READING_ROUTE = "/cpu-info/{machine_id}"
BATCH_ROUTE = "/cpu-info"
PRODUCER_CLOSED = re.compile(r"Kafka producer closed: (\d+) records acknowledged, (\d+) not")


def parse(exposition: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def requests(samples: Samples, method: str, route: str, status: int) -> float:
    return value(
        samples, "memtel_api_requests_total", method=method, route=route, status=str(status)
    )


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    return parse(response.text)


async def scraped_when(
    client: httpx.AsyncClient, condition: Callable[[Samples], bool], what: str
) -> Samples:
    """The first scrape that meets `condition` (the gauges are sampled, not live)."""

    async def scraped() -> Samples | None:
        samples = await scrape(client)
        return samples if condition(samples) else None

    return await wait_until_async(scraped, 10, what)


def batch(count: int) -> list[dict[str, object]]:
    return [{"machine_id": unique("m"), "reading": READING} for _ in range(count)]


async def streamed(body: bytes) -> AsyncIterator[bytes]:
    """A body without Content-Length (chunked)."""
    yield body


async def test_requests_and_publishes_are_counted_whatever_the_answer(
    producer_settings: ProducerSettings,
) -> None:
    async with api_client(producer_settings) as client:
        before = await scrape(client)
        # Published: a reading, a batch, a streamed reading (no Content-Length)...
        assert (await client.post(f"/cpu-info/{unique('m')}", json=READING)).status_code == 200
        assert (await client.post("/cpu-info", json=batch(3))).status_code == 200
        body = httpx.Request("POST", "/", json=READING).content
        streamed_post = await client.post(
            f"/cpu-info/{unique('m')}",
            content=streamed(body),
            headers={"Content-Type": "application/json"},
        )
        assert streamed_post.status_code == 200
        # ...and refused or answered elsewhere: these.
        assert (await client.post("/cpu-info/m1", json={"total": 1})).status_code == 422
        assert (await client.get(f"/cpu-info/{unique('never-seen')}")).status_code == 404
        assert (await client.get("/no/such/path")).status_code == 404
        after = await scrape(client)

    def rose(method: str, route: str, status: int) -> float:
        return requests(after, method, route, status) - requests(before, method, route, status)

    assert rose("POST", READING_ROUTE, 200) == 2
    assert rose("POST", BATCH_ROUTE, 200) == 1
    assert rose("POST", READING_ROUTE, 422) == 1
    assert rose("GET", READING_ROUTE, 404) == 1
    # A path no route serves is one series, whatever the path: no raw paths as labels.
    assert rose("GET", "unmatched", 404) == 1
    assert not any("/no/such/path" in dict(labels).get("route", "") for _, labels in after)

    def publishes(kind: str, state: Samples) -> float:
        return value(state, "memtel_api_publish_duration_seconds_count", kind=kind)

    assert publishes("reading", after) - publishes("reading", before) == 2
    assert publishes("batch", after) - publishes("batch", before) == 1
    assert value(after, "memtel_api_publish_duration_seconds_sum", kind="reading") > 0
    # Every cause is shown from the start, at zero while nothing failed.
    for cause in ("timeout", "broker_unavailable", "queue_full", "fatal", "not_sent", "refused"):
        assert value(after, "memtel_api_publish_failures_total", cause=cause) == 0


async def test_a_failed_publish_is_counted_with_its_cause() -> None:
    # A broker that never answers: the records time out after the delivery timeout.
    settings = unreachable_settings(kafka_delivery_timeout_ms=1000)
    async with api_client(settings) as client:
        posts = asyncio.gather(
            client.post("/cpu-info/m1", json=READING),
            client.post("/cpu-info", json=batch(4)),
        )
        # While they wait for Kafka, the gauges show them.
        waiting = await scraped_when(
            client,
            lambda samples: value(samples, "memtel_api_publishes_in_flight") == 2,
            "two publishes in flight",
        )
        assert value(waiting, "memtel_api_producer_queue_records") == 5
        single, batched = await posts
        assert (single.status_code, batched.status_code) == (503, 503)
        samples = await scraped_when(
            client,
            lambda samples: value(samples, "memtel_api_publishes_in_flight") == 0,
            "no publish in flight",
        )
    assert value(samples, "memtel_api_publish_failures_total", cause="timeout") == 5
    assert requests(samples, "POST", READING_ROUTE, 503) == 1
    assert requests(samples, "POST", BATCH_ROUTE, 503) == 1
    # Only publishes acknowledged in full are timed.
    assert value(samples, "memtel_api_publish_duration_seconds_count", kind="reading") == 0


async def test_a_full_producer_queue_is_counted_as_such(
    producer_settings: ProducerSettings,
) -> None:
    # A local queue of 3 records: the 4th of a batch of 5 cannot be queued, the 5th is
    # then not sent (a machine's later reading never goes ahead of an earlier one).
    settings = producer_settings.model_copy(
        update={"kafka_config": {"queue.buffering.max.messages": "3"}}
    )
    async with api_client(settings) as client:
        answer = await client.post("/cpu-info", json=batch(5))
        assert answer.status_code == 207
        samples = await scrape(client)
    assert value(samples, "memtel_api_publish_failures_total", cause="queue_full") == 1
    assert value(samples, "memtel_api_publish_failures_total", cause="not_sent") == 1
    assert requests(samples, "POST", BATCH_ROUTE, 207) == 1


REQUESTS = 120


def metrics_directory_of(pid: int) -> Path:
    """The PROMETHEUS_MULTIPROC_DIR a server process was started with."""
    variables = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    prefix = f"{MULTIPROCESS_DIR_VARIABLE}=".encode()
    (value,) = [
        variable.removeprefix(prefix) for variable in variables if variable.startswith(prefix)
    ]
    return Path(value.decode())


def live_gauge_files(directory: Path, pid: int | str = "*") -> list[Path]:
    """The files of a process's gauges that count live processes only (all processes' by
    default; none once the directory is gone)."""
    return list(directory.glob(f"gauge_live*_{pid}.db"))


async def test_one_scrape_sums_every_server_process(
    stack: LocalStack, topic: str, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **stack.api_env(),
        "KAFKA_TOPIC": topic,
        "API_PORT": str(port),
        "API_WORKERS": "2",
        "LOG_LEVEL": "INFO",
    }
    api = services.producer_api(tmp_path, env)
    api.start()
    url = f"http://{services.HOST}:{port}"
    # A connection per request, many at once: the kernel hands them to both processes.
    limits = httpx.Limits(max_connections=40, max_keepalive_connections=0)
    try:
        parent = api.pid
        assert parent is not None
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
            answers = await asyncio.gather(
                *(client.post(f"/cpu-info/{unique('m')}", json=READING) for _ in range(REQUESTS))
            )
            assert {answer.status_code for answer in answers} == {200}
            # Whichever process answers a scrape, it shows every process's requests.
            for samples in await asyncio.gather(*(scrape(client) for _ in range(10))):
                assert requests(samples, "POST", READING_ROUTE, 200) == REQUESTS
                count = value(samples, "memtel_api_publish_duration_seconds_count", kind="reading")
                assert count == REQUESTS

            # A process that dies keeps its counts; its gauges stop counting (their files
            # are in the directory the parent made for the run).
            victim = worker_pids(parent)[0]
            directory = metrics_directory_of(victim)
            assert live_gauge_files(directory, victim)
            os.kill(victim, signal.SIGKILL)
            wait_until(
                lambda: not live_gauge_files(directory, victim),
                30,
                "the dead process's gauges to be removed",
            )
            wait_until(
                lambda: len(set(worker_pids(parent)) - {victim}) == 2, 60, "a replacement process"
            )
            for samples in await asyncio.gather(*(scrape(client) for _ in range(10))):
                assert requests(samples, "POST", READING_ROUTE, 200) == REQUESTS

        os.kill(parent, signal.SIGTERM)
        wait_until(lambda: api.exit_code() is not None, 60, "the API to exit")
        assert api.exit_code() == 0
    finally:
        api.stop()
    # The run's metrics directory goes with it.
    assert not live_gauge_files(directory)
    # Both processes had answered POSTs: the survivor some (it logs how many at its
    # exit), the killed one the rest; the replacement none.
    closed = sorted(int(ok) for ok, _ in PRODUCER_CLOSED.findall(api.log_path.read_text()))
    assert closed[0] == 0, closed
    assert 0 < closed[1] < REQUESTS, closed
    assert len(closed) == 2, closed
