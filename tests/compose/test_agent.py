"""The optional agent service (profile `agent`) reports the Docker host's memory."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx

from memtel_agent.settings import machine_id_from_hostname
from tests.compose.project import ComposeProject
from tests.helpers import wait_until


def _host_mem_total_kib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1])
    raise AssertionError("no MemTotal in /proc/meminfo")


def test_the_agent_reports_the_docker_host_under_its_host_name(
    compose_project: ComposeProject, api: httpx.Client
) -> None:
    # The tests run on the Docker host: its name is the agent's default machine id, and
    # its /proc/meminfo is what the agent's container sees.
    machine_id = machine_id_from_hostname(socket.gethostname())
    try:
        # Naming a service of a profile starts it without enabling the whole profile.
        compose_project.compose("up", "--detach", "agent", timeout=180)

        def reported() -> bool:
            return api.get(f"/cpu-info/{machine_id}").status_code == 200

        wait_until(reported, 120, f"a reading of {machine_id} served by the API", interval=1)
        reading = api.get(f"/cpu-info/{machine_id}").json()[machine_id]
        assert reading["total"] == _host_mem_total_kib()
        assert reading["used"] == reading["total"] - reading["available"]  # procps 4 `free`
    finally:
        compose_project.compose("rm", "--stop", "--force", "agent")
