"""The real senders of the ingest-format tests: the OpenTelemetry SDK reporting this
machine's memory as the Collector's hostmetrics receiver names it, and remote-write
bodies as Prometheus builds them.

hostmetrics reads memory through gopsutil, whose figures are `/proc/meminfo`'s with
SReclaimable added to Cached and `used` = MemTotal - MemFree - Buffers - Cached; the
callbacks here report the same from one read of `/proc/meminfo` per collection.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import cramjam
import yaml
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from devstack import services
from devstack.ports import free_port
from devstack.processes import ManagedProcess
from memtel_agent.meminfo import PROC_MEMINFO, parse_meminfo
from producer_api.formats.prompb.remote_pb2 import WriteRequest
from tests.prometheus_tools import PrometheusTools

KIB: Final = 1024


def read_meminfo() -> dict[str, int]:
    return parse_meminfo(PROC_MEMINFO.read_text())


class HostmetricsMemory:
    """Callbacks reporting memory as hostmetrics does, from one read per collection."""

    def __init__(self) -> None:
        self._fields: dict[str, int] | None = None
        self.read: list[dict[str, int]] = []

    def fresh(self) -> None:
        """The next collection reads /proc/meminfo anew."""
        self._fields = None

    def _meminfo(self) -> dict[str, int]:
        if self._fields is None:
            self._fields = read_meminfo()
            self.read.append(self._fields)
        return self._fields

    def usage(self, _: CallbackOptions) -> Iterable[Observation]:
        m = self._meminfo()
        cached = m["Cached"] + m["SReclaimable"]
        states = {
            "used": m["MemTotal"] - m["MemFree"] - m["Buffers"] - cached,
            "free": m["MemFree"],
            "buffered": m["Buffers"],
            "cached": cached,
            "slab_reclaimable": m["SReclaimable"],
            "slab_unreclaimable": m["SUnreclaim"],
        }
        return [Observation(kib * KIB, {"state": state}) for state, kib in states.items()]

    def limit(self, _: CallbackOptions) -> Iterable[Observation]:
        return [Observation(self._meminfo()["MemTotal"] * KIB)]

    def available(self, _: CallbackOptions) -> Iterable[Observation]:
        return [Observation(self._meminfo()["MemAvailable"] * KIB)]


def hostmetrics_provider(
    memory: HostmetricsMemory,
    host_name: str | None,
    reader: InMemoryMetricReader | PeriodicExportingMetricReader,
) -> MeterProvider:
    """A meter provider with the memory instruments, reporting to `reader`."""
    attributes = {"host.name": host_name} if host_name else {}
    provider = MeterProvider(metric_readers=[reader], resource=Resource.create(attributes))
    meter = provider.get_meter("hostmetricsreceiver/memory")
    meter.create_observable_up_down_counter("system.memory.usage", [memory.usage], unit="By")
    meter.create_observable_up_down_counter("system.memory.limit", [memory.limit], unit="By")
    meter.create_observable_up_down_counter(
        "system.linux.memory.available", [memory.available], unit="By"
    )
    # Another metric hostmetrics sends: ignored by the API.
    meter.create_observable_gauge(
        "system.memory.utilization",
        [lambda _: [Observation(0.5, {"state": "used"})]],
        unit="1",
    )
    return provider


@contextmanager
def otlp_exporting(
    endpoint: str,
    host_name: str,
    headers: dict[str, str] | None = None,
    timeout_seconds: float = 10,
    gzip: bool = False,
) -> Iterator[tuple[MeterProvider, HostmetricsMemory]]:
    """The SDK's OTLP/HTTP exporter sending this machine's memory to `endpoint` when the
    provider is flushed (no export on a timer)."""
    exporter = OTLPMetricExporter(
        endpoint=endpoint,
        headers=headers,
        timeout=timeout_seconds,
        compression=Compression.Gzip if gzip else Compression.NoCompression,
    )
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    memory = HostmetricsMemory()
    provider = hostmetrics_provider(memory, host_name, reader)
    try:
        yield provider, memory
    finally:
        # The reader exports once more when it shuts down: not with a closed exporter.
        exporter.shutdown()
        provider.shutdown(timeout_millis=1000)


def sdk_request(
    host_name: str | None, memory: HostmetricsMemory | None = None
) -> ExportMetricsServiceRequest:
    """The ExportMetricsServiceRequest the SDK's exporter sends for one collection."""
    reader = InMemoryMetricReader()
    provider = hostmetrics_provider(memory or HostmetricsMemory(), host_name, reader)
    try:
        data = reader.get_metrics_data()
        assert data is not None
        return encode_metrics(data)
    finally:
        provider.shutdown()


def node_exporter_series(
    instance: str, meminfo: dict[str, int]
) -> list[tuple[dict[str, str], float]]:
    """node_exporter's memory series of one scrape: (labels, value in bytes)."""
    names = ("MemTotal", "MemFree", "MemAvailable", "Buffers", "Cached", "SReclaimable", "Shmem")
    series = [
        (
            {"__name__": f"node_memory_{name}_bytes", "instance": instance, "job": "node"},
            float(meminfo[name] * KIB),
        )
        for name in names
    ]
    series.append(({"__name__": "node_load1", "instance": instance, "job": "node"}, 0.25))
    return series


def remote_write_body(series: list[tuple[dict[str, str], float]], timestamp_ms: int) -> bytes:
    """A snappy-compressed WriteRequest of the series, one sample each."""
    request = WriteRequest()
    for labels, value in series:
        timeseries = request.timeseries.add()
        for name in sorted(labels):
            timeseries.labels.add(name=name, value=labels[name])
        timeseries.samples.add(value=value, timestamp=timestamp_ms)
    return bytes(cramjam.snappy.compress_raw(request.SerializeToString()))


REMOTE_WRITE_HEADERS: Final = {
    "Content-Type": "application/x-protobuf",
    "Content-Encoding": "snappy",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}


# --- Prometheus remote-writing node_exporter's series ----------------------------------

INGEST_DOC: Final = Path(__file__).resolve().parent.parent / "docs" / "ingest.md"
DOC_API_URL: Final = "http://memtel-api:5050"
DOC_KEY_FILE: Final = "/etc/prometheus/memtel-api-key"


def documented_remote_write() -> dict[str, Any]:
    """The `remote_write` block docs/ingest.md gives users, parsed."""
    blocks = re.findall(r"```yaml\n(remote_write:.*?)```", INGEST_DOC.read_text(), re.DOTALL)
    assert len(blocks) == 1, "docs/ingest.md: one remote_write block"
    (entry,) = yaml.safe_load(blocks[0])["remote_write"]
    assert isinstance(entry, dict)
    return entry


def node_exporter(tools: PrometheusTools, work_dir: Path) -> tuple[ManagedProcess, str]:
    """Debian's node exporter (memory collector only) on a free port; and its target."""
    port = free_port()
    binary = tools.prometheus.parent / "prometheus-node-exporter"
    process = ManagedProcess(
        "node-exporter",
        [
            str(binary),
            "--collector.disable-defaults",
            "--collector.meminfo",
            f"--web.listen-address={services.HOST}:{port}",
        ],
        log_path=work_dir / "node-exporter.log",
        ready=lambda: services.port_open(port),
        already_running=lambda: services.port_open(port),
        cwd=work_dir,
    )
    return process, f"{services.HOST}:{port}"


def prometheus_remote_writing(
    tools: PrometheusTools,
    work_dir: Path,
    node_target: str,
    api_url: str,
    api_key: str,
    machine_id: str,
) -> ManagedProcess:
    """Prometheus scraping node_exporter every second and remote-writing to the API with
    the documented block (its URL and key file pointed at the test's). The target's
    `instance` label is `machine_id`, the relabelling docs/ingest.md suggests."""
    port = free_port()
    key_file = work_dir / "memtel-api-key"
    key_file.write_text(api_key)
    entry = documented_remote_write()
    assert entry["url"] == f"{DOC_API_URL}/api/v1/write"
    assert entry["authorization"] == {"credentials_file": DOC_KEY_FILE}
    entry["url"] = f"{api_url}/api/v1/write"
    entry["authorization"] = {"credentials_file": str(key_file)}
    # Retries start at once and stay short, so that a test sees the retry within seconds.
    entry["queue_config"] |= {"min_backoff": "100ms", "max_backoff": "1s"}
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [
            {
                "job_name": "node",
                "static_configs": [{"targets": [node_target]}],
                "relabel_configs": [{"target_label": "instance", "replacement": machine_id}],
            }
        ],
        "remote_write": [entry],
    }
    config_file = work_dir / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config))
    return ManagedProcess(
        "prometheus",
        [
            str(tools.prometheus),
            f"--config.file={config_file}",
            f"--storage.tsdb.path={work_dir / 'prometheus-data'}",
            f"--web.listen-address={services.HOST}:{port}",
        ],
        log_path=work_dir / "prometheus.log",
        ready=lambda: services.port_open(port),
        already_running=lambda: services.port_open(port),
        cwd=work_dir,
    )
