"""`IngestEndpoints`: the two ingest POSTs answered ahead of FastAPI's stack.

Every `POST /cpu-info/{machine_id}` and `POST /cpu-info` is answered here with the
app's `IngestRules` (through `producer_api.ingest.asgi.answer`), whatever the outcome;
any other request goes on to FastAPI. Why: see `producer_api.ingest.asgi`. What must
see every request (the request id, the request counter, CORS) wraps this in turn; for
the counter, a request answered here leaves its route template in the scope, as the
router leaves the route. An unexpected error reaches the server, which answers 500 and
logs it, as FastAPI's outer layer does.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from producer_api.ingest.asgi import answer, ingest_target
from producer_api.ingest.core import IngestRules
from producer_api.middleware.request_metrics import ROUTE_TEMPLATE


class IngestEndpoints:
    """ASGI middleware: the two ingest endpoints answered here, anything else passed on."""

    def __init__(self, app: ASGIApp, rules: IngestRules) -> None:
        self.app = app
        self.rules = rules

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = ingest_target(scope)
        if target is None:
            await self.app(scope, receive, send)
            return
        template, machine_id = target
        scope[ROUTE_TEMPLATE] = template
        given = await answer(self.rules, machine_id, scope, receive)
        await send(
            {"type": "http.response.start", "status": given.status, "headers": given.headers}
        )
        await send({"type": "http.response.body", "body": given.body})
