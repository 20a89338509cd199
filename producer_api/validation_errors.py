"""422 answers for invalid requests that can be encoded whatever the client sent.

FastAPI's own handler echoes each error's `input` through `jsonable_encoder` and a
strict JSON encoder. Bytes that are not UTF-8, strings with lone surrogates,
non-finite floats and integers too long to print all pass validation's error path
but break that encoder, so the client got a 500 for its own bad input. Here every
error keeps FastAPI's shape (`type`, `loc`, `msg`, `input`, `ctx`) with each value
made encodable first: in the answers of FastAPI's routes (`invalid_request`) and of
the ingest endpoints (`producer_api.ingest.core`), which name errors the same way.
"""

from __future__ import annotations

import math
from typing import Any, Final, cast

from fastapi import Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

# Deeper values are summarised; bodies that reach validation are at most 32 levels.
_MAX_DEPTH: Final = 40
# int's str() refuses integers beyond about 4300 digits; far below that, a number of
# this size is summarised rather than echoed.
_MAX_ECHOED_INT_BITS: Final = 256


def json_safe(value: Any, depth: int = 0) -> Any:
    """`value` with everything a strict UTF-8 JSON encoder would refuse replaced."""
    if depth > _MAX_DEPTH:
        return "..."
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if value.bit_length() > _MAX_ECHOED_INT_BITS:
            return f"<an integer of {value.bit_length()} bits>"
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        # Lone surrogates become visible `\udxxx` escapes instead of failing the encoder.
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "backslashreplace")
    if isinstance(value, dict):
        return {
            str(json_safe(key, depth + 1)): json_safe(item, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(item, depth + 1) for item in value]
    if isinstance(value, BaseException):
        return json_safe(str(value), depth + 1)
    # Models, dates, enums...: FastAPI's encoder knows them; its result is checked again.
    try:
        encoded = jsonable_encoder(value)
    except Exception:  # an object nobody can encode: its repr is still a clue
        encoded = repr(value)
    return json_safe(encoded, depth + 1)


async def invalid_request(_: Request, exc: Exception) -> JSONResponse:
    # Registered for RequestValidationError only.
    errors = cast(RequestValidationError, exc).errors()
    return JSONResponse(
        {"detail": json_safe(list(errors))},
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
    )
