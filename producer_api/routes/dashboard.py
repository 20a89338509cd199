"""The operators' dashboard: two static pages the API serves itself, offline.

`/dashboard/` lists the fleet (sorted and filtered by memory pressure or by silence,
paged by the server), `/dashboard/machine?id=<machine id>` draws one machine's history
with uPlot (vendored under static/dashboard/vendor/uplot, its version and license
beside it). The pages hold no data: their scripts call `GET /cpu-info` and
`GET /cpu-info/{machine_id}/history` like any client, so they need no key to load and
the API's read keys, when required, guard the data. A page that gets a 401 or 403 asks
for a key and sends it as `X-API-Key`, as Swagger UI's "Authorize" does
(docs/dashboard.md). Every URL in the pages is relative, so the dashboard works behind
a proxy that serves the API under a prefix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

DASHBOARD_URL: Final = "/dashboard"
_FILES: Final = Path(__file__).parent.parent / "static" / "dashboard"
# The pages and their scripts change with the API: a browser revalidates them.
_NO_STALE_COPY: Final = {"Cache-Control": "no-cache"}


def install_dashboard(app: FastAPI) -> None:
    """Serve the fleet page, the machine page and their assets under DASHBOARD_URL."""

    async def to_fleet(request: Request) -> RedirectResponse:
        # Relative, so that a proxy's prefix is kept: the pages' URLs are relative to it.
        name = request.url.path.rstrip("/").rsplit("/", 1)[-1]
        query = f"?{request.url.query}" if request.url.query else ""
        return RedirectResponse(f"{name}/{query}", status_code=308)

    async def fleet_page(_: Request) -> FileResponse:
        return FileResponse(_FILES / "index.html", headers=_NO_STALE_COPY)

    async def machine_page(_: Request) -> FileResponse:
        return FileResponse(_FILES / "machine.html", headers=_NO_STALE_COPY)

    app.add_route(DASHBOARD_URL, to_fleet, methods=["GET"], include_in_schema=False)
    app.add_route(f"{DASHBOARD_URL}/", fleet_page, methods=["GET"], include_in_schema=False)
    app.add_route(
        f"{DASHBOARD_URL}/machine", machine_page, methods=["GET"], include_in_schema=False
    )
    app.mount(
        f"{DASHBOARD_URL}/assets",
        StaticFiles(directory=_FILES / "assets"),
        name="dashboard-assets",
    )
