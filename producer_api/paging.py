"""Opaque cursors of the paginated endpoints, and their `Link` headers.

A cursor is the position after which the next page starts, as a JSON object in
unpadded base64url: opaque to clients (they pass back what `next` gave them), readable
when debugging. Each endpoint has a model of its own cursor, so that a cursor of one
listing is refused by another; anything that does not decode to that model is refused
with the same message.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Final, TypeVar
from urllib.parse import parse_qsl, urlencode

from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.datastructures import URL

# Far longer than any cursor this API writes; a longer value is refused unread.
MAX_CURSOR_LENGTH: Final = 512
# The characters of unpadded base64url, the only ones a cursor holds (the document says
# so; that a value of them is one this API gave out, no schema can say).
CURSOR_PATTERN: Final = "^[A-Za-z0-9_-]+$"

CursorT = TypeVar("CursorT", bound="Cursor")


class Cursor(BaseModel):
    """The base of every cursor model: nothing but its fields, never changed."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class InvalidCursorError(ValueError):
    """A cursor this API did not give out (or one of another listing)."""

    def __init__(self) -> None:
        super().__init__(
            "not a cursor of this listing: pass back the `next` value of the previous page "
            "unchanged, or leave `cursor` out for the first page"
        )


def encode_cursor(cursor: Cursor) -> str:
    raw = cursor.model_dump_json().encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(text: str, model: type[CursorT]) -> CursorT:
    """The cursor `text` holds; InvalidCursorError if it holds none of `model`."""
    if len(text) > MAX_CURSOR_LENGTH:
        raise InvalidCursorError
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        return model.model_validate(json.loads(raw))
    except (binascii.Error, ValueError, ValidationError) as exc:
        # (UnicodeDecodeError and json's errors are ValueErrors too.)
        raise InvalidCursorError from exc


def next_link(url: URL, cursor: str) -> str:
    """A `Link` header value naming the next page: the request's own path and query
    with `cursor` set, as a reference relative to the request (RFC 8288), so that it
    stays right behind a proxy that rewrites the host."""
    query = [(k, v) for k, v in parse_qsl(url.query, keep_blank_values=True) if k != "cursor"]
    query.append(("cursor", cursor))
    return f'<{url.path}?{urlencode(query)}>; rel="next"'
