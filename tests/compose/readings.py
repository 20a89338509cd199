"""Readings posted to and read back from the stack's API through its published port."""

from __future__ import annotations

import httpx

from tests.helpers import reading, wait_until


def reading_for(seed: int) -> dict[str, int]:
    """A valid reading that differs by seed, so a stale value is told from a new one."""
    return reading(used=1_000_000 + seed, free=2_000_000 + seed)


def post_readings(api: httpx.Client, readings: dict[str, dict[str, int]]) -> None:
    """POST each reading; each answer comes after the broker's acknowledgement."""
    for machine, values in readings.items():
        response = api.post(f"/cpu-info/{machine}", json=values)
        assert response.status_code == 200, (machine, response.status_code, response.text)
        assert response.json() == {machine: values}


def stored(api: httpx.Client, machine: str) -> dict[str, int] | None:
    """The reading the API serves for a machine, or None while there is none (or no Redis)."""
    try:
        response = api.get(f"/cpu-info/{machine}")
    except httpx.TransportError:
        return None
    if response.status_code != 200:
        return None
    body: dict[str, dict[str, int]] = response.json()
    return body[machine]


def wait_until_served(
    api: httpx.Client, readings: dict[str, dict[str, int]], timeout: float
) -> None:
    """Wait until the API serves every one of these readings, exactly."""
    pending = dict(readings)

    def all_served() -> bool:
        for machine in list(pending):
            if stored(api, machine) == pending[machine]:
                del pending[machine]
        return not pending

    wait_until(all_served, timeout, f"{len(readings)} readings to be served", interval=0.5)


def machines(prefix: str, count: int) -> dict[str, dict[str, int]]:
    """`count` machines named after `prefix`, each with a reading of its own."""
    return {f"{prefix}-{i:03d}": reading_for(i) for i in range(count)}
