"""Readings go through the containers: API -> Kafka -> worker -> Redis -> API."""

from __future__ import annotations

import httpx

from tests.compose.readings import machines, post_readings, wait_until_served
from tests.helpers import unique


def test_the_api_is_ready(api: httpx.Client) -> None:
    response = api.get("/readyz")
    assert response.status_code == 200, response.text


def test_readings_of_100_machines_are_stored_and_served(api: httpx.Client) -> None:
    readings = machines(unique("fleet"), 100)
    post_readings(api, readings)
    wait_until_served(api, readings, timeout=60)


def test_an_unknown_machine_is_not_found(api: httpx.Client) -> None:
    assert api.get(f"/cpu-info/{unique('nobody')}").status_code == 404
