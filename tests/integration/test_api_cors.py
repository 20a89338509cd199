"""CORS: off unless API_CORS_ALLOW_ORIGINS lists origins; then browsers on those origins
may call the API (preflight included), ingest answers and API keys included."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from producer_api.settings import ProducerSettings
from tests.helpers import READING, api_client, settings_like, unique

pytestmark = pytest.mark.anyio

DASHBOARD = "https://dashboard.example.com"
ELSEWHERE = "https://elsewhere.example.org"
API_KEY = "a-key-for-the-dashboard-000000"


def preflight(origin: str, method: str = "POST") -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "content-type, x-api-key",
    }


async def test_cors_is_off_by_default(producer_settings: ProducerSettings) -> None:
    async with api_client(producer_settings) as client:
        posted = await client.post(
            f"/cpu-info/{unique('m')}", json=READING, headers={"Origin": DASHBOARD}
        )
        asked = await client.options("/cpu-info/m1", headers=preflight(DASHBOARD))
    assert posted.status_code == 200
    assert "Access-Control-Allow-Origin" not in posted.headers
    # No CORS layer: the OPTIONS is the app's own answer, which grants nothing.
    assert asked.status_code == 204
    assert asked.headers["Allow"] == "DELETE, GET, OPTIONS, POST"
    assert not any(name.lower().startswith("access-control-") for name in asked.headers)


async def test_a_listed_origin_may_call_the_api(producer_settings: ProducerSettings) -> None:
    settings = settings_like(
        producer_settings, api_cors_allow_origins=f"{DASHBOARD}, http://localhost:3000"
    )
    async with api_client(settings) as client:
        asked = await client.options("/cpu-info/m1", headers=preflight(DASHBOARD))
        # Answered by the ingest endpoints, which the CORS layer wraps.
        posted = await client.post(
            f"/cpu-info/{unique('m')}", json=READING, headers={"Origin": DASHBOARD}
        )
        read = await client.get(f"/cpu-info/{unique('never')}", headers={"Origin": DASHBOARD})
        plain_options = await client.options("/cpu-info/m1")

    assert asked.status_code == 200
    assert asked.headers["Access-Control-Allow-Origin"] == DASHBOARD
    allowed_methods = set(asked.headers["Access-Control-Allow-Methods"].split(", "))
    assert {"GET", "POST", "DELETE"} <= allowed_methods
    allowed_headers = asked.headers["Access-Control-Allow-Headers"].lower()
    expected_headers = {"content-type", "x-api-key", "authorization", "x-request-id"}
    assert expected_headers <= set(allowed_headers.split(", "))

    assert posted.status_code == 200
    assert posted.headers["Access-Control-Allow-Origin"] == DASHBOARD
    exposed = set(posted.headers["Access-Control-Expose-Headers"].lower().split(", "))
    assert {"x-request-id", "x-kafka-partition", "x-kafka-offset", "retry-after"} <= exposed
    assert read.status_code == 404
    assert read.headers["Access-Control-Allow-Origin"] == DASHBOARD
    # An OPTIONS that is no preflight still gets the app's own answer.
    assert plain_options.status_code == 204
    assert plain_options.headers["Allow"] == "DELETE, GET, OPTIONS, POST"


async def test_an_unlisted_origin_is_granted_nothing(producer_settings: ProducerSettings) -> None:
    settings = settings_like(producer_settings, api_cors_allow_origins=DASHBOARD)
    async with api_client(settings) as client:
        asked = await client.options("/cpu-info/m1", headers=preflight(ELSEWHERE))
        posted = await client.post(
            f"/cpu-info/{unique('m')}", json=READING, headers={"Origin": ELSEWHERE}
        )
    assert asked.status_code == 400
    assert "Access-Control-Allow-Origin" not in asked.headers
    # The request itself is served (CORS is the browser's rule), but the browser, seeing
    # no grant, keeps the answer from the page.
    assert posted.status_code == 200
    assert "Access-Control-Allow-Origin" not in posted.headers


async def test_any_origin(producer_settings: ProducerSettings) -> None:
    settings = settings_like(producer_settings, api_cors_allow_origins="*")
    async with api_client(settings) as client:
        asked = await client.options("/cpu-info", headers=preflight(ELSEWHERE))
        posted = await client.post(
            f"/cpu-info/{unique('m')}", json=READING, headers={"Origin": ELSEWHERE}
        )
    assert asked.status_code == 200
    assert asked.headers["Access-Control-Allow-Origin"] == "*"
    assert posted.headers["Access-Control-Allow-Origin"] == "*"


async def test_a_preflight_needs_no_key_and_the_request_then_does(
    producer_settings: ProducerSettings,
) -> None:
    settings = settings_like(
        producer_settings, api_cors_allow_origins=DASHBOARD, api_keys=SecretStr(API_KEY)
    )
    async with api_client(settings) as client:
        # Browsers send no credentials of the page with a preflight.
        asked = await client.options("/cpu-info/m1", headers=preflight(DASHBOARD))
        refused = await client.post(
            f"/cpu-info/{unique('m')}", json=READING, headers={"Origin": DASHBOARD}
        )
        posted = await client.post(
            f"/cpu-info/{unique('m')}",
            json=READING,
            headers={"Origin": DASHBOARD, "X-API-Key": API_KEY},
        )
    assert asked.status_code == 200
    # The 401 carries the grant too, so that the page can read why it was refused.
    assert refused.status_code == 401
    assert refused.headers["Access-Control-Allow-Origin"] == DASHBOARD
    assert posted.status_code == 200
    assert posted.headers["Access-Control-Allow-Origin"] == DASHBOARD
