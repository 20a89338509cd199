"""scripts/compose-plugin.sh installs the Compose plugin it builds only where
`docker compose version` fails, and never over a plugin file of another origin.

`docker` is a stand-in here (a script first on PATH): what is under test is the
script's choice, not Docker. The build itself is cached in a temporary folder, so
nothing is built.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).parents[2]
SCRIPT = ROOT / "scripts/compose-plugin.sh"
VERSION = "v2.40.3"

# `docker compose version` works when the environment says a system plugin exists, or
# when the user's plugin file holds the word "works".
FAKE_DOCKER = """#!/bin/sh
if [ "$1 $2" = "compose version" ]; then
  if [ -n "$SYSTEM_COMPOSE" ]; then echo "Docker Compose version system"; exit 0; fi
  if grep -qs works "$DOCKER_CONFIG/cli-plugins/docker-compose"; then
    echo "Docker Compose version built-here"; exit 0
  fi
  echo "docker: 'compose' is not a docker command." >&2; exit 1
fi
exit 2
"""


def run_script(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "docker").write_text(FAKE_DOCKER)
    (bin_dir / "docker").chmod(0o755)
    environment = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "DOCKER_CONFIG": str(tmp_path / "docker-config"),
        "COMPOSE_VERSION": VERSION,
        **env,
    }
    return subprocess.run(
        ["bash", str(SCRIPT)], env=environment, capture_output=True, text=True, check=False
    )


def cached_build(tmp_path: Path) -> Path:
    build = tmp_path / "cache" / "memtelemetry" / f"compose-{VERSION}" / "docker-compose"
    build.parent.mkdir(parents=True)
    build.write_text("#!/bin/sh\n# works\n")
    build.chmod(0o755)
    return build


def test_a_working_plugin_is_used_and_nothing_is_installed(tmp_path: Path) -> None:
    result = run_script(tmp_path, SYSTEM_COMPOSE="1")
    assert result.returncode == 0, result.stderr
    assert "Docker Compose version system" in result.stderr
    assert not (tmp_path / "docker-config").exists()
    assert not (tmp_path / "cache").exists()


def test_without_a_working_plugin_the_build_is_installed(tmp_path: Path) -> None:
    build = cached_build(tmp_path)
    result = run_script(tmp_path)
    assert result.returncode == 0, result.stderr
    plugin = tmp_path / "docker-config" / "cli-plugins" / "docker-compose"
    assert plugin.read_bytes() == build.read_bytes()
    assert os.access(plugin, os.X_OK)
    assert "Docker Compose version built-here" in result.stderr


def test_a_plugin_file_of_another_origin_is_left_as_it_is(tmp_path: Path) -> None:
    cached_build(tmp_path)
    plugin = tmp_path / "docker-config" / "cli-plugins" / "docker-compose"
    plugin.parent.mkdir(parents=True)
    plugin.write_text("#!/bin/sh\n# broken\n")
    result = run_script(tmp_path)
    assert result.returncode == 1
    assert "is there but `docker compose version` fails; it is left as it is" in result.stderr
    assert plugin.read_text() == "#!/bin/sh\n# broken\n"
