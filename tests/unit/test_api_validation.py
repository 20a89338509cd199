"""Validation happens before anything is published, so no broker is needed here."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.helpers import READING

pytestmark = pytest.mark.anyio


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


JSON = {"content-type": "application/json"}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "empty"),
        (b"total=1", "not JSON"),
        (b'{"total": 1, "total": 2}', "duplicate key"),
        (b'{"total": NaN}', "NaN"),
        (b'{"total": -Infinity}', "-Infinity"),
        (b'{"total": 1e400}', "out of the range"),
        (b'{"total": ' + b"9" * 5000 + b"}", "more than 20 digits"),
        (b'{"total": "\xff"}', "not UTF-8"),
        (b'{"total": "\\ud800"}', "unpaired surrogate"),
        (b'{"\\udfff": 1}', "unpaired surrogate"),
        (b"[" * 100 + b"]" * 100, "nested deeper"),
        (b"[" * 5000, "nested deeper"),
        (b'\xef\xbb\xbf{"total": 1}', "BOM"),
    ],
)
async def test_a_body_that_is_not_strict_json_is_refused_with_400(
    client: httpx.AsyncClient, body: bytes, reason: str
) -> None:
    response = await client.post("/cpu-info/m1", content=body, headers=JSON)
    assert response.status_code == 400
    assert reason in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "location"),
    [
        (b"[1, 2]", ["body"]),
        (b"null", ["body"]),
        (b'"reading"', ["body"]),
        (b'{"total": ' + b"9" * 20 + b"}", ["body", "total"]),
        # A control character is valid JSON in a key; the 422 echoes it back escaped.
        (b'{"total": 1.5e300, "\\u0000": 1}', ["body", "\x00"]),
    ],
)
async def test_well_formed_json_of_the_wrong_shape_is_refused_with_422(
    client: httpx.AsyncClient, body: bytes, location: list[str]
) -> None:
    response = await client.post("/cpu-info/m1", content=body, headers=JSON)
    assert response.status_code == 422
    assert location in error_locations(response.json())


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"content-type": "text/plain"},
        {"content-type": "application/x-www-form-urlencoded"},
        {"content-type": "application/json; charset=latin-1"},
        {"content-type": "not a media type"},
        {**JSON, "content-encoding": "gzip"},
    ],
)
async def test_a_body_that_is_not_json_in_utf8_is_refused_with_415(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.post("/cpu-info/m1", content=b"\xff\xfe{", headers=headers)
    assert response.status_code == 415
    assert response.json()["detail"]


async def test_json_with_a_utf8_charset_is_accepted(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/cpu-info/m1",
        content=b'{"total": 1}',
        headers={"content-type": "Application/JSON; charset=UTF-8"},
    )
    assert response.status_code == 422  # read, then refused by the model: fields missing


@pytest.mark.parametrize("method", ["PUT", "PATCH", "HEAD"])
async def test_a_405_lists_every_method_served_on_the_path(
    client: httpx.AsyncClient, method: str
) -> None:
    response = await client.request(method, "/cpu-info/m1")
    assert response.status_code == 405
    assert response.headers["allow"] == "DELETE, GET, OPTIONS, POST"


@pytest.mark.parametrize(
    ("path", "allow"),
    [("/cpu-info/m1", "DELETE, GET, OPTIONS, POST"), ("/readyz", "GET, OPTIONS")],
)
async def test_options_answers_204_with_the_methods_served(
    client: httpx.AsyncClient, path: str, allow: str
) -> None:
    response = await client.options(path)
    assert response.status_code == 204
    assert response.headers["allow"] == allow
    assert (await client.options("/no-such-path")).status_code == 404


@pytest.mark.parametrize(
    "machine_id",
    [
        "a%20b",
        "-x",
        "a" * 65,
        "a" * 4000,
        "a:b",
        "a%00b",
        "a%0Ab",
        "%C3%A9t%C3%A9",
        "%F0%9F%92%A5",
        "%ED%A0%80",
        "%FF",
    ],
)
async def test_an_unsafe_machine_id_is_refused(client: httpx.AsyncClient, machine_id: str) -> None:
    response = await client.post(f"/cpu-info/{machine_id}", json=READING)
    assert response.status_code == 422
    assert ["path", "machine_id"] in error_locations(response.json())
    assert (await client.get(f"/cpu-info/{machine_id}")).status_code == 422


@pytest.mark.parametrize("machine_id", ["a%2Fb", "a%2F..%2F..%2Fdocs"])
async def test_an_encoded_slash_in_the_machine_id_matches_no_route(
    client: httpx.AsyncClient, machine_id: str
) -> None:
    response = await client.post(f"/cpu-info/{machine_id}", json=READING)
    assert response.status_code == 404


async def test_swagger_documents_the_api_with_an_example(client: httpx.AsyncClient) -> None:
    assert (await client.get("/docs")).status_code == 200
    spec = (await client.get("/openapi.json")).json()
    post = spec["paths"]["/cpu-info/{machine_id}"]["post"]
    assert set(post["responses"]) >= {"200", "422", "503"}
    schema = spec["components"]["schemas"]["MemoryReading"]
    assert schema["examples"][0]["total"] == 16_318_064
    assert set(schema["required"]) == set(READING)


@pytest.mark.parametrize(
    "body",
    [
        # Valid readings but for one key given twice, with the same or another value.
        b'{"total": 16318064, "used": 5204372, "free": 6104220, "shared": 412908, '
        b'"buff_cache": 5009472, "available": 10352120, "used": 5204372}',
        b'{"total": 16318064, "total": 16318064, "used": 5204372, "free": 6104220, '
        b'"shared": 412908, "buff_cache": 5009472, "available": 10352120}',
    ],
)
async def test_a_valid_reading_with_a_key_given_twice_is_refused_with_400(
    client: httpx.AsyncClient, body: bytes
) -> None:
    response = await client.post("/cpu-info/m1", content=body, headers=JSON)
    assert response.status_code == 400
    assert "duplicate key" in response.json()["detail"]
