"""A SIGKILLed worker of a running devstack is back within seconds, not a session timeout.

The worker of `python -m devstack up` is a static member of its group
(`memtel-worker-1`). The supervisor starts it again about a second after it died, and
the restarted process, presenting the same id, gets its partitions back at once: the
group does not wait KAFKA_SESSION_TIMEOUT_MS for the dead member first. The test
kills the worker, posts readings for machines on every partition, and measures until
each is visible through GET.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devstack.ports import free_port
from devstack.stack import worker_instance_id
from telemetry_common.partitioning import partition_of
from tests.e2e.test_devstack_cli import devstack
from tests.helpers import READING, unique, wait_until

PARTITIONS = 3
# Well below the session timeout the group would otherwise wait for (10 s).
BACK_WITHIN_SECONDS = 5.0


@pytest.fixture
def running_devstack(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """`devstack up` on free ports in a folder of the test's; yields the API's URL and
    the state file; `devstack down` at the end."""
    api_port = free_port()
    env = {
        **os.environ,
        "DEVSTACK_DIR": str(tmp_path / "devstack"),
        "ZOOKEEPER_PORT": str(free_port()),
        "KAFKA_PORT": str(free_port()),
        "REDIS_PORT": str(free_port()),
        "API_PORT": str(api_port),
        "WORKER_METRICS_PORT": str(free_port()),
        "KAFKA_TOPIC_PARTITIONS": str(PARTITIONS),
    }
    started = devstack("up", env, tmp_path)
    try:
        assert started.returncode == 0, started.stderr
        yield f"http://127.0.0.1:{api_port}", tmp_path / "devstack"
    finally:
        stopped = devstack("down", env, tmp_path)
        assert stopped.returncode == 0, stopped.stderr


def machines_on_every_partition() -> list[str]:
    """One new machine id for each partition of the topic."""
    found: dict[int, str] = {}
    while len(found) < PARTITIONS:
        machine = unique("static")
        found.setdefault(partition_of(machine, PARTITIONS), machine)
    return list(found.values())


def test_a_sigkilled_worker_serves_its_partitions_again_within_seconds(
    running_devstack: tuple[str, Path],
) -> None:
    api_url, devstack_dir = running_devstack
    state = json.loads((devstack_dir / "state.json").read_text())
    worker_log = Path(state["consumer-worker"]["log"])
    assert f"static member {worker_instance_id(1)}" in worker_log.read_text()

    with httpx.Client(base_url=api_url, timeout=10) as client:
        # The worker has its partitions: a reading goes through before the kill.
        assert client.post("/cpu-info/before-kill", json=READING).status_code == 200
        wait_until(
            lambda: client.get("/cpu-info/before-kill").status_code == 200, 60, "a first reading"
        )

        machines = machines_on_every_partition()
        os.kill(state["consumer-worker"]["pid"], signal.SIGKILL)
        killed_at = time.monotonic()
        for machine in machines:
            assert client.post(f"/cpu-info/{machine}", json=READING).status_code == 200

        def all_visible() -> bool:
            return all(client.get(f"/cpu-info/{m}").status_code == 200 for m in machines)

        wait_until(all_visible, 60, "the readings posted after the kill")
        elapsed = time.monotonic() - killed_at

    print(f"\nreadings posted after the SIGKILL visible {elapsed:.2f} s after it")
    assert elapsed < BACK_WITHIN_SECONDS
