"""Data lives in the named volumes: it survives `down` and `up`; `down --volumes` clears it."""

from __future__ import annotations

import httpx

from tests.compose.project import ComposeProject
from tests.compose.readings import machines, post_readings, stored, wait_until_served
from tests.helpers import unique


def test_data_survives_down_and_up_and_down_volumes_starts_empty(
    compose_project: ComposeProject, api: httpx.Client
) -> None:
    kept = machines(unique("kept"), 5)
    post_readings(api, kept)
    wait_until_served(api, kept, timeout=60)

    compose_project.down()
    compose_project.up()
    wait_until_served(api, kept, timeout=30)
    # The topics survived too: the stack takes new readings at once.
    later = machines(unique("after-up"), 5)
    post_readings(api, later)
    wait_until_served(api, later, timeout=60)

    compose_project.down(volumes=True)
    compose_project.up()
    assert api.get("/readyz").status_code == 200
    assert all(stored(api, machine) is None for machine in {**kept, **later})
    fresh = machines(unique("fresh"), 5)
    post_readings(api, fresh)
    wait_until_served(api, fresh, timeout=60)
