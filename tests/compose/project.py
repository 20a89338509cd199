"""One Compose project of the repository's docker-compose.yml, driven through the CLI.

Every command is logged with its duration, so a run shows its progress. The project
has a name and host ports of its own, so it never touches a stack a person runs.
"""

from __future__ import annotations

import logging
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

ROOT = Path(__file__).parents[2]

# Every service but Kowl: its published image is pulled, and no registry may be reachable.
SERVICES = ("zookeeper", "kafka", "kafka-init", "redis", "producer-api", "consumer-worker")
# Bounds `up --wait`: a first start of ZooKeeper, Kafka and the topic job included.
UP_TIMEOUT_SECONDS = 240


@dataclass(frozen=True)
class ComposeProject:
    name: str
    env_file: Path
    api_port: int
    kafka_port: int
    # The compose files, the repository's own first (later ones override it).
    files: tuple[str, ...] = ("docker-compose.yml",)
    services: tuple[str, ...] = SERVICES

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def compose(self, *args: str, timeout: float = 300) -> str:
        """Run `docker compose` for this project; fail with its output if it fails."""
        command = ["docker", "compose", "--project-name", self.name]
        for file in self.files:
            command += ["--file", file]
        command += ["--env-file", str(self.env_file), *args]
        started = time.monotonic()
        logger.info("$ docker compose %s", " ".join(args))
        result = subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
        )
        logger.info("  (%.1fs, exit %d)", time.monotonic() - started, result.returncode)
        if result.returncode != 0:
            raise AssertionError(
                f"docker compose {' '.join(args)} exited {result.returncode}:\n"
                f"{result.stdout}\n{result.stderr}"
            )
        return result.stdout

    def up(self, *services: str, scale_workers: int | None = None) -> None:
        """Start services (all but Kowl by default) and wait until they are healthy."""
        args = ["up", "--detach", "--wait", "--wait-timeout", str(UP_TIMEOUT_SECONDS)]
        if scale_workers is not None:
            args += ["--scale", f"consumer-worker={scale_workers}"]
        self.compose(*args, *(services or self.services), timeout=UP_TIMEOUT_SECONDS + 60)

    def down(self, *, volumes: bool = False) -> None:
        args = ["down", "--remove-orphans", "--timeout", "30"]
        self.compose(*args, *(["--volumes"] if volumes else []))

    def exec(self, service: str, *command: str, timeout: float = 120) -> str:
        """Run a command in the service's (first) container; return its stdout."""
        return self.compose("exec", "-T", service, *command, timeout=timeout)

    def container_ids(self, service: str) -> list[str]:
        return self.compose("ps", "--quiet", service).split()

    def network(self) -> str:
        """The project's default network, which the services share."""
        return f"{self.name}_default"

    def logs(self, *services: str) -> str:
        return self.compose("logs", "--no-color", "--tail", "200", *services)
