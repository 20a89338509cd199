"""HTTP routes. They stay thin: validation is the contract's, I/O the clients'."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from producer_api.deps import PublisherDep, SettingsDep, StoreDep
from producer_api.json_route import StrictJsonRoute
from telemetry_common.contract import (
    MACHINE_ID_MAX_LENGTH,
    MACHINE_ID_PATTERN,
    MemoryReading,
    encode_record,
    utc_now,
)

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
