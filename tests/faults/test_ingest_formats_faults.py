"""Kafka down while OTLP and remote-write senders push: 503 with Retry-After, nothing
acknowledged is lost, and the senders' own retries deliver once Kafka is back.

The senders are the real ones: the OpenTelemetry SDK's OTLP/HTTP exporter (it retries a
503 within its timeout) and Debian's Prometheus remote-writing a node exporter's series
(it retries 5xx). Each scenario has a system of its own (tests/faults/system.py).
"""

from __future__ import annotations

import threading
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
from google.rpc import code_pb2, status_pb2

from tests.faults.system import POST_BOUND_SECONDS, fault_system, kill
from tests.helpers import unique, wait_until
from tests.ingest_senders import (
    node_exporter,
    otlp_exporting,
    prometheus_remote_writing,
    sdk_request,
)
from tests.prometheus_tools import ensure_prometheus

PROTOBUF = "application/x-protobuf"


def answered(api_url: str, route: str, status: int) -> float:
    """How many requests of `route` the API answered with `status` (its /metrics)."""
    total = 0.0
    for line in httpx.get(f"{api_url}/metrics", timeout=5).text.splitlines():
        if (
            line.startswith("memtel_api_requests_total{")
            and f'route="{route}"' in line
            and f'status="{status}"' in line
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total


def history(api_url: str, machine_id: str) -> list[int]:
    """The timestamps of the machine's stored readings, oldest first."""
    response = httpx.get(f"{api_url}/cpu-info/{machine_id}/history?limit=1000", timeout=5)
    if response.status_code == 404:
        return []
    assert response.status_code == 200, response.text
    return sorted(entry["timestamp_ms"] for entry in response.json()["entries"])


def test_otlp_push_while_kafka_is_down_is_503_and_the_exporters_retry_delivers(
    tmp_path: Path,
) -> None:
    # Kafka stays down past the session timeout: a dynamic member, as no supervisor here
    # restarts a fenced static one.
    with fault_system(tmp_path, static_member=False) as system:
        api = system.api_url
        before = unique("otlp-before")
        body = sdk_request(before).SerializeToString()
        headers = {"Content-Type": PROTOBUF}
        ok = httpx.post(f"{api}/v1/metrics", content=body, headers=headers, timeout=30)
        assert ok.status_code == 200, ok.text
        # The pipeline runs end to end (the worker holds its partitions) before the fault.
        wait_until(lambda: history(api, before) != [], 60, "the reading before the outage")

        kill(system.stack.process("kafka"))
        started = time.monotonic()
        refused = httpx.post(
            f"{api}/v1/metrics",
            content=sdk_request(unique("otlp-refused")).SerializeToString(),
            headers=headers,
            timeout=30,
        )
        # Answered within the delivery timeout plus a second, with a reason to retry.
        assert time.monotonic() - started <= POST_BOUND_SECONDS + 1
        assert refused.status_code == 503
        assert int(refused.headers["Retry-After"]) > 0
        status = status_pb2.Status()
        status.ParseFromString(refused.content)
        assert status.code == code_pb2.UNAVAILABLE
        assert "Kafka did not acknowledge" in status.message

        retried = unique("otlp-retried")
        flushed: list[bool] = []
        with otlp_exporting(f"{api}/v1/metrics", retried, timeout_seconds=120) as (provider, _):
            sender = threading.Thread(
                target=lambda: flushed.append(provider.force_flush(timeout_millis=120_000))
            )
            sender.start()
            # The exporter's first attempt is refused too, then Kafka comes back.
            wait_until(lambda: answered(api, "/v1/metrics", 503) >= 2, 60, "a refused export")
            system.stack.process("kafka").start()
            sender.join(timeout=150)
        assert flushed == [True]

        wait_until(lambda: history(api, retried) != [], 60, "the retried export stored")
        # Acknowledged before the fault: still served.
        wait_until(lambda: history(api, before) != [], 60, "the earlier reading served")
        assert len(history(api, before)) == 1


def test_remote_write_while_kafka_is_down_is_503_and_prometheus_retries_deliver(
    tmp_path: Path,
) -> None:
    tools = ensure_prometheus()
    machine_id = unique("rw-fault")
    with fault_system(tmp_path, static_member=False) as system, ExitStack() as exits:
        api = system.api_url
        exporter, target = node_exporter(tools, tmp_path)
        exporter.start()
        exits.callback(exporter.stop)
        prometheus = prometheus_remote_writing(tools, tmp_path, target, api, "unused", machine_id)
        prometheus.start()
        exits.callback(prometheus.stop)
        wait_until(lambda: history(api, machine_id) != [], 90, "remote-written readings")
        acknowledged = history(api, machine_id)

        kafka = system.stack.process("kafka")
        killed_ms = time.time_ns() // 1_000_000
        kill(kafka)
        wait_until(lambda: answered(api, "/api/v1/write", 503) >= 2, 60, "remote-writes refused")
        restarted_ms = time.time_ns() // 1_000_000
        kafka.start()

        # Scrapes taken while Kafka was down arrive through Prometheus' retries.
        def outage_delivered() -> bool:
            return any(killed_ms <= t <= restarted_ms for t in history(api, machine_id))

        wait_until(outage_delivered, 120, "readings scraped during the outage", interval=1)
        stored = history(api, machine_id)
        assert set(acknowledged) <= set(stored), "a reading acknowledged before was lost"
