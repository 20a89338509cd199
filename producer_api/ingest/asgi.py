"""The ingest rules over ASGI: an ingest POST's scope and body in, an `Answer` out.

`answer` is what both ways into the two POSTs call: `middleware.ingest_endpoints`,
ahead of FastAPI, and the documented routes' `routes.ingest.IngestRoute`. It reads the
body (within the limit) and hands headers and body to `IngestRules`.

Why the POSTs are answered ahead of FastAPI: profiled under load, FastAPI's work
around a POST (matching every route, building the request and response objects,
resolving dependencies, validating the answer against its response model) cost several
times the work of the POST itself: parsing, validating and publishing one reading. And
a POST waits for the broker: every layer between the server and the awaiting code is
suspended and resumed with it, which in FastAPI's stack of a dozen layers cost as much
again. `ingest_target` matches the path as the router matches it: relative to the
app's root path, `{machine_id}` being one path segment.
"""

from __future__ import annotations

from typing import Any, Final

from starlette.datastructures import Headers
from starlette.types import Receive, Scope

from producer_api.ingest.answers import CLIENT_LEFT, Answer
from producer_api.ingest.core import IngestRules
from producer_api.publisher import Publisher
from producer_api.settings import ProducerSettings

BATCH_PATH: Final = "/cpu-info"
READING_TEMPLATE: Final = "/cpu-info/{machine_id}"
_READING_PREFIX: Final = "/cpu-info/"


def route_path(scope: Scope) -> str:
    """The request's path relative to the app's root path, as Starlette's router sees it."""
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    if not root_path or not path.startswith(root_path):
        return path
    if path == root_path:
        return ""
    return path[len(root_path) :] if path[len(root_path)] == "/" else path


def ingest_target(scope: Scope) -> tuple[str, str | None] | None:
    """`(route template, machine id)` of an ingest POST (no machine id for the batch
    endpoint), or None for any other request."""
    if scope["type"] != "http" or scope["method"] != "POST":
        return None
    path = route_path(scope)
    if path == BATCH_PATH:
        return BATCH_PATH, None
    if path.startswith(_READING_PREFIX):
        machine_id = path[len(_READING_PREFIX) :]
        if machine_id and "/" not in machine_id:
            return READING_TEMPLATE, machine_id
    return None


async def answer(
    rules: IngestRules, machine_id: str | None, scope: Scope, receive: Receive
) -> Answer:
    """The answer to an ingest POST: one reading of `machine_id`, or a batch if it is None."""
    headers = Headers(scope=scope)
    refused = rules.refused_before_body(headers)
    if refused is not None:
        return refused
    body, refused = await _read_body(rules, receive)
    if refused is not None:
        return refused
    state: dict[str, Any] = scope["state"]
    publisher: Publisher = state["publisher"]
    settings: ProducerSettings = state["settings"]
    if machine_id is None:
        return await rules.publish_batch(headers, body, publisher, settings)
    return await rules.publish_reading(machine_id, headers, body, publisher, settings)


async def _read_body(rules: IngestRules, receive: Receive) -> tuple[bytes, Answer | None]:
    """The whole body, or the answer that ends the request before its end."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client left mid-body
            return b"", CLIENT_LEFT
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        too_large = rules.body_over_limit(size)
        if too_large is not None:
            return b"", too_large
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks), None
