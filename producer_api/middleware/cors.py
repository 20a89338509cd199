"""CORS: which web pages may call the API from a browser (API_CORS_ALLOW_ORIGINS).

Off by default: without the setting no CORS header is sent, and browsers let only pages
of the API's own origin read its answers. With it, Starlette's CORSMiddleware answers
preflight requests (OPTIONS with `Origin` and `Access-Control-Request-Method`) before
routing, and adds `Access-Control-Allow-Origin` to the answers to the listed origins,
ingest answers included (it wraps the whole app). A plain OPTIONS still gets the
app's own `204` with `Allow` (see `allowed_methods`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp

from producer_api.headers import (
    API_KEY_HEADER,
    AUTHORIZATION_HEADER,
    CONSISTENCY_HEADER,
    CONTENT_TYPE_HEADER,
    OFFSET_HEADER,
    PARTITION_HEADER,
    REQUEST_ID_HEADER,
    RETRY_AFTER_HEADER,
)

# What a page may send: the JSON body, the key (in its own header or as a bearer token),
# an id of its own for the request, and the consistency token a POST gave it (for a GET
# that sees that POST's reading).
_REQUEST_HEADERS: Final = (
    CONTENT_TYPE_HEADER,
    API_KEY_HEADER,
    AUTHORIZATION_HEADER,
    REQUEST_ID_HEADER,
    CONSISTENCY_HEADER,
)
# What a page may read of an answer, beyond the headers every browser shows.
_EXPOSED_HEADERS: Final = (
    REQUEST_ID_HEADER,
    PARTITION_HEADER,
    OFFSET_HEADER,
    CONSISTENCY_HEADER,
    RETRY_AFTER_HEADER,
)
# DELETE retires a machine (behind the write keys, like POST).
_METHODS: Final = ("GET", "POST", "DELETE")


def with_cors(app: ASGIApp, origins: Sequence[str]) -> ASGIApp:
    """`app` behind CORSMiddleware for `origins`; `app` itself when there are none."""
    if not origins:
        return app
    return CORSMiddleware(
        app,
        allow_origins=list(origins),
        allow_methods=_METHODS,
        allow_headers=_REQUEST_HEADERS,
        expose_headers=_EXPOSED_HEADERS,
        # Keys travel in a header, never in cookies: no credentials mode.
        allow_credentials=False,
    )
