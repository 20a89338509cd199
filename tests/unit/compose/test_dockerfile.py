"""The Dockerfile runs commands that exist and copies files that exist."""

from __future__ import annotations

import fnmatch
import importlib.util

import pytest

from tests.unit.compose.model import (
    DOCKERIGNORE,
    ROOT,
    Stage,
    load_compose,
    load_dockerfile,
)

TARGETS = ("producer-api", "consumer-worker")


@pytest.fixture(scope="module")
def stages() -> dict[str, Stage]:
    return load_dockerfile()


def module_of(command: list[str]) -> str:
    assert command[:2] == ["python", "-m"], command
    return command[2]


def test_compose_builds_the_targets_of_the_dockerfile(stages: dict[str, Stage]) -> None:
    services = load_compose()["services"]
    for target in TARGETS:
        assert services[target]["build"] == {"context": ".", "target": target}
        assert target in stages


@pytest.mark.parametrize("target", TARGETS)
def test_each_image_runs_an_existing_module_as_a_non_root_user(
    stages: dict[str, Stage], target: str
) -> None:
    stage = stages[target]
    module = module_of(stage.cmd)
    assert importlib.util.find_spec(f"{module}.__main__") is not None
    assert stage.user == "app"


@pytest.mark.parametrize("target", TARGETS)
def test_each_image_has_a_healthcheck_that_compose_runs_too(
    stages: dict[str, Stage], target: str
) -> None:
    stage = stages[target]
    module = module_of(stage.healthcheck)
    assert importlib.util.find_spec(module) is not None
    assert load_compose()["services"][target]["healthcheck"]["test"][1:] == stage.healthcheck


@pytest.mark.parametrize("target", TARGETS)
def test_each_image_copies_the_packages_its_module_imports(
    stages: dict[str, Stage], target: str
) -> None:
    copied = {source.rstrip("/") for source in stages[target].copies}
    package = module_of(stages[target].cmd)
    assert {"pyproject.toml", "telemetry_common", package} <= copied


def test_every_copied_path_exists_and_passes_the_dockerignore(stages: dict[str, Stage]) -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for stage in stages.values():
        for source in stage.copies:
            assert (ROOT / source).exists(), source
            included = False
            for pattern in patterns:  # later patterns win, as in Docker
                negated = pattern.startswith("!")
                if fnmatch.fnmatch(source.rstrip("/"), pattern.lstrip("!").rstrip("/")):
                    included = negated
            assert included, f"{source} is excluded by .dockerignore"


def test_images_build_on_a_slim_python_base(stages: dict[str, Stage]) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "ARG PYTHON_IMAGE=python:3.11" in dockerfile
    assert "-slim" in dockerfile.split("ARG PYTHON_IMAGE=", 1)[1].splitlines()[0]
    assert stages["base"].base == "${PYTHON_IMAGE}"
