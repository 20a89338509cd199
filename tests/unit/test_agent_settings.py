"""The agent's settings: machine id from the host name, clear configuration errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from memtel_agent.settings import AgentSettings, machine_id_from_hostname
from telemetry_common.contract import is_valid_machine_id


@pytest.mark.parametrize(
    ("hostname", "machine_id"),
    [
        ("web-01", "web-01"),
        ("db1.example.com", "db1.example.com"),
        ("my laptop", "my-laptop"),
        ("_build:host", "build-host"),
        ("höst", "h-st"),
        ("a" * 80, "a" * 64),
    ],
)
def test_host_name_made_valid(hostname: str, machine_id: str) -> None:
    assert machine_id_from_hostname(hostname) == machine_id
    assert is_valid_machine_id(machine_id)


def test_a_host_name_with_nothing_usable_asks_for_the_setting() -> None:
    with pytest.raises(ValueError, match="AGENT_MACHINE_ID"):
        machine_id_from_hostname("---")


def test_a_configured_machine_id_is_used_as_given_or_refused() -> None:
    assert AgentSettings(_env_file=None, agent_machine_id="rack-7").machine_id() == "rack-7"
    with pytest.raises(ValidationError, match="not a valid machine id"):
        AgentSettings(_env_file=None, agent_machine_id="rack 7")


def test_api_url_without_trailing_slash() -> None:
    settings = AgentSettings(_env_file=None, agent_api_url="http://api:5050/")
    assert settings.api_base_url == "http://api:5050"


def run_agent(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_")}
    return subprocess.run(
        [sys.executable, "-m", "memtel_agent", "--once"],
        env={**clean, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"AGENT_INTERVAL_SECONDS": "0"}, "AGENT_INTERVAL_SECONDS"),
        ({"AGENT_API_URL": "not a url"}, "AGENT_API_URL"),
        ({"AGENT_MACHINE_ID": "no spaces"}, "AGENT_MACHINE_ID"),
        ({"AGENT_MEMINFO_PATH": "/nonexistent/meminfo"}, "AGENT_MEMINFO_PATH"),
        ({"AGENT_BUFFER_DIR": "/proc/no-buffer-here"}, "AGENT_BUFFER_DIR"),
    ],
)
def test_a_bad_setting_exits_2_with_one_line_naming_it(
    env: dict[str, str], named: str, tmp_path: Path
) -> None:
    result = run_agent({"AGENT_BUFFER_DIR": str(tmp_path / "buffer"), **env}, tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("memtel-agent: configuration error: ")
    assert named in lines[0]
