"""A Redis restart and killed workers lose no reading that the API acknowledged."""

from __future__ import annotations

import subprocess
import threading

import httpx

from tests.compose.project import ComposeProject
from tests.compose.readings import machines, post_readings, wait_until_served
from tests.helpers import unique


def test_readings_survive_a_redis_restart(
    compose_project: ComposeProject, api: httpx.Client
) -> None:
    before = machines(unique("before-restart"), 30)
    post_readings(api, before)
    wait_until_served(api, before, timeout=60)

    during = machines(unique("during-restart"), 30)
    errors: list[BaseException] = []

    def restart() -> None:
        try:
            compose_project.compose("restart", "redis")
        except (AssertionError, subprocess.SubprocessError) as exc:
            errors.append(exc)

    restarting = threading.Thread(target=restart, name="restart-redis")
    restarting.start()
    post_readings(api, during)  # Kafka takes them while Redis goes down and up
    restarting.join(timeout=180)
    assert not restarting.is_alive(), "docker compose restart redis did not return"
    assert not errors, errors

    # The ones stored before come back from the append-only file; the others are
    # written by the worker, which retried while Redis was away.
    wait_until_served(api, {**before, **during}, timeout=120)


def test_readings_survive_killed_workers(
    compose_project: ComposeProject, api: httpx.Client
) -> None:
    before = machines(unique("before-kill"), 30)
    post_readings(api, before)

    # No graceful stop: no final commit, whatever the workers were doing.
    compose_project.compose("kill", "--signal", "SIGKILL", "consumer-worker")
    during = machines(unique("while-killed"), 30)
    post_readings(api, during)

    compose_project.up("consumer-worker")
    wait_until_served(api, {**before, **during}, timeout=120)
