"""`GET /healthz` and `GET /readyz`: whether the process lives and its dependencies answer."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, status
from fastapi.responses import JSONResponse

from producer_api.deps import PublisherDep, SettingsDep, StoreDep
from producer_api.json_route import JSON_MEDIA_TYPE
from producer_api.schemas import Liveness, Readiness

router = APIRouter(tags=["health"])


@router.get(
    "/healthz",
    operation_id="check_liveness",
    summary="Liveness",
    response_model=Liveness,
    responses={
        200: {"content": {JSON_MEDIA_TYPE: {"example": {"status": "ok"}}}},
        503: {
            "model": Liveness,
            "description": "The Kafka producer failed for good: restart the process.",
            "content": {JSON_MEDIA_TYPE: {"example": {"status": "producer failed"}}},
        },
    },
)
async def liveness(publisher: PublisherDep) -> JSONResponse:
    """The process serves requests and its Kafka producer is usable (a producer that hit a
    fatal error stays broken until the process restarts)."""
    if not publisher.healthy:
        return JSONResponse({"status": "producer failed"}, status_code=503)
    return JSONResponse({"status": "ok"})


@router.get(
    "/readyz",
    operation_id="check_readiness",
    summary="Readiness",
    response_model=Readiness,
    responses={
        503: {
            "model": Readiness,
            "description": "A dependency is not reachable.",
            "content": {
                JSON_MEDIA_TYPE: {
                    "example": {
                        "status": "not ready",
                        "checks": {"kafka": "ok", "redis": "unavailable"},
                    }
                }
            },
        },
    },
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
