"""The worker's Prometheus metrics, and the HTTP server that serves them and /healthz.

Each worker has a registry of its own (no process-wide state): several workers in one
process, as in the tests, do not share counters. The server runs on threads of its own,
so it answers scrapes while the loop is stuck retrying Redis; it only reads metric
values and the loop's last reported health, never the Kafka consumer.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any, Final
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app

from consumer_worker.heartbeat import Verdict

logger = logging.getLogger(__name__)

HEALTH_PATH: Final = "/healthz"

# Records per batch: from a single record (a quiet topic) up to WORKER_BATCH_SIZE's
# largest allowed value.
_BATCH_SIZE_BUCKETS: Final = (1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 100_000)
# One script per batch: well under a millisecond for a few readings, some milliseconds
# per thousand; seconds mean Redis is in trouble (its timeout is 2 s by default).
_REDIS_WRITE_BUCKETS: Final = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)


class WorkerMetrics:
    """Every metric the worker exports (docs/operations.md, "Worker metrics")."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.records_consumed = Counter(
            "memtel_worker_records_consumed",
            "Records taken from Kafka (read again after a replay: counted again).",
            ["topic", "partition"],
            registry=registry,
        )
        self.readings_written = Counter(
            "memtel_worker_readings_written",
            "Readings stored in Redis as their machine's new latest reading.",
            registry=registry,
        )
        self.readings_stale = Counter(
            "memtel_worker_readings_stale",
            "Readings not stored because Redis already held a newer one of the machine "
            "(replays, or older readings arriving late).",
            registry=registry,
        )
        self.readings_superseded = Counter(
            "memtel_worker_readings_superseded",
            "Readings not compared with the machine's latest in Redis because the same "
            "batch held a newer one of the machine (the history, if kept, still gets them).",
            registry=registry,
        )
        self.records_dead_lettered = Counter(
            "memtel_worker_records_dead_lettered",
            "Records the worker could not use, acknowledged by the dead-letter topic.",
            registry=registry,
        )
        self.retirements_applied = Counter(
            "memtel_worker_retirements_applied",
            "Retirement records applied: the machine's latest reading, history and fleet "
            "entries of the record's partition removed (docs/api.md, retiring a machine).",
            registry=registry,
        )
        self.batch_size = Histogram(
            "memtel_worker_batch_size_records",
            "Records per batch taken from Kafka.",
            buckets=_BATCH_SIZE_BUCKETS,
            registry=registry,
        )
        self.redis_write_duration = Histogram(
            "memtel_worker_redis_write_duration_seconds",
            "Duration of each successful batch write to Redis (one script).",
            buckets=_REDIS_WRITE_BUCKETS,
            registry=registry,
        )
        self.redis_failures = Counter(
            "memtel_worker_redis_failures",
            "Redis calls that failed; each failed batch write or read of the view is "
            "retried with backoff.",
            ["operation"],
            registry=registry,
        )
        self.dead_letter_failures = Counter(
            "memtel_worker_dead_letter_failures",
            "Sends to the dead-letter topic that were not acknowledged (then retried).",
            registry=registry,
        )
        self.commit_failures = Counter(
            "memtel_worker_commit_failures",
            "Offset commits to Kafka that failed (the next one covers them).",
            registry=registry,
        )
        self.offset_commits = Counter(
            "memtel_worker_offset_commits",
            "Offset commits sent to Kafka (each covers every partition owed one).",
            registry=registry,
        )
        self.kafka_client_errors = Counter(
            "memtel_worker_kafka_client_errors",
            "Errors the worker's Kafka clients reported (a broker unreachable reports one "
            "per reconnect attempt), by librdkafka error code; only the first of each "
            "code in an outage is logged.",
            ["code"],
            registry=registry,
        )
        self.view_replays = Counter(
            "memtel_worker_view_replays",
            "Partitions read again because Redis's view of them was behind what the "
            "worker wrote (Redis lost writes, was emptied or replaced).",
            registry=registry,
        )
        self.consumer_lag = Gauge(
            "memtel_worker_consumer_lag_records",
            "Records of an assigned partition not yet in Redis (or the dead-letter "
            "topic): its high watermark minus the offset Redis's view is built up to.",
            ["topic", "partition"],
            registry=registry,
        )
        self.paused_partitions = Gauge(
            "memtel_worker_paused_partition_schema_version",
            "Partitions the worker holds at a record of a newer schema_version than it "
            "reads, waiting for an upgraded worker: the version seen (present only while "
            "held; docs/operations.md, Upgrading).",
            ["topic", "partition"],
            registry=registry,
        )
        self.last_progress = Gauge(
            "memtel_worker_last_progress_timestamp_seconds",
            "When the worker last stored a batch in Redis or dead-lettered records, in "
            "seconds since the epoch.",
            registry=registry,
        )
        # Both operations appear from the start, at 0, so that rate() sees the first one.
        for operation in ("write", "read_view"):
            self.redis_failures.labels(operation)

    def consumed(self, counts: Iterable[tuple[tuple[str, int], int]]) -> None:
        for (topic, partition), count in counts:
            self.records_consumed.labels(topic, str(partition)).inc(count)


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    # A thread per request, so that a slow client holds up no other scrape; daemon
    # threads, so that one cannot keep the process alive.
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every few seconds would drown the worker's own log lines."""


class MetricsServer:
    """Serves the registry's metrics on every path but /healthz, which answers the
    worker's health: 200 with one line if healthy, 503 with why if not."""

    def __init__(self, registry: CollectorRegistry, health: Callable[[], Verdict]) -> None:
        metrics_app = make_wsgi_app(registry)

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
            if environ.get("PATH_INFO") != HEALTH_PATH:
                answer: list[bytes] = metrics_app(environ, start_response)
                return answer
            verdict = health()
            status = "200 OK" if verdict.healthy else "503 Service Unavailable"
            start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
            return [f"{verdict.message}\n".encode()]

        self._app = app
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self, host: str, port: int) -> None:
        """Listen on host:port and serve from a thread. Raises OSError if it cannot."""
        server_class = type(
            "MetricsWSGIServer", (_ThreadingWSGIServer,), {"address_family": _family_of(host)}
        )
        self._server = make_server(
            host, port, self._app, server_class=server_class, handler_class=_QuietHandler
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="worker-metrics", daemon=True
        )
        self._thread.start()

    @property
    def port(self) -> int | None:
        """The port listened on (None: not serving)."""
        return None if self._server is None else self._server.server_port

    def close(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = self._thread = None


def _family_of(host: str) -> socket.AddressFamily:
    """IPv4 or IPv6, as the host is written (WSGIServer assumes IPv4)."""
    family, *_ = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    return family
