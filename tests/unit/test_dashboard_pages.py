"""The dashboard's pages and assets as the API serves them (no services needed)."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from producer_api.settings import ProducerSettings
from tests.helpers import unreachable_settings

pytestmark = pytest.mark.anyio

PAGES = Path(__file__).resolve().parents[2] / "producer_api" / "static" / "dashboard"


@pytest.fixture
def api_settings() -> ProducerSettings:
    # Reads behind keys: the pages still load (they hold no data), the data does not.
    return unreachable_settings(
        api_keys=SecretStr("a-key-of-the-dashboard-tests-01"), api_keys_protect_reads=True
    )


async def test_the_pages_and_their_assets_load_without_a_key(client: httpx.AsyncClient) -> None:
    for path in (
        "/dashboard/",
        "/dashboard/machine",
        "/dashboard/assets/fleet.js",
        "/dashboard/assets/uplot/uPlot.iife.min.js",
        "/dashboard/assets/uplot/LICENSE",
    ):
        answer = await client.get(path)
        assert answer.status_code == 200, path
    assert (await client.get("/cpu-info")).status_code == 401


async def test_the_bare_path_redirects_relatively_and_keeps_the_query(
    client: httpx.AsyncClient,
) -> None:
    answer = await client.get("/dashboard?sort=pressure&min_pressure=80")
    assert answer.status_code == 308
    assert answer.headers["location"] == "dashboard/?sort=pressure&min_pressure=80"


async def test_nothing_but_the_dashboard_s_files_is_served(client: httpx.AsyncClient) -> None:
    assert (await client.get("/dashboard/assets/../../dashboard.py")).status_code == 404
    assert (await client.get("/dashboard/assets/missing.js")).status_code == 404


def test_the_pages_load_nothing_from_elsewhere() -> None:
    for page in [*PAGES.glob("*.html"), *PAGES.glob("assets/*.js"), *PAGES.glob("assets/*.css")]:
        text = page.read_text()
        assert not re.search(r"""(src|href)=["'](https?:)?//""", text), page
        assert "@import" not in text, page


def test_the_vendored_uplot_names_its_version_and_license() -> None:
    uplot = PAGES / "assets" / "uplot"
    assert "uPlot 1.6.32" in (uplot / "VERSION").read_text()
    assert "MIT License" in (uplot / "LICENSE").read_text()
    assert "1.6.32" in (PAGES.parents[2] / "docs" / "dashboard.md").read_text()
