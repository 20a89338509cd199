"""The OTLP and remote-write mappings give the reading `free` gives for the same
`/proc/meminfo`, by the one rule the agent uses; what cannot make a reading is named."""

from __future__ import annotations

import gzip
import math
import struct

import cramjam
import pytest

from memtel_agent.meminfo import parse_meminfo, reading_from_meminfo
from producer_api.app import create_app
from producer_api.formats import otlp, remote_write
from producer_api.formats.bodies import (
    BodyTooLargeError,
    UndecodableBodyError,
    gunzip,
    media_parameters,
    media_type,
    unsnappy,
)
from producer_api.formats.prompb.remote_pb2 import WriteRequest
from producer_api.settings import ProducerSettings
from telemetry_common.free_columns import MeminfoFigures, free_columns
from tests.ingest_senders import HostmetricsMemory, node_exporter_series, sdk_request

pytestmark = pytest.mark.unit

# /proc/meminfo of a Debian bookworm VM (kernel 6.1), whose `free -k` printed:
#   total 16318064  used 5204372  free 6104220  shared 412908  buff/cache 5009472
#   available 10352120 (SUnreclaim abridged in).
MEMINFO = {
    "MemTotal": 16318064,
    "MemFree": 6104220,
    "MemAvailable": 11113692,
    "Buffers": 301524,
    "Cached": 4190068,
    "SReclaimable": 517880,
    "SUnreclaim": 210000,
    "Shmem": 412908,
}


def test_the_rule_is_procps_4s_free() -> None:
    reading = free_columns(
        MeminfoFigures(
            mem_total=1000, mem_free=300, mem_available=600, buffers=50, cached=200,
            s_reclaimable=25, shmem=10,
        )
    )  # fmt: skip
    assert reading.model_dump() == {
        "total": 1000,
        "used": 400,
        "free": 300,
        "shared": 10,
        "buff_cache": 275,
        "available": 600,
    }
    # Without MemAvailable, or with one above MemTotal, free falls back to MemFree.
    assert free_columns(MeminfoFigures(mem_total=1000, mem_free=300)).available == 300
    assert free_columns(MeminfoFigures(1000, 300, mem_available=2000)).used == 700


class FixedMemory(HostmetricsMemory):
    def __init__(self, meminfo: dict[str, int]) -> None:
        super().__init__()
        self._fields = meminfo


def test_hostmetrics_names_give_the_agents_reading_but_shared() -> None:
    request = sdk_request("web-01", FixedMemory(MEMINFO))
    outcome = otlp.readings_from_request(request)
    (timed,) = outcome.readings
    assert timed.machine_id == "web-01"
    assert timed.reading == reading_from_meminfo(MEMINFO).model_copy(update={"shared": 0})
    # 6 states, the limit, available; utilization is ignored.
    assert (outcome.accepted, outcome.rejected, outcome.ignored) == (8, 0, 1)


def test_without_the_limit_total_is_the_sum_of_the_states_hostmetrics_adds_up() -> None:
    request = sdk_request("web-01", FixedMemory(MEMINFO))
    metrics = request.resource_metrics[0].scope_metrics[0].metrics
    (limit,) = (i for i, m in enumerate(metrics) if m.name == otlp.LIMIT)
    del metrics[limit]
    (timed,) = otlp.readings_from_request(request).readings
    assert timed.reading.total == MEMINFO["MemTotal"]


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ({"host.name": "a", "host.id": "b", "service.instance.id": "c"}, "a"),
        ({"host.id": "b", "service.instance.id": "c"}, "b"),
        ({"service.instance.id": "c"}, "c"),
        ({"service.name": "x"}, None),
    ],
)
def test_the_host_id_is_looked_for_in_order(attributes: dict[str, str], expected: str) -> None:
    request = sdk_request("x")
    resource = request.resource_metrics[0].resource
    del resource.attributes[:]
    for key, value in attributes.items():
        resource.attributes.add(key=key).value.string_value = value
    assert otlp.host_id(resource.attributes) == expected


def test_missing_available_and_invalid_values_are_rejected_with_the_reason() -> None:
    request = sdk_request("web-01", FixedMemory(MEMINFO))
    metrics = request.resource_metrics[0].scope_metrics[0].metrics
    (available,) = (i for i, m in enumerate(metrics) if m.name == otlp.AVAILABLE)
    del metrics[available]
    outcome = otlp.readings_from_request(request)
    assert outcome.readings == []
    assert outcome.rejected == 7
    assert "missing system.linux.memory.available" in outcome.errors[0]

    request = sdk_request("web-01", FixedMemory(MEMINFO))
    (usage,) = (
        m for m in request.resource_metrics[0].scope_metrics[0].metrics if m.name == otlp.USAGE
    )
    usage.sum.data_points[1].as_int = -5
    outcome = otlp.readings_from_request(request)
    assert "invalid value -5.0" in outcome.errors[0]

    request = sdk_request("not a machine id!", FixedMemory(MEMINFO))
    assert "is not a valid machine id" in otlp.readings_from_request(request).errors[0]


def write_request(series: list[tuple[dict[str, str], float]], timestamp: int) -> WriteRequest:
    request = WriteRequest()
    for labels, value in series:
        timeseries = request.timeseries.add()
        for name, label_value in labels.items():
            timeseries.labels.add(name=name, value=label_value)
        timeseries.samples.add(value=value, timestamp=timestamp)
    return request


def test_node_exporter_series_give_the_agents_reading_of_the_scrapes_time() -> None:
    series = node_exporter_series("db-01:9100", MEMINFO)
    outcome = remote_write.readings_from_request(
        write_request(series, 1_700_000_000_000), "instance"
    )
    (timed,) = outcome.readings
    assert timed == (
        remote_write.machine_id_of("db-01:9100"),
        reading_from_meminfo(MEMINFO),
        1_700_000_000_000,
    )
    assert timed.machine_id == "db-01"
    assert (outcome.accepted, outcome.rejected, outcome.ignored) == (7, 0, 1)


def test_series_are_grouped_by_machine_label_and_timestamp() -> None:
    request = write_request(node_exporter_series("a:9100", MEMINFO), 2000)
    request.MergeFrom(write_request(node_exporter_series("a:9100", MEMINFO), 1000))
    request.MergeFrom(write_request(node_exporter_series("b", MEMINFO), 1000))
    outcome = remote_write.readings_from_request(request, "instance")
    assert [(r.machine_id, r.time_ms) for r in outcome.readings] == [
        ("a", 1000),
        ("b", 1000),
        ("a", 2000),
    ]


def test_incomplete_invalid_and_stale_series() -> None:
    series = node_exporter_series("a", MEMINFO)
    incomplete = remote_write.readings_from_request(write_request(series[:3], 1), "instance")
    assert incomplete.readings == []
    assert incomplete.rejected == 3
    assert "no Buffers, Cached, SReclaimable, Shmem" in incomplete.incomplete[0]
    assert incomplete.invalid == []

    bad_id = remote_write.readings_from_request(
        write_request(node_exporter_series("a b", MEMINFO), 1), "instance"
    )
    assert bad_id.rejected == 7
    assert "names no valid machine id" in bad_id.invalid[0]

    stale_nan = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]
    stale = [(labels, stale_nan if i == 0 else value) for i, (labels, value) in enumerate(series)]
    outcome = remote_write.readings_from_request(write_request(stale, 1), "instance")
    assert (outcome.ignored, outcome.rejected, outcome.invalid) == (2, 6, [])

    nan = [(labels, math.nan if i == 0 else value) for i, (labels, value) in enumerate(series)]
    outcome = remote_write.readings_from_request(write_request(nan, 1), "instance")
    assert outcome.rejected == 7
    assert "node_memory_MemTotal_bytes of a: nan" in outcome.invalid[0]


def test_bodies_are_decompressed_within_the_limit() -> None:
    assert gunzip(gzip.compress(b"x" * 100), 100) == b"x" * 100
    with pytest.raises(BodyTooLargeError):
        gunzip(gzip.compress(b"x" * 101), 100)
    with pytest.raises(UndecodableBodyError):
        gunzip(b"plain", 100)
    with pytest.raises(UndecodableBodyError):
        gunzip(gzip.compress(b"x") + b"trailing", 100)
    assert unsnappy(bytes(cramjam.snappy.compress_raw(b"y" * 100)), 100) == b"y" * 100
    with pytest.raises(BodyTooLargeError):
        unsnappy(bytes(cramjam.snappy.compress_raw(b"y" * 101)), 100)
    with pytest.raises(UndecodableBodyError):
        unsnappy(b"\xff\xff\xff\xff\xff\xff", 100)


def test_media_types() -> None:
    assert media_type("Application/JSON; charset=utf-8") == "application/json"
    assert media_type(None) == ""
    assert media_parameters('application/x-protobuf;proto="io.prometheus.write.v2.Request"') == {
        "proto": "io.prometheus.write.v2.Request"
    }


def test_the_agent_reads_meminfo_text_through_the_shared_rule() -> None:
    text = "\n".join(f"{name}: {kib} kB" for name, kib in MEMINFO.items())
    fields = parse_meminfo(text)
    assert reading_from_meminfo(fields) == free_columns(
        MeminfoFigures(
            mem_total=MEMINFO["MemTotal"], mem_free=MEMINFO["MemFree"],
            mem_available=MEMINFO["MemAvailable"], buffers=MEMINFO["Buffers"],
            cached=MEMINFO["Cached"], s_reclaimable=MEMINFO["SReclaimable"],
            shmem=MEMINFO["Shmem"],
        )
    )  # fmt: skip


def test_the_routes_are_named_and_their_answers_documented() -> None:
    document = create_app(ProducerSettings(_env_file=None)).openapi()
    otlp_route = document["paths"]["/v1/metrics"]["post"]
    write_route = document["paths"]["/api/v1/write"]["post"]
    assert otlp_route["operationId"] == "export_otlp_metrics"
    assert write_route["operationId"] == "prometheus_remote_write"
    assert set(otlp_route["responses"]) == {"200", "400", "413", "415", "503"}
    assert set(write_route["responses"]) == {"204", "400", "413", "415", "503"}
    assert set(otlp_route["requestBody"]["content"]) == {
        "application/x-protobuf",
        "application/json",
    }
    assert "Retry-After" in write_route["responses"]["503"]["headers"]
