"""Faults injected on real processes while readings stream through the API.

Every scenario streams readings for many machines, each machine's readings in
sequence, and at the end compares every acknowledged POST with what GET serves and
with what the topic holds. Each prints its figures (and keeps them in build/faults/).
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import httpx
import pytest
from confluent_kafka.admin import AdminClient

from tests.faults.stream import ReadingStream, assert_nothing_lost, report, verify
from tests.faults.system import (
    POST_BOUND_SECONDS,
    PROBE_USED,
    empty_redis_data,
    fault_system,
    hold,
    kill,
    three_broker_system,
    time_until_fresh,
)
from tests.helpers import consume_all, produce, reading

pytestmark = pytest.mark.timeout(900)


def test_worker_sigkilled_three_times(tmp_path: Path) -> None:
    with fault_system(tmp_path) as system:
        stream = ReadingStream(
            system.api_url, machines=200, readings_per_machine=100, bound_seconds=POST_BOUND_SECONDS
        ).start()
        recoveries = []
        for fraction in (0.25, 0.5, 0.75):
            stream.wait_for_sent(int(stream.total * fraction), timeout=180)
            kill(system.worker)
            restarted = time.monotonic()
            system.worker.start()
            recoveries.append(time_until_fresh(system, since=restarted))
        ledger = stream.join(timeout=300)
        verdict = verify(ledger, system.api_url, system.bootstrap, system.topic)
        figures = report("worker_sigkill_x3", ledger, verdict, recovery_seconds=recoveries)
    assert_nothing_lost(figures)
    assert ledger.statuses == {200: stream.total}, figures
    assert max(recoveries) < 10, figures


def test_redis_killed_hung_and_replaced_by_an_empty_instance(tmp_path: Path) -> None:
    with fault_system(tmp_path) as system:
        redis = system.stack.process("redis")
        stream = ReadingStream(
            system.api_url, machines=200, readings_per_machine=60, bound_seconds=POST_BOUND_SECONDS
        ).start()
        recoveries = {}

        stream.wait_for_sent(int(stream.total * 0.2), timeout=180)
        kill(redis)
        restarted = time.monotonic()
        redis.start()
        recoveries["sigkill_restart"] = time_until_fresh(system, since=restarted)

        stream.wait_for_sent(int(stream.total * 0.45), timeout=180)
        pid = redis.pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        try:
            hold(10)
        finally:
            os.kill(pid, signal.SIGCONT)
        recoveries["sigstop_10s"] = time_until_fresh(system, since=time.monotonic())

        stream.wait_for_sent(int(stream.total * 0.7), timeout=180)
        kill(redis)
        empty_redis_data(system)
        restarted = time.monotonic()
        redis.start()
        recoveries["replaced_by_empty"] = time_until_fresh(system, since=restarted)

        ledger = stream.join(timeout=300)
        verdict = verify(ledger, system.api_url, system.bootstrap, system.topic)
        figures = report("redis_faults", ledger, verdict, recovery_seconds=recoveries)
    assert_nothing_lost(figures)
    # Writes never touch Redis: they are all acknowledged whatever Redis does.
    assert ledger.statuses == {200: stream.total}, figures
    assert verdict.served_unsent == []


def test_broker_sigkilled_for_fifteen_seconds(tmp_path: Path) -> None:
    with fault_system(tmp_path) as system:
        kafka = system.stack.process("kafka")
        stream = ReadingStream(
            system.api_url, machines=200, readings_per_machine=60, bound_seconds=POST_BOUND_SECONDS
        ).start()
        stream.wait_for_sent(int(stream.total * 0.3), timeout=180)
        killed_at = stream.elapsed()
        kill(kafka)
        hold(15)
        restarted = time.monotonic()
        kafka.start()
        recovery = time_until_fresh(system, since=restarted)
        ledger = stream.join(timeout=300)
        verdict = verify(ledger, system.api_url, system.bootstrap, system.topic)
        # Nothing was restarted but the broker: the API and the worker carry on.
        with httpx.Client(base_url=system.api_url, timeout=POST_BOUND_SECONDS) as client:
            after = [
                client.post(f"/cpu-info/{m}", json=reading(used=PROBE_USED)).status_code
                for m in stream.machine_ids[:50]
            ]
        figures = report(
            "broker_sigkill_15s", ledger, verdict, recovery_seconds=recovery, killed_at=killed_at
        )
    assert_nothing_lost(figures)
    assert set(ledger.statuses) <= {200, 503}, figures
    assert after == [200] * 50


def test_partition_leader_sigkilled_in_a_three_broker_cluster(tmp_path: Path) -> None:
    with three_broker_system(tmp_path) as (system, cluster):
        stream = ReadingStream(
            system.api_url, machines=200, readings_per_machine=60, bound_seconds=POST_BOUND_SECONDS
        ).start()
        stream.wait_for_sent(int(stream.total * 0.3), timeout=180)
        metadata = AdminClient({"bootstrap.servers": cluster.bootstrap}).list_topics(
            system.topic, timeout=30
        )
        leader = metadata.topics[system.topic].partitions[0].leader
        killed_at = time.monotonic()
        kill(cluster.brokers[leader])
        recovery = time_until_fresh(system, since=killed_at)
        ledger = stream.join(timeout=300)
        survivors = ",".join(
            f"127.0.0.1:{port}" for n, port in enumerate(cluster.ports) if n != leader
        )
        verdict = verify(ledger, system.api_url, survivors, system.topic)
        figures = report(
            "cluster_leader_sigkill", ledger, verdict, recovery_seconds=recovery, killed=leader
        )
    assert_nothing_lost(figures)
    assert set(ledger.statuses) <= {200, 503}, figures


def poison_records(machine_id: str) -> list[tuple[bytes | None, bytes | None]]:
    """Records the worker cannot use, of every kind."""

    def envelope(**changes: object) -> bytes:
        body: dict[str, object] = {
            "schema_version": 1,
            "machine_id": machine_id,
            "received_at": "2026-11-24T12:00:00+00:00",
            "reading": reading(),
        }
        body.update(changes)
        return json.dumps(body).encode()

    key = machine_id.encode()
    return [
        (None, envelope()),
        (key, None),
        (b"\xff\xfe", envelope()),
        (b"bad key/../", envelope()),
        (key, b"not json"),
        (key, b"[1, 2, 3]"),
        (key, envelope(reading={**reading(), "used": 2**70})),
        (key, envelope(reading={**reading(), "free": -1})),
        (key, envelope(reading={**reading(), "shared": 1.5})),
        (key, envelope(schema_version=99)),
        (key, envelope(machine_id="someone-else")),
        (key, envelope(received_at="not a time")),
    ]


def test_poison_records_go_to_the_dead_letter_topic(tmp_path: Path) -> None:
    with fault_system(tmp_path) as system:
        worker_pid = system.worker.pid
        stream = ReadingStream(
            system.api_url, machines=100, readings_per_machine=60, bound_seconds=POST_BOUND_SECONDS
        ).start()
        poison: list[tuple[bytes | None, bytes | None]] = []
        for fraction in (0.3, 0.6):
            stream.wait_for_sent(int(stream.total * fraction), timeout=180)
            batch = poison_records(stream.machine_ids[0])
            produce(system.bootstrap, system.topic, batch)
            poison += batch
        ledger = stream.join(timeout=300)
        verdict = verify(ledger, system.api_url, system.bootstrap, system.topic)
        dead = consume_all(system.bootstrap, system.dead_letter_topic, len(poison), timeout=60)
        figures = report("poison_records", ledger, verdict, dead_lettered=len(dead))
        assert system.worker.running()
        assert system.worker.pid == worker_pid
    assert_nothing_lost(figures)
    assert len(dead) == len(poison)
    for record in dead:
        headers = dict(record.headers() or [])
        assert any("error" in name for name in headers), headers
        assert any("offset" in name for name in headers), headers
