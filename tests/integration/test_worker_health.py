"""The worker's health probe and lag gauge while it is stuck, and once it is not."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import redis

from consumer_worker.heartbeat import read_status
from consumer_worker.settings import WorkerSettings
from devstack.ports import free_port
from devstack.stack import LocalStack
from telemetry_common.contract import MemoryReading, encode_record
from tests.helpers import (
    TOPIC_PARTITIONS,
    OwnRedis,
    end_offsets,
    failed_redis_calls,
    machine_keys,
    on_own_redis,
    produce,
    reading,
    running_worker,
    unique,
    wait_until,
)
from tests.integration.test_worker_metrics import lags, scrape, serving

RECEIVED_AT = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
STALL_SECONDS = 1.0
# Settings a developer's environment may hold: the probe gets only the test's.
SETTING_PREFIXES = ("WORKER_", "KAFKA_", "REDIS_", "LOG_")


def record(machine_id: str) -> tuple[bytes, bytes]:
    encoded = encode_record(machine_id, MemoryReading.model_validate(reading()), RECEIVED_AT)
    return encoded.key, encoded.value


def probe(settings: WorkerSettings, cwd: Path) -> tuple[int, str]:
    """`python -m consumer_worker.healthcheck` as the container runs it: its exit code
    and its line."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(SETTING_PREFIXES)},
        "WORKER_HEALTH_FILE": str(settings.worker_health_file),
        "WORKER_STALL_SECONDS": str(settings.worker_stall_seconds),
    }
    done = subprocess.run(
        [sys.executable, "-m", "consumer_worker.healthcheck"],
        env=env,
        cwd=cwd,  # no `.env` there
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode, (done.stdout + done.stderr).strip()


def probe_until(
    condition: Callable[[int], bool], settings: WorkerSettings, cwd: Path
) -> tuple[int, str]:
    """The first answer of the probe whose exit code meets `condition`."""
    answers: list[tuple[int, str]] = []

    def met() -> bool:
        answers[:] = [probe(settings, cwd)]
        return condition(answers[0][0])

    wait_until(met, 30, "the probe's answer", interval=0.2)
    return answers[0]


def healthz(port: int) -> tuple[int, str]:
    answer = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    return answer.status_code, answer.text.strip()


def test_a_worker_stuck_behind_on_redis_shows_its_lag_and_is_unhealthy_until_redis_returns(
    stack: LocalStack,
    topic: str,
    worker_settings: WorkerSettings,
    own_redis: OwnRedis,
    tmp_path: Path,
) -> None:
    redis_process = own_redis.server
    settings = on_own_redis(
        worker_settings,
        own_redis,
        worker_retry_max_backoff_seconds=0.5,
        worker_stall_seconds=STALL_SECONDS,
        worker_metrics_host="127.0.0.1",
        worker_metrics_port=free_port(),
    )
    machines = [unique("m") for _ in range(30)]
    # The backlog piles up while no worker runs.
    produce(stack.bootstrap_servers, topic, [record(m) for m in machines])
    backlog = {
        p: float(end)
        for p, end in end_offsets(stack.bootstrap_servers, topic, TOPIC_PARTITIONS).items()
    }
    assert sum(backlog.values()) == len(machines)

    try:
        with running_worker(settings) as worker:
            metrics_port = serving(worker)
            # Redis is not there: the worker cannot even read where its view is built.
            wait_until(
                lambda: lags(scrape(metrics_port), topic) == backlog,
                30,
                "the lag of each partition to show its backlog",
            )
            code, line = probe_until(lambda code: code != 0, settings, tmp_path)
            assert code == 1
            assert line.startswith(f"stalled: {len(machines)} records behind"), line
            status, body = healthz(metrics_port)
            assert (status, body.split(" ")[0]) == (503, "stalled:"), body
            assert failed_redis_calls(worker) >= 1

            redis_process.start()
            client = redis.Redis(port=own_redis.port, decode_responses=True)
            try:
                wait_until(
                    lambda: all(client.exists(machine_keys(m).latest(m)) for m in machines),
                    60,
                    "every reading stored once Redis is back",
                )
            finally:
                client.close()
            wait_until(
                lambda: set(lags(scrape(metrics_port), topic).values()) == {0},
                30,
                "the lag back to 0",
            )
            code, line = probe_until(lambda code: code == 0, settings, tmp_path)
            assert line.startswith("healthy: "), line
            assert healthz(metrics_port)[0] == 200
    finally:
        redis_process.stop()


def test_an_idle_worker_with_nothing_to_read_stays_healthy_past_the_stall_limit(
    topic: str, worker_settings: WorkerSettings, tmp_path: Path
) -> None:
    settings = worker_settings.model_copy(
        update={
            "worker_stall_seconds": STALL_SECONDS,
            "worker_metrics_host": "127.0.0.1",
            "worker_metrics_port": free_port(),
        }
    )
    health_file = settings.worker_health_file
    assert health_file is not None
    with running_worker(settings) as worker:
        metrics_port = serving(worker)
        wait_until(
            lambda: len(lags(scrape(metrics_port), topic)) == TOPIC_PARTITIONS,
            30,
            "the partitions assigned",
        )
        first = wait_until(lambda: read_status(health_file), 30, "the first status")
        # The loop keeps reporting; wait until it has idled for longer than the limit.
        wait_until(
            lambda: (
                (status := read_status(health_file)) is not None
                and status.heartbeat_at - first.heartbeat_at > 2 * STALL_SECONDS
            ),
            30,
            "the worker idle for longer than the stall limit",
        )
        code, line = probe(settings, tmp_path)
        assert code == 0, line
        assert line.startswith("healthy: "), line
        assert "0 records behind" in line
        assert healthz(metrics_port)[0] == 200


def test_the_probe_fails_once_the_worker_stopped(
    worker_settings: WorkerSettings, tmp_path: Path
) -> None:
    settings = worker_settings.model_copy(update={"worker_metrics_port": 0})
    health_file = settings.worker_health_file
    assert health_file is not None
    with running_worker(settings):
        wait_until(health_file.exists, 30, "the worker's first status")
        assert probe(settings, tmp_path)[0] == 0
    code, line = probe(settings, tmp_path)
    assert code == 1
    assert line.startswith("no heartbeat at "), line
