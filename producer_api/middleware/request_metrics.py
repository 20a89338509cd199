"""ASGI middleware counting every answered request by method, route template and status.

It wraps the whole app, the ingest endpoints included. The route is the template of the route
that served the request, never the raw path, so the number of series stays bounded
whatever paths clients send: the router leaves the matched route in the scope, the
ingest endpoints the template they served (`ROUTE_TEMPLATE`), and a path nothing serves is
`unmatched`. Unknown methods are counted as `other`.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Where a handler outside the router (the ingest endpoints) leaves the template it served.
ROUTE_TEMPLATE: Final = "memtelemetry.route_template"
UNMATCHED: Final = "unmatched"
_KNOWN_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# No answer was started: the client left first.
_NO_ANSWER: Final = "none"
# The app raised before answering: the server answers 500.
_SERVER_ERROR: Final = "500"


def route_of(scope: Scope) -> str:
    template: str | None = scope.get(ROUTE_TEMPLATE)
    if template is not None:
        return template
    path: str | None = getattr(scope.get("route"), "path", None)
    return path if path is not None else UNMATCHED


class RequestCounting:
    def __init__(self, app: ASGIApp, requests: Counter) -> None:
        self.app = app
        self._requests = requests
        # The counter of each (method, route, status) once used: labels() takes a lock
        # and builds a key on every call, a large part of counting a request.
        self._counters: dict[tuple[str, str, str], Counter] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = _NO_ANSWER

        async def noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = str(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, noting_status)
        except Exception:
            if status == _NO_ANSWER:
                status = _SERVER_ERROR
            raise
        finally:
            method = scope["method"] if scope["method"] in _KNOWN_METHODS else "other"
            key = (method, route_of(scope), status)
            counter = self._counters.get(key)
            if counter is None:
                counter = self._counters[key] = self._requests.labels(*key)
            counter.inc()
