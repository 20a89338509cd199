"""A Kafka outage under load is logged by its changes of state, not per error.

The broker is killed for a few seconds while readings stream through the API and the
worker consumes them. librdkafka reports an error per reconnect attempt and every POST
fails meanwhile: each service logs only the first error of each kind and one line when
Kafka is back, and counts every error in its metrics (docs/operations.md, "Logs").
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack import services
from devstack.ports import free_port
from devstack.processes import ManagedProcess
from devstack.settings import DevstackSettings
from devstack.stack import LocalStack
from tests.faults.stream import ReadingStream
from tests.faults.system import POST_BOUND_SECONDS, hold, kill, log_size, service_env
from tests.helpers import unique, wait_until

pytestmark = pytest.mark.timeout(600)

OUTAGE_SECONDS = 8
# What "a handful" means: the first error of each kind (connection refused, all brokers
# down, a publish, a commit or a metadata read that failed, the group session lost) and
# the recovery line. Logged one by one, the same outage wrote over 200 lines per process.
MOST_LINES_PER_PROCESS = 8
# Each API server process has a Kafka producer (and a log of its own outage) of its own.
API_WORKERS = 2


@contextmanager
def api_and_worker(
    stack: LocalStack, work_dir: Path
) -> Iterator[tuple[ManagedProcess, ManagedProcess, int]]:
    """The API and a worker logging JSON, and the free port the worker serves metrics on."""
    extra = {**service_env(static_member=False), "LOG_FORMAT": "json"}
    metrics_port = free_port()
    api = services.producer_api(
        work_dir, {**stack.api_env(), **extra, "API_WORKERS": str(API_WORKERS)}
    )
    worker = services.consumer_worker(
        work_dir, {**stack.worker_env(), **extra, "WORKER_METRICS_PORT": str(metrics_port)}
    )
    api.start()
    try:
        worker.start()
        try:
            yield api, worker, metrics_port
        finally:
            worker.stop()
    finally:
        api.stop()


def log_since(process: ManagedProcess, offset: int) -> list[dict[str, Any]]:
    with process.log_path.open("rb") as log:
        log.seek(offset)
        lines = log.read().decode(errors="replace").splitlines()
    entries = []
    for line in lines:
        try:
            entries.append(json.loads(line))
        except ValueError:
            entries.append({"level": "RAW", "logger": "?", "message": line})
    return entries


def noteworthy(entries: list[dict[str, Any]]) -> list[str]:
    """The lines at WARNING and above, and every line about Kafka."""
    return [
        f"{e['level']} {e['logger']}: {e['message']}"
        for e in entries
        if e["level"] not in {"INFO", "DEBUG"} or "kafka" in f"{e['logger']} {e['message']}".lower()
    ]


def counter_sum(url: str, name: str) -> float:
    """The sum of a counter's samples over its labels, as /metrics shows them."""
    text = httpx.get(url, timeout=5).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(f"{name}{{") or line.startswith(f"{name} ")
    )


def test_a_kafka_outage_under_load_is_logged_once_and_counted(tmp_path: Path) -> None:
    settings = DevstackSettings.on_free_ports(
        kafka_topic=unique("readings"),
        kafka_dead_letter_topic=unique("readings-dlq"),
        kafka_consumer_group=unique("writers"),
        kafka_topic_partitions=3,
    )
    with (
        LocalStack(settings, tmp_path / "stack") as stack,
        api_and_worker(stack, tmp_path / "apps") as (api, worker, metrics_port),
    ):
        api_url = f"http://{services.HOST}:{stack.api_env()['API_PORT']}"
        worker_metrics = f"http://{services.HOST}:{metrics_port}/metrics"
        stream = ReadingStream(
            api_url,
            machines=50,
            readings_per_machine=200,
            bound_seconds=POST_BOUND_SECONDS,
            rate_per_second=200,
        ).start()
        stream.wait_for_sent(500, timeout=120)
        offsets = {process: log_size(process) for process in (api, worker)}
        api_errors_before = counter_sum(
            f"{api_url}/metrics", "memtel_api_kafka_client_errors_total"
        )

        kafka = stack.process("kafka")
        kill(kafka)
        hold(OUTAGE_SECONDS)
        kafka.start()
        restarted = time.monotonic()

        def recovered(process: ManagedProcess) -> bool:
            return any(
                str(e["message"]).startswith("Kafka reachable again after ")
                for e in log_since(process, offsets[process])
            )

        for process in (api, worker):
            wait_until(partial(recovered, process), 90, f"{process.name} to see Kafka back")
        recovery_seconds = time.monotonic() - restarted
        # Nothing more is logged about the outage once Kafka is back and answering.
        wait_until(lambda: stream.sent() >= 2000, 120, "readings flowing again")
        ledger = stream.join(timeout=300)
        api_errors = counter_sum(f"{api_url}/metrics", "memtel_api_kafka_client_errors_total")
        worker_errors = counter_sum(worker_metrics, "memtel_worker_kafka_client_errors_total")

        lines = {p.name: noteworthy(log_since(p, offsets[p])) for p in (api, worker)}
    figures = {
        "lines": lines,
        "api_client_errors": api_errors - api_errors_before,
        "worker_client_errors": worker_errors,
        "statuses": ledger.statuses,
        "recovery_seconds": round(recovery_seconds, 1),
    }
    print(f"[outage logs] {json.dumps(figures, default=str)}")
    for process, processes in ((api, API_WORKERS), (worker, 1)):
        logged = lines[process.name]
        assert len(logged) <= MOST_LINES_PER_PROCESS * processes, (process.name, logged)
        back = [line for line in logged if "Kafka reachable again after " in line]
        assert len(back) == processes, (process.name, logged)
        started = [line for line in logged if "(Kafka unreachable; " in line]
        assert len(started) == processes, (process.name, logged)
    # Every client error is counted, the first ones that were logged included. The API's
    # producers, publishing all along, met many more than they logged; the worker, whose
    # reconnect attempts back off, met a few (its other lines are other changes of
    # state: the group session lost, its partitions revoked).
    assert api_errors - api_errors_before > len(lines[api.name]), figures
    worker_error_lines = [line for line in lines[worker.name] if "Kafka client error" in line]
    assert worker_errors >= len(worker_error_lines) >= 1, figures
    # Under load some POSTs failed while Kafka was away (answered 503), and each failure
    # is in the API's publish failures rather than in a line of its own.
    assert 503 in ledger.statuses, figures
