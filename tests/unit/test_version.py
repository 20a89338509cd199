"""One version everywhere: pyproject.toml, the newest CHANGELOG entry, and the tags of
the images built from this project's own Dockerfile (Compose files, the image list of
scripts/with-docker.sh, the docs that show them)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.unit

ROOT = Path(__file__).parents[2]
COMPOSE_FILES = sorted(ROOT.glob("docker-compose*.yml"))
# Where the project's image tags are written besides the Compose files.
TAG_FILES = [ROOT / "scripts/with-docker.sh", ROOT / "docs/compose.md", ROOT / "docs/production.md"]


def project_version() -> str:
    version: str = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    return version


def project_image_names() -> set[str]:
    """The images of services built from the root Dockerfile: the project's own code."""
    compose: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    names = set()
    for service in compose["services"].values():
        build = service.get("build")
        if isinstance(build, dict) and build.get("context") == "." and "dockerfile" not in build:
            names.add(service["image"].rsplit(":", 1)[0])
    return names


def test_the_changelogs_newest_version_is_the_projects() -> None:
    headings = re.findall(r"^## \[([^\]]+)\]", (ROOT / "CHANGELOG.md").read_text(), re.M)
    assert headings, "CHANGELOG.md has no `## [version]` heading"
    assert headings[0] == project_version()


def test_the_project_images_are_the_three_of_the_root_dockerfile() -> None:
    assert project_image_names() == {
        "memtelemetry/producer-api",
        "memtelemetry/consumer-worker",
        "memtelemetry/memtel-agent",
    }


@pytest.mark.parametrize("path", COMPOSE_FILES + TAG_FILES, ids=lambda path: path.name)
def test_every_tag_of_a_project_image_is_the_projects_version(path: Path) -> None:
    names = "|".join(re.escape(name) for name in sorted(project_image_names()))
    tags = re.findall(rf"(?:{names}):([\w.-]+)", path.read_text())
    assert set(tags) <= {project_version()}, f"{path.name} tags {sorted(set(tags))}"


def test_the_image_list_of_the_container_tests_names_every_project_image() -> None:
    script = (ROOT / "scripts/with-docker.sh").read_text()
    for name in project_image_names():
        assert f"{name}:{project_version()}" in script
