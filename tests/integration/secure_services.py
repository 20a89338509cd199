"""What the tests of the secured Kafka and Redis share: reading the services' logs."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


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
