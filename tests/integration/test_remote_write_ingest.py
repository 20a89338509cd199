"""Prometheus remote-write 1.0 bodies into readings, and the answers remote-write senders
act on, against the API and a worker on the real stack."""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from pathlib import Path

import cramjam
import httpx
import pytest

from devstack.stack import LocalStack
from memtel_agent.meminfo import reading_from_meminfo
from tests.helpers import api_and_worker, unique, wait_until
from tests.ingest_senders import (
    REMOTE_WRITE_HEADERS,
    node_exporter_series,
    read_meminfo,
    remote_write_body,
)

API_KEY = "remote-write-key-0123456789"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture
def api(stack: LocalStack, topic: str, tmp_path: Path) -> Iterator[str]:
    env = {"KAFKA_TOPIC": topic, "API_KEYS": API_KEY}
    with api_and_worker(stack, tmp_path, env) as (url, _):
        yield url


def write(api: str, body: bytes, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{api}/api/v1/write",
        content=body,
        headers={**REMOTE_WRITE_HEADERS, **AUTH, **headers},
        timeout=30,
    )


def stored(url: str, machine_id: str) -> dict[str, int] | None:
    response = httpx.get(f"{url}/cpu-info/{machine_id}", timeout=5)
    if response.status_code == 404:
        return None
    reading: dict[str, int] = response.json()[machine_id]
    return reading


def is_stored(url: str, machine_id: str) -> bool:
    return stored(url, machine_id) is not None


def scraped_at_ms() -> int:
    """A scrape a minute ago: within the history's retention, before the API's clock."""
    return time.time_ns() // 1_000_000 - 60_000


def test_node_exporter_series_become_the_reading_of_the_scrape(api: str) -> None:
    machine_id = unique("rw")
    scraped_at = scraped_at_ms()
    meminfo = read_meminfo()
    body = remote_write_body(node_exporter_series(f"{machine_id}:9100", meminfo), scraped_at)

    response = write(api, body)

    assert response.status_code == 204, response.text
    wait_until(functools.partial(is_stored, api, machine_id), 30, "the reading stored")
    assert stored(api, machine_id) == reading_from_meminfo(meminfo).model_dump()
    history = httpx.get(f"{api}/cpu-info/{machine_id}/history", timeout=5).json()["entries"]
    assert [entry["timestamp_ms"] for entry in history] == [scraped_at]


def test_a_series_naming_no_machine_is_400_and_the_others_are_published(api: str) -> None:
    good = unique("rw-good")
    meminfo = read_meminfo()
    series = node_exporter_series(good, meminfo)
    series += node_exporter_series("no machine id!", meminfo)

    response = write(api, remote_write_body(series, scraped_at_ms()))

    assert response.status_code == 400
    assert "7 memory samples rejected (the others were published)" in response.text
    assert "names no valid machine id" in response.text
    wait_until(functools.partial(is_stored, api, good), 30, "the good reading stored")


def rejected_samples(api: str) -> float:
    for line in httpx.get(f"{api}/metrics", timeout=5).text.splitlines():
        if line.startswith("memtel_api_ingest_points_total{") and (
            'source="remote-write"' in line and 'outcome="rejected"' in line
        ):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError("no memtel_api_ingest_points_total of remote-write")


def test_a_scrape_split_over_two_requests_is_counted_not_refused(api: str) -> None:
    machine_id = unique("rw-split")
    series = node_exporter_series(machine_id, read_meminfo())
    before = rejected_samples(api)

    first, second = (write(api, remote_write_body(part, 1)) for part in (series[:3], series[3:]))

    # Sending either again would not complete it: 204, counted, nothing stored.
    assert (first.status_code, second.status_code) == (204, 204)
    assert rejected_samples(api) - before == 7
    assert stored(api, machine_id) is None


@pytest.mark.parametrize(
    ("body", "headers", "status", "says"),
    [
        (b"\xff\xff\xff\xff\xff\xff", {}, 400, "not snappy"),
        (bytes(cramjam.snappy.compress_raw(b"\xff\xff\xff")), {}, 400, "undecodable WriteRequest"),
        (b"x", {"Content-Encoding": "gzip"}, 415, "send snappy"),
        (b"x", {"Content-Type": "application/json"}, 415, "unsupported content type"),
        (
            b"x",
            {"Content-Type": "application/x-protobuf;proto=io.prometheus.write.v2.Request"},
            415,
            "remote-write 1.0",
        ),
        (bytes(cramjam.snappy.compress_raw(b"\0" * 2_000_000)), {}, 413, "decompresses to"),
    ],
    ids=["bad-snappy", "not-protobuf", "gzip", "json", "remote-write-2", "too-large"],
)
def test_what_must_not_be_retried_is_4xx(
    api: str, body: bytes, headers: dict[str, str], status: int, says: str
) -> None:
    response = write(api, body, **headers)
    assert response.status_code == status
    assert says in response.text


def test_the_key_is_taken_as_bearer_credentials_or_x_api_key(api: str) -> None:
    body = remote_write_body(node_exporter_series(unique("rw-key"), read_meminfo()), 1)
    headers = {**REMOTE_WRITE_HEADERS}
    assert httpx.post(f"{api}/api/v1/write", content=body, headers=headers).status_code == 401
    wrong = {**headers, "Authorization": "Bearer not-the-key-0123456789"}
    assert httpx.post(f"{api}/api/v1/write", content=body, headers=wrong).status_code == 403
    by_header = {**headers, "X-API-Key": API_KEY}
    assert httpx.post(f"{api}/api/v1/write", content=body, headers=by_header).status_code == 204
