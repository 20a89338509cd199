"""A crashed worker's partitions move to another worker of the group after the session
timeout, and the readings sent meanwhile are stored by the other worker.

A SIGKILLed worker cannot leave the group: the group coordinator gives its partitions
away only once no heartbeat came for KAFKA_SESSION_TIMEOUT_MS (the default, 10 s, as
docs/reliability.md states it).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from contextlib import ExitStack
from pathlib import Path

import redis

from devstack.processes import ManagedProcess
from devstack.stack import LocalStack
from tests.e2e.test_failover import worker
from tests.e2e.test_scaling import assignments
from tests.helpers import TOPIC_PARTITIONS, produce, unique, wait_until
from tests.integration.test_worker import record, stored_used

SESSION_TIMEOUT_SECONDS = 10.0
# The rebalance after the expiry, the survivor's fetch and its write to Redis, on a
# busy two-core machine.
MARGIN_SECONDS = 10.0


def stop_quietly(process: ManagedProcess) -> None:
    with contextlib.suppress(Exception):
        process.stop()


def test_a_sigkilled_worker_s_partitions_move_after_the_session_timeout(
    stack: LocalStack, topic: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    group = unique("writers")
    session = {"KAFKA_SESSION_TIMEOUT_MS": str(int(SESSION_TIMEOUT_SECONDS * 1000))}
    crashing = worker(stack, tmp_path, topic, group, "worker-crashing", **session)
    surviving = worker(stack, tmp_path, topic, group, "worker-surviving", **session)
    with ExitStack() as running:
        crashing.start()
        # Stopping a killed process only reaps it; its executor reports the signal's
        # exit code as an error, which is the point here.
        running.callback(stop_quietly, crashing)
        surviving.start()
        running.callback(surviving.stop)

        def shared() -> bool:
            counts = sorted(len(p) for p in assignments(stack.bootstrap_servers, group).values())
            return counts == [1, 2]

        wait_until(shared, 60, "the partitions shared by both workers", interval=0.5)
        machines = [unique("m") for _ in range(30)]  # enough to land on every partition
        produce(stack.bootstrap_servers, topic, [record(m, 1) for m in machines])
        wait_until(
            lambda: all(stored_used(redis_client, m) == 1 for m in machines),
            30,
            "the first readings stored by both workers",
        )

        assert crashing.pid is not None
        os.kill(crashing.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        wait_until(lambda: crashing.exit_code() is not None, 10, "the worker to die")
        # Sent while the dead worker still holds its partitions: they wait for the takeover.
        produce(stack.bootstrap_servers, topic, [record(m, 2) for m in machines])

        def all_on_the_survivor() -> bool:
            current = assignments(stack.bootstrap_servers, group)
            return [sorted(p) for p in current.values()] == [list(range(TOPIC_PARTITIONS))]

        bound = SESSION_TIMEOUT_SECONDS + MARGIN_SECONDS
        wait_until(all_on_the_survivor, bound, "every partition on the survivor", interval=0.2)
        taken_over = time.monotonic() - killed_at
        wait_until(
            lambda: all(stored_used(redis_client, m) == 2 for m in machines),
            bound - taken_over,
            "the readings sent after the crash stored",
            interval=0.1,
        )
        stored = time.monotonic() - killed_at
        print(
            f"\nsession timeout {SESSION_TIMEOUT_SECONDS:.0f} s: partitions taken over "
            f"{taken_over:.1f} s after the SIGKILL, new readings stored after {stored:.1f} s"
        )
        assert stored < bound
        assert surviving.running()
