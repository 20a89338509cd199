"""The FastAPI application factory and its lifespan."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from importlib.metadata import version
from typing import Any

from fastapi import Depends, FastAPI
from starlette.types import ASGIApp

from producer_api.api_keys import ApiKeys
from producer_api.auth import KeyCheck
from producer_api.deps import AppState
from producer_api.errors import install_error_handlers
from producer_api.ingest.core import IngestRules
from producer_api.metrics import METRICS_PATH, ApiMetrics
from producer_api.middleware.cors import with_cors
from producer_api.middleware.ingest_endpoints import IngestEndpoints
from producer_api.middleware.request_ids import with_request_ids
from producer_api.middleware.request_metrics import RequestCounting
from producer_api.publisher import KafkaPublisher, Publisher
from producer_api.routes import KEYED_ROUTERS, health
from producer_api.routes.dashboard import install_dashboard
from producer_api.routes.docs import install_docs
from producer_api.schemas import exact_bounds
from producer_api.settings import ProducerSettings
from producer_api.store import ReadingStore
from telemetry_common.logs import configure_logging
from telemetry_common.redis_client import create_async_redis, discover_cluster

logger = logging.getLogger(__name__)

DESCRIPTION = """
Machines report their memory readings (the columns of Linux `free`, in KiB). Each
reading is validated and published to Kafka keyed by the machine id; a consumer
worker stores the latest reading per machine in Redis, where `GET` reads it.

Every answer carries an `X-Request-ID` header: the request's own when it sent a usable
one, else a new one. The API's log lines of the request carry the same id.
"""


class ProducerApi(FastAPI):
    """The FastAPI app, with what must see every request in front of its middleware stack.

    From the outside in: the request id (so every answer and log line has it), the
    request counter, CORS when configured, then `IngestEndpoints`, which answers the
    two ingest POSTs itself with `ingest_rules`, and only then FastAPI's own stack.
    FastAPI's `add_middleware` would put them behind the ingest endpoints, where they
    would miss what those answer.
    """

    def __init__(
        self,
        *,
        metrics: ApiMetrics,
        key_check: KeyCheck | None,
        cors_origins: list[str],
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.metrics = metrics
        self.key_check = key_check
        self.cors_origins = cors_origins
        # The rules of the ingest POSTs, also read by their routes (`IngestRoute`).
        self.ingest_rules = IngestRules(max_body_bytes=self.max_body_size, key_check=key_check)

    def build_middleware_stack(self) -> ASGIApp:
        app: ASGIApp = IngestEndpoints(super().build_middleware_stack(), self.ingest_rules)
        app = with_cors(app, self.cors_origins)
        app = RequestCounting(app, self.metrics.requests)
        return with_request_ids(app)

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            schema = super().openapi()
            if self.key_check is not None:
                self.key_check.document(schema)
            exact_bounds(schema)
        return super().openapi()


def create_app(
    settings: ProducerSettings | None = None,
    *,
    publisher_factory: Callable[[ProducerSettings], Publisher] | None = None,
) -> FastAPI:
    """Build the app. Clients are created when the app starts, not here.

    `publisher_factory` builds the publisher in the lifespan; by default the Kafka
    producer, reporting to the app's metrics. For a measurement of the app without Kafka
    it gives a publisher that does not publish.
    """
    app_settings = settings if settings is not None else ProducerSettings()
    metrics = ApiMetrics()

    def kafka_publisher(settings: ProducerSettings) -> Publisher:
        return KafkaPublisher(settings.producer_config(), metrics.publishing)

    build_publisher = publisher_factory if publisher_factory is not None else kafka_publisher
    digests = app_settings.api_key_digests
    key_check = (
        KeyCheck(ApiKeys(digests), protect_reads=app_settings.api_keys_protect_reads)
        if digests
        else None
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[AppState]:
        _log_access_rules(app_settings)
        publisher = build_publisher(app_settings)
        redis_client = create_async_redis(app_settings)
        await discover_cluster(redis_client, app_settings.redis_deadline_seconds)
        try:
            yield {
                "settings": app_settings,
                "publisher": publisher,
                "store": ReadingStore(
                    redis_client,
                    app_settings.redis_deadline_seconds,
                    consumer_group=app_settings.kafka_consumer_group,
                    topic=app_settings.kafka_topic,
                ),
            }
        finally:
            await publisher.close(app_settings.shutdown_flush_timeout_seconds)
            await redis_client.aclose()

    app = ProducerApi(
        metrics=metrics,
        key_check=key_check,
        cors_origins=app_settings.api_cors_allow_origins,
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
        # Every operation, present or future, is named after its route: `publish_reading`.
        generate_unique_id_function=lambda route: route.name,
    )
    install_docs(app)
    install_dashboard(app)
    install_error_handlers(app)
    # At router level: every route of these routers, present or future, needs the key.
    for router in KEYED_ROUTERS:
        app.include_router(router, dependencies=[Depends(key_check)] if key_check else [])
    app.include_router(health.router)
    # For Prometheus, not for API clients: outside the OpenAPI document.
    app.add_route(METRICS_PATH, metrics.exposition, methods=["GET"], include_in_schema=False)
    return app


def _log_access_rules(settings: ProducerSettings) -> None:
    """One line at startup on who may call the API (how many keys, never a key)."""
    keys = len(settings.api_key_digests)
    if keys:
        reads = "writes and reads" if settings.api_keys_protect_reads else "writes"
        accepted = "1 key" if keys == 1 else f"{keys} keys"
        logger.info("API keys required for %s: %s accepted", reads, accepted)
    else:
        logger.info("no API key required (API_KEYS and API_KEYS_FILE unset)")
    if settings.api_cors_allow_origins:
        origins = ", ".join(settings.api_cors_allow_origins)
        logger.info("CORS: pages of %s may call the API", origins)


def serve_app(
    publisher_factory: Callable[[ProducerSettings], Publisher] | None = None,
) -> FastAPI:
    """The app as `python -m producer_api` serves it, built in each worker process.

    A worker process starts afresh (uvicorn spawns it), so it reads the settings and
    sets up logging itself; the lifespan then gives it a Kafka producer of its own.
    """
    settings = ProducerSettings()
    configure_logging(settings.log_level, settings.log_format)
    app = create_app(settings, publisher_factory=publisher_factory)
    # The tens of thousands of objects built so far (modules, models, routes) live as
    # long as the process. Left to the garbage collector, every full collection under
    # load walked them all and held the event loop for tens of milliseconds, a few times
    # in ten seconds: each time, every request in flight waited. Frozen, they are skipped.
    gc.freeze()
    return app
