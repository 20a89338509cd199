"""Reading the API's paginated listings whole: every page, through the `next` cursors."""

from __future__ import annotations

from typing import Any

import httpx


async def every_page(client: httpx.AsyncClient, url: str, items: str) -> list[list[Any]]:
    """Every page of a paginated listing (its `items` on each page), following the `next`
    cursors through the `Link` headers."""
    pages: list[list[Any]] = []
    while True:
        response = await client.get(url)
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append(body[items])
        if body["next"] is None:
            assert "link" not in response.headers
            return pages
        link = response.headers["link"]
        assert link.endswith('>; rel="next"')
        assert f"cursor={body['next']}" in link
        url = link.removeprefix("<").split(">")[0]


async def whole_history(
    client: httpx.AsyncClient, machine_id: str, query: str = ""
) -> list[list[dict[str, Any]]]:
    """Every page of a machine's history."""
    return await every_page(client, f"/cpu-info/{machine_id}/history?{query}", "entries")


async def whole_listing(client: httpx.AsyncClient, query: str) -> list[list[dict[str, Any]]]:
    """Every page of the fleet listing."""
    return await every_page(client, f"/cpu-info?{query}", "machines")
