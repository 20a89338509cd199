"""A worker's partitions move in seconds: after a crash and restart, and on a clean stop.

Both tests use a session timeout of 30 s, so a handover that waited for the group to
give up on the old member could not pass their 10 s bound.
"""

from __future__ import annotations

import os
import signal
import time
from contextlib import ExitStack
from pathlib import Path

import redis

from devstack import services
from devstack.processes import ManagedProcess
from devstack.stack import LocalStack
from tests.e2e.test_scaling import assignments
from tests.helpers import TOPIC_PARTITIONS, produce, unique, wait_until
from tests.integration.test_worker import record, stored_used

SESSION_TIMEOUT_MS = 30_000
HANDOVER_BOUND_SECONDS = 10.0


def worker(
    stack: LocalStack, tmp_path: Path, topic: str, group: str, name: str, **env: str
) -> ManagedProcess:
    return services.consumer_worker(
        tmp_path,
        {
            **stack.worker_env(),
            "KAFKA_TOPIC": topic,
            "KAFKA_CONSUMER_GROUP": group,
            "KAFKA_SESSION_TIMEOUT_MS": str(SESSION_TIMEOUT_MS),
            "WORKER_POLL_TIMEOUT_SECONDS": "0.2",
            **env,
        },
        name=name,
    )


def send_and_wait_stored(
    stack: LocalStack, topic: str, client: redis.Redis, timeout: float
) -> None:
    """Readings of enough machines to land on every partition, all stored in time."""
    machines = [unique("m") for _ in range(30)]
    produce(stack.bootstrap_servers, topic, [record(m, 5) for m in machines])
    wait_until(
        lambda: all(stored_used(client, m) == 5 for m in machines),
        timeout,
        "readings on every partition stored",
    )


def test_a_killed_static_member_restarted_gets_its_partitions_back_at_once(
    stack: LocalStack, topic: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    group = unique("writers")
    process = worker(stack, tmp_path, topic, group, "worker-a", KAFKA_GROUP_INSTANCE_ID="worker-a")
    process.start()
    try:
        send_and_wait_stored(stack, topic, redis_client, 30)

        assert process.pid is not None
        os.kill(process.pid, signal.SIGKILL)
        wait_until(lambda: process.exit_code() is not None, 10, "the worker to die")

        restarted_at = time.monotonic()
        process.restart()
        send_and_wait_stored(stack, topic, redis_client, HANDOVER_BOUND_SECONDS)
        assert time.monotonic() - restarted_at < HANDOVER_BOUND_SECONDS
    finally:
        process.stop()


def test_a_cleanly_stopped_worker_hands_its_partitions_over_at_once(
    stack: LocalStack, topic: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    group = unique("writers")
    leaving = worker(stack, tmp_path, topic, group, "worker-leaving")
    staying = worker(stack, tmp_path, topic, group, "worker-staying")
    with ExitStack() as running:
        for process in (leaving, staying):
            process.start()
            running.callback(process.stop)

        def shared() -> bool:
            counts = sorted(len(p) for p in assignments(stack.bootstrap_servers, group).values())
            return counts == [1, 2]

        wait_until(shared, 60, "the partitions shared by both workers", interval=0.5)
        send_and_wait_stored(stack, topic, redis_client, 30)

        leaving.stop()  # SIGTERM; raises unless the worker exits 0
        stopped_at = time.monotonic()

        def all_on_the_other() -> bool:
            current = assignments(stack.bootstrap_servers, group)
            return [sorted(p) for p in current.values()] == [list(range(TOPIC_PARTITIONS))]

        wait_until(all_on_the_other, HANDOVER_BOUND_SECONDS, "every partition on the other")
        send_and_wait_stored(stack, topic, redis_client, HANDOVER_BOUND_SECONDS)
        assert time.monotonic() - stopped_at < HANDOVER_BOUND_SECONDS
