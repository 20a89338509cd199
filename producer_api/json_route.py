"""A route class that holds JSON request bodies to a strict standard before FastAPI parses them.

FastAPI decodes a body with the lenient `json.loads` and, for a content type it does
not know, hands the raw bytes to the model. This route checks first, in this order,
and answers with a plain `{"detail": "..."}`:

* 415: the Content-Type is not `application/json` (a `charset` other than UTF-8
  included, and a missing Content-Type too), or the body has a Content-Encoding;
* 400: the body is not strict JSON (see `strict_json`).

Only then does FastAPI's own handling run, unchanged: the OpenAPI document still
shows the body's schema and example, and the model's errors are still 422. FastAPI is
handed the value parsed here, so the body is read and parsed once.
"""

from __future__ import annotations

import email.message
from collections.abc import Callable, Coroutine
from typing import Any, Final

from fastapi import HTTPException, Request, Response, status
from fastapi.routing import APIRoute
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect

from producer_api.strict_json import MalformedJsonError, parse_strict_json

JSON_MEDIA_TYPE: Final = "application/json"

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def unsupported_content(headers: Headers) -> str | None:
    """Why the body's Content-Type or Content-Encoding is refused, or None if it is fine."""
    content_type = headers.get("content-type")
    if content_type is None:
        return f"send the body with Content-Type: {JSON_MEDIA_TYPE}"
    # What nearly every client sends, decided without parsing the header.
    if content_type.lower() == JSON_MEDIA_TYPE and "content-encoding" not in headers:
        return None
    # The standard library's parser of MIME headers handles parameters and quoting.
    parsed = email.message.Message()
    parsed["content-type"] = content_type
    if parsed.get_content_type() != JSON_MEDIA_TYPE:
        return f"the body must be {JSON_MEDIA_TYPE}"
    charset = parsed.get_param("charset")
    if charset is not None and str(charset).lower() not in {"utf-8", "utf8"}:
        return f"the body must be {JSON_MEDIA_TYPE} in UTF-8"
    encoding = headers.get("content-encoding", "identity").strip().lower()
    if encoding != "identity":
        return "Content-Encoding is not supported: send the body uncompressed"
    return None


class _StrictlyParsedRequest(Request):
    """The request as FastAPI's handler gets it: its body already read and parsed by
    `parse_strict_json`, so that FastAPI does not parse it again with `json.loads`."""

    def __init__(self, request: Request, body: bytes, document: Any) -> None:
        super().__init__(request.scope, request.receive)
        self._strict_body = body
        self._strict_document = document

    async def body(self) -> bytes:
        return self._strict_body

    async def json(self) -> Any:
        return self._strict_document


class StrictJsonRoute(APIRoute):
    def get_route_handler(self) -> Handler:
        handle = super().get_route_handler()
        if self.body_field is None:  # nothing to read
            return handle

        async def handle_strict_json(request: Request) -> Response:
            problem = unsupported_content(request.headers)
            if problem is not None:
                raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, detail=problem)
            try:
                # A body over the limit raises the body limit's own 413 from here.
                body = await request.body()
            except ClientDisconnect as exc:
                raise HTTPException(
                    status.HTTP_400_BAD_REQUEST, detail="the client disconnected mid-body"
                ) from exc
            try:
                document = parse_strict_json(body)
            except MalformedJsonError as exc:
                raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=str(exc)) from exc
            return await handle(_StrictlyParsedRequest(request, body, document))

        return handle_strict_json
