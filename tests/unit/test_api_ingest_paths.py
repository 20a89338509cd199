"""The ingest POSTs are answered by one set of rules wherever they arrive: under a root
path, and at their FastAPI routes when those are reached without the ingest
middleware in front of them. No broker is needed: the app is given a publisher that
records what it is asked to publish."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from producer_api.app import ProducerApi, create_app
from producer_api.publisher import FailureCause
from tests.fakes import InMemoryPublisher
from tests.helpers import READING, unreachable_settings

pytestmark = pytest.mark.anyio

JSON = {"content-type": "application/json"}


@asynccontextmanager
async def client_of(
    publisher: InMemoryPublisher, *, root_path: str = "", without_ingest_middleware: bool = False
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        unreachable_settings(api_max_batch_items=2), publisher_factory=lambda _: publisher
    )
    if without_ingest_middleware:
        assert isinstance(app, ProducerApi)
        # FastAPI's own stack alone, which routes the POSTs to the documented routes.
        app.middleware_stack = FastAPI.build_middleware_stack(app)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app, root_path=root_path)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield client


async def answers(client: httpx.AsyncClient, prefix: str = "") -> dict[str, httpx.Response]:
    return {
        "reading": await client.post(f"{prefix}/cpu-info/web-01", json=READING),
        "batch": await client.post(
            f"{prefix}/cpu-info", json=[{"machine_id": "db-01", "reading": READING}]
        ),
        "duplicate key": await client.post(
            f"{prefix}/cpu-info/web-01",
            content=b'{"total": 1, "total": 2}',
            headers=JSON,
        ),
        "bad machine id": await client.post(f"{prefix}/cpu-info/-x", json={"total": -1}),
        "too many": await client.post(
            f"{prefix}/cpu-info", json=[{"machine_id": "a", "reading": READING}] * 3
        ),
        "not json": await client.post(f"{prefix}/cpu-info/web-01", content=b"{}", headers={}),
    }


def summary(answers: dict[str, httpx.Response]) -> dict[str, tuple[int, object]]:
    return {name: (answer.status_code, answer.json()) for name, answer in answers.items()}


EXPECTED_STATUSES = {
    "reading": 200,
    "batch": 200,
    "duplicate key": 400,
    "bad machine id": 422,
    "too many": 413,
    "not json": 415,
}


async def test_the_ingest_posts_are_served_under_a_root_path() -> None:
    publisher = InMemoryPublisher()
    async with client_of(publisher, root_path="/telemetry") as client:
        served = await answers(client, prefix="/telemetry")
        # The root path is not part of the route: without it, nothing matches.
        elsewhere = await client.post("/telemetry/telemetry/cpu-info/web-01", json=READING)
    assert {name: answer.status_code for name, answer in served.items()} == EXPECTED_STATUSES
    assert served["reading"].json() == {"web-01": READING}
    assert served["reading"].headers["X-Consistency-Token"] == "0:0"
    assert [record.key for record in publisher.records] == [b"web-01", b"db-01"]
    assert elsewhere.status_code == 404


async def test_the_routes_when_reached_answer_as_the_ingest_endpoints_do() -> None:
    in_front, at_routes = InMemoryPublisher(), InMemoryPublisher()
    async with client_of(in_front) as client:
        expected = await answers(client)
    async with client_of(at_routes, without_ingest_middleware=True) as client:
        reached = await answers(client)
    assert {name: answer.status_code for name, answer in reached.items()} == EXPECTED_STATUSES
    assert summary(reached) == summary(expected)
    for name, answer in reached.items():
        assert answer.content == expected[name].content, name
        headers = {k: v for k, v in answer.headers.items() if k != "x-request-id"}
        assert headers == {
            k: v for k, v in expected[name].headers.items() if k != "x-request-id"
        }, name
    assert [r.key for r in at_routes.records] == [r.key for r in in_front.records]


async def test_an_invalid_machine_id_and_body_are_named_together() -> None:
    async with client_of(InMemoryPublisher()) as client:
        response = await client.post("/cpu-info/-x", json={**READING, "free": -5})
    assert response.status_code == 422
    locations = [error["loc"] for error in json.loads(response.content)["detail"]]
    assert locations == [["path", "machine_id"], ["body", "free"]]


@pytest.mark.parametrize("cause", list(FailureCause))
async def test_a_reading_and_a_batch_kafka_did_not_acknowledge_are_503_to_retry(
    cause: FailureCause,
) -> None:
    publisher = InMemoryPublisher()
    publisher.fail_with(cause)
    async with client_of(publisher) as client:
        single = await client.post("/cpu-info/web-01", json=READING)
        batch = await client.post("/cpu-info", json=[{"machine_id": "db-01", "reading": READING}])
    assert single.status_code == 503
    assert "Kafka did not acknowledge the reading" in single.json()["detail"]
    assert int(single.headers["Retry-After"]) > 0
    assert batch.status_code == 503
    assert "Kafka acknowledged no reading of the batch" in batch.json()["detail"]
    assert int(batch.headers["Retry-After"]) > 0
    assert publisher.published == []
