"""The API's Prometheus metrics, and their exposition at `GET /metrics`.

Each app has its metrics in a registry of its own (several apps in one process, as in
the tests, do not collide). With more than one server process (`API_WORKERS` > 1)
every process keeps its values in files under `PROMETHEUS_MULTIPROC_DIR`, which
`python -m producer_api` creates for the run (see `metrics_dir`), and a scrape answered
by any process reads all the files: one scrape shows the sum over the processes.
Counters and histograms keep the counts of processes that exited; gauges count live
processes only (`livesum`). docs/operations.md#metrics lists every metric.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable
from typing import Final, Literal, get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.requests import Request
from starlette.responses import Response

METRICS_PATH: Final = "/metrics"
# prometheus-client's own variable: set, the values of every process go to files there.
MULTIPROCESS_DIR_VARIABLE: Final = "PROMETHEUS_MULTIPROC_DIR"

PublishKind = Literal["reading", "batch"]

# A publish waits for acks=all: milliseconds when healthy, up to KAFKA_DELIVERY_TIMEOUT_MS
# (5 s by default, at most 300 s) when not.
_PUBLISH_BUCKETS: Final = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROCESS_DIR_VARIABLE) or None


class PublishMetrics:
    """What the publisher records: publish latency, failures, what waits for Kafka."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.publish_seconds = Histogram(
            "memtel_api_publish_duration_seconds",
            "Seconds from producing a publish's records to the broker's acknowledgement of "
            "the last of them, for publishes acknowledged in full; kind: reading (POST "
            "/cpu-info/{machine_id}) or batch (POST /cpu-info).",
            ["kind"],
            buckets=_PUBLISH_BUCKETS,
            registry=registry,
        )
        self.failures = Counter(
            "memtel_api_publish_failures",
            "Records Kafka did not acknowledge, by cause.",
            ["cause"],
            registry=registry,
        )
        self.client_errors = Counter(
            "memtel_api_kafka_client_errors",
            "Errors the Kafka producer reported (a broker unreachable reports one per "
            "reconnect attempt), by librdkafka error code; only the first of each code in "
            "an outage is logged.",
            ["code"],
            registry=registry,
        )
        self.publishes_in_flight = Gauge(
            "memtel_api_publishes_in_flight",
            "Publishes (one per POST) waiting for Kafka's acknowledgement (sampled every "
            "millisecond while records wait for Kafka, every 100 ms otherwise).",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.queued_records = Gauge(
            "memtel_api_producer_queue_records",
            "Records in the Kafka producers' queues: not yet acknowledged by the broker, "
            "or acknowledged and not yet reported.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        # Bound once: labels() takes a lock and a lookup on every call.
        self._seconds = {kind: self.publish_seconds.labels(kind) for kind in get_args(PublishKind)}
        self._sampled = (0, 0)

    @classmethod
    def unregistered(cls) -> PublishMetrics:
        """Metrics nobody exposes, for a publisher built outside an app."""
        return cls(CollectorRegistry())

    def expect_causes(self, causes: Iterable[str]) -> None:
        """Show every cause from the start, at 0, so that rates work from the first failure."""
        for cause in causes:
            self.failures.labels(cause)

    def sample(self, publishes_in_flight: int, queued_records: int) -> None:
        """Set the gauges, where they changed (the publisher calls this ten times a second)."""
        in_flight, queued = self._sampled
        if publishes_in_flight != in_flight:
            self.publishes_in_flight.set(publishes_in_flight)
        if queued_records != queued:
            self.queued_records.set(queued_records)
        self._sampled = (publishes_in_flight, queued_records)

    def acknowledged(self, kind: PublishKind, seconds: float) -> None:
        self._seconds[kind].observe(seconds)

    def failed(self, cause: str, records: int) -> None:
        self.failures.labels(cause).inc(records)

    def client_error(self, code: str) -> None:
        self.client_errors.labels(code).inc()


IngestSource = Literal["otlp", "remote-write"]
IngestOutcome = Literal["accepted", "rejected", "ignored"]


class IngestMetrics:
    """What the OTLP and remote-write endpoints made of what they were sent."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.points = Counter(
            "memtel_api_ingest_points",
            "Data points (OTLP) and samples (remote-write) received, by source (otlp, "
            "remote-write) and outcome: accepted (made a reading), rejected (memory "
            "points that made none: see the answer and the log), ignored (other metrics, "
            "and remote-write staleness markers).",
            ["source", "outcome"],
            registry=registry,
        )
        for source in get_args(IngestSource):
            for outcome in get_args(IngestOutcome):
                self.points.labels(source, outcome)

    def count(self, source: IngestSource, accepted: int, rejected: int, ignored: int) -> None:
        for outcome, points in (
            ("accepted", accepted),
            ("rejected", rejected),
            ("ignored", ignored),
        ):
            if points:
                self.points.labels(source, outcome).inc(points)


class ApiMetrics:
    """Every metric of one app, in the app's registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "memtel_api_requests",
            "HTTP requests answered, by method, route template (e.g. "
            "/cpu-info/{machine_id}; unmatched for a path no route serves) and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.publishing = PublishMetrics(self.registry)
        self.ingest = IngestMetrics(self.registry)

    def _registry_to_expose(self) -> CollectorRegistry:
        directory = multiprocess_dir()
        if directory is None:
            return self.registry
        # Every process's files, this one's included: the sum over the processes.
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
        return registry

    async def exposition(self, request: Request) -> Response:
        """The `GET /metrics` answer: Prometheus's text format, or OpenMetrics if asked."""
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        # Reading every process's file is file I/O: off the event loop.
        body = await asyncio.to_thread(lambda: encoder(self._registry_to_expose()))
        return Response(body, media_type=content_type)
