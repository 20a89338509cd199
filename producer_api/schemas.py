"""The HTTP bodies' schemas, as the OpenAPI document names them, and the documented headers.

Every answer a route documents has a named schema here (the history and fleet pages are
built by their readers, `producer_api.history` and `producer_api.fleet`, and named there),
never an inline one, so that a
client generated from the document gets one type per answer with a name that says
what it holds, and an error answer decodes into a type rather than nothing. The
bodies are those the API already sends: `ErrorMessage` is the `{"detail": "..."}` of
every error but 422, whose body is FastAPI's `HTTPValidationError` (each error made
encodable by `validation_errors`). The batch endpoint's body (`MachineReading` items)
is here too: each item is a machine id and a reading under exactly the single
endpoint's rules, the same pattern for the id, the same strict `MemoryReading`.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

from producer_api.headers import (
    CONSISTENCY_HEADER,
    LINK_HEADER,
    OFFSET_HEADER,
    PARTITION_HEADER,
    RETRY_AFTER_HEADER,
)
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


# The answer headers as the document describes them.
RETRY_AFTER: Final[dict[str, Any]] = {
    RETRY_AFTER_HEADER: {
        "description": "Seconds to wait.",
        "schema": {"type": "integer", "minimum": 0},
    }
}
# As the retirement and the ingest formats document it (without the bound).
RETRY_AFTER_SECONDS: Final[dict[str, Any]] = {
    RETRY_AFTER_HEADER: {"description": "Seconds to wait.", "schema": {"type": "integer"}}
}
KAFKA_POSITION: Final[dict[str, Any]] = {
    PARTITION_HEADER: {
        "description": "Kafka partition of the record.",
        "schema": {"type": "integer", "minimum": 0, "maximum": MAX_PARTITION},
    },
    OFFSET_HEADER: {
        "description": "Kafka offset of the record.",
        "schema": {"type": "integer", "minimum": 0, "exclusiveMaximum": OFFSET_LIMIT},
    },
}
PUBLISHED: Final[dict[str, Any]] = {
    **KAFKA_POSITION,
    CONSISTENCY_HEADER: {
        "description": (
            "`<partition>:<offset>` of the record: give it to `GET /cpu-info/{machine_id}` "
            "to read this reading (or a newer one) back."
        ),
        "schema": {"type": "string", "example": "4:17"},
    },
}
NEXT_PAGE_LINK: Final[dict[str, Any]] = {
    LINK_HEADER: {
        "description": 'The next page, as `<path?query&cursor=...>; rel="next"` (RFC 8288); '
        "absent on the last page.",
        "schema": {"type": "string"},
    }
}

UNAVAILABLE: Final[dict[str, Any]] = error_answer(
    "Kafka or Redis is unavailable; retry after `Retry-After` seconds.",
    "Redis is unavailable (ConnectionError). Retry later.",
    headers=RETRY_AFTER,
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


# The batch endpoint, `POST /cpu-info`.


class MachineReading(BaseModel):
    """One item of a batch: which machine, and its reading."""

    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "examples": [{"machine_id": "web-01", "reading": dict(EXAMPLE_READING)}]
        },
    )

    machine_id: Annotated[
        str,
        Field(
            pattern=MACHINE_ID_PATTERN,
            max_length=MACHINE_ID_MAX_LENGTH,
            description=(
                "1 to 64 characters of letters, digits, '.', '_' and '-', starting with a "
                "letter or digit."
            ),
        ),
    ]
    reading: MemoryReading


def _largest_item_bytes() -> int:
    """Bytes of the largest valid item as a client's JSON encoder writes it, separator
    included: what the body limit must hold per item of a full batch."""
    bounds = MemoryReading.model_json_schema()["properties"]
    largest = {
        "machine_id": "a" * MACHINE_ID_MAX_LENGTH,
        "reading": {name: field["exclusiveMaximum"] - 1 for name, field in bounds.items()},
    }
    # json.dumps' default separators (", " and ": ") are the widest of common encoders.
    return len(json.dumps(largest)) + len(", ")


LARGEST_ITEM_BYTES: Final = _largest_item_bytes()


class AcknowledgedItem(BaseModel):
    """The broker acknowledged this item's record: where it is."""

    status: Literal["acknowledged"] = "acknowledged"
    partition: Partition
    offset: Offset


class FailedItem(BaseModel):
    """The broker did not acknowledge this item's record (it may still have been
    written): send it again."""

    status: Literal["failed"] = "failed"
    detail: str


class BatchAnswer(BaseModel):
    """What became of each item, in the order of the request."""

    acknowledged: int = Field(ge=0, description="How many items the broker acknowledged.")
    failed: int = Field(ge=0, description="How many it did not; resend those (see `items`).")
    items: list[AcknowledgedItem | FailedItem]


# The retirement, `DELETE /cpu-info/{machine_id}`.


class RetirementPosition(BaseModel):
    """Where Kafka wrote one of the machine's retirement records."""

    partition: int = Field(description="Kafka partition of the retirement record.")
    offset: int = Field(description="Its offset there.")


class RetirementAnswer(BaseModel):
    """The answer to a retirement Kafka acknowledged."""

    machine_id: str
    applied: bool = Field(
        description="Whether the view in Redis already applied every retirement record "
        "(`200`): a read no longer finds the machine. False (`202`): recorded in Kafka, "
        "applied when the worker reaches it."
    )
    consistency_token: str = Field(
        description="The same as the `X-Consistency-Token` header: give it to `GET "
        "/cpu-info/{machine_id}` to read the machine as retired (404).",
        examples=["4:18"],
    )
    records: list[RetirementPosition] = Field(
        description="Every retirement record, one per partition the machine's readings "
        "may be in (one, unless partitions were added to the topic)."
    )
