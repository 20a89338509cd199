"""HTTP routes. They stay thin: validation is the contract's, I/O the clients'."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from producer_api.batch_models import BatchAnswer, MachineReading
from producer_api.deps import PublisherDep, SettingsDep, StoreDep
from producer_api.errors import KAFKA_RETRY_AFTER_SECONDS, batch_delivery_failed
from producer_api.json_route import JSON_MEDIA_TYPE, StrictJsonRoute
from producer_api.publisher import DeliveryError, DeliveryReport
from producer_api.record_batch import encode_batch
from telemetry_common.contract import (
    EXAMPLE_READING,
    MACHINE_ID_MAX_LENGTH,
    MACHINE_ID_PATTERN,
    MemoryReading,
    encode_record,
    utc_now,
)

logger = logging.getLogger(__name__)

PARTITION_HEADER = "X-Kafka-Partition"
OFFSET_HEADER = "X-Kafka-Offset"

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


class ErrorMessage(BaseModel):
    """The body of an error answer other than 422: what was wrong, in words."""

    detail: str


def _error(description: str, example: str) -> dict[str, Any]:
    return {
        "model": ErrorMessage,
        "description": description,
        "content": {"application/json": {"example": {"detail": example}}},
    }


_KAFKA_POSITION_HEADERS: dict[str, Any] = {
    PARTITION_HEADER: {
        "description": "Kafka partition of the record.",
        "schema": {"type": "integer"},
    },
    OFFSET_HEADER: {"description": "Kafka offset of the record.", "schema": {"type": "integer"}},
}
_UNAVAILABLE: dict[str, Any] = {
    "model": ErrorMessage,
    "description": "Kafka or Redis is unavailable; retry after `Retry-After` seconds.",
    "headers": {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}},
}


# The answers to a bad request body, in the order they are checked (422, the model's
# errors, comes last and FastAPI documents it itself).
_BAD_BODY: dict[int | str, dict[str, Any]] = {
    400: _error(
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
            "application/json": {"example": {"detail": "Content Too Large"}},
            "text/plain": {"schema": {"type": "string"}, "example": "Content Too Large"},
        },
    },
    415: _error(
        "The body is not `application/json` in UTF-8, or has a Content-Encoding.",
        "the body must be application/json",
    ),
}

readings = APIRouter(tags=["readings"], route_class=StrictJsonRoute)
health = APIRouter(tags=["health"])


@readings.post(
    "/cpu-info/{machine_id}",
    summary="Publish a memory reading",
    response_model=dict[str, MemoryReading],
    responses={
        200: {
            "description": "The broker acknowledged the reading.",
            "headers": _KAFKA_POSITION_HEADERS,
        },
        **_BAD_BODY,
        503: _UNAVAILABLE,
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
    record = encode_record(machine_id, reading, utc_now())
    report = await publisher.publish(settings.kafka_topic, record)
    response.headers[PARTITION_HEADER] = str(report.partition)
    response.headers[OFFSET_HEADER] = str(report.offset)
    return {machine_id: reading}


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
_RETRY_AFTER_HEADER: dict[str, Any] = {
    "Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}
}

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


async def _batch_within_bound(request: Request, settings: SettingsDep) -> None:
    """413 for a batch of more items than API_MAX_BATCH_ITEMS, before any is validated.

    (FastAPI resolves this dependency before it validates the body; the body is the
    value StrictJsonRoute already parsed.)
    """
    document = await request.json()
    limit = settings.api_max_batch_items
    if isinstance(document, list) and len(document) > limit:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            detail=(
                f"a batch holds at most {limit} readings (API_MAX_BATCH_ITEMS); this one "
                f"holds {len(document)}: send them in smaller batches"
            ),
        )


@readings.post(
    "/cpu-info",
    summary="Publish a batch of readings",
    response_model=BatchAnswer,
    dependencies=[Depends(_batch_within_bound)],
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
            "headers": _RETRY_AFTER_HEADER,
            "content": {JSON_MEDIA_TYPE: {"example": _PARTLY_FAILED_EXAMPLE}},
        },
        **_BAD_BODY,
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
            "headers": _RETRY_AFTER_HEADER,
        },
    },
)
async def publish_batch(
    items: BatchBody, request: Request, publisher: PublisherDep, settings: SettingsDep
) -> Response:
    """Validate a batch of readings, item by item under the rules of the single endpoint,
    and publish them to Kafka, each keyed by its machine id. If any item is invalid the
    answer is 422 naming each invalid item and nothing is published. Otherwise every
    reading is produced at once and the answer comes once each one was acknowledged or
    failed: 200 if all were acknowledged, 207 if only some, 503 if none."""
    records = encode_batch([(item.machine_id, item.reading) for item in items], utc_now())
    outcomes = await publisher.publish_all(settings.kafka_topic, records)
    return batch_answer(request.url.path, outcomes)


def batch_answer(path: str, outcomes: Sequence[DeliveryReport | DeliveryError]) -> Response:
    """The answer to a batch: 200, 207 or 503 with what became of each reading."""
    failed = [outcome for outcome in outcomes if not isinstance(outcome, DeliveryReport)]
    if len(failed) == len(outcomes):
        return batch_delivery_failed(path, failed[0])
    if failed:
        logger.warning(
            "Kafka did not acknowledge %d of the %d readings of a batch: %s",
            len(failed),
            len(outcomes),
            failed[0],
        )
    body = {
        "acknowledged": len(outcomes) - len(failed),
        "failed": len(failed),
        "items": [
            {"status": "acknowledged", "partition": outcome.partition, "offset": outcome.offset}
            if isinstance(outcome, DeliveryReport)
            else {"status": "failed", "detail": str(outcome)}
            for outcome in outcomes
        ],
    }
    # Built from plain values: validating 1000 items against the answer model again
    # would cost as much as validating the request.
    return Response(
        json.dumps(body, separators=(",", ":")).encode(),
        status_code=status.HTTP_207_MULTI_STATUS if failed else status.HTTP_200_OK,
        media_type=JSON_MEDIA_TYPE,
        headers={"Retry-After": str(KAFKA_RETRY_AFTER_SECONDS)} if failed else None,
    )


@readings.get(
    "/cpu-info/{machine_id}",
    summary="Read a machine's latest reading",
    response_model=dict[str, MemoryReading],
    responses={
        200: {"description": "The latest stored reading.", "headers": _KAFKA_POSITION_HEADERS},
        404: {
            "description": "No reading stored for this machine.",
            "content": {"application/json": {"example": {"detail": "Data not found"}}},
        },
        503: _UNAVAILABLE,
    },
)
async def latest_reading(
    machine_id: MachineId, response: Response, store: StoreDep
) -> dict[str, MemoryReading]:
    """The latest reading the consumer worker stored for the machine."""
    stored = await store.latest(machine_id)
    if stored is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="Data not found")
    response.headers[PARTITION_HEADER] = str(stored.partition)
    response.headers[OFFSET_HEADER] = str(stored.offset)
    return {machine_id: stored.reading}


@health.get(
    "/healthz",
    summary="Liveness",
    responses={503: {"description": "The Kafka producer failed for good: restart the process."}},
)
async def liveness(publisher: PublisherDep) -> JSONResponse:
    """The process serves requests and its Kafka producer is usable (a producer that hit a
    fatal error stays broken until the process restarts)."""
    if not publisher.healthy:
        return JSONResponse({"status": "producer failed"}, status_code=503)
    return JSONResponse({"status": "ok"})


@health.get(
    "/readyz",
    summary="Readiness",
    responses={503: {"description": "A dependency is not reachable."}},
)
async def readiness(
    publisher: PublisherDep, store: StoreDep, settings: SettingsDep
) -> JSONResponse:
    """Kafka knows the topic and Redis answers."""
    kafka_ok, redis_ok = await asyncio.gather(
        publisher.topic_available(settings.kafka_topic, timeout_seconds=2.0),
        _redis_answers(store),
    )
    kafka_ok = kafka_ok and publisher.healthy
    checks = {
        "kafka": "ok" if kafka_ok else "unavailable",
        "redis": "ok" if redis_ok else "unavailable",
    }
    ready = kafka_ok and redis_ok
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status_code=status.HTTP_200_OK if ready else status.HTTP_503_SERVICE_UNAVAILABLE,
    )


async def _redis_answers(store: StoreDep) -> bool:
    try:
        return await store.ping()
    except Exception:  # any failure means not ready; the detail is in the Redis log
        return False
