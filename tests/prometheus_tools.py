"""Where the tests find Prometheus and promtool, and what they know of the shipped files.

The binaries are Debian's, unpacked (never installed) into .tools/prometheus/ by
scripts/fetch-prometheus.sh, which `ensure_prometheus` runs when they are missing.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Final

REPO_ROOT: Final = Path(__file__).resolve().parent.parent
FETCH_SCRIPT: Final = REPO_ROOT / "scripts" / "fetch-prometheus.sh"
BIN_DIR: Final = REPO_ROOT / ".tools" / "prometheus" / "usr" / "bin"

PROMETHEUS_DIR: Final = REPO_ROOT / "deploy" / "prometheus"
RULES_FILE: Final = PROMETHEUS_DIR / "memtel-rules.yml"
RULES_TEST_FILE: Final = PROMETHEUS_DIR / "memtel-rules.test.yml"
EXAMPLE_CONFIG: Final = PROMETHEUS_DIR / "prometheus.example.yml"
DASHBOARD_FILE: Final = REPO_ROOT / "deploy" / "grafana" / "memtel-pipeline.json"

# The scrape job names the rules alert on.
API_JOB: Final = "memtel-api"
WORKER_JOB: Final = "memtel-worker"


@dataclass(frozen=True)
class PrometheusTools:
    prometheus: Path
    promtool: Path


def ensure_prometheus() -> PrometheusTools:
    """The binaries, fetched first if they are not there yet (the script is idempotent)."""
    tools = PrometheusTools(BIN_DIR / "prometheus", BIN_DIR / "promtool")
    if not (tools.prometheus.exists() and tools.promtool.exists()):
        result = subprocess.run(
            ["bash", str(FETCH_SCRIPT)], capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{FETCH_SCRIPT.name} failed ({result.returncode}):\n"
                f"{result.stdout}\n{result.stderr}"
            )
    return tools


def run_promtool(tools: PrometheusTools, *args: str) -> subprocess.CompletedProcess[str]:
    """promtool with `args`, run in the rules' folder so that relative paths resolve."""
    return subprocess.run(
        [str(tools.promtool), *args],
        cwd=PROMETHEUS_DIR,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
