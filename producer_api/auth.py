"""API keys on the readings routes: who may publish, and (optionally) who may read.

Off unless API_KEYS or API_KEYS_FILE gives keys. Then the app puts `KeyCheck` on the
readings router, so that every route of it, present or future, is covered: writes always
need a key in `X-API-Key` (or as `Authorization: Bearer <key>`, for senders such as
Prometheus' remote_write that send their credentials so), reads (GET, HEAD) only with
API_KEYS_PROTECT_READS. A missing key is `401` with `WWW-Authenticate: APIKey`, a wrong
one `403`. The health endpoints, `/metrics` and the docs are on no such router and stay
open. The OTLP and remote-write routes (`producer_api.formats`) get the same check.

The check is FastAPI's `APIKeyHeader` security scheme, so the OpenAPI document declares
it and Swagger UI's "Authorize" button sends the key. The ingest POSTs, answered ahead
of FastAPI (`producer_api.ingest`), use `KeyCheck.admits` (the same comparison) and
give the same 401 or 403.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import HTTPException, Request, Security, status
from fastapi.security import APIKeyHeader
from starlette.datastructures import Headers

from producer_api.api_keys import ApiKeys
from producer_api.headers import API_KEY_HEADER, AUTHORIZATION_HEADER

READ_METHODS: Final = frozenset({"GET", "HEAD"})
SCHEME_NAME: Final = "ApiKey"
_HEADER_KEY: Final = API_KEY_HEADER.lower()
_AUTHORIZATION: Final = AUTHORIZATION_HEADER.lower()

api_key_header = APIKeyHeader(
    name=API_KEY_HEADER,
    scheme_name=SCHEME_NAME,
    description="One of the keys of API_KEYS or API_KEYS_FILE.",
    # A missing key is answered below, only where one is required.
    auto_error=False,
)

_ERROR_BODY: Final = {"$ref": "#/components/schemas/ErrorMessage"}
_KEY_RESPONSES: Final[dict[str, dict[str, Any]]] = {
    "401": {
        "description": "No `X-API-Key` header; `WWW-Authenticate: APIKey`.",
        "content": {
            "application/json": {"schema": _ERROR_BODY, "example": {"detail": "Not authenticated"}}
        },
    },
    "403": {
        "description": "The `X-API-Key` is not one of the API's keys.",
        "content": {
            "application/json": {"schema": _ERROR_BODY, "example": {"detail": "Invalid API key"}}
        },
    },
}


def bearer_token(headers: Headers) -> str | None:
    """The key of an `Authorization: Bearer <key>` header, the form Prometheus'
    remote_write `authorization` sends; X-API-Key, when present, wins."""
    scheme, _, token = headers.get(_AUTHORIZATION, "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


class KeyCheck:
    """The router dependency: a key is required, and checked, where the method needs one."""

    def __init__(self, keys: ApiKeys, *, protect_reads: bool) -> None:
        self._keys = keys
        self._protect_reads = protect_reads

    def required(self, method: str) -> bool:
        return self._protect_reads or method not in READ_METHODS

    def admits(self, headers: Headers) -> bool:
        """Whether the request carries an accepted key (for the ingest POSTs)."""
        presented = headers.get(_HEADER_KEY) or bearer_token(headers)
        return presented is not None and self._keys.accepts(presented)

    async def __call__(
        self, request: Request, presented: Annotated[str | None, Security(api_key_header)]
    ) -> None:
        if not self.required(request.method):
            return
        presented = presented or bearer_token(request.headers)
        if not presented:
            raise api_key_header.make_not_authenticated_error()
        if not self._keys.accepts(presented):
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail="Invalid API key")

    def document(self, openapi: dict[str, Any]) -> None:
        """Make the OpenAPI document say which operations need a key, and their 401/403.

        FastAPI marks every operation of the router with the scheme; the reads that
        need none lose the mark.
        """
        for operations in openapi.get("paths", {}).values():
            for method, operation in operations.items():
                if "security" not in operation:
                    continue
                if self.required(method.upper()):
                    operation.setdefault("responses", {}).update(_KEY_RESPONSES)
                else:
                    del operation["security"]
