"""The Dockerfiles build on one Debian base, run commands that exist, copy what exists."""

from __future__ import annotations

import fnmatch
import importlib.util
import os
import re
from pathlib import Path

import pytest

from tests.unit.compose.model import (
    DOCKERFILES,
    DOCKERIGNORE,
    KAFKA_DOCKERFILE,
    REDIS_DOCKERFILE,
    ROOT,
    Stage,
    load_compose,
    load_dockerfile,
    service_environment,
)

TARGETS = ("producer-api", "consumer-worker")
KAFKA_DIR = KAFKA_DOCKERFILE.parent


@pytest.fixture(scope="module")
def stages() -> dict[str, Stage]:
    return load_dockerfile()


def module_of(command: list[str]) -> str:
    assert command[:2] == ["python", "-m"], command
    return command[2]


def kafka_tools() -> dict[str, str]:
    """The tool wrappers the Kafka image puts on PATH: name -> main class."""
    tools = {}
    for line in (KAFKA_DIR / "tools.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, main_class = line.split()
            tools[name] = main_class
    return tools


def test_compose_builds_the_targets_of_the_dockerfile(stages: dict[str, Stage]) -> None:
    services = load_compose()["services"]
    for target in TARGETS:
        build = services[target]["build"]
        assert (build["context"], build["target"]) == (".", target)
        assert "dockerfile" not in build  # the Dockerfile at the root
        assert target in stages


def test_compose_builds_kafka_and_redis_from_their_dockerfiles() -> None:
    services = load_compose()["services"]
    for service, dockerfile in (("kafka", KAFKA_DOCKERFILE), ("redis", REDIS_DOCKERFILE)):
        build = services[service]["build"]
        assert build["context"] == "."
        assert ROOT / build["dockerfile"] == dockerfile


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_image_builds_on_debian_bookworm_slim_without_a_registry(
    dockerfile: Path,
) -> None:
    text = dockerfile.read_text()
    # A `# syntax=` line makes BuildKit fetch its frontend from a registry.
    assert not re.search(r"^#\s*syntax\s*=", text, re.MULTILINE | re.IGNORECASE)
    assert "ARG BASE_IMAGE=debian:bookworm-slim\n" in text
    stages = load_dockerfile(dockerfile)
    for stage in stages.values():
        assert stage.base == "${BASE_IMAGE}" or stage.base in stages, stage


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_build_trusts_the_optional_extra_ca_certificates(dockerfile: Path) -> None:
    text = dockerfile.read_text()
    for stage in load_dockerfile(dockerfile).values():
        if stage.base == "${BASE_IMAGE}":
            # Installed before anything is downloaded over TLS (PyPI, Maven Central).
            assert "install-ca-certs" in stage.runs[0], stage.name
    assert text.count('ARG EXTRA_CA_CERTS=""') == text.count("FROM ${BASE_IMAGE}")
    assert os.access(ROOT / "docker" / "install-ca-certs.sh", os.X_OK)


def test_compose_passes_the_extra_ca_certificates_to_every_build() -> None:
    for name, service in load_compose()["services"].items():
        if "build" in service:
            assert service["build"]["args"] == {"EXTRA_CA_CERTS": "${EXTRA_CA_CERTS:-}"}, name


def test_the_apps_install_the_pinned_hashed_dependencies(stages: dict[str, Stage]) -> None:
    assert (ROOT / "requirements" / "runtime.txt").exists()
    installs = " ".join(stages["dependencies"].runs)
    assert "requirements/runtime.txt" in stages["dependencies"].copies
    assert "pip install" in installs
    assert "--no-deps --require-hashes -r /tmp/runtime.txt" in installs
    assert "python3-venv" in " ".join(stages["base"].runs)


@pytest.mark.parametrize("target", TARGETS)
def test_each_app_image_runs_an_existing_module_as_a_non_root_user(
    stages: dict[str, Stage], target: str
) -> None:
    stage = stages[target]
    module = module_of(stage.cmd)
    assert importlib.util.find_spec(f"{module}.__main__") is not None
    assert module.replace("_", "-") == target
    assert {"telemetry_common/", f"{module}/"} <= set(stage.copies)
    assert stage.user == "app"


@pytest.mark.parametrize("target", TARGETS)
def test_each_app_image_has_a_healthcheck_that_compose_runs_too(
    stages: dict[str, Stage], target: str
) -> None:
    stage = stages[target]
    module = module_of(stage.healthcheck)
    assert importlib.util.find_spec(module) is not None
    assert load_compose()["services"][target]["healthcheck"]["test"][1:] == stage.healthcheck


def test_every_copied_path_exists_and_passes_the_dockerignore() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for dockerfile in DOCKERFILES:
        for stage in load_dockerfile(dockerfile).values():
            for source in stage.copies:
                path = source.rstrip("/")
                assert (ROOT / path).exists(), f"{dockerfile}: {source}"
                included = False
                for pattern in patterns:  # later patterns win, as in Docker
                    negated = pattern.startswith("!")
                    bare = pattern.lstrip("!").rstrip("/")
                    if fnmatch.fnmatch(path, bare) or path.startswith(f"{bare}/"):
                        included = negated
                assert included, f"{source} is excluded by .dockerignore"


def test_the_kafka_image_fetches_the_jars_devstack_runs() -> None:
    stages = load_dockerfile(KAFKA_DOCKERFILE)
    assert "devstack/pom.xml" in stages["jars"].copies
    assert "dependency:copy-dependencies" in " ".join(stages["jars"].runs)
    assert "openjdk-17-jre-headless" in " ".join(stages["stage-1"].runs)
    # No VOLUME: each of its three roles would leave anonymous volumes for the
    # folders of the other two; Compose mounts the named volumes it needs.
    assert "VOLUME" not in KAFKA_DOCKERFILE.read_text()


def test_the_kafka_image_has_kafkas_tools_on_its_path() -> None:
    tools = kafka_tools()
    assert {
        "kafka-topics",
        "kafka-consumer-groups",
        "kafka-console-consumer",
        "kafka-producer-perf-test",
        "kafka-consumer-perf-test",
        "kafka-configs",
        "kafka-broker-api-versions",
    } <= set(tools)
    assert all(re.fullmatch(r"[a-z]+(\.[a-z]+)*\.[A-Z]\w+", c) for c in tools.values()), tools


def test_compose_runs_commands_the_kafka_image_has() -> None:
    services = load_compose()["services"]
    commands = {path.name for path in (KAFKA_DIR / "bin").iterdir() if os.access(path, os.X_OK)}
    on_path = commands | set(kafka_tools())
    assert services["zookeeper"]["command"] == ["zookeeper-server"]
    assert services["kafka"]["command"] == ["kafka-server"]
    assert {"zookeeper-server", "kafka-server"} <= commands
    assert services["kafka"]["healthcheck"]["test"][1] in on_path
    init = services["kafka-init"]
    assert 'kafka-topics --bootstrap-server "$$KAFKA_INIT_BOOTSTRAP_SERVERS"' in " ".join(
        init["command"]
    )
    assert service_environment(init)["KAFKA_INIT_BOOTSTRAP_SERVERS"] == "kafka:29092"


def test_the_redis_image_listens_to_other_containers_and_persists() -> None:
    config = (ROOT / "docker" / "redis" / "redis.conf").read_text().splitlines()
    # Debian's defaults (bind 127.0.0.1, protected mode) would keep the other containers out.
    assert {"bind 0.0.0.0", "protected-mode no"} <= set(config)
    assert {"dir /data", "appendonly yes", "appendfsync everysec"} <= set(config)
    start = (ROOT / "docker" / "redis" / "redis-server.sh").read_text()
    assert '--requirepass "$REDIS_PASSWORD"' in start
    stage = load_dockerfile(REDIS_DOCKERFILE)["stage-0"]
    assert "redis-server" in stage.runs[0]
    assert stage.user == "redis"
