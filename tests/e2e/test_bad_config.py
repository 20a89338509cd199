"""A service started with a setting it cannot use says so in one line and exits 2.

The real modules run as processes, as an operator or an orchestrator starts them: the
one line on stderr names the setting (never its value), with no traceback, and the
exit code tells a bad configuration (2) from a crash.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# What a process needs from the environment to run at all; no setting of the services.
_PASSED_THROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
EXIT_BAD_SETTINGS = 2
SECRET = "too-short"


def run(module: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    base = {name: os.environ[name] for name in _PASSED_THROUGH if name in os.environ}
    return subprocess.run(
        [sys.executable, "-m", module],
        env={**base, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


PROGRAMS = {"producer_api": "producer-api", "consumer_worker": "consumer-worker"}
# (module, variable, a value it refuses)
CASES = [
    ("producer_api", "API_PORT", "abc"),
    ("producer_api", "KAFKA_CONFIG__NO_SUCH_PROPERTY", "1"),
    ("producer_api", "API_KEYS", SECRET),
    ("producer_api", "API_KEYS_FILE", "/nonexistent/keys"),
    ("producer_api", "API_CORS_ALLOW_ORIGINS", "https://a.example/"),
    ("producer_api", "LOG_FORMAT", "xml"),
    ("consumer_worker", "WORKER_BATCH_SIZE", "-1"),
    ("consumer_worker", "KAFKA_CONFIG__NO_SUCH_PROPERTY", "1"),
    ("consumer_worker", "LOG_FORMAT", "xml"),
]


@pytest.mark.parametrize(
    ("module", "variable", "value"), CASES, ids=[f"{m}-{v}" for m, v, _ in CASES]
)
def test_a_bad_setting_is_one_line_and_exit_2(
    module: str, variable: str, value: str, tmp_path: Path
) -> None:
    result = run(module, {variable: value}, tmp_path)
    assert result.returncode == EXIT_BAD_SETTINGS, result.stderr
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"{PROGRAMS[module]}: configuration error: {variable}: "), line
    assert "Traceback" not in result.stderr
    assert SECRET not in line


@pytest.mark.parametrize(
    ("module", "program"),
    [("producer_api", "producer-api"), ("consumer_worker", "consumer-worker")],
)
def test_a_bad_setting_in_dotenv_is_refused_the_same_way(
    module: str, program: str, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("REDIS_TIMEOUT_SECONDS=soon\n")
    result = run(module, {}, tmp_path)
    assert result.returncode == EXIT_BAD_SETTINGS, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"{PROGRAMS[module]}: configuration error: REDIS_TIMEOUT_SECONDS: ")
