"""Validation happens before anything is published, so no broker is needed here."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from producer_api.settings import ProducerSettings
from tests.helpers import READING, api_client

pytestmark = pytest.mark.anyio


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    # Nothing listens on these ports; no request in this module reaches them.
    settings = ProducerSettings(
        _env_file=None,
        kafka_bootstrap_servers="127.0.0.1:9",
        redis_url="redis://127.0.0.1:9/0",
        shutdown_flush_timeout_seconds=0.1,
    )
    async with api_client(settings) as test_client:
        yield test_client


def error_locations(body: dict[str, Any]) -> list[list[str | int]]:
    return [error["loc"] for error in body["detail"]]


@pytest.mark.parametrize(
    ("payload", "location"),
    [
        ({k: v for k, v in READING.items() if k != "used"}, ["body", "used"]),
        ({**READING, "free": -5}, ["body", "free"]),
        ({**READING, "free": 1.0}, ["body", "free"]),
        ({**READING, "free": "12"}, ["body", "free"]),
        ({**READING, "free": True}, ["body", "free"]),
        ({**READING, "swap": 0}, ["body", "swap"]),
    ],
)
async def test_an_invalid_reading_is_refused_naming_the_field(
    client: httpx.AsyncClient, payload: dict[str, Any], location: list[str]
) -> None:
    response = await client.post("/cpu-info/m1", json=payload)
    assert response.status_code == 422
    assert location in error_locations(response.json())


async def test_a_column_above_total_is_refused_with_its_name(client: httpx.AsyncClient) -> None:
    response = await client.post("/cpu-info/m1", json={**READING, "used": READING["total"] + 1})
    assert response.status_code == 422
    assert "used" in response.json()["detail"][0]["msg"]


async def test_a_body_that_is_not_json_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/cpu-info/m1", content=b"total=1", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422


@pytest.mark.parametrize("machine_id", ["a%20b", "-x", "a" * 65, "a:b"])
async def test_an_unsafe_machine_id_is_refused(client: httpx.AsyncClient, machine_id: str) -> None:
    response = await client.post(f"/cpu-info/{machine_id}", json=READING)
    assert response.status_code == 422
    assert ["path", "machine_id"] in error_locations(response.json())
    assert (await client.get(f"/cpu-info/{machine_id}")).status_code == 422


async def test_swagger_documents_the_api_with_an_example(client: httpx.AsyncClient) -> None:
    assert (await client.get("/docs")).status_code == 200
    spec = (await client.get("/openapi.json")).json()
    post = spec["paths"]["/cpu-info/{machine_id}"]["post"]
    assert set(post["responses"]) >= {"200", "422", "503"}
    schema = spec["components"]["schemas"]["MemoryReading"]
    assert schema["examples"][0]["total"] == 16_318_064
    assert set(schema["required"]) == set(READING)
