"""OTLP/HTTP metrics into readings, sent by the OpenTelemetry Python SDK's own exporter
(and in OTLP's JSON mapping, gzip or not) to the API and a worker on the real stack."""

from __future__ import annotations

import functools
import gzip
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.protobuf import json_format
from google.rpc import code_pb2, status_pb2
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)

from devstack.stack import LocalStack
from memtel_agent.meminfo import reading_from_meminfo
from producer_api.headers import SOURCE_HEADER
from tests.helpers import api_and_worker, consume_all, unique, wait_until
from tests.ingest_senders import HostmetricsMemory, otlp_exporting, read_meminfo, sdk_request

API_KEY = "otlp-test-key-0123456789"
# OTLP readings carry no Shmem (hostmetrics does not report it): shared is 0.
COMPARED = ("total", "used", "free", "buff_cache", "available")
ATTEMPTS = 5


@pytest.fixture
def api(stack: LocalStack, topic: str, tmp_path: Path) -> Iterator[str]:
    env = {"KAFKA_TOPIC": topic, "API_KEYS": API_KEY}
    with api_and_worker(stack, tmp_path, env) as (url, _):
        yield url


def stored(url: str, machine_id: str) -> dict[str, int] | None:
    response = httpx.get(f"{url}/cpu-info/{machine_id}", timeout=5)
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    reading: dict[str, int] = response.json()[machine_id]
    return reading


def is_stored(url: str, machine_id: str) -> bool:
    return stored(url, machine_id) is not None


def outside(before: dict[str, int], ours: dict[str, int], after: dict[str, int]) -> list[str]:
    return [
        f"{name}: /proc/meminfo gave {before[name]} then {after[name]}, the API stored {ours[name]}"
        for name in COMPARED
        if not min(before[name], after[name]) <= ours[name] <= max(before[name], after[name])
    ]


def test_sdk_exporter_sends_this_machines_memory_which_reads_back_listed_and_in_history(
    api: str, stack: LocalStack, topic: str
) -> None:
    # Memory moves on a busy machine; a wrong mapping (say buff/cache counting
    # slab_reclaimable twice) is off by far more than any move, in every attempt.
    problems: list[str] = []
    sent = 0
    for _ in range(ATTEMPTS):
        sent += 1
        machine_id = unique("otlp-host")
        with otlp_exporting(f"{api}/v1/metrics", machine_id, headers={"X-API-Key": API_KEY}) as (
            provider,
            _memory,
        ):
            before = reading_from_meminfo(read_meminfo()).model_dump()
            flush_started_ms = time.time_ns() // 1_000_000
            assert provider.force_flush(timeout_millis=30_000)
            flush_ended_ms = time.time_ns() // 1_000_000
            after = reading_from_meminfo(read_meminfo()).model_dump()
        wait_until(functools.partial(is_stored, api, machine_id), 30, "the reading stored")
        ours = stored(api, machine_id)
        assert ours is not None
        assert ours["shared"] == 0
        problems = outside(before, ours, after)
        if not problems:
            break
    assert not problems, problems

    history = httpx.get(f"{api}/cpu-info/{machine_id}/history", timeout=5).json()["entries"]
    assert len(history) == 1
    # Stored under the data point's time, which the SDK took during the flush.
    assert flush_started_ms <= history[0]["timestamp_ms"] <= flush_ended_ms
    listed: list[str] = []
    url: str | None = f"{api}/cpu-info?limit=1000"
    while url:
        page = httpx.get(url, timeout=5)
        listed += [m["machine_id"] for m in page.json()["machines"]]
        link = page.headers.get("link")
        url = f"{api}{link.removeprefix('<').split('>')[0]}" if link else None
    assert machine_id in listed

    # The record says where it came from, in a header, with the envelope unchanged.
    records = consume_all(stack.bootstrap_servers, topic, sent, timeout=30)
    mine = [r for r in records if r.key() == machine_id.encode()]
    assert [dict(r.headers() or [])[SOURCE_HEADER] for r in mine] == [b"otlp"]


def post(api: str, body: bytes, content_type: str, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{api}/v1/metrics",
        content=body,
        headers={"Content-Type": content_type, "X-API-Key": API_KEY, **headers},
        timeout=30,
    )


def answer_of(response: httpx.Response) -> ExportMetricsServiceResponse:
    answer = ExportMetricsServiceResponse()
    if response.headers["content-type"] == "application/json":
        json_format.Parse(response.text, answer)
    else:
        answer.ParseFromString(response.content)
    return answer


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_the_sdks_request_in_otlp_json_makes_the_same_reading(api: str, compress: bool) -> None:
    machine_id = unique("otlp-json")
    memory = HostmetricsMemory()
    body = json_format.MessageToJson(sdk_request(machine_id, memory)).encode()
    headers = {"Content-Encoding": "gzip"} if compress else {}
    response = post(api, gzip.compress(body) if compress else body, "application/json", **headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {}  # an empty ExportMetricsServiceResponse: full success
    (meminfo,) = memory.read
    expected = reading_from_meminfo(meminfo).model_dump() | {"shared": 0}
    wait_until(functools.partial(is_stored, api, machine_id), 30, "the reading stored")
    assert stored(api, machine_id) == expected


def metric_counts(api: str) -> dict[str, float]:
    counts = {}
    for line in httpx.get(f"{api}/metrics", timeout=5).text.splitlines():
        if line.startswith("memtel_api_ingest_points_total{") and 'source="otlp"' in line:
            outcome = line.split('outcome="')[1].split('"')[0]
            counts[outcome] = float(line.rsplit(" ", 1)[1])
    return counts


def test_partial_success_names_what_was_rejected_and_counts_it(api: str) -> None:
    good, nameless, incomplete = (sdk_request(unique("otlp-part")) for _ in range(3))
    # A resource without host.name, host.id or service.instance.id.
    del nameless.resource_metrics[0].resource.attributes[:]
    # A resource without the buffered state of system.memory.usage.
    (usage,) = (
        m
        for m in incomplete.resource_metrics[0].scope_metrics[0].metrics
        if m.name == "system.memory.usage"
    )
    kept = [p for p in usage.sum.data_points if p.attributes[0].value.string_value != "buffered"]
    del usage.sum.data_points[:]
    usage.sum.data_points.extend(kept)
    request = ExportMetricsServiceRequest()
    for part in (good, nameless, incomplete):
        request.resource_metrics.extend(part.resource_metrics)
    before = metric_counts(api)

    response = post(api, request.SerializeToString(), "application/x-protobuf")

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/x-protobuf"
    answer = answer_of(response)
    # 8 memory points in the nameless resource (6 states, limit, available), 7 in the other.
    assert answer.partial_success.rejected_data_points == 15
    message = answer.partial_success.error_message
    assert "resource 1: no host.name, host.id, service.instance.id" in message
    assert "resource 2:" in message
    assert "missing system.memory.usage state=buffered" in message
    after = metric_counts(api)
    assert after["accepted"] - before["accepted"] == 8
    assert after["rejected"] - before["rejected"] == 15
    assert after["ignored"] - before["ignored"] == 3  # system.memory.utilization, once each


def status_of(response: httpx.Response, encoding: str) -> Any:
    assert response.headers["content-type"] == encoding
    status = status_pb2.Status()
    if encoding == "application/json":
        json_format.Parse(response.text, status)
    else:
        status.ParseFromString(response.content)
    return status


@pytest.mark.parametrize(
    ("body", "encoding", "headers"),
    [
        (b"\xff\xff\xff", "application/x-protobuf", {}),
        (b'{"resourceMetrics": [', "application/json", {}),
        (b'{"resourceMetricz": []}', "application/json", {}),
        (b"not gzip at all", "application/x-protobuf", {"Content-Encoding": "gzip"}),
    ],
    ids=["protobuf", "json", "unknown-field", "gzip"],
)
def test_an_undecodable_body_is_400_with_a_status_in_its_encoding(
    api: str, body: bytes, encoding: str, headers: dict[str, str]
) -> None:
    response = post(api, body, encoding, **headers)
    assert response.status_code == 400
    status = status_of(response, encoding)
    assert status.code == code_pb2.INVALID_ARGUMENT
    assert "undecodable" in status.message


def test_other_content_types_are_415_and_an_inflated_body_over_the_limit_413(api: str) -> None:
    response = post(api, b"x", "text/plain")
    assert response.status_code == 415
    assert "unsupported content type" in status_of(response, "application/json").message

    bomb = gzip.compress(b"\0" * (2 * 1_048_576))  # 2 MiB inflated, a few KiB sent
    response = post(api, bomb, "application/x-protobuf", **{"Content-Encoding": "gzip"})
    assert response.status_code == 413
    assert "inflates to more than" in status_of(response, "application/x-protobuf").message

    # Over the limit as sent: refused before the body is read.
    response = post(api, b"\0" * (1_048_576 + 1), "application/x-protobuf")
    assert response.status_code == 413


def test_the_api_key_is_required_as_for_the_json_endpoints(api: str) -> None:
    body = sdk_request(unique("otlp-key")).SerializeToString()
    headers = {"Content-Type": "application/x-protobuf"}
    missing = httpx.post(f"{api}/v1/metrics", content=body, headers=headers, timeout=5)
    wrong = httpx.post(
        f"{api}/v1/metrics",
        content=body,
        headers={**headers, "X-API-Key": "not-the-key-0123456789"},
        timeout=5,
    )
    bearer = httpx.post(
        f"{api}/v1/metrics",
        content=body,
        headers={**headers, "Authorization": f"Bearer {API_KEY}"},
        timeout=5,
    )
    assert (missing.status_code, wrong.status_code, bearer.status_code) == (401, 403, 200)
