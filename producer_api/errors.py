"""Error answers: Kafka or Redis failures become 503 with a clear detail and Retry-After;
bad requests get answers that are safe to encode (see `validation_errors`) and a full
`Allow` on 405 (see `allowed_methods`)."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException as StarletteHTTPException

from producer_api.headers import RETRY_AFTER_HEADER
from producer_api.ingest import answers
from producer_api.ingest.answers import KAFKA_RETRY_AFTER_SECONDS as KAFKA_RETRY_AFTER_SECONDS
from producer_api.middleware.allowed_methods import method_not_allowed
from producer_api.publisher import DeliveryError
from producer_api.store import RedisDeadlineExceededError
from producer_api.validation_errors import invalid_request
from telemetry_common.storage import DamagedStoredReadingError

logger = logging.getLogger(__name__)

REDIS_RETRY_AFTER_SECONDS = 2


def _unavailable(detail: str, retry_after: int) -> JSONResponse:
    return JSONResponse(
        {"detail": detail},
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={RETRY_AFTER_HEADER: str(retry_after)},
    )


def delivery_failed(path: str, exc: Exception) -> Response:
    """The answer to a reading Kafka did not acknowledge (logged here): the ingest
    endpoints' own (`producer_api.ingest.answers`), for the other routes that publish."""
    answer = answers.delivery_failed(path, exc)
    response = Response(answer.body, status_code=answer.status)
    response.raw_headers = answer.headers
    return response


async def _delivery_failed(request: Request, exc: Exception) -> Response:
    return delivery_failed(request.url.path, exc)


async def _redis_failed(request: Request, exc: Exception) -> JSONResponse:
    logger.warning("Redis call failed for %s: %s", request.url.path, exc)
    return _unavailable(
        f"Redis is unavailable ({type(exc).__name__}). Retry later.", REDIS_RETRY_AFTER_SECONDS
    )


async def _redis_too_slow(request: Request, exc: Exception) -> JSONResponse:
    logger.warning("Redis call exceeded its deadline for %s: %s", request.url.path, exc)
    return _unavailable(
        f"{exc}; it is unavailable or overloaded. Retry later.", REDIS_RETRY_AFTER_SECONDS
    )


async def _stored_data_damaged(request: Request, exc: Exception) -> JSONResponse:
    # Not the client's fault and not passing: someone edited or corrupted the hash.
    logger.error("damaged data in Redis for %s: %s", request.url.path, exc)
    return JSONResponse(
        {"detail": f"Redis holds damaged data: {exc}. It cannot be served until it is fixed."},
        status_code=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DeliveryError, _delivery_failed)
    app.add_exception_handler(RedisError, _redis_failed)
    app.add_exception_handler(RedisDeadlineExceededError, _redis_too_slow)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(StarletteHTTPException, method_not_allowed)
    app.add_exception_handler(DamagedStoredReadingError, _stored_data_damaged)
