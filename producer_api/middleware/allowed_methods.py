"""405 and OPTIONS answers whose `Allow` lists every method served on the path.

Starlette answers 405 with the methods of the first route whose path matches, so
`PUT /cpu-info/x` said `Allow: POST` although GET is served on the same path. Here the
methods of every route that matches the path are gathered, and OPTIONS, which no route
serves, is answered 204 with the same `Allow` instead of 405. (CORS preflight requests
never get here: a CORS middleware, when configured, answers them before routing.)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, cast

from fastapi import Request, Response, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import Scope

from producer_api.headers import ALLOW_HEADER

# The methods a route of this API might serve; OPTIONS is answered here for every path.
_PROBED_METHODS: Final = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def methods_served(routes: Iterable[BaseRoute], scope: Scope) -> set[str]:
    """The methods some route serves on the request's path, OPTIONS included.

    Each method is tried against every route's own `matches` (included routers
    resolve their routes themselves), so this agrees with routing by construction.
    """
    routes = list(routes)
    served = {"OPTIONS"}
    for method in _PROBED_METHODS:
        probe = {**scope, "method": method}
        if any(route.matches(probe)[0] == Match.FULL for route in routes):
            served.add(method)
    return served


async def method_not_allowed(request: Request, exc: Exception) -> Response:
    """Registered for Starlette's HTTPException: 405s get the full `Allow`, others pass."""
    http_error = cast(StarletteHTTPException, exc)
    if http_error.status_code != status.HTTP_405_METHOD_NOT_ALLOWED:
        return await http_exception_handler(request, http_error)
    allow = ", ".join(sorted(methods_served(request.app.router.routes, request.scope)))
    if request.method == "OPTIONS":
        return Response(status_code=status.HTTP_204_NO_CONTENT, headers={ALLOW_HEADER: allow})
    return JSONResponse(
        {"detail": http_error.detail},
        status_code=status.HTTP_405_METHOD_NOT_ALLOWED,
        headers={ALLOW_HEADER: allow},
    )
