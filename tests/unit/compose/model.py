"""The Compose file and the Dockerfiles, read the way Docker reads them (for static tests)."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).parents[3]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
KAFKA_DOCKERFILE = ROOT / "docker" / "kafka" / "Dockerfile"
REDIS_DOCKERFILE = ROOT / "docker" / "redis" / "Dockerfile"
# The images of the production-shaped stack (docker-compose.cluster.yml).
KAFKA4_DOCKERFILE = ROOT / "docker" / "kafka4" / "Dockerfile"
HAPROXY_DOCKERFILE = ROOT / "docker" / "haproxy" / "Dockerfile"
DOCKERFILES = (
    DOCKERFILE,
    KAFKA_DOCKERFILE,
    REDIS_DOCKERFILE,
    KAFKA4_DOCKERFILE,
    HAPROXY_DOCKERFILE,
)
DOCKERIGNORE = ROOT / ".dockerignore"

_VARIABLE = re.compile(r"\$\$|\$\{(?P<name>[A-Z0-9_]+)(?::?-(?P<default>[^}]*))?\}")


def interpolate(value: str, env: dict[str, str] | None = None) -> str:
    """Compose's variable interpolation: `${VAR:-default}`, `${VAR}` and `$$`."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return (env or {}).get(match.group("name")) or match.group("default") or ""

    return _VARIABLE.sub(replace, value)


def load_compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return data


def load_schema(path: Path) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(path.read_text())
    return schema


def service_environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment with every variable at its default (an empty `.env`)."""
    environment = service.get("environment", {})
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {key: interpolate(str(value)) for key, value in environment.items()}


def published_ports(
    service: dict[str, Any], env: dict[str, str] | None = None
) -> set[tuple[int, int]]:
    """(host, container) pairs of a service's short-syntax port mappings."""
    pairs = set()
    for mapping in service.get("ports", []):
        host, container = interpolate(str(mapping), env).rsplit(":", 2)[-2:]
        pairs.add((int(host), int(container)))
    return pairs


@dataclass
class Stage:
    name: str
    base: str
    copies: list[str] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    user: str | None = None
    cmd: list[str] = field(default_factory=list)
    healthcheck: list[str] = field(default_factory=list)


def _exec_form(text: str) -> list[str]:
    text = text.strip()
    if text.startswith("["):
        parsed: list[str] = json.loads(text)
        return parsed
    return shlex.split(text)


def load_dockerfile(path: Path = DOCKERFILE) -> dict[str, Stage]:
    """Stages of a Dockerfile with what the tests look at (continuations joined).

    A stage without a name is named after its position ("stage-1", as Docker does).
    """
    text = re.sub(r"\\\n", " ", path.read_text())
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            words = rest.split()
            named = len(words) >= 3 and words[1].upper() == "AS"
            name = words[2] if named else f"stage-{len(stages)}"
            base = words[0]
            parent = stages.get(base)
            current = Stage(name=name, base=base)
            if parent is not None:  # a stage built on another inherits its settings
                current.copies = list(parent.copies)
                current.runs = list(parent.runs)
                current.user = parent.user
            stages[name] = current
        elif current is None:
            continue
        elif instruction == "COPY" and "--from=" not in rest:  # from the build context
            current.copies.extend(word for word in rest.split()[:-1] if not word.startswith("--"))
        elif instruction == "RUN":
            current.runs.append(rest)
        elif instruction == "USER":
            current.user = rest.strip()
        elif instruction == "CMD":
            current.cmd = _exec_form(rest)
        elif instruction == "HEALTHCHECK":
            current.healthcheck = _exec_form(rest.split(" CMD ", 1)[1])
    return stages
