"""`POST /cpu-info/{machine_id}` and `POST /cpu-info`: publishing readings.

The two operations are declared here for the OpenAPI document (their parameters, body,
answers and docstrings) and served by `producer_api.ingest`, whose rules answer every
outcome: `middleware.ingest_endpoints` answers them ahead of FastAPI, and `IngestRoute`
answers a request that reaches the router anyway with the same rules. Their functions
never run. The OTLP and remote-write POSTs are in `routes.formats`: they take other
bodies and answer in their protocols' terms, by rules of their own.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Body, Response
from fastapi.routing import APIRoute
from starlette.requests import Request

from producer_api.deps import PublisherDep, SettingsDep
from producer_api.ingest.asgi import answer
from producer_api.ingest.core import IngestRules
from producer_api.json_route import JSON_MEDIA_TYPE
from producer_api.routes.params import MachineId
from producer_api.schemas import (
    BAD_BODY,
    PUBLISHED,
    RETRY_AFTER,
    UNAVAILABLE,
    BatchAnswer,
    ErrorMessage,
    MachineReading,
    ReadingByMachine,
)
from telemetry_common.contract import EXAMPLE_READING, MemoryReading

Endpoint = Callable[..., Coroutine[Any, Any, Any]]

router = APIRouter(tags=["readings"])


class IngestRoute(APIRoute):
    """A route documented by FastAPI (its parameters, body and answers) and answered by
    `answer` with the app's `IngestRules` (`ProducerApi.ingest_rules`): FastAPI neither
    reads the body nor runs the endpoint."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        async def answered_by_ingest_rules(request: Request) -> Response:
            rules: IngestRules = request.app.ingest_rules
            machine_id: str | None = request.path_params.get("machine_id")
            given = await answer(rules, machine_id, request.scope, request.receive)
            response = Response(given.body, status_code=given.status)
            response.raw_headers = given.headers
            return response

        return answered_by_ingest_rules


def _ingest_operation(path: str, **documented: Any) -> Callable[[Endpoint], Endpoint]:
    """Register a POST served by `IngestRoute`: FastAPI documents it from
    the endpoint's signature and `documented`; the ingest rules answer it."""

    def register(endpoint: Endpoint) -> Endpoint:
        router.add_api_route(
            path, endpoint, methods=["POST"], route_class_override=IngestRoute, **documented
        )
        return endpoint

    return register


@_ingest_operation(
    "/cpu-info/{machine_id}",
    operation_id="publish_reading",
    summary="Publish a memory reading",
    response_model=ReadingByMachine,
    responses={
        200: {
            "description": "The broker acknowledged the reading.",
            "headers": PUBLISHED,
        },
        **BAD_BODY,
        503: UNAVAILABLE,
    },
)
async def publish_reading(
    machine_id: MachineId,
    reading: MemoryReading,
    response: Response,
    publisher: PublisherDep,
    settings: SettingsDep,
) -> dict[str, MemoryReading]:
    """Validate a reading (the columns of `free`, in KiB) and publish it to Kafka, keyed
    by the machine id. Answers only after the broker acknowledged the record."""
    raise AssertionError("served by producer_api.ingest (IngestRoute)")


# The 200 and 207 answers' examples: two readings of web-01 and one of db-01.
_ACKNOWLEDGED_EXAMPLE = {
    "acknowledged": 3,
    "failed": 0,
    "items": [
        {"status": "acknowledged", "partition": 4, "offset": 17},
        {"status": "acknowledged", "partition": 4, "offset": 18},
        {"status": "acknowledged", "partition": 1, "offset": 9},
    ],
}
_PARTLY_FAILED_EXAMPLE = {
    "acknowledged": 2,
    "failed": 1,
    "items": [
        {"status": "acknowledged", "partition": 4, "offset": 17},
        {"status": "acknowledged", "partition": 4, "offset": 18},
        {"status": "failed", "detail": "Kafka refused the record: Local: Message timed out"},
    ],
}
_BATCH_EXAMPLE = [
    {"machine_id": "web-01", "reading": dict(EXAMPLE_READING)},
    {
        "machine_id": "web-01",
        "reading": {**EXAMPLE_READING, "used": 5_310_000, "available": 10_246_492},
    },
    {"machine_id": "db-01", "reading": dict(EXAMPLE_READING)},
]
BatchBody = Annotated[
    list[MachineReading],
    Body(
        min_length=1,
        description=(
            "Readings of one or more machines, at most `API_MAX_BATCH_ITEMS` (1000 by "
            "default). A machine's readings are published in the order given."
        ),
        examples=[_BATCH_EXAMPLE],
    ),
]


@_ingest_operation(
    "/cpu-info",
    operation_id="publish_batch",
    summary="Publish a batch of readings",
    response_model=BatchAnswer,
    responses={
        200: {
            "description": "The broker acknowledged every reading; `items` says where each went.",
            "content": {JSON_MEDIA_TYPE: {"example": _ACKNOWLEDGED_EXAMPLE}},
        },
        207: {
            "model": BatchAnswer,
            "description": (
                "Some readings were acknowledged, some not (Kafka failed or timed out "
                "meanwhile). `items` gives each one's status, in the order sent: resend "
                "the `failed` ones (from the first failed one on, to keep each machine's "
                "order)."
            ),
            "headers": RETRY_AFTER,
            "content": {JSON_MEDIA_TYPE: {"example": _PARTLY_FAILED_EXAMPLE}},
        },
        **BAD_BODY,
        413: {
            "model": ErrorMessage,
            "description": (
                "The body is larger than `API_MAX_BODY_BYTES`, or holds more readings than "
                "`API_MAX_BATCH_ITEMS`."
            ),
            "content": {
                JSON_MEDIA_TYPE: {
                    "example": {
                        "detail": "a batch holds at most 1000 readings (API_MAX_BATCH_ITEMS); "
                        "this one holds 1500: send them in smaller batches"
                    }
                },
                "text/plain": {"schema": {"type": "string"}, "example": "Content Too Large"},
            },
        },
        422: {
            "description": (
                "Some items are invalid: each error's `loc` names the item by its index "
                'and the field, e.g. `["body", 3, "reading", "used"]`. Nothing of the '
                "batch was published."
            ),
            # FastAPI's own 422 schema, which the single endpoint's answer puts in the
            # document (naming a 422 here replaces FastAPI's, schema included).
            "content": {
                JSON_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}
            },
        },
        503: {
            "model": ErrorMessage,
            "description": "Kafka acknowledged none of the readings; retry the whole batch.",
            "headers": RETRY_AFTER,
        },
    },
)
async def publish_batch(
    items: BatchBody, publisher: PublisherDep, settings: SettingsDep
) -> BatchAnswer:
    """Validate a batch of readings, item by item under the rules of the single endpoint,
    and publish them to Kafka, each keyed by its machine id. If any item is invalid the
    answer is 422 naming each invalid item and nothing is published. Otherwise every
    reading is produced at once and the answer comes once each one was acknowledged or
    failed: 200 if all were acknowledged, 207 if only some, 503 if none."""
    raise AssertionError("served by producer_api.ingest (IngestRoute)")
