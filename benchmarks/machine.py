"""What the figures were measured on, and with which settings."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from importlib.metadata import version
from pathlib import Path
from typing import Any

import confluent_kafka

from devstack.jars import KAFKA_VERSION

# Settings of the services a run passes through from its environment.
_SETTING_PREFIXES = ("API_", "WORKER_", "KAFKA_", "REDIS_", "LOG_LEVEL")
_SECRET_MARKERS = ("PASSWORD", "SECRET", "TOKEN")


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def redis_server_version() -> str:
    server = shutil.which("redis-server")
    if server is None:
        return "unknown"
    output = subprocess.run(
        [server, "--version"], capture_output=True, text=True, check=True
    ).stdout
    found = re.search(r"v=(\S+)", output)
    return found.group(1) if found else output.strip()


def java_version() -> str:
    output = subprocess.run(["java", "-version"], capture_output=True, text=True, check=True)
    first = (output.stderr or output.stdout).splitlines()[0]
    return first.strip()


def load_average() -> list[float]:
    return [round(load, 2) for load in os.getloadavg()]


def describe_machine() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "cpu_model": cpu_model(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "kafka": KAFKA_VERSION,
        "java": java_version(),
        "redis": redis_server_version(),
        "confluent_kafka": version("confluent-kafka"),
        "librdkafka": confluent_kafka.libversion()[0],
        "redis_py": version("redis"),
        "load_average_at_start": load_average(),
    }


def settings_from_environment() -> dict[str, str]:
    """The service settings set in the environment (and so passed to the processes)."""
    return {
        name: value
        for name, value in sorted(os.environ.items())
        if name.startswith(_SETTING_PREFIXES)
        and not any(marker in name for marker in _SECRET_MARKERS)
    }
