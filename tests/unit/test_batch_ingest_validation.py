"""`POST /cpu-info`: a batch is checked item by item before anything is published.

Every answer here comes before the publisher is used, so no broker is needed: Kafka's
address points at a closed port, and the `client` publishes to memory.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from producer_api.schemas import LARGEST_ITEM_BYTES
from producer_api.settings import ProducerSettings
from tests.helpers import READING, api_client, reading, unreachable_settings

pytestmark = pytest.mark.anyio

MAX_ITEMS = 5
JSON = {"content-type": "application/json"}


@pytest.fixture
def api_settings() -> ProducerSettings:
    return unreachable_settings(api_max_batch_items=MAX_ITEMS)


def item(machine_id: str = "web-01", **reading_changes: Any) -> dict[str, Any]:
    return {"machine_id": machine_id, "reading": {**READING, **reading_changes}}


def error_locations(response: httpx.Response) -> list[list[str | int]]:
    return [error["loc"] for error in response.json()["detail"]]


async def test_every_invalid_item_is_named_by_its_index_and_field(
    client: httpx.AsyncClient,
) -> None:
    batch = [
        item(),
        item(free=-1),  # 1
        item(),
        item(used=True),  # 3: a bool is not an integer
        item("bad id"),  # 4
    ]
    response = await client.post("/cpu-info", json=batch)
    assert response.status_code == 422
    assert error_locations(response) == [
        ["body", 1, "reading", "free"],
        ["body", 3, "reading", "used"],
        ["body", 4, "machine_id"],
    ]


@pytest.mark.parametrize(
    ("bad_item", "location"),
    [
        ({"machine_id": "web-01", "reading": {**READING, "free": 1.0}}, ["reading", "free"]),
        ({"machine_id": "web-01", "reading": {**READING, "free": "12"}}, ["reading", "free"]),
        ({"machine_id": "web-01", "reading": {**READING, "swap": 0}}, ["reading", "swap"]),
        ({"machine_id": "web-01", "reading": reading(used=READING["total"] + 1)}, ["reading"]),
        ({"machine_id": "web-01"}, ["reading"]),
        ({"machine_id": 7, "reading": READING}, ["machine_id"]),
        ({"machine_id": "a" * 65, "reading": READING}, ["machine_id"]),
        ({"machine_id": "-x", "reading": READING}, ["machine_id"]),
        ({"machine_id": "a\nb", "reading": READING}, ["machine_id"]),
        ({"machine_id": "web-01", "reading": READING, "site": "x"}, ["site"]),
        ([1, 2], []),
    ],
)
async def test_an_item_is_held_to_the_single_endpoints_rules(
    client: httpx.AsyncClient, bad_item: Any, location: list[str]
) -> None:
    response = await client.post("/cpu-info", json=[item(), bad_item])
    assert response.status_code == 422
    assert ["body", 1, *location] in error_locations(response)


async def test_a_column_above_total_is_named_in_the_message(client: httpx.AsyncClient) -> None:
    response = await client.post("/cpu-info", json=[item(used=READING["total"] + 1)])
    assert response.status_code == 422
    assert "used" in response.json()["detail"][0]["msg"]


@pytest.mark.parametrize("body", [json.dumps(item()), "[]", '"readings"', "null"])
async def test_a_body_that_is_not_a_list_of_items_is_refused(
    client: httpx.AsyncClient, body: str
) -> None:
    response = await client.post("/cpu-info", content=body, headers=JSON)
    assert response.status_code == 422
    assert error_locations(response) == [["body"]]


async def test_a_batch_over_the_item_bound_is_413_before_its_items_are_checked(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/cpu-info", json=[{"not": "an item"}] * (MAX_ITEMS + 1))
    assert response.status_code == 413
    detail = response.json()["detail"]
    assert f"at most {MAX_ITEMS} readings" in detail
    assert "API_MAX_BATCH_ITEMS" in detail
    # At the bound, the items are checked.
    at_bound = await client.post("/cpu-info", json=[{"not": "an item"}] * MAX_ITEMS)
    assert at_bound.status_code == 422


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "empty"),
        (b'[{"machine_id": "a", "machine_id": "b", "reading": {}}]', "duplicate key"),
        (b'[{"machine_id": "a", "reading": {"total": NaN}}]', "NaN"),
        (b'[{"machine_id": "a", "reading": {"total": 1' + b"0" * 30 + b"}}]", "more than 20"),
        (b'[{"machine_id": "\\ud800", "reading": {}}]', "unpaired surrogate"),
        (b"[" * 40 + b"]" * 40, "nested deeper"),
    ],
)
async def test_a_body_that_is_not_strict_json_is_400(
    client: httpx.AsyncClient, body: bytes, reason: str
) -> None:
    response = await client.post("/cpu-info", content=body, headers=JSON)
    assert response.status_code == 400
    assert reason in response.json()["detail"]


@pytest.mark.parametrize(
    "item_json",
    [
        '{"machine_id": "web-01", "machine_id": "web-01", "reading": READING}',
        '{"machine_id": "web-01", "reading": READING, "reading": READING}',
        '{"machine_id": "web-01", "reading": READING_WITH_USED_TWICE}',
    ],
)
async def test_a_valid_batch_with_a_key_given_twice_is_refused_with_400(
    client: httpx.AsyncClient, item_json: str
) -> None:
    reading_json = json.dumps(READING)
    used_twice = reading_json[:-1] + f', "used": {READING["used"]}}}'
    twice = item_json.replace("READING_WITH_USED_TWICE", used_twice)
    twice = twice.replace("READING", reading_json)
    body = f"[{json.dumps(item('web-02'))}, {twice}]"
    response = await client.post("/cpu-info", content=body, headers=JSON)
    assert response.status_code == 400
    assert "duplicate key" in response.json()["detail"]


async def test_a_body_that_is_not_json_is_415(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/cpu-info", content=json.dumps([item()]), headers={"content-type": "text/plain"}
    )
    assert response.status_code == 415


async def test_only_post_and_the_fleet_listing_are_served_on_the_batch_path(
    client: httpx.AsyncClient,
) -> None:
    response = await client.put("/cpu-info")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, OPTIONS, POST"


async def test_a_full_batch_of_the_largest_readings_fits_the_default_body_limit() -> None:
    settings = unreachable_settings()
    largest = {
        "machine_id": "a" * 64,
        "reading": dict.fromkeys(READING, 2**63 - 1),
    }
    batch = [largest] * (settings.api_max_batch_items - 1) + [item(free=-1)]
    body = json.dumps(batch).encode()  # with json's widest separators
    assert len(body) <= settings.api_max_body_bytes
    async with api_client(settings) as test_client:
        response = await test_client.post("/cpu-info", content=body, headers=JSON)
    # Read whole and checked: the last item is the one refused, not the body's size.
    assert response.status_code == 422
    last = settings.api_max_batch_items - 1
    assert error_locations(response) == [["body", last, "reading", "free"]]


def test_the_body_limit_must_hold_a_full_batch() -> None:
    with pytest.raises(ValidationError, match="API_MAX_BODY_BYTES"):
        ProducerSettings(_env_file=None, api_max_batch_items=10_000)
    needed = 10_000 * LARGEST_ITEM_BYTES
    settings = ProducerSettings(
        _env_file=None, api_max_batch_items=10_000, api_max_body_bytes=needed
    )
    assert settings.api_max_batch_items == 10_000


async def test_swagger_documents_the_batch_endpoint(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    post = spec["paths"]["/cpu-info"]["post"]
    assert set(post["responses"]) >= {"200", "207", "400", "413", "415", "422", "503"}
    body = post["requestBody"]["content"]["application/json"]["schema"]
    assert body["items"] == {"$ref": "#/components/schemas/MachineReading"}
    assert body["examples"][0][0]["reading"]["total"] == READING["total"]
    answer = post["responses"]["207"]["content"]["application/json"]
    assert answer["schema"] == {"$ref": "#/components/schemas/BatchAnswer"}
    assert answer["example"]["items"][-1]["status"] == "failed"
    invalid = post["responses"]["422"]["content"]["application/json"]["schema"]["$ref"]
    assert invalid.rsplit("/", 1)[1] in spec["components"]["schemas"]
