"""OTLP metrics, as the OpenTelemetry Collector's hostmetrics receiver names memory, into
readings.

A resource (a `ResourceMetrics`) is one machine: its id is the first of the resource
attributes `host.name`, `host.id`, `service.instance.id` that is set (a string), and it
must be a valid machine id. Its memory data points (gauge or sum, whichever the sender
used) give the `/proc/meminfo` fields, in bytes:

* `system.memory.usage` with attribute `state`: `free` (MemFree), `buffered` (Buffers),
  `cached` (Cached; hostmetrics' cached already holds SReclaimable, which its library,
  gopsutil, adds to it as `free` does, so `slab_reclaimable` is not added again) and
  `used` (hostmetrics' Total - Free - Buffers - Cached);
* `system.memory.limit` (MemTotal); without it, the sum of the used, free, buffered and
  cached states, which is MemTotal by how hostmetrics computes used;
* `system.linux.memory.available` (MemAvailable).

All of free, buffered, cached and available are required, and the limit or the used
state: without MemAvailable the `used` and `available` columns would be guesses. The
Collector turns the limit and available metrics off by default; docs/ingest.md shows the
configuration that turns them on. hostmetrics reports no shared memory (Shmem): `shared`
is 0 unless a `system.memory.usage` point with `state=shared` is sent, and a reading
whose record has `memtel.source: otlp` with shared 0 means "not reported".

Of each series the latest data point is used, and the reading's time is the latest of
their times. Memory data points of a resource that gives no reading are rejected (OTLP's
partial success says how many and why); every other data point is ignored: accepted and
not stored, as a backend that keeps only some metrics does.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Final

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric, NumberDataPoint
from pydantic import ValidationError

from producer_api.formats.published import TimedReading, TranslatedRequest
from telemetry_common.contract import is_valid_machine_id
from telemetry_common.free_columns import MeminfoFigures, free_columns, kib_of_bytes

# The resource attributes that name the machine, in the order they are looked for.
HOST_ID_ATTRIBUTES: Final = ("host.name", "host.id", "service.instance.id")

USAGE: Final = "system.memory.usage"
LIMIT: Final = "system.memory.limit"
AVAILABLE: Final = "system.linux.memory.available"
MEMORY_METRICS: Final = frozenset({USAGE, LIMIT, AVAILABLE})
STATE_ATTRIBUTE: Final = "state"
_REQUIRED_STATES: Final = ("free", "buffered", "cached")
# DataPointFlags.FLAG_NO_RECORDED_VALUE: the point holds no value.
_NO_RECORDED_VALUE: Final = 1


@dataclass
class OtlpOutcome(TranslatedRequest):
    """What a request gave: readings, and the data points it accepted, rejected, ignored."""

    # Why points were rejected, one line per resource, for partial_success.
    errors: list[str] = field(default_factory=list)


def readings_from_request(request: ExportMetricsServiceRequest) -> OtlpOutcome:
    outcome = OtlpOutcome()
    for index, resource_metrics in enumerate(request.resource_metrics):
        memory: list[tuple[Metric, NumberDataPoint]] = []
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                points = _number_points(metric)
                if metric.name in MEMORY_METRICS and points is not None:
                    memory.extend((metric, point) for point in points)
                else:
                    outcome.ignored += _point_count(metric)
        if not memory:
            continue
        machine_id = host_id(resource_metrics.resource.attributes)
        try:
            if machine_id is None:
                raise _RejectedError(f"no {', '.join(HOST_ID_ATTRIBUTES)} resource attribute")
            if not is_valid_machine_id(machine_id):
                raise _RejectedError(
                    f"{machine_id!r} is not a valid machine id (1 to 64 letters, digits, "
                    "'.', '_', '-')"
                )
            outcome.readings.append(_reading(machine_id, memory))
        except _RejectedError as exc:
            outcome.rejected += len(memory)
            outcome.errors.append(f"resource {index}: {exc}")
        else:
            outcome.accepted += len(memory)
    return outcome


class _RejectedError(ValueError):
    """A resource's memory data points give no reading; the message says why."""


def host_id(attributes: Iterable[KeyValue]) -> str | None:
    """The machine id a resource names: the first host id attribute set, as a string."""
    values = {kv.key: kv.value.string_value for kv in attributes if kv.value.string_value}
    for name in HOST_ID_ATTRIBUTES:
        if name in values:
            return values[name]
    return None


def _number_points(metric: Metric) -> Iterable[NumberDataPoint] | None:
    kind = metric.WhichOneof("data")
    if kind == "gauge":
        return metric.gauge.data_points
    if kind == "sum":
        return metric.sum.data_points
    return None


def _point_count(metric: Metric) -> int:
    kind = metric.WhichOneof("data")
    if kind is None:
        return 0
    points = getattr(metric, kind).data_points
    return len(points)


def _bytes_of(metric: Metric, point: NumberDataPoint) -> float:
    if point.flags & _NO_RECORDED_VALUE:
        raise _RejectedError(f"{metric.name} has a point without a recorded value")
    kind = point.WhichOneof("value")
    if kind is None:
        raise _RejectedError(f"{metric.name} has a point without a value")
    value = float(point.as_int) if kind == "as_int" else point.as_double
    if not math.isfinite(value) or value < 0:
        raise _RejectedError(f"{metric.name} has an invalid value {value!r} (bytes, at least 0)")
    return value


def _series_key(metric: Metric, point: NumberDataPoint) -> str:
    if metric.name != USAGE:
        return metric.name
    for kv in point.attributes:
        if kv.key == STATE_ATTRIBUTE:
            return f"{USAGE}:{kv.value.string_value}"
    raise _RejectedError(f"a {USAGE} point has no {STATE_ATTRIBUTE} attribute")


def _latest(memory: list[tuple[Metric, NumberDataPoint]]) -> Iterator[tuple[str, float, int]]:
    """(series, bytes, time in ns) of the latest point of each series."""
    latest: dict[str, NumberDataPoint] = {}
    metrics: dict[str, Metric] = {}
    for metric, point in memory:
        key = _series_key(metric, point)
        if key not in latest or point.time_unix_nano >= latest[key].time_unix_nano:
            latest[key] = point
            metrics[key] = metric
    for key, point in latest.items():
        yield key, _bytes_of(metrics[key], point), point.time_unix_nano


def _reading(machine_id: str, memory: list[tuple[Metric, NumberDataPoint]]) -> TimedReading:
    values: dict[str, int] = {}
    time_ns = 0
    for key, value, point_time in _latest(memory):
        values[key] = kib_of_bytes(value)
        time_ns = max(time_ns, point_time)
    missing = [
        f"{USAGE} state={state}" for state in _REQUIRED_STATES if f"{USAGE}:{state}" not in values
    ]
    if AVAILABLE not in values:
        missing.append(AVAILABLE)
    if LIMIT not in values and f"{USAGE}:used" not in values:
        missing.append(f"{LIMIT} (or {USAGE} state=used)")
    if missing:
        raise _RejectedError(f"{machine_id}: missing {', '.join(missing)}")
    free, buffered, cached = (values[f"{USAGE}:{state}"] for state in _REQUIRED_STATES)
    total = values.get(LIMIT)
    if total is None:
        total = values[f"{USAGE}:used"] + free + buffered + cached
    figures = MeminfoFigures(
        mem_total=total,
        mem_free=free,
        mem_available=values[AVAILABLE],
        buffers=buffered,
        cached=cached,
        shmem=values.get(f"{USAGE}:shared", 0),
    )
    try:
        reading = free_columns(figures)
    except ValidationError as exc:
        problems = "; ".join(error["msg"] for error in exc.errors())
        raise _RejectedError(
            f"{machine_id}: the values give no valid reading: {problems}"
        ) from None
    return TimedReading(machine_id, reading, time_ns // 1_000_000)
