"""What the tests of the secured Kafka and Redis share: a round trip through the
services, and reading their logs."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import httpx

from tests.helpers import READING, wait_until


def log_line_with(log: Path, *texts: str) -> str | None:
    """The first line of `log` that holds every one of `texts`, if any yet."""
    if not log.exists():
        return None
    lines = log.read_text(errors="replace").splitlines()
    return next((line for line in lines if all(text in line for text in texts)), None)


def assert_no_secret_in_logs(folders: Iterable[Path], secrets: Iterable[str]) -> None:
    """No log file under `folders` holds any of `secrets`."""
    logs = sorted(log for folder in folders for log in folder.rglob("*.log"))
    assert logs, "no log files to search"
    for log in logs:
        text = log.read_text(errors="replace")
        for secret in secrets:
            assert secret not in text, f"a password is in {log}"


def assert_ready_and_round_trip(client: httpx.Client, machine: str) -> None:
    """Both dependencies ready, and a reading posted for `machine` is served back."""
    assert client.get("/readyz").json()["checks"] == {"kafka": "ok", "redis": "ok"}
    posted = client.post(f"/cpu-info/{machine}", json=READING)
    assert posted.status_code == 200, posted.text

    def stored() -> httpx.Response | None:
        response = client.get(f"/cpu-info/{machine}")
        return response if response.status_code == 200 else None

    assert wait_until(stored, 30, "the reading in Redis").json() == {machine: READING}
