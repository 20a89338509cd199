"""The path and query parameters several routes share, and the 422 of a bad one.

Declared once so that the document describes a machine id and a cursor the same way on
every operation, and the routes refuse them with the same errors.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import WithJsonSchema

from producer_api.fleet import FleetPage
from producer_api.headers import LINK_HEADER
from producer_api.history import HistoryPage
from producer_api.paging import CURSOR_PATTERN, MAX_CURSOR_LENGTH, CursorT, decode_cursor, next_link
from telemetry_common.contract import MACHINE_ID_MAX_LENGTH, MACHINE_ID_PATTERN

MachineId = Annotated[
    str,
    Path(
        pattern=MACHINE_ID_PATTERN,
        max_length=MACHINE_ID_MAX_LENGTH,
        description=(
            "Machine identifier: 1 to 64 characters of letters, digits, '.', '_' and '-', "
            "starting with a letter or digit."
        ),
        examples=["web-01"],
    ),
]


def invalid_query(name: str, message: str, value: object) -> RequestValidationError:
    """A 422 naming a query parameter, in the shape of FastAPI's own."""
    return RequestValidationError(
        [{"type": "value_error", "loc": ("query", name), "msg": message, "input": value}]
    )


def decoded(text: str | None, model: type[CursorT]) -> CursorT | None:
    """The `cursor` parameter as `model`, None if absent; a 422 if it is not one."""
    if text is None:
        return None
    try:
        return decode_cursor(text, model)
    except ValueError as exc:
        raise invalid_query("cursor", str(exc), text) from None


CursorParam = Annotated[
    str | None,
    # Documented without null: absent is how a client starts from the first page.
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_CURSOR_LENGTH,
            "pattern": CURSOR_PATTERN,
        }
    ),
    Query(
        max_length=MAX_CURSOR_LENGTH,
        description="The `next` of the previous page (also in its `Link` header); none for "
        "the first page.",
    ),
]


def link_next_page(request: Request, response: Response, page: HistoryPage | FleetPage) -> None:
    """The `Link` header to the page after `page`, unless it is the last."""
    if page.next is not None:
        response.headers[LINK_HEADER] = next_link(request.url, page.next)
