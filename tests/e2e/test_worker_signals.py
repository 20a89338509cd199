"""A second SIGTERM stops a worker at once, even one stuck finishing its batch.

The first SIGTERM asks the worker to finish its batch, commit and leave; a batch
whose Redis write hangs cannot finish, so an operator's second SIGTERM must end it
at once, with exit code 130, instead of waiting for the write to time out.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from consumer_worker.__main__ import FORCED_EXIT_CODE
from devstack import services
from devstack.ports import free_port
from devstack.processes import ManagedProcess
from devstack.stack import LocalStack
from tests.helpers import produce, unique, wait_until
from tests.integration.test_worker import record

# Longer than the test: a write to the hung Redis never times out while it runs, so
# only the second signal can end the worker.
REDIS_TIMEOUT_SECONDS = 120
# What "at once" means here: the process is gone well within this.
PROMPT_EXIT_SECONDS = 3.0
# A loop that turns (every WORKER_POLL_TIMEOUT_SECONDS at most) beats far more often.
STUCK_AFTER_SECONDS = 2.0


@contextlib.contextmanager
def redis_of_its_own(work_dir: Path) -> Iterator[tuple[ManagedProcess, int]]:
    """A Redis this test may hang without disturbing the session's other tests."""
    port = free_port()
    server = services.redis(work_dir / "redis", port)
    server.start()
    try:
        yield server, port
    finally:
        pid = server.pid
        if pid is not None:
            # A stopped process ignores SIGTERM until continued.
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        server.stop()


def records_consumed(metrics_port: int) -> float:
    """The worker's count of records taken from Kafka (all partitions), from its metrics."""
    answer = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5)
    answer.raise_for_status()
    return sum(
        float(line.split()[-1])
        for line in answer.text.splitlines()
        if line.startswith("memtel_worker_records_consumed_total{")
    )


def heartbeat_age(metrics_port: int) -> float:
    """Seconds since the worker's loop last reported, from its /healthz."""
    answer = httpx.get(f"http://127.0.0.1:{metrics_port}/healthz", timeout=5)
    found = re.search(r"heartbeat ([0-9.]+)s old", answer.text)
    assert found is not None, answer.text
    return float(found.group(1))


def test_a_second_sigterm_exits_at_once_with_130(
    stack: LocalStack, topic: str, tmp_path: Path
) -> None:
    metrics_port = free_port()
    with redis_of_its_own(tmp_path) as (redis_server, redis_port):
        worker = services.consumer_worker(
            tmp_path,
            {
                **stack.worker_env(),
                "KAFKA_TOPIC": topic,
                "KAFKA_CONSUMER_GROUP": unique("writers"),
                "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
                "REDIS_CLUSTER": "false",
                "REDIS_TIMEOUT_SECONDS": str(REDIS_TIMEOUT_SECONDS),
                "WORKER_POLL_TIMEOUT_SECONDS": "0.2",
                "WORKER_METRICS_PORT": str(metrics_port),
            },
        )
        worker.start()
        try:
            machines = [unique("m") for _ in range(30)]
            produce(stack.bootstrap_servers, topic, [record(m, 1) for m in machines])
            # Every partition assigned and working: the first readings are consumed.
            wait_until(
                lambda: records_consumed(metrics_port) >= len(machines),
                30,
                "the first readings consumed",
            )

            redis_pid = redis_server.pid
            assert redis_pid is not None
            os.kill(redis_pid, signal.SIGSTOP)  # Redis hangs: writes wait for an answer
            produce(stack.bootstrap_servers, topic, [record(m, 2) for m in machines])
            # The loop is stuck in a call to the hung Redis (the new batch's write, or the
            # periodic check of the view): it no longer beats its heartbeat, which it does
            # at every turn, at least every poll timeout.
            wait_until(
                lambda: heartbeat_age(metrics_port) >= STUCK_AFTER_SECONDS,
                30,
                "the worker's loop stuck on the hung Redis",
                interval=0.2,
            )

            pid = worker.pid
            assert pid is not None
            os.kill(pid, signal.SIGTERM)
            wait_until(
                lambda: "finishing the current batch" in worker.log_path.read_text(),
                10,
                "the worker to take the first SIGTERM",
            )
            # It is finishing the batch, which cannot finish: still running.
            assert worker.exit_code() is None, worker.log_path.read_text()

            second_at = time.monotonic()
            os.kill(pid, signal.SIGTERM)
            wait_until(
                lambda: worker.exit_code() is not None,
                PROMPT_EXIT_SECONDS,
                "the worker to exit on the second SIGTERM",
                interval=0.01,
            )
            took = time.monotonic() - second_at
            code = worker.exit_code()
            print(f"\nexited {code} {took:.3f} s after the second SIGTERM")
            assert code == FORCED_EXIT_CODE
            assert "again: exiting now" in worker.log_path.read_text()
        finally:
            # The executor reports the forced exit code as an error: it is the point.
            with contextlib.suppress(Exception):
                worker.stop()
