"""A real Prometheus scrapes a real node exporter and remote-writes its memory series to
the API with the block docs/ingest.md gives users: this machine's reading appears.

Both are Debian's, unpacked into .tools/ (scripts/fetch-prometheus.sh), run on free
ports with the API and a worker on the real stack.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from devstack.stack import LocalStack
from tests.helpers import api_and_worker, unique, wait_until
from tests.ingest_senders import node_exporter, prometheus_remote_writing, read_meminfo
from tests.prometheus_tools import PrometheusTools, ensure_prometheus

API_KEY = "remote-write-key-0123456789"


@pytest.fixture
def exits() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


def test_prometheus_remote_writes_node_exporters_memory_as_this_machines_reading(
    stack: LocalStack, topic: str, tmp_path: Path, exits: ExitStack
) -> None:
    tools: PrometheusTools = ensure_prometheus()
    machine_id = unique("rw-host")
    api, _ = exits.enter_context(
        api_and_worker(stack, tmp_path, {"KAFKA_TOPIC": topic, "API_KEYS": API_KEY})
    )
    exporter, target = node_exporter(tools, tmp_path)
    exporter.start()
    exits.callback(exporter.stop)
    started_ms = time.time_ns() // 1_000_000
    prometheus = prometheus_remote_writing(tools, tmp_path, target, api, API_KEY, machine_id)
    prometheus.start()
    exits.callback(prometheus.stop)

    def stored() -> dict[str, int] | None:
        response = httpx.get(f"{api}/cpu-info/{machine_id}", timeout=5)
        if response.status_code == 404:
            return None
        assert response.status_code == 200, response.text
        reading: dict[str, int] = response.json()[machine_id]
        return reading

    wait_until(lambda: stored() is not None, 90, "a remote-written reading", interval=0.5)
    reading = stored()
    assert reading is not None
    meminfo = read_meminfo()
    assert reading["total"] == meminfo["MemTotal"]
    # The columns hold together as free's do.
    assert reading["used"] == reading["total"] - reading["available"]
    assert 0 < reading["free"] <= reading["available"] <= reading["total"]
    assert 0 < reading["shared"] < reading["total"]

    # Stored under the scrape's time, not the API's clock when it arrived.
    history = httpx.get(f"{api}/cpu-info/{machine_id}/history", timeout=5).json()["entries"]
    assert all(started_ms <= entry["timestamp_ms"] for entry in history)
    metrics = httpx.get(f"{api}/metrics", timeout=5).text
    accepted = next(
        line
        for line in metrics.splitlines()
        if line.startswith("memtel_api_ingest_points_total{")
        and 'source="remote-write"' in line
        and 'outcome="accepted"' in line
    )
    assert float(accepted.rsplit(" ", 1)[1]) >= 7
