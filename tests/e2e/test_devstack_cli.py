"""`python -m devstack up|status|down`, the commands behind `make up` and `make down`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from devstack.ports import free_port
from tests.helpers import READING, wait_until


def devstack(command: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "devstack", command],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def recorded_pids(state_file: Path) -> dict[str, int]:
    return {name: info["pid"] for name, info in json.loads(state_file.read_text()).items()}


def test_up_runs_the_whole_system_restarts_what_crashes_and_down_leaves_nothing_running(
    tmp_path: Path,
) -> None:
    api_port = free_port()
    env = {
        **os.environ,
        "DEVSTACK_DIR": str(tmp_path / "devstack"),
        "ZOOKEEPER_PORT": str(free_port()),
        "KAFKA_PORT": str(free_port()),
        "REDIS_PORT": str(free_port()),
        "API_PORT": str(api_port),
        "KAFKA_TOPIC_PARTITIONS": "2",
    }
    started = devstack("up", env, tmp_path)
    state_file = tmp_path / "devstack" / "state.json"
    try:
        assert started.returncode == 0, started.stderr
        assert f"http://127.0.0.1:{api_port}" in started.stdout
        pids = recorded_pids(state_file)
        assert set(pids) == {"zookeeper", "kafka", "redis", "producer-api", "consumer-worker"}

        assert devstack("status", env, tmp_path).returncode == 0
        again = devstack("up", env, tmp_path)
        assert again.returncode == 0
        assert "already running" in again.stdout

        with httpx.Client(base_url=f"http://127.0.0.1:{api_port}", timeout=10) as client:
            assert client.get("/readyz").status_code == 200
            assert client.post("/cpu-info/cli-1", json=READING).status_code == 200
            wait_until(
                lambda: client.get("/cpu-info/cli-1").status_code == 200, 30, "the reading stored"
            )

            # A crashed worker is restarted, as Compose's restart policy does.
            crashed = pids["consumer-worker"]
            os.kill(crashed, signal.SIGKILL)

            def restarted() -> int | None:
                pid = recorded_pids(state_file)["consumer-worker"]
                return pid if pid != crashed and alive(pid) else None

            pids["restarted consumer-worker"] = wait_until(restarted, 60, "a new worker")
            log = (tmp_path / "devstack" / "logs" / "devstack.log").read_text()
            assert "consumer-worker exited with code -9" in log
            assert client.post("/cpu-info/cli-2", json=READING).status_code == 200
            wait_until(
                lambda: client.get("/cpu-info/cli-2").status_code == 200,
                60,
                "a reading stored by the restarted worker",
            )
    finally:
        stopped = devstack("down", env, tmp_path)
    assert stopped.returncode == 0, stopped.stderr
    assert [name for name, pid in pids.items() if alive(pid)] == []
    assert not state_file.exists()
    assert devstack("status", env, tmp_path).returncode == 3
