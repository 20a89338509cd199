"""The parameters of the history, fleet and read-your-writes endpoints: cursors, times,
tokens, and the 422 answers to bad ones (given before Redis is asked anything)."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest
from starlette.datastructures import URL

from producer_api.consistency import ConsistencyToken, holds, parse_token, token_of
from producer_api.fleet import FleetCursor, NotSeenCursor
from producer_api.history import MAX_INSTANT_MS, HistoryCursor, instant_ms
from producer_api.paging import InvalidCursorError, decode_cursor, encode_cursor, next_link

pytestmark = pytest.mark.anyio


def test_a_cursor_round_trips_and_is_url_safe() -> None:
    cursor = HistoryCursor(before="1769860800123-17")
    text = encode_cursor(cursor)
    assert text.replace("-", "").replace("_", "").isalnum()
    assert decode_cursor(text, HistoryCursor) == cursor


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not base64!",
        "e30",  # {}
        encode_cursor(FleetCursor(after="web-01")),  # another listing's
        encode_cursor(NotSeenCursor(after="a", not_seen_for=1, cutoff_ms=1, last_seen_ms=1)),
        "x" * 600,
    ],
)
def test_anything_but_a_history_cursor_is_refused(text: str) -> None:
    with pytest.raises(InvalidCursorError, match="not a cursor of this listing"):
        decode_cursor(text, HistoryCursor)


@pytest.mark.parametrize(
    "forged",
    [
        {"before": "12"},
        {"before": "1-2-3"},
        {"before": f"{2**64}-0"},
        {"before": "01-2"},
        {"before": 5},
        {"before": "1-2", "extra": 1},
    ],
)
def test_a_forged_history_cursor_is_refused(forged: dict[str, Any]) -> None:
    text = base64.urlsafe_b64encode(json.dumps(forged).encode()).decode().rstrip("=")
    with pytest.raises(InvalidCursorError):
        decode_cursor(text, HistoryCursor)


def test_a_fleet_cursor_names_a_machine() -> None:
    with pytest.raises(InvalidCursorError):
        decode_cursor(encode_cursor(FleetCursor.model_construct(after="a b")), FleetCursor)


def test_the_next_link_keeps_the_query_and_replaces_the_cursor() -> None:
    url = URL("http://api/cpu-info/web-01/history?limit=5&cursor=old&since=1")
    assert next_link(url, "new") == (
        '</cpu-info/web-01/history?limit=5&since=1&cursor=new>; rel="next"'
    )


@pytest.mark.parametrize(
    ("value", "ms"),
    [
        ("0", 0),
        ("1769860800123", 1_769_860_800_123),
        ("2026-01-31T12:00:00Z", 1_769_860_800_000),
        ("2026-01-31T12:00:00.123+00:00", 1_769_860_800_123),
        ("2026-01-31T13:00:00+01:00", 1_769_860_800_000),
        (str(MAX_INSTANT_MS), MAX_INSTANT_MS),
        # Beyond the times an entry can have, a time selects as the nearest one does.
        ("1969-12-31T23:59:59Z", 0),
        ("9999-12-31T23:59:59-14:00", MAX_INSTANT_MS),
    ],
)
def test_a_time_is_epoch_milliseconds_or_iso_8601(value: str, ms: int) -> None:
    assert instant_ms(value) == ms


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        ("2026-01-31T12:00:00", "needs a UTC offset"),
        ("2026-01-31T12:00:00 01:00", "write \\+ as %2B"),
        ("yesterday", "ISO-8601"),
        ("-5", "ISO-8601"),
        (str(MAX_INSTANT_MS + 1), "at most"),
        ("9" * 40, "at most"),
        ("\uff11\uff12\uff13", "ISO-8601"),  # digits, but not ASCII ones
    ],
)
def test_a_bad_time_is_refused_saying_what_is_expected(value: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        instant_ms(value)


def test_a_token_is_partition_colon_offset() -> None:
    assert parse_token(token_of(4, 17)) == ConsistencyToken(4, 17)
    assert str(ConsistencyToken(4, 17)) == "4:17"


@pytest.mark.parametrize(
    "text", ["", "4", "4:", ":17", "4:17:1", "-1:5", "4:-5", "04:17", "4: 17", "1:" + "9" * 20]
)
def test_a_malformed_token_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="<partition>:<offset>"):
        parse_token(text)


def test_a_token_holds_once_the_view_is_past_it_or_the_machine_has_it() -> None:
    token = ConsistencyToken(4, 17)
    assert not holds(token, None, None)
    assert not holds(token, 17, None)  # the next offset to read is the token's: not yet
    assert holds(token, 18, None)


def locations(response: httpx.Response) -> list[list[str | int]]:
    assert response.status_code == 422, response.text
    return [error["loc"] for error in response.json()["detail"]]


@pytest.mark.parametrize(
    ("query", "location"),
    [
        ("limit=0", ["query", "limit"]),
        ("limit=1001", ["query", "limit"]),
        ("limit=x", ["query", "limit"]),
        ("since=soon", ["query", "since"]),
        ("until=2026-01-31T12:00:00", ["query", "until"]),
        ("cursor=nonsense", ["query", "cursor"]),
        (f"cursor={encode_cursor(FleetCursor(after='m1'))}", ["query", "cursor"]),
    ],
)
async def test_bad_history_parameters_are_422_naming_them(
    client: httpx.AsyncClient, query: str, location: list[str]
) -> None:
    assert location in locations(await client.get(f"/cpu-info/m1/history?{query}"))


@pytest.mark.parametrize(
    ("query", "location"),
    [
        ("limit=0", ["query", "limit"]),
        ("not_seen_for=-1", ["query", "not_seen_for"]),
        ("not_seen_for=1.5", ["query", "not_seen_for"]),
        ("cursor=nonsense", ["query", "cursor"]),
        (f"cursor={encode_cursor(HistoryCursor(before='1-1'))}", ["query", "cursor"]),
        # A cursor of the unfiltered listing given with a filter, and the other way round.
        (f"not_seen_for=5&cursor={encode_cursor(FleetCursor(after='m1'))}", ["query", "cursor"]),
        (
            "cursor="
            + encode_cursor(NotSeenCursor(after="m1", not_seen_for=5, cutoff_ms=1, last_seen_ms=1)),
            ["query", "cursor"],
        ),
        (
            "not_seen_for=6&cursor="
            + encode_cursor(NotSeenCursor(after="m1", not_seen_for=5, cutoff_ms=1, last_seen_ms=1)),
            ["query", "not_seen_for"],
        ),
    ],
)
async def test_bad_fleet_parameters_are_422_naming_them(
    client: httpx.AsyncClient, query: str, location: list[str]
) -> None:
    assert location in locations(await client.get(f"/cpu-info?{query}"))


async def test_a_malformed_token_is_422_as_header_or_query(client: httpx.AsyncClient) -> None:
    by_header = await client.get("/cpu-info/m1", headers={"X-Consistency-Token": "4-17"})
    assert ["header", "X-Consistency-Token"] in locations(by_header)
    assert "<partition>:<offset>" in by_header.json()["detail"][0]["msg"]
    by_query = await client.get("/cpu-info/m1?consistency_token=abc")
    assert ["query", "consistency_token"] in locations(by_query)


async def test_every_new_endpoint_is_documented_with_examples(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    paths = document["paths"]
    assert set(paths["/cpu-info"]) == {"get", "post"}
    history = paths["/cpu-info/{machine_id}/history"]["get"]
    assert {p["name"] for p in history["parameters"]} >= {"since", "until", "limit", "cursor"}
    schemas = document["components"]["schemas"]
    for model in ("HistoryPage", "HistoryEntry", "FleetPage"):
        assert schemas[model]["examples"], model
    latest = paths["/cpu-info/{machine_id}"]
    assert "X-Consistency-Token" in latest["post"]["responses"]["200"]["headers"]
    assert {p["name"] for p in latest["get"]["parameters"]} >= {
        "X-Consistency-Token",
        "consistency_token",
    }


async def test_the_new_parameters_are_documented_without_null(client: httpx.AsyncClient) -> None:
    # Absent is how a client gives none; a documented null would be sent as "null".
    document = (await client.get("/openapi.json")).json()
    operations = [
        document["paths"]["/cpu-info/{machine_id}"]["get"],
        document["paths"]["/cpu-info/{machine_id}/history"]["get"],
        document["paths"]["/cpu-info"]["get"],
    ]
    for operation in operations:
        for parameter in operation["parameters"]:
            assert "null" not in json.dumps(parameter["schema"]), parameter
