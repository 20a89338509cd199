"""The HTTP answers' schemas, as the OpenAPI document names them.

Every answer a route documents has a named schema here (or in the module of its
endpoint: `HistoryPage`, `FleetPage`, `BatchAnswer`), never an inline one, so that a
client generated from the document gets one type per answer with a name that says
what it holds, and an error answer decodes into a type rather than nothing. The
bodies are those the API already sends: `ErrorMessage` is the `{"detail": "..."}` of
every error but 422, whose body is FastAPI's `HTTPValidationError` (each error made
encodable by `validation_errors`).
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

from producer_api.json_route import JSON_MEDIA_TYPE
from telemetry_common.contract import (
    EXAMPLE_READING,
    MACHINE_ID_MAX_LENGTH,
    MACHINE_ID_PATTERN,
    MemoryReading,
)

# A Kafka partition is a 32-bit signed number, an offset a 64-bit one, neither negative.
# The offset's bound is written as "less than 2**63": FastAPI writes the document's
# bounds as floats, and 2**63 is one exactly, where 2**63 - 1 is not.
MAX_PARTITION: Final = 2**31 - 1
OFFSET_LIMIT: Final = 2**63


# The answers' fields of a record's position.
Partition = Annotated[int, Field(ge=0, le=MAX_PARTITION)]
Offset = Annotated[int, Field(ge=0, lt=OFFSET_LIMIT)]

_BOUNDS: Final = frozenset(
    {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"}
)


def exact_bounds(document: Any) -> None:
    """Write the document's integral bounds as the integers they are, in place.

    FastAPI's model of the document holds every bound as a float, so a bound such as
    2**63 came out as `9.223372036854776e+18`, and generators of test data that read
    it do their arithmetic in floating point: one took integers above 2**63 - 1 for
    valid. Each bound here is an integer that a float holds exactly (the columns' is
    written as `exclusiveMaximum: 2**63` for that reason), so the float's integer is
    the bound.
    """
    if isinstance(document, dict):
        for key, value in document.items():
            if key in _BOUNDS and isinstance(value, float) and value.is_integer():
                document[key] = int(value)
            else:
                exact_bounds(value)
    elif isinstance(document, list):
        for item in document:
            exact_bounds(item)


class ErrorMessage(BaseModel):
    """The body of an error answer other than 422: what was wrong, in words."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"detail": "Data not found"}]})

    detail: str


class ReadingByMachine(RootModel[dict[str, MemoryReading]]):
    """A reading under its machine's id: `{"<machine_id>": {...}}`, one key."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"web-01": dict(EXAMPLE_READING)}],
            "minProperties": 1,
            "maxProperties": 1,
            "propertyNames": {"pattern": MACHINE_ID_PATTERN, "maxLength": MACHINE_ID_MAX_LENGTH},
        }
    )


class Liveness(BaseModel):
    """Whether the process serves requests with a usable Kafka producer."""

    status: Literal["ok", "producer failed"]


class ReadinessChecks(BaseModel):
    """Each dependency's state."""

    kafka: Literal["ok", "unavailable"] = Field(description="Kafka knows the topic.")
    redis: Literal["ok", "unavailable"] = Field(description="Redis answers.")


class Readiness(BaseModel):
    """Whether Kafka and Redis are both reachable, and each one's state."""

    status: Literal["ready", "not ready"]
    checks: ReadinessChecks


def error_answer(description: str, example: str, **more: Any) -> dict[str, Any]:
    """An error answer of the document: `ErrorMessage`, with an example detail."""
    return {
        "model": ErrorMessage,
        "description": description,
        "content": {JSON_MEDIA_TYPE: {"example": {"detail": example}}},
        **more,
    }


RETRY_AFTER_HEADER: Final[dict[str, Any]] = {
    "Retry-After": {
        "description": "Seconds to wait.",
        "schema": {"type": "integer", "minimum": 0},
    }
}

UNAVAILABLE: Final[dict[str, Any]] = error_answer(
    "Kafka or Redis is unavailable; retry after `Retry-After` seconds.",
    "Redis is unavailable (ConnectionError). Retry later.",
    headers=RETRY_AFTER_HEADER,
)

NOT_FOUND: Final = "Data not found"

# The answers to a bad request body, in the order they are checked (422, the model's
# errors, comes last and FastAPI documents it itself).
BAD_BODY: Final[dict[int | str, dict[str, Any]]] = {
    400: error_answer(
        "The body is not strict JSON: empty, not UTF-8, not JSON, a duplicate key, NaN or "
        "Infinity, an integer of more than 20 digits, or nested too deeply.",
        'duplicate key "used" in a JSON object',
    ),
    # Starlette's body limit answers in plain text when Content-Length already says the
    # body is too large (the route never runs), in JSON when a streamed body passes it.
    413: {
        "model": ErrorMessage,
        "description": "The body is larger than `API_MAX_BODY_BYTES`.",
        "content": {
            JSON_MEDIA_TYPE: {"example": {"detail": "Content Too Large"}},
            "text/plain": {"schema": {"type": "string"}, "example": "Content Too Large"},
        },
    },
    415: error_answer(
        "The body is not `application/json` in UTF-8, or has a Content-Encoding.",
        "the body must be application/json",
    ),
}
