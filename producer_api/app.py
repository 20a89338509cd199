"""The FastAPI application factory and its lifespan."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from importlib.metadata import version

from fastapi import FastAPI
from starlette.types import ASGIApp

from producer_api.deps import AppState
from producer_api.docs import install_docs
from producer_api.errors import install_error_handlers
from producer_api.fast_path import IngestFastPath
from producer_api.publisher import KafkaPublisher, Publisher
from producer_api.routes import health, readings
from producer_api.settings import ProducerSettings
from producer_api.store import ReadingStore
from telemetry_common.logs import configure_logging
from telemetry_common.redis_client import create_async_redis

DESCRIPTION = """
Machines report their memory readings (the columns of Linux `free`, in KiB). Each
reading is validated and published to Kafka keyed by the machine id; a consumer
worker stores the latest reading per machine in Redis, where `GET` reads it.
"""


class ProducerApi(FastAPI):
    """The FastAPI app, with `IngestFastPath` in front of its middleware stack."""

    def build_middleware_stack(self) -> ASGIApp:
        return IngestFastPath(super().build_middleware_stack(), max_body_bytes=self.max_body_size)


def kafka_publisher(settings: ProducerSettings) -> Publisher:
    return KafkaPublisher(settings.producer_config())


def create_app(
    settings: ProducerSettings | None = None,
    *,
    publisher_factory: Callable[[ProducerSettings], Publisher] = kafka_publisher,
) -> FastAPI:
    """Build the app. Clients are created when the app starts, not here.

    `publisher_factory` builds the publisher in the lifespan: the Kafka producer, or
    for a measurement of the app without Kafka, a publisher that does not publish.
    """
    app_settings = settings if settings is not None else ProducerSettings()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[AppState]:
        publisher = publisher_factory(app_settings)
        redis_client = create_async_redis(app_settings)
        try:
            yield {
                "settings": app_settings,
                "publisher": publisher,
                "store": ReadingStore(redis_client, app_settings.redis_deadline_seconds),
            }
        finally:
            await publisher.close(app_settings.shutdown_flush_timeout_seconds)
            await redis_client.aclose()

    app = ProducerApi(
        title="Memory telemetry API",
        version=version("memtelemetry"),
        description=DESCRIPTION,
        lifespan=lifespan,
        # Starlette's body limit: 413 when Content-Length is over it, before the body is
        # read; otherwise counted chunk by chunk, 413 as soon as the count passes it.
        max_body_size=app_settings.api_max_body_bytes,
        # FastAPI's docs pages load their assets from a CDN; install_docs serves them.
        docs_url=None,
        redoc_url=None,
    )
    install_docs(app)
    install_error_handlers(app)
    app.include_router(readings)
    app.include_router(health)
    return app


def serve_app(
    publisher_factory: Callable[[ProducerSettings], Publisher] = kafka_publisher,
) -> FastAPI:
    """The app as `python -m producer_api` serves it, built in each worker process.

    A worker process starts afresh (uvicorn spawns it), so it reads the settings and
    sets up logging itself; the lifespan then gives it a Kafka producer of its own.
    """
    settings = ProducerSettings()
    configure_logging(settings.log_level)
    app = create_app(settings, publisher_factory=publisher_factory)
    # The tens of thousands of objects built so far (modules, models, routes) live as
    # long as the process. Left to the garbage collector, every full collection under
    # load walked them all and held the event loop for tens of milliseconds, a few times
    # in ten seconds: each time, every request in flight waited. Frozen, they are skipped.
    gc.freeze()
    return app
